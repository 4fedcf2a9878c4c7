using System.Text.Json;
using Lisp.TestSupport;

namespace Lisp.Appliance.Tests.Cli;

/// <summary>The `lisp-decent` command line, run as the real process: help, usage errors, decode, config errors.</summary>
public sealed class CliTests : IDisposable
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(60);
    private readonly string _dir = Directory.CreateTempSubdirectory("lisp-cli-test-").FullName;

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

    private static (int Rc, string Out, string Err) Run(params string[] args) => ApplianceProcess.Run(Limit, args);

    [Theory]
    [InlineData("--help")]
    [InlineData("-h")]
    [InlineData("help")]
    public void TopLevelHelpListsEveryCommandAndExitsZero(string flag)
    {
        var (rc, o, e) = Run(flag);
        Assert.True(rc == 0, e);
        foreach (var cmd in new[] { "run", "lig", "decent-index", "decode", "load", "demo", "version", "--help" })
        {
            Assert.Contains(cmd, o, StringComparison.Ordinal);
        }
        Assert.Contains("Usage: lisp-decent COMMAND", o, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("run", "--config,--log-level,--request,--check,--print-default-config,--help")]
    [InlineData("lig", "--map-resolver,--source,--count,--timeout,--json,--help")]
    [InlineData("decode", "--file,--json,--help")]
    [InlineData("decent-index", "--modulus,--dns-suffix,--algorithm,--hmac-key,--digest-bytes,--hash-mask,--lookup-length,--sg-hash,--show-text,--help")]
    [InlineData("demo", "")]
    [InlineData("load", "--target,--bind,--rloc,--eid-base,--eids,--eid-file,--records,--key,--algorithm,--rate,--window,--steps,--ratio,--duration,--count,--timeout,--threads,--batch,--json,--report,--self-test,--listen,--echo,--ack,--no-ack,--help")]
    public void EachCommandsHelpMentionsEachOptionAndExitsZero(string command, string options)
    {
        var (rc, o, e) = Run(command, "--help");
        Assert.True(rc == 0, $"{command} --help exited {rc}: {e}");
        Assert.Contains($"Usage: lisp-decent {command}", o, StringComparison.Ordinal);
        foreach (var opt in options.Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            Assert.Contains(opt, o, StringComparison.Ordinal);
        }
        Assert.Equal("", e);
    }

    [Fact]
    public void NoArgumentsPrintsHelpAndExitsTwo()
    {
        var (rc, o, _) = Run();
        Assert.Equal(2, rc);
        Assert.Contains("Commands:", o, StringComparison.Ordinal);
    }

    [Fact]
    public void VersionPrintsTheVersion()
    {
        var (rc, o, _) = Run("version");
        Assert.Equal(0, rc);
        Assert.Matches(@"^lisp-decent \d+\.\d+", o);
    }

    [Fact]
    public void UnknownCommandExitsTwoAndSaysSo()
    {
        var (rc, o, e) = Run("frobnicate");
        Assert.Equal(2, rc);
        Assert.Contains("unknown command 'frobnicate'", e, StringComparison.Ordinal);
        Assert.Equal("", o);
    }

    [Theory]
    [InlineData("run")]
    [InlineData("lig")]
    [InlineData("decode")]
    [InlineData("decent-index")]
    [InlineData("demo")]
    public void UnknownOptionExitsTwoAndNamesIt(string command)
    {
        var (rc, _, e) = Run(command, "--no-such-option");
        Assert.Equal(2, rc);
        Assert.Contains("unknown option --no-such-option", e, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("option --config needs a value", "run", "--config")]
    [InlineData("--log-level 'loud'", "run", "--log-level", "loud")]
    [InlineData("unexpected argument extra", "run", "extra")]
    [InlineData("--map-resolver is required", "lig", "10.1.1.1")]
    [InlineData("give exactly one EID", "lig", "--map-resolver", "127.0.0.1")]
    [InlineData("--map-resolver 'not-an-address'", "lig", "10.1.1.1", "--map-resolver", "not-an-address")]
    [InlineData("--count must be 1..100", "lig", "10.1.1.1", "--map-resolver", "127.0.0.1", "--count", "0")]
    [InlineData("--timeout must be a duration", "lig", "10.1.1.1", "--map-resolver", "127.0.0.1", "--timeout", "soon")]
    [InlineData("lig:", "lig", "10.1.1.1/99", "--map-resolver", "127.0.0.1")]
    [InlineData("give at least one HEX message or --file", "decode")]
    [InlineData("--modulus N is required", "decent-index", "--dns-suffix", "ms.test", "[0]1.1.1.1/32")]
    [InlineData("takes no arguments", "demo", "extra")]
    public void UsageErrorsExitTwoWithAClearMessage(string message, params string[] args)
    {
        var (rc, _, e) = Run(args);
        Assert.True(rc == 2, $"exit {rc}, stderr: {e}");
        Assert.Contains(message, e, StringComparison.Ordinal);
    }

    [Fact]
    public void LigWithNobodyListeningExitsOneAfterItsTries()
    {
        int port = Loopback.FreeUdpPort("127.0.23.1");
        var (rc, o, e) = Run("lig", "10.1.1.1", "--map-resolver", $"127.0.23.1:{port}", "--count", "2", "--timeout", "300ms");
        Assert.Equal(1, rc);
        Assert.Contains("no Map-Reply from 127.0.23.1:" + port + " after 2 tries", e, StringComparison.Ordinal);
        Assert.Equal(2, o.Split('\n').Count(l => l.StartsWith("Send map-request to", StringComparison.Ordinal)));
    }

    public static readonly string[] SeedEids =
    [
        "[0]1.1.1.1/32", "[0]2.2.2.2/32", "[0]3.3.3.3/32", "[0]4.4.4.4/32", "[0]44.44.44.44/32", "[0]128.1.1.1/32",
        "[0]2001::1/128", "[0](fe00::2:2:2/128, ff02::1:ff00:2/128)", "[0]dfdf::2/128",
    ];

    [Fact]
    public void DecodeSeedVectorFilePrintsAllNineEids()
    {
        var (rc, o, e) = Run("decode", "--file", TestFiles.Vector("seed-map-requests.txt"));
        Assert.True(rc == 0, e);
        foreach (var eid in SeedEids)
        {
            Assert.Contains("eid: " + eid, o, StringComparison.Ordinal);
        }
        Assert.Equal(9, o.Split('\n').Count(l => l.Contains("Encapsulated-Control-Message", StringComparison.Ordinal)));
        Assert.DoesNotContain("error:", o, StringComparison.Ordinal);
    }

    [Fact]
    public void DecodeJsonParsesAndHoldsAllNineEids()
    {
        var (rc, o, e) = Run("decode", "--json", "--file", TestFiles.Vector("seed-map-requests.txt"));
        Assert.True(rc == 0, e);
        using var doc = JsonDocument.Parse(o);
        var items = doc.RootElement.EnumerateArray().ToList();
        Assert.Equal(9, items.Count);
        Assert.All(items, i => Assert.True(i.GetProperty("ok").GetBoolean()));
        var eids = new List<string>();
        void Walk(JsonElement n)
        {
            if (n.TryGetProperty("name", out var name) && name.GetString() == "eid" && n.TryGetProperty("value", out var v)) eids.Add(v.GetString()!);
            if (n.TryGetProperty("children", out var c) && c.ValueKind == JsonValueKind.Array)
            {
                foreach (var x in c.EnumerateArray()) Walk(x);
            }
        }
        foreach (var i in items) Walk(i.GetProperty("message"));
        Assert.Equal(SeedEids, eids);
    }

    [Fact]
    public void DecodeHexArgumentWorks()
    {
        var first = File.ReadAllLines(TestFiles.Vector("seed-map-requests.txt")).First(l => l.Length > 0 && !l.StartsWith('#'));
        var (rc, o, e) = Run("decode", "0x" + first.Split('\t')[^1]);
        Assert.True(rc == 0, e);
        Assert.Contains("eid: [0]1.1.1.1/32", o, StringComparison.Ordinal);
    }

    [Fact]
    public void DecodeOfTheInvalidCaptureExitsOneWithTheError()
    {
        var (rc, o, _) = Run("decode", "--file", TestFiles.Vector("captures", "lisp_invalid.pcap"));
        Assert.Equal(1, rc);
        Assert.Contains("error: malformed: UnsupportedAfi", o, StringComparison.Ordinal);
        Assert.Contains("error: malformed: Truncated", o, StringComparison.Ordinal);

        var (rcj, oj, _) = Run("decode", "--json", "--file", TestFiles.Vector("captures", "lisp_invalid.pcap"));
        Assert.Equal(1, rcj);
        using var doc = JsonDocument.Parse(oj);
        Assert.All(doc.RootElement.EnumerateArray(), i =>
        {
            Assert.False(i.GetProperty("ok").GetBoolean());
            Assert.StartsWith("malformed: ", i.GetProperty("error").GetString(), StringComparison.Ordinal);
        });
    }

    [Fact]
    public void DecodeOfBadHexExitsOne()
    {
        var (rc, o, _) = Run("decode", "zz11");
        Assert.Equal(1, rc);
        Assert.Contains("not hex", o, StringComparison.Ordinal);
    }

    [Fact]
    public void DemoDecodesTheNineSeedPackets()
    {
        var (rc, o, e) = Run("demo");
        Assert.True(rc == 0, e);
        Assert.Equal(9, o.Split('\n').Count(l => l.Contains("to map-resolver", StringComparison.Ordinal) && l.Contains("EID [0]", StringComparison.Ordinal)));
    }

    private const string GoodEtr = """
        [node]
        name = "x"
        roles = ["etr"]
        listen = ["127.0.23.2"]

        [mapping]
        map_servers = ["127.0.23.1"]
        key = "k"

        [[database]]
        eid = "[0]10.1.1.0/24"
        rlocs = ["127.0.23.2"]
        """;

    [Theory]
    [InlineData("node.nmae: unknown key", "[node]\nnmae = \"typo\"\nroles = [\"map-server\"]\nlisten = [\"127.0.0.1\"]\n[[site]]\nname = \"s\"\nkey = \"k\"\neid_prefixes = [\"[0]10.0.0.0/8\"]\n")]
    [InlineData("node.control_port: must be an integer", "control_port = \"4342\"")]
    [InlineData("node.control_port: 70000 is out of range", "control_port = 70000")]
    [InlineData("node.roles[1]: unknown role 'router'", "roles = [\"etr\", \"router\"]")]
    [InlineData("node.listen[0]: '127.0.0.300' is not an IPv4 or IPv6 address", "listen = [\"127.0.0.300\"]")]
    [InlineData("etr.register_interval: must be a duration", "[etr]\nregister_interval = \"soon\"")]
    [InlineData("etr.want_map_notify: must be true or false", "[etr]\nwant_map_notify = \"yes\"")]
    [InlineData("database[1].eid", "[[database]]\neid = \"[0]10.1.1.300/24\"")]
    [InlineData("database[1].rlocs[0].priority: 300 is out of range", "[[database]]\neid = \"[0]10.2.0.0/16\"\nrlocs = [{ address = \"127.0.23.2\", priority = 300 }]")]
    [InlineData("site[0].key: every site needs an authentication key", "[[site]]\nname = \"nokey\"\neid_prefixes = [\"[0]10.0.0.0/8\"]")]
    [InlineData("site[0].eid_prefixes[0]", "[[site]]\nname = \"bad\"\nkey = \"k\"\neid_prefixes = [\"[0]not-an-eid/99\"]")]
    [InlineData("mapping.algorithm: 'md5' is not one of", "[mapping]\nalgorithm = \"md5\"")]
    [InlineData("not valid TOML", "[node\nname = ")]
    [InlineData("data_plane.instance_id: 16777215 is out of range 0..16777214", "[node]\nroles = [\"itr\"]\nrlocs = [\"127.0.0.1\"]\n[mapping]\nmap_resolvers = [\"127.0.0.1\"]\n[data_plane]\ninstance_id = 16777215\n")]
    [InlineData("decent.push.membership_refresh: must be a duration", "[node]\nroles = [\"itr\", \"etr\", \"map-server\", \"map-resolver\"]\nrlocs = [\"127.0.0.1\"]\n[decent.push]\ngroup = \"224.1.1.1\"\nkey = \"k\"\nmembership_refresh = \"soon\"\n[[database]]\neid = \"[0]1.1.1.1/32\"\n")]
    public void BadConfigExitsOneAndNamesTheKey(string expected, string toml)
    {
        string text = BadConfig(toml);
        var path = Path.Combine(_dir, $"bad-{Guid.NewGuid():N}.toml");
        File.WriteAllText(path, text);
        var (rc, o, e) = Run("run", "--config", path);
        Assert.True(rc == 1, $"exit {rc}; stdout {o}; stderr {e}; config:\n{text}");
        Assert.Contains("run: bad config: ", e, StringComparison.Ordinal);
        Assert.Contains(expected, e, StringComparison.Ordinal);
        Assert.DoesNotContain("node-started", o, StringComparison.Ordinal);
    }

    /// <summary>Merges a fragment into the good ETR config: node keys go into [node], tables are appended.</summary>
    private static string BadConfig(string fragment)
    {
        if (fragment.StartsWith("[node]", StringComparison.Ordinal) || fragment.StartsWith("[node\n", StringComparison.Ordinal)) return fragment;
        if (fragment.StartsWith('['))
        {
            // A table that the good config already has is replaced by adding its keys there.
            foreach (var table in new[] { "[mapping]" })
            {
                if (fragment.StartsWith(table, StringComparison.Ordinal))
                {
                    return GoodEtr.Replace(table, fragment, StringComparison.Ordinal);
                }
            }
            return GoodEtr + "\n" + fragment + "\n";
        }
        // A [node] key: replace the existing line of that key, else add it.
        var key = fragment[..fragment.IndexOf(' ', StringComparison.Ordinal)];
        var lines = GoodEtr.Split('\n').ToList();
        int i = lines.FindIndex(l => l.StartsWith(key + " ", StringComparison.Ordinal));
        if (i >= 0) lines[i] = fragment;
        else lines.Insert(1, fragment);
        return string.Join('\n', lines);
    }

    [Fact]
    public void MissingConfigFileExitsOne()
    {
        var (rc, _, e) = Run("run", "--config", Path.Combine(_dir, "nope.toml"));
        Assert.Equal(1, rc);
        Assert.Contains("cannot read config", e, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("single-node.toml")]
    [InlineData("map-server.toml")]
    [InlineData("xtr.toml")]
    public void ExampleConfigsPassCheck(string file)
    {
        var path = Path.Combine(ProjectRoot(), "packaging", "examples", file);
        var (rc, o, e) = Run("run", "--check", "--config", path);
        Assert.True(rc == 0, e);
        Assert.Contains(": ok: node ", o, StringComparison.Ordinal);
    }

    private static string ProjectRoot()
    {
        return TestFiles.ProjectRoot;
    }
}
