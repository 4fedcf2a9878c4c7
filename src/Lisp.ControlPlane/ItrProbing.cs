using System.Globalization;
using System.Net;
using Lisp.Wire;

namespace Lisp.ControlPlane;

/// <summary>What RLOC-probing knows of one RLOC.</summary>
public enum RlocReachability
{
    /// <summary>Not answered yet (and not timed out): the locators keep the R bit of the Map-Reply.</summary>
    Unknown,
    Up,
    Down,
}

/// <summary>One probed RLOC, for `show`.</summary>
public sealed record RlocProbeStatus(IPAddress Rloc, RlocReachability State, TimeSpan? LastRtt, DateTimeOffset? LastReply,
    DateTimeOffset NextProbe, int Entries);

/// <summary>RLOC-probe counts of one ITR (written by the control thread, readable from any).</summary>
public sealed class RlocProbeCounters
{
    private long _sent, _accepted, _unexpected, _up, _down, _deferred, _notProbed;

    /// <summary>Probe Map-Requests sent.</summary>
    public long Sent => Volatile.Read(ref _sent);
    /// <summary>Probe replies that matched an outstanding probe (nonce and source).</summary>
    public long RepliesAccepted => Volatile.Read(ref _accepted);
    /// <summary>Probe replies dropped: unknown nonce, or a known nonce from another source.</summary>
    public long RepliesUnexpected => Volatile.Read(ref _unexpected);
    /// <summary>Transitions to <see cref="RlocReachability.Up"/>.</summary>
    public long RlocUp => Volatile.Read(ref _up);
    /// <summary>Transitions to <see cref="RlocReachability.Down"/>.</summary>
    public long RlocDown => Volatile.Read(ref _down);

    /// <summary>Due probes deferred to a later slot because the probe budget was spent (issue 12 finding 3); once per deferral.</summary>
    public long Deferred => Volatile.Read(ref _deferred);
    /// <summary>Locators of installed entries left unprobed by the per-record cap (<see cref="ItrOptions.MaxProbedLocatorsPerRecord"/>), per install.</summary>
    public long LocatorsNotProbed => Volatile.Read(ref _notProbed);

    internal void CountDeferred() => Interlocked.Increment(ref _deferred);
    internal void CountNotProbed(int n) => Interlocked.Add(ref _notProbed, n);
    internal void CountSent() => Interlocked.Increment(ref _sent);
    internal void CountAccepted() => Interlocked.Increment(ref _accepted);
    internal void CountUnexpected() => Interlocked.Increment(ref _unexpected);
    internal void CountUp() => Interlocked.Increment(ref _up);
    internal void CountDown() => Interlocked.Increment(ref _down);
}

/// <summary>
/// RLOC-probing (RFC 9301 section 7.1): every IP locator of a cached positive entry is probed, once per
/// <see cref="ItrOptions.ProbeInterval"/> (jittered) however many entries share it, with a Map-Request with
/// the P bit, a fresh nonce, one of the entries' EID as its record and our RLOCs as ITR-RLOCs, sent directly
/// (no ECM) to the RLOC's control port. A Map-Reply with the P bit, the nonce of an outstanding probe and the
/// probed RLOC as source marks it up and records the round-trip time; no such reply for
/// <see cref="ItrOptions.EffectiveProbeTimeout"/> after the first unanswered probe marks it down. Each change
/// rewrites the Reachable flag of that locator in every entry holding it (a <see cref="MapCacheChanged"/>
/// per entry, so the data plane and <see cref="MapCacheEntry.BestLocators"/> skip it) and logs rloc-up /
/// rloc-down. Entries installed later take the known state of their RLOCs. Probing keeps going while an
/// RLOC is down (that is how it comes back) and stops when no live entry holds it any more.
/// </summary>
public sealed partial class Itr
{
    /// <summary>Probes kept answerable per RLOC (older unanswered ones are forgotten).</summary>
    private const int MaxProbeNoncesPerRloc = 8;

    private readonly Dictionary<IPAddress, RlocProbe> _probes = new();
    private readonly Dictionary<ulong, ProbeSent> _probeNonces = new();
    private readonly RlocProbeCounters _probeCounters = new();
    // Two timers per probed RLOC (issue 10): its next probe, and while probes go unanswered (and it is not down
    // yet) the moment it is marked down. Lazily invalidated like the other ITR timers (Tables.TimerHeap).
    private readonly Tables.TimerHeap<ProbeTimer> _probeTimers;
    private readonly List<ProbeTimer> _dueProbeTimers = [];

