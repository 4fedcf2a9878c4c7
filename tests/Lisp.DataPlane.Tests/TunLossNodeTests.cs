using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using Xunit;
using Xunit.Abstractions;
using static Lisp.DataPlane.Tests.NetnsLab;

namespace Lisp.DataPlane.Tests;

/// <summary>
/// Issue 12 finding 9 at process level: a real `lisp-decent run` xTR (its own map-server and map-resolver) with a data
/// plane on TUN ltl0 in a network namespace the test creates. The TUN is deleted under the running node: the node logs
/// `tun-lost` once, its ITR worker thread does not spin (its CPU time from /proc), it keeps running and its management
/// API reports the loss; the device is created again and the node logs `tun-reopened`, counts the reattach, and reads
/// packets from the new device (the node gives it back its addresses and routes); SIGTERM stops it cleanly.
/// Both TUN I/O paths: read()/poll() ("syscalls") and io_uring.
/// </summary>
[Collection("netns")]
public sealed class TunLossNodeTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);
    private const string Tun = "ltl0";
    private const string Management = "127.0.0.1:18081";

    [SkippableTheory]
    [InlineData("syscalls")]
    [InlineData("io_uring")]
    public void Deleting_the_tun_under_a_running_node_is_logged_once_not_spun_on_and_reattached_when_it_returns(string io)
    {
        using var lab = NetnsLab.Open("ldp-tunloss-", "ip", "ping");
        string ns = lab.AddNamespaces("ltl", "x")[0];
        // The RLOC: one end of a veth pair inside the namespace (nothing leaves it).
        Veth(ns, "v1", ns, "v2");
        Up(ns, "v1", "192.168.54.1/24");
        Up(ns, "v2");
        string config = lab.PathOf("tunloss.toml");
        WriteConfig(config, io);

        // This node keeps the test's PATH (the others run without one; see NetnsLab.StartNode).
        var node = lab.StartNode(ns, config, emptyPath: false);
        node.WaitFor("node-started", Wait);
        try
        {
            node.WaitFor("data-plane-started", Wait);
        }
        catch (TimeoutException) when (io == "io_uring" && Regex.IsMatch(node.Output, "io_uring"))
        {
            Skip.If(true, $"io_uring refused here: {node.Output.Split('\n').LastOrDefault(l => l.Contains("io_uring"))}");
        }
        Skip.If(io == "io_uring" && Regex.IsMatch(node.Output, "falling back to syscalls"), "io_uring unusable here (the node fell back to syscalls)");
        int pid = node.NodePid(config);
        var itrThreads = Threads(pid, "lisp-itr-");
        Assert.True(itrThreads.Count > 0, $"no lisp-itr-* thread in /proc/{pid}/task: {string.Join(", ", Threads(pid, ""))}");
        var before = Counters(ns);
        Assert.Equal(0, TunField(before, "losses"));

        // The device goes away under the running node.
        Must($"ip -n {ns} link del {Tun}");
        node.WaitFor(@"\btun-lost\b", TimeSpan.FromSeconds(10));
        Thread.Sleep(500);

        // (2) No spin: the ITR worker thread(s) together use well under a core over 2 s while the device is gone.
        double cpu0 = itrThreads.Sum(t => ThreadCpuSeconds(pid, t));
        var sw = Stopwatch.StartNew();
        Thread.Sleep(2000);
        double cpu = itrThreads.Sum(t => ThreadCpuSeconds(pid, t)) - cpu0;
        double wall = sw.Elapsed.TotalSeconds;
        output.WriteLine($"ITR thread(s) {string.Join(",", itrThreads)} used {cpu:0.000} s CPU over {wall:0.00} s with the TUN gone ({io})");
        Assert.True(cpu < 0.2, $"the ITR worker used {cpu:0.000} s CPU in {wall:0.00} s with its TUN gone (a busy loop)");
        Thread.Sleep(500);

        // (1) Logged exactly once over those ~3 s, as a warning naming the device; no flood.
        Assert.Equal(1, node.Count(@"\btun-lost\b"));
        Assert.Matches($@"tun-lost.*TUN {Tun}:", node.Output);

        // (3) Still running, the management API answers and counts the loss; the stats line says so.
        Assert.False(node.HasExited, $"the node exited after the TUN was deleted:\n{node.Output}");
        var lost = Counters(ns);
        Assert.Equal(1, TunField(lost, "losses"));
        Assert.Equal(0, TunField(lost, "reopens"));
        long failures = TunField(lost, "reopen-failures");
        output.WriteLine($"while lost: {failures} failed reattach attempts in ~3 s");
        // Back-off 10 ms doubling to 1 s: about 10 attempts in 3 s; a retry loop without back-off would make thousands.
        Assert.InRange(failures, 1, 30);
        node.WaitFor($@"data-plane-stats {Tun}: .*tun lost 1, reattached 0 \(lost now\)", TimeSpan.FromSeconds(10));

        // (4) The device exists again (persistent, as an operator would recreate it): the node attaches to it.
        Must($"ip -n {ns} tuntap add dev {Tun} mode tun");
        node.WaitFor(@"\btun-reopened\b", TimeSpan.FromSeconds(10));
        node.WaitFor($@"data-plane-stats {Tun}: .*tun lost 1, reattached 1;", TimeSpan.FromSeconds(10));
        var reopened = Counters(ns);
        Assert.Equal(1, TunField(reopened, "losses"));
        Assert.Equal(1, TunField(reopened, "reopens"));
        Assert.Equal(1, node.Count(@"\btun-lost\b"));
        Assert.Equal(1, node.Count(@"\btun-reopened\b"));

        // (5) The node configures the new device again (it has none of the old one's addresses and routes: link up,
        // 10.1.0.1/32, route 10.2.0.0/24, through rtnetlink), and packets sent into it reach the ITR worker again
        // (10.2.0.0/24 is not registered, so the ITR posts misses and drops: what matters is that it reads them).
        node.WaitForCount($@"tun-configured {Tun}: route 10\.2\.0\.0/24", 2, TimeSpan.FromSeconds(10));
        Assert.Contains("inet 10.1.0.1/32", Sh($"ip -n {ns} addr show dev {Tun}").Out);
        Assert.Contains($"10.2.0.0/24 dev {Tun}", Sh($"ip -n {ns} route show").Out);
        long read0 = ItrPackets(reopened);
        var ping = Sh($"ip netns exec {ns} ping -c 5 -i 0.2 -W 1 -I 10.1.0.1 10.2.0.1");
        output.WriteLine(ping.Out);
        long read1 = read0;
        for (int i = 0; i < 20 && read1 <= read0; i++)
        {
            Thread.Sleep(100);
            read1 = ItrPackets(Counters(ns));
        }
        output.WriteLine($"ITR misses+drops before the ping {read0}, after {read1}");
        Assert.True(read1 > read0, $"no packet from the reattached TUN reached the ITR ({read0} -> {read1}):\n{node.Output}");

        // (6) SIGTERM: a clean stop.
        int code = node.Stop(TimeSpan.FromSeconds(10));
        output.WriteLine(string.Join("\n", node.Output.Split('\n').Where(l => Regex.IsMatch(l, @"\bio: |io_uring|\btun-(lost|reopened)\b")).Concat(node.Output.Split('\n').TakeLast(4))));
        Assert.True(code == 0, $"exit code {code}:\n{node.Output}");
        Assert.Matches(@"\bnode-stopped\b", node.Output);
        Assert.Matches($@"data-plane-stopped {Tun}: .*tun lost 1, reattached 1;", node.Output);
    }

    private static void WriteConfig(string path, string io) =>
        File.WriteAllText(path, $"""
            [node]
            name = "tunloss"
            roles = ["itr", "etr", "map-server", "map-resolver"]
            rlocs = ["192.168.54.1"]
            log_level = "info"
            [mapping]
            map_servers = ["192.168.54.1"]
            map_resolvers = ["192.168.54.1"]
            key = "k"
            [etr]
            register_interval = "2s"
            [[database]]
            eid = "[0]10.1.0.0/24"
            [[site]]
            name = "s1"
            key = "k"
            eid_prefixes = ["[0]10.1.0.0/24"]
            [data_plane]
            tun = "{Tun}"
            addresses = ["10.1.0.1/32"]
            routes = ["10.2.0.0/24"]
            miss_policy = "drop"
            stats_interval = "1s"
            io = "{io}"
            [management]
            listen = "{Management}"
            """);

    /// <summary>`show counters --json` run inside the namespace (the management API listens on its loopback).</summary>
    private static JsonElement Counters(string ns)
    {
        var r = Cli(ns, "show", "counters", "--json", "--management", Management);
        Assert.True(r.Code == 0, $"show counters --json failed ({r.Code}): {r.Out}{r.Err}");
        using var doc = JsonDocument.Parse(r.Out);
        return doc.RootElement.Clone();
    }

    /// <summary>A field of the one TUN queue's entry in the counters' "tuns" list.</summary>
    private static long TunField(JsonElement counters, string field)
    {
        var tuns = Find(counters, "tuns") ?? throw new Xunit.Sdk.XunitException($"no \"tuns\" in the counters: {counters}");
        var queue = Assert.Single(tuns.EnumerateArray());
        Assert.Equal(Tun, queue.GetProperty("name").GetString());
        return queue.GetProperty(field).GetInt64();
    }

    /// <summary>What the ITR worker(s) did with packets read from the TUN here: misses posted or refused, plus drops.</summary>
    private static long ItrPackets(JsonElement counters)
    {
        var workers = Find(counters, "workers") ?? throw new Xunit.Sdk.XunitException($"no \"workers\" in the counters: {counters}");
        long sum = 0;
        foreach (var w in workers.EnumerateArray().Where(w => w.GetProperty("worker").GetString()!.StartsWith("itr-", StringComparison.Ordinal)))
        {
            sum += w.GetProperty("misses-posted").GetInt64() + w.GetProperty("misses-refused").GetInt64() + w.GetProperty("encap-packets").GetInt64();
            foreach (var d in w.GetProperty("drops").EnumerateObject()) sum += d.Value.GetInt64();
        }
        return sum;
    }

    private static JsonElement? Find(JsonElement e, string name)
    {
        if (e.ValueKind == JsonValueKind.Object)
        {
            foreach (var p in e.EnumerateObject())
            {
                if (p.NameEquals(name)) return p.Value;
                if (Find(p.Value, name) is { } inner) return inner;
            }
        }
        else if (e.ValueKind == JsonValueKind.Array)
        {
            foreach (var x in e.EnumerateArray())
                if (Find(x, name) is { } inner) return inner;
        }
        return null;
    }

    /// <summary>Thread ids of <paramref name="pid"/> whose name (comm) starts with <paramref name="prefix"/>.</summary>
    private static List<int> Threads(int pid, string prefix)
    {
        var list = new List<int>();
        foreach (var task in Directory.GetDirectories($"/proc/{pid}/task"))
        {
            try
            {
                if (File.ReadAllText(Path.Combine(task, "comm")).Trim().StartsWith(prefix, StringComparison.Ordinal)) list.Add(int.Parse(Path.GetFileName(task)));
            }
            catch (IOException)
            {
            }
        }
        return list;
    }

    /// <summary>utime + stime of one thread from /proc (clock ticks of 1/100 s, USER_HZ on Linux).</summary>
    private static double ThreadCpuSeconds(int pid, int tid)
    {
        string stat = File.ReadAllText($"/proc/{pid}/task/{tid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        // After "pid (comm) ": state is field 3, utime 14 and stime 15 (1-based) -> indices 11 and 12 here.
        return (long.Parse(fields[11]) + long.Parse(fields[12])) / 100.0;
    }
}
