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
    /// <summary>The locator-reachability mechanisms configured (RLOC-probing, echo-nonce); from the config only.</summary>
    public ReachabilityStatusView Reachability { get; init; } = new();
}

public sealed class ReachabilityStatusView
{
    /// <summary>RLOC-probe period ([itr] rloc_probe_interval); null without the itr role or with probing off.</summary>
    public double? RlocProbeIntervalSeconds { get; init; }
    public double? RlocProbeTimeoutSeconds { get; init; }
    /// <summary>Echo-nonce request period ([data_plane] echo_nonce_interval); null without a data plane or with echo-nonce off.</summary>
    public double? EchoNonceIntervalSeconds { get; init; }
    public double? EchoNonceTimeoutSeconds { get; init; }
}

public sealed class DataPlaneStatusView
{
    public string Tun { get; init; } = "";
    public uint InstanceId { get; init; }
    public int Workers { get; init; }
    public int DataPort { get; init; }
    /// <summary>The offloads the kernel accepted at start ("off" when none), e.g. "tun: csum tso4 tso6 uso; udp: gso gro; etr: tcp-coalescing".</summary>
    public string Offloads { get; init; } = "off";
    /// <summary>Why a requested offload is not on (the probe's refusal), one line each.</summary>
    public List<string> OffloadNotes { get; init; } = [];
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
    /// <summary>Rows in the whole table (every page).</summary>
    public int Total { get; init; }
    /// <summary>Rows asked for (?limit=, default 1000, at most 10000).</summary>
    public int Limit { get; init; }
    /// <summary>Cursor of the next page (GET ...?after=NEXT), null on the last page.</summary>
    public string? Next { get; init; }
    /// <summary>When the snapshot the page comes from was taken (pages are cut from a published copy, at most a few seconds old).</summary>
    public DateTimeOffset? SnapshotAt { get; init; }
    public List<MapServerTableView> MapServers { get; init; } = [];
}

public sealed class MapServerTableView
{
    public string Node { get; init; } = "";
    public List<string> Endpoints { get; init; } = [];
    /// <summary>This map-server's rows in the whole table (<see cref="Rows"/> holds those on this page).</summary>
    public int Total { get; init; }
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
    /// <summary>Rows in the whole table (every page).</summary>
    public int Total { get; init; }
    /// <summary>Rows asked for (?limit=, default 1000, at most 10000).</summary>
    public int Limit { get; init; }
    /// <summary>Cursor of the next page (GET ...?after=NEXT), null on the last page.</summary>
    public string? Next { get; init; }
    /// <summary>When the snapshot the page comes from was taken (pages are cut from a published copy, at most a few seconds old).</summary>
    public DateTimeOffset? SnapshotAt { get; init; }
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
    /// <summary>Rows in the whole table (every page).</summary>
    public int Total { get; init; }
    /// <summary>Rows asked for (?limit=, default 1000, at most 10000).</summary>
    public int Limit { get; init; }
    /// <summary>Cursor of the next page (GET ...?after=NEXT), null on the last page.</summary>
    public string? Next { get; init; }
    /// <summary>When the snapshot the page comes from was taken (pages are cut from a published copy, at most a few seconds old).</summary>
    public DateTimeOffset? SnapshotAt { get; init; }
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
    /// <summary>RLOC-probing (RFC 9301 section 7.1) of the ITR node; null without the itr role. Echo-nonce is under data-plane.</summary>
    public RlocProbingView? RlocProbing { get; init; }
    /// <summary>The management HTTP server itself: connections and refusals (issue 12).</summary>
    public ManagementServerView? Management { get; set; }
    /// <summary>The log's own limits: lines suppressed by [node] log_rate, lines dropped with the writer's queue full.</summary>
    public LogCountersView? Log { get; set; }
}

/// <summary>The log's rate limit and what it held back since start (README "Limits and protections").</summary>
public sealed class LogCountersView
{
    /// <summary>[node] log_rate: lines per second per event name (0 = unlimited).</summary>
    public int LinesPerKindPerSecond { get; init; }
    /// <summary>Lines over the rate (counted in the log-suppressed summaries).</summary>
    public long Suppressed { get; init; }
    /// <summary>Lines dropped because the writer's queue held its maximum (100,000 pending lines).</summary>
    public long Dropped { get; init; }
}

/// <summary>A map-server site's registrations and its limit (its own max_registrations, else its share of the table).</summary>
public sealed class SiteLimitView
{
    public string Site { get; init; } = "";
    public long Registrations { get; init; }
    public int MaxRegistrations { get; init; }
}

