using System.Diagnostics;
using Lisp.Appliance.Config;
using Lisp.Appliance.Hosting;
using Lisp.Appliance.Tests.Support;
using Lisp.ControlPlane;

namespace Lisp.Appliance.Tests;

/// <summary>
/// RLOC-probing between processes: MS/MR on 127.0.40.1, an ETR on .2, an ITR on .3 probing every second.
/// The ETR answers the ITR's probes (rloc-up); killed, it goes silent and the ITR logs rloc-down.
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
            """, "--request", "[0]10.40.1.9/32");
        itr.WaitForLine(@"map-cache-install \[0\]10\.40\.1\.0/24 -> 127\.0\.40\.2 ", Wait);
        itr.WaitForLine(@"rloc-up RLOC 127\.0\.40\.2 reachable, RTT \d", TimeSpan.FromSeconds(5));
        Assert.False(itr.Any("rloc-down"), itr.Output);

        var clock = Stopwatch.StartNew();
        etr.Kill();
        // Probes every ~1 s; down 1.5 s after the first unanswered one.
        var down = itr.WaitForLine(@"rloc-down RLOC 127\.0\.40\.2 unreachable: no RLOC-probe reply for [\d.]+ s", TimeSpan.FromSeconds(8));
        Assert.InRange(clock.Elapsed.TotalSeconds, 1.0, 8);
        Assert.Contains("1 map-cache entry updated", down);
    }
}
