using System.Security.Cryptography;
using System.Text.RegularExpressions;
using Xunit;
using Xunit.Abstractions;
using static Lisp.DataPlane.Tests.NetnsLab;

namespace Lisp.DataPlane.Tests;

/// <summary>
/// The data-plane offloads (issue 13) between two real `lisp-decent run` xTRs in their own namespaces, over an IPv4 and
/// an IPv6 underlay, with `[data_plane] offload = "auto"` and `"off"`. xTR A is also the map-server/map-resolver; xTR B
/// registers to it. 8 MB of random bytes go by TCP each way through the overlay and must arrive byte for byte (SHA-256
/// of what was sent against what was received). With auto the TUN hands the ITR TCP super-packets that it splits and
/// sends with UDP GSO, and the ETR joins segments again before its TUN write; the stop line counts both. With off none
/// of that happens and the stop line says nothing about offloads.
/// <code>
///   ns A: v1 192.168.57.1 / fd57::1  lisp0 10.1.0.1 ---- veth ---- ns B: v2 192.168.57.2 / fd57::2  lisp0 10.2.0.1
/// </code>
/// </summary>
[Collection("netns")]
public sealed class OffloadNetnsTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);
    // Each node's management API listens on the loopback of its own namespace.
    private const string Management = "127.0.0.1:18091";
    private const int TransferBytes = 8 * 1024 * 1024;

    [SkippableTheory]
    [InlineData(4, "auto")]
    [InlineData(4, "off")]
    [InlineData(6, "auto")]
    [InlineData(6, "off")]
    public void Tcp_through_the_overlay_arrives_byte_for_byte_with_offloads_on_and_off(int family, string offload)
    {
        using var lab = NetnsLab.Open("ldp-offload-", "ip", "ping", "nc", "timeout");
        var (a, b) = lab.AddVethPair("ldo", ["192.168.57.1/24", "fd57::1/64"], ["192.168.57.2/24", "fd57::2/64"]);
        string rlocA = family == 4 ? "192.168.57.1" : "fd57::1", rlocB = family == 4 ? "192.168.57.2" : "fd57::2";
        NsProcess? xa = null, xb = null;
        try
        {
            lab.WriteFile("a.toml", Config(1, "\"itr\", \"etr\", \"map-server\", \"map-resolver\"", rlocA, rlocA, offload, """
                [[site]]
                name = "s1"
                key = "k"
                eid_prefixes = ["[0]10.1.0.0/24"]
                [[site]]
                name = "s2"
                key = "k"
                eid_prefixes = ["[0]10.2.0.0/24"]
                """));
            // Node B with offloads off also keeps the kernel's default qdisc on its TUN (the other three TUNs get noqueue).
            lab.WriteFile("b.toml", Config(2, "\"itr\", \"etr\"", rlocB, rlocA, offload, "", offload == "off" ? "tun_qdisc = \"keep\"" : ""));

            xa = lab.StartNode(a, lab.PathOf("a.toml"));
            xa.WaitFor("node-started", Wait);
            xb = lab.StartNode(b, lab.PathOf("b.toml"));
            xb.WaitFor("data-plane-started", Wait);
            xa.WaitFor(@"registration-accepted .*\[0\]10\.2\.0\.0/24", Wait);

            // What each node says at start about its offloads and its send mode.
            bool tso = true;
            foreach (var x in new[] { xa, xb })
            {
                if (offload == "auto")
                {
                    x.WaitFor(@"offload: (tun: |off)", Wait);
                    tso = tso && x.Count(@"offload: tun: csum tso4 tso6") == 1;
                    if (x.Count(@"offload: tun: csum tso4 tso6") == 1)
                    {
                        Assert.True(x.Count(@"offload: tun: csum tso4 tso6( uso)?; udp: gso gro; etr: tcp-coalescing( udp-coalescing)?") == 1, "offload line:\n" + Tail(x.Output));
                        Assert.True(x.Count(@"send mode: udp \(8 source ports per family, picked by flow hash, UDP GSO\); auto chose udp: TCP segmentation offload is on") == 1,
                            "send mode line:\n" + Tail(x.Output));
                    }
                    else
                    {
                        // A kernel without TSO on TUN must say why: a refusal note of its own.
                        Assert.True(x.Count(@"offload: .*(refused|off:)") >= 1, "no TSO on the TUN and no offload refusal note:\n" + Tail(x.Output));
                    }
                }
                else
                {
                    x.WaitFor(@"offload: off \(configured offload = ""off""\)", Wait);
                    Assert.True(x.Count(@"send mode: raw \(") == 1, "send mode line:\n" + Tail(x.Output));
                    Assert.Equal(0, x.Count(@"offload: tun: "));
                    Assert.Equal(0, x.Count(@"send mode: udp"));
                }
            }

            // `show status` from inside each namespace reports the same offloads.
            foreach (var (ns, x) in new[] { (a, xa), (b, xb) })
            {
                string status = ShowStatus(ns);
                output.WriteLine(status);
                var line = status.Split('\n').FirstOrDefault(l => l.StartsWith("Offloads", StringComparison.Ordinal));
                Assert.True(line is not null, "show status has no Offloads line:\n" + status);
                string shown = line![8..].Trim();
                if (offload == "off") Assert.Equal("off", shown);
                else if (tso) Assert.Matches(@"^tun: csum tso4 tso6( uso)?; udp: gso gro; etr: tcp-coalescing( udp-coalescing)?$", shown);
                else Assert.StartsWith("tun: ", shown);
                // The same text as the start log's offload line (auto) — the log and the API describe one thing.
                if (offload == "auto") Assert.Equal(1, x.Count("offload: " + Regex.Escape(shown)));
                // With TSO and UDP GSO the node caps the TUN's super-packets at what one GSO send carries (44 segments at
                // underlay MTU 1500); with offloads off it leaves the kernel's default (65535).
                var link = Sh($"ip -d -n {ns} link show dev lisp0").Out;
                if (offload == "auto" && tso)
                {
                    Assert.Contains("gso_max_segs 44 ", link);
                    Assert.Equal(1, x.Count(@"tun-configured lisp0: gso_max_segs 44 "));
                }
                else if (offload == "off")
                {
                    Assert.Contains("gso_max_segs 65535 ", link);
                    Assert.Equal(0, x.Count("gso_max_segs"));
                }
                // Root qdisc noqueue by default (the TUN never holds packets back, so a queue step is pure cost);
                // tun_qdisc = "keep" leaves the one the new TUN got (the kernel's default).
                if (offload == "off" && x == xb)
                {
                    Assert.DoesNotContain(" qdisc noqueue ", link);
                    Assert.Equal(0, x.Count("qdisc noqueue"));
                }
                else
                {
                    Assert.Contains(" qdisc noqueue ", link);
                    Assert.Equal(1, x.Count(@"tun-configured lisp0: qdisc noqueue "));
                }
            }

            // The first ping through the overlay: the first packets miss and are held until the Map-Replies arrive.
            var ping = Poll(() => Sh($"ip netns exec {a} ping -c 3 -i 0.3 -W 2 -I 10.1.0.1 10.2.0.1"), 10);
            output.WriteLine(ping.Out);
            Assert.True(ping.Code == 0, $"ping failed:\n{ping.Out}{ping.Err}\nA:\n{Tail(xa.Output)}\nB:\n{Tail(xb.Output)}");

            // TCP, 8 MB of random bytes each way (different contents), compared byte for byte.
            Transfer(lab, "a-to-b", seed: 5701, fromNs: a, fromAddr: "10.1.0.1", toNs: b, toAddr: "10.2.0.1", port: 5701, xa, xb);
            Transfer(lab, "b-to-a", seed: 5702, fromNs: b, fromAddr: "10.2.0.1", toNs: a, toAddr: "10.1.0.1", port: 5702, xa, xb);

            xa.Stop();
            xb.Stop();
            foreach (var (name, x) in new[] { ("A", xa), ("B", xb) })
            {
                var stopped = x.Output.Split('\n').LastOrDefault(l => l.Contains("data-plane-stopped", StringComparison.Ordinal));
                output.WriteLine($"{name}: {stopped}");
                Assert.True(stopped is not null, $"{name} logged no data-plane-stopped line:\n{Tail(x.Output)}");
                Assert.Matches(@"encap [1-9]\d* pkts", stopped);
                if (offload == "off")
                {
                    Assert.DoesNotContain("offload super-packets", x.Output);
                }
                else if (tso)
                {
                    // Each node sent 8 MB (super-packets split, segments sent with GSO) and received 8 MB (segments joined again).
                    Assert.Matches(@"offload super-packets [1-9]\d* -> [1-9]\d* segments \([1-9]\d* gso sends", stopped);
                    Assert.Matches(@"coalesced [1-9]\d* writes of [1-9]\d* segments", stopped);
                }
            }
        }
        catch
        {
            if (xa is not null) output.WriteLine("A:\n" + Tail(xa.Output, 60));
            if (xb is not null) output.WriteLine("B:\n" + Tail(xb.Output, 60));
            throw;
        }
    }

    /// <summary>`nc -l` on <paramref name="toAddr"/> in <paramref name="toNs"/>, `nc` from <paramref name="fromAddr"/>; SHA-256 of both files compared.</summary>
    private void Transfer(NetnsLab lab, string name, int seed, string fromNs, string fromAddr, string toNs, string toAddr, int port, NsProcess xa, NsProcess xb)
    {
        string source = lab.PathOf(name + ".sent"), sink = lab.PathOf(name + ".received");
        var bytes = new byte[TransferBytes];
        new Random(seed).NextBytes(bytes);
        File.WriteAllBytes(source, bytes);
        byte[] sentHash = SHA256.HashData(bytes);

        using (var server = lab.Start(toNs, "sh", ["-c", $"timeout 25 nc -l -s {toAddr} -p {port} > {sink}"]))
        {
            // Bounded wait for the listener (ss when present; else a fixed pause).
            bool listening = false;
            for (int i = 0; i < 30 && !listening; i++)
            {
                var ss = Sh($"ip netns exec {toNs} ss -Hltn 'sport = :{port}'");
                listening = ss.Code == 0 && ss.Out.Contains($":{port}", StringComparison.Ordinal);
                if (ss.Code != 0)
                {
                    Thread.Sleep(500);
                    break;
                }
                if (!listening) Thread.Sleep(100);
            }
            var sw = System.Diagnostics.Stopwatch.StartNew();
            var send = Sh($"ip netns exec {fromNs} sh -c 'timeout 20 nc -N -s {fromAddr} {toAddr} {port} < {source}'", 25000);
            Assert.True(send.Code == 0, $"{name}: nc send failed ({send.Code}): {send.Out}{send.Err}\nA:\n{Tail(xa.Output)}\nB:\n{Tail(xb.Output)}");
            server.WaitExit(TimeSpan.FromSeconds(20));
            output.WriteLine($"{name}: {TransferBytes} bytes sent and the receiver done in {sw.Elapsed.TotalSeconds:F2} s");
        }
        var received = File.ReadAllBytes(sink);
        Assert.True(received.Length == TransferBytes, $"{name}: received {received.Length} of {TransferBytes} bytes\nA:\n{Tail(xa.Output)}\nB:\n{Tail(xb.Output)}");
        Assert.Equal(Convert.ToHexString(sentHash), Convert.ToHexString(SHA256.HashData(received)));
    }

    private static string ShowStatus(string ns)
    {
        var r = Cli(ns, "show", "status", "--management", Management);
        Assert.True(r.Code == 0, $"show status failed: {r.Out}{r.Err}");
        return r.Out;
    }

    private static string Config(int me, string roles, string rloc, string mapServer, string offload, string sites, string dataPlane = "") => $"""
        [node]
        name = "x{me}"
        roles = [{roles}]
        rlocs = ["{rloc}"]
        listen = ["{rloc}"]
        log_level = "info"
        [mapping]
        map_servers = ["{mapServer}"]
        map_resolvers = ["{mapServer}"]
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
        offload = "{offload}"
        {dataPlane}
        {sites}
        [management]
        listen = "{Management}"
        """;
}