/// <summary>The management server's connections, limits and the refusals and timeouts it counted since start.</summary>
public sealed class ManagementServerView
{
    public int ActiveConnections { get; init; }
    public int MaxConnections { get; init; }
    public double HeaderTimeoutSeconds { get; init; }
    public double IdleTimeoutSeconds { get; init; }
    public int MaxBody { get; init; }
    public bool TokenRequired { get; init; }
    /// <summary>connections-accepted, connections-refused (over max_connections), header-timeouts, idle-closed, header-too-large, body-too-large, bad-requests, unauthorized, busy, requests.</summary>
    public Dictionary<string, long> Events { get; init; } = [];
    /// <summary>
    /// Snapshots of the big tables read from the control thread, the control-thread visits they took (one bounded
    /// slice each), and the longest single visit (ms).
    /// </summary>
    public long Snapshots { get; init; }
    public long SnapshotVisits { get; init; }
    public double LongestSnapshotReadMs { get; init; }
    /// <summary>Whether the thread that builds the views runs at the lowest CPU priority (nice 19).</summary>
    public bool SnapshotBuilderLowPriority { get; init; }
}

/// <summary>RLOC-probing counters and the probed RLOCs (the counters count since start; the states are now).</summary>
public sealed class RlocProbingView
{
    public string Node { get; init; } = "";
    /// <summary>False with [itr] rloc_probe_interval = 0: then every counter stays 0 and no RLOC is listed.</summary>
    public bool Enabled { get; init; }
    public double IntervalSeconds { get; init; }
    public double TimeoutSeconds { get; init; }
    /// <summary>Probe Map-Requests sent.</summary>
    public long Sent { get; init; }
    /// <summary>Probe Map-Replies that matched an outstanding probe (nonce and source).</summary>
    public long RepliesAccepted { get; init; }
    /// <summary>Probe Map-Replies dropped: unknown nonce, or a known nonce from another source.</summary>
    public long RepliesUnexpected { get; init; }
    /// <summary>Transitions of an RLOC to up / to down (the rloc-up / rloc-down log lines).</summary>
    public long RlocUp { get; init; }
    public long RlocDown { get; init; }
    /// <summary>Due probes deferred by the probe budget ([itr] rloc_probe_budget), and locators left unprobed by rloc_probe_max_locators.</summary>
    public long Deferred { get; init; }
    public long LocatorsNotProbed { get; init; }
    /// <summary>[itr] rloc_probe_budget (probes per second, 0 = none) and rloc_probe_max_locators.</summary>
    public int BudgetPerSecond { get; init; }
    public int MaxLocators { get; init; }
    /// <summary>RLOCs probed now, by state (unknown, up, down); exact even when <see cref="Rlocs"/> is cut.</summary>
    public Dictionary<string, int> States { get; init; } = [];
    /// <summary>The probed RLOCs by address text, at most <see cref="Snapshots.MaxProbedRlocs"/> (see <see cref="States"/> for all).</summary>
    public List<RlocProbeView> Rlocs { get; init; } = [];
}

public sealed class RlocProbeView
{
    public string Rloc { get; init; } = "";
    /// <summary>unknown (not answered yet), up, down.</summary>
    public string State { get; init; } = "";
    /// <summary>Round-trip time of the last answered probe, milliseconds; null before the first reply.</summary>
    public double? RttMs { get; init; }
    public DateTimeOffset? LastReply { get; init; }
    public DateTimeOffset NextProbe { get; init; }
    /// <summary>Map-cache entries holding this RLOC.</summary>
    public int Entries { get; init; }
}

public sealed class NodeCountersView
{
    public string Node { get; init; } = "";
    /// <summary>Live registrations (map-server), map-cache entries (ITR): gauges.</summary>
    public int Registrations { get; init; }
    public int MapCacheEntries { get; init; }
    /// <summary>Limits in force (README "Limits and protections"); null where the node lacks the role.</summary>
    public int? MaxRegistrations { get; init; }
    public int? MaxRegistrantsPerEid { get; init; }
    public List<SiteLimitView> Sites { get; init; } = [];
    public int? MaxMapCacheEntries { get; init; }
    /// <summary>Map-Requests in flight (ITR) and the most allowed.</summary>
    public int? PendingRequests { get; init; }
    public int? MaxPendingRequests { get; init; }
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
    /// <summary>[data_plane] hold_packets: packets each ITR worker may hold for a miss (miss_policy = "queue").</summary>
    public int HoldPackets { get; init; }
    /// <summary>The miss queue to the control plane: depth now, capacity, posts and refusals (full, over miss_rate).</summary>
    public QueueView MissQueue { get; init; } = new();
    /// <summary>TUN queues: losses (device gone), reattaches, failed reattach attempts.</summary>
    public List<TunView> Tuns { get; init; } = [];
}

public sealed class QueueView
{
    public int Depth { get; init; }
    public int Capacity { get; init; }
    public long Posted { get; init; }
    public long RefusedFull { get; init; }
    public long RefusedRate { get; init; }
}

public sealed class TunView
{
    public string Name { get; init; } = "";
    public int Queue { get; init; }
    public long Losses { get; init; }
    public long Reopens { get; init; }
    public long ReopenFailures { get; init; }
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
    /// <summary>Packets this ITR worker holds now waiting for a Map-Reply (gauge; 0 for ETR workers).</summary>
    public int HeldPackets { get; init; }
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
