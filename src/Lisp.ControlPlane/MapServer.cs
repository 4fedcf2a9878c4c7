using System.Globalization;
using System.Net;
using System.Text;
using Lisp.Wire;

namespace Lisp.ControlPlane;

/// <summary>
/// One registration site: who may register which EID-prefixes, with which key.
/// A Map-Register is accepted for the site when it authenticates with <see cref="Key"/> (as UTF-8 bytes)
/// using one of <see cref="AllowedAlgorithms"/>, and every record is one of <see cref="EidPrefixes"/>
/// exactly, or lies inside one when <see cref="AcceptMoreSpecifics"/> is set.
/// </summary>
public sealed record SiteConfig(string Name, string Key, IReadOnlyList<EidPrefix> EidPrefixes)
{
    public bool AcceptMoreSpecifics { get; init; }
    /// <summary>
    /// Any EID of any kind is accepted from whoever authenticates with the key (a LISP-Decent push group's
    /// site: members register whatever they serve). <see cref="EidPrefixes"/> are still shown in the site table.
    /// </summary>
    public bool AcceptAnyEid { get; init; }
    public IReadOnlyList<AuthAlgorithm> AllowedAlgorithms { get; init; } = [AuthAlgorithm.HmacSha1_96, AuthAlgorithm.HmacSha256_128];
    public string Description { get; init; } = "";

    internal byte[] KeyBytes { get; } = Encoding.UTF8.GetBytes(Key);
}

/// <summary>How wide a negative Map-Reply may be.</summary>
public enum NegativePrefixPolicy
{
    /// <summary>The shortest prefix around the EID that holds nothing registered or configured (RFC 9301, lispers.net).</summary>
    LeastSpecificUncovered,
    /// <summary>
    /// Never wider than the prefix that was asked for (the hashed prefix in LISP-Decent pull mode): a set must
    /// not vouch for EIDs another set may hold. Still narrowed when a registration lies inside it.
    /// </summary>
    RequestedPrefix,
    /// <summary>Always the host length (/32, /128); non-IP EIDs as asked.</summary>
    HostLength,
}

/// <summary>Map-Server settings; defaults are lispers.net's (spec/decent.md "Timers").</summary>
public sealed record MapServerOptions
{
    public IReadOnlyList<SiteConfig> Sites { get; init; } = [];
    /// <summary>Soft-state lifetime of a registration without the T bit: 3 x the 60 s register interval.</summary>
    public TimeSpan RegistrationTimeout { get; init; } = TimeSpan.FromSeconds(180);
    /// <summary>Negative Map-Reply TTL when no site covers the EID.</summary>
    public TimeSpan NegativeTtlNoSite { get; init; } = TimeSpan.FromMinutes(15);
    /// <summary>Negative Map-Reply TTL when a site covers the EID but nothing is registered for it.</summary>
    public TimeSpan NegativeTtlNotRegistered { get; init; } = TimeSpan.FromMinutes(1);
    public MapReplyAction NegativeAction { get; init; } = MapReplyAction.NativelyForward;
    public NegativePrefixPolicy NegativePrefix { get; init; } = NegativePrefixPolicy.LeastSpecificUncovered;
    /// <summary>Map-Notify retransmit interval while no Map-Notify-Ack came back.</summary>
    public TimeSpan MapNotifyRetransmitInterval { get; init; } = TimeSpan.FromSeconds(2);
    /// <summary>Transmissions of one Map-Notify in all (first send included); 1 disables retransmission.</summary>
    public int MapNotifyTransmissions { get; init; } = 3;
    /// <summary>Guard on memory: registrations beyond this many (EID, registerer) pairs are refused.</summary>
    public int MaxRegistrations { get; init; } = 100_000;
    /// <summary>
    /// Remember the ITRs this Map-Server proxy-replied to and send them an SMR when the RLOCs registered for
    /// what they asked change (LISP-Decent push: the local Map-Server answers, so the ETR never sees the ITR).
    /// </summary>
    public bool SmrOnChange { get; init; }
    /// <summary>ITRs remembered for <see cref="SmrOnChange"/> (oldest dropped).</summary>
    public int SmrRequesterLimit { get; init; } = 256;
    /// <summary>How long a proxy-replied ITR stays an SMR target.</summary>
    public TimeSpan SmrRequesterWindow { get; init; } = TimeSpan.FromMinutes(10);
    /// <summary>
    /// Which EIDs this map-server takes registrations for: null (or a null answer) accepts, a text refuses the
    /// whole Map-Register with that reason (counted as <see cref="DropReason.NotServedHere"/>). LISP-Decent pull
    /// uses it so a map-server only holds EIDs that hash to a set it belongs to.
    /// </summary>
    public Func<EidPrefix, string?>? EidFilter { get; init; }
}

