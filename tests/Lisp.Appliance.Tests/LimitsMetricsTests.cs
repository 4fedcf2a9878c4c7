using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using Lisp.Appliance.Management;
using Lisp.Appliance.Tests.Support;
using Lisp.Wire;

namespace Lisp.Appliance.Tests;

/// <summary>
/// README "Limits and protections": every limit's counter and its setting are in /metrics. One node on 127.0.77.1
/// with two sites sharing [map_server] max_registrations = 2 (a share of 1 each), log_rate = 2; its ETR registers
/// two EIDs of site "demo", so one is refused (site-registration-limit); a burst of Map-Registers signed with a
/// stranger's key is rejected and its log lines past the rate are suppressed.
/// </summary>
public sealed class LimitsMetricsTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);

    private static string Config(string address, string management) => $$"""
        [node]
        name = "limits"
        roles = ["itr", "etr", "map-server", "map-resolver"]
        rlocs = ["{{address}}"]
        listen = ["{{address}}"]
        control_port = {PORT}
        log_level = "info"
        log_rate = 2

        [mapping]
        map_servers = ["{{address}}"]
        map_resolvers = ["{{address}}"]
        key = "demo-key"
        algorithm = "hmac-sha256"

        [etr]
        register_interval = "60s"

        [itr]
        rloc_probe_budget = 7
        rloc_probe_max_locators = 3

        [map_server]
        max_registrations = 2
        max_registrants_per_eid = 5

        [[site]]
        name = "demo"
        key = "demo-key"
        eid_prefixes = ["[0]10.1.0.0/16"]
        accept_more_specifics = true

        [[site]]
        name = "other"
        key = "other-key"
        eid_prefixes = ["[0]10.9.0.0/16"]

        [[database]]
        eid = "[0]10.1.1.0/24"
        rlocs = [{ address = "{{address}}", priority = 1, weight = 100 }]

        [[database]]
        eid = "[0]10.1.2.0/24"
        rlocs = [{ address = "{{address}}", priority = 1, weight = 100 }]

        [management]
        listen = "{{management}}"
        """;

    private static double Value(string metrics, string series)
    {
        var m = Regex.Match(metrics, "(?m)^" + Regex.Escape(series) + @" (\S+)$");
        Assert.True(m.Success, $"no sample {series} in /metrics:\n{metrics}");
        return double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
    }

    [Fact]
    public void EveryLimitAndItsRefusalsAreInMetrics()
    {
        using var t = new Topology("127.0.77");
        string address = t.Address(1);
        string management = $"{address}:{ManagementNode.FreeTcpPort(address)}";
        var node = t.StartNode("limits", Config(address, management));
        node.WaitForLine(@"management-started ", Wait);
        node.WaitForLine(@"registration-refused site 'demo' .*site-registration-limit", Wait);

        // 12 Map-Registers with a key nobody configured, at once: rejected (auth-failure), 2 lines logged, the rest suppressed.
        using (var udp = new UdpClient(new IPEndPoint(IPAddress.Parse(t.Address(2)), 0)))
        {
            for (int i = 0; i < 12; i++)
            {
                var bytes = new MapRegister
                {
                    Nonce = (ulong)(1000 + i), Algorithm = AuthAlgorithm.HmacSha256_128, WantMapNotify = true,
                    Records = [new MappingRecord(EidPrefix.Parse("[0]10.9.0.0/16"), [new LocatorRecord(new IpAddress(IPAddress.Parse(t.Address(2))))])],
                }.ToSignedBytes("a stranger's key"u8.ToArray());
                udp.Send(bytes, t.IpEndpoint(1));
            }
        }
        node.WaitForLine(@"log-suppressed \d+ more registration-rejected lines? suppressed", Wait);

        var (status, _, metrics) = Http.Send(management, "GET", "/metrics");
        Assert.Equal(200, status);
        const string n = "node=\"limits\"";
        Assert.Equal(2, Value(metrics, $"lisp_map_server_max_registrations{{{n}}}"));
        Assert.Equal(5, Value(metrics, $"lisp_map_server_max_registrants_per_eid{{{n}}}"));
        Assert.Equal(1, Value(metrics, $"lisp_map_server_registrations{{{n}}}"));
        Assert.Equal(1, Value(metrics, $"lisp_map_server_site_registrations{{{n},site=\"demo\"}}"));
        Assert.Equal(1, Value(metrics, $"lisp_map_server_site_max_registrations{{{n},site=\"demo\"}}"));
        Assert.Equal(0, Value(metrics, $"lisp_map_server_site_registrations{{{n},site=\"other\"}}"));
        Assert.Equal(1, Value(metrics, $"lisp_map_server_site_max_registrations{{{n},site=\"other\"}}"));
        Assert.True(Value(metrics, $"lisp_control_drops_total{{{n},reason=\"site-registration-limit\"}}") >= 1, metrics);
        Assert.True(Value(metrics, $"lisp_control_drops_total{{{n},reason=\"auth-failure\"}}") >= 12, metrics);
        Assert.Equal(0, Value(metrics, $"lisp_control_drops_total{{{n},reason=\"registration-table-full\"}}"));
        Assert.Equal(100_000, Value(metrics, $"lisp_map_cache_max_entries{{{n}}}"));
        Assert.Equal(1000, Value(metrics, $"lisp_control_max_pending_requests{{{n}}}"));
        Assert.True(Value(metrics, $"lisp_control_pending_requests{{{n}}}") >= 0);
        Assert.Equal(7, Value(metrics, $"lisp_control_rloc_probe_budget{{{n}}}"));
        Assert.Equal(3, Value(metrics, $"lisp_control_rloc_probe_max_locators{{{n}}}"));
        Assert.True(Value(metrics, $"lisp_control_rloc_probe_total{{{n},event=\"deferred\"}}") >= 0);
        Assert.True(Value(metrics, $"lisp_control_rloc_probe_total{{{n},event=\"locators-not-probed\"}}") >= 0);
        Assert.Equal(2, Value(metrics, $"lisp_log_rate{{{n}}}"));
        // 12 rejections in a burst with 2 tokens: at least 8 over the rate, however the clock ticked.
        Assert.True(Value(metrics, $"lisp_log_lines_suppressed_total{{{n}}}") >= 8, metrics);
        Assert.Equal(0, Value(metrics, $"lisp_log_lines_dropped_total{{{n}}}"));
        Assert.True(Value(metrics, $"lisp_control_queue_drops_total{{{n}}}") >= 0);

        // The same numbers in /api/counters.
        var (_, _, json) = Http.Send(management, "GET", "/api/counters");
        using var doc = System.Text.Json.JsonDocument.Parse(json);
        var c = doc.RootElement;
        var control = c.GetProperty("control")[0];
        Assert.Equal(2, control.GetProperty("max-registrations").GetInt32());
        Assert.Equal("demo", control.GetProperty("sites")[0].GetProperty("site").GetString());
        Assert.True(c.GetProperty("log").GetProperty("suppressed").GetInt64() >= 8, json);
        Assert.Equal(7, c.GetProperty("rloc-probing").GetProperty("budget-per-second").GetInt32());
    }

    /// <summary>The data-plane families (a data plane needs a TUN and root, so from a view here).</summary>
    [Fact]
    public void DataPlaneLimitFamiliesAreFormatted()
    {
        var counters = new CountersView
        {
            DataPlane = new DataPlaneCountersView
            {
                HoldPackets = 64,
                Workers = [new WorkerCountersView { Worker = "itr-0", HeldPackets = 3 }, new WorkerCountersView { Worker = "etr-0" }],
                MissQueue = new QueueView { Depth = 2, Capacity = 1024, Posted = 40, RefusedFull = 1, RefusedRate = 9 },
                Tuns = [new TunView { Name = "lisp0", Queue = 0, Losses = 1, Reopens = 1, ReopenFailures = 4 }],
            },
            Log = new LogCountersView { LinesPerKindPerSecond = 20, Suppressed = 5, Dropped = 0 },
        };
        var text = PrometheusText.Format(new StatusView { Name = "x" }, counters);
        Assert.Equal(3, Value(text, "lisp_dataplane_held_packets{worker=\"itr-0\"}"));
        Assert.DoesNotContain("lisp_dataplane_held_packets{worker=\"etr-0\"}", text, StringComparison.Ordinal);
        Assert.Equal(64, Value(text, "lisp_dataplane_hold_packets"));
        Assert.Equal(2, Value(text, "lisp_dataplane_miss_queue_depth"));
        Assert.Equal(1024, Value(text, "lisp_dataplane_miss_queue_capacity"));
        Assert.Equal(40, Value(text, "lisp_dataplane_miss_queue_total{event=\"posted\"}"));
        Assert.Equal(1, Value(text, "lisp_dataplane_miss_queue_total{event=\"refused-full\"}"));
        Assert.Equal(9, Value(text, "lisp_dataplane_miss_queue_total{event=\"refused-rate\"}"));
        Assert.Equal(1, Value(text, "lisp_dataplane_tun_total{tun=\"lisp0\",queue=\"0\",event=\"lost\"}"));
        Assert.Equal(1, Value(text, "lisp_dataplane_tun_total{tun=\"lisp0\",queue=\"0\",event=\"reopened\"}"));
        Assert.Equal(4, Value(text, "lisp_dataplane_tun_total{tun=\"lisp0\",queue=\"0\",event=\"reopen-failed\"}"));
        Assert.Equal(5, Value(text, "lisp_log_lines_suppressed_total{node=\"x\"}"));
    }
}
