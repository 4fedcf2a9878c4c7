using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Runtime.CompilerServices;
using System.Text;
using Lisp.ControlPlane.Tables;
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
    /// <summary>Most live registrations this site may hold (0: no per-site limit, only the map-server's).</summary>
    public int MaxRegistrations { get; init; }

    /// <summary>The key prepared once for HMAC (both algorithms): verifying a Map-Register and signing its Map-Notify skip the key set-up.</summary>
    internal AuthenticationKey AuthKey { get; } = new(Encoding.UTF8.GetBytes(Key));
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
    /// <summary>
    /// Guard on memory: registrations beyond this many (EID, registerer) pairs are refused (no Map-Notify, counted
    /// as registration-refused). The default holds a 1M-EID push group twice over; a registration costs a few
    /// hundred bytes (perf/RESULTS.md), so size it to the device's memory.
    /// </summary>
    public int MaxRegistrations { get; init; } = DefaultMaxRegistrations;
    public const int DefaultMaxRegistrations = 2_000_000;
    /// <summary>
    /// Most registrants (ETRs: xTR-IDs, or addresses without one) one EID-prefix may have (issue 12, item 7); a further
    /// one is refused (counted as <see cref="DropReason.RegistrantsPerEid"/>). Several ETRs of a site register the same
    /// prefix (RFC 9301 merge semantics), rarely more than a handful.
    /// </summary>
    public int MaxRegistrantsPerEid { get; init; } = DefaultMaxRegistrantsPerEid;
    public const int DefaultMaxRegistrantsPerEid = 16;
    /// <summary>This map-server's place among the control shards of one node (null: not sharded).</summary>
    public ShardContext? Shard { get; init; }
    /// <summary>Lines below this level are never built (the host's log level): a Debug line per Map-Request costs more than the reply.</summary>
    public LogLevel LogLevel { get; init; } = LogLevel.Debug;
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
/// <summary>
/// Map-Server (RFC 9301 section 8.2): authenticates Map-Registers against configured sites, keeps
/// registrations as soft state, answers Map-Requests for registered EIDs (proxy Map-Reply with P, else
/// forwards the ECM to a registered ETR), returns negative Map-Replies for what is not registered, sends
/// (and retransmits until acknowledged) Map-Notify when asked with the M bit. Pure: messages and a clock
/// in, actions out. Not thread-safe: one control thread calls it.
/// <para>
/// Tables (issue 10): registrations live in an <see cref="EidTable{T}"/> keyed by typed EID keys (longest-prefix
/// match per instance-id and family, exact match for names); expiry and Map-Notify retransmission are two
/// min-heaps on the caller's clock, each registration queued once and re-queued lazily when a refresh moved
/// its expiry. A Map-Request, a Map-Register record and a timer turn each cost one trie path or heap operation
/// per item, never a walk over the table. The clock the host passes is monotonic (<see cref="MonotonicClock"/>).
/// </para>
/// </summary>
public sealed class MapServer
{
    private MapServerOptions _options;
    private readonly ControlCounters _counters;
    private readonly EidTable<RegisteredEid> _table = new();
    // Entries holding only tombstones (withdrawn or expired registrants inside their replay horizon): see Settle.
    private readonly Dictionary<EidKey, RegisteredEid> _graves = new();
    // Registration expiry: every live registrant once (at the expiry it had when queued); see Tick.
    private readonly PriorityQueue<Registrant, long> _expiry = new();
    private readonly Interner<IReadOnlyList<LocatorRecord>> _locatorSets = new(LocatorListComparer.Instance);
    private readonly Interner<IPEndPoint> _registerers = new(EqualityComparer<IPEndPoint>.Default);
    private readonly RegistrationLimits _limits;
    // A site without its own max_registrations may hold its share of the table (issue 12, item 7): one site cannot fill it.
    private int _defaultSiteLimit;
    private readonly ShardContext? _shard;
    private IReadOnlyList<MapServer> _siblings = [];
    private int _ownCount;
    private readonly List<(SiteConfig Site, EidPrefix Prefix)> _sitePrefixes = [];
    private readonly List<(IPEndPoint Itr, EidPrefix Eid, DateTimeOffset At)> _proxyRequesters = [];
    private readonly Random _random = SecureRandom.Instance;
    private bool _debug;

    /// <summary>One EID-prefix in the table and who registered it (usually one registrant).</summary>
    /// <remarks>
    /// Memory per registration is a target (issue 10: at most 400 B): the typed key is kept and the EidPrefix
    /// object (about 100 B with its address objects) only for kinds the key cannot rebuild (names, (S,G)).
    /// </remarks>
    private sealed class RegisteredEid
    {
        // The key of an IPv4/IPv6 prefix, packed (the full EidKey is 72 B); other kinds keep their EidPrefix and
        // compute the key from it when needed (rare: removal).
        private readonly UInt128 _bits;
        private readonly uint _instanceId;
        private readonly EidFamily _family;
        private readonly byte _length;
        private readonly EidPrefix? _eid;
        // One registrant inline (the usual case); more in an array (merged registrations, several ETRs).
        private Registrant? _one;
        private Many? _many;

        /// <summary>Several registrants, and their identity index once there are more than IndexFrom (kept out of the one-registrant case's memory).</summary>
        private sealed class Many(Registrant[] items)
        {
            public readonly Registrant[] Items = items;
            public Dictionary<RegistrantId, Registrant>? Index;
        }

        public RegisteredEid(EidPrefix eid, EidKey key)
        {
            _bits = key.Bits;
            _instanceId = key.InstanceId;
            _family = key.Family;
            _length = (byte)key.Length;
            // Rebuilt on demand only where the rebuild is exactly what was registered (plain IP, default wrappers).
            if (key.Family is not (EidFamily.Ipv4 or EidFamily.Ipv6) || !eid.Equals(key.ToPrefix())) _eid = eid;
        }

        public EidKey Key => _eid is not null ? EidKey.From(_eid) : new EidKey(_family, _instanceId, _bits, _length);

        public EidPrefix Eid => _eid ?? Key.ToPrefix();

        public int Count => _many?.Items.Length ?? (_one is null ? 0 : 1);

        public Registrant this[int i] => _many is not null ? _many.Items[i] : _one!;

        public Registrant[] All() => _many is not null ? [.. _many.Items] : _one is null ? [] : [_one];

        // Identity index (issue 12, item 7): built when the entry has more than IndexFrom registrants, dropped on any
        // change of who is registered or of a registrant's address/RLOCs, rebuilt at the next lookup; so a refresh
        // finds its registrant in O(1) however many registrants the EID has.
        private const int IndexFrom = 4;

        public void Invalidate()
        {
            if (_many is not null) _many.Index = null;
        }

        /// <summary>Held in the map-server's graves (only tombstones), not in the table.</summary>
        public bool InGraves;

        public bool AnyRegistered()
        {
            for (int i = 0; i < Count; i++)
            {
                if (!this[i].Tombstone) return true;
            }
            return false;
        }

        /// <summary>
        /// The registrant this Map-Register speaks for (RFC 9301 section 8.2): the one with its xTR-ID when the I bit
        /// is set; otherwise one of the same site, without an xTR-ID, registered from the same source address or
        /// listing that address among its RLOCs (a multihomed ETR may register from either RLOC). Never the UDP
        /// source port: an ETR that re-registers from a new port is still the same ETR. Tombstones count (replay).
        /// </summary>
        public Registrant? Find(SiteConfig site, byte[]? xtrId, IPAddress from)
        {
            if (Count > IndexFrom)
            {
                var index = _many!.Index ??= BuildIndex();
                return index.TryGetValue(xtrId is not null ? RegistrantId.OfXtr(xtrId) : new RegistrantId(default, from, site), out var found) ? found : null;
            }
            Registrant? buried = null;
            for (int i = 0; i < Count; i++)
            {
                var r = this[i];
                if (!Matches(r, site, xtrId, from)) continue;
                if (!r.Tombstone) return r;
                buried ??= r;
            }
            return buried;   // a live registrant wins over a tombstone
        }

