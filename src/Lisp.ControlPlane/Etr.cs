using System.Net;
using System.Text;
using Lisp.Wire;

namespace Lisp.ControlPlane;

/// <summary>One database mapping of an ETR: an EID-prefix it serves and the RLOCs (priority/weight) to reach it.</summary>
/// <summary>A mapping this ETR serves; <paramref name="MapVersion"/> (RFC 9302, 0 = none) goes into every record it sends for it.</summary>
public sealed record DatabaseMapping(EidPrefix Eid, IReadOnlyList<LocatorRecord> Rlocs, ushort MapVersion = 0);

/// <summary>ETR settings; defaults are lispers.net's (spec/wire.md, spec/decent.md "Timers").</summary>
public sealed record EtrOptions
{
    public IReadOnlyList<DatabaseMapping> Database { get; init; } = [];
    /// <summary>Shared key of the site at the map-servers (UTF-8 bytes are the HMAC key).</summary>
    public string Key { get; init; } = "";
    public AuthAlgorithm Algorithm { get; init; } = AuthAlgorithm.HmacSha256_128;
    public byte KeyId { get; init; }
    /// <summary>Map-Register period (first one at the first <see cref="Etr.Tick"/>).</summary>
    public TimeSpan RegisterInterval { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>Each period is the interval times a uniform factor in [1 - j, 1 + j].</summary>
    public double RegisterJitter { get; init; } = 0.1;
    /// <summary>Record TTL in Map-Registers (the map-server's timeout when <see cref="UseTtlForTimeout"/>).</summary>
    public TimeSpan RecordTtl { get; init; } = TimeSpan.FromMinutes(3);
    /// <summary>M bit: ask the map-server for a Map-Notify.</summary>
    public bool WantMapNotify { get; init; } = true;
    /// <summary>P bit: ask the map-server to answer Map-Requests for us.</summary>
    public bool ProxyReply { get; init; }
    /// <summary>T bit (lispers.net): the map-server times the registration out after the record TTL.</summary>
    public bool UseTtlForTimeout { get; init; }
    /// <summary>xTR-ID (16 bytes) and site-ID sent with the I bit; null leaves the I bit clear.</summary>
    public byte[]? XtrId { get; init; }
    public ulong SiteId { get; init; }
    /// <summary>TTL of the records in our Map-Replies (lispers.net: 1440 minutes).</summary>
    public TimeSpan MapReplyTtl { get; init; } = TimeSpan.FromMinutes(1440);
    /// <summary>Retry period while the mapping system names no map-server for some EID (DNS not answered yet).</summary>
    public TimeSpan NoMapServerRetry { get; init; } = TimeSpan.FromSeconds(5);
    /// <summary>Largest Map-Register we build; more records are split over several messages.</summary>
    public int MaxRegisterBytes { get; init; } = 1200;
    /// <summary>ITRs remembered (bounded, oldest dropped) to send SMRs to when the database changes.</summary>
    public int SmrRequesterLimit { get; init; } = 128;
    /// <summary>How long an ITR that asked counts as "recent" for SMRs.</summary>
    public TimeSpan SmrRequesterWindow { get; init; } = TimeSpan.FromMinutes(10);
}

/// <summary>Where one EID stands with one map-server, for `show`.</summary>
public sealed record EtrRegistrationState(IPEndPoint MapServer, EidPrefix Eid, DateTimeOffset LastSent, DateTimeOffset? LastNotified);

/// <summary>An ITR that recently asked this ETR for an EID (an SMR target).</summary>
public sealed record RecentRequester(IPEndPoint Itr, EidPrefix Eid, DateTimeOffset At);

/// <summary>
/// ETR (RFC 9301 sections 4.1, 6.1, 8.2): registers its database mappings with every map-server the mapping
/// system names for each EID (records grouped per map-server), at start and then periodically with jitter;
/// accepts a Map-Notify only when it authenticates and echoes the nonce and records of a Map-Register it
/// sent, and acknowledges it; answers Map-Requests (plain, RLOC-probe, or ECM-forwarded by a map-server)
/// for its EIDs; sends SMRs to recent requesters when its mappings change. Pure and single-threaded.
/// </summary>
public sealed class Etr
{
    private EtrOptions _options;
    private readonly IMappingSystem _mappingSystem;
    private readonly Random _random;
    private readonly ControlCounters _counters;
    private AuthenticationKey _key;   // prepared once: each Map-Register, Map-Notify and ack skips the HMAC key set-up
    private IReadOnlyList<DatabaseMapping> _database;
    private DateTimeOffset? _nextRegister;
    private readonly Dictionary<ulong, PendingRegister> _pending = new();
    private readonly Dictionary<(IPEndPoint, string), EtrRegistrationState> _state = new();
    private readonly List<RecentRequester> _requesters = [];

