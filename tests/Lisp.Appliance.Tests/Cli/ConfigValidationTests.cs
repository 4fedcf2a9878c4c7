using Lisp.Appliance.Config;
using Lisp.TestSupport;

namespace Lisp.Appliance.Tests.Cli;

/// <summary>
/// Configs that used to pass `run --check` and then break the node, or end in "internal error" (exit 70): each is
/// refused by `run --check` (the same path `run` takes) with exit 1 and a message naming the key and the reason.
/// In-process through <see cref="Program.Dispatch"/> (an exception escaping it is what Main reports as exit 70),
/// plus one run of the real binary.
/// </summary>
public sealed class ConfigValidationTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("lisp-cfg-validate-").FullName;

    public void Dispose()
    {
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    /// <summary>A valid node; <see cref="With"/> puts a line at the top of one of its sections.</summary>
    private const string Base = """
        [node]
        name = "validate"
        roles = ["itr", "etr", "map-server", "map-resolver"]
        rlocs = ["127.0.0.1"]
        listen = ["127.0.0.1"]

        [mapping]
        map_servers = ["127.0.0.1"]
        map_resolvers = ["127.0.0.1"]
        key = "k"

        [etr]

        [itr]

        [map_server]

        [management]

        [[site]]
        name = "s"
        key = "k"
        eid_prefixes = ["[0]10.1.0.0/16"]

        [[database]]
        eid = "[0]10.1.1.0/24"
        rlocs = [{ address = "127.0.0.1", priority = 1, weight = 100 }]

        """;

    private static readonly Dictionary<string, string> ExtraSections = new(StringComparer.Ordinal)
    {
        ["data_plane"] = "[data_plane]\ntun = \"lisp9\"\nconfigure_tun = false\n",
        ["decent.pull"] = "[decent.pull]\ndns_suffix = \"ms.example\"\nmodulus = 4\ndns_servers = [\"127.0.0.1\"]\n",
        ["decent.push"] = "[decent.push]\ngroup = \"224.0.0.250\"\nmembers = [\"127.0.0.1\"]\n",
    };

    /// <summary>Base with <paramref name="line"/> right under [<paramref name="section"/>] ("" = the top of the file).</summary>
    private static string With(string section, string line)
    {
        if (section.Length == 0) return line + "\n" + Base;
        if (ExtraSections.TryGetValue(section, out var extra))
        {
            // A line for a key the section already has replaces it.
            string key = line.Split(' ')[0];
            var rest = extra.Split('\n').Skip(1).Where(l => l.Split(' ')[0] != key);
            return Base + extra[..(extra.IndexOf('\n', StringComparison.Ordinal) + 1)] + line + "\n" + string.Join('\n', rest);
        }
        string header = section is "site" or "database" ? $"[[{section}]]\n" : $"[{section}]\n";
        int at = Base.IndexOf(header, StringComparison.Ordinal);
        Assert.True(at >= 0, section);
        return Base[..(at + header.Length)] + line + "\n" + Base[(at + header.Length)..];
    }

    private (int Rc, string Out, string Err) Check(string toml)
    {
        var path = Path.Combine(_dir, $"c{Guid.NewGuid():N}.toml");
        File.WriteAllText(path, toml);
        return Dispatch("run", "--check", "--config", path);
    }

    private static (int Rc, string Out, string Err) Dispatch(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int rc = Program.Dispatch(args, o, e);   // throwing here is what the binary reports as "internal error", exit 70
        return (rc, o.ToString(), e.ToString());
    }

    [Fact]
    public void TheBaseConfigPasses()
    {
        var (rc, o, e) = Check(Base);
        Assert.True(rc == 0, e);
        Assert.Contains(": ok: node validate", o, StringComparison.Ordinal);
        foreach (var section in ExtraSections.Keys)
        {
            (rc, _, e) = Check(With(section, ""));
            Assert.True(rc == 0, section + ": " + e);
        }
    }

    public static TheoryData<string, string, string, string> BadConfigs => new()
    {
        // Durations where zero (or almost) breaks the node, including every duration key that has no "0 = off".
        { "etr", "register_interval = \"0s\"", "etr.register_interval", "busy loop" },
        { "etr", "register_interval = 0", "etr.register_interval", "outside 1 s .. 24 h" },
        { "etr", "register_interval = \"500ms\"", "etr.register_interval", "outside 1 s .. 24 h" },
        { "etr", "register_interval = \"25h\"", "etr.register_interval", "outside 1 s .. 24 h" },
        { "etr", "record_ttl = \"0s\"", "etr.record_ttl", "withdrawal" },
        { "etr", "record_ttl = \"1.5s\"", "etr.record_ttl", "whole number of seconds" },
        { "etr", "glean_ttl = \"0s\"", "etr.glean_ttl", "outside 1 s .. 1 h" },
        { "itr", "request_timeout = \"0s\"", "itr.request_timeout", "outside 100 ms .. 1 min" },
        { "itr", "rloc_probe_timeout = \"0s\"", "itr.rloc_probe_timeout", "outside 100 ms .. 24 h" },
        { "itr", "rloc_probe_interval = \"0.5s\"", "itr.rloc_probe_interval", "0 (no RLOC-probing) or 1 s .. 24 h" },
        { "map_server", "registration_timeout = \"0s\"", "map_server.registration_timeout", "drop every registration" },
        { "map_server", "map_reply_ttl = \"0s\"", "map_server.map_reply_ttl", "withdrawal" },
        { "data_plane", "hold_time = \"0s\"", "data_plane.hold_time", "outside 10 ms .. 1 min" },
        { "data_plane", "stats_interval = \"1ms\"", "data_plane.stats_interval", "0 (log the counters only at stop) or 1 s .. 24 h" },
        { "data_plane", "receive_buffer = 1000", "data_plane.receive_buffer", "1000 is out of range 65536..1073741824" },
        { "data_plane", "tun_qdisc = \"fq_codel\"", "data_plane.tun_qdisc", "'fq_codel' is not one of noqueue, keep" },
        { "data_plane", "echo_nonce_interval = \"0s\"", "data_plane.echo_nonce_interval", "outside 100 ms .. 1 h" },
        { "data_plane", "echo_nonce_timeout = \"0s\"", "data_plane.echo_nonce_timeout", "outside 100 ms .. 1 h" },
        { "data_plane", "echo_nonce_retry = \"0s\"", "data_plane.echo_nonce_retry", "outside 100 ms .. 1 h" },
        { "decent.pull", "min_dns_ttl = \"0s\"", "decent.pull.min_dns_ttl", "outside 1 s .. 10 min" },
        { "decent.pull", "min_dns_ttl = \"11m\"", "decent.pull.min_dns_ttl", "outside 1 s .. 10 min" },
        { "decent.pull", "dns_grace = \"2d\"", "decent.pull.dns_grace", "must be a duration" },
        { "decent.push", "register_interval = \"0s\"", "decent.push.register_interval", "busy loop" },
        { "decent.push", "membership_refresh = \"100ms\"", "decent.push.membership_refresh", "0 (never re-resolve the seed group) or 1 s .. 24 h" },
        // NaN, infinity, overflow: used to end in "internal error" (exit 70) without the key.
        { "etr", "register_interval = \"NaNs\"", "etr.register_interval", "must be a duration" },
        { "etr", "register_interval = \"Infinitys\"", "etr.register_interval", "must be a duration" },
        { "etr", "register_interval = \"-Infinityh\"", "etr.register_interval", "must be a duration" },
        { "etr", "register_interval = \"9223372036854775807s\"", "etr.register_interval", "outside 1 s .. 24 h" },
        { "etr", "register_interval = 9223372036854775807", "etr.register_interval", "outside 1 s .. 24 h" },
        { "etr", "register_interval = \"1e20ms\"", "etr.register_interval", "must be a duration" },
        { "etr", "register_interval = \"99999999999999999999999999999999999h\"", "etr.register_interval", "outside 1 s .. 24 h" },
        { "etr", "register_interval = \"-1s\"", "etr.register_interval", "must be a duration" },
        { "etr", "register_interval = -5", "etr.register_interval", "outside 1 s .. 24 h" },
        { "etr", "register_interval = nan", "etr.register_interval", "must be a duration" },
        { "etr", "register_interval = inf", "etr.register_interval", "must be a duration" },
        { "etr", "register_interval = 1.5", "etr.register_interval", "must be a duration" },
        // Duplicate keys and tables: the model keeps the last one silently; the syntax tree refuses them.
        { "node", "name = \"first\"", "node.name", "defined twice (first at line" },
        { "", "[etr]\nrecord_ttl = \"3m\"", "etr", "the table [etr] is defined twice" },
        { "mapping", "key = \"other\"", "mapping.key", "defined twice" },
        { "site", "name = \"again\"", "site[0].name", "defined twice" },
        { "database", "eid = \"[0]10.1.2.0/24\"", "database[0].eid", "defined twice" },
        { "etr", "want_map_notify = true\nwant_map_notify = false", "etr.want_map_notify", "defined twice" },
        // Management addresses the HTTP listener cannot bind.
        { "management", "listen = \"0.0.0.0:8080\"", "management.listen", "wildcard" },
        { "management", "listen = \"[::1]:8080\"", "management.listen", "IPv6" },
        { "management", "listen = \"[::]:8080\"", "management.listen", "IPv6" },
        { "management", "listen = \"127.0.0.1\"", "management.listen", "is not ADDRESS:PORT" },
        { "management", "listen = \"127.1:8080\"", "management.listen", "is not ADDRESS:PORT" },
        { "management", "listen = \"224.0.0.1:8080\"", "management.listen", "multicast" },
        // Control characters in string values (escaped ones are valid TOML, so Tomlyn lets them through).
        { "decent.pull", "dns_suffix = \"ms\\u0000.example\"", "decent.pull.dns_suffix", "control character U+0000" },
        { "site", "description = \"a\\tb\"", "site[0].description", "control character U+0009" },
        { "site", "description = \"x\\u007f\"", "site[0].description", "control character U+007F" },
        { "mapping", "algorithm = \"hmac-sha1\\u001b[2J\"", "mapping.algorithm", "control character U+001B" },
        { "node", "log_level = \"a\u0001b\"", "node.log_level", "control character U+0001" },
        // Tomlyn's own errors, with the key instead of its converter's type names.
        { "node", "control_port = 99999999999999999999", "node.control_port", "not a TOML integer" },
        { "node", "log_level = tru", "node.log_level", "tru" },
        { "node", "control_threads = \"4\"", "node.control_threads", "must be an integer, not the string \"4\"" },
        { "etr", "map_version = 1.5", "etr.map_version", "must be an integer, not the number 1.5" },
    };

    [Theory]
    [MemberData(nameof(BadConfigs))]
    public void BadValuesAreRefusedByCheckNamingTheKey(string section, string line, string key, string reason)
    {
        var (rc, o, e) = Check(With(section, line));
        Assert.True(rc == 1, $"exit {rc}\n{o}{e}");
        Assert.StartsWith("run: bad config: ", e, StringComparison.Ordinal);
        Assert.True(e.Contains($": {key}: ", StringComparison.Ordinal), e);
        Assert.True(e.Contains(reason, StringComparison.Ordinal), e);
        Assert.DoesNotContain("internal error", e, StringComparison.Ordinal);
        Assert.DoesNotContain("Tomlyn", e, StringComparison.Ordinal);
        Assert.Equal("", o);
    }

    [Theory]
    [InlineData("itr", "rloc_probe_interval = 0")]
    [InlineData("itr", "rloc_probe_interval = \"1s\"")]
    [InlineData("etr", "register_interval = \"1s\"")]
    [InlineData("etr", "register_interval = \"24h\"")]
    [InlineData("etr", "record_ttl = \"3s\"")]
    [InlineData("etr", "record_ttl = \"1.5m\"")]
    [InlineData("itr", "request_timeout = \"500ms\"")]
    [InlineData("map_server", "registration_timeout = \"5s\"")]
    [InlineData("data_plane", "stats_interval = \"0s\"")]
    [InlineData("data_plane", "hold_time = \"50ms\"")]
    [InlineData("data_plane", "receive_buffer = 65536")]
    [InlineData("data_plane", "tun_qdisc = \"keep\"")]
    [InlineData("decent.pull", "dns_grace = \"0s\"")]
    [InlineData("decent.pull", "min_dns_ttl = \"10m\"")]
    [InlineData("management", "listen = \"127.0.0.1:8080\"")]
    [InlineData("site", "description = \"ünïcode, quotes \\\" and backslashes \\\\ are fine\"")]
    public void ValuesAtTheLimitsAndZeroWhereItMeansOffPass(string section, string line)
    {
        var (rc, o, e) = Check(With(section, line));
        Assert.True(rc == 0, e);
        Assert.Contains(": ok: node ", o, StringComparison.Ordinal);
    }

    [Fact]
    public void ZeroMeansOffWhereDocumented()
    {
        Assert.Equal(TimeSpan.Zero, ConfigLoader.Parse(With("itr", "rloc_probe_interval = \"0s\"")).RlocProbeInterval);
        Assert.Equal(TimeSpan.Zero, ConfigLoader.Parse(With("data_plane", "stats_interval = 0")).DataPlane!.StatsInterval);
        Assert.Equal(TimeSpan.Zero, ConfigLoader.Parse(With("decent.pull", "dns_grace = 0")).DecentPull!.DnsGrace);
    }

    [Theory]
    [InlineData("NaNs")]
    [InlineData("Infinitys")]
    [InlineData("-Infinityms")]
    [InlineData("9223372036854775807s")]
    [InlineData("1e20ms")]
    [InlineData("-1s")]
    [InlineData("+1s")]
    [InlineData("1,5s")]
    [InlineData("s")]
    [InlineData("")]
    public void TryDurationRefusesWithoutThrowing(string s)
    {
        Assert.False(ConfigLoader.TryDuration(s, out _));
    }

    [Theory]
    [InlineData("500ms", 0.5)]
    [InlineData("1.5s", 1.5)]
    [InlineData(" 3m ", 180)]
    [InlineData("2h", 7200)]
    public void TryDurationParses(string s, double seconds)
    {
        Assert.True(ConfigLoader.TryDuration(s, out var d));
        Assert.Equal(seconds, d.TotalSeconds);
    }

    [Fact]
    public void ShippedExamplesAndTheEmbeddedDefaultPassCheck()
    {
        var files = Directory.GetFiles(TestFiles.InProject("packaging", "examples"), "*.toml");
        Assert.True(files.Length >= 10, string.Join(", ", files));
        foreach (var f in files)
        {
            var (rc, o, e) = Dispatch("run", "--check", "--config", f);
            Assert.True(rc == 0, $"{f}: exit {rc}\n{o}{e}");
        }
        var embedded = Dispatch("run", "--check");
        Assert.True(embedded.Rc == 0, embedded.Err);
        Assert.Contains("embedded default config: ok: node ", embedded.Out, StringComparison.Ordinal);
    }

    [Fact]
    public void TheBinaryRefusesANaNDurationWithExitOneNamingTheKey()
    {
        var path = Path.Combine(_dir, "nan.toml");
        File.WriteAllText(path, With("etr", "register_interval = \"NaNs\""));
        var (rc, o, e) = ApplianceProcess.Run(TimeSpan.FromSeconds(60), "run", "--check", "--config", path);
        Assert.True(rc == 1, $"exit {rc}\n{o}{e}");
        Assert.Contains("etr.register_interval: must be a duration", e, StringComparison.Ordinal);
        Assert.DoesNotContain("internal error", e, StringComparison.Ordinal);
    }

    [Fact]
    public void Split_site_tables_are_refused_rather_than_losing_sites_and_together_they_are_all_read()
    {
        // [[site]], then [[database]], then [[site]] again: the TOML reader kept only the last site (found while
        // testing reload); --check must refuse it, naming the headers, instead of saying "1 site(s)".
        string split = Base + """
            [[site]]
            name = "second"
            key = "k"
            eid_prefixes = ["[0]10.2.0.0/16"]

            """;
        var (rc, _, e) = Check(split);
        Assert.Equal(1, rc);
        Assert.Matches(@"\[\[site\]\] is written 2 times \(lines \d+, \d+\), split by other \[\[\.\.\.\]\] tables, and the TOML reader kept only 1", e);
        // The same two sites written together: both read.
        string together = Base.Replace("""
            [[database]]
            """, """
            [[site]]
            name = "second"
            key = "k"
            eid_prefixes = ["[0]10.2.0.0/16"]

            [[database]]
            """, StringComparison.Ordinal);
        var (rc2, o2, e2) = Check(together);
        Assert.True(rc2 == 0, e2);
        Assert.Contains("2 site(s)", o2, StringComparison.Ordinal);
    }
}