        private static bool Matches(Registrant r, SiteConfig site, byte[]? xtrId, IPAddress from)
        {
            if (xtrId is not null) return r.XtrId is not null && r.XtrId.AsSpan().SequenceEqual(xtrId);
            if (r.XtrId is not null || !ReferenceEquals(r.Site, site)) return false;
            if (r.Registerer.Address.Equals(from)) return true;
            foreach (var l in r.Rlocs)
            {
                if (l.Locator is IpAddress ip && ip.Address.Equals(from)) return true;
            }
            return false;
        }

        private Dictionary<RegistrantId, Registrant> BuildIndex()
        {
            var d = new Dictionary<RegistrantId, Registrant>(Count * 2, RegistrantId.Comparer.Instance);
            // In order, first match wins (as the scan): live registrants before tombstones, and within each, a
            // registrant's own address before the RLOCs of later ones.
            for (int k = 0; k < 2 * Count; k++)
            {
                var r = this[k % Count];
                if (r.Tombstone != (k >= Count)) continue;
                if (r.XtrId is not null)
                {
                    d.TryAdd(RegistrantId.OfXtr(r.XtrId), r);
                    continue;
                }
                d.TryAdd(new RegistrantId(default, r.Registerer.Address, r.Site), r);
                foreach (var l in r.Rlocs)
                {
                    if (l.Locator is IpAddress ip) d.TryAdd(new RegistrantId(default, ip.Address, r.Site), r);
                }
            }
            return d;
        }

        /// <summary>True when a registrant (or tombstone) of <paramref name="site"/> here accepted <paramref name="nonce"/>: a replay from a new address.</summary>
        public bool SeenBySite(SiteConfig site, ulong nonce)
        {
            for (int i = 0; i < Count; i++)
            {
                var r = this[i];
                if (ReferenceEquals(r.Site, site) && r.Seen(nonce)) return true;
            }
            return false;
        }

        /// <summary>A tombstone to give up when the EID is at its registrant limit (oldest horizon first), or null.</summary>
        public Registrant? OldestTombstone()
        {
            Registrant? t = null;
            for (int i = 0; i < Count; i++)
            {
                var r = this[i];
                if (r.Tombstone && (t is null || r.QueuedAt < t.QueuedAt)) t = r;
            }
            return t;
        }

        public void Add(Registrant r)
        {
            if (_many is not null) _many = new Many([.. _many.Items, r]);
            else if (_one is null) _one = r;
            else
            {
                _many = new Many([_one, r]);
                _one = null;
            }
        }

        public void Remove(Registrant r)
        {
            if (_many is null)
            {
                if (ReferenceEquals(_one, r)) _one = null;
                return;
            }
            var left = Array.FindAll(_many.Items, x => !ReferenceEquals(x, r));
            if (left.Length == 1)
            {
                _one = left[0];
                _many = null;
            }
            else _many = new Many(left);
        }

        public bool HasLive(long now)
        {
            for (int i = 0; i < Count; i++)
            {
                if (this[i].ExpiresAt > now) return true;
            }
            return false;
        }
    }

    /// <summary>Who a registrant is, as the identity index keys it: an xTR-ID, or (site, address) without one.</summary>
    private readonly record struct RegistrantId(UInt128 XtrId, IPAddress? Address, SiteConfig? Site)
    {
        public static RegistrantId OfXtr(byte[] xtrId) =>
            new(xtrId.Length >= 16 ? BinaryPrimitives.ReadUInt128BigEndian(xtrId) : new UInt128(0, (ulong)xtrId.Length), null, null);

        /// <summary>Sites by reference (a site record's own equality would hash its key and prefixes each lookup).</summary>
        public sealed class Comparer : IEqualityComparer<RegistrantId>
        {
            public static readonly Comparer Instance = new();
            public bool Equals(RegistrantId a, RegistrantId b) =>
                a.XtrId == b.XtrId && ReferenceEquals(a.Site, b.Site) && Equals(a.Address, b.Address);
            public int GetHashCode(RegistrantId k) =>
                HashCode.Combine(k.XtrId, k.Address, k.Site is null ? 0 : RuntimeHelpers.GetHashCode(k.Site));
        }
    }

    /// <summary>Map-Register nonces a registrant remembers (issue 12, item 5): its last accepted Map-Registers.</summary>
    internal const int NonceWindow = 4;

    [InlineArray(NonceWindow)]
    private struct NonceRing
    {
        private ulong _first;
    }

    /// <summary>A registration as the table holds it (mutable: a refresh updates it in place). Times are UTC ticks of the caller's clock.</summary>
    private sealed class Registrant(RegisteredEid entry, SiteConfig site, IPEndPoint registerer, long first)
    {
        public readonly RegisteredEid Entry = entry;
        public SiteConfig Site = site;   // re-pointed by Reconfigure when its site's settings change
        public readonly long FirstRegistered = first;
        // The nonces of the last NonceWindow Map-Registers accepted for it (0 is never stored: RFC 9301 lets an ETR
        // that wants no Map-Notify send nonce 0, which cannot tell a replay from a refresh).
        private NonceRing _nonces;
        private byte _nonceNext;
        /// <summary>
        /// Withdrawn (TTL 0) or expired: no longer registered, holds no table slot, kept until <see cref="QueuedAt"/>
        /// (one registration lifetime later) so a replay of what it accepted is still refused.
        /// </summary>
        public bool Tombstone;

        public bool Seen(ulong nonce) => nonce != 0 && ((ReadOnlySpan<ulong>)_nonces).Contains(nonce);

        public void InheritNonces(Registrant from)
        {
            _nonces = from._nonces;
            _nonceNext = from._nonceNext;
        }

        public void Accept(ulong nonce)
        {
            if (nonce == 0) return;
            _nonces[_nonceNext] = nonce;
            _nonceNext = (byte)((_nonceNext + 1) % NonceWindow);
        }
        public IPEndPoint Registerer = registerer;
        public IReadOnlyList<LocatorRecord> Rlocs = [];
        public long LastRegistered = first;
        public long ExpiresAt;
        /// <summary>The expiry it is queued at in the expiry heap (a heap entry with another time is stale).</summary>
        public long QueuedAt;
        public RegistrationFlags Flags;
        public uint RecordTtlRaw;
        /// <summary>The record's Map-Version (RFC 9302), returned in proxy Map-Replies.</summary>
        public ushort MapVersion;
        public AuthAlgorithm Algorithm;
        public byte[]? XtrId;
        public ulong SiteId;
        public bool Removed;
        /// <summary>A copy of a short prefix that shard 0 owns (sharded map-server): not counted, not shown.</summary>
        public bool Replica;

        public Registration View() => new(Site.Name, Entry.Eid, Rlocs, Registerer, Time(FirstRegistered), Time(LastRegistered), Time(ExpiresAt), Flags,
            RecordTtlRaw, Algorithm, XtrId, SiteId);
    }

    private static DateTimeOffset Time(long utcTicks) => new(utcTicks, TimeSpan.Zero);

    public MapServer(MapServerOptions options, ControlCounters? counters = null)
    {
        _options = options;
        _counters = counters ?? new ControlCounters();
        _debug = options.LogLevel <= LogLevel.Debug;
        _shard = options.Shard is { Plan.Count: > 1 } sc ? sc : null;
        _limits = options.Shard?.Limits ?? new RegistrationLimits();
        _defaultSiteLimit = options.Sites.Count > 1 ? (int)Math.Min(int.MaxValue, ((long)options.MaxRegistrations + options.Sites.Count - 1) / options.Sites.Count) : 0;
        foreach (var s in options.Sites)
        {
            if (s.Key.Length == 0) throw new ArgumentException($"site '{s.Name}' has an empty key");
            foreach (var p in s.EidPrefixes) _sitePrefixes.Add((s, p.Canonical()));
        }
    }