    private sealed record PendingRegister(IPEndPoint To, IReadOnlyList<MappingRecord> Records, DateTimeOffset SentAt)
    {
        public bool Acked { get; set; }
    }

    public Etr(EtrOptions options, IMappingSystem mappingSystem, Random? random = null, ControlCounters? counters = null)
    {
        if (options.Key.Length == 0 && options.Algorithm != AuthAlgorithm.None) throw new ArgumentException("an ETR needs the site key to register");
        if (options.XtrId is not null && options.XtrId.Length != 16) throw new ArgumentException("xTR-ID must be 16 bytes");
        _options = options;
        _mappingSystem = mappingSystem;
        _random = random ?? SecureRandom.Instance;
        _counters = counters ?? new ControlCounters();
        _key = new AuthenticationKey(Encoding.UTF8.GetBytes(options.Key));
        _database = options.Database;
    }

    public EtrOptions Options => _options;
    public ControlCounters Counters => _counters;
    public IReadOnlyList<DatabaseMapping> Database => _database;

    /// <summary>When the next Map-Register round is due (null before the first <see cref="Tick"/>: due now).</summary>
    public DateTimeOffset? NextDeadline => _nextRegister ?? DateTimeOffset.MinValue;

    /// <summary>Per (map-server, EID) registration state.</summary>
    public IReadOnlyList<EtrRegistrationState> RegistrationStates =>
        _state.Values.OrderBy(s => s.Eid.ToString(), StringComparer.Ordinal).ThenBy(s => s.MapServer.ToString(), StringComparer.Ordinal).ToList();

    public IReadOnlyList<RecentRequester> RecentRequesters => _requesters.ToList();

    /// <summary>The database mapping with the longest prefix covering <paramref name="eid"/>, or null.</summary>
    public DatabaseMapping? Find(EidPrefix eid)
    {
        var c = eid.Canonical();
        DatabaseMapping? best = null;
        foreach (var m in _database)
        {
            if (m.Eid.Canonical().Covers(c) && (best is null || m.Eid.MaskLength > best.Eid.MaskLength)) best = m;
        }
        return best;
    }

    /// <summary>Sends a Map-Register round when one is due.</summary>
    public IReadOnlyList<ControlAction> Tick(DateTimeOffset now)
    {
        if (_nextRegister is { } due && now < due) return [];
        return RegisterNow(now);
    }

