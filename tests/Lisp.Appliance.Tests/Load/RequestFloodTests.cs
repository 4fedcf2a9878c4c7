using System.Text.Json;
using Lisp.Appliance.Tests.Support;
using Lisp.Appliance.Config;
using Lisp.TestSupport;

namespace Lisp.Appliance.Tests.Load;

/// <summary>
/// Issue 12, finding 4: a real node with a small per-source request budget ([node] request_rate_per_source = 20,
/// request_burst_per_source = 40) flooded by `lisp-decent load request` from one address answers the burst and
/// counts the rest as drops.rate-limited in /api/counters.
/// </summary>
public sealed class RequestFloodTests
{
    [Fact]
    public void AdmissionKeysParseWithDefaultsAndRanges()
    {
        const string baseToml = """
            [node]
            name = "n"
            roles = ["map-resolver"]
            listen = ["127.0.0.1"]
            """;
        var d = ConfigLoader.Parse(baseToml);
        Assert.Equal((1000, 2000, 3), (d.RequestRatePerSource, d.RequestBurstPerSource, d.ReplyAmplificationLimit));
        var c = ConfigLoader.Parse(baseToml + "\nrequest_rate_per_source = 0\nrequest_burst_per_source = 9\nreply_amplification_limit = 0\n");
        Assert.Equal((0, 9, 0), (c.RequestRatePerSource, c.RequestBurstPerSource, c.ReplyAmplificationLimit));
        var o = Lisp.Appliance.Hosting.NodeHost.BuildOptions(c, []).Admission!;
        Assert.Equal((0, 9, 0), (o.RatePerSource, o.BurstPerSource, o.AmplificationFactor));
        Assert.ThrowsAny<Exception>(() => ConfigLoader.Parse(baseToml + "\nrequest_burst_per_source = 0\n"));
        Assert.ThrowsAny<Exception>(() => ConfigLoader.Parse(baseToml + "\nrequest_rate_per_source = -1\n"));
    }

    [Fact]
    public void AFloodFromOneSourceIsRateLimitedAndCounted()
    {
        using var topology = new Topology("127.0.67");
        string management = $"{topology.Address(1)}:{ManagementNode.FreeTcpPort(topology.Address(1))}";
        string toml = NodeToml.MapServer("flood-67", topology.Address(1), [new("flood-site", "flood-67-key", "[0]10.67.0.0/16")], management: management)
            .Replace("control_port = {PORT}", "control_port = {PORT}\nrequest_rate_per_source = 20\nrequest_burst_per_source = 40");
        Assert.Contains("request_rate_per_source = 20", toml);
        var process = topology.StartNode("flood-node", toml);
        process.WaitForLine("management-started", LoadNode.Wait);

        var req = LoadNodeTests.Load("request", "--target", topology.Endpoint(1), "--bind", topology.Address(3), "--eid-base", "[0]10.99.0.0/32",
            "--eids", "100", "--count", "400", "--window", "64", "--timeout", "200ms");
        long answered = req.GetProperty("negative").GetInt64() + req.GetProperty("positive").GetInt64();
        Assert.InRange(answered, 40, 200);
        Assert.True(req.GetProperty("lost").GetInt64() >= 200, req.ToString());

        var (status, _, body) = Http.Send(management, "GET", "/api/counters");
        Assert.Equal(200, status);
        var drops = JsonDocument.Parse(body).RootElement.GetProperty("control").EnumerateArray().Single().GetProperty("drops");
        Assert.True(drops.TryGetProperty("rate-limited", out var limited) && limited.GetInt64() >= 200, body);
    }
}