/// <summary>Flags a registration was made with, as lispers.net prints them (upper case = set).</summary>
[Flags]
public enum RegistrationFlags
{
    None = 0,
    ProxyReply = 1,
    LispSec = 2,
    XtrIdPresent = 4,
    UseTtlForTimeout = 8,
    Refresh = 16,
    MobileNode = 32,
    WantMapNotify = 64,
    Merge = 128,
}

/// <summary>One live registration: an EID-prefix as one registerer (xTR-ID, or source address) holds it.</summary>
public sealed record Registration(
    string Site,
    EidPrefix Eid,
    IReadOnlyList<LocatorRecord> Rlocs,
    IPEndPoint Registerer,
    DateTimeOffset FirstRegistered,
    DateTimeOffset LastRegistered,
    DateTimeOffset ExpiresAt,
    RegistrationFlags Flags,
    uint RecordTtlRaw,
    AuthAlgorithm Algorithm,
    byte[]? XtrId,
    ulong SiteId)
{
    /// <summary>lispers.net style "p-s-I-t-r-m-n": P proxy-reply, S LISP-SEC, I xTR-ID, T TTL timeout, R refresh, M mobile, N want Map-Notify.</summary>
    public string FlagsText => FormatFlags(Flags);

    public string XtrIdText => XtrId is null ? "" : Convert.ToHexString(XtrId).ToLowerInvariant();

    public static string FormatFlags(RegistrationFlags f)
    {
        static char C(RegistrationFlags f, RegistrationFlags bit, char c) => (f & bit) != 0 ? char.ToUpperInvariant(c) : c;
        return string.Join('-', C(f, RegistrationFlags.ProxyReply, 'p'), C(f, RegistrationFlags.LispSec, 's'),
            C(f, RegistrationFlags.XtrIdPresent, 'i'), C(f, RegistrationFlags.UseTtlForTimeout, 't'),
            C(f, RegistrationFlags.Refresh, 'r'), C(f, RegistrationFlags.MobileNode, 'm'),
            C(f, RegistrationFlags.WantMapNotify, 'n'));
    }
}

/// <summary>
/// A row of `show site` (lispers.net's site table): a configured prefix (registered or not) or a
/// more-specific one registered under an accept-more-specifics prefix.
/// </summary>
public sealed record SiteTableRow(
    string Site,
    EidPrefix Eid,
    bool Configured,
    bool Registered,
    IPEndPoint? LastRegisterer,
    DateTimeOffset? FirstRegistered,
    DateTimeOffset? LastRegistered,
    string Flags,
    IReadOnlyList<LocatorRecord> Rlocs,
    int Registrants);

/// <summary>
/// Map-Server (RFC 9301 section 8.2): authenticates Map-Registers against configured sites, keeps
/// registrations as soft state, answers Map-Requests for registered EIDs (proxy Map-Reply with P, else
/// forwards the ECM to a registered ETR), returns negative Map-Replies for what is not registered, sends
/// (and retransmits until acknowledged) Map-Notify when asked with the M bit. Pure: messages and a clock
/// in, actions out. Not thread-safe: one control thread calls it.
/// </summary>
public sealed class MapServer
{
    private readonly MapServerOptions _options;
    private readonly ControlCounters _counters;
    // EID text key -> registrations of that EID, one per registerer.
    private readonly Dictionary<string, List<Registration>> _registrations = new(StringComparer.Ordinal);
    private readonly Dictionary<(ulong Nonce, IPEndPoint To), PendingNotify> _pendingNotifies = new();
    private readonly List<(IPEndPoint Itr, EidPrefix Eid, DateTimeOffset At)> _proxyRequesters = [];
    private readonly Random _random = SecureRandom.Instance;
    private int _registrationCount;