    /// <summary>Sends Map-Registers for every mapping to every map-server now, and schedules the next round.</summary>
    public IReadOnlyList<ControlAction> RegisterNow(DateTimeOffset now)
    {
        var actions = new List<ControlAction>();
        foreach (var (n, p) in _pending.ToList())
        {
            if (now - p.SentAt > _options.RegisterInterval * 3) _pending.Remove(n);
        }
        var groups = new Dictionary<IPEndPoint, List<MappingRecord>>();
        var order = new List<IPEndPoint>();
        bool missing = false;
        uint ttl = MapServer.TtlMinutes(_options.RecordTtl);
        foreach (var m in _database)
        {
            var servers = _mappingSystem.MapServersFor(m.Eid);
            if (servers.Count == 0)
            {
                missing = true;
                actions.Add(new LogAction(LogLevel.Warning, "no-map-server", $"{_mappingSystem.Name} names no map-server for {m.Eid} yet; retrying"));
                continue;
            }
            var record = new MappingRecord(m.Eid, m.Rlocs, ttl, MapReplyAction.NoAction, Authoritative: true, MapVersion: m.MapVersion);
            foreach (var s in servers.Distinct())
            {
                if (!groups.TryGetValue(s, out var list))
                {
                    groups[s] = list = [];
                    order.Add(s);
                }
                list.Add(record);
            }
        }
        foreach (var server in order)
        {
            foreach (var chunk in Chunk(groups[server]))
            {
                ulong nonce = Util.Nonce(_random);
                var reg = new MapRegister
                {
                    ProxyReply = _options.ProxyReply, WantMapNotify = _options.WantMapNotify, UseTtlForTimeout = _options.UseTtlForTimeout,
                    Nonce = nonce, KeyId = _options.KeyId, Algorithm = _options.Algorithm, Records = chunk,
                    XtrId = _options.XtrId, SiteId = _options.XtrId is null ? 0 : _options.SiteId,
                };
                actions.Add(new SendAction(server, reg.ToSignedBytes(_key)));
                _pending[nonce] = new PendingRegister(server, chunk, now);
                foreach (var r in chunk)
                {
                    var key = (server, r.Eid.ToString());
                    _state[key] = _state.TryGetValue(key, out var st) ? st with { LastSent = now } : new EtrRegistrationState(server, r.Eid, now, null);
                }
                _counters.Count(ControlEvent.MapRegisterSent);
                actions.Add(new LogAction(LogLevel.Debug, "map-register-sent",
                    $"Map-Register nonce {Util.Hex(nonce)} to {server}: {Util.Records(chunk)}"));
            }
        }
        double factor = 1 + _options.RegisterJitter * (2 * _random.NextDouble() - 1);
        var next = now + _options.RegisterInterval * factor;
        if (missing && now + _options.NoMapServerRetry < next) next = now + _options.NoMapServerRetry;
        _nextRegister = next;
        return actions;
    }

    /// <summary>
    /// Leaves: one Map-Register with record TTL 0 for every mapping to every map-server (lispers.net's way of
    /// withdrawing, e.g. leaving a LISP-Decent push group), no Map-Notify asked. Periodic registering stops.
    /// </summary>
    public IReadOnlyList<ControlAction> Withdraw(DateTimeOffset now)
    {
        var actions = new List<ControlAction>();
        var groups = new Dictionary<IPEndPoint, List<MappingRecord>>();
        foreach (var m in _database)
        {
            foreach (var s in _mappingSystem.MapServersFor(m.Eid).Distinct())
            {
                if (!groups.TryGetValue(s, out var list)) groups[s] = list = [];
                list.Add(new MappingRecord(m.Eid, m.Rlocs, 0, MapReplyAction.NoAction, Authoritative: true, MapVersion: m.MapVersion));
            }
        }
        foreach (var (server, records) in groups)
        {
            foreach (var chunk in Chunk(records))
            {
                var reg = new MapRegister
                {
                    ProxyReply = _options.ProxyReply, Nonce = Util.Nonce(_random), KeyId = _options.KeyId, Algorithm = _options.Algorithm,
                    Records = chunk, XtrId = _options.XtrId, SiteId = _options.XtrId is null ? 0 : _options.SiteId,
                };
                actions.Add(new SendAction(server, reg.ToSignedBytes(_key)));
                _counters.Count(ControlEvent.MapRegisterSent);
                actions.Add(new LogAction(LogLevel.Info, "map-register-withdraw", $"Map-Register TTL 0 to {server}: {Util.Records(chunk)}"));
            }
        }
        _nextRegister = DateTimeOffset.MaxValue;
        return actions;
    }

    private IEnumerable<List<MappingRecord>> Chunk(List<MappingRecord> records)
    {
        int fixedPart = 16 + MessageAuthentication.FullLength(_options.Algorithm) + (_options.XtrId is null ? 0 : 24);
        var chunk = new List<MappingRecord>();
        int size = fixedPart;
        foreach (var r in records)
        {
            if (chunk.Count > 0 && (size + r.EncodedLength > _options.MaxRegisterBytes || chunk.Count == ControlMessage.MaxRecords))
            {
                yield return chunk;
                chunk = [];
                size = fixedPart;
            }
            chunk.Add(r);
            size += r.EncodedLength;
        }
        if (chunk.Count > 0) yield return chunk;
    }