    public MapServerOptions Options => _options;
    public ControlCounters Counters => _counters;

    /// <summary>
    /// Registrations held now (expired ones leave at the next <see cref="Tick"/>); on shard 0 of a sharded
    /// map-server, those of every shard (replicas of short prefixes are not counted twice).
    /// </summary>
    public int RegistrationCount
    {
        get
        {
            int n = Volatile.Read(ref _ownCount);
            foreach (var s in _siblings) n += Volatile.Read(ref s._ownCount);
            return n;
        }
    }

    /// <summary>
    /// Shard 0 of a sharded map-server: the other shards' map-servers, so `show` reads (<see cref="Registrations"/>,
    /// <see cref="SiteTable"/>) cover the whole table. Those reads touch the siblings' tables: the host runs them
    /// only while every shard is parked.
    /// </summary>
    public void JoinShards(IReadOnlyList<MapServer> siblings) => _siblings = siblings.Where(s => !ReferenceEquals(s, this)).ToList();

    /// <summary>Earliest time <see cref="Tick"/> has work (a registration expiring).</summary>
    public DateTimeOffset? NextDeadline
    {
        get
        {
            DateTimeOffset? d = null;
            if (_expiry.TryPeek(out _, out var e)) d = Time(e);
            return d;
        }
    }

    // ---------------------------------------------------------------- Map-Register

    /// <summary>Handles a decoded Map-Register; <paramref name="packet"/> holds the raw bytes the HMAC covers.</summary>
    public IReadOnlyList<ControlAction> HandleMapRegister(MapRegister register, ReceivedPacket packet, DateTimeOffset now)
    {
        var actions = new List<ControlAction>();
        if (register.Records.Count == 0)
        {
            return Reject(actions, DropReason.NoRecords, $"Map-Register from {packet.From} carries no records");
        }
        var first = register.Records[0].Eid;
        if (register.Algorithm == AuthAlgorithm.None)
        {
            return HasCandidate(first)
                ? Reject(actions, DropReason.AuthFailure, $"Map-Register from {packet.From} for {first}: no authentication (algorithm 0)")
                : Reject(actions, DropReason.UnknownSite, $"Map-Register from {packet.From} for {first}: no site configures it");
        }
        SiteConfig? site = null;
        bool algorithmRefused = false, anyCandidate = false;
        foreach (var s in _options.Sites)
        {
            if (!Covers(s, first)) continue;
            anyCandidate = true;
            if (!MessageAuthentication.Verify(packet.Payload, s.AuthKey)) continue;
            if (!s.AllowedAlgorithms.Contains(register.Algorithm))
            {
                algorithmRefused = true;
                continue;
            }
            site = s;
            break;
        }
        if (!anyCandidate)
        {
            return Reject(actions, DropReason.UnknownSite, $"Map-Register from {packet.From} for {first}: no site configures it");
        }
        if (site is null)
        {
            return algorithmRefused
                ? Reject(actions, DropReason.AlgorithmNotAllowed, $"Map-Register from {packet.From} for {first}: algorithm {register.Algorithm} not allowed by the site")
                : Reject(actions, DropReason.AuthFailure, $"Map-Register from {packet.From} for {first}: authentication failed ({register.Algorithm}, key-id {register.KeyId})");
        }
        foreach (var rec in register.Records)
        {
            if (!Covers(site, rec.Eid))
            {
                return Reject(actions, DropReason.NotCovered,
                    $"Map-Register from {packet.From} for site '{site.Name}': {rec.Eid} is not {(site.AcceptMoreSpecifics ? "inside" : "one of")} the site's prefixes");
            }
            if (_options.EidFilter?.Invoke(rec.Eid) is { } refusal)
            {
                return Reject(actions, DropReason.NotServedHere, $"Map-Register from {packet.From} for {rec.Eid}: {refusal}");
            }
        }

        var before = _options.SmrOnChange ? register.Records.Select(r => MergedLocators(r.Eid)).ToList() : null;
        int me = _shard?.Index ?? 0;
        Dictionary<int, List<int>>? remote = null;
        var owners = _shard is null ? null : new int[register.Records.Count];   // each record's shard, computed once
        for (int i = 0; owners is not null && i < owners.Length; i++)
        {
            int owner = owners[i] = _shard!.Plan.ShardOf(EidKey.From(register.Records[i].Eid));
            if (owner == me) continue;
            remote ??= [];
            if (!remote.TryGetValue(owner, out var list)) remote[owner] = list = [];
            list.Add(i);
        }
        // The records this Map-Register really registered (or withdrew): only these are confirmed by Map-Notify.
        // Records other shards own are applied there; the Map-Notify waits for every owner's answer (the last
        // shard to answer sends it), so it never confirms a record an owner refused, and a refresh needs no slot.
        var completion = new RegisterCompletion(register.Records.Count, 1 + (remote?.Count ?? 0)) { RegisterPayload = packet.Payload };
        if (remote is not null)
        {
            foreach (var (shard, indexes) in remote)
            {
                actions.Add(new ShardHandoffAction(shard, new MapServerHandoff
                {
                    Site = site, Register = register, From = packet.From, Local = packet.Local, RecordIndexes = indexes, Completion = completion,
                }));
            }
        }
        bool several = (owners is null ? register.Records.Count : register.Records.Count - (remote?.Values.Sum(l => l.Count) ?? 0)) > 1;
        for (int i = 0; several && i < register.Records.Count; i++)
        {
            if (owners is not null && owners[i] != me) continue;
            CheckReplay(site, register, i, packet.From, completion, actions);
        }
        for (int i = 0; i < register.Records.Count; i++)
        {
            if (owners is not null && owners[i] != me) continue;
            ApplyOwned(site, register, i, packet.From, packet.Local, now, completion, actions, checkReplay: !several);
        }
        if (before is not null)
        {
            for (int k = 0; k < register.Records.Count; k++)
            {
                var eid = register.Records[k].Eid.Canonical();
                var after = MergedLocators(eid);
                if (before[k].Count > 0 && !before[k].SequenceEqual(after)) actions.AddRange(SmrRequesters(eid, packet, now));
            }
        }
        if (completion.Arrive()) FinishRegister(site, register, packet.From, packet.Local, completion, now, actions);
        return actions;
    }

    /// <summary>
    /// A Map-Register with several records this shard owns is checked for replay before any is applied (a record
    /// naming an EID twice must not find the nonce its first copy just stored); refusals go to the completion.
    /// </summary>
    private void CheckReplay(SiteConfig site, MapRegister register, int index, IPEndPoint from, RegisterCompletion completion, List<ControlAction> actions)
    {
        var rec = register.Records[index];
        if (IsReplay(site, register, Locate(EidKey.From(rec.Eid)), from, out var r))
        {
            completion.Refused[index] = true;
            RefuseReplay(site, rec.Eid.Canonical(), register.Nonce, from, r, actions);
        }
    }

    /// <summary>True when the registrant the record speaks for (or, for a new one, its site's others here) accepted this nonce.</summary>
    private static bool IsReplay(SiteConfig site, MapRegister register, RegisteredEid? entry, IPEndPoint from, out Registrant? r)
    {
        r = entry?.Find(site, register.XtrId, from.Address);
        ulong nonce = register.Nonce;
        return nonce != 0 && (r is not null ? r.Seen(nonce) : entry is not null && entry.SeenBySite(site, nonce));
    }

    private bool RefuseReplay(SiteConfig site, EidPrefix eid, ulong nonce, IPEndPoint from, Registrant? r, List<ControlAction> actions) =>
        Refuse(DropReason.ReplayedNonce, site, eid, from,
            $"nonce {Util.Hex(nonce)} already accepted{(r is { Tombstone: true } ? " before the registration was withdrawn or expired" : "")} (replayed Map-Register)", actions);

