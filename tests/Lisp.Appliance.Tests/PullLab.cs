using System.Globalization;
using System.Numerics;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Lisp.Appliance.Tests.Support;
using Lisp.TestSupport;
using Xunit.Abstractions;

namespace Lisp.Appliance.Tests;

/// <summary>
/// The seed's pull demo on loopback for process-level tests: a real dnsmasq serving "&lt;i&gt;.ms.test" for
/// i in 0..3, each with two A records 127.N.(i+1).1 and 127.N.(i+1).2 (the seed's DNS slide: 0 -> two
/// map-servers, 1 -> two ...), `lisp-decent run` processes on 127.N.x.y sharing one free control port, and
/// their configs in a temp folder. Dispose kills every process and dnsmasq.
/// </summary>
public sealed partial class PullLab : IDisposable
{
    public const int Modulus = 4;
    public const string Suffix = "ms.test";
    public const string Key = "decent-demo-key";

    private readonly List<ApplianceProcess> _processes = [];
    private readonly ITestOutputHelper? _output;

    public PullLab(int network, bool startDns = true, ITestOutputHelper? output = null)
    {
        Network = network;
        _output = output;
        Dir = Directory.CreateTempSubdirectory("lisp-pull-lab-").FullName;
        Port = Loopback.FreeUdpPort();
        Dns = Dnsmasq.Create(Records(), localTtl: 1, start: startDns);
    }

    public int Network { get; }
    public int Port { get; }
    public string Dir { get; }
    public Dnsmasq Dns { get; }

    /// <summary>Map-server <paramref name="member"/> (1 or 2) of set <paramref name="index"/>: "127.N.(index+1).member".</summary>
    public string MapServer(int index, int member) => $"127.{Network}.{index + 1}.{member}";

    public IEnumerable<string> MapServersOf(int index) => [MapServer(index, 1), MapServer(index, 2)];

    public IEnumerable<string> AllMapServers => Enumerable.Range(0, Modulus).SelectMany(MapServersOf);

    /// <summary>An xTR address outside the map-server sets: "127.N.100.host".</summary>
    public string Xtr(int host) => $"127.{Network}.100.{host}";

    public string Endpoint(string address) => $"{address}:{Port}";

    private IEnumerable<(string, string)> Records()
    {
        for (int i = 0; i < Modulus; i++)
        {
            foreach (var a in MapServersOf(i)) yield return ($"{i}.{Suffix}", a);
        }
    }

    /// <summary>SHA-256 of the hashed text as one big-endian unsigned integer, mod <paramref name="modulus"/> (the test's own oracle).</summary>
    public static int IndexOf(string hashedText, int modulus = Modulus)
    {
        var digest = SHA256.HashData(Encoding.UTF8.GetBytes(hashedText));
        return (int)(new BigInteger(digest, isUnsigned: true, isBigEndian: true) % modulus);
    }

    /// <summary>The [decent.pull] table every node of the lab uses (short DNS TTL so tests see changes fast).</summary>
    public string PullTable(int modulus = Modulus, bool withKey = false) => $"""
        [decent.pull]
        dns_suffix = "{Suffix}"
        modulus = {modulus}
        hash = "sha256"
        dns_servers = ["127.0.0.1:{Dns.Port}"]
        min_dns_ttl = "1s"
        dns_grace = "60s"
        {(withKey ? $"key = \"{Key}\"" : "")}
        """;

    public string MapServerConfig(string name, IEnumerable<string> listen) => $"""
        [node]
        name = "{name}"
        roles = ["map-server", "map-resolver"]
        listen = [{Quoted(listen)}]
        control_port = {Port}

        {PullTable()}

        [map_server]
        registration_timeout = "10s"

        [[site]]
        name = "registrations"
        key = "{Key}"
        eid_prefixes = ["[0]0.0.0.0/0", "[0]::/0", "[0](0.0.0.0/0, 224.0.0.0/4)", "[0]0000-0000-0000/0",
                        "[0]+000000000000000/0", "[0]'dino'", "[0]48-51-12-N-2-20-55-E/100"]
        accept_more_specifics = true
        """;

