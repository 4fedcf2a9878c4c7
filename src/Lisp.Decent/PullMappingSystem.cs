using System.Globalization;
using System.Net;
using Lisp.ControlPlane;
using Lisp.Wire;

namespace Lisp.Decent;

/// <summary>
/// Configuration of pull-based LISP-Decent, one to one with a config <c>[decent.pull]</c> table:
/// <c>dns_suffix</c> -> <see cref="DnsSuffix"/>; <c>modulus</c>, <c>hash</c>, <c>hash_mask</c>,
/// <c>lookup_length</c>, <c>sg_hash</c>, <c>hash_key</c>, <c>digest_bytes</c> -> <see cref="Hash"/>;
/// <c>dns_servers</c> and the dns_* timers -> <see cref="Dns"/>; <c>map_server_port</c> -> <see cref="MapServerPort"/>.
/// (The table's <c>key</c> is the Map-Register authentication key, which is not part of the hash.)
/// </summary>
public sealed record DecentPullOptions
{
    /// <summary>Index i is looked up as "i.&lt;suffix&gt;", e.g. "ms.lispers.net".</summary>
    public string DnsSuffix { get; init; } = "";

    public DecentHashOptions Hash { get; init; } = new();

    public DnsResolverOptions Dns { get; init; } = new();

    /// <summary>UDP port map-servers and map-resolvers listen on (LISP control: 4342).</summary>
    public int MapServerPort { get; init; } = 4342;

    public string? Validate()
    {
        if (DecentIndex.NormalizeSuffix(DnsSuffix).Length == 0) return "dns_suffix must be set (e.g. \"ms.lispers.net\")";
        if (MapServerPort is < 1 or > 65535) return $"map-server port must be 1..65535 (got {MapServerPort})";
        return Hash.Validate() ?? Dns.Validate();
    }
}

/// <summary>
/// The pull-based mapping system: EID -> hash index -> "&lt;index&gt;.&lt;suffix&gt;" -> its A and AAAA records
/// (the map-server set) -> endpoints at <see cref="DecentPullOptions.MapServerPort"/>.
/// <para>
/// ETR: <see cref="MapServersFor"/> gives every member of the EID's set (a Map-Register goes to each).
/// ITR: <see cref="MapResolversFor"/> gives the same set, least-recently-used first, so successive requests
/// spread over the set and the ITR falls to the next one on timeout (call <see cref="NoteUsed"/> when it
/// does, so the next request starts elsewhere). Both return an empty list until the name has resolved;
/// the first ask starts the resolution in the background (<see cref="WarmUpAsync"/> at start-up avoids that
/// first empty answer). (S,G) EIDs follow <see cref="DecentHashOptions.SourceGroup"/>.
/// </para>
/// </summary>
public sealed class PullMappingSystem : IMappingSystem, IDisposable
{
    private readonly DnsAddressSetCache _dns;
    private readonly bool _ownsDns;
    private readonly string _suffix;
    private readonly string[] _names;
    private readonly object _lruLock = new();
    private readonly Dictionary<IPAddress, long> _lastUsed = new();
    private long _useClock;

    public DecentPullOptions Options { get; }
    public DecentHasher Hasher { get; }
    public DnsAddressSetCache Dns => _dns;

    /// <summary>Resolves through DnsClient against <c>options.Dns.Servers</c>.</summary>
    public PullMappingSystem(DecentPullOptions options, TimeProvider? time = null, Action<string>? log = null)
        : this(options, new DnsAddressSetCache(Checked(options).Dns, time, log), ownsDns: true)
    {
    }

    /// <summary>Resolves through <paramref name="source"/> (tests, or another resolver).</summary>
    public PullMappingSystem(DecentPullOptions options, IDnsAddressSource source, TimeProvider? time = null, Action<string>? log = null)
        : this(options, new DnsAddressSetCache(source, Checked(options).Dns, time, log), ownsDns: true)
    {
    }

    /// <summary>Shares an existing cache (e.g. with a push system resolving its seed group); not disposed here.</summary>
    public PullMappingSystem(DecentPullOptions options, DnsAddressSetCache dns)
        : this(Checked(options), dns, ownsDns: false)
    {
    }

