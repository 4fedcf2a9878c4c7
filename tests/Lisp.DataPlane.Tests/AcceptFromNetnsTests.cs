using System.Buffers.Binary;
using System.Text.RegularExpressions;
using Xunit;
using Xunit.Abstractions;
using static Lisp.DataPlane.Tests.NetnsLab;

namespace Lisp.DataPlane.Tests;

/// <summary>
/// `[data_plane] accept_from = "known"` between two real `lisp-decent run` xTRs in their own namespaces (issue 13).
/// xTR 1 (also the map-server/resolver; xTR 2 is configured with 192.168.55.1) encapsulates from RLOC 192.168.55.4, which xTR 2 knows
/// from nowhere: its first packets are dropped as unknown-source and make xTR 2 ask the mapping system for their inner
/// source; the mapping names 192.168.55.4, so the ping then gets through both ways. An intruder on 192.168.55.3 sending
/// well-formed LISP packets (inner source 10.9.9.9, registered nowhere) is never decapsulated, only counted.
/// <code>
///   ns A: v1 192.168.55.1 (control) .4 (xTR 1 RLOC) .3 (intruder)  lisp0 10.1.0.1 ---- veth ---- ns B: v2 192.168.55.2  lisp0 10.2.0.1
/// </code>
/// </summary>
[Collection("netns")]
public sealed class AcceptFromNetnsTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    [SkippableFact]
    public void Known_only_decapsulates_peers_the_mapping_system_vouches_for_and_counts_the_rest()
    {
        using var lab = NetnsLab.Open("ldp-accept-", "ip", "ping", "nc");
        var (a, b) = lab.AddVethPair("lda", ["192.168.55.1/24", "192.168.55.3/24", "192.168.55.4/24"], ["192.168.55.2/24"]);
        lab.WriteFile("x1.toml", Config(1, "\"itr\", \"etr\", \"map-server\", \"map-resolver\"", "192.168.55.4", """
            listen = ["192.168.55.1", "192.168.55.4"]
            """, """
            [[site]]
            name = "s1"
            key = "k"
            eid_prefixes = ["[0]10.1.0.0/24"]
            [[site]]
            name = "s2"
            key = "k"
            eid_prefixes = ["[0]10.2.0.0/24"]
            """));
        lab.WriteFile("x2.toml", Config(2, "\"itr\", \"etr\"", "192.168.55.2", "", ""));

        var x1 = lab.StartNode(a, lab.PathOf("x1.toml"));
        x1.WaitFor("node-started", Wait);
        var x2 = lab.StartNode(b, lab.PathOf("x2.toml"));
        x2.WaitFor(@"data-plane-started .*accept_from known \(1 configured peer\(s\), 0 prefix\(es\)", Wait);
        x1.WaitFor(@"registration-accepted .*\[0\]10\.2\.0\.0/24", Wait);

        // The ping gets through once xTR 2 has learned 192.168.55.4 from the mapping of 10.1.0.1.
        var ping = Poll(() => Sh($"ip netns exec {a} ping -c 3 -i 0.3 -W 2 -I 10.1.0.1 10.2.0.1"), 10);
        output.WriteLine(ping.Out);
        Assert.True(ping.Code == 0, $"ping failed:\n{ping.Out}{ping.Err}\nx1:\n{x1.Output}\nx2:\n{x2.Output}");
        x2.WaitFor(@"data-plane-stats .*unknown-source=[1-9]", Wait);
        // The stats line is logged once a second when something changed: that one may predate the ping's last
        // decapsulations (a clean-clone run read decap 0 here and 2 after the intruder). Two intervals settle it.
        Thread.Sleep(2500);

        // The intruder: well-formed LISP data packets from 192.168.55.3 with an inner source no mapping covers.
        long decapBefore = LastDecap(x2);
        string packet = lab.PathOf("intruder.bin");
        File.WriteAllBytes(packet, LispIcmp("10.9.9.9", "10.2.0.1"));
        for (int i = 0; i < 5; i++) Must($"ip netns exec {a} sh -c 'nc -u -w 0 -s 192.168.55.3 192.168.55.2 4341 < {packet}'");
        Thread.Sleep(2500);   // two stats intervals
        var stats = x2.Output.Split('\n').Last(l => l.Contains("data-plane-stats", StringComparison.Ordinal));
        output.WriteLine(stats);
        long decapAfter = LastDecap(x2);
        Assert.Equal(decapBefore, decapAfter);   // nothing from the intruder reached the TUN
        int unknown = int.Parse(Regex.Match(stats, @"unknown-source=(\d+)").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(unknown >= 6, $"expected the intruder's 5 packets and the first contact's counted: {stats}");
    }

    private static long LastDecap(NsProcess x)
    {
        var line = x.Output.Split('\n').Last(l => l.Contains("data-plane-stats", StringComparison.Ordinal));
        var m = Regex.Match(line, @"decap (\d+) pkts");
        Assert.True(m.Success, line);
        return long.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>LISP header (N bit, nonce, instance 0) + an IPv4 ICMP echo request, checksums computed here.</summary>
    private static byte[] LispIcmp(string source, string destination)
    {
        var p = new byte[8 + 28];
        p[0] = 0x80;
        p[1] = 0x12;
        p[2] = 0x34;
        p[3] = 0x56;
        var ip = p.AsSpan(8);
        ip[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], 28);
        ip[8] = 64;
        ip[9] = 1;
        System.Net.IPAddress.Parse(source).GetAddressBytes().CopyTo(ip[12..]);
        System.Net.IPAddress.Parse(destination).GetAddressBytes().CopyTo(ip[16..]);
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], Checksum(ip[..20]));
        var icmp = ip[20..];
        icmp[0] = 8;
        BinaryPrimitives.WriteUInt16BigEndian(icmp[4..], 1);
        BinaryPrimitives.WriteUInt16BigEndian(icmp[6..], 1);
        BinaryPrimitives.WriteUInt16BigEndian(icmp[2..], Checksum(icmp));
        return p;
    }

    private static ushort Checksum(ReadOnlySpan<byte> b)
    {
        uint sum = 0;
        for (int i = 0; i + 1 < b.Length; i += 2) sum += (uint)(b[i] << 8 | b[i + 1]);
        while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
        return (ushort)~sum;
    }

    private static string Config(int me, string roles, string rloc, string nodeExtra, string sites) => $"""
        [node]
        name = "x{me}"
        roles = [{roles}]
        rlocs = ["{rloc}"]
        log_level = "info"
        {nodeExtra}
        [mapping]
        map_servers = ["192.168.55.1"]
        map_resolvers = ["192.168.55.1"]
        key = "k"
        [etr]
        register_interval = "2s"
        [[database]]
        eid = "[0]10.{me}.0.0/24"
        [data_plane]
        tun = "lisp0"
        addresses = ["10.{me}.0.1/32"]
        routes = ["10.{3 - me}.0.0/24"]
        miss_policy = "queue"
        stats_interval = "1s"
        accept_from = "known"
        {sites}
        """;
}
