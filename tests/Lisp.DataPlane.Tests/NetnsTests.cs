using Xunit;
using Xunit.Abstractions;
using static Lisp.DataPlane.Tests.NetnsLab;

namespace Lisp.DataPlane.Tests;

/// <summary>
/// Real `lisp-decent run` processes in network namespaces the test creates:
/// <code>
///   ns X1 (xTR1)                         ns U (underlay + MS/MR)                    ns X2 (xTR2)
///   lisp0: 10.1.0.1/32, fd00:1::1/128     br0 192.168.50.1/24                        lisp0: 10.2.0.1/32, fd00:2::1/128
///   routes 10.2.0.0/24, fd00:2::/64       MS/MR on 192.168.50.1:4342                 routes 10.1.0.0/24, fd00:1::/64
///     -> lisp0 (TUN)                       |                                           -> lisp0 (TUN)
///   v1 192.168.50.11 ------------------ v1u  br0  v2u ------------------------------- v2 192.168.50.12
/// </code>
/// The EID addresses live only on the TUNs and no namespace routes the other side's EID prefix anywhere but
/// into its TUN, so a reply can only come back through the overlay. The underlay is captured with tcpdump on
/// br0 to check that it carries UDP 4341 between the RLOCs.
/// </summary>
[Collection("netns")]
public sealed class NetnsTests(ITestOutputHelper output)
{
    [SkippableTheory]
    [InlineData("io_uring")]
    [InlineData("syscalls")]
    public void Ping_tcp_ipv6_and_restart_through_the_overlay(string io)
    {
        using var lab = NetnsLab.Open("ldp-netns-", "ip", "ping", "nc", "tcpdump");
        var nss = lab.AddNamespaces("ldp", "u", "x1", "x2");
        string u = nss[0], x1 = nss[1], x2 = nss[2];
        Bridge(u, "br0", "192.168.50.1/24");
        int n = 1;
        foreach (var x in new[] { x1, x2 })
        {
            Veth(x, $"v{n}", u, $"v{n}u");
            BridgePort(u, $"v{n}u", "br0");
            Up(x, $"v{n}", $"192.168.50.1{n}/24");
            n++;
        }

        lab.WriteFile("ms.toml", """
            [node]
            name = "msmr"
            roles = ["map-server", "map-resolver"]
            listen = ["192.168.50.1"]
            [[site]]
            name = "site1"
            key = "k1"
            eid_prefixes = ["[0]10.1.0.0/24", "[0]fd00:1::/64"]
            [[site]]
            name = "site2"
            key = "k2"
            eid_prefixes = ["[0]10.2.0.0/24", "[0]fd00:2::/64"]
            """);
        WriteXtr(lab, 1, 2, io);
        WriteXtr(lab, 2, 1, io);

        var capture = lab.Start(u, "tcpdump", ["-i", "br0", "-nn", "-l", "udp"]);
        var ms = lab.StartNode(u, lab.PathOf("ms.toml"));
        ms.WaitFor("node-started", TimeSpan.FromSeconds(30));
        var xtr1 = lab.StartNode(x1, lab.PathOf("xtr1.toml"));
        var xtr2 = lab.StartNode(x2, lab.PathOf("xtr2.toml"));
        xtr1.WaitFor("data-plane-started", TimeSpan.FromSeconds(30));
        xtr2.WaitFor("data-plane-started", TimeSpan.FromSeconds(30));
        // The nodes run with no `ip` on their PATH (NetnsLab.StartNode): the TUN's MTU, addresses (IPv6 without
        // DAD) and routes came from the binary's own rtnetlink requests, as the kernel now reports.
        Assert.Equal(1, xtr1.Count(@"tun-configured lisp0: address fd00:1::1/128 \(no DAD\)"));
        var tunAddr = Sh($"ip -n {x1} addr show dev lisp0").Out;
        Assert.Contains("inet 10.1.0.1/32", tunAddr);
        Assert.Contains("inet6 fd00:1::1/128", tunAddr);
        Assert.DoesNotContain("tentative", tunAddr);
        Assert.Contains("10.2.0.0/24 dev lisp0", Sh($"ip -n {x1} route show").Out);
        // The configured backend is the one in use (io_uring works on this project's kernels; see PLATFORM.md).
        Assert.True(xtr1.Count(io == "io_uring" ? @"io: io_uring \(" : @"io: syscalls \(configured") == 1, "xtr1 did not log the io backend:\n" + xtr1.Output);
        ms.WaitForCount("registration-accepted", 4, TimeSpan.FromSeconds(30));

        // IPv4 ping: the first packets miss in both directions and are held until Map-Replies install the entries.
        var ping = Poll(() => Sh($"ip netns exec {x1} ping -c 3 -i 0.3 -W 2 -I 10.1.0.1 10.2.0.1"), 8);
        output.WriteLine(ping.Out);
        Assert.True(ping.Code == 0, $"ping failed:\n{ping.Out}{ping.Err}\nxtr1:\n{xtr1.Output}\nxtr2:\n{xtr2.Output}");

        // IPv6 EIDs over the IPv4 underlay.
        var ping6 = Poll(() => Sh($"ip netns exec {x1} ping -6 -c 3 -i 0.3 -W 2 -I fd00:1::1 fd00:2::1"), 8);
        output.WriteLine(ping6.Out);
        Assert.True(ping6.Code == 0, $"ping -6 failed:\n{ping6.Out}{ping6.Err}\nxtr1:\n{xtr1.Output}");

        // MTU: without DF a packet that no longer fits after encapsulation goes as outer IPv4 fragments (RFC 9300 7.1).
        var frag = Sh($"ip netns exec {x1} ping -c 2 -W 2 -M dont -s 1472 -I 10.1.0.1 10.2.0.1");
        Assert.True(frag.Code == 0, $"ping -M dont -s 1472 failed:\n{frag.Out}{frag.Err}");

        // With DF the same size gets ICMP fragmentation-needed with mtu 1464.
        var df = Sh($"ip netns exec {x1} ping -c 2 -W 2 -M do -s 1472 -I 10.1.0.1 10.2.0.1");
        output.WriteLine(df.Out + df.Err);
        Assert.Matches("mtu ?= ?1464|Message too long", df.Out + df.Err);
        // TCP: 2 MB from A to B through the overlay (TCP's DF segments also exercise the ICMP path).
        string sink = lab.PathOf("received.bin");
        using (var server = lab.Start(x2, "sh", ["-c", $"timeout 60 nc -l -s 10.2.0.1 -p 5001 > {sink}"]))
        {
            Thread.Sleep(500);
            var send = Sh($"ip netns exec {x1} sh -c 'head -c 2000000 /dev/zero | tr \"\\0\" x | timeout 60 nc -N -s 10.1.0.1 10.2.0.1 5001'");
            Assert.True(send.Code == 0, $"nc send failed: {send.Err}");
            server.WaitExit(TimeSpan.FromSeconds(30));
        }
        Assert.Equal(2000000, new FileInfo(sink).Length);

        // The underlay carried LISP data between the RLOCs.
        Thread.Sleep(300);
        Assert.True(capture.Count(@"192\.168\.50\.11\.\d+ > 192\.168\.50\.12\.4341") > 0, "tcpdump saw no 4341 from xTR1 to xTR2:\n" + Tail(capture.Output));
        Assert.True(capture.Count(@"192\.168\.50\.12\.\d+ > 192\.168\.50\.11\.4341") > 0, "tcpdump saw no 4341 from xTR2 to xTR1");
        Assert.Equal(0, capture.Count(@"\b10\.[12]\.0\.1\b")); // no EID address is visible on the underlay

        // Restart xTR2: the overlay recovers once it is up and registered again.
        xtr2.Stop();
        Assert.Contains("data-plane-stopped", xtr2.Output);
        var xtr2b = lab.StartNode(x2, lab.PathOf("xtr2.toml"));
        xtr2b.WaitFor("data-plane-started", TimeSpan.FromSeconds(30));
        var again = Poll(() => Sh($"ip netns exec {x1} ping -c 2 -i 0.3 -W 2 -I 10.1.0.1 10.2.0.1"), 10);
        Assert.True(again.Code == 0, $"ping after xTR2 restart failed:\n{again.Out}\nxtr2:\n{xtr2b.Output}");
        xtr1.Stop();
        output.WriteLine(Tail(xtr1.Output, 15));
        if (io == "io_uring")
        {
            // No offloads with io_uring: raw sockets, and the ITR writes the outer fragments itself.
            Assert.Matches(@"data-plane-stopped.*encap [1-9]\d* pkts.*icmp-too-big [1-9]\d*, fragmented [1-9]", xtr1.Output);
        }
        else
        {
            // Offloads on (the default with syscalls): UDP sockets, so the kernel fragments the outer packet (the ITR's
            // own fragment counter stays 0), and the TCP transfer came through the TUN as super-packets.
            Assert.Matches(@"data-plane-stopped.*encap [1-9]\d* pkts.*icmp-too-big [1-9]\d*, fragmented 0.*offload super-packets [1-9]", xtr1.Output);
        }
    }

    private static void WriteXtr(NetnsLab lab, int me, int other, string io) => lab.WriteFile($"xtr{me}.toml", $"""
        [node]
        name = "xtr{me}"
        roles = ["itr", "etr"]
        rlocs = ["192.168.50.1{me}"]
        listen = ["192.168.50.1{me}"]
        [mapping]
        map_servers = ["192.168.50.1"]
        map_resolvers = ["192.168.50.1"]
        key = "k{me}"
        [etr]
        register_interval = "3s"
        [[database]]
        eid = "[0]10.{me}.0.0/24"
        [[database]]
        eid = "[0]fd00:{me}::/64"
        [data_plane]
        tun = "lisp0"
        addresses = ["10.{me}.0.1/32", "fd00:{me}::1/128"]
        routes = ["10.{other}.0.0/24", "fd00:{other}::/64"]
        miss_policy = "queue"
        stats_interval = "1s"
        io = "{io}"
        """);

    /// <summary>Kept for the tests that shell out through this class (<see cref="NetnsLab.Sh"/>).</summary>
    internal static (int Code, string Out, string Err) Sh(string cmd, int timeoutMs = 30000) => NetnsLab.Sh(cmd, timeoutMs);
}
