using System.Globalization;
using System.Text.Json;
using Lisp.Appliance.Tests.Support;
using Lisp.TestSupport;

namespace Lisp.Appliance.Tests.Load;

/// <summary>
/// A real `lisp-decent run` map-server + map-resolver on 127.0.61.1 (one site, key load-61-key, 10.61/16 and
/// 10.62/16 with more-specifics, management API on), shared by the tests of <see cref="LoadNodeTests"/>.
/// </summary>
public sealed class LoadNode : IDisposable
{
    public static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);

    public LoadNode()
    {
        Topology = new Topology("127.0.61");
        Management = $"{Topology.Address(1)}:{ManagementNode.FreeTcpPort(Topology.Address(1))}";
        Process = Topology.StartNode("load-node", NodeToml.MapServer("load-61", Topology.Address(1),
            [new("load-site", "load-61-key", "[0]10.61.0.0/16", "[0]10.62.0.0/16")], management: Management));
        Process.WaitForLine("management-started", Wait);
    }

    public Topology Topology { get; }
    public ApplianceProcess Process { get; }
    public string Management { get; }
    public string Target => Topology.Endpoint(1);

    /// <summary>The node's control counters (events and drops by name) from /api/counters.</summary>
    public (Dictionary<string, long> Events, Dictionary<string, long> Drops, int Registrations) Counters()
    {
        var (status, _, body) = Http.Send(Management, "GET", "/api/counters");
        Assert.Equal(200, status);
        var n = JsonDocument.Parse(body).RootElement.GetProperty("control").EnumerateArray().Single();
        return (n.GetProperty("events").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetInt64()),
            n.GetProperty("drops").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetInt64()),
            n.GetProperty("registrations").GetInt32());
    }

    public void Dispose() => Topology.Dispose();
}

/// <summary>`lisp-decent load` (the real binary, as a child process) against a real node on loopback.</summary>
public sealed class LoadNodeTests(LoadNode node) : IClassFixture<LoadNode>
{
    private static readonly TimeSpan RunLimit = TimeSpan.FromSeconds(90);

    /// <summary>Runs `lisp-decent load ARGS --json` and returns the first step of the parsed report.</summary>
    internal static JsonElement Load(params string[] args)
    {
        var (rc, stdout, stderr) = ApplianceProcess.Run(RunLimit, ["load", .. args, "--json"]);
        Assert.True(rc == 0, $"load exited {rc}\nstdout:\n{stdout}\nstderr:\n{stderr}");
        var report = JsonDocument.Parse(stdout).RootElement;
        return report.GetProperty("steps")[0];
    }

    private static long L(JsonElement e, string name) => e.GetProperty(name).GetInt64();