    /// <summary>
    /// Accepts a Map-Notify that authenticates with our key and echoes the nonce and records of a Map-Register
    /// we sent; answers it with a Map-Notify-Ack. Anything else is counted and dropped.
    /// </summary>
    public IReadOnlyList<ControlAction> HandleMapNotify(MapNotify notify, ReceivedPacket packet, DateTimeOffset now)
    {
        if (notify.Algorithm == AuthAlgorithm.None || !MessageAuthentication.Verify(packet.Payload, _key))
        {
            _counters.Drop(DropReason.AuthFailure);
            return [new LogAction(LogLevel.Warning, "map-notify-rejected", $"Map-Notify nonce {Util.Hex(notify.Nonce)} from {packet.From}: authentication failed")];
        }
        if (!_pending.TryGetValue(notify.Nonce, out var pending))
        {
            // Unsolicited (no Map-Register of ours has its nonce): a map-server tells us something changed (a merged
            // registration, a push update). RFC 9301 section 5.7: authenticated, it is acknowledged with a
            // Map-Notify-Ack of the same nonce, and the map-server retransmits it until that Ack arrives.
            _counters.Count(ControlEvent.MapNotifyUnsolicited);
            return
            [
                new LogAction(LogLevel.Info, "map-notify-unsolicited", $"Map-Notify nonce {Util.Hex(notify.Nonce)} from {packet.From}: {Util.Records(notify.Records)}; acknowledged"),
                Ack(notify, packet),
            ];
        }
        if (!notify.Records.SequenceEqual(pending.Records))
        {
            _counters.Drop(DropReason.RecordMismatch);
            return [new LogAction(LogLevel.Warning, "map-notify-rejected",
                $"Map-Notify nonce {Util.Hex(notify.Nonce)} from {packet.From}: records ({Util.Records(notify.Records)}) differ from the Map-Register's ({Util.Records(pending.Records)})")];
        }
        if (notify.XtrIdTrailerWithoutIBit)
        {
            // lispers.net keeps the xTR-ID/site-ID of an I-bit Map-Register but clears the I bit: taken only when
            // the trailer is exactly what we registered with.
            if (_options.XtrId is null || notify.XtrId is null || !notify.XtrId.AsSpan().SequenceEqual(_options.XtrId) || notify.SiteId != _options.SiteId)
            {
                _counters.Drop(DropReason.XtrIdMismatch);
                return [new LogAction(LogLevel.Warning, "map-notify-rejected",
                    $"Map-Notify nonce {Util.Hex(notify.Nonce)} from {packet.From}: xTR-ID/site-ID trailer (I bit clear) is not the one we registered with")];
            }
            _counters.Count(ControlEvent.MapNotifyXtrIdWithoutIBit);
        }
        var actions = new List<ControlAction>();
        if (!pending.Acked)
        {
            pending.Acked = true;
            _counters.Count(ControlEvent.MapNotifyAccepted);
            foreach (var r in pending.Records)
            {
                var key = (pending.To, r.Eid.ToString());
                if (_state.TryGetValue(key, out var st)) _state[key] = st with { LastNotified = now };
            }
            actions.Add(new LogAction(LogLevel.Info, "map-notify-accepted",
                $"Map-Notify nonce {Util.Hex(notify.Nonce)} from {packet.From}: registered {Util.Records(pending.Records)}"));
        }
        // A Map-Notify answering our Map-Register (M bit) is the map-server's acknowledgement: it gets no Ack (RFC 9301
        // section 5.7; lispers.net and other map-servers neither expect nor retransmit it).
        return actions;
    }

    private SendAction Ack(MapNotify notify, ReceivedPacket packet)
    {
        var ack = new MapNotify
        {
            IsAck = true, Nonce = notify.Nonce, KeyId = notify.KeyId, Algorithm = notify.Algorithm,
            Records = notify.Records, XtrId = notify.XtrId, SiteId = notify.SiteId,
        };
        _counters.Count(ControlEvent.MapNotifyAckSent);
        return new SendAction(packet.From, ack.ToSignedBytes(_key), Util.FromFor(packet.Local, packet.From));
    }