    private sealed record ProbeSent(IPAddress Rloc, DateTimeOffset SentAt);

    /// <summary>A probe timer: <see cref="RlocProbe.NextProbeAt"/>, or (<paramref name="Down"/>) the down-marking deadline.</summary>
    private readonly record struct ProbeTimer(RlocProbe Probe, bool Down);

    private sealed class RlocProbe(IPAddress address, DateTimeOffset nextProbeAt)
    {
        public IPAddress Address { get; } = address;
        public HashSet<Tables.EidKey> EntryKeys { get; } = new();
        public List<ulong> Nonces { get; } = [];
        public RlocReachability State { get; set; }
        public DateTimeOffset NextProbeAt { get; set; } = nextProbeAt;
        /// <summary>When the first probe since the last reply went out; null while nothing is unanswered.</summary>
        public DateTimeOffset? SilentSince { get; set; }
        public DateTimeOffset? LastReplyAt { get; set; }
        public TimeSpan? Rtt { get; set; }
        /// <summary>NextProbeAt is a slot this probe was deferred to by the budget (it goes first then).</summary>
        public bool Deferred { get; set; }
    }

    // The probe budget (ItrOptions.ProbeBudgetPerSecond): the send times of the last `budget` probes (a ring: a probe
    // goes out only when the oldest of them is at least a second old, so no one-second window holds more than the
    // budget), a GCRA pacer (one probe per 1/budget, bursts of at most a tenth of the budget), and the last slot a
    // deferred probe was given (deferred probes are served in order, ahead of probes that come due later).
    private readonly DateTimeOffset[] _probeLog;
    private int _probeLogHead, _probeLogCount;
    private DateTimeOffset _probeTat = DateTimeOffset.MinValue;
    private DateTimeOffset _probeDeferSlot = DateTimeOffset.MinValue;

    private bool ProbeBudgeted => _probeLog.Length > 0;
    private TimeSpan ProbeSpacing => TimeSpan.FromTicks(Math.Max(1, TimeSpan.TicksPerSecond / _probeLog.Length));
    private TimeSpan ProbeBurstTolerance => ProbeSpacing * (Math.Max(1, _probeLog.Length / 10) - 1);

    /// <summary>The earliest moment the budget lets a probe go (now or later).</summary>
    private DateTimeOffset EarliestProbeSlot(DateTimeOffset now)
    {
        var at = now;
        if (_probeLogCount == _probeLog.Length && _probeLog[_probeLogHead] + TimeSpan.FromSeconds(1) > at) at = _probeLog[_probeLogHead] + TimeSpan.FromSeconds(1);
        if (_probeTat != DateTimeOffset.MinValue && _probeTat - ProbeBurstTolerance > at) at = _probeTat - ProbeBurstTolerance;
        return at;
    }

    private void SpendProbeBudget(DateTimeOffset now)
    {
        if (_probeLogCount < _probeLog.Length) _probeLog[(_probeLogHead + _probeLogCount++) % _probeLog.Length] = now;
        else
        {
            _probeLog[_probeLogHead] = now;
            _probeLogHead = (_probeLogHead + 1) % _probeLog.Length;
        }
        _probeTat = (_probeTat > now ? _probeTat : now) + ProbeSpacing;
    }

    /// <summary>Moves a due probe the budget holds back to the next free slot (after the slots of earlier deferred probes).</summary>
    private void DeferProbe(RlocProbe p, DateTimeOffset now)
    {
        var slot = EarliestProbeSlot(now);
        if (_probeDeferSlot != DateTimeOffset.MinValue && _probeDeferSlot + ProbeSpacing > slot) slot = _probeDeferSlot + ProbeSpacing;
        _probeDeferSlot = slot;
        p.NextProbeAt = slot;
        p.Deferred = true;
        _probeCounters.CountDeferred();
        _counters.Count(ControlEvent.RlocProbeDeferred);
        ScheduleProbe(p, next: true, down: false);
    }

    private bool ProbingEnabled => _options.ProbeInterval > TimeSpan.Zero;

    public RlocProbeCounters ProbeCounters => _probeCounters;

    /// <summary>Every probed RLOC, ordered by address text.</summary>
    public IReadOnlyList<RlocProbeStatus> RlocProbes =>
        _probes.Values.OrderBy(p => p.Address.ToString(), StringComparer.Ordinal)
            .Select(p => new RlocProbeStatus(p.Address, p.State, p.Rtt, p.LastReplyAt, p.NextProbeAt, p.EntryKeys.Count)).ToList();