    private sealed class PendingNotify(byte[] payload, IPEndPoint to, IPEndPoint? from, SiteConfig site, DateTimeOffset nextAt)
    {
        public byte[] Payload { get; } = payload;
        public IPEndPoint To { get; } = to;
        public IPEndPoint? From { get; } = from;
        public SiteConfig Site { get; } = site;
        public DateTimeOffset NextAt { get; set; } = nextAt;
        public int Sent { get; set; } = 1;
    }

    public MapServer(MapServerOptions options, ControlCounters? counters = null)
    {
        _options = options;
        _counters = counters ?? new ControlCounters();
        foreach (var s in options.Sites)
        {
            if (s.Key.Length == 0) throw new ArgumentException($"site '{s.Name}' has an empty key");
        }
    }

    public MapServerOptions Options => _options;
    public ControlCounters Counters => _counters;

    /// <summary>Earliest time <see cref="Tick"/> has work (a registration expiring, a Map-Notify to retransmit).</summary>
    public DateTimeOffset? NextDeadline
    {
        get
        {
            DateTimeOffset? d = null;
            foreach (var list in _registrations.Values)
            {
                foreach (var r in list) d = Min(d, r.ExpiresAt);
            }
            foreach (var p in _pendingNotifies.Values) d = Min(d, p.NextAt);
            return d;
        }
    }

    private static DateTimeOffset? Min(DateTimeOffset? a, DateTimeOffset b) => a is null || b < a ? b : a;

    // ---------------------------------------------------------------- Map-Register

