namespace Lisp.DataPlane;

/// <summary>
/// What a TUN device and the underlay sockets agreed to do for us, probed at start (issue 13). Each flag is what the
/// kernel accepted, not what was asked for: a refused offload falls back to the plain path and the reason is kept in
/// <see cref="Notes"/> for the log and `show status`.
/// </summary>
public sealed record TunOffloads
{
    /// <summary>The TUN was opened with IFF_VNET_HDR: every read and write carries a 10-byte virtio-net header.</summary>
    public bool VnetHeader { get; init; }
    /// <summary>TUN_F_CSUM: the host may hand us packets whose transport checksum is still to be completed.</summary>
    public bool Checksum { get; init; }
    /// <summary>TUN_F_TSO4 / TUN_F_TSO6: TCP super-packets up to 64 KiB, split by the ITR before encapsulation.</summary>
    public bool Tso4 { get; init; }
    public bool Tso6 { get; init; }
    /// <summary>TUN_F_USO4 / TUN_F_USO6 (Linux 6.2+): UDP super-packets.</summary>
    public bool Uso { get; init; }
    /// <summary>UDP_SEGMENT on the underlay UDP sockets: the segments of one super-packet leave in one sendmsg.</summary>
    public bool UdpGso { get; init; }
    /// <summary>UDP_GRO on the ETR sockets: the kernel hands us runs of datagrams of one flow as one buffer.</summary>
    public bool UdpGro { get; init; }
    /// <summary>The ETR joins consecutive TCP segments of one flow into one super-packet per TUN write.</summary>
    public bool TcpCoalescing { get; init; }
    /// <summary>The ETR joins runs of equal-sized datagrams of one UDP flow into one USO super-packet per TUN write.</summary>
    public bool UdpCoalescing { get; init; }
    public IReadOnlyList<string> Notes { get; init; } = [];

    /// <summary>Nothing on: configured off, or the TUN refused the header.</summary>
    public static TunOffloads None { get; } = new();

    /// <summary>One line for logs and `show status`, e.g. "tun: csum tso4 tso6 uso; udp: gso gro; etr: tcp-coalescing udp-coalescing".</summary>
    public string Describe()
    {
        if (!VnetHeader) return "off";
        var tun = new List<string>();
        if (Checksum) tun.Add("csum");
        if (Tso4) tun.Add("tso4");
        if (Tso6) tun.Add("tso6");
        if (Uso) tun.Add("uso");
        var udp = new List<string>();
        if (UdpGso) udp.Add("gso");
        if (UdpGro) udp.Add("gro");
        var etr = new List<string>();
        if (TcpCoalescing) etr.Add("tcp-coalescing");
        if (UdpCoalescing) etr.Add("udp-coalescing");
        return $"tun: {Words(tun, "vnet header only")}; udp: {Words(udp, "none")}; etr: {Words(etr, "no coalescing")}";
    }

    private static string Words(List<string> words, string none) => words.Count == 0 ? none : string.Join(' ', words);
}