    /// <summary>What probing knows of <paramref name="rloc"/> (Unknown when it is not probed).</summary>
    public RlocReachability ReachabilityOf(IPAddress rloc) =>
        _probes.TryGetValue(Normalize(rloc), out var p) ? p.State : RlocReachability.Unknown;

    /// <summary>The earliest probe or down-marking deadline: the head of the probe timer heap (O(1) amortized).</summary>
    private DateTimeOffset? NextProbeDeadline => _probeTimers.Next;

    /// <summary>When a silent RLOC is marked down; null while it is answered (or already down).</summary>
    private DateTimeOffset? DownDeadline(RlocProbe p) =>
        p.SilentSince is { } s && p.State != RlocReachability.Down ? s + _options.EffectiveProbeTimeout : null;

    /// <summary>A probe timer is live while its RLOC is still probed (the same object) and the deadline is still its current one.</summary>
    private bool IsLiveProbeTimer(ProbeTimer t, DateTimeOffset at) =>
        _probes.TryGetValue(t.Probe.Address, out var held) && ReferenceEquals(held, t.Probe)
        && (t.Down ? DownDeadline(t.Probe) == at : t.Probe.NextProbeAt == at);

    /// <summary>Schedules the probe's current deadlines (call after setting NextProbeAt and/or SilentSince).</summary>
    private void ScheduleProbe(RlocProbe p, bool next, bool down)
    {
        if (next) _probeTimers.Push(new ProbeTimer(p, false), p.NextProbeAt);
        if (down && DownDeadline(p) is { } d) _probeTimers.Push(new ProbeTimer(p, true), d);
        if (!_probeTimers.NeedsRebuild(2 * _probes.Count)) return;
        _probeTimers.Clear();
        foreach (var held in _probes.Values)
        {
            _probeTimers.Push(new ProbeTimer(held, false), held.NextProbeAt);
            if (DownDeadline(held) is { } hd) _probeTimers.Push(new ProbeTimer(held, true), hd);
        }
    }

    /// <summary>
    /// Stores <paramref name="entry"/> under <paramref name="key"/> with the known state of its RLOCs applied
    /// (a refreshed entry keeps its RLOCs' probe state); returns what was stored.
    /// </summary>
    private MapCacheEntry Cache(Tables.EidKey key, MapCacheEntry entry, DateTimeOffset now)
    {
        HashSet<IPAddress> kept = [];
        if (ProbingEnabled && !entry.IsNegative)
        {
            var probed = ProbedAddresses(entry);
            var locators = entry.Locators.Select(l => ProbeAddress(l) is { } a && probed.Contains(a) && _probes.TryGetValue(a, out var p) && p.State != RlocReachability.Unknown
                ? l with { Reachable = p.State == RlocReachability.Up } : l).ToList();
            if (!locators.SequenceEqual(entry.Locators)) entry = entry with { Locators = locators };
            foreach (var a in probed)
            {
                if (!_probes.TryGetValue(a, out var p))
                {
                    _probes[a] = p = new RlocProbe(a, now); // first probe at the next Tick
                    ScheduleProbe(p, next: true, down: false);
                }
                p.EntryKeys.Add(key);
                kept.Add(a);
            }
        }
        if (_cache.TryGetValue(key, out var old)) Unindex(key, old, kept);
        _cache[key] = entry;
        return entry;
    }

    /// <summary>
    /// The addresses of <paramref name="entry"/> that are probed: its probe-able locators by priority (lowest first),
    /// then weight (highest first), at most <see cref="ItrOptions.MaxProbedLocatorsPerRecord"/> of them; the
    /// others are counted (<see cref="RlocProbeCounters.LocatorsNotProbed"/>).
    /// </summary>
    private HashSet<IPAddress> ProbedAddresses(MapCacheEntry entry)
    {
        HashSet<IPAddress> result = [];
        int skipped = 0;
        foreach (var l in entry.Locators.OrderBy(l => l.Priority).ThenByDescending(l => l.Weight))
        {
            if (ProbeAddress(l) is not { } a || result.Contains(a)) continue;
            if (result.Count >= _options.MaxProbedLocatorsPerRecord) skipped++;
            else result.Add(a);
        }
        if (skipped > 0)
        {
            _probeCounters.CountNotProbed(skipped);
            _counters.Count(ControlEvent.RlocProbeLocatorNotProbed, skipped);
        }
        return result;
    }