    /// <summary>Applies record <paramref name="index"/>, which this shard owns; a refusal is noted in the completion; a short prefix shard 0 took is copied to the other shards.</summary>
    private void ApplyOwned(SiteConfig site, MapRegister register, int index, IPEndPoint from, IPEndPoint local, DateTimeOffset now, RegisterCompletion completion, List<ControlAction> actions, bool checkReplay)
    {
        if (completion.Refused[index]) return;   // refused as a replay before anything was applied
        var rec = register.Records[index];
        var key = EidKey.From(rec.Eid);
        if (!ApplyRecord(site, rec, key, register, from, now, checkReplay ? ApplyMode.Local : ApplyMode.Checked, actions))
        {
            completion.Refused[index] = true;
            return;
        }
        if (_shard is not null && _shard.Plan.IsReplicated(key)) Replicate(site, register, index, from, local, actions);
    }

    /// <summary>
    /// Every owner has answered: count the Map-Register and send the Map-Notify for what was registered (none when
    /// all was refused).
    /// </summary>
    private void FinishRegister(SiteConfig site, MapRegister register, IPEndPoint from, IPEndPoint local, RegisterCompletion completion, DateTimeOffset now, List<ControlAction> actions)
    {
        var confirmed = new List<MappingRecord>(register.Records.Count);
        for (int i = 0; i < register.Records.Count; i++)
        {
            if (!completion.Refused[i]) confirmed.Add(register.Records[i]);
        }
        if (confirmed.Count == 0) return;   // every record refused (counted and logged where refused): no Map-Notify
        _counters.Count(ControlEvent.RegistrationAccepted);
        if (_debug)
        {
            actions.Add(new LogAction(LogLevel.Debug, "map-register-accepted",
                $"Map-Register nonce {Util.Hex(register.Nonce)} from {from}, site '{site.Name}', {register.Records.Count} record(s)"));
        }
        if (!register.WantMapNotify) return;
        byte[] bytes;
        if (confirmed.Count == register.Records.Count && completion.RegisterPayload is { } payload)
        {
            bytes = NotifyFromRegister(payload, register, site.AuthKey);
        }
        else
        {
            var notify = new MapNotify
            {
                Nonce = register.Nonce, KeyId = register.KeyId, Algorithm = register.Algorithm,
                Records = confirmed, XtrId = register.XtrId, SiteId = register.SiteId,
            };
            bytes = notify.ToSignedBytes(site.AuthKey);
        }
        var fromEp = Util.FromFor(local, from);
        actions.Add(new SendAction(from, bytes, fromEp));
        _counters.Count(ControlEvent.MapNotifySent);
        // A Map-Notify answering a Map-Register (M bit) is itself the acknowledgement (RFC 9301 section 5.7): sent once,
        // never retransmitted, and no Map-Notify-Ack is expected for it.
    }

    /// <summary>
    /// The Map-Notify for a Map-Register all of whose records were taken: the Map-Register's own bytes with word 0
    /// rewritten (type 4; I when the xTR-ID/site-ID trailer is there; the Map-Register's P/S/E/T/a/R/M bits are
    /// not Map-Notify flags) and signed again (issue 11, item 6). Each record is echoed exactly as the ETR sent it,
    /// so a peer that wrote a layout we only read (lispers.net's padded Multicast-Info LCAF) finds its own bytes and
    /// can verify them; no record is decoded and re-encoded. Layout (RFC 9301 5.6/5.7): word 0, nonce, key-id,
    /// algorithm, authentication length and data, records, [xTR-ID, site-ID].
    /// </summary>
    private static byte[] NotifyFromRegister(byte[] registerPayload, MapRegister register, AuthenticationKey key)
    {
        var b = (byte[])registerPayload.Clone();
        b[0] = (byte)(((int)MessageType.MapNotify << 4) | (register.XtrIdPresent ? 0x08 : 0));
        b[1] = 0;
        b[2] = 0;
        MessageAuthentication.Sign(b, register.Algorithm, key);
        return b;
    }

    private enum ApplyMode
    {
        /// <summary>Verified here; a new registration needs a table slot; checked for replay here.</summary>
        Local,
        /// <summary>As <see cref="Local"/>, already checked for replay (a Map-Register with several records).</summary>
        Checked,
        /// <summary>A copy of a short prefix shard 0 owns: not counted, not logged.</summary>
        Replica,
    }

    /// <summary>
    /// Registers, refreshes or withdraws one record; false when it was refused (counted and logged).
    /// <para>
    /// Replay protection (issue 12, item 5): a registrant remembers the nonces of its last <see cref="NonceWindow"/>
    /// accepted Map-Registers, and when withdrawn (TTL 0) or expired it stays as a tombstone (no slot, not shown,
    /// not answered for) for one registration lifetime. A record whose registrant (or tombstone) has seen the
    /// nonce is refused: the same message is never taken twice, a withdrawal or an expiry cannot be undone, an
    /// older Map-Register cannot roll a newer one back. A new registrant is checked against its site's others for
    /// the EID too (a replay sent from another address). The shard owning the record decides; replicas follow.
    /// </para>
    /// </summary>
    private bool ApplyRecord(SiteConfig site, MappingRecord rec, in EidKey key, MapRegister register, IPEndPoint from, DateTimeOffset now, ApplyMode mode, List<ControlAction> actions)
    {
        var eid = rec.Eid.Canonical();
        var entry = Locate(key);
        bool replica = mode == ApplyMode.Replica;
        ulong nonce = register.Nonce;
        Registrant? r;
        if (mode == ApplyMode.Local)
        {
            if (IsReplay(site, register, entry, from, out r)) return RefuseReplay(site, eid, nonce, from, r, actions);
        }
        else r = entry?.Find(site, register.XtrId, from.Address);
        if (rec.TtlRaw == 0)
        {
            if (r is null) return true;
            if (replica)
            {
                RemoveRegistrant(r);
                return true;
            }
            r.Accept(nonce);
            if (!r.Tombstone)
            {
                Bury(r, now.UtcTicks);
                Settle(r.Entry);
                actions.Add(new LogAction(LogLevel.Info, "registration-withdrawn", $"site '{site.Name}' {eid} withdrawn by {from} (TTL 0)"));
            }
            return true;
        }
        var timeout = register.UseTtlForTimeout ? rec.Ttl : _options.RegistrationTimeout;
        var flags = FlagsOf(register);
        if (r is null || r.Tombstone)
        {
            if (!replica)
            {
                if (r is null && entry is not null && entry.Count >= Math.Max(1, _options.MaxRegistrantsPerEid))
                {
                    // At the limit: a tombstone gives way (its replay window ends early), a live registrant never does.
                    if (entry.OldestTombstone() is { } old) RemoveRegistrant(old);
                    else return Refuse(DropReason.RegistrantsPerEid, site, eid, from,
                        $"EID has {entry.Count} registrants, the limit (map_server.max_registrants_per_eid {_options.MaxRegistrantsPerEid})", actions);
                    entry = Locate(key);   // removing the last one removed the entry
                }
                if (!Reserve(site, eid, from, actions)) return false;
            }
            var tomb = r;
            if (entry is null)
            {
                entry = new RegisteredEid(eid, key);
                _table.Set(key, entry);
            }
            r = new Registrant(entry, site, _registerers.Acquire(from), now.UtcTicks) { Replica = replica };
            entry.Add(r);
            if (!r.Replica) _ownCount++;
            if (tomb is not null)
            {
                // A tombstone registering again (a new nonce): a new registration, as if the tombstone were gone,
                // that keeps the tombstone's replay memory.
                r.InheritNonces(tomb);
                RemoveRegistrant(tomb);
            }
            Settle(entry);
            r.Accept(nonce);
            Update(r, rec, register, from, flags, now, timeout);
            if (!replica)
            {
                actions.Add(new LogAction(LogLevel.Info, "registration-accepted",
                    $"site '{site.Name}' {eid} registered by {from} with RLOCs {string.Join(", ", rec.Locators.Select(l => l.Locator.ToText()))}, flags {Registration.FormatFlags(flags)}, expires in {timeout.TotalSeconds:0}s"));
            }
            return true;
        }
        r.Accept(nonce);
        bool changed = !SameLocators(r.Rlocs, rec.Locators);
        Update(r, rec, register, from, flags, now, timeout);
        if (changed && !replica)
        {
            actions.Add(new LogAction(LogLevel.Info, "registration-changed",
                $"site '{site.Name}' {eid} RLOCs now {string.Join(", ", rec.Locators.Select(l => l.Locator.ToText()))} from {from}"));
        }
        return true;
    }