    /// <summary>
    /// Answers a Map-Request for our EIDs: an RLOC-probe (P bit) gets a probe reply; an ECM-forwarded one
    /// (<paramref name="ecm"/> not null) is answered to an ITR-RLOC at the inner UDP source port, a plain one
    /// at the sender's port.
    /// </summary>
    public IReadOnlyList<ControlAction> HandleMapRequest(MapRequest request, EncapsulatedControlMessage? ecm, ReceivedPacket packet, DateTimeOffset now)
    {
        if (request.Records.Count == 0)
        {
            _counters.Drop(DropReason.NoRecords);
            return [new LogAction(LogLevel.Debug, "map-request-dropped", $"Map-Request from {packet.From} has no EID records")];
        }
        var records = new List<MappingRecord>();
        uint ttl = MapServer.TtlMinutes(_options.MapReplyTtl);
        foreach (var eid in request.Records)
        {
            var m = Find(eid);
            if (m is not null && !records.Any(r => r.Eid.SameKey(m.Eid)))
            {
                records.Add(new MappingRecord(m.Eid, m.Rlocs, ttl, MapReplyAction.NoAction, Authoritative: true, MapVersion: m.MapVersion));
            }
        }
        if (records.Count == 0)
        {
            _counters.Drop(DropReason.NotOurEid);
            return [new LogAction(LogLevel.Debug, "map-request-dropped", $"Map-Request from {packet.From} for {request.Records[0]}: not in our database")];
        }
        IPEndPoint to;
        if (ecm is not null)
        {
            if (!MapServer.TryReplyTarget(request, ecm, packet, out to))
            {
                _counters.Drop(DropReason.NoReplyPath);
                return [new LogAction(LogLevel.Warning, "map-request-dropped", $"Map-Request for {request.Records[0]}: no ITR-RLOC to answer to")];
            }
        }
        else
        {
            bool fromListed = request.ItrRlocs.Any(a => Util.Ip(a) is { } ip && ip.Equals(packet.From.Address));
            var addr = fromListed ? packet.From.Address : Util.ReplyAddress(request, packet.Local, packet.From.Address) ?? packet.From.Address;
            to = new IPEndPoint(addr, packet.From.Port);
        }
        Remember(to, request.Records[0], now);
        var reply = new MapReply { Probe = request.Probe, Nonce = request.Nonce, Records = records };
        _counters.Count(ControlEvent.MapReplySent);
        return
        [
            new SendAction(to, reply.ToBytes(), Util.FromFor(packet.Local, to)),
            new LogAction(LogLevel.Debug, request.Probe ? "rloc-probe-reply" : "map-reply-sent",
                $"{(request.Probe ? "RLOC-probe reply" : "Map-Reply")} for {request.Records[0]} ({Util.Records(records)}) to {to}, nonce {Util.Hex(request.Nonce)}"),
        ];
    }

    private void Remember(IPEndPoint itr, EidPrefix eid, DateTimeOffset now)
    {
        _requesters.RemoveAll(r => r.Itr.Equals(itr) && r.Eid.SameKey(eid));
        _requesters.Add(new RecentRequester(itr, eid, now));
        while (_requesters.Count > Math.Max(0, _options.SmrRequesterLimit)) _requesters.RemoveAt(0);
    }

