using Lisp.Appliance.Cli;
using Lisp.Appliance.Management;

namespace Lisp.Appliance.Tests;

/// <summary>
/// The reachability part of /api/counters, /metrics and `show counters` from a given view: both mechanisms side by
/// side, the per-RLOC series cap, and the JSON round trip `show` relies on (source-generated, kebab-case).
/// </summary>
public sealed class ReachabilityViewTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 7, 12, 0, 0, TimeSpan.Zero);

    private static CountersView View(int probed = 2, int echoed = 2) => new()
    {
        Control = [new NodeCountersView { Node = "x1" }],
        RlocProbing = new RlocProbingView
        {
            Node = "x1", Enabled = true, IntervalSeconds = 10, TimeoutSeconds = 15, Sent = 42, RepliesAccepted = 40, RepliesUnexpected = 1, RlocUp = 2, RlocDown = 1,
            States = new() { ["unknown"] = 0, ["up"] = probed - 1, ["down"] = 1 },
            Rlocs = Enumerable.Range(0, probed).Select(i => new RlocProbeView
            {
                Rloc = $"192.0.2.{i + 1}", State = i == probed - 1 ? "down" : "up", RttMs = i == probed - 1 ? null : 0.25 + i,
                LastReply = Now.AddSeconds(-3), NextProbe = Now.AddSeconds(7), Entries = 1 + i,
            }).ToList(),
        },
        DataPlane = new DataPlaneCountersView
        {
            EchoNonce = new EchoNonceView
            {
                Requests = 9, EchoesReceived = 7, EchoesSent = 5, Down = 1, Retries = 0, Abandoned = 0,
                Rlocs = Enumerable.Range(0, echoed).Select(i => new EchoNonceRlocView
                {
                    Rloc = $"198.51.100.{i + 1}", State = i == 0 ? "down" : "up", SecondsSinceEcho = i == 0 ? null : 1.5, Requests = 3, EchoesReceived = i, EchoesSent = 2, Down = i == 0 ? 1 : 0,
                }).ToList(),
            },
        },
    };

    [Fact]
    public void ShowCountersListsBothMechanismsAndOneLinePerRloc()
    {
        var text = ShowCommand.FormatCounters(View(), Now);
        Assert.Contains("\nReachability:\n", text, StringComparison.Ordinal);
        Assert.Contains("  RLOC-probing: every 10 s, timeout 15 s (node x1): probes sent 42, replies accepted 40, unexpected 1, rloc-up 2, rloc-down 1; RLOCs 2 (1 up, 1 down)\n", text, StringComparison.Ordinal);
        Assert.Contains("  Echo-nonce: requests 9, echoes received 7, echoes sent 5, down 1, retries 0, abandoned 0, table full 0; RLOCs 2 (1 down, 1 up)\n", text, StringComparison.Ordinal);
        Assert.Matches(@"(?m)^  RLOC\s+State\s+Mechanism\s+RTT / last echo\s+Detail$", text);
        Assert.Matches(@"(?m)^  192\.0\.2\.1\s+up\s+rloc-probing\s+rtt 0\.25 ms\s+last reply 3s ago, next probe in 7s, 1 entry$", text);
        Assert.Matches(@"(?m)^  192\.0\.2\.2\s+down\s+rloc-probing\s+--\s+last reply 3s ago, next probe in 7s, 2 entries$", text);
        Assert.Matches(@"(?m)^  198\.51\.100\.1\s+down\s+echo-nonce\s+no echo yet\s+requests 3, echoes in 0, echoes out 2, down 1$", text);
        Assert.Matches(@"(?m)^  198\.51\.100\.2\s+up\s+echo-nonce\s+echo 1\.5 s ago\s+requests 3, echoes in 1, echoes out 2, down 0$", text);
    }

    [Fact]
    public void ShowSaysWhichMechanismIsOffAndWhy()
    {
        var none = ShowCommand.FormatReachability(null, null, Now);
        Assert.Equal("Reachability:\n  RLOC-probing: no itr role\n  Echo-nonce: off (no data plane)\n", none);
        var off = ShowCommand.FormatReachability(new RlocProbingView { Node = "n", Enabled = false }, new DataPlaneCountersView(), Now);
        Assert.Equal("Reachability:\n  RLOC-probing: off ([itr] rloc_probe_interval = 0; node n)\n  Echo-nonce: off ([data_plane] echo_nonce = false)\n", off);
    }

    [Fact]
    public void MetricsHaveBothMechanismsWithTheSameNaming()
    {
        var m = PrometheusText.Format(new StatusView { Name = "x1" }, View());
        foreach (var (ev, v) in new[] { ("sent", 42), ("replies-accepted", 40), ("replies-unexpected", 1), ("rloc-up", 2), ("rloc-down", 1) })
            Assert.Contains($"lisp_control_rloc_probe_total{{node=\"x1\",event=\"{ev}\"}} {v}\n", m, StringComparison.Ordinal);
        Assert.Contains("# TYPE lisp_control_rloc_probe_total counter\n", m, StringComparison.Ordinal);
        Assert.Contains("lisp_control_rloc_probe_rlocs{node=\"x1\",state=\"down\"} 1\n", m, StringComparison.Ordinal);
        Assert.Contains("lisp_control_rloc_probe_rloc_up{node=\"x1\",rloc=\"192.0.2.1\"} 1\n", m, StringComparison.Ordinal);
        Assert.Contains("lisp_control_rloc_probe_rloc_up{node=\"x1\",rloc=\"192.0.2.2\"} 0\n", m, StringComparison.Ordinal);
        Assert.Contains("lisp_control_rloc_probe_rtt_seconds{node=\"x1\",rloc=\"192.0.2.1\"} 0.00025\n", m, StringComparison.Ordinal);
        Assert.DoesNotContain("rtt_seconds{node=\"x1\",rloc=\"192.0.2.2\"}", m, StringComparison.Ordinal); // never answered: no sample
        Assert.Contains("lisp_dataplane_echo_nonce_total{event=\"requests\"} 9\n", m, StringComparison.Ordinal);
        Assert.Contains("lisp_dataplane_echo_nonce_rlocs{state=\"down\"} 1\n", m, StringComparison.Ordinal);
        Assert.Contains("lisp_dataplane_echo_nonce_rlocs{state=\"up\"} 1\n", m, StringComparison.Ordinal);
        Assert.Contains("lisp_dataplane_echo_nonce_rloc_up{rloc=\"198.51.100.1\"} 0\n", m, StringComparison.Ordinal);
    }

    [Fact]
    public void PerRlocSeriesAreCappedDownOnesFirstAndTheStateCountsStayExact()
    {
        int n = PrometheusText.MaxRlocSeries + 100;
        var m = PrometheusText.Format(new StatusView { Name = "x1" }, View(probed: n, echoed: n));
        var lines = m.Split('\n');
        Assert.Equal(PrometheusText.MaxRlocSeries, lines.Count(l => l.StartsWith("lisp_control_rloc_probe_rloc_up{", StringComparison.Ordinal)));
        Assert.Equal(PrometheusText.MaxRlocSeries, lines.Count(l => l.StartsWith("lisp_dataplane_echo_nonce_rloc_up{", StringComparison.Ordinal)));
        // The one down RLOC of each is last in address order but kept.
        Assert.Contains($"lisp_control_rloc_probe_rloc_up{{node=\"x1\",rloc=\"192.0.2.{n}\"}} 0\n", m, StringComparison.Ordinal);
        Assert.Contains("lisp_dataplane_echo_nonce_rloc_up{rloc=\"198.51.100.1\"} 0\n", m, StringComparison.Ordinal);
        Assert.Contains($"lisp_control_rloc_probe_rlocs{{node=\"x1\",state=\"up\"}} {n - 1}\n", m, StringComparison.Ordinal);
        Assert.Contains($"lisp_dataplane_echo_nonce_rlocs{{state=\"up\"}} {n - 1}\n", m, StringComparison.Ordinal);
    }
}