    /// <summary>Removes the entry under <paramref name="key"/>; its RLOCs that no other entry holds stop being probed.</summary>
    private bool Uncache(Tables.EidKey key)
    {
        if (!_cache.Remove(key, out var old)) return false;
        Unindex(key, old, null);
        ForgetGleaned(key); // ItrGleaning.cs: a gleaned entry that goes stops counting as gleaned
        return true;
    }

    private void Unindex(Tables.EidKey key, MapCacheEntry entry, HashSet<IPAddress>? kept)
    {
        foreach (var l in entry.Locators)
        {
            if (ProbeAddress(l) is not { } a || kept?.Contains(a) == true || !_probes.TryGetValue(a, out var p)) continue;
            p.EntryKeys.Remove(key);
            if (p.EntryKeys.Count > 0) continue;
            foreach (var n in p.Nonces) _probeNonces.Remove(n);
            _probes.Remove(a);
        }
    }

    private void ClearProbes()
    {
        _probeDeferSlot = DateTimeOffset.MinValue;
        _probes.Clear();
        _probeNonces.Clear();
        _probeTimers.Clear();
    }

    /// <summary>The address to probe for a locator: an IP locator of a family we have an RLOC of.</summary>
    private IPAddress? ProbeAddress(LocatorRecord locator)
    {
        if (Util.Ip(locator.Locator) is not { } a) return null;
        a = Normalize(a);
        return _options.Rlocs.Any(r => r.AddressFamily == a.AddressFamily) ? a : null;
    }

    private static IPAddress Normalize(IPAddress a) => a.IsIPv4MappedToIPv6 ? a.MapToIPv4() : a;

    /// <summary>
    /// Marks silent RLOCs down, then sends the probes that are due (after expiry, so expired entries are not probed).
    /// Only the RLOCs with a due timer are looked at, in address-text order (sorting just those).
    /// </summary>
    private void TickProbes(DateTimeOffset now, List<ControlAction> actions)
    {
        if (!ProbingEnabled || _probes.Count == 0) return;
        _dueProbeTimers.Clear();
        _probeTimers.PopDue(now, _dueProbeTimers);
        if (_dueProbeTimers.Count == 0) return;
        var due = _dueProbeTimers.Select(t => t.Probe).Distinct().OrderBy(p => p.Address.ToString(), StringComparer.Ordinal).ToList();
        _dueProbeTimers.Clear();
        var timeout = _options.EffectiveProbeTimeout;
        foreach (var p in due)
        {
            if (p.SilentSince is { } s && p.State != RlocReachability.Down && now - s >= timeout)
            {
                int changed = SetReachability(p, RlocReachability.Down, actions);
                _probeCounters.CountDown();
                actions.Add(new LogAction(LogLevel.Warning, "rloc-down",
                    $"RLOC {p.Address} unreachable: no RLOC-probe reply for {Seconds(now - s)} s (last RTT {Ms(p.Rtt)}); {changed} map-cache entr{(changed == 1 ? "y" : "ies")} updated"));
            }
            if (p.NextProbeAt > now) continue;
            if (!ProbeBudgeted) SendProbe(p, now, actions);
            // A deferred probe goes at its slot; one that just came due waits behind the deferred ones.
            else if ((p.Deferred || _probeDeferSlot <= now) && EarliestProbeSlot(now) <= now)
            {
                p.Deferred = false;
                SpendProbeBudget(now);
                SendProbe(p, now, actions);
            }
            else DeferProbe(p, now);
        }
    }

