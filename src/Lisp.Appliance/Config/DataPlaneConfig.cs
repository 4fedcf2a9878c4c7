using System.Net;

namespace Lisp.Appliance.Config;

/// <summary>An address with a prefix length, e.g. 10.1.0.1/24 (a TUN address) or 10.2.0.0/16 (a route).</summary>
public readonly record struct IpPrefix(IPAddress Address, int Length)
{
    public override string ToString() => $"{Address}/{Length}";

    public static bool TryParse(string s, out IpPrefix prefix)
    {
        prefix = default;
        int slash = s.IndexOf('/');
        if (slash <= 0 || !IPAddress.TryParse(s[..slash], out var a) || !int.TryParse(s[(slash + 1)..], out int len)) return false;
        int max = a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128;
        if (len < 0 || len > max || (max == 32 && s[..slash].Count(c => c == '.') != 3)) return false;
        prefix = new IpPrefix(a, len);
        return true;
    }
}

/// <summary>
/// The [data_plane] section: one TUN for one instance-id, its addresses and the EID prefixes routed into it,
/// worker threads, and the ITR's miss and MTU behaviour. Absent = control plane only.
/// </summary>
public sealed record DataPlaneConfig
{
    public string Tun { get; init; } = "lisp0";
    public uint InstanceId { get; init; }
    /// <summary>Addresses put on the TUN (from the local EID prefix), e.g. 10.1.0.1/24.</summary>
    public IReadOnlyList<IpPrefix> Addresses { get; init; } = [];
    /// <summary>Destinations routed into the TUN (the remote EID space), e.g. 10.2.0.0/16.</summary>
    public IReadOnlyList<IpPrefix> Routes { get; init; } = [];
    /// <summary>Worker threads (each an ITR on its own TUN queue and an ETR per address family).</summary>
    public int Workers { get; init; } = 1;
    public int DataPort { get; init; } = Lisp.Wire.DataHeader.Port;
    public int UnderlayMtu { get; init; } = 1500;
    public int TunMtu { get; init; } = 1500;
    /// <summary>"drop" or "queue".</summary>
    public string MissPolicy { get; init; } = "drop";
    public TimeSpan HoldTime { get; init; } = TimeSpan.FromSeconds(3);
    public int HoldPackets { get; init; } = 64;
    /// <summary>Map-Requests per second the data plane may ask for (burst 20).</summary>
    public int MissRate { get; init; } = 100;
    /// <summary>"auto" (raw sockets, UDP when refused), "raw" or "udp".</summary>
    public string SendMode { get; init; } = "auto";
    /// <summary>"auto": TUN virtio-net header with TSO/USO and checksum offload, UDP GSO/GRO, TCP coalescing, each probed with a logged fallback; "off": none.</summary>
    public string Offload { get; init; } = "auto";
    public int BatchSize { get; init; } = 64;
    /// <summary>Bytes of receive buffer asked for on each ETR underlay socket (granted twice that; past rmem_max with CAP_NET_ADMIN).</summary>
    public int ReceiveBuffer { get; init; } = Lisp.DataPlane.DataPlaneOptions.DefaultReceiveBufferBytes;
    /// <summary>"auto" (io_uring when the start-up probe passes, else syscalls), "io_uring" (same, logged as forced) or "syscalls".</summary>
    public string Io { get; init; } = "auto";
    /// <summary>Bring the TUN up and add its addresses and routes (rtnetlink from the binary); false when the operator does it.</summary>
    public bool ConfigureTun { get; init; } = true;
    /// <summary>
    /// With <see cref="ConfigureTun"/>: "noqueue" (default) replaces the TUN's root qdisc with noqueue, so the stack
    /// hands each packet straight to the TUN (as the kernel's WireGuard device does): the TUN never asks a qdisc to
    /// hold packets (a full read queue drops either way), so a qdisc only adds a lock and a queue step per packet.
    /// "keep" leaves the qdisc the TUN has: the kernel's default (net.core.default_qdisc) on a new TUN, or one the
    /// operator put on a persistent TUN (a shaper, say), which "noqueue" would replace at every start.
    /// </summary>
    public string TunQdisc { get; init; } = "noqueue";
    /// <summary>Log the counters this often when they changed (zero = only at stop).</summary>
    public TimeSpan StatsInterval { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>Echo-nonce locator reachability (RFC 9300 section 10.1): request echoes, echo peers' nonces, mark RLOCs down.</summary>
    public bool EchoNonce { get; init; }
    public TimeSpan EchoNonceInterval { get; init; } = TimeSpan.FromSeconds(10);
    public TimeSpan EchoNonceTimeout { get; init; } = TimeSpan.FromSeconds(3);
    public TimeSpan EchoNonceRetry { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>
    /// "any" (default): the ETR decapsulates from every source. "known": only from RLOCs in the map-cache, the node's
    /// configured map-servers, map-resolvers and push-group members, and <see cref="AcceptPrefixes"/>; others are
    /// dropped and counted (unknown-source).
    /// </summary>
    public string AcceptFrom { get; init; } = "any";
    /// <summary>Outer source prefixes always accepted with accept_from = "known" (e.g. the site's own RLOC space).</summary>
    public IReadOnlyList<IpPrefix> AcceptPrefixes { get; init; } = [];
}