    /// <summary>The most registrations <paramref name="site"/> may hold: its own max_registrations, else its share of the table.</summary>
    internal int SiteLimit(SiteConfig site) => site.MaxRegistrations > 0 ? site.MaxRegistrations : _defaultSiteLimit;

    /// <summary>Takes a table slot for a new registration; when a limit is reached, counts and logs the refusal.</summary>
    private bool Reserve(SiteConfig site, EidPrefix eid, IPEndPoint from, List<ControlAction> actions)
    {
        int siteLimit = SiteLimit(site);
        if (_limits.TryReserve(site.Name, _options.MaxRegistrations, siteLimit, out bool siteFull)) return true;
        // Refused, so neither counted as accepted nor confirmed by Map-Notify: the ETR must not believe it is registered.
        return siteFull
            ? Refuse(DropReason.SiteRegistrationLimit, site, eid, from, site.MaxRegistrations > 0
                ? $"site holds its limit of {siteLimit} registrations (max_registrations)"
                : $"site holds its share of the table, {siteLimit} registrations (map_server.max_registrations / {_options.Sites.Count} sites; set the site's max_registrations to change it)", actions)
            : Refuse(DropReason.RegistrationTableFull, site, eid, from, $"registration table full ({_options.MaxRegistrations}, map_server.max_registrations)", actions);
    }

    /// <summary>A record refused after authentication: counted (reason and registration-refused), logged, not confirmed by Map-Notify.</summary>
    private bool Refuse(DropReason reason, SiteConfig site, EidPrefix eid, IPEndPoint from, string text, List<ControlAction> actions)
    {
        _counters.Drop(reason);
        _counters.Count(ControlEvent.RegistrationRefused);
        actions.Add(new LogAction(LogLevel.Warning, "registration-refused", $"site '{site.Name}' {eid} from {from}: {ControlCounters.Kebab(reason.ToString())}: {text}"));
        return false;
    }

    /// <summary>Shard 0 owns a short prefix; every other shard gets a copy for its lookups.</summary>
    private void Replicate(SiteConfig site, MapRegister register, int index, IPEndPoint from, IPEndPoint local, List<ControlAction> actions)
    {
        for (int i = 0; i < _shard!.Plan.Count; i++)
        {
            if (i == _shard.Index) continue;
            actions.Add(new ShardHandoffAction(i, new MapServerHandoff { Site = site, Register = register, From = from, Local = local, RecordIndexes = [index], Replica = true }));
        }
    }

    /// <summary>
    /// Applies records another shard verified and handed over (or a replica of a short prefix). Runs on this
    /// shard's thread; returns log lines (and, from shard 0, the replicas of short prefixes it now owns).
    /// </summary>
    public IReadOnlyList<ControlAction> ApplyHandoff(MapServerHandoff work, DateTimeOffset now)
    {
        var actions = new List<ControlAction>();
        bool several = !work.Replica && work.RecordIndexes.Count > 1;
        foreach (int i in work.RecordIndexes)
        {
            if (several) CheckReplay(work.Site, work.Register, i, work.From, work.Completion!, actions);
        }
        foreach (int i in work.RecordIndexes)
        {
            if (work.Replica)
            {
                var rec = work.Register.Records[i];
                ApplyRecord(work.Site, rec, EidKey.From(rec.Eid), work.Register, work.From, now, ApplyMode.Replica, actions);
            }
            else ApplyOwned(work.Site, work.Register, i, work.From, work.Local, now, work.Completion!, actions, checkReplay: !several);
        }
        if (work.Completion is { } c && c.Arrive()) FinishRegister(work.Site, work.Register, work.From, work.Local, c, now, actions);
        return actions;
    }

    private bool HasCandidate(EidPrefix eid)
    {
        foreach (var s in _options.Sites)
        {
            if (Covers(s, eid)) return true;
        }
        return false;
    }

    private void Update(Registrant r, MappingRecord rec, MapRegister register, IPEndPoint from, RegistrationFlags flags, DateTimeOffset now, TimeSpan timeout)
    {
        if (!r.Registerer.Equals(from))
        {
            if (!r.Registerer.Address.Equals(from.Address)) r.Entry.Invalidate();
            _registerers.Release(r.Registerer);
            r.Registerer = _registerers.Acquire(from);
        }
        if (!SameLocators(r.Rlocs, rec.Locators))
        {
            r.Entry.Invalidate();
            if (r.Rlocs.Count > 0) _locatorSets.Release(r.Rlocs);
            r.Rlocs = _locatorSets.Acquire(rec.Locators);
        }
        r.LastRegistered = now.UtcTicks;
        r.ExpiresAt = (now + timeout).UtcTicks;
        r.Flags = flags;
        r.RecordTtlRaw = rec.TtlRaw;
        r.MapVersion = rec.MapVersion;
        r.Algorithm = register.Algorithm;
        r.XtrId = register.XtrId;
        r.SiteId = register.SiteId;
        // Queued once; a later expiry is picked up when the old one comes due (Tick re-queues). Only an earlier
        // expiry (a shorter TTL) needs a new heap entry now; the old one is then stale and skipped.
        if (r.QueuedAt == 0 || r.ExpiresAt < r.QueuedAt)
        {
            r.QueuedAt = r.ExpiresAt;
            _expiry.Enqueue(r, r.ExpiresAt);
        }
    }

    private void RemoveRegistrant(Registrant r)
    {
        if (r.Removed) return;
        r.Removed = true;
        var entry = r.Entry;
        entry.Remove(r);
        Settle(entry);
        _registerers.Release(r.Registerer);
        if (r.Rlocs.Count > 0) _locatorSets.Release(r.Rlocs);
        if (r.Replica || r.Tombstone) return;
        _ownCount--;
        _limits.Release(r.Site.Name);
    }

    /// <summary>
    /// Where an EID's entry lives: in the table while it has a registration (live, expired-not-yet-ticked, or a replica),
    /// among the graves while it holds only tombstones (so they narrow no negative reply and no lookup walks them),
    /// nowhere once empty. Called after every change of who an entry holds.
    /// </summary>
    private void Settle(RegisteredEid entry)
    {
        bool graveNow = entry.Count > 0 && !entry.AnyRegistered();
        if (entry.Count == 0)
        {
            if (entry.InGraves) _graves.Remove(entry.Key);
            else _table.Remove(entry.Key);
            entry.InGraves = false;
            return;
        }
        if (graveNow == entry.InGraves) return;
        var key = entry.Key;
        if (graveNow)
        {
            _table.Remove(key);
            _graves[key] = entry;
        }
        else
        {
            _graves.Remove(key);
            _table.Set(key, entry);
        }
        entry.InGraves = graveNow;
    }

    private RegisteredEid? Locate(in EidKey key) => _table.Get(key) ?? (_graves.Count > 0 && _graves.TryGetValue(key, out var g) ? g : null);

