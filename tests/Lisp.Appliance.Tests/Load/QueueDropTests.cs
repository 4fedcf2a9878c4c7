using System.Globalization;
using System.Text.Json;
using Lisp.Appliance.Tests.Support;
using Lisp.TestSupport;

namespace Lisp.Appliance.Tests.Load;

/// <summary>
/// A node flooded past its control queue counts what it drops (queue-drops in /api/counters and /metrics, a
/// queue-full log line) instead of losing datagrams silently. The node has 5,000 registrations, so each
/// Map-Request costs it real work, and `lisp-decent load` sends unpaced for one second on loopback from three
/// sockets (one thread no longer outruns the sharded node: 211k sent, 207k answered). The drops
/// counted are those of a control shard's inbox (what another shard handed it); what the kernel drops at a full
/// socket buffer before any shard reads it is the kernel's count (`lisp-decent load` reports it).
/// </summary>
public sealed class QueueDropTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    [Fact]
    public void A_flood_past_the_control_queue_is_counted_and_logged()
    {
        using var topology = new Topology("127.0.63");
        string node = topology.Address(1);
        string management = $"{node}:{ManagementNode.FreeTcpPort(node)}";
        // Two shards: the flood arrives on one socket, and what the other shard owns waits in its bounded inbox.
        var process = topology.StartNode("flood", NodeToml.MapServer("flood-63", node, [new("flood", "flood-key", "[0]10.63.0.0/16")],
            controlThreads: 2, management: management));
        process.WaitForLine("management-started", Wait);
        var target = topology.Endpoint(1);

        var reg = Load("register", "--target", target, "--bind", topology.Address(2), "--eid-base", "[0]10.63.0.0/32",
            "--eids", "5000", "--key", "flood-key", "--window", "64", "--timeout", "2s", "--duration", "60s");
        Assert.Equal(5000, reg.GetProperty("accepted").GetInt64());
        Assert.Equal(0, QueueDrops(management));

        var flood = Load("request", "--target", target, "--bind", topology.Address(3), "--eid-base", "[0]10.63.0.0/32",
            "--eids", "5000", "--duration", "1s", "--timeout", "500ms", "--batch", "64", "--threads", "3");
        long sent = flood.GetProperty("sent").GetInt64();
        long replies = flood.GetProperty("replies").GetInt64();
        Assert.True(sent > replies + 10_000, $"the flood did not outrun the node: sent {sent}, replies {replies}");

        long drops = QueueDrops(management);
        Assert.True(drops > 0, $"sent {sent}, answered {replies}, yet the node counted no queue drop");
        Assert.True(drops <= sent - replies, $"more drops ({drops}) than unanswered requests ({sent - replies})");
        process.WaitForLine(@"queue-full control shard \d+ inbox full \(\d+\); dropped \d+ items so far", Wait);
        var (status, _, metrics) = Http.Send(management, "GET", "/metrics");
        Assert.Equal(200, status);
        Assert.Matches(@"lisp_control_queue_drops_total\{[^}]*\} [1-9]\d*", metrics);
    }

    private static long QueueDrops(string management)
    {
        var (status, _, body) = Http.Send(management, "GET", "/api/counters");
        Assert.Equal(200, status);
        return JsonDocument.Parse(body).RootElement.GetProperty("queue-drops").GetInt64();
    }

    private static JsonElement Load(params string[] args)
    {
        var (rc, stdout, stderr) = ApplianceProcess.Run(TimeSpan.FromSeconds(120), ["load", .. args, "--json"]);
        Assert.True(rc == 0, $"load exited {rc}\nstdout:\n{stdout}\nstderr:\n{stderr}");
        return JsonDocument.Parse(stdout).RootElement.GetProperty("steps")[0];
    }
}
