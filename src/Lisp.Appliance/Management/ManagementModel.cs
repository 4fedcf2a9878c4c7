using System.Text.Json.Serialization;

namespace Lisp.Appliance.Management;

// What the management API returns (and `lisp-decent show` reads back). Plain detached copies: built on the
// control thread from role state, then serialized on an HTTP thread. Kebab-case JSON (ManagementJsonContext).

/// <summary>GET /api/status.</summary>
public sealed class StatusView
{
    public string Name { get; init; } = "";
    public string Version { get; init; } = "";
    public List<string> Roles { get; init; } = [];
    public string MappingSystem { get; init; } = "";
    public DateTimeOffset StartedAt { get; init; }
    public long UptimeSeconds { get; init; }
    /// <summary>UDP control-plane sockets (ADDRESS:PORT).</summary>
    public List<string> ControlEndpoints { get; init; } = [];
    /// <summary>This API (ADDRESS:PORT).</summary>
    public string Management { get; init; } = "";
    /// <summary>The control-plane nodes this process runs (one, or one per map-server address in pull mode).</summary>
    public List<string> Nodes { get; init; } = [];
    public DataPlaneStatusView? DataPlane { get; init; }
}

public sealed class DataPlaneStatusView
{
    public string Tun { get; init; } = "";
    public uint InstanceId { get; init; }
    public int Workers { get; init; }
    public int DataPort { get; init; }
}

public sealed class RlocView
{
    public string Address { get; init; } = "";
    public int Priority { get; init; }
    public int Weight { get; init; }
    public bool Reachable { get; init; }
}

/// <summary>GET /api/site-table: one table per map-server node.</summary>
public sealed class SiteTableView
{
    public List<MapServerTableView> MapServers { get; init; } = [];
}

public sealed class MapServerTableView
{
    public string Node { get; init; } = "";
    public List<string> Endpoints { get; init; } = [];
    public List<SiteRowView> Rows { get; init; } = [];
}

/// <summary>A row of lispers.net's site table: a configured prefix (registered or not) or a registered more-specific.</summary>
public sealed class SiteRowView
{
    public string Site { get; init; } = "";
    public string Eid { get; init; } = "";
    public bool Configured { get; init; }
    public bool Registered { get; init; }
    public string? LastRegisterer { get; init; }
    public DateTimeOffset? FirstRegistered { get; init; }
    public DateTimeOffset? LastRegistered { get; init; }
    public DateTimeOffset? Expires { get; init; }
    /// <summary>"p-s-i-t-r-m-n", upper case = set (proxy-reply, LISP-SEC, xTR-ID, TTL timeout, refresh, mobile, want Map-Notify).</summary>
    public string Flags { get; init; } = "";
    public int Registrants { get; init; }
    public List<RlocView> Rlocs { get; init; } = [];
}

/// <summary>GET /api/map-cache: the ITR's map-cache (empty without the itr role).</summary>
public sealed class MapCacheView
{
    public bool Itr { get; init; }
    public int Outstanding { get; init; }
    public List<MapCacheEntryView> Entries { get; init; } = [];
}

public sealed class MapCacheEntryView
{
    public string Eid { get; init; } = "";
    public bool Negative { get; init; }
    public string Action { get; init; } = "";
    public List<RlocView> Rlocs { get; init; } = [];
    public long TtlSeconds { get; init; }
    public long TtlLeftSeconds { get; init; }
    public DateTimeOffset InstalledAt { get; init; }
    public DateTimeOffset ExpiresAt { get; init; }
    public string? LearnedFrom { get; init; }
    public bool Authoritative { get; init; }
}

/// <summary>GET /api/registrations: what the ETR registers where.</summary>
public sealed class RegistrationsView
{
    public bool Etr { get; init; }
    public List<RegistrationView> Registrations { get; init; } = [];
}

public sealed class RegistrationView
{
    public string Eid { get; init; } = "";
    public string MapServer { get; init; } = "";
    public DateTimeOffset LastSent { get; init; }
    public DateTimeOffset? LastNotified { get; init; }
}

/// <summary>GET /api/counters.</summary>
public sealed class CountersView
{
    public List<NodeCountersView> Control { get; init; } = [];
    /// <summary>Control datagrams dropped because the control queue was full.</summary>
    public long QueueDrops { get; init; }
    public long SendErrors { get; init; }
    public DataPlaneCountersView? DataPlane { get; init; }
}

public sealed class NodeCountersView
{
    public string Node { get; init; } = "";
    /// <summary>Live registrations (map-server), map-cache entries (ITR): gauges.</summary>
    public int Registrations { get; init; }
    public int MapCacheEntries { get; init; }
    public Dictionary<string, long> Drops { get; init; } = [];
    public Dictionary<string, long> Malformed { get; init; } = [];
    public Dictionary<string, long> Events { get; init; } = [];
}

public sealed class DataPlaneCountersView
{
    public int MapCacheEntries { get; init; }
    public WorkerCountersView Total { get; init; } = new();
    public List<WorkerCountersView> Workers { get; init; } = [];
    /// <summary>Echo-nonce locator reachability (RFC 9300 section 10.1); null when off.</summary>
    public EchoNonceView? EchoNonce { get; init; }
}

public sealed class EchoNonceView
{
    public long Requests { get; init; }
    public long EchoesReceived { get; init; }
    public long EchoesSent { get; init; }
    public long Down { get; init; }
    public long Retries { get; init; }
    public long Abandoned { get; init; }
    public long TableFull { get; init; }
    public List<EchoNonceRlocView> Rlocs { get; init; } = [];
}

public sealed class EchoNonceRlocView
{
    public string Rloc { get; init; } = "";
    /// <summary>unknown (no echo yet), requesting, up, down.</summary>
    public string State { get; init; } = "";
    public double? SecondsSinceEcho { get; init; }
    public long Requests { get; init; }
    public long EchoesReceived { get; init; }
    public long EchoesSent { get; init; }
    public long Down { get; init; }
}

public sealed class WorkerCountersView
{
    public string Worker { get; init; } = "";
    public long EncapPackets { get; init; }
    public long EncapBytes { get; init; }
    public long DecapPackets { get; init; }
    public long DecapBytes { get; init; }
    public long MissesPosted { get; init; }
    public long MissesRefused { get; init; }
    public long IcmpTooBig { get; init; }
    public long Fragmented { get; init; }
    public long HeldThenSent { get; init; }
    public long Batches { get; init; }
    public Dictionary<string, long> Drops { get; init; } = [];
    /// <summary>Feature counters: plain-control, versioned-sent/-received, version-refreshes, dest-version-stale/-newer, gleans-posted/-refused.</summary>
    public Dictionary<string, long> Events { get; init; } = [];
}

public sealed class ErrorView
{
    public string Error { get; init; } = "";
}

/// <summary>Source-generated JSON for the management API (no reflection: native AOT).</summary>
[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.KebabCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.Never)]
[JsonSerializable(typeof(StatusView))]
[JsonSerializable(typeof(SiteTableView))]
[JsonSerializable(typeof(MapCacheView))]
[JsonSerializable(typeof(RegistrationsView))]
[JsonSerializable(typeof(CountersView))]
[JsonSerializable(typeof(ErrorView))]
internal sealed partial class ManagementJsonContext : JsonSerializerContext
{
}