    private void SendProbe(RlocProbe p, DateTimeOffset now, List<ControlAction> actions)
    {
        var source = _options.Rlocs.First(r => r.AddressFamily == p.Address.AddressFamily);
        var eid = _cache[p.EntryKeys.First()].Eid;
        // Forget probes too old to be answered usefully, and keep the list short.
        var horizon = now - _options.EffectiveProbeTimeout - _options.ProbeInterval;
        foreach (var n in p.Nonces.ToList())
        {
            if (_probeNonces.TryGetValue(n, out var sent) && sent.SentAt >= horizon) continue;
            _probeNonces.Remove(n);
            p.Nonces.Remove(n);
        }
        while (p.Nonces.Count >= MaxProbeNoncesPerRloc)
        {
            _probeNonces.Remove(p.Nonces[0]);
            p.Nonces.RemoveAt(0);
        }
        ulong nonce;
        do nonce = Util.Nonce(_random); while (_probeNonces.ContainsKey(nonce) || _outstanding.ContainsKey(nonce));
        _probeNonces[nonce] = new ProbeSent(p.Address, now);
        p.Nonces.Add(nonce);
        bool newlySilent = p.SilentSince is null;
        p.SilentSince ??= now;
        double factor = 1 + _options.ProbeJitter * (2 * _random.NextDouble() - 1);
        p.NextProbeAt = now + _options.ProbeInterval * factor;
        ScheduleProbe(p, next: true, down: newlySilent);
        var request = new MapRequest
        {
            Probe = true, Nonce = nonce, SourceEid = _options.SourceEid ?? NoAddress.Instance,
            ItrRlocs = _options.Rlocs.Select(a => (LispAddress)new IpAddress(a)).ToList(), Records = [eid],
        };
        _probeCounters.CountSent();
        actions.Add(new SendAction(new IPEndPoint(p.Address, _options.ControlPort), request.ToBytes(), new IPEndPoint(source, _options.ControlPort)));
        actions.Add(new LogAction(LogLevel.Debug, "rloc-probe-sent", $"RLOC-probe to {p.Address} for {eid}, nonce {Util.Hex(nonce)} ({p.State})"));
    }

    /// <summary>A Map-Reply with the P bit: accepted only with the nonce of an outstanding probe, from the probed RLOC.</summary>
    private IReadOnlyList<ControlAction> HandleProbeReply(MapReply reply, ReceivedPacket packet, DateTimeOffset now)
    {
        var from = Normalize(packet.From.Address);
        if (!_probeNonces.TryGetValue(reply.Nonce, out var sent) || !sent.Rloc.Equals(from) || !_probes.TryGetValue(sent.Rloc, out var p))
        {
            _probeCounters.CountUnexpected();
            _counters.Drop(DropReason.StaleNonce);
            string why = sent is null ? "matches no RLOC-probe in flight" : $"belongs to the probe of {sent.Rloc}";
            return [new LogAction(LogLevel.Debug, "rloc-probe-reply-dropped", $"RLOC-probe reply nonce {Util.Hex(reply.Nonce)} from {packet.From} {why}")];
        }
        _probeNonces.Remove(reply.Nonce);
        p.Nonces.Remove(reply.Nonce);
        var rtt = now - sent.SentAt;
        p.Rtt = rtt;
        p.LastReplyAt = now;
        p.SilentSince = null;
        _probeCounters.CountAccepted();
        var actions = new List<ControlAction>();
        if (p.State == RlocReachability.Up)
        {
            actions.Add(new LogAction(LogLevel.Debug, "rloc-probe-reply", $"RLOC-probe reply from {p.Address}, RTT {Ms(rtt)}"));
            return actions;
        }
        var before = p.State;
        int changed = SetReachability(p, RlocReachability.Up, actions);
        _probeCounters.CountUp();
        actions.Add(new LogAction(LogLevel.Info, "rloc-up",
            $"RLOC {p.Address} reachable{(before == RlocReachability.Down ? " again" : "")}, RTT {Ms(rtt)}; {changed} map-cache entr{(changed == 1 ? "y" : "ies")} updated"));
        return actions;
    }

    /// <summary>Sets the state and rewrites the locator's Reachable flag in each entry holding it; returns how many entries changed.</summary>
    private int SetReachability(RlocProbe p, RlocReachability state, List<ControlAction> actions)
    {
        p.State = state;
        bool reachable = state == RlocReachability.Up;
        int changed = 0;
        foreach (var key in p.EntryKeys)
        {
            var entry = _cache[key];
            bool any = false;
            var locators = entry.Locators.Select(l =>
            {
                if (l.Reachable == reachable || ProbeAddress(l) is not { } a || !a.Equals(p.Address)) return l;
                any = true;
                return l with { Reachable = reachable };
            }).ToList();
            if (!any) continue;
            var updated = entry with { Locators = locators };
            _cache[key] = updated;
            actions.Add(new MapCacheChanged(updated.Eid, updated));
            changed++;
        }
        return changed;
    }

    private static string Ms(TimeSpan? t) => t is { } v ? v.TotalMilliseconds.ToString("0.###", CultureInfo.InvariantCulture) + " ms" : "none";

    private static string Seconds(TimeSpan t) => t.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture);
}