    /// <summary>Handles a decoded Map-Register; <paramref name="packet"/> holds the raw bytes the HMAC covers.</summary>
    public IReadOnlyList<ControlAction> HandleMapRegister(MapRegister register, ReceivedPacket packet, DateTimeOffset now)
    {
        var actions = new List<ControlAction>();
        string from = packet.From.ToString();
        if (register.Records.Count == 0)
        {
            return Reject(actions, DropReason.NoRecords, $"Map-Register from {from} carries no records");
        }
        var first = register.Records[0].Eid;
        var candidates = _options.Sites.Where(s => Covers(s, first)).ToList();
        if (candidates.Count == 0)
        {
            return Reject(actions, DropReason.UnknownSite, $"Map-Register from {from} for {first}: no site configures it");
        }
        if (register.Algorithm == AuthAlgorithm.None)
        {
            return Reject(actions, DropReason.AuthFailure, $"Map-Register from {from} for {first}: no authentication (algorithm 0)");
        }
        SiteConfig? site = null;
        bool algorithmRefused = false;
        foreach (var s in candidates)
        {
            if (!MessageAuthentication.Verify(packet.Payload, s.KeyBytes)) continue;
            if (!s.AllowedAlgorithms.Contains(register.Algorithm))
            {
                algorithmRefused = true;
                continue;
            }
            site = s;
            break;
        }
        if (site is null)
        {
            return algorithmRefused
                ? Reject(actions, DropReason.AlgorithmNotAllowed, $"Map-Register from {from} for {first}: algorithm {register.Algorithm} not allowed by the site")
                : Reject(actions, DropReason.AuthFailure, $"Map-Register from {from} for {first}: authentication failed ({register.Algorithm}, key-id {register.KeyId})");
        }
        foreach (var rec in register.Records)
        {
            if (!Covers(site, rec.Eid))
            {
                return Reject(actions, DropReason.NotCovered,
                    $"Map-Register from {from} for site '{site.Name}': {rec.Eid} is not {(site.AcceptMoreSpecifics ? "inside" : "one of")} the site's prefixes");
            }
            if (_options.EidFilter?.Invoke(rec.Eid) is { } refusal)
            {
                return Reject(actions, DropReason.NotServedHere, $"Map-Register from {from} for {rec.Eid}: {refusal}");
            }
        }

        var flags = FlagsOf(register);
        var before = _options.SmrOnChange ? register.Records.Select(r => MergedLocators(r.Eid.Canonical().ToString())).ToList() : null;
        string registererKey = register.XtrId is not null ? "xtr:" + Convert.ToHexString(register.XtrId) : "ip:" + packet.From;
        // The records this Map-Register really registered (or withdrew): only these are confirmed by Map-Notify.
        var confirmed = new List<MappingRecord>(register.Records.Count);
        foreach (var rec in register.Records)
        {
            var eid = rec.Eid.Canonical();
            string key = eid.ToString();
            if (!_registrations.TryGetValue(key, out var list))
            {
                list = [];
                _registrations[key] = list;
            }
            int i = list.FindIndex(r => RegistererKey(r) == registererKey);
            if (rec.TtlRaw == 0)
            {
                if (i >= 0)
                {
                    list.RemoveAt(i);
                    _registrationCount--;
                    if (list.Count == 0) _registrations.Remove(key);
                    actions.Add(new LogAction(LogLevel.Info, "registration-withdrawn", $"site '{site.Name}' {eid} withdrawn by {from} (TTL 0)"));
                }
                confirmed.Add(rec);
                continue;
            }
            var timeout = register.UseTtlForTimeout ? rec.Ttl : _options.RegistrationTimeout;
            if (i >= 0)
            {
                var old = list[i];
                list[i] = old with
                {
                    Rlocs = rec.Locators, Registerer = packet.From, LastRegistered = now, ExpiresAt = now + timeout,
                    Flags = flags, RecordTtlRaw = rec.TtlRaw, Algorithm = register.Algorithm, XtrId = register.XtrId, SiteId = register.SiteId,
                };
                if (!old.Rlocs.SequenceEqual(rec.Locators))
                {
                    actions.Add(new LogAction(LogLevel.Info, "registration-changed",
                        $"site '{site.Name}' {eid} RLOCs now {string.Join(", ", rec.Locators.Select(l => l.Locator.ToText()))} from {from}"));
                }
                confirmed.Add(rec);
            }
            else
            {
                if (_registrationCount >= _options.MaxRegistrations)
                {
                    // Refused, so neither counted as accepted nor confirmed by Map-Notify: the ETR must not believe it is registered.
                    _counters.Drop(DropReason.RegistrationTableFull);
                    actions.Add(new LogAction(LogLevel.Warning, "registration-refused", $"site '{site.Name}' {eid} from {from}: registration table full ({_options.MaxRegistrations})"));
                    if (list.Count == 0) _registrations.Remove(key);
                    continue;
                }
                list.Add(new Registration(site.Name, eid, rec.Locators, packet.From, now, now, now + timeout, flags,
                    rec.TtlRaw, register.Algorithm, register.XtrId, register.SiteId));
                _registrationCount++;
                confirmed.Add(rec);
                actions.Add(new LogAction(LogLevel.Info, "registration-accepted",
                    $"site '{site.Name}' {eid} registered by {from} with RLOCs {string.Join(", ", rec.Locators.Select(l => l.Locator.ToText()))}, flags {Registration.FormatFlags(flags)}, expires in {timeout.TotalSeconds:0}s"));
            }
        }
        if (before is not null)
        {
            for (int k = 0; k < register.Records.Count; k++)
            {
                var eid = register.Records[k].Eid.Canonical();
                var after = MergedLocators(eid.ToString());
                if (before[k].Count > 0 && !before[k].SequenceEqual(after)) actions.AddRange(SmrRequesters(eid, packet, now));
            }
        }
        if (confirmed.Count == 0) return actions;   // every record refused (counted and logged above): no Map-Notify
        _counters.Count(ControlEvent.RegistrationAccepted);
        actions.Add(new LogAction(LogLevel.Debug, "map-register-accepted",
            $"Map-Register nonce {Util.Hex(register.Nonce)} from {from}, site '{site.Name}', {register.Records.Count} record(s)"));

        if (register.WantMapNotify)
        {
            var notify = new MapNotify
            {
                Nonce = register.Nonce, KeyId = register.KeyId, Algorithm = register.Algorithm,
                Records = confirmed.Count == register.Records.Count ? register.Records : confirmed, XtrId = register.XtrId, SiteId = register.SiteId,
            };
            var bytes = notify.ToSignedBytes(site.KeyBytes);
            var fromEp = Util.FromFor(packet.Local, packet.From);
            actions.Add(new SendAction(packet.From, bytes, fromEp));
            _counters.Count(ControlEvent.MapNotifySent);
            if (_options.MapNotifyTransmissions > 1)
            {
                _pendingNotifies[(register.Nonce, packet.From)] = new PendingNotify(bytes, packet.From, fromEp, site, now + _options.MapNotifyRetransmitInterval);
            }
        }
        return actions;
    }

