using System.Net;
using System.Net.Sockets;
using Lisp.TestSupport;
using Lisp.Wire;
using Xunit.Abstractions;

namespace Lisp.Appliance.Tests;

/// <summary>
/// The seed's push demo reproduced with real `lisp-decent run` processes: three members on loopback, each
/// registering an IPv4 EID and a name EID to group 224.1.1.1; every site table ends up with all six plus the
/// peer-group entry, and `lig` against any member answers for every EID.
/// </summary>
public class PushDemoTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Converge = TimeSpan.FromSeconds(60);
    private static readonly string[] AllSix = ["[0]1.1.1.1/32", "[0]'nexus-n1'", "[0]2.2.2.2/32", "[0]'nexus-n2'", "[0]3.3.3.3/32", "[0]'nexus-n3'"];
    private const string PeerGroup = "[0](0.0.0.0/0, 224.1.1.1/32)";

    private static bool Complete(string line) =>
        line.Contains("8 entries, 7 registered", StringComparison.Ordinal) &&
        AllSix.All(e => line.Contains(e + " by ", StringComparison.Ordinal)) &&
        line.Contains(PeerGroup + " by ", StringComparison.Ordinal) &&
        line.Contains("[0](0.0.0.0/0, 224.0.0.0/4) (configured)", StringComparison.Ordinal);

    private void AssertDemo(PushCluster c, bool ligEverything)
    {
        foreach (var n in c.Nodes)
        {
            var table = n.SiteTable(Converge, Complete);
            output.WriteLine(table);
        }
        for (int node = 1; node <= 3; node++)
        {
            var eids = ligEverything || node == 1 ? AllSix : [AllSix[(node * 2) % 6]];
            foreach (var eid in eids)
            {
                var (rc, stdout, stderr) = c.Lig(eid, node);
                int owner = Array.IndexOf(AllSix, eid) / 2 + 1;
                Assert.True(rc == 0, $"lig {eid} at n{node}: exit {rc}\n{stdout}\n{stderr}");
                Assert.True(stdout.Contains("RLOC " + c.Address(owner), StringComparison.Ordinal), $"lig {eid} at n{node}: expected RLOC {c.Address(owner)}\n{stdout}");
                if (node == 1 && eid == AllSix[0]) output.WriteLine(stdout);
            }
        }
        var (prc, pout, perr) = c.Lig(PeerGroup, 2);
        Assert.True(prc == 0, $"lig peer group: {pout}\n{perr}");
        output.WriteLine(pout);
        for (int i = 1; i <= 3; i++) Assert.True(pout.Contains(c.Address(i), StringComparison.Ordinal), pout);
    }

    [Fact]
    public void Seed_push_demo_with_head_end_replication()
    {
        using var c = new PushCluster { ControlPort = Loopback.FreeUdpPort(), DataPort = Loopback.FreeUdpPort(), Subnet = "127.0.30" };
        c.StartDemo();
        AssertDemo(c, ligEverything: true);
    }

    [Fact]
    public void Seed_push_demo_with_encapsulated_replication_on_the_data_port()
    {
        using var c = new PushCluster { ControlPort = Loopback.FreeUdpPort(), DataPort = Loopback.FreeUdpPort(), Subnet = "127.0.31", Delivery = "replicate-encapsulated" };
        c.StartDemo();
        AssertDemo(c, ligEverything: false);
        // The other members' copies arrived LISP-encapsulated (iid 0xffffff) on the data port, not on 4342.
        foreach (var n in c.Nodes) Assert.Contains(n.Lines, l => l.Contains("push-started", StringComparison.Ordinal) && l.Contains($"data port {c.DataPort}", StringComparison.Ordinal));
    }

    [SkippableFact]
    public void Seed_push_demo_with_ip_multicast_inside_a_network_namespace()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "network namespaces are Linux only");
        using var ns = TestNetns.TryCreate(out var reason);
        Skip.If(ns is null, $"cannot make a network namespace with multicast on lo: {reason}");
        using var c = new PushCluster { Netns = ns!.Name, ControlPort = 4342, DataPort = 4341, Subnet = "127.0.30", Delivery = "multicast" };
        c.StartDemo();
        foreach (var n in c.Nodes) n.WaitForLine("push-multicast joined 224.1.1.1", Converge);
        AssertDemo(c, ligEverything: false);
    }

    [Fact]
    public void Late_join_leave_crash_and_wrong_key_with_real_processes()
    {
        using var c = new PushCluster { ControlPort = Loopback.FreeUdpPort(), DataPort = Loopback.FreeUdpPort(), Subnet = "127.0.32", RegisterInterval = "2s" };
        var n1 = c.Start(1, 3, PushCluster.DemoEids[0]);
        var n2 = c.Start(2, 3, PushCluster.DemoEids[1]);
        n1.SiteTable(Converge, l => l.Contains("[0]2.2.2.2/32 by", StringComparison.Ordinal));

        // Late joiner: n3 learns everything within one register interval of the others (2 s, plus start-up).
        var n3 = c.Start(3, 3, PushCluster.DemoEids[2]);
        n3.SiteTable(Converge, l => l.Contains("[0]1.1.1.1/32 by", StringComparison.Ordinal) && l.Contains("[0]'nexus-n2' by", StringComparison.Ordinal));
        foreach (var n in c.Nodes) n.SiteTable(Converge, Complete);

        // A non-member with the wrong key: rejected, counted, nothing changes.
        var reg = new MapRegister
        {
            Nonce = 99, Algorithm = AuthAlgorithm.HmacSha256_128, ProxyReply = true,
            Records = [new MappingRecord(EidPrefix.Parse("[0]1.1.1.1/32"), [new LocatorRecord(IpAddress.Parse("127.0.32.66"))], 3, MapReplyAction.NoAction, true)],
        }.ToSignedBytes("wrong-key"u8.ToArray());
        using (var stranger = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp))
        {
            stranger.Bind(new IPEndPoint(IPAddress.Parse("127.0.32.66"), 0));
            stranger.SendTo(reg, new IPEndPoint(IPAddress.Parse(c.Address(1)), c.ControlPort));
        }
        n1.WaitForLine("registration-rejected auth-failure.*127.0.32.66", TimeSpan.FromSeconds(20));
        Assert.DoesNotContain(n1.Lines, l => l.Contains("site-table", StringComparison.Ordinal) && l.Contains("127.0.32.66", StringComparison.Ordinal));

        // n3 leaves (SIGTERM): its TTL-0 Map-Registers withdraw it everywhere well before it could age out.
        n3.Stop(TimeSpan.FromSeconds(5));
        foreach (var n in new[] { n1, n2 })
            n.SiteTable(TimeSpan.FromSeconds(5), l => l.Contains("6 entries, 5 registered", StringComparison.Ordinal) && !l.Contains("3.3.3.3", StringComparison.Ordinal));

        // n2 crashes (SIGKILL): it stops refreshing and ages out at n1 after 3 intervals (6 s).
        n2.Kill();
        n1.SiteTable(TimeSpan.FromSeconds(30), l => l.Contains("4 entries, 3 registered", StringComparison.Ordinal) && !l.Contains("2.2.2.2", StringComparison.Ordinal));
        n1.WaitForLine("registration-timeout.*'nexus-n2'", TimeSpan.FromSeconds(5));
    }

    [Fact]
    public void A_new_member_bootstraps_from_the_seed_group_and_the_members_learn_it()
    {
        using var c = new PushCluster { ControlPort = Loopback.FreeUdpPort(), DataPort = Loopback.FreeUdpPort(), Subnet = "127.0.34", RegisterInterval = "60s" };
        c.StartDemo();
        foreach (var n in c.Nodes) n.SiteTable(Converge, Complete);

        // n4 knows no member: it looks the group up at seed member n1 (RFC 9962 4.4) and registers to what it finds;
        // the members learn n4 from its peer-group RLE and re-register to it at once (no 60 s wait).
        var n4 = c.Start(4, 1, ["[0]4.4.4.4/32"], seedGroup: $"lisp:{c.Address(1)}:{c.ControlPort}");
        n4.WaitForLine("push-seed-group seed group .* names 3 member", Converge);
        n4.SiteTable(Converge, l => AllSix.All(e => l.Contains(e + " by ", StringComparison.Ordinal)) && l.Contains("[0]4.4.4.4/32 by", StringComparison.Ordinal));
        foreach (var n in c.Nodes.Take(3))
        {
            n.SiteTable(Converge, l => l.Contains("[0]4.4.4.4/32 by", StringComparison.Ordinal));
            n.WaitForLine($"push-members learned {c.Address(4)}", TimeSpan.FromSeconds(5));
        }
    }

    [Fact]
    public void A_member_whose_seed_is_down_at_start_joins_when_it_comes_up_and_is_pruned_everywhere_when_it_leaves()
    {
        using var c = new PushCluster
        {
            ControlPort = Loopback.FreeUdpPort(), DataPort = Loopback.FreeUdpPort(), Subnet = "127.0.35", RegisterInterval = "1s", MembershipRefresh = "1s",
        };
        // n3 knows no member and its seed (n1) is not running yet: the start-up look-up fails, the refresh retries.
        var n3 = c.Start(3, 0, PushCluster.DemoEids[2], seedGroup: $"lisp:{c.Address(1)}:{c.ControlPort}");
        n3.WaitForLine("push-seed-group seed group .* gave no members", Converge);
        var n1 = c.Start(1, 2, PushCluster.DemoEids[0]);
        var n2 = c.Start(2, 2, PushCluster.DemoEids[1]);
        n3.WaitForLine("push-seed-group seed group .* reachable again", Converge);
        n3.SiteTable(Converge, l => AllSix.All(e => l.Contains(e + " by ", StringComparison.Ordinal)));
        foreach (var n in new[] { n1, n2 })
        {
            n.SiteTable(Converge, l => l.Contains("[0]3.3.3.3/32 by", StringComparison.Ordinal));
            n.WaitForLine($"push-members learned .*{c.Address(3)}", TimeSpan.FromSeconds(10));
        }

        // n3 leaves (TTL-0 withdraw): n1 and n2 drop it from their send lists one registration timeout (3 s) later.
        n3.Stop(TimeSpan.FromSeconds(5));
        foreach (var n in new[] { n1, n2 }) n.WaitForLine($"push-members removed {c.Address(3)}", TimeSpan.FromSeconds(20));
        // Static members are never pruned; nothing brings n3 back (the other's stale RLE does not).
        Thread.Sleep(TimeSpan.FromSeconds(2));
        foreach (var n in c.Nodes)
        {
            foreach (var l in n.Lines.Where(l => l.Contains(" push-", StringComparison.Ordinal))) output.WriteLine(l);
        }
        foreach (var n in new[] { n1, n2 })
        {
            Assert.DoesNotContain(n.Lines, l => l.Contains("push-members removed", StringComparison.Ordinal) && !l.Contains(c.Address(3), StringComparison.Ordinal));
            Assert.Single(n.Lines, l => l.Contains($"push-members removed {c.Address(3)}", StringComparison.Ordinal));
        }
    }
}