    /// <summary>
    /// Withdrawn or expired: gives the slot back and keeps the registrant as a tombstone (its nonces, address and
    /// RLOCs for identity) until one registration lifetime after it ended; <see cref="Tick"/> removes it then.
    /// </summary>
    private void Bury(Registrant r, long nowTicks)
    {
        long ended = Math.Min(r.ExpiresAt, nowTicks);
        long lifetime = Math.Max(r.ExpiresAt - r.LastRegistered, TimeSpan.TicksPerSecond);
        r.Tombstone = true;
        r.ExpiresAt = ended;
        r.QueuedAt = ended + lifetime;
        _expiry.Enqueue(r, r.QueuedAt);
        _ownCount--;
        _limits.Release(r.Site.Name);
    }

    private static bool SameLocators(IReadOnlyList<LocatorRecord> a, IReadOnlyList<LocatorRecord> b) => LocatorListComparer.Instance.Equals(a, b);

    private List<LispAddress> MergedLocators(EidPrefix eid) =>
        _table.Get(EidKey.From(eid.Canonical())) is { } entry
            ? entry.All().Where(r => !r.Tombstone).SelectMany(r => r.Rlocs).Select(l => l.Locator).Distinct().OrderBy(a => a.ToText(), StringComparer.Ordinal).ToList()
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

    /// <summary>
    /// A Map-Notify-Ack. This map-server sends only Map-Notifies that answer a Map-Register, which need no Ack (RFC 9301
    /// section 5.7: only an unsolicited Map-Notify is acknowledged), so every Ack is for nothing it awaits: counted
    /// (stale nonce) and dropped. Older ETRs (this project's before the change, cpload, lispers.net's acking mode) send them.
    /// </summary>
    public IReadOnlyList<ControlAction> HandleMapNotifyAck(MapNotify ack, ReceivedPacket packet, DateTimeOffset now)
    {
        _counters.Drop(DropReason.StaleNonce);
        return _debug ? [new LogAction(LogLevel.Debug, "map-notify-ack-dropped", $"Map-Notify-Ack nonce {Util.Hex(ack.Nonce)} from {packet.From}: no unsolicited Map-Notify awaits it")] : [];
    }

    // ---------------------------------------------------------------- Map-Request

    private static readonly Func<RegisteredEid, long, bool> Live = static (e, now) => e.HasLive(now);

    /// <summary>The most specific EID-prefix with a live registration covering <paramref name="eid"/>.</summary>
    private RegisteredEid? Find(EidPrefix eid, DateTimeOffset now) => _table.Longest(EidKey.From(eid), Live, now.UtcTicks);

    /// <summary>The live registration set with the longest prefix covering <paramref name="eid"/>, or null.</summary>
    public IReadOnlyList<Registration>? Lookup(EidPrefix eid, DateTimeOffset now) =>
        Find(eid, now) is { } e ? e.All().Where(r => r.ExpiresAt > now.UtcTicks).Select(r => r.View()).ToList() : null;

    /// <summary>True when a live registration covers <paramref name="eid"/>.</summary>
    public bool Holds(EidPrefix eid, DateTimeOffset now) => Find(eid, now) is not null;

    /// <summary>True when some site configures a prefix covering <paramref name="eid"/>.</summary>
    public bool HasSiteFor(EidPrefix eid)
    {
        var c = eid.Canonical();
        foreach (var (_, p) in _sitePrefixes)
        {
            if (p.Covers(c)) return true;
        }
        return false;
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
        return Answer(ecm, request, packet, now, Find(request.Records[0], now));
    }

    /// <summary>The Map-Resolver's path: it looked the EID up already (one lookup per request, not two).</summary>
    internal IReadOnlyList<ControlAction> HandleMapRequest(EncapsulatedControlMessage ecm, MapRequest request, ReceivedPacket packet, DateTimeOffset now, bool lookedUp, object? found) =>
        lookedUp ? Answer(ecm, request, packet, now, (RegisteredEid?)found) : HandleMapRequest(ecm, request, packet, now);

    /// <summary>What the Map-Resolver hands back to <see cref="HandleMapRequest(EncapsulatedControlMessage, MapRequest, ReceivedPacket, DateTimeOffset, bool, object?)"/>.</summary>
    internal object? FindForResolver(EidPrefix eid, DateTimeOffset now) => Find(eid, now);

    private IReadOnlyList<ControlAction> Answer(EncapsulatedControlMessage ecm, MapRequest request, ReceivedPacket packet, DateTimeOffset now, RegisteredEid? entry)
    {
        var eid = request.Records[0];
        if (entry is null)
        {
            return NegativeReply(request, ecm, packet, now, Negative(eid, now));
        }
        long nowTicks = now.UtcTicks;
        Registrant? newest = null;
        bool proxy = false;
        int live = 0;
        for (int i = 0; i < entry.Count; i++)
        {
            var r = entry[i];
            if (r.ExpiresAt <= nowTicks) continue;
            live++;
            if (newest is null || r.LastRegistered > newest.LastRegistered) newest = r;
            proxy |= (r.Flags & RegistrationFlags.ProxyReply) != 0;
        }
        if (newest is null) return NegativeReply(request, ecm, packet, now, Negative(eid, now));
        if (proxy)
        {
            IReadOnlyList<LocatorRecord> locators = newest.Rlocs;
            if (live > 1)
            {
                var merged = new List<LocatorRecord>();
                foreach (var r in entry.All())
                {
                    if (r.ExpiresAt <= nowTicks) continue;
                    foreach (var l in r.Rlocs)
                    {
                        if (!merged.Exists(x => x.Locator.Equals(l.Locator))) merged.Add(l);
                    }
                }
                locators = merged;
            }
            var eidOfRecord = entry.Eid;
            var record = new MappingRecord(eidOfRecord, locators, newest.RecordTtlRaw, MapReplyAction.NoAction, Authoritative: false, MapVersion: newest.MapVersion);
            var reply = new MapReply { Nonce = request.Nonce, Records = [record] };
            if (!TryReplyTarget(request, ecm, packet, out var to))
            {
                _counters.Drop(DropReason.NoReplyPath);
                return [new LogAction(LogLevel.Warning, "map-request-dropped", $"Map-Request for {eid} from {packet.From}: no ITR-RLOC to answer to")];
            }
            _counters.Count(ControlEvent.ProxyMapReplySent);
            if (_options.SmrOnChange) RememberProxyRequester(to, eid, now);
            var send = new SendAction(to, reply.ToBytes(), Util.FromFor(packet.Local, to));
            if (!_debug) return [send];
            return [send, new LogAction(LogLevel.Debug, "proxy-map-reply", $"proxy Map-Reply for {eid} -> {eidOfRecord} to {to}, nonce {Util.Hex(request.Nonce)}")];
        }
        var forwarded = ecm with { ForMapServer = false, ForEtr = true };
        var etr = ForwardTarget(entry, nowTicks, request.Nonce, packet.Local, newest);
        _counters.Count(ControlEvent.MapRequestForwarded);
        var forward = new SendAction(etr, forwarded.ToBytes(), Util.FromFor(packet.Local, etr));
        if (!_debug) return [forward];
        return [forward, new LogAction(LogLevel.Debug, "map-request-forwarded", $"Map-Request for {eid} forwarded to ETR {etr} ({entry.Eid}), nonce {Util.Hex(request.Nonce)}")];
    }