    private List<LispAddress> MergedLocators(string key) =>
        _registrations.TryGetValue(key, out var list)
            ? list.SelectMany(r => r.Rlocs).Select(l => l.Locator).Distinct().OrderBy(a => a.ToText(), StringComparer.Ordinal).ToList()
            : [];

    /// <summary>SMRs to the ITRs we proxy-replied to about <paramref name="eid"/> (or something it covers, or that covers it).</summary>
    private List<ControlAction> SmrRequesters(EidPrefix eid, ReceivedPacket packet, DateTimeOffset now)
    {
        var actions = new List<ControlAction>();
        _proxyRequesters.RemoveAll(r => now - r.At > _options.SmrRequesterWindow);
        foreach (var (itr, asked, _) in _proxyRequesters)
        {
            var a = asked.Canonical();
            if (!eid.Covers(a) && !a.Covers(eid)) continue;
            var smr = new MapRequest { Smr = true, Nonce = Util.Nonce(_random), SourceEid = eid.Address, ItrRlocs = [new IpAddress(itr.Address)], Records = [asked] };
            actions.Add(new SendAction(itr, smr.ToBytes(), Util.FromFor(packet.Local, itr)));
            _counters.Count(ControlEvent.SmrSent);
            actions.Add(new LogAction(LogLevel.Info, "smr-sent", $"SMR for {asked} to {itr} ({eid} registration changed)"));
        }
        return actions;
    }

    private void RememberProxyRequester(IPEndPoint itr, EidPrefix eid, DateTimeOffset now)
    {
        _proxyRequesters.RemoveAll(r => r.Itr.Equals(itr) && r.Eid.SameKey(eid));
        _proxyRequesters.Add((itr, eid, now));
        while (_proxyRequesters.Count > Math.Max(0, _options.SmrRequesterLimit)) _proxyRequesters.RemoveAt(0);
    }

    private static string RegistererKey(Registration r) => r.XtrId is not null ? "xtr:" + Convert.ToHexString(r.XtrId) : "ip:" + r.Registerer;

    private static RegistrationFlags FlagsOf(MapRegister m) =>
        (m.ProxyReply ? RegistrationFlags.ProxyReply : 0) | (m.LispSec ? RegistrationFlags.LispSec : 0) |
        (m.XtrIdPresent ? RegistrationFlags.XtrIdPresent : 0) | (m.UseTtlForTimeout ? RegistrationFlags.UseTtlForTimeout : 0) |
        (m.Refresh ? RegistrationFlags.Refresh : 0) | (m.MobileNode ? RegistrationFlags.MobileNode : 0) |
        (m.WantMapNotify ? RegistrationFlags.WantMapNotify : 0) | (m.Merge ? RegistrationFlags.Merge : 0);

    private IReadOnlyList<ControlAction> Reject(List<ControlAction> actions, DropReason reason, string message)
    {
        _counters.Drop(reason);
        actions.Add(new LogAction(LogLevel.Warning, "registration-rejected", $"{ControlCounters.Kebab(reason.ToString())}: {message}"));
        return actions;
    }

    /// <summary>True when <paramref name="eid"/> is one of the site's prefixes, or inside one and more-specifics are accepted.</summary>
    public static bool Covers(SiteConfig site, EidPrefix eid)
    {
        if (site.AcceptAnyEid) return true;
        var c = eid.Canonical();
        foreach (var p in site.EidPrefixes)
        {
            var pc = p.Canonical();
            if (pc.SameKey(c)) return true;
            if (site.AcceptMoreSpecifics && pc.Covers(c)) return true;
        }
        return false;
    }

    // ---------------------------------------------------------------- Map-Notify-Ack

    /// <summary>Handles a Map-Notify-Ack: authenticates it with the site key of the Map-Notify it acknowledges.</summary>
    public IReadOnlyList<ControlAction> HandleMapNotifyAck(MapNotify ack, ReceivedPacket packet, DateTimeOffset now)
    {
        var match = _pendingNotifies.Where(kv => kv.Key.Nonce == ack.Nonce).Select(kv => kv.Value).ToList();
        if (match.Count == 0)
        {
            _counters.Drop(DropReason.StaleNonce);
            return [new LogAction(LogLevel.Debug, "map-notify-ack-dropped", $"Map-Notify-Ack nonce {Util.Hex(ack.Nonce)} from {packet.From} matches no Map-Notify")];
        }
        foreach (var p in match)
        {
            if (MessageAuthentication.Verify(packet.Payload, p.Site.KeyBytes))
            {
                _pendingNotifies.Remove((ack.Nonce, p.To));
                _counters.Count(ControlEvent.MapNotifyAcked);
                return [new LogAction(LogLevel.Debug, "map-notify-acked", $"Map-Notify nonce {Util.Hex(ack.Nonce)} acknowledged by {packet.From}")];
            }
        }
        _counters.Drop(DropReason.AuthFailure);
        return [new LogAction(LogLevel.Warning, "map-notify-ack-dropped", $"Map-Notify-Ack nonce {Util.Hex(ack.Nonce)} from {packet.From}: authentication failed")];
    }

