using System.Net;
using Lisp.Wire;

namespace Lisp.ControlPlane;

/// <summary>One map-cache entry: a positive mapping (locators) or a negative one (no locators, an action).</summary>
public sealed record MapCacheEntry(
    EidPrefix Eid,
    IReadOnlyList<LocatorRecord> Locators,
    MapReplyAction Action,
    DateTimeOffset InstalledAt,
    DateTimeOffset ExpiresAt,
    IPEndPoint? LearnedFrom,
    bool Authoritative,
    ushort MapVersion = 0)
{
    public bool IsNegative => Locators.Count == 0;
    public TimeSpan Ttl => ExpiresAt - InstalledAt;

    /// <summary>
    /// The locators to encapsulate to: the reachable ones with the lowest unicast priority below 255
    /// (the caller spreads flows over them by weight). Empty for negative entries.
    /// </summary>
    public IReadOnlyList<LocatorRecord> BestLocators()
    {
        var usable = Locators.Where(l => l.Reachable && l.Priority != 255).ToList();
        if (usable.Count == 0) return [];
        byte best = usable.Min(l => l.Priority);
        return usable.Where(l => l.Priority == best).ToList();
    }
}

/// <summary>ITR settings; defaults are lispers.net's where it has one.</summary>
public sealed record ItrOptions
{
    /// <summary>This ITR's RLOCs: the ITR-RLOCs of its Map-Requests (1 to 32; Map-Replies come back to them).</summary>
    public IReadOnlyList<IPAddress> Rlocs { get; init; } = [];
    /// <summary>The inner UDP source port of our ECM Map-Requests: where Map-Replies are sent back.</summary>
    public ushort ControlPort { get; init; } = 4342;
    /// <summary>Source EID of Map-Requests (none by default).</summary>
    public LispAddress? SourceEid { get; init; }
    /// <summary>First retransmit timeout; each next one doubles (1 s, 2 s, 4 s ...).</summary>
    public TimeSpan InitialRetransmit { get; init; } = TimeSpan.FromSeconds(1);
    /// <summary>Sends of one Map-Request in all (first included); each timeout moves to the next map-resolver.</summary>
    public int MaxTransmissions { get; init; } = 3;
    /// <summary>At most one Map-Request per EID per this period (lispers.net: 0.5 s).</summary>
    public TimeSpan PerEidRateLimit { get; init; } = TimeSpan.FromMilliseconds(500);
    /// <summary>At most this many new Map-Requests per second overall (retransmits not counted).</summary>
    public int GlobalRequestsPerSecond { get; init; } = 100;
    /// <summary>At most this many requests in flight.</summary>
    public int MaxOutstanding { get; init; } = 1000;
    /// <summary>At most this many map-cache entries; a reply that would add more is not installed.</summary>
    public int MaxCacheEntries { get; init; } = 100_000;
    /// <summary>
    /// While the mapping system names no map-resolver for an EID yet (LISP-Decent pull before DNS answered),
    /// the request is tried again this often ...
    /// </summary>
    public TimeSpan NoResolverRetry { get; init; } = TimeSpan.FromSeconds(1);
    /// <summary>... until this long after it was first asked for; then it is given up and logged (counted as <see cref="DropReason.NoResolver"/> once, when it first could not be placed).</summary>
    public TimeSpan NoResolverGiveUp { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>
    /// RLOC-probe period per RLOC of the cached positive entries (lispers.net: 10 s); zero (or negative)
    /// turns RLOC-probing off. Probes go to the RLOC at <see cref="ControlPort"/> (the deployment's control port).
    /// </summary>
    public TimeSpan ProbeInterval { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>
    /// An RLOC whose probes get no reply for this long (counted from the first unanswered probe) is marked
    /// unreachable; null = 1.5 x <see cref="ProbeInterval"/> (15 s by default, lispers.net's).
    /// </summary>
    public TimeSpan? ProbeTimeout { get; init; }
    /// <summary>Each probe period is the interval times a uniform factor in [1 - j, 1 + j] (0 to 0.5).</summary>
    public double ProbeJitter { get; init; } = 0.1;
    /// <summary>
    /// RLOC-probe budget (issue 12 finding 3): at most this many probes in any one-second window, sent paced
    /// (1/budget apart after a burst of at most a tenth of it); a due probe over the budget is deferred to the next
    /// free slot (counted, never dropped). Zero (or negative) = no budget.
    /// </summary>
    public int ProbeBudgetPerSecond { get; init; } = 100;
    /// <summary>
    /// At most this many locators of one map-cache entry are probed: the first ones by priority (lowest first), then
    /// weight (highest first); the others are not probed (counted) and keep the R bit of the Map-Reply.
    /// </summary>
    public int MaxProbedLocatorsPerRecord { get; init; } = 8;
    /// <summary>
    /// Map-cache TTL ceiling (issue 12 finding 6): a Map-Reply record's TTL above it is installed with this TTL
    /// (counted as <see cref="ControlEvent.TtlCapped"/>). TTL 0 keeps its meaning (remove).
    /// </summary>
    public TimeSpan MaxTtl { get; init; } = TimeSpan.FromDays(1);

    /// <summary>The probe timeout in effect (<see cref="ProbeTimeout"/> or 1.5 x the interval).</summary>
    public TimeSpan EffectiveProbeTimeout => ProbeTimeout ?? ProbeInterval * 1.5;
}

/// <summary>A Map-Request in flight, for `show`.</summary>
public sealed record OutstandingRequest(EidPrefix Eid, ulong Nonce, int Transmissions, IPEndPoint LastResolver, DateTimeOffset Deadline, bool SmrInvoked);

/// <summary>
/// ITR (RFC 9301 sections 6.1, 6.6): a simple map-cache (linear longest-prefix match for IP-like EIDs, exact
/// for others), Map-Requests in ECMs to the mapping system's map-resolvers with a random nonce, retransmit
/// with exponential back-off moving to the next resolver on each timeout, per-EID and global rate limits,
/// installs positive and negative Map-Replies whose nonce matches, expires entries by TTL, honours SMRs,
/// and RLOC-probes the locators of its positive entries to track their reachability (ItrProbing.cs).
/// Pure and single-threaded.
/// </summary>
public sealed partial class Itr
{
    private readonly ItrOptions _options;
    private readonly IMappingSystem _mappingSystem;
    private readonly Random _random;
    private readonly ControlCounters _counters;
    private readonly Tables.ItrCacheTable _cache = new();
    private readonly Dictionary<ulong, Pending> _outstanding = new();
    // Requests by EID: typed keys (Tables.EidKey), not the EID's text.
    private readonly Dictionary<Tables.EidKey, ulong> _outstandingByEid = new();
    private readonly Dictionary<Tables.EidKey, DateTimeOffset> _lastRequest = new();
    private readonly Dictionary<Tables.EidKey, Waiting> _waiting = new();
    private DateTimeOffset _windowStart = DateTimeOffset.MinValue;
    private int _windowCount;
    // Timers (issue 10): min-heaps of deadlines with lazy invalidation (Tables.TimerHeap), so NextDeadline is O(1)
    // amortized and a Tick costs O(due timers) however many requests are in flight or waiting.
    private readonly Tables.TimerHeap<Pending> _outstandingTimers;
    private readonly Tables.TimerHeap<Waiting> _waitingTimers;
    private readonly List<Pending> _dueOutstanding = [];
    private readonly List<Waiting> _dueWaiting = [];
    // Creation order of waiting and outstanding requests: due ones are served in it (as the old walks over the
    // dictionaries did, in their insertion order), whatever order the heap pops them in.
    private long _timerSeq;

    /// <summary>A request the mapping system could not place yet (no map-resolver known for the EID); immutable, replaced on each change.</summary>
    private sealed record Waiting(EidPrefix Eid, Tables.EidKey Key, bool SmrInvoked, DateTimeOffset Since, DateTimeOffset NextAt, long Seq);

    private sealed class Pending(EidPrefix eid, Tables.EidKey key, ulong nonce, IReadOnlyList<IPEndPoint> resolvers, bool smrInvoked, long seq)
    {
        public EidPrefix Eid { get; } = eid;
        public Tables.EidKey Key { get; } = key;
        public ulong Nonce { get; } = nonce;
        public IReadOnlyList<IPEndPoint> Resolvers { get; } = resolvers;
        public bool SmrInvoked { get; } = smrInvoked;
        public long Seq { get; } = seq;
        public int Transmissions { get; set; }
        public IPEndPoint LastResolver { get; set; } = resolvers[0];
        public DateTimeOffset Deadline { get; set; }
    }

    public Itr(ItrOptions options, IMappingSystem mappingSystem, Random? random = null, ControlCounters? counters = null)
    {
        if (options.Rlocs.Count is < 1 or > 32) throw new ArgumentException("an ITR needs 1 to 32 RLOCs (its ITR-RLOCs)");
        if (options.MaxTransmissions < 1) throw new ArgumentException("MaxTransmissions must be at least 1");
        if (options.ProbeInterval > TimeSpan.Zero && options.EffectiveProbeTimeout <= TimeSpan.Zero) throw new ArgumentException("ProbeTimeout must be positive");
        if (options.ProbeJitter is < 0 or > 0.5 || double.IsNaN(options.ProbeJitter)) throw new ArgumentException("ProbeJitter must be between 0 and 0.5");
        if (options.MaxProbedLocatorsPerRecord < 1) throw new ArgumentException("MaxProbedLocatorsPerRecord must be at least 1");
        if (options.ProbeBudgetPerSecond > 1_000_000) throw new ArgumentException("ProbeBudgetPerSecond must be at most 1000000");
        if (options.MaxTtl <= TimeSpan.Zero) throw new ArgumentException("MaxTtl must be positive");
        _options = options;
        _mappingSystem = mappingSystem;
        _random = random ?? SecureRandom.Instance;
        _counters = counters ?? new ControlCounters();
        // A heap item is live while it is still the request's current deadline (see Tables.TimerHeap).
        _outstandingTimers = new((p, at) => _outstanding.TryGetValue(p.Nonce, out var held) && ReferenceEquals(held, p) && p.Deadline == at);
        _waitingTimers = new((w, _) => _waiting.TryGetValue(w.Key, out var held) && ReferenceEquals(held, w));
        _probeTimers = new(IsLiveProbeTimer);
        _probeLog = new DateTimeOffset[Math.Max(0, options.ProbeBudgetPerSecond)];
    }

    public ItrOptions Options => _options;
    public ControlCounters Counters => _counters;
    public int CacheCount => _cache.Count;

    public IReadOnlyList<OutstandingRequest> Outstanding =>
        _outstanding.Values.Select(p => new OutstandingRequest(p.Eid, p.Nonce, p.Transmissions, p.LastResolver, p.Deadline, p.SmrInvoked)).ToList();

    /// <summary>Every live map-cache entry, ordered by EID text.</summary>
    public IReadOnlyList<MapCacheEntry> Entries(DateTimeOffset now) =>
        _cache.Values.Where(e => e.ExpiresAt > now).OrderBy(e => e.Eid.ToString(), StringComparer.Ordinal).ToList();

    /// <summary>A bounded slice of the live entries in key order (see <see cref="ItrCacheTable.Slice"/>); null: the end was reached.</summary>
    public Tables.EidKey? EntriesSlice(Tables.EidKey? after, int max, DateTimeOffset now, List<MapCacheEntry> into) => _cache.Slice(after, max, now, into);

    public DateTimeOffset? NextDeadline
    {
        get
        {
            // The head of each heap (stale heads dropped on the way): O(1) amortized.
            DateTimeOffset? d = _outstandingTimers.Next;
            if (_cache.NextExpiry is { } ce && (d is null || ce < d)) d = ce;
            if (_waitingTimers.Next is { } wd && (d is null || wd < d)) d = wd;
            if (NextProbeDeadline is { } pd && (d is null || pd < d)) d = pd;
            return d;
        }
    }

    /// <summary>Longest-prefix match (exact for kinds without prefixes); expired entries do not match.</summary>
    public bool TryLookup(EidPrefix eid, DateTimeOffset now, out MapCacheEntry? entry)
    {
        entry = _cache.Longest(eid, now);
        return entry is not null;
    }

    /// <summary>Looks up an IP address (host prefix) in instance <paramref name="instanceId"/>.</summary>
    public bool TryLookup(IPAddress address, uint instanceId, DateTimeOffset now, out MapCacheEntry? entry)
    {
        var ip = new IpAddress(address);
        return TryLookup(EidPrefix.Create(instanceId, ip, ip.HostMaskLength), now, out entry);
    }

    /// <summary>
    /// Asks the mapping system about <paramref name="eid"/>: an ECM Map-Request to the first map-resolver,
    /// unless one is already in flight for it or a rate limit holds it back (counted).
    /// </summary>
    public IReadOnlyList<ControlAction> Request(EidPrefix eid, DateTimeOffset now, bool smrInvoked = false)
    {
        var c = eid.Canonical();
        var key = Tables.EidKey.From(c);
        if (_outstandingByEid.ContainsKey(key)) return [];
        if (_lastRequest.TryGetValue(key, out var last) && now - last < _options.PerEidRateLimit)
        {
            _counters.Drop(DropReason.RateLimited);
            return [new LogAction(LogLevel.Debug, "map-request-rate-limited", $"Map-Request for {c} held back: last one {(now - last).TotalMilliseconds:0} ms ago")];
        }
        if (now - _windowStart >= TimeSpan.FromSeconds(1))
        {
            _windowStart = now;
            _windowCount = 0;
        }
        if (_windowCount >= _options.GlobalRequestsPerSecond)
        {
            _counters.Drop(DropReason.RateLimited);
            return [new LogAction(LogLevel.Debug, "map-request-rate-limited", $"Map-Request for {c} held back: {_windowCount} requests this second")];
        }
        if (_outstanding.Count >= _options.MaxOutstanding)
        {
            _counters.Drop(DropReason.RequestsInFlight);
            return [new LogAction(LogLevel.Warning, "map-request-dropped", $"Map-Request for {c}: {_outstanding.Count} requests already in flight")];
        }
        var resolvers = _mappingSystem.MapResolversFor(c);
        if (resolvers.Count == 0)
        {
            // Not known yet (a DNS answer still to come): try again shortly rather than lose the request.
            if (_waiting.TryGetValue(key, out var w))
            {
                SetWaiting(w with { NextAt = now + _options.NoResolverRetry });
                return [];
            }
            _counters.Drop(DropReason.NoResolver); // counted once per request that could not be placed at once
            if (_waiting.Count < _options.MaxOutstanding && _options.NoResolverGiveUp > TimeSpan.Zero)
            {
                SetWaiting(new Waiting(c, key, smrInvoked, now, now + _options.NoResolverRetry, ++_timerSeq));
                return [new LogAction(LogLevel.Warning, "map-request-waiting",
                    $"Map-Request for {c}: {_mappingSystem.Name} names no map-resolver yet; retrying every {_options.NoResolverRetry.TotalSeconds:0.###}s for up to {_options.NoResolverGiveUp.TotalSeconds:0}s")];
            }
            return [new LogAction(LogLevel.Warning, "map-request-dropped", $"Map-Request for {c}: {_mappingSystem.Name} names no map-resolver")];
        }
        _waiting.Remove(key);
        _windowCount++;
        _lastRequest[key] = now;
        if (_lastRequest.Count > 4 * _options.MaxOutstanding + 1024)
        {
            foreach (var (k, t) in _lastRequest.ToList())
            {
                if (now - t >= _options.PerEidRateLimit) _lastRequest.Remove(k);
            }
        }
        ulong nonce;
        do nonce = Util.Nonce(_random); while (_outstanding.ContainsKey(nonce));
        var p = new Pending(c, key, nonce, resolvers.ToList(), smrInvoked, ++_timerSeq);
        _outstanding[nonce] = p;
        _outstandingByEid[key] = nonce;
        return Send(p, now);
    }

    private IReadOnlyList<ControlAction> Send(Pending p, DateTimeOffset now)
    {
        var resolver = p.Resolvers[p.Transmissions % p.Resolvers.Count];
        p.LastResolver = resolver;
        var request = new MapRequest
        {
            Nonce = p.Nonce, SmrInvoked = p.SmrInvoked, SourceEid = _options.SourceEid ?? NoAddress.Instance,
            ItrRlocs = _options.Rlocs.Select(a => (LispAddress)new IpAddress(a)).ToList(), Records = [p.Eid],
        };
        var source = _options.Rlocs.FirstOrDefault(a => a.AddressFamily == resolver.AddressFamily) ?? _options.Rlocs[0];
        IPAddress dest = Util.Ip(p.Eid.Inner) is { } e && e.AddressFamily == source.AddressFamily ? e
            : resolver.Address.AddressFamily == source.AddressFamily ? resolver.Address : source;
        var bytes = Util.Ecm(request, source, dest, _options.ControlPort);
        double factor = Math.Pow(2, p.Transmissions);
        p.Transmissions++;
        p.Deadline = now + _options.InitialRetransmit * factor;
        _outstandingTimers.Push(p, p.Deadline);
        if (_outstandingTimers.NeedsRebuild(_outstanding.Count))
        {
            _outstandingTimers.Clear();
            foreach (var o in _outstanding.Values) _outstandingTimers.Push(o, o.Deadline);
        }
        if (p.Transmissions == 1) _counters.Count(ControlEvent.MapRequestSent);
        else _counters.Count(ControlEvent.MapRequestRetransmitted);
        return
        [
            new SendAction(resolver, bytes),
            new LogAction(p.Transmissions == 1 ? LogLevel.Debug : LogLevel.Info, p.Transmissions == 1 ? "map-request-sent" : "map-request-retransmit",
                $"Map-Request for {p.Eid} to map-resolver {resolver}, nonce {Util.Hex(p.Nonce)}, send {p.Transmissions}{(p.SmrInvoked ? " (SMR-invoked)" : "")}"),
        ];
    }

    /// <summary>Stores a waiting request (new or changed) and schedules its next try.</summary>
    private void SetWaiting(Waiting w)
    {
        _waiting[w.Key] = w;
        _waitingTimers.Push(w, w.NextAt);
        if (_waitingTimers.NeedsRebuild(_waiting.Count))
        {
            _waitingTimers.Clear();
            foreach (var held in _waiting.Values) _waitingTimers.Push(held, held.NextAt);
        }
    }

    /// <summary>Installs the records of a Map-Reply whose nonce matches a request in flight.</summary>
    public IReadOnlyList<ControlAction> HandleMapReply(MapReply reply, ReceivedPacket packet, DateTimeOffset now)
    {
        if (reply.Probe) return HandleProbeReply(reply, packet, now);
        if (!_outstanding.TryGetValue(reply.Nonce, out var p))
        {
            _counters.Drop(DropReason.StaleNonce);
            return [new LogAction(LogLevel.Debug, "map-reply-dropped",
                $"{(reply.Probe ? "RLOC-probe reply" : "Map-Reply")} nonce {Util.Hex(reply.Nonce)} from {packet.From} matches no request in flight")];
        }
        if (reply.Records.Count == 0)
        {
            _counters.Drop(DropReason.NoRecords);
            return [new LogAction(LogLevel.Warning, "map-reply-dropped", $"Map-Reply nonce {Util.Hex(reply.Nonce)} from {packet.From} has no records")];
        }
        _outstanding.Remove(p.Nonce);
        _outstandingByEid.Remove(p.Key);
        var actions = new List<ControlAction>();
        foreach (var r in reply.Records)
        {
            var eid = r.Eid.Canonical();
            if (!eid.Covers(p.Eid) && !p.Eid.Covers(eid))
            {
                _counters.Drop(DropReason.UnrequestedRecord);
                actions.Add(new LogAction(LogLevel.Warning, "map-reply-record-dropped", $"Map-Reply from {packet.From} for {p.Eid} carries unrelated {eid}"));
                continue;
            }
            var key = Tables.EidKey.From(eid);
            ReleaseGleaned(eid, actions); // ItrGleaning.cs: the mapping system's answer replaces gleaned entries under it
            if (r.Ttl <= TimeSpan.Zero) // TTL 0 (in minutes, or lispers.net's seconds form): remove
            {
                if (Uncache(key))
                {
                    actions.Add(new MapCacheChanged(eid, null));
                    actions.Add(new LogAction(LogLevel.Info, "map-cache-remove", $"{eid} removed (TTL 0 from {packet.From})"));
                }
                continue;
            }
            if (!_cache.ContainsKey(key) && _cache.Count >= _options.MaxCacheEntries)
            {
                _counters.Drop(DropReason.MapCacheFull);
                actions.Add(new LogAction(LogLevel.Warning, "map-cache-full", $"{eid} not installed: map-cache holds {_cache.Count} entries"));
                continue;
            }
            // TTL ceiling (issue 12 finding 6): 0xffffffff minutes would pin a mapping for 8,000 years.
            var ttl = r.Ttl;
            string capped = "";
            if (ttl > _options.MaxTtl)
            {
                _counters.Count(ControlEvent.TtlCapped);
                capped = $" (capped from {r.Ttl.TotalMinutes:0.##} min)";
                ttl = _options.MaxTtl;
            }
            var entry = Cache(key, new MapCacheEntry(eid, r.Locators, r.Action, now, now + ttl, packet.From, r.Authoritative, r.MapVersion), now);
            _counters.Count(ControlEvent.MapCacheInstalled);
            actions.Add(new MapCacheChanged(eid, entry));
            actions.Add(new LogAction(LogLevel.Info, "map-cache-install", entry.IsNegative
                ? $"{eid} negative ({r.Action}), TTL {ttl.TotalMinutes:0.##} min{capped}, from {packet.From}"
                : $"{eid} -> {string.Join(", ", r.Locators.Select(l => $"{l.Locator.ToText()} p{l.Priority} w{l.Weight}"))}, TTL {ttl.TotalMinutes:0.##} min{capped}, from {packet.From}"));
        }
        return actions;
    }

    /// <summary>
    /// An SMR (Map-Request with the S bit) from an ETR: when we cache an EID it names (its records, else its
    /// source EID), re-request that entry with the s bit. SMRs for what we do not cache are dropped.
    /// </summary>
    public IReadOnlyList<ControlAction> HandleSmr(MapRequest smr, ReceivedPacket packet, DateTimeOffset now)
    {
        var candidates = new List<EidPrefix>(smr.Records);
        if (smr.SourceEid is not NoAddress)
        {
            var inner = smr.SourceEid is InstanceIdAddress i ? i.Address : smr.SourceEid;
            int ml = smr.SourceEid is MulticastInfoAddress m ? m.GroupMaskLength : inner.HostMaskLength;
            candidates.Add(new EidPrefix(smr.SourceEid, (byte)ml));
        }
        foreach (var c in candidates)
        {
            if (TryLookup(c, now, out var entry) && entry is not null)
            {
                _counters.Count(ControlEvent.SmrHonoured);
                var actions = new List<ControlAction>
                {
                    new LogAction(LogLevel.Info, "smr-received", $"SMR from {packet.From} for {c}: re-requesting {entry.Eid}"),
                };
                actions.AddRange(Request(entry.Eid, now, smrInvoked: true));
                return actions;
            }
        }
        _counters.Drop(DropReason.SmrNotCached);
        return [new LogAction(LogLevel.Debug, "smr-dropped", $"SMR from {packet.From} for {(candidates.Count > 0 ? candidates[0].ToString() : "nothing")}: not in the map-cache")];
    }

    /// <summary>Retransmits timed-out requests (next resolver, doubled timeout), gives up after the last try, expires entries.</summary>
    public IReadOnlyList<ControlAction> Tick(DateTimeOffset now)
    {
        var actions = new List<ControlAction>();
        // Only the due timers are touched (popped from the heaps), served in creation order.
        _dueWaiting.Clear();
        _waitingTimers.PopDue(now, _dueWaiting);
        if (_dueWaiting.Count > 1) _dueWaiting.Sort(static (a, b) => a.Seq.CompareTo(b.Seq));
        foreach (var w in _dueWaiting)
        {
            var key = w.Key;
            if (now - w.Since >= _options.NoResolverGiveUp)
            {
                _waiting.Remove(key);
                actions.Add(new LogAction(LogLevel.Warning, "map-request-dropped",
                    $"Map-Request for {w.Eid}: {_mappingSystem.Name} named no map-resolver within {_options.NoResolverGiveUp.TotalSeconds:0}s"));
                continue;
            }
            SetWaiting(w with { NextAt = now + _options.NoResolverRetry });
            actions.AddRange(Request(w.Eid, now, w.SmrInvoked));
        }
        _dueWaiting.Clear();
        _dueOutstanding.Clear();
        _outstandingTimers.PopDue(now, _dueOutstanding);
        if (_dueOutstanding.Count > 1) _dueOutstanding.Sort(static (a, b) => a.Seq.CompareTo(b.Seq));
        for (int i = 0; i < _dueOutstanding.Count; i++)
        {
            var p = _dueOutstanding[i];
            if (i > 0 && ReferenceEquals(p, _dueOutstanding[i - 1])) continue; // two live items for one deadline (zero retransmit time)
            if (p.Transmissions >= _options.MaxTransmissions)
            {
                _outstanding.Remove(p.Nonce);
                _outstandingByEid.Remove(p.Key);
                _counters.Count(ControlEvent.MapRequestTimedOut);
                actions.Add(new LogAction(LogLevel.Warning, "map-request-timeout",
                    $"Map-Request for {p.Eid}: no Map-Reply after {p.Transmissions} sends (last to {p.LastResolver})"));
                continue;
            }
            actions.AddRange(Send(p, now));
        }
        _dueOutstanding.Clear();
        foreach (var key in _cache.Due(now))
        {
            var e = _cache[key];
            Uncache(key);
            _counters.Count(ControlEvent.MapCacheExpired);
            actions.Add(new MapCacheChanged(e.Eid, null));
            actions.Add(new LogAction(LogLevel.Info, "map-cache-expire", $"{e.Eid} expired (TTL {e.Ttl.TotalMinutes:0.##} min)"));
        }
        TickProbes(now, actions);
        return actions;
    }

    /// <summary>Removes every entry (e.g. `clear map-cache`).</summary>
    public IReadOnlyList<ControlAction> Clear()
    {
        var actions = _cache.Values.Select(e => (ControlAction)new MapCacheChanged(e.Eid, null)).ToList();
        _cache.Clear();
        ClearProbes();
        ClearGleaned();
        return actions;
    }
}
