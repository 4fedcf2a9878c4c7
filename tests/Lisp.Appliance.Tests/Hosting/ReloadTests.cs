using System.Diagnostics;
using System.Text.Json;
using Lisp.Appliance.Tests.Support;
using Lisp.TestSupport;

namespace Lisp.Appliance.Tests.Hosting;

/// <summary>
/// Issue 14: SIGHUP reloads the config of a running node. Node 1 (ETR + ITR + map-server + map-resolver for itself,
/// management API) and node 2 (an ETR of another site registering with node 1) run as real processes; node 1's file is
/// rewritten and it gets SIGHUP. Proves: a bad file keeps the node and its config; unchanged sites keep their
/// registrations (same first-registered time); an unchanged mapping is not withdrawn while a removed one is; the
/// ITR's map-cache survives; the control socket stays bound (lig answers on the same port, same PID); a site added
/// and a site removed take effect; the log level changes; a setting that needs a restart is kept and said so.
/// Node 1 runs 2 control shards, so the change reaches every shard's slice of the table.
/// </summary>
public sealed class ReloadTests : IDisposable
{
    private const string Network = "127.0.91";
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);
    private readonly Topology _net = new(Network);
    private readonly string _management;

    public ReloadTests()
    {
        _management = $"{_net.Address(1)}:{ManagementNode.FreeTcpPort(_net.Address(1))}";
    }

    public void Dispose() => _net.Dispose();

    private string Node1(bool withOtherSite, bool withAddedSite, bool withSecondMapping, string logLevel, int? controlPort = null)
    {
        string a = _net.Address(1);
        var text = $$"""
            [node]
            name = "reload-1"
            roles = ["itr", "etr", "map-server", "map-resolver"]
            rlocs = ["{{a}}"]
            listen = ["{{a}}"]
            control_port = {{(controlPort is { } p ? p.ToString(System.Globalization.CultureInfo.InvariantCulture) : "{PORT}")}}
            log_level = "{{logLevel}}"
            control_threads = 2

            [mapping]
            map_servers = ["{{a}}"]
            map_resolvers = ["{{a}}"]
            key = "key-one"

            [etr]
            register_interval = "60s"

            [[site]]
            name = "one"
            key = "key-one"
            eid_prefixes = ["[0]10.1.0.0/16"]
            accept_more_specifics = true

            """;
        // Each array of tables kept together (the config reader keeps only the last run of a [[site]] array split by another).
        if (withOtherSite) text += "\n[[site]]\nname = \"other\"\nkey = \"key-two\"\neid_prefixes = [\"[0]10.9.0.0/16\"]\naccept_more_specifics = true\n";
        if (withAddedSite) text += "\n[[site]]\nname = \"added\"\nkey = \"key-three\"\neid_prefixes = [\"[0]10.7.0.0/16\"]\n";
        text += "\n[[database]]\neid = \"[0]10.1.1.0/24\"\n";
        if (withSecondMapping) text += "\n[[database]]\neid = \"[0]10.1.2.0/24\"\n";
        text += $"\n[management]\nlisten = \"{_management}\"\n";
        return text;
    }

    private JsonElement Api(string path)
    {
        var (status, _, body) = Http.Send(_management, "GET", path);
        Assert.True(status == 200, $"GET {path}: {status} {body}");
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    /// <summary>Site-table rows of node 1 as (site, eid) -> row.</summary>
    private Dictionary<(string Site, string Eid), JsonElement> SiteRows()
    {
        var ms = Assert.Single(Api("/api/site-table").GetProperty("map-servers").EnumerateArray());
        return ms.GetProperty("rows").EnumerateArray().ToDictionary(r => (r.GetProperty("site").GetString()!, r.GetProperty("eid").GetString()!));
    }

    private static bool Registered(Dictionary<(string, string), JsonElement> rows, string site, string eid) =>
        rows.TryGetValue((site, eid), out var r) && r.GetProperty("registered").GetBoolean();

    private static void Hup(ApplianceProcess p)
    {
        using var kill = Process.Start("kill", ["-HUP", p.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!;
        Assert.True(kill.WaitForExit(5000) && kill.ExitCode == 0, "kill -HUP failed");
    }

    private static T Until<T>(Func<T> read, Func<T, bool> ok, TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            var v = read();
            if (ok(v) || sw.Elapsed > timeout) return v;
            Thread.Sleep(200);
        }
    }

    [Fact]
    public void Sighup_applies_the_new_config_without_losing_registrations_map_cache_or_sockets()
    {
        var node1 = _net.StartNode("node1", Node1(withOtherSite: true, withAddedSite: false, withSecondMapping: true, logLevel: "info"), "--request", "[0]10.1.1.1/32");
        node1.WaitForLine(@"management-started ", Wait);
        var node2 = _net.StartNode("node2", NodeToml.Etr("reload-2", _net.Address(2), _net.Address(1), "key-two", [new NodeToml.Mapping("[0]10.9.1.0/24")], registerInterval: "60s"));
        node1.WaitForLine(@"map-cache-install \[0\]10\.1\.1\.0/24 -> ", Wait);
        var before = Until(SiteRows, r => Registered(r, "one", "[0]10.1.1.0/24") && Registered(r, "one", "[0]10.1.2.0/24") && Registered(r, "other", "[0]10.9.1.0/24"), Wait);
        Assert.True(Registered(before, "one", "[0]10.1.1.0/24") && Registered(before, "one", "[0]10.1.2.0/24") && Registered(before, "other", "[0]10.9.1.0/24"),
            "registrations before the reload: " + string.Join(", ", before.Keys));
        var firstRegistered = before[("one", "[0]10.1.1.0/24")].GetProperty("first-registered").GetDateTimeOffset();
        Assert.True(_net.Lig("[0]10.1.1.1", 1).IsPositive);
        Assert.DoesNotContain(node1.Lines, l => l.Contains(" debug ", StringComparison.Ordinal));
        int pid = node1.Id;

        // Site "other" removed, site "added" added, mapping [0]10.1.2.0/24 removed, log level debug.
        _net.WriteConfig("node1", Node1(withOtherSite: false, withAddedSite: true, withSecondMapping: false, logLevel: "debug"));
        Hup(node1);
        var reloaded = node1.WaitForLine(@" config-reloaded ", Wait);
        Assert.Contains("sites", reloaded, StringComparison.Ordinal);
        Assert.Contains("database", reloaded, StringComparison.Ordinal);
        Assert.Contains("node.log_level", reloaded, StringComparison.Ordinal);
        node1.WaitForLine(@"site-removed site other: removed; 1 registration\(s\) dropped", Wait);
        node1.WaitForLine(@"site-added site added: ", Wait);
        node1.WaitForLine(@"map-register-withdraw Map-Register TTL 0 to .*\[0\]10\.1\.2\.0/24", Wait);

        // (The management API's site table is a snapshot at most a few seconds old: polled until it shows the reload.)
        var after = Until(SiteRows, r => !Registered(r, "one", "[0]10.1.2.0/24") && r.ContainsKey(("added", "[0]10.7.0.0/16")), Wait);
        // (b) the unchanged site keeps its registration: the same one, not a new one.
        Assert.True(Registered(after, "one", "[0]10.1.1.0/24"), "unchanged mapping lost its registration");
        Assert.Equal(firstRegistered, after[("one", "[0]10.1.1.0/24")].GetProperty("first-registered").GetDateTimeOffset());
        // (c) the unchanged mapping was never withdrawn; the removed one was (TTL 0) and left the table.
        Assert.DoesNotContain(node1.Lines, l => l.Contains("map-register-withdraw", StringComparison.Ordinal) && l.Contains("10.1.1.0/24", StringComparison.Ordinal));
        Assert.DoesNotContain(node1.Lines, l => l.Contains("registration-withdrawn", StringComparison.Ordinal) && l.Contains("10.1.1.0/24", StringComparison.Ordinal));
        Assert.False(Registered(after, "one", "[0]10.1.2.0/24"));
        // (f) the removed site's registration is gone, the added site is there.
        Assert.DoesNotContain(after.Keys, k => k.Site == "other");
        Assert.Contains(("added", "[0]10.7.0.0/16"), after.Keys);
        // (d) the ITR's map-cache survived.
        var mc = Api("/api/map-cache");
        Assert.Contains(mc.GetProperty("entries").EnumerateArray(), e => e.GetProperty("eid").GetString() == "[0]10.1.1.0/24");
        // (e) same process, same control socket.
        Assert.False(node1.HasExited);
        Assert.Equal(pid, node1.Id);
        Assert.True(_net.Lig("[0]10.1.1.1", 1).IsPositive);
        // (g) debug lines now (the lig above is answered with a debug line per Map-Request at least).
        Until(() => node1.Lines.Count(l => l.Contains(" debug ", StringComparison.Ordinal)), n => n > 0, Wait);
        Assert.Contains(node1.Lines, l => l.Contains(" debug ", StringComparison.Ordinal));
        // The other site's ETR now registers in vain: its site is gone.
        Assert.False(node2.HasExited);
    }

    [Fact]
    public void A_bad_config_is_refused_and_the_node_keeps_running_the_old_one()
    {
        var node1 = _net.StartNode("node1", Node1(withOtherSite: false, withAddedSite: false, withSecondMapping: false, logLevel: "info"));
        node1.WaitForLine(@"management-started ", Wait);
        var rows = Until(SiteRows, r => Registered(r, "one", "[0]10.1.1.0/24"), Wait);
        Assert.True(Registered(rows, "one", "[0]10.1.1.0/24"));
        int pid = node1.Id;

        var path = Path.Combine(_net.Dir, "node1.toml");
        File.WriteAllText(path, "[node\nname = ");
        Hup(node1);
        var failed = node1.WaitForLine(@" config-reload-failed ", Wait);
        Assert.Contains("bad config", failed, StringComparison.Ordinal);
        Assert.Contains("still running the previous config", failed, StringComparison.Ordinal);
        Assert.Equal(1, node1.Count(@" config-reload-failed "));

        // A valid file with a key nobody registers with would drop nothing yet; an invalid one changed nothing at all.
        Thread.Sleep(500);
        Assert.False(node1.HasExited, "the node exited on SIGHUP:\n" + node1.Output);
        Assert.Equal(pid, node1.Id);
        Assert.True(Registered(SiteRows(), "one", "[0]10.1.1.0/24"));
        Assert.True(_net.Lig("[0]10.1.1.1", 1).IsPositive);
        Assert.DoesNotContain(node1.Lines, l => l.Contains("map-register-withdraw", StringComparison.Ordinal));
        var (status, _, metrics) = Http.Send(_management, "GET", "/metrics");
        Assert.Equal(200, status);
        Assert.Contains(metrics.Split('\n'), l => l.StartsWith("lisp_control_events_total{", StringComparison.Ordinal)
            && l.Contains("event=\"config-reload-failed\"", StringComparison.Ordinal) && l.EndsWith(" 1", StringComparison.Ordinal));

        // A setting that needs a restart (control_port) is kept, and said so; the rest of the file applies.
        int otherPort = Loopback.FreeUdpPort(_net.Address(1));
        File.WriteAllText(path, Node1(withOtherSite: false, withAddedSite: true, withSecondMapping: false, logLevel: "info", controlPort: otherPort));
        Hup(node1);
        node1.WaitForLine(@"node\.control_port changed: needs restart; kept the old value", Wait);
        node1.WaitForLine(@" config-reloaded .*needs restart \(kept\): node\.control_port", Wait);
        // (The management API's site table is a snapshot at most a few seconds old: polled.)
        Assert.Contains(("added", "[0]10.7.0.0/16"), Until(SiteRows, r => r.ContainsKey(("added", "[0]10.7.0.0/16")), Wait).Keys);
        Assert.True(_net.Lig("[0]10.1.1.1", 1).IsPositive);   // still on the old port
        Assert.True(Registered(SiteRows(), "one", "[0]10.1.1.0/24"));

        // SIGTERM still stops it cleanly.
        node1.Stop(TimeSpan.FromSeconds(10));
        Assert.Equal(0, node1.ExitCode);
        Assert.Contains(node1.Lines, l => l.Contains(" node-stopped ", StringComparison.Ordinal));
    }
}

/// <summary>The reload plan (ConfigReload.Compare): what applies in place, what is kept until a restart.</summary>
public class ConfigReloadPlanTests
{
    private static Lisp.Appliance.Config.NodeConfig Parse(string listen, string level, string site, int controlThreads) =>
        Lisp.Appliance.Config.ConfigLoader.Parse($$"""
            [node]
            name = "plan"
            roles = ["map-server", "etr"]
            listen = ["{{listen}}"]
            control_threads = {{controlThreads}}
            log_level = "{{level}}"

            [mapping]
            map_servers = ["127.0.0.1"]
            key = "k"

            [[site]]
            name = "{{site}}"
            key = "k"
            eid_prefixes = ["[0]10.1.0.0/16"]

            [[database]]
            eid = "[0]10.1.1.0/24"
            rlocs = ["192.0.2.1"]
            """, "plan.toml");

    [Fact]
    public void Restart_only_settings_keep_their_running_value_the_rest_applies()
    {
        var old = Parse("127.0.0.1", "info", "one", 2);
        var plan = Lisp.Appliance.Hosting.ConfigReload.Compare(old, Parse("127.0.0.2", "debug", "two", 4));
        Assert.Equal(["node.listen", "node.control_threads"], plan.NeedRestart);
        Assert.Equal(["node.log_level", "sites"], plan.Changed);
        Assert.Equal(old.Listen, plan.Applied.Listen);
        Assert.Equal(2, plan.Applied.ControlThreads);
        Assert.Equal("debug", plan.Applied.LogLevel);
        Assert.Equal("two", Assert.Single(plan.Applied.Sites).Name);

        var same = Lisp.Appliance.Hosting.ConfigReload.Compare(old, Parse("127.0.0.1", "info", "one", 2));
        Assert.Empty(same.NeedRestart);
        Assert.Empty(same.Changed);
    }

    private static Lisp.Appliance.Config.NodeConfig WithDataPlane(string offload) =>
        Lisp.Appliance.Config.ConfigLoader.Parse($$"""
            [node]
            name = "plan"
            roles = ["itr", "etr"]
            rlocs = ["192.0.2.1"]
            [mapping]
            map_servers = ["127.0.0.1"]
            map_resolvers = ["127.0.0.1"]
            key = "k"
            [[database]]
            eid = "[0]10.1.1.0/24"
            [data_plane]
            addresses = ["10.1.1.1/32"]
            routes = ["10.2.0.0/16"]
            accept_from = "known"
            accept_prefixes = ["192.0.2.0/24"]
            offload = "{{offload}}"
            """, "plan.toml");

    [Fact]
    public void An_unchanged_data_plane_section_needs_no_restart_and_a_changed_offload_setting_does()
    {
        var old = WithDataPlane("auto");
        Assert.Empty(Lisp.Appliance.Hosting.ConfigReload.Compare(old, WithDataPlane("auto")).NeedRestart);
        var plan = Lisp.Appliance.Hosting.ConfigReload.Compare(old, WithDataPlane("off"));
        Assert.Equal(["data_plane"], plan.NeedRestart);
        Assert.Equal("auto", plan.Applied.DataPlane!.Offload);
    }
}

