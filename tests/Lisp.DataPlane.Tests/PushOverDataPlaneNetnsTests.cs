using Lisp.Wire;
using Xunit;
using Xunit.Abstractions;
using static Lisp.DataPlane.Tests.NetnsLab;

namespace Lisp.DataPlane.Tests;

/// <summary>
/// One owner of UDP 4341 per node: two `lisp-decent run` processes, each in its own network namespace joined
/// by a veth pair, are members of a push group with delivery "replicate-encapsulated" AND run the data plane
/// on the same port. Each node starts (push binds no data socket of its own), each member's Map-Registers
/// reach the other through the other's data-plane ETR (instance-id 0xffffff hand-off, counted as "control"),
/// and ordinary EID traffic still crosses the overlay, resolved through the push group. A plain (not encapsulated)
/// Map-Notify from a member to the data port also reaches the push group through the ETR (issue 11 item 7).
/// <code>
///   ns A: v1 192.168.52.1/24  lisp0 10.1.0.1/32 ------ veth ------ ns B: v2 192.168.52.2/24  lisp0 10.2.0.1/32
/// </code>
/// </summary>
[Collection("netns")]
public sealed class PushOverDataPlaneNetnsTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    [SkippableFact]
    public void Push_member_with_the_data_plane_on_4341_starts_and_receives_encapsulated_registrations()
    {
        using var lab = NetnsLab.Open("ldp-push-", "ip", "ping");
        var (a, b) = lab.AddVethPair("ldq", ["192.168.52.1/24"], ["192.168.52.2/24"]);
        WriteMember(lab, 1, 2);
        WriteMember(lab, 2, 1);

        var n1 = lab.StartNode(a, lab.PathOf("n1.toml"));
        var n2 = lab.StartNode(b, lab.PathOf("n2.toml"));
        foreach (var n in new[] { n1, n2 })
        {
            n.WaitFor("data-plane-started.*0xffffff.*control plane", Wait);
            n.WaitFor(@"push-started.*data port 4341 \(received through the data plane", Wait);
        }

        // Each site table gets the other member's EID: its Map-Register came encapsulated to our 4341 (the data plane's socket).
        n1.WaitFor(@"site-table .*\[0\]10\.2\.0\.0/24 by 192\.168\.52\.2", Wait);
        n2.WaitFor(@"site-table .*\[0\]10\.1\.0\.0/24 by 192\.168\.52\.1", Wait);

        // Ordinary traffic still crosses the overlay through the same sockets (resolved through the push group).
        var ping = Poll(() => Sh($"ip netns exec {a} ping -c 2 -i 0.3 -W 2 -I 10.1.0.1 10.2.0.1"), 10);
        output.WriteLine(ping.Out);
        Assert.True(ping.Code == 0, $"ping through the overlay failed:\n{ping.Out}{ping.Err}\nn1:\n{n1.Output}\nn2:\n{n2.Output}");

        // Issue 11 item 7 with the data plane owning 4341: a plain Map-Notify from member n2's address to n1's data
        // port (as lispers.net answers an encapsulated push Map-Register) reaches the push group through the ETR.
        var notify = new MapNotify
        {
            Nonce = 0x1122334455667788, Algorithm = AuthAlgorithm.HmacSha256_128,
            Records = [new MappingRecord(EidPrefix.Parse("[0]10.2.0.0/24"), [new LocatorRecord(IpAddress.Parse("192.168.52.2"))], 3)],
        }.ToSignedBytes("not-the-group-key"u8.ToArray());
        var notifyFile = lab.PathOf("notify.bin");
        File.WriteAllBytes(notifyFile, notify);
        Must($"ip netns exec {b} bash -c 'cat {notifyFile} > /dev/udp/192.168.52.1/4341'"); // one write, one datagram
        n1.WaitFor(@"push-plain-control plain MapNotify from push member 192\.168\.52\.2:\d+ on the data port \(data plane\)", Wait);

        n1.Stop();
        output.WriteLine(n1.Output);
        Assert.Matches(@"data-plane-stopped.*decap [1-9]\d* pkts.*, control [1-9]\d*, plain-control [1-9]\d*, drops.*control hand-off [1-9]\d* handled", n1.Output);
        Assert.DoesNotContain("cannot bind", n1.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("push-decap-drop", n1.Output, StringComparison.Ordinal);
    }

    private static void WriteMember(NetnsLab lab, int me, int other) => lab.WriteFile($"n{me}.toml", $"""
        [node]
        name = "n{me}"
        roles = ["itr", "etr", "map-server", "map-resolver"]
        rlocs = ["192.168.52.{me}"]
        log_level = "info"
        [decent.push]
        group = "224.1.1.1"
        delivery = "replicate-encapsulated"
        members = ["192.168.52.{other}"]
        key = "decent-demo-key"
        register_interval = "2s"
        [[database]]
        eid = "[0]10.{me}.0.0/24"
        [data_plane]
        tun = "lisp0"
        addresses = ["10.{me}.0.1/32"]
        routes = ["10.{other}.0.0/24"]
        miss_policy = "queue"
        stats_interval = "1s"
        """);
}