    /// <summary>
    /// Config reload (SIGHUP): takes new options without withdrawing what stays. Mappings no longer in the database are
    /// withdrawn (a TTL-0 Map-Register to their map-servers, as at stop); the rest follow <see cref="UpdateDatabase"/>
    /// (SMRs and a register round when something appeared or changed, nothing sent for mappings that stayed the same).
    /// Key, algorithm, interval, TTLs and flags apply from the next Map-Register. Runs on the thread that owns the ETR.
    /// </summary>
    public IReadOnlyList<ControlAction> Reconfigure(EtrOptions options, DateTimeOffset now)
    {
        if (options.Key.Length == 0 && options.Algorithm != AuthAlgorithm.None) throw new ArgumentException("an ETR needs the site key to register");
        if (options.XtrId is not null && options.XtrId.Length != 16) throw new ArgumentException("xTR-ID must be 16 bytes");
        var actions = new List<ControlAction>();
        var removed = _database.Where(o => !options.Database.Any(m => m.Eid.SameKey(o.Eid))).ToList();
        if (removed.Count > 0)
        {
            // Withdrawn with the old key and settings: the map-servers registered them under those.
            var database = _database;
            var next = _nextRegister;
            _database = removed;
            actions.AddRange(Withdraw(now));
            _database = database;
            _nextRegister = next;
        }
        bool settingsChanged = options.Key != _options.Key || options.Algorithm != _options.Algorithm || options.KeyId != _options.KeyId ||
            options.RecordTtl != _options.RecordTtl || options.WantMapNotify != _options.WantMapNotify || options.ProxyReply != _options.ProxyReply ||
            options.UseTtlForTimeout != _options.UseTtlForTimeout || options.SiteId != _options.SiteId ||
            !(options.XtrId ?? []).AsSpan().SequenceEqual(_options.XtrId ?? []);
        if (options.Key != _options.Key) _key = new AuthenticationKey(Encoding.UTF8.GetBytes(options.Key));
        var interval = _options.RegisterInterval;
        _options = options;
        foreach (var m in removed)
        {
            foreach (var k in _state.Keys.Where(k => k.Item2 == m.Eid.ToString()).ToList()) _state.Remove(k);
        }
        var scheduled = _nextRegister;
        actions.AddRange(UpdateDatabase(options.Database, now));
        if (_nextRegister == scheduled)   // UpdateDatabase sent no register round (nothing appeared or changed)
        {
            // What the map-servers hold must carry the new settings soon: register now when they changed, and never
            // wait longer than the new interval.
            if (settingsChanged) actions.AddRange(RegisterNow(now));
            else if (options.RegisterInterval < interval && _nextRegister is { } due && due > now + options.RegisterInterval) _nextRegister = now + options.RegisterInterval;
        }
        return actions;
    }

    /// <summary>
    /// Replaces the database. For each mapping that appeared, disappeared or changed its RLOCs or Map-Version, sends an SMR
    /// (Map-Request with the S bit) to each ITR that asked about it within the window, and re-registers now.
    /// </summary>
    public IReadOnlyList<ControlAction> UpdateDatabase(IReadOnlyList<DatabaseMapping> database, DateTimeOffset now)
    {
        var old = _database;
        _database = database;
        var changed = new List<EidPrefix>();
        foreach (var m in database)
        {
            var o = old.FirstOrDefault(x => x.Eid.SameKey(m.Eid));
            if (o is null || !o.Rlocs.SequenceEqual(m.Rlocs) || o.MapVersion != m.MapVersion) changed.Add(m.Eid);
        }
        foreach (var o in old)
        {
            if (!database.Any(m => m.Eid.SameKey(o.Eid))) changed.Add(o.Eid);
        }
        var actions = new List<ControlAction>();
        _requesters.RemoveAll(r => now - r.At > _options.SmrRequesterWindow);
        foreach (var eid in changed)
        {
            var rlocs = (database.FirstOrDefault(m => m.Eid.SameKey(eid)) ?? old.First(m => m.Eid.SameKey(eid))).Rlocs
                .Select(l => l.Locator).Where(a => Util.Ip(a) is not null).Take(32).ToList();
            foreach (var r in _requesters)
            {
                if (!eid.Canonical().Covers(r.Eid.Canonical()) && !r.Eid.Canonical().Covers(eid.Canonical())) continue;
                var itrRlocs = rlocs.Count > 0 ? rlocs : [new IpAddress(r.Itr.Address)];
                var smr = new MapRequest
                {
                    Smr = true, Nonce = Util.Nonce(_random), SourceEid = eid.Address, ItrRlocs = itrRlocs, Records = [r.Eid],
                };
                actions.Add(new SendAction(r.Itr, smr.ToBytes()));
                _counters.Count(ControlEvent.SmrSent);
                actions.Add(new LogAction(LogLevel.Info, "smr-sent", $"SMR for {r.Eid} to {r.Itr} ({eid} changed)"));
            }
        }
        if (changed.Count > 0) actions.AddRange(RegisterNow(now));
        return actions;
    }
}