    // ---------------------------------------------------------------- Map-Request

    /// <summary>The live registration set with the longest prefix covering <paramref name="eid"/>, or null.</summary>
    public IReadOnlyList<Registration>? Lookup(EidPrefix eid, DateTimeOffset now)
    {
        List<Registration>? best = null;
        int bestLength = -1;
        var c = eid.Canonical();
        foreach (var list in _registrations.Values)
        {
            var live = list.Where(r => r.ExpiresAt > now).ToList();
            if (live.Count == 0) continue;
            var p = live[0].Eid;
            if (!p.Covers(c)) continue;
            if (p.MaskLength > bestLength)
            {
                best = live;
                bestLength = p.MaskLength;
            }
        }
        return best;
    }

    /// <summary>True when some site configures a prefix covering <paramref name="eid"/>.</summary>
    public bool HasSiteFor(EidPrefix eid)
    {
        var c = eid.Canonical();
        return _options.Sites.Any(s => s.EidPrefixes.Any(p => p.Canonical().Covers(c)));
    }

    /// <summary>
    /// Answers an ECM Map-Request for which this Map-Server is responsible: proxy Map-Reply when the
    /// registration asked for it, else forwards the ECM to the registered ETR, else a negative Map-Reply.
    /// </summary>
    public IReadOnlyList<ControlAction> HandleMapRequest(EncapsulatedControlMessage ecm, MapRequest request, ReceivedPacket packet, DateTimeOffset now)
    {
        if (request.Records.Count == 0)
        {
            _counters.Drop(DropReason.NoRecords);
            return [new LogAction(LogLevel.Debug, "map-request-dropped", $"Map-Request from {packet.From} has no EID records")];
        }
        var eid = request.Records[0];
        var regs = Lookup(eid, now);
        if (regs is null)
        {
            return NegativeReply(request, ecm, packet, now, Negative(eid, now));
        }
        var newest = regs.MaxBy(r => r.LastRegistered)!;
        if (regs.Any(r => (r.Flags & RegistrationFlags.ProxyReply) != 0))
        {
            var locators = new List<LocatorRecord>();
            foreach (var r in regs)
            {
                foreach (var l in r.Rlocs)
                {
                    if (!locators.Any(x => x.Locator.Equals(l.Locator))) locators.Add(l);
                }
            }
            var record = new MappingRecord(newest.Eid, locators, newest.RecordTtlRaw, MapReplyAction.NoAction, Authoritative: false);
            var reply = new MapReply { Nonce = request.Nonce, Records = [record] };
            if (!TryReplyTarget(request, ecm, packet, out var to))
            {
                return [new LogAction(LogLevel.Warning, "map-request-dropped", $"Map-Request for {eid} from {packet.From}: no ITR-RLOC to answer to")];
            }
            _counters.Count(ControlEvent.ProxyMapReplySent);
            if (_options.SmrOnChange) RememberProxyRequester(to, eid, now);
            return
            [
                new SendAction(to, reply.ToBytes(), Util.FromFor(packet.Local, to)),
                new LogAction(LogLevel.Debug, "proxy-map-reply", $"proxy Map-Reply for {eid} -> {newest.Eid} to {to}, nonce {Util.Hex(request.Nonce)}"),
            ];
        }
        var forwarded = ecm with { ForMapServer = false, ForEtr = true };
        _counters.Count(ControlEvent.MapRequestForwarded);
        return
        [
            new SendAction(newest.Registerer, forwarded.ToBytes(), Util.FromFor(packet.Local, newest.Registerer)),
            new LogAction(LogLevel.Debug, "map-request-forwarded", $"Map-Request for {eid} forwarded to ETR {newest.Registerer} ({newest.Eid}), nonce {Util.Hex(request.Nonce)}"),
        ];
    }