    private PullMappingSystem(DecentPullOptions options, DnsAddressSetCache dns, bool ownsDns)
    {
        Options = options;
        Hasher = new DecentHasher(options.Hash);
        _dns = dns;
        _ownsDns = ownsDns;
        _suffix = DecentIndex.NormalizeSuffix(options.DnsSuffix);
        _names = new string[Math.Min(options.Hash.Modulus, 1 << 16)];
    }

    private static DecentPullOptions Checked(DecentPullOptions o) =>
        o.Validate() is { } err ? throw new ArgumentException(err, nameof(o)) : o;

    public string Name => $"decent-pull {_suffix} mod {Options.Hash.Modulus} {Options.Hash.AlgorithmName}";

    public int Modulus => Options.Hash.Modulus;

    /// <summary>"&lt;index&gt;.&lt;suffix&gt;".</summary>
    public string DnsNameFor(int index)
    {
        if ((uint)index >= (uint)Modulus) throw new ArgumentOutOfRangeException(nameof(index));
        if (index < _names.Length) return _names[index] ??= DecentIndex.NameFor(index, _suffix);
        return DecentIndex.NameFor(index, _suffix);
    }

    public DecentIndex Locate(EidPrefix eid, HashPurpose purpose = HashPurpose.Register) => Hasher.Locate(eid, _suffix, purpose);

    public IReadOnlyList<IPEndPoint> MapServersFor(EidPrefix eid) =>
        MapServersForIndex(Hasher.IndexOf(eid, HashPurpose.Register));

    public IReadOnlyList<IPEndPoint> MapResolversFor(EidPrefix eid) =>
        MapResolversForIndex(Hasher.IndexOf(eid, HashPurpose.Lookup));

    /// <summary>Every member of set <paramref name="index"/>, in DNS order; empty while unresolved.</summary>
    public IReadOnlyList<IPEndPoint> MapServersForIndex(int index) => ToEndPoints(_dns.Get(DnsNameFor(index)));

    /// <summary>Set <paramref name="index"/>, least recently used first; the first one is marked used.</summary>
    public IReadOnlyList<IPEndPoint> MapResolversForIndex(int index)
    {
        var set = _dns.Get(DnsNameFor(index));
        if (set.Count == 0) return [];
        IPAddress[] order;
        lock (_lruLock)
        {
            // Never used = stamp 0 = first; OrderBy is stable, so equal stamps keep DNS order.
            order = set.OrderBy(a => _lastUsed.GetValueOrDefault(a)).ToArray();
            _lastUsed[order[0]] = ++_useClock;
        }
        return ToEndPoints(order);
    }

    /// <summary>The ITR fell over to <paramref name="resolver"/>: count it as just used.</summary>
    public void NoteUsed(IPEndPoint resolver)
    {
        lock (_lruLock) _lastUsed[resolver.Address] = ++_useClock;
    }

    /// <summary>Resolves the names of <paramref name="indexes"/> now (in parallel) and waits for the answers.</summary>
    public Task WarmUpAsync(IEnumerable<int> indexes, CancellationToken cancellationToken = default) =>
        Task.WhenAll(indexes.Distinct().Select(i => _dns.ResolveAsync(DnsNameFor(i), cancellationToken)));

    /// <summary>Every index 0 .. modulus-1 (fine for the small moduli pull mode uses).</summary>
    public Task WarmUpAllAsync(CancellationToken cancellationToken = default) =>
        WarmUpAsync(Enumerable.Range(0, Modulus), cancellationToken);

    /// <summary>Re-resolves set <paramref name="index"/> now, whatever its TTL.</summary>
    public Task Refresh(int index) => _dns.RefreshAsync(DnsNameFor(index));