    /// <summary>
    /// Where a Map-Request for a registration without proxy reply goes (RFC 9301 section 8.2): to the registered ETR,
    /// i.e. one of the registered RLOCs, on the control port, not to the source address and port the Map-Register
    /// came from (an ETR may send from an ephemeral port, or from another address than its RLOC). Among the live
    /// registrants' reachable IP RLOCs with priority below 255, the best (lowest) priority wins and the weights
    /// share the requests out (the nonce picks, so retransmissions of one request may go elsewhere); an RLOC of the
    /// family the request arrived on is preferred, since that socket sends. With no usable RLOC: the registering
    /// address on the control port.
    /// </summary>
    private static IPEndPoint ForwardTarget(RegisteredEid entry, long now, ulong nonce, IPEndPoint local, Registrant newest)
    {
        int port = local.Port == 0 ? DataHeader.ControlPort : local.Port;   // the control port this map-server answers on
        for (int pass = 0; pass < 2; pass++)
        {
            int best = 255;
            long weights = 0, count = 0;
            for (int i = 0; i < entry.Count; i++)
            {
                var r = entry[i];
                if (r.ExpiresAt <= now) continue;
                foreach (var l in r.Rlocs)
                {
                    if (!Usable(l, local, pass)) continue;
                    if (l.Priority < best) { best = l.Priority; weights = 0; count = 0; }
                    if (l.Priority == best) { weights += l.Weight; count++; }
                }
            }
            if (best == 255) continue;
            // RFC 9300 section 5.3 shares: by weight; all weights zero means equal shares.
            bool equal = weights == 0;
            long pick = (long)(nonce % (ulong)(equal ? count : weights));
            for (int i = 0; i < entry.Count; i++)
            {
                var r = entry[i];
                if (r.ExpiresAt <= now) continue;
                foreach (var l in r.Rlocs)
                {
                    if (!Usable(l, local, pass) || l.Priority != best) continue;
                    pick -= equal ? 1 : l.Weight;
                    if (pick < 0) return new IPEndPoint(((IpAddress)l.Locator).Address, port);
                }
            }
        }
        return new IPEndPoint(newest.Registerer.Address, port);

        // Pass 0: the family of the socket the request came in on; pass 1: any family.
        static bool Usable(LocatorRecord l, IPEndPoint local, int pass) =>
            l.Reachable && l.Priority < 255 && l.Locator is IpAddress ip && !Util.IsUnspecified(ip.Address)
            && (pass == 1 || ip.Address.AddressFamily == local.AddressFamily);
    }

    /// <summary>
    /// The negative record this Map-Server answers for <paramref name="eid"/> (nothing registered covers it):
    /// sized by <see cref="MapServerOptions.NegativePrefix"/>, TTL 1 min when a site covers it, else 15 min.
    /// </summary>
    /// <remarks>
    /// The least-specific uncovered prefix is one bit longer than the most bits the EID shares with anything
    /// registered or configured that does not contain it (PrefixMath.LeastSpecificUncovered states why); the
    /// registered part comes from one trie walk (<see cref="EidTable{T}.DeepestDivergence"/>), the configured
    /// part from the site prefixes (configuration-sized).
    /// </remarks>
    public MappingRecord Negative(EidPrefix eid, DateTimeOffset now)
    {
        var c = eid.Canonical();
        bool siteCovers = false;
        int minLength = 0;
        int siteDivergence = -1;
        var ip = c.Inner as IpAddress;
        foreach (var (_, pc) in _sitePrefixes)
        {
            if (pc.Covers(c))
            {
                siteCovers = true;
                if (pc.IsIp) minLength = Math.Max(minLength, pc.MaskLength);
            }
            else if (ip is not null && pc.InstanceId == c.InstanceId && pc.Inner is IpAddress qip && qip.IsV4 == ip.IsV4)
            {
                int cpl = PrefixMath.CommonPrefixLength(ip.Address, qip.Address);
                if (cpl < pc.MaskLength) siteDivergence = Math.Max(siteDivergence, cpl);
            }
        }
        EidPrefix prefix;
        if (ip is null) prefix = c;
        else if (_options.NegativePrefix == NegativePrefixPolicy.HostLength) prefix = PrefixMath.HostPrefix(c);
        else
        {
            int floor = _options.NegativePrefix == NegativePrefixPolicy.RequestedPrefix ? Math.Max(minLength, c.MaskLength) : minLength;
            int length = Math.Clamp(floor, 0, ip.HostMaskLength);
            int divergence = Math.Max(siteDivergence, _table.DeepestDivergence(EidKey.From(c)));
            if (divergence >= 0) length = Math.Max(length, divergence + 1);
            // A shard holds only its own blocks: never vouch for a wider range than the block the EID is in.
            if (_shard is not null) length = Math.Max(length, ShardPlan.SteeringLength(ip.IsV4 ? EidFamily.Ipv4 : EidFamily.Ipv6));
            length = Math.Min(length, ip.HostMaskLength);
            prefix = EidPrefix.Create(c.InstanceId, new IpAddress(EidPrefix.MaskAddress(ip.Address, length)), length);
        }
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
        var send = new SendAction(to, reply.ToBytes(), Util.FromFor(packet.Local, to));
        if (!_debug) return [send];
        return
        [
            send,
            new LogAction(LogLevel.Debug, "negative-map-reply",
                $"negative Map-Reply for {request.Records[0]}: {record.Eid} {record.Action} TTL {record.Ttl.TotalMinutes:0.##} min to {to}"),
        ];
    }

    /// <summary>
    /// A Map-Reply for an ECM Map-Request goes to an ITR-RLOC at the inner UDP source port. An ECM without an
    /// inner IP header (lispers.net, name EIDs) has no inner source to fall back on; without a UDP header either,
    /// there is no port: an ITR-RLOC on 4342.
    /// </summary>
    internal static bool TryReplyTarget(MapRequest request, EncapsulatedControlMessage ecm, ReceivedPacket packet, out IPEndPoint to)
    {
        var addr = Util.ReplyAddress(request, packet.Local, ecm.InnerHeader?.Source);
        ushort port = ecm.InnerSourcePort is { } sp and not 0 ? sp : DataHeader.ControlPort;
        to = addr is null || Util.IsUnspecified(addr) ? new IPEndPoint(IPAddress.None, 0) : new IPEndPoint(addr, port);
        return addr is not null && !Util.IsUnspecified(addr);
    }

    // ---------------------------------------------------------------- timers and show

    /// <summary>Expires registrations: O(due items), not O(table).</summary>
    public IReadOnlyList<ControlAction> Tick(DateTimeOffset now)
    {
        var actions = new List<ControlAction>();
        long nowTicks = now.UtcTicks;
        while (_expiry.TryPeek(out var r, out var at) && at <= nowTicks)
        {
            _expiry.Dequeue();
            if (r.Removed || at != r.QueuedAt) continue;         // removed, or a stale entry after a shortened expiry
            if (r.Tombstone)
            {
                RemoveRegistrant(r);                              // its replay horizon is over
                continue;
            }
            if (r.ExpiresAt > nowTicks)
            {
                r.QueuedAt = r.ExpiresAt;                         // refreshed since it was queued
                _expiry.Enqueue(r, r.ExpiresAt);
                continue;
            }
            if (r.Replica)
            {
                RemoveRegistrant(r);
                continue;
            }
            Bury(r, nowTicks);
            Settle(r.Entry);
            _counters.Count(ControlEvent.RegistrationExpired);
            actions.Add(new LogAction(LogLevel.Warning, "registration-timeout",
                $"site '{r.Site.Name}' {r.Entry.Eid} from {r.Registerer} expired (last registered {Time(r.LastRegistered):O})"));
        }
        return actions;
    }

    /// <summary>Every live registration (one per EID and registerer), ordered by EID text. Management reads only: O(n log n).</summary>
    public IReadOnlyList<Registration> Registrations(DateTimeOffset now) =>
        RegistrationsUnordered(now).OrderBy(r => r.Eid.ToString(), StringComparer.Ordinal).ThenBy(r => r.Registerer.ToString(), StringComparer.Ordinal).ToList();

    /// <summary>
    /// The live registrations in table order, unsorted: what a management read takes on the control thread (one
    /// immutable view per registration, no text), leaving the sort by text to the caller's own thread. The sort
    /// was most of the 816 ms a 100k-registration read held the control thread for (issue 12, finding 1).
    /// </summary>
    public List<Registration> RegistrationsUnordered(DateTimeOffset now)
    {
        var list = new List<Registration>();
        long t = now.UtcTicks;
        foreach (var m in new[] { this }.Concat(_siblings))
            foreach (var e in m._table.Values())
                foreach (var r in e.All())
                    if (!r.Replica && !r.Tombstone && r.ExpiresAt > t) list.Add(r.View());
        return list;
    }

