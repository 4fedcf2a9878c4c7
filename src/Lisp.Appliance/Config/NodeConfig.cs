using System.Net;
using Lisp.ControlPlane;
using Lisp.Wire;

namespace Lisp.Appliance.Config;

/// <summary>Pull-based LISP-Decent settings ([decent.pull]).</summary>
public sealed record DecentPullConfig(string DnsSuffix, int Modulus, string Hash, IReadOnlyList<IPEndPoint> DnsServers,
    string? Key, int HashMask, int LookupLength, string SgHash, int MapServerPort, TimeSpan MinDnsTtl, TimeSpan DnsGrace);

/// <summary>Push-based LISP-Decent settings ([decent.push]).</summary>
public sealed record DecentPushConfig(IPAddress Group, string Delivery, IReadOnlyList<IPEndPoint> Members, string? Key,
    TimeSpan RegisterInterval, string? SeedGroupName, string? Interface, int MulticastTtl, int DataPort = DataHeader.Port)
{
    /// <summary>How often the seed group is looked up again (membership_refresh; default the register interval; zero: never).</summary>
    public TimeSpan MembershipRefresh { get; init; } = RegisterInterval;
}

/// <summary>Everything `lisp-decent run` needs, validated. Built by <see cref="ConfigLoader"/>.</summary>
public sealed record NodeConfig
{
    public string Name { get; init; } = "lisp-decent";
    public IReadOnlySet<string> Roles { get; init; } = new HashSet<string>();
    public IReadOnlyList<IPAddress> Rlocs { get; init; } = [];
    public IReadOnlyList<IPAddress> Listen { get; init; } = [];
    public int ControlPort { get; init; } = DataHeader.ControlPort;
    public string LogLevel { get; init; } = "info";
    /// <summary>[node] log_rate: log lines per event name per second before the rest are suppressed and summarized (0 = unlimited).</summary>
    public int LogRate { get; init; } = Hosting.Log.DefaultLinesPerKindPerSecond;
    /// <summary>[node] request_rate_per_source: Map-Requests per second answered per source address and per reply ITR-RLOC (0 = no limit).</summary>
    public int RequestRatePerSource { get; init; } = Lisp.ControlPlane.RequestAdmissionOptions.DefaultRatePerSource;
    /// <summary>[node] request_burst_per_source: depth of those token buckets.</summary>
    public int RequestBurstPerSource { get; init; } = Lisp.ControlPlane.RequestAdmissionOptions.DefaultBurstPerSource;
    /// <summary>[node] reply_amplification_limit: a Map-Reply to an ITR-RLOC other than the request's source is at most this many times the request (0 = no bound).</summary>
    public int ReplyAmplificationLimit { get; init; } = Lisp.ControlPlane.RequestAdmissionOptions.DefaultAmplificationFactor;
    /// <summary>
    /// [node] control_threads: control shards, each a thread owning a slice of the map-server's table (null: one per
    /// core, at most 16). One when the node has no map-server role, or in a push group (its I/O reads the whole table).
    /// </summary>
    public int? ControlThreads { get; init; }

    public IReadOnlyList<IPEndPoint> MapServers { get; init; } = [];
    public IReadOnlyList<IPEndPoint> MapResolvers { get; init; } = [];
    public string RegistrationKey { get; init; } = "";
    public AuthAlgorithm Algorithm { get; init; } = AuthAlgorithm.HmacSha256_128;

    public TimeSpan RegisterInterval { get; init; } = TimeSpan.FromSeconds(60);
    public TimeSpan RegistrationTimeout { get; init; } = TimeSpan.FromSeconds(180);
    /// <summary>[map_server] max_registrations: the map-server's table limit (refusals are counted, never confirmed).</summary>
    public int MaxRegistrations { get; init; } = Lisp.ControlPlane.MapServerOptions.DefaultMaxRegistrations;
    /// <summary>[map_server] max_registrants_per_eid: most registrants (ETRs) one EID-prefix may have.</summary>
    public int MaxRegistrantsPerEid { get; init; } = Lisp.ControlPlane.MapServerOptions.DefaultMaxRegistrantsPerEid;
    public TimeSpan RecordTtl { get; init; } = TimeSpan.FromMinutes(3);
    public bool WantMapNotify { get; init; } = true;
    public bool ProxyReply { get; init; } = true;
    /// <summary>[etr] map_version: the Map-Version (RFC 9302, 1..4095; 0 = none) of every [[database]] mapping, registered with them and sent in data packets (V bit).</summary>
    public ushort MapVersion { get; init; }
    /// <summary>[etr] glean: learn a sending ITR's EID -> RLOC from decapsulated packets (off by default).</summary>
    public bool Glean { get; init; }
    /// <summary>[etr] glean_ttl: how long a gleaned mapping lives (the mapping system's answer replaces it sooner).</summary>
    public TimeSpan GleanTtl { get; init; } = TimeSpan.FromSeconds(60);
    public TimeSpan MapReplyTtl { get; init; } = TimeSpan.FromMinutes(1440);
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(1);
    public int RequestRetries { get; init; } = 3;
    /// <summary>[itr] rloc_probe_interval: RLOC-probe period (0 = no probing).</summary>
    public TimeSpan RlocProbeInterval { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>[itr] rloc_probe_timeout: silence that marks an RLOC down (null = 1.5 x the interval).</summary>
    public TimeSpan? RlocProbeTimeout { get; init; }
    /// <summary>[itr] rloc_probe_budget: at most this many RLOC-probes in any second (0 = no budget).</summary>
    public int RlocProbeBudget { get; init; } = 100;
    /// <summary>[itr] rloc_probe_max_locators: locators probed per map-cache entry (by priority, then weight).</summary>
    public int RlocProbeMaxLocators { get; init; } = 8;
    /// <summary>[itr] max_ttl: ceiling on the TTL of installed Map-Reply records.</summary>
    public TimeSpan ItrMaxTtl { get; init; } = TimeSpan.FromDays(1);

    public IReadOnlyList<SiteConfig> Sites { get; init; } = [];
    public IReadOnlyList<DatabaseMapping> Database { get; init; } = [];
    public DecentPullConfig? DecentPull { get; init; }
    public DecentPushConfig? DecentPush { get; init; }
    /// <summary>[data_plane]: TUN + UDP 4341 forwarding; null = control plane only.</summary>
    public DataPlaneConfig? DataPlane { get; init; }
    public IPEndPoint? Management { get; init; }
    /// <summary>[management] limits and token (set with <see cref="Management"/>).</summary>
    public ManagementConfig? ManagementOptions { get; init; }

    public bool Has(string role) => Roles.Contains(role);

    /// <summary>The control-plane endpoints: each listen address (else each RLOC) on <see cref="ControlPort"/>.</summary>
    public List<IPEndPoint> ControlEndpoints() => (Listen.Count > 0 ? Listen : Rlocs).Select(a => new IPEndPoint(a, ControlPort)).ToList();

    public static readonly string[] KnownRoles = ["itr", "etr", "map-server", "map-resolver"];
}