    /// <summary>
    /// Resolves any DNS name to its address set through the same servers and cache, e.g. the seed-group name
    /// of a push system bootstrapped from pull mode. Use <see cref="DnsAddressSetCache.Get"/> on
    /// <see cref="Dns"/> for the non-blocking cached form.
    /// </summary>
    public Task<IReadOnlyList<IPAddress>> ResolveNameAsync(string dnsName, CancellationToken cancellationToken = default) =>
        _dns.ResolveAsync(dnsName, cancellationToken);

    /// <summary>Indexes whose current set includes one of <paramref name="ownAddresses"/> (call after warm-up).</summary>
    public IReadOnlyList<int> IndexesServedBy(IEnumerable<IPAddress> ownAddresses) =>
        ServedIndexes.Find(ownAddresses, Modulus, i => _dns.Get(DnsNameFor(i)));

    /// <summary>
    /// True when a node owning <paramref name="ownAddresses"/> is in the set <paramref name="eid"/> hashes to:
    /// a map-server uses it to accept only registrations meant for its sets (and to keep sets apart).
    /// </summary>
    public bool Serves(EidPrefix eid, IEnumerable<IPAddress> ownAddresses, HashPurpose purpose = HashPurpose.Register)
    {
        var set = _dns.Get(DnsNameFor(Hasher.IndexOf(eid, purpose)));
        return ownAddresses.Any(a => set.Contains(Unmap(a)));
    }

    /// <summary>
    /// Null when <paramref name="ownAddress"/> is in the set <paramref name="eid"/> hashes to; otherwise why not
    /// ("[0]1.1.1.1/32 hashes to index 1 (1.ms.test: 127.0.2.1, 127.0.2.2)"), for a map-server refusing a
    /// registration meant for another set. An unresolved set refuses too (resolution starts in the background).
    /// </summary>
    public string? WhyNotServed(EidPrefix eid, IPAddress ownAddress, HashPurpose purpose = HashPurpose.Register)
    {
        int index = Hasher.IndexOf(eid, purpose);
        string name = DnsNameFor(index);
        var set = _dns.Get(name);
        var own = Unmap(ownAddress);
        if (set.Any(a => Unmap(a).Equals(own))) return null;
        return $"it hashes to index {index} ({name}: {(set.Count == 0 ? "not resolved yet" : string.Join(", ", set))}), a set {own} is not in";
    }

    public void Dispose()
    {
        if (_ownsDns) _dns.Dispose();
    }

    private IReadOnlyList<IPEndPoint> ToEndPoints(IReadOnlyList<IPAddress> set)
    {
        if (set.Count == 0) return [];
        var r = new IPEndPoint[set.Count];
        for (int i = 0; i < r.Length; i++) r[i] = new IPEndPoint(set[i], Options.MapServerPort);
        return r;
    }

    internal static IPAddress Unmap(IPAddress a) => a.IsIPv4MappedToIPv6 ? a.MapToIPv4() : a;

    public override string ToString() => Name;
}

/// <summary>Which map-server sets a node belongs to (a node can be a member of several sets).</summary>
public static class ServedIndexes
{
    /// <summary>
    /// Indexes 0 .. <paramref name="modulus"/>-1 whose set (from <paramref name="setOf"/>) holds any of
    /// <paramref name="ownAddresses"/> (IPv4-mapped IPv6 compared as IPv4).
    /// </summary>
    public static IReadOnlyList<int> Find(IEnumerable<IPAddress> ownAddresses, int modulus, Func<int, IReadOnlyList<IPAddress>> setOf)
    {
        var own = new HashSet<IPAddress>(ownAddresses.Select(PullMappingSystem.Unmap));
        var result = new List<int>();
        for (int i = 0; i < modulus; i++)
        {
            if (setOf(i).Any(a => own.Contains(PullMappingSystem.Unmap(a)))) result.Add(i);
        }
        return result;
    }

    /// <summary>Readable form for logs: "0, 2 of 4".</summary>
    public static string Describe(IReadOnlyList<int> indexes, int modulus) =>
        (indexes.Count == 0 ? "none" : string.Join(", ", indexes.Select(i => i.ToString(CultureInfo.InvariantCulture))))
        + " of " + modulus.ToString(CultureInfo.InvariantCulture);
}