    /// <summary>Whether exactly <paramref name="eid"/> has a live registration in any shard (call it with every shard parked).</summary>
    public bool HasLiveRegistration(EidPrefix eid, DateTimeOffset now)
    {
        var key = EidKey.From(eid.Canonical());
        long t = now.UtcTicks;
        for (int shard = 0; shard <= _siblings.Count; shard++)
        {
            var m = shard == 0 ? this : _siblings[shard - 1];
            if (m._table.Get(key) is not { } e) continue;
            foreach (var r in e.All())
                if (!r.Replica && !r.Tombstone && r.ExpiresAt > t) return true;
        }
        return false;
    }

    /// <summary>Where a paged walk of the registrations stopped: a shard (0: this one, then its siblings) and the last key read there.</summary>
    public readonly record struct RegistrationCursor(int Shard, EidKey? After);

    /// <summary>
    /// One bounded slice of <see cref="RegistrationsUnordered"/>: the live registrations of at most
    /// <paramref name="maxEntries"/> EIDs after <paramref name="from"/>, in table key order, appended to
    /// <paramref name="into"/>; returns where to go on, or null when every shard has been read. Call it with every
    /// shard parked. The management API reads the table in such slices, one per control-thread visit, so no visit
    /// costs more than a slice however large the table is (issue 12: a whole-table read of 250k registrations held
    /// the control thread 53 ms and set the soak's p99).
    /// </summary>
    public RegistrationCursor? RegistrationsSlice(RegistrationCursor from, int maxEntries, DateTimeOffset now, List<Registration> into)
    {
        long t = now.UtcTicks;
        int shard = from.Shard;
        EidKey? after = from.After;
        int entries = 0;
        EidKey? last = null;
        while (shard <= _siblings.Count)
        {
            var m = shard == 0 ? this : _siblings[shard - 1];
            m._table.WalkAfter(after, (key, e) =>
            {
                foreach (var r in e.All())
                    if (!r.Replica && !r.Tombstone && r.ExpiresAt > t) into.Add(r.View());
                last = key;
                return ++entries < maxEntries;
            });
            if (entries >= maxEntries) return new RegistrationCursor(shard, last);
            shard++;
            after = null;
        }
        return null;
    }

    /// <summary>
    /// lispers.net's site table: per site, each configured prefix (registered or not) and each registered
    /// more-specific under it.
    /// </summary>
    public IReadOnlyList<SiteTableRow> SiteTable(DateTimeOffset now)
    {
        var bySite = Registrations(now).GroupBy(r => r.Site, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.ToList(), StringComparer.Ordinal);
        var rows = new List<SiteTableRow>();
        foreach (var site in _options.Sites)
        {
            var live = bySite.GetValueOrDefault(site.Name) ?? [];
            var byEid = live.GroupBy(r => r.Eid.ToString(), StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.ToList(), StringComparer.Ordinal);
            var shown = new HashSet<string>(StringComparer.Ordinal);
            foreach (var p in site.EidPrefixes)
            {
                var pc = p.Canonical();
                string text = pc.ToString();
                rows.Add(Row(site.Name, pc, true, byEid.GetValueOrDefault(text) ?? []));
                shown.Add(text);
            }
            foreach (var (text, regs) in byEid)
            {
                if (!shown.Add(text)) continue;
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

    /// <summary>
    /// Config reload (SIGHUP): takes new sites and limits without losing the table. A site whose settings are all the
    /// same keeps its <see cref="SiteConfig"/> object, so its registrations stay as they are. A changed site (key,
    /// prefixes, algorithms, limit) takes the new settings: its registrations that the new prefixes still cover stay
    /// (the next Map-Register authenticates with the new key), the others are dropped. A removed site's registrations
    /// are dropped. The shard, EID filter, name and negative-reply policy of this map-server are kept from before.
    /// Runs on the thread that owns this map-server; returns log lines saying what changed.
    /// </summary>
    /// <param name="droppedBySite">
    /// Registrations dropped per site name, added to (shards of one map-server share one, the logging shard last, so its
    /// lines count every slice); null: this map-server's own.
    /// </param>
    public IReadOnlyList<ControlAction> Reconfigure(MapServerOptions options, Dictionary<string, int>? droppedBySite = null)
    {
        var actions = new List<ControlAction>();
        var old = _options.Sites;
        var kept = new List<SiteConfig>(options.Sites.Count);
        foreach (var s in options.Sites)
        {
            if (s.Key.Length == 0) throw new ArgumentException($"site '{s.Name}' has an empty key");
            var before = old.FirstOrDefault(o => o.Name == s.Name);
            kept.Add(before is not null && SameSite(before, s) ? before : s);
        }
        var current = new HashSet<SiteConfig>(kept, ReferenceEqualityComparer.Instance);
        var byName = kept.ToDictionary(s => s.Name, StringComparer.Ordinal);
        var entries = new List<RegisteredEid>();
        foreach (var e in _table.Values()) entries.Add(e);
        entries.AddRange(_graves.Values);
        droppedBySite ??= new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var e in entries)
        {
            foreach (var r in e.All())
            {
                if (r.Removed || current.Contains(r.Site)) continue;
                if (byName.TryGetValue(r.Site.Name, out var renewed) && Covers(renewed, e.Eid))
                {
                    r.Site = renewed;
                    e.Invalidate();
                    continue;
                }
                if (!r.Tombstone && !r.Replica) droppedBySite[r.Site.Name] = droppedBySite.GetValueOrDefault(r.Site.Name) + 1;
                RemoveRegistrant(r);
            }
        }
        _options = _options with
        {
            Sites = kept,
            RegistrationTimeout = options.RegistrationTimeout,
            MaxRegistrations = options.MaxRegistrations,
            MaxRegistrantsPerEid = options.MaxRegistrantsPerEid,
            LogLevel = options.LogLevel,
        };
        _debug = _options.LogLevel <= LogLevel.Debug;
        _defaultSiteLimit = kept.Count > 1 ? (int)Math.Min(int.MaxValue, ((long)_options.MaxRegistrations + kept.Count - 1) / kept.Count) : 0;
        _sitePrefixes.Clear();
        foreach (var s in kept)
        {
            foreach (var p in s.EidPrefixes) _sitePrefixes.Add((s, p.Canonical()));
        }
        foreach (var s in kept)
        {
            var before = old.FirstOrDefault(o => o.Name == s.Name);
            if (before is null) actions.Add(new LogAction(LogLevel.Info, "site-added", $"site {s.Name}: {string.Join(", ", s.EidPrefixes)}"));
            else if (!ReferenceEquals(before, s)) actions.Add(new LogAction(LogLevel.Info, "site-changed", $"site {s.Name}: new settings; {droppedBySite.GetValueOrDefault(s.Name)} registration(s) it no longer covers dropped"));
        }
        foreach (var o in old)
        {
            if (!byName.ContainsKey(o.Name)) actions.Add(new LogAction(LogLevel.Info, "site-removed", $"site {o.Name}: removed; {droppedBySite.GetValueOrDefault(o.Name)} registration(s) dropped"));
        }
        return actions;
    }

    /// <summary>Same settings (the record's own equality compares lists by reference and the prepared key).</summary>
    public static bool SameSite(SiteConfig a, SiteConfig b) =>
        a.Name == b.Name && a.Key == b.Key && a.AcceptMoreSpecifics == b.AcceptMoreSpecifics && a.AcceptAnyEid == b.AcceptAnyEid &&
        a.Description == b.Description && a.MaxRegistrations == b.MaxRegistrations &&
        a.AllowedAlgorithms.SequenceEqual(b.AllowedAlgorithms) &&
        a.EidPrefixes.Select(p => p.ToString()).SequenceEqual(b.EidPrefixes.Select(p => p.ToString()), StringComparer.Ordinal);

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