    private void WaitForCounter(string which, string name, long atLeast)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        long v = 0;
        while (sw.Elapsed < LoadNode.Wait)
        {
            var c = node.Counters();
            v = (which == "events" ? c.Events : c.Drops).GetValueOrDefault(name);
            if (v >= atLeast) return;
            Thread.Sleep(200);
        }
        Assert.Fail($"node counter {which}.{name} = {v}, expected at least {atLeast}");
    }

    [Fact]
    public void Sha256Register200AllAcceptedThenRequestsArePositiveAndOutsideNegative()
    {
        long staleBefore = node.Counters().Drops.GetValueOrDefault("stale-nonce");
        int port = Loopback.FreeUdpPort(node.Topology.Address(2));
        string bind = $"{node.Topology.Address(2)}:{port}";
        var reg = Load("register", "--target", node.Target, "--bind", bind, "--eid-base", "[0]10.61.0.0/32", "--eids", "200",
            "--key", "load-61-key", "--algorithm", "hmac-sha256", "--window", "16", "--timeout", "5s");
        Assert.Equal(200, L(reg, "sent"));
        Assert.Equal(200, L(reg, "accepted"));
        Assert.Equal(0, L(reg, "lost"));
        Assert.Equal(0, L(reg, "auth-bad"));
        Assert.Equal(0, L(reg, "acks-sent"));   // a solicited Map-Notify awaits no Ack (RFC 9301 5.7)
        Assert.True(reg.GetProperty("p50-us").GetDouble() > 0);
        Assert.Equal(staleBefore, node.Counters().Drops.GetValueOrDefault("stale-nonce"));

        // Refresh from the same port: the node counts the same registrations, not new ones.
        int registrations = node.Counters().Registrations;
        var refresh = Load("refresh", "--target", node.Target, "--bind", bind, "--eid-base", "[0]10.61.0.0/32", "--eids", "200",
            "--key", "load-61-key", "--rate", "400", "--duration", "1s", "--timeout", "5s");
        Assert.True(L(refresh, "accepted") >= 200, refresh.ToString());
        Assert.Equal(0, L(refresh, "auth-bad"));
        Assert.Equal(registrations, node.Counters().Registrations);

        var req = Load("request", "--target", node.Target, "--bind", node.Topology.Address(3), "--eid-base", "[0]10.61.0.0/32", "--eids", "200",
            "--rloc", node.Topology.Address(2), "--count", "600", "--window", "16", "--timeout", "5s");
        Assert.Equal(600, L(req, "sent"));
        Assert.Equal(600, L(req, "positive"));
        Assert.Equal(0, L(req, "negative") + L(req, "wrong-eid") + L(req, "rloc-mismatch") + L(req, "lost") + L(req, "malformed"));
        Assert.Equal(600, L(req, "latency-samples"));

        var outside = Load("request", "--target", node.Target, "--bind", node.Topology.Address(3), "--eid-base", "[0]10.61.100.0/32", "--eids", "50",
            "--count", "100", "--window", "8", "--timeout", "5s");
        Assert.Equal(100, L(outside, "negative"));
        Assert.Equal(0, L(outside, "positive") + L(outside, "wrong-eid") + L(outside, "lost"));
    }

    [Fact]
    public void Sha1Register200AllAcceptedAndOldStyleAcksAreCountedAsStale()
    {
        long staleBefore = node.Counters().Drops.GetValueOrDefault("stale-nonce");
        int port = Loopback.FreeUdpPort(node.Topology.Address(4));
        var reg = Load("register", "--target", node.Target, "--bind", $"{node.Topology.Address(4)}:{port}", "--eid-base", "[0]10.62.0.0/32",
            "--eids", "200", "--records", "4", "--key", "load-61-key", "--algorithm", "hmac-sha1", "--window", "8", "--timeout", "5s", "--ack");
        Assert.Equal(50, L(reg, "sent"));
        Assert.Equal(50, L(reg, "accepted"));
        Assert.Equal(0, L(reg, "lost") + L(reg, "auth-bad") + L(reg, "record-mismatch"));
        // An ETR that still acks (--ack): the node awaits no Ack for a solicited Map-Notify and counts each as stale.
        WaitForCounter("drops", "stale-nonce", staleBefore + 50);
        var req = Load("request", "--target", node.Target, "--bind", node.Topology.Address(3), "--eid-base", "[0]10.62.0.0/32", "--eids", "200",
            "--rloc", node.Topology.Address(4), "--count", "200", "--window", "8", "--timeout", "5s");
        Assert.Equal(200, L(req, "positive"));
    }

    [Fact]
    public void WrongKeyIsNeverAcceptedAndTheNodeCountsTheRefusals()
    {
        long before = node.Counters().Drops.GetValueOrDefault("auth-failure");
        var reg = Load("register", "--target", node.Target, "--bind", node.Topology.Address(5), "--eid-base", "[0]10.61.200.0/32", "--eids", "40",
            "--key", "not-the-key", "--window", "8", "--timeout", "300ms");
        Assert.Equal(40, L(reg, "sent"));
        Assert.Equal(0, L(reg, "accepted"));
        Assert.Equal(40, L(reg, "lost"));
        Assert.Equal(40, L(reg, "timed-out"));
        WaitForCounter("drops", "auth-failure", before + 40);
        node.Process.WaitForLine(@"registration-rejected auth-failure: Map-Register from 127\.0\.61\.5:", LoadNode.Wait);
    }
}