    /// <summary>
    /// The negative record this Map-Server answers for <paramref name="eid"/> (nothing registered covers it):
    /// sized by <see cref="MapServerOptions.NegativePrefix"/>, TTL 1 min when a site covers it, else 15 min.
    /// </summary>
    public MappingRecord Negative(EidPrefix eid, DateTimeOffset now)
    {
        var c = eid.Canonical();
        bool siteCovers = false;
        int minLength = 0;
        var obstacles = new List<EidPrefix>();
        foreach (var s in _options.Sites)
        {
            foreach (var p in s.EidPrefixes)
            {
                var pc = p.Canonical();
                if (pc.Covers(c))
                {
                    siteCovers = true;
                    if (pc.IsIp) minLength = Math.Max(minLength, pc.MaskLength);
                }
                else obstacles.Add(pc);
            }
        }
        foreach (var list in _registrations.Values)
        {
            if (list.Any(r => r.ExpiresAt > now)) obstacles.Add(list[0].Eid);
        }
        EidPrefix prefix = _options.NegativePrefix switch
        {
            NegativePrefixPolicy.HostLength => PrefixMath.HostPrefix(c),
            NegativePrefixPolicy.RequestedPrefix => PrefixMath.LeastSpecificUncovered(c, obstacles, Math.Max(minLength, c.MaskLength)),
            _ => PrefixMath.LeastSpecificUncovered(c, obstacles, minLength),
        };
        var ttl = siteCovers ? _options.NegativeTtlNotRegistered : _options.NegativeTtlNoSite;
        return new MappingRecord(prefix, [], TtlMinutes(ttl), _options.NegativeAction, Authoritative: true);
    }

    internal static uint TtlMinutes(TimeSpan ttl) =>
        ttl.TotalSeconds % 60 == 0 ? (uint)(ttl.TotalMinutes) : MappingRecord.TtlSecondsFlag | (uint)Math.Max(0, ttl.TotalSeconds);

    internal IReadOnlyList<ControlAction> NegativeReply(MapRequest request, EncapsulatedControlMessage ecm, ReceivedPacket packet, DateTimeOffset now, MappingRecord record)
    {
        if (!TryReplyTarget(request, ecm, packet, out var to))
        {
            _counters.Drop(DropReason.NoReplyPath);
            return [new LogAction(LogLevel.Warning, "map-request-dropped", $"Map-Request for {request.Records[0]} from {packet.From}: no ITR-RLOC to answer to")];
        }
        var reply = new MapReply { Nonce = request.Nonce, Records = [record] };
        _counters.Count(ControlEvent.NegativeMapReplySent);
        return
        [
            new SendAction(to, reply.ToBytes(), Util.FromFor(packet.Local, to)),
            new LogAction(LogLevel.Debug, "negative-map-reply",
                $"negative Map-Reply for {request.Records[0]}: {record.Eid} {record.Action} TTL {record.Ttl.TotalMinutes:0.##} min to {to}"),
        ];
    }

    /// <summary>A Map-Reply for an ECM Map-Request goes to an ITR-RLOC at the inner UDP source port.</summary>
    internal static bool TryReplyTarget(MapRequest request, EncapsulatedControlMessage ecm, ReceivedPacket packet, out IPEndPoint to)
    {
        var addr = Util.ReplyAddress(request, packet.Local, ecm.Inner.Source);
        ushort port = ecm.Inner.SourcePort == 0 ? DataHeader.ControlPort : ecm.Inner.SourcePort;
        to = addr is null || Util.IsUnspecified(addr) ? new IPEndPoint(IPAddress.None, 0) : new IPEndPoint(addr, port);
        return addr is not null && !Util.IsUnspecified(addr);
    }

    // ---------------------------------------------------------------- timers and show

