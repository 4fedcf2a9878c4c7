using System.Diagnostics;
using Lisp.Appliance.Config;
using Lisp.Appliance.Hosting;
using Lisp.Appliance.Tests.Support;
using Lisp.ControlPlane;
using Lisp.TestSupport;

namespace Lisp.Appliance.Tests;

/// <summary>
/// RLOC-probing between processes: MS/MR on 127.0.40.1, an ETR on .2, an ITR on .3 probing every second.
/// The ETR answers the ITR's probes (rloc-up); killed, it goes silent and the ITR logs rloc-down. The ITR's
/// management API shows the probe counters and the RLOC's state both times (API, /metrics, `show counters`).
/// </summary>
public sealed class ProbeTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(15);

    [Fact]
    public void ConfigSetsTheProbeIntervalAndTimeout()
    {
        const string Base = """
            [node]
            roles = ["itr"]
            rlocs = ["127.0.40.9"]
            [mapping]
            map_resolvers = ["127.0.40.1"]
            """;
        ItrOptions Itr(string extra) => NodeHost.BuildOptions(ConfigLoader.Parse(Base + "\n[itr]\n" + extra), []).Itr!;

        Assert.Equal(TimeSpan.FromSeconds(10), Itr("").ProbeInterval);
        Assert.Equal(TimeSpan.FromSeconds(15), Itr("").EffectiveProbeTimeout);
        var fast = Itr("rloc_probe_interval = \"1s\"");
        Assert.Equal(TimeSpan.FromSeconds(1), fast.ProbeInterval);
        Assert.Equal(TimeSpan.FromSeconds(1.5), fast.EffectiveProbeTimeout);
        Assert.Equal(TimeSpan.FromSeconds(4), Itr("rloc_probe_interval = \"1s\"\nrloc_probe_timeout = \"4s\"").EffectiveProbeTimeout);
        Assert.Equal(TimeSpan.Zero, Itr("rloc_probe_interval = 0").ProbeInterval);
        var bad = Assert.Throws<ConfigException>(() => Itr("rloc_probe_timeout = \"0s\""));
        Assert.Contains("itr.rloc_probe_timeout", bad.Message);
        Assert.Throws<ConfigException>(() => Itr("rloc_probe_interval = \"often\""));
    }

    [Fact]
    public void ItrMarksTheEtrRlocDownWhenTheEtrIsKilled()
    {
        using var t = new Topology("127.0.40");
        var ms = t.StartNode("ms", NodeToml.MapServer("ms-40", "127.0.40.1", [new("site-40", "key-40", "[0]10.40.0.0/16")]));
        var etr = t.StartNode("etr", NodeToml.Etr("etr-40", "127.0.40.2", "127.0.40.1", "key-40", [new("[0]10.40.1.0/24")]));
        ms.WaitForLine(@"registration-accepted site 'site-40' \[0\]10\.40\.1\.0/24 registered by 127\.0\.40\.2:", Wait);
        string mgmt = $"127.0.40.3:{ManagementNode.FreeTcpPort("127.0.40.3")}";
        var itr = t.StartNode("itr", """
            [node]
            name = "itr-40"
            roles = ["itr"]
            listen = ["127.0.40.3"]
            rlocs = ["127.0.40.3"]
            control_port = {PORT}

            [mapping]
            map_resolvers = ["127.0.40.1"]

            [itr]
            rloc_probe_interval = "1s"

            [management]
            listen = "MGMT"
            """.Replace("MGMT", mgmt, StringComparison.Ordinal), "--request", "[0]10.40.1.9/32");
        itr.WaitForLine(@"map-cache-install \[0\]10\.40\.1\.0/24 -> 127\.0\.40\.2 ", Wait);
        itr.WaitForLine(@"rloc-up RLOC 127\.0\.40\.2 reachable, RTT \d", TimeSpan.FromSeconds(5));
        Assert.False(itr.Any("rloc-down"), itr.Output);

        // Up: probes sent and answered, the RLOC up with its RTT, in the API, the metrics and `show counters`.
        var up = Probing(mgmt);
        Assert.Equal("itr-40", up.GetProperty("node").GetString());
        Assert.True(up.GetProperty("enabled").GetBoolean());
        Assert.Equal(1.0, up.GetProperty("interval-seconds").GetDouble());
        Assert.Equal(1.5, up.GetProperty("timeout-seconds").GetDouble());
        Assert.True(up.GetProperty("sent").GetInt64() >= 1);
        Assert.True(up.GetProperty("replies-accepted").GetInt64() >= 1);
        Assert.Equal(1, up.GetProperty("rloc-up").GetInt64());
        Assert.Equal(0, up.GetProperty("rloc-down").GetInt64());
        Assert.Equal(1, up.GetProperty("states").GetProperty("up").GetInt32());
        var rloc = Assert.Single(up.GetProperty("rlocs").EnumerateArray());
        Assert.Equal("127.0.40.2", rloc.GetProperty("rloc").GetString());
        Assert.Equal("up", rloc.GetProperty("state").GetString());
        Assert.InRange(rloc.GetProperty("rtt-ms").GetDouble(), 0.0, 1000);
        Assert.Equal(1, rloc.GetProperty("entries").GetInt32());
        Assert.NotEqual(System.Text.Json.JsonValueKind.Null, rloc.GetProperty("last-reply").ValueKind);

        var metrics = Http.Send(mgmt, "GET", "/metrics").Body;
        Assert.Matches(@"(?m)^lisp_control_rloc_probe_total\{node=""itr-40"",event=""sent""\} [1-9]\d*$", metrics);
        Assert.Matches(@"(?m)^lisp_control_rloc_probe_total\{node=""itr-40"",event=""replies-accepted""\} [1-9]\d*$", metrics);
        Assert.Matches(@"(?m)^lisp_control_rloc_probe_total\{node=""itr-40"",event=""rloc-up""\} 1$", metrics);
        Assert.Matches(@"(?m)^lisp_control_rloc_probe_rlocs\{node=""itr-40"",state=""up""\} 1$", metrics);
        Assert.Matches(@"(?m)^lisp_control_rloc_probe_rloc_up\{node=""itr-40"",rloc=""127\.0\.40\.2""\} 1$", metrics);
        Assert.Matches(@"(?m)^lisp_control_rloc_probe_rtt_seconds\{node=""itr-40"",rloc=""127\.0\.40\.2""\} 0\.\d+$", metrics);
        Assert.DoesNotContain("lisp_dataplane_echo_nonce", metrics, StringComparison.Ordinal); // no data plane here

        var shown = Show(mgmt, "counters");
        Assert.Matches(@"(?m)^  RLOC-probing: every 1 s, timeout 1\.5 s \(node itr-40\): probes sent [1-9]\d*, replies accepted [1-9]\d*, unexpected 0, rloc-up 1, rloc-down 0; RLOCs 1 \(1 up\)$", shown);
        Assert.Matches(@"(?m)^  Echo-nonce: off \(no data plane\)$", shown);
        Assert.Matches(@"(?m)^  127\.0\.40\.2\s+up\s+rloc-probing\s+rtt [\d.]+ ms\s+last reply (\d+s ago|just now), (next probe in \d+s|probe due), 1 entry$", shown);
        Assert.Matches(@"(?m)^Reachability\s+rloc-probing every 1 s \(timeout 1\.5 s\); echo-nonce off$", Show(mgmt, "status"));

        var clock = Stopwatch.StartNew();
        etr.Kill();
        // Probes every ~1 s; down 1.5 s after the first unanswered one.
        var down = itr.WaitForLine(@"rloc-down RLOC 127\.0\.40\.2 unreachable: no RLOC-probe reply for [\d.]+ s", TimeSpan.FromSeconds(8));
        Assert.InRange(clock.Elapsed.TotalSeconds, 1.0, 8);
        Assert.Contains("1 map-cache entry updated", down);

        // Down: one down transition counted, the RLOC listed down, its up gauge 0.
        var after = Probing(mgmt);
        Assert.Equal(1, after.GetProperty("rloc-down").GetInt64());
        Assert.True(after.GetProperty("sent").GetInt64() > up.GetProperty("sent").GetInt64());
        Assert.Equal("down", Assert.Single(after.GetProperty("rlocs").EnumerateArray()).GetProperty("state").GetString());
        Assert.Matches(@"(?m)^lisp_control_rloc_probe_rloc_up\{node=""itr-40"",rloc=""127\.0\.40\.2""\} 0$", Http.Send(mgmt, "GET", "/metrics").Body);
        var shownDown = Show(mgmt, "counters");
        Assert.Matches(@"rloc-up 1, rloc-down 1; RLOCs 1 \(1 down\)", shownDown);
        Assert.Matches(@"(?m)^  127\.0\.40\.2\s+down\s+rloc-probing\s", shownDown);
    }

    private static System.Text.Json.JsonElement Probing(string mgmt)
    {
        var (status, _, body) = Http.Send(mgmt, "GET", "/api/counters");
        Assert.True(status == 200, body);
        return System.Text.Json.JsonDocument.Parse(body).RootElement.GetProperty("rloc-probing").Clone();
    }

    private static string Show(string mgmt, string what)
    {
        var (rc, stdout, stderr) = ApplianceProcess.Run(TimeSpan.FromSeconds(60), "show", what, "--management", mgmt);
        Assert.True(rc == 0, $"show {what} exited {rc}: {stderr}");
        return stdout;
    }
}
