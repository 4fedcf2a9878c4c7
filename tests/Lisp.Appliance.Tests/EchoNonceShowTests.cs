using System.Diagnostics;
using Lisp.TestSupport;

namespace Lisp.Appliance.Tests;

/// <summary>
/// Both reachability mechanisms of one xTR side by side in `show counters`, `show status`, /api/counters and /metrics,
/// with real traffic. In a network namespace, xTR A (itr, etr, map-server, map-resolver, a TUN data plane with
/// echo_nonce = true, probing every second with a 60 s timeout) and a control-only ETR that registers [0]10.2.0.0/24
/// at RLOC 192.168.77.2, an address on a veth link that nobody owns. Pinging into 10.2.0.0/24 makes A encapsulate to
/// that RLOC asking for echoes that never come (echo-nonce marks it down) while its RLOC-probes go unanswered
/// (sent, no reply, still unknown within the timeout).
/// <code>
///   ns: v1 (veth, peer v2) 192.168.77.1 (A), 192.168.77.3 (ETR control); 192.168.77.2 = the registered RLOC, a black hole
/// </code>
/// </summary>
public sealed class EchoNonceShowTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);
    private const string Management = "127.0.0.1:18081";

    [SkippableFact]
    public void Show_and_metrics_list_rloc_probing_and_echo_nonce_for_the_same_rloc()
    {
        Skip.IfNot(Sh("id -u").Out.Trim() == "0", "needs root for network namespaces");
        Skip.IfNot(File.Exists("/dev/net/tun"), "/dev/net/tun is missing");
        foreach (var tool in new[] { "ip", "ping", "curl" })
            Skip.If(Sh($"command -v {tool}").Code != 0, $"{tool} is not installed (./build.sh deps)");
        using var ns = TestNetns.TryCreate(out var why);
        Skip.If(ns is null, $"cannot make a network namespace: {why}");
        string n = ns!.Name;
        // A veth pair inside the namespace: v1 holds our addresses; 192.168.77.2 is a permanent neighbour on it that
        // no interface owns (v2 drops frames for that MAC), so whatever goes to that RLOC leaves and is never answered.
        Must($"ip -n {n} link add v1 type veth peer name v2 && ip -n {n} link set v1 up && ip -n {n} link set v2 up");
        Must($"ip -n {n} addr add 192.168.77.1/24 dev v1 && ip -n {n} addr add 192.168.77.3/32 dev v1");
        Must($"ip -n {n} neigh add 192.168.77.2 lladdr 02:00:00:00:77:02 dev v1 nud permanent");

        var dir = Directory.CreateTempSubdirectory("lisp-reach-");
        var procs = new List<ApplianceProcess>();
        try
        {
            File.WriteAllText(Path.Combine(dir.FullName, "a.toml"), XtrA);
            File.WriteAllText(Path.Combine(dir.FullName, "e.toml"), RemoteEtr);
            var a = ApplianceProcess.StartIn(n, "xa", "run", "--config", Path.Combine(dir.FullName, "a.toml"));
            procs.Add(a);
            a.WaitForLine(@"data-plane-started.*echo-nonce on \(request every 1 s, timeout 1 s, retry 60 s\)", Wait);
            var e = ApplianceProcess.StartIn(n, "xe", "run", "--config", Path.Combine(dir.FullName, "e.toml"));
            procs.Add(e);
            a.WaitForLine(@"registration-accepted .*\[0\]10\.2\.0\.0/24", Wait);

            using (var ping = Process.Start(new ProcessStartInfo("ip", $"netns exec {n} ping -c 60 -i 0.2 -W 1 -I 10.1.0.1 10.2.0.1")
                { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false })!)
            {
                try
                {
                    a.WaitForLine(@"echo-nonce-down rloc 192\.168\.77\.2 marked unreachable", Wait);
                }
                finally
                {
                    if (!ping.HasExited) ping.Kill();
                }
            }

            var counters = Show(n, "counters");
            Assert.Matches(@"(?m)^  RLOC-probing: every 1 s, timeout 60 s \(node xa\): probes sent [1-9]\d*, replies accepted 0, unexpected 0, rloc-up 0, rloc-down 0; RLOCs 1 \(1 unknown\)$", counters);
            Assert.Matches(@"(?m)^  Echo-nonce: requests [1-9]\d*, echoes received 0, echoes sent 0, down [1-9]\d*, retries 0, abandoned \d+, table full 0; RLOCs 1 \(1 down\)$", counters);
            Assert.Matches(@"(?m)^  192\.168\.77\.2\s+unknown\s+rloc-probing\s+--\s+no reply yet, (next probe in \d+s|probe due), 1 entry$", counters);
            Assert.Matches(@"(?m)^  192\.168\.77\.2\s+down\s+echo-nonce\s+no echo yet\s+requests [1-9]\d*, echoes in 0, echoes out 0, down [1-9]\d*$", counters);
            Assert.Matches(@"(?m)^Reachability\s+rloc-probing every 1 s \(timeout 60 s\); echo-nonce every 1 s \(timeout 1 s\)$", Show(n, "status"));

            var metrics = Sh($"ip netns exec {n} curl -sS --max-time 10 http://{Management}/metrics");
            Assert.True(metrics.Code == 0, metrics.Err);
            Assert.Matches(@"(?m)^lisp_control_rloc_probe_total\{node=""xa"",event=""sent""\} [1-9]\d*$", metrics.Out);
            Assert.Matches(@"(?m)^lisp_control_rloc_probe_total\{node=""xa"",event=""replies-accepted""\} 0$", metrics.Out);
            Assert.Matches(@"(?m)^lisp_control_rloc_probe_rlocs\{node=""xa"",state=""unknown""\} 1$", metrics.Out);
            Assert.Matches(@"(?m)^lisp_control_rloc_probe_rloc_up\{node=""xa"",rloc=""192\.168\.77\.2""\} 1$", metrics.Out);
            Assert.DoesNotContain("lisp_control_rloc_probe_rtt_seconds{", metrics.Out, StringComparison.Ordinal); // never answered
            Assert.Matches(@"(?m)^lisp_dataplane_echo_nonce_total\{event=""requests""\} [1-9]\d*$", metrics.Out);
            Assert.Matches(@"(?m)^lisp_dataplane_echo_nonce_total\{event=""down""\} [1-9]\d*$", metrics.Out);
            Assert.Matches(@"(?m)^lisp_dataplane_echo_nonce_rlocs\{state=""down""\} 1$", metrics.Out);
            Assert.Matches(@"(?m)^lisp_dataplane_echo_nonce_rloc_up\{rloc=""192\.168\.77\.2""\} 0$", metrics.Out);
        }
        finally
        {
            foreach (var p in procs) p.Dispose();
            try
            {
                dir.Delete(true);
            }
            catch (IOException)
            {
            }
        }
    }

    private const string XtrA = """
        [node]
        name = "xa"
        roles = ["itr", "etr", "map-server", "map-resolver"]
        rlocs = ["192.168.77.1"]
        listen = ["192.168.77.1"]
        log_level = "info"
        [mapping]
        map_servers = ["192.168.77.1"]
        map_resolvers = ["192.168.77.1"]
        key = "k"
        [etr]
        register_interval = "2s"
        [itr]
        rloc_probe_interval = "1s"
        rloc_probe_timeout = "60s"
        [[site]]
        name = "s1"
        key = "k"
        eid_prefixes = ["[0]10.1.0.0/24"]
        [[site]]
        name = "s2"
        key = "k"
        eid_prefixes = ["[0]10.2.0.0/24"]
        [[database]]
        eid = "[0]10.1.0.0/24"
        [data_plane]
        tun = "lisp0"
        addresses = ["10.1.0.1/32"]
        routes = ["10.2.0.0/24"]
        miss_policy = "queue"
        stats_interval = "1s"
        echo_nonce = true
        echo_nonce_interval = "1s"
        echo_nonce_timeout = "1s"
        echo_nonce_retry = "60s"
        [management]
        listen = "127.0.0.1:18081"
        """;

    private const string RemoteEtr = """
        [node]
        name = "xe"
        roles = ["etr"]
        listen = ["192.168.77.3"]
        log_level = "info"
        [mapping]
        map_servers = ["192.168.77.1"]
        key = "k"
        [etr]
        register_interval = "2s"
        proxy_reply = true
        [[database]]
        eid = "[0]10.2.0.0/24"
        rlocs = ["192.168.77.2"]
        """;

    private static string Show(string netns, string what)
    {
        var (rc, stdout, stderr) = ApplianceProcess.RunIn(netns, TimeSpan.FromSeconds(60), "show", what, "--management", Management);
        Assert.True(rc == 0, $"show {what} exited {rc}: {stderr}");
        return stdout;
    }

    private static void Must(string cmd)
    {
        var r = Sh(cmd);
        if (r.Code != 0) throw new InvalidOperationException($"{cmd}: {r.Err}");
    }

    private static (int Code, string Out, string Err) Sh(string cmd)
    {
        var psi = new ProcessStartInfo("sh") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(cmd);
        using var p = Process.Start(psi)!;
        var o = p.StandardOutput.ReadToEndAsync();
        var e = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(30_000))
        {
            p.Kill(entireProcessTree: true);
            return (-1, o.Result, "timed out");
        }
        p.WaitForExit();
        return (p.ExitCode, o.Result, e.Result);
    }
}