    /// <summary>Expires registrations and retransmits unacknowledged Map-Notifies.</summary>
    public IReadOnlyList<ControlAction> Tick(DateTimeOffset now)
    {
        var actions = new List<ControlAction>();
        foreach (var (key, list) in _registrations.ToList())
        {
            for (int i = list.Count - 1; i >= 0; i--)
            {
                if (list[i].ExpiresAt > now) continue;
                var r = list[i];
                list.RemoveAt(i);
                _registrationCount--;
                _counters.Count(ControlEvent.RegistrationExpired);
                actions.Add(new LogAction(LogLevel.Warning, "registration-timeout",
                    $"site '{r.Site}' {r.Eid} from {r.Registerer} expired (last registered {r.LastRegistered:O})"));
            }
            if (list.Count == 0) _registrations.Remove(key);
        }
        foreach (var (key, p) in _pendingNotifies.ToList())
        {
            if (p.NextAt > now) continue;
            if (p.Sent >= _options.MapNotifyTransmissions)
            {
                _pendingNotifies.Remove(key);
                actions.Add(new LogAction(LogLevel.Debug, "map-notify-unacked", $"Map-Notify nonce {Util.Hex(key.Nonce)} to {p.To}: no Map-Notify-Ack after {p.Sent} sends"));
                continue;
            }
            p.Sent++;
            p.NextAt = now + _options.MapNotifyRetransmitInterval;
            _counters.Count(ControlEvent.MapNotifyRetransmitted);
            actions.Add(new SendAction(p.To, p.Payload, p.From));
            actions.Add(new LogAction(LogLevel.Debug, "map-notify-retransmit", $"Map-Notify nonce {Util.Hex(key.Nonce)} to {p.To}, send {p.Sent}"));
        }
        return actions;
    }

    /// <summary>Every live registration (one per EID and registerer), ordered by EID text.</summary>
    public IReadOnlyList<Registration> Registrations(DateTimeOffset now) =>
        _registrations.Values.SelectMany(l => l).Where(r => r.ExpiresAt > now)
            .OrderBy(r => r.Eid.ToString(), StringComparer.Ordinal).ThenBy(r => r.Registerer.ToString(), StringComparer.Ordinal).ToList();

    /// <summary>
    /// lispers.net's site table: per site, each configured prefix (registered or not) and each registered
    /// more-specific under it.
    /// </summary>
    public IReadOnlyList<SiteTableRow> SiteTable(DateTimeOffset now)
    {
        var live = Registrations(now);
        var rows = new List<SiteTableRow>();
        var shown = new HashSet<string>(StringComparer.Ordinal);
        foreach (var site in _options.Sites)
        {
            foreach (var p in site.EidPrefixes)
            {
                var pc = p.Canonical();
                var exact = live.Where(r => r.Site == site.Name && r.Eid.SameKey(pc)).ToList();
                rows.Add(Row(site.Name, pc, true, exact));
                shown.Add(site.Name + " " + pc);
            }
            foreach (var group in live.Where(r => r.Site == site.Name).GroupBy(r => r.Eid.ToString(), StringComparer.Ordinal))
            {
                if (!shown.Add(site.Name + " " + group.Key)) continue;
                var regs = group.ToList();
                rows.Add(Row(site.Name, regs[0].Eid, false, regs));
            }
        }
        return rows;
    }

    private static SiteTableRow Row(string site, EidPrefix eid, bool configured, List<Registration> regs)
    {
        if (regs.Count == 0) return new SiteTableRow(site, eid, configured, false, null, null, null, Registration.FormatFlags(0), [], 0);
        var last = regs.MaxBy(r => r.LastRegistered)!;
        var rlocs = regs.SelectMany(r => r.Rlocs).DistinctBy(l => l.Locator).ToList();
        return new SiteTableRow(site, eid, configured, true, last.Registerer, regs.Min(r => r.FirstRegistered), last.LastRegistered,
            last.FlagsText, rlocs, regs.Count);
    }

    /// <summary>Site-table text, one line per row (for `show site` and logs).</summary>
    public static string Format(IReadOnlyList<SiteTableRow> rows)
    {
        var sb = new StringBuilder();
        sb.AppendLine("Site        EID-prefix                                Registered  Last registerer           First registered      Last registered       Flags");
        foreach (var r in rows)
        {
            sb.AppendLine(CultureInfo.InvariantCulture,
                $"{r.Site,-11} {r.Eid,-41} {(r.Registered ? "yes" : "no"),-11} {r.LastRegisterer?.ToString() ?? "--",-25} {r.FirstRegistered?.ToString("u", CultureInfo.InvariantCulture) ?? "--",-21} {r.LastRegistered?.ToString("u", CultureInfo.InvariantCulture) ?? "--",-21} {r.Flags}");
        }
        return sb.ToString();
    }
}