    public string EtrConfig(string name, string rloc, IEnumerable<string> eids, int modulus = Modulus) => $"""
        [node]
        name = "{name}"
        roles = ["etr"]
        rlocs = ["{rloc}"]
        control_port = {Port}

        {PullTable(modulus, withKey: true)}

        [etr]
        register_interval = "1s"
        record_ttl = "1m"

        {string.Join("\n", eids.Select(e => $"[[database]]\neid = \"{e}\"\n"))}
        """;

    public string ItrConfig(string name, string rloc) => $"""
        [node]
        name = "{name}"
        roles = ["itr"]
        rlocs = ["{rloc}"]
        control_port = {Port}

        {PullTable()}

        [itr]
        request_timeout = "500ms"
        request_retries = 3
        """;

    private static string Quoted(IEnumerable<string> items) => string.Join(", ", items.Select(i => $"\"{i}\""));

    /// <summary>Starts `lisp-decent run --config NAME.toml [extra]`; waits for node-started unless told not to.</summary>
    public ApplianceProcess Start(string name, string toml, params string[] extra)
    {
        var path = Path.Combine(Dir, name + ".toml");
        File.WriteAllText(path, toml);
        var p = ApplianceProcess.Start(["run", "--config", path, .. extra]);
        lock (_processes) _processes.Add(p);
        p.WaitForLine(" node-started ", TimeSpan.FromSeconds(60));
        return p;
    }

    /// <summary>`registration-accepted` lines: (EID text, map-server address the registration arrived on).</summary>
    public static IReadOnlyList<(string Eid, string MapServer)> Accepted(ApplianceProcess p) =>
        p.Lines.Select(l => AcceptedLine().Match(l)).Where(m => m.Success)
            .Select(m => (m.Groups["eid"].Value, m.Groups["ms"].Value)).ToList();

    [GeneratedRegex(@" registration-accepted site '[^']*' (?<eid>.+?) registered by \S+ with RLOCs .* \(map-server (?<ms>[0-9.]+):\d+\)$")]
    private static partial Regex AcceptedLine();

    /// <summary>Waits (bounded) until every (EID, map-server) pair in <paramref name="expected"/> has an accepted line.</summary>
    public static void WaitForAccepted(ApplianceProcess p, IReadOnlyCollection<(string Eid, string MapServer)> expected, TimeSpan timeout)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            var have = Accepted(p).ToHashSet();
            var missing = expected.Where(e => !have.Contains(e)).ToList();
            if (missing.Count == 0) return;
            if (sw.Elapsed > timeout || p.HasExited)
            {
                throw new TimeoutException($"registrations missing after {timeout.TotalSeconds:0}s: {string.Join("; ", missing)}\nlog:\n{string.Join("\n", p.Lines.TakeLast(80))}");
            }
            Thread.Sleep(200);
        }
    }

    /// <summary>`lisp-decent lig EID --map-resolver ADDRESS:PORT --json`: (replied, RLOC addresses of the first record, its EID).</summary>
    public (bool Replied, IReadOnlyList<string> Rlocs, string? RecordEid, string? Action) Lig(string eid, string resolverAddress, int count = 3)
    {
        var (rc, stdout, stderr) = ApplianceProcess.Run(TimeSpan.FromSeconds(60), "lig", eid, "--map-resolver", Endpoint(resolverAddress),
            "--json", "--count", count.ToString(CultureInfo.InvariantCulture), "--timeout", "1s");
        _output?.WriteLine($"lig {eid} via {resolverAddress}: rc {rc}\n{stdout}{stderr}");
        if (rc != 0) return (false, [], null, null);
        var reply = LigReply.Parse(stdout);
        if (reply.Records.Count == 0) return (true, [], null, null);
        var r0 = reply.Records[0];
        return (true, r0.Rlocs.Select(x => x.Address).ToList(), r0.Eid, r0.Action);
    }

    public void Dispose()
    {
        List<ApplianceProcess> ps;
        lock (_processes) ps = [.. _processes];
        foreach (var p in ps)
        {
            if (_output is not null)
            {
                try
                {
                    _output.WriteLine($"--- process {p.Id} ---\n{string.Join("\n", p.Lines.TakeLast(200))}");
                }
                catch (InvalidOperationException)
                {
                    // no test is running any more
                }
            }
            p.Dispose();
        }
        Dns.Dispose();
        try
        {
            Directory.Delete(Dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
