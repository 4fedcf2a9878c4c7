using Xunit;
using Xunit.Abstractions;
using static Lisp.DataPlane.Tests.NetnsLab;

namespace Lisp.DataPlane.Tests;

/// <summary>
/// Echo-nonce between two real `lisp-decent run` xTRs in their own network namespaces (veth pair), both with
/// `[data_plane] echo_nonce = true` and short timings. With ping traffic both ways each side's requests are echoed;
/// when xTR B stops (so nothing echoes any more) while A keeps sending to B's RLOC, A marks B's RLOC down, logs it,
/// counts it and `show counters` says so. A is also B's map-server and map-resolver.
/// <code>
///   ns A: v1 192.168.53.1/24  lisp0 10.1.0.1/32 ------ veth ------ ns B: v2 192.168.53.2/24  lisp0 10.2.0.1/32
/// </code>
/// </summary>
[Collection("netns")]
public sealed class EchoNonceNetnsTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    [SkippableFact]
    public void Echo_nonce_keeps_the_rloc_up_while_echoed_and_marks_it_down_when_the_peer_stops_echoing()
    {
        using var lab = NetnsLab.Open("ldp-echo-", "ip", "ping");
        var (a, b) = lab.AddVethPair("lde", ["192.168.53.1/24"], ["192.168.53.2/24"]);
        Write(lab, 1, 2);
        Write(lab, 2, 1);

        var xa = lab.StartNode(a, lab.PathOf("x1.toml"));
        xa.WaitFor("node-started", Wait);
        xa.WaitFor(@"data-plane-started.*echo-nonce on \(request every 1 s, timeout 1 s, retry 60 s\)", Wait);
        var xb = lab.StartNode(b, lab.PathOf("x2.toml"));
        xb.WaitFor("data-plane-started", Wait);
        xa.WaitFor(@"registration-accepted .*\[0\]10\.2\.0\.0/24", Wait);

        // Traffic both ways (echo request and reply): each side's requests come back as echoes in the other's packets.
        var ping = Poll(() => Sh($"ip netns exec {a} ping -c 10 -i 0.2 -W 2 -I 10.1.0.1 10.2.0.1"), 8);
        output.WriteLine(ping.Out);
        Assert.True(ping.Code == 0, $"ping failed:\n{ping.Out}{ping.Err}\nA:\n{xa.Output}\nB:\n{xb.Output}");
        xa.WaitFor(@"data-plane-stats .*echo-nonce requests [1-9]\d*, echoes received [1-9]\d*, echoes sent [1-9]\d*, down 0", Wait);
        xb.WaitFor(@"data-plane-stats .*echo-nonce requests [1-9]\d*, echoes received [1-9]\d*, echoes sent [1-9]\d*, down 0", Wait);
        var up = Show(a);
        output.WriteLine(up);
        Assert.Matches(@"192\.168\.53\.2\s+up\s", up);

        // B stops: nothing echoes A's requests any more while A keeps sending to B's RLOC.
        xb.Stop();
        using (lab.Start(a, "ping", ["-c", "40", "-i", "0.2", "-W", "1", "-I", "10.1.0.1", "10.2.0.1"]))
        {
            xa.WaitFor(@"echo-nonce-down rloc 192\.168\.53\.2 marked unreachable: no echo of nonce within 1 s while traffic was sent", Wait);
            // The map-cache stopped using the RLOC: packets to B are now dropped for want of a usable RLOC, counted.
            xa.WaitFor(@"data-plane-stats .*no-usable-rloc=[1-9]", Wait);
        }
        var down = Show(a);
        output.WriteLine(down);
        Assert.Matches(@"192\.168\.53\.2\s+down\s", down);
        Assert.Matches(@"Echo-nonce: requests [1-9][\d,]*, echoes received [1-9][\d,]*, echoes sent [1-9][\d,]*, down [1-9]", down);
        xa.Stop();
        output.WriteLine(Tail(xa.Output, 8));
        Assert.Matches(@"data-plane-stopped.*echo-nonce requests [1-9]\d*, echoes received [1-9]\d*, echoes sent [1-9]\d*, down [1-9]", xa.Output);
    }

    private static void Write(NetnsLab lab, int me, int other)
    {
        string roles = me == 1 ? "\"itr\", \"etr\", \"map-server\", \"map-resolver\"" : "\"itr\", \"etr\"";
        string sites = me == 1 ? """
            [[site]]
            name = "s1"
            key = "k"
            eid_prefixes = ["[0]10.1.0.0/24"]
            [[site]]
            name = "s2"
            key = "k"
            eid_prefixes = ["[0]10.2.0.0/24"]
            [management]
            listen = "127.0.0.1:18080"
            """ : "";
        lab.WriteFile($"x{me}.toml", $"""
            [node]
            name = "x{me}"
            roles = [{roles}]
            rlocs = ["192.168.53.{me}"]
            log_level = "info"
            [mapping]
            map_servers = ["192.168.53.1"]
            map_resolvers = ["192.168.53.1"]
            key = "k"
            [etr]
            register_interval = "2s"
            [[database]]
            eid = "[0]10.{me}.0.0/24"
            [data_plane]
            tun = "lisp0"
            addresses = ["10.{me}.0.1/32"]
            routes = ["10.{other}.0.0/24"]
            miss_policy = "queue"
            stats_interval = "1s"
            echo_nonce = true
            echo_nonce_interval = "1s"
            echo_nonce_timeout = "1s"
            echo_nonce_retry = "60s"
            {sites}
            """);
    }

    private static string Show(string ns)
    {
        var r = Cli(ns, "show", "counters", "--management", "127.0.0.1:18080");
        Assert.True(r.Code == 0, $"show counters failed: {r.Out}{r.Err}");
        return r.Out;
    }
}
