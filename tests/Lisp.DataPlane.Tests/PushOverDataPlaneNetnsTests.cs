using Lisp.TestSupport;
using Lisp.Wire;
using Xunit;
using Xunit.Abstractions;

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
    private static int _counter;
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    [SkippableFact]
    public void Push_member_with_the_data_plane_on_4341_starts_and_receives_encapsulated_registrations()
    {
        Skip.IfNot(Environment.UserName == "root" || NetnsTests.Sh("id -u").Out.Trim() == "0", "needs root for network namespaces");
        Skip.IfNot(File.Exists("/dev/net/tun"), "/dev/net/tun is missing");
        foreach (var tool in new[] { "ip", "ping" })
            Skip.If(NetnsTests.Sh($"command -v {tool}").Code != 0, $"{tool} is not installed (./build.sh deps)");

        string id = $"{Environment.ProcessId % 100000}{Interlocked.Increment(ref _counter)}";
        string a = $"ldq{id}a", b = $"ldq{id}b";
        var dir = Directory.CreateTempSubdirectory("ldp-push-");
        var procs = new List<NsProcess>();
        try
        {
            foreach (var ns in new[] { a, b })
            {
                var r = NetnsTests.Sh($"ip netns add {ns}");
                Skip.If(r.Code != 0, $"ip netns add failed: {r.Err.Trim()}");
                Must($"ip -n {ns} link set lo up");
            }
            Must($"ip link add v1 netns {a} type veth peer name v2 netns {b}");
            Must($"ip -n {a} addr add 192.168.52.1/24 dev v1 && ip -n {a} link set v1 up");
            Must($"ip -n {b} addr add 192.168.52.2/24 dev v2 && ip -n {b} link set v2 up");
            WriteMember(dir.FullName, 1, 2);
            WriteMember(dir.FullName, 2, 1);

            var n1 = Start(a, Path.Combine(dir.FullName, "n1.toml"), procs);
            var n2 = Start(b, Path.Combine(dir.FullName, "n2.toml"), procs);
            foreach (var n in new[] { n1, n2 })
            {
                n.WaitFor("data-plane-started.*0xffffff.*control plane", Wait);
                n.WaitFor(@"push-started.*data port 4341 \(received through the data plane", Wait);
            }

            // Each site table gets the other member's EID: its Map-Register came encapsulated to our 4341 (the data plane's socket).
            n1.WaitFor(@"site-table .*\[0\]10\.2\.0\.0/24 by 192\.168\.52\.2", Wait);
            n2.WaitFor(@"site-table .*\[0\]10\.1\.0\.0/24 by 192\.168\.52\.1", Wait);

            // Ordinary traffic still crosses the overlay through the same sockets (resolved through the push group).
            var ping = Sh3(() => NetnsTests.Sh($"ip netns exec {a} ping -c 2 -i 0.3 -W 2 -I 10.1.0.1 10.2.0.1"), 10);
            output.WriteLine(ping.Out);
            Assert.True(ping.Code == 0, $"ping through the overlay failed:\n{ping.Out}{ping.Err}\nn1:\n{n1.Output}\nn2:\n{n2.Output}");

            // Issue 11 item 7 with the data plane owning 4341: a plain Map-Notify from member n2's address to n1's data
            // port (as lispers.net answers an encapsulated push Map-Register) reaches the push group through the ETR.
            var notify = new MapNotify
            {
                Nonce = 0x1122334455667788, Algorithm = AuthAlgorithm.HmacSha256_128,
                Records = [new MappingRecord(EidPrefix.Parse("[0]10.2.0.0/24"), [new LocatorRecord(IpAddress.Parse("192.168.52.2"))], 3)],
            }.ToSignedBytes("not-the-group-key"u8.ToArray());
            var notifyFile = Path.Combine(dir.FullName, "notify.bin");
            File.WriteAllBytes(notifyFile, notify);
            Must($"ip netns exec {b} bash -c 'cat {notifyFile} > /dev/udp/192.168.52.1/4341'"); // one write, one datagram
            n1.WaitFor(@"push-plain-control plain MapNotify from push member 192\.168\.52\.2:\d+ on the data port \(data plane\)", Wait);

            n1.Stop();
            output.WriteLine(n1.Output);
            Assert.Matches(@"data-plane-stopped.*decap [1-9]\d* pkts.*, control [1-9]\d*, plain-control [1-9]\d*, drops.*control hand-off [1-9]\d* handled", n1.Output);
            Assert.DoesNotContain("cannot bind", n1.Output, StringComparison.Ordinal);
            Assert.DoesNotContain("push-decap-drop", n1.Output, StringComparison.Ordinal);
        }
        finally
        {
            foreach (var p in procs) p.Dispose();
            foreach (var ns in new[] { a, b }) NetnsTests.Sh($"ip netns del {ns}");
            try
            {
                dir.Delete(true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static void WriteMember(string dir, int me, int other) => File.WriteAllText(Path.Combine(dir, $"n{me}.toml"), $"""
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

    private static NsProcess Start(string ns, string config, List<NsProcess> procs)
    {
        var p = NsProcess.StartNode(ns, config);
        procs.Add(p);
        return p;
    }

    private static (int Code, string Out, string Err) Sh3(Func<(int Code, string Out, string Err)> f, int tries)
    {
        var r = f();
        for (int i = 1; i < tries && r.Code != 0; i++)
        {
            Thread.Sleep(500);
            r = f();
        }
        return r;
    }

    private static void Must(string cmd)
    {
        var r = NetnsTests.Sh(cmd);
        if (r.Code != 0) throw new InvalidOperationException($"{cmd}: {r.Err}");
    }
}
