using Lisp.TestSupport;
using Xunit.Abstractions;

namespace Lisp.Appliance.Tests;

/// <summary>
/// The seed's pull-based LISP-Decent demo, reproduced with real processes: dnsmasq names 4 map-server sets of
/// 2 A records each, `lisp-decent run` map-servers (one process answering as all 8, or several), one ETR
/// registering every EID kind of the seed, ITRs and lig asking. The index of each EID is computed here
/// (SHA-256 + BigInteger over the text the spec says is hashed), not by the code under test.
/// </summary>
public sealed class PullDemoTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(60);

    /// <summary>The seed's ETR database: (EID as configured, text hashed per spec/decent.md, our (S,G) rule = group only).</summary>
    public static readonly (string Eid, string Hashed)[] SeedEids =
    [
        ("[0]1.1.1.1/32", "[0]1.1.1.1/32"),
        ("[0]2.2.2.2/32", "[0]2.2.2.2/32"),
        ("[0]240.1.1.1/32", "[0]240.1.1.1/32"),
        ("[0]2001::1/128", "[0]2001::1/128"),
        ("[0]2001::2/128", "[0]2001::2/128"),
        ("[0]'dino'", "[0]'dino'"),
        ("[0](1.1.1.1/32, 224.1.1.1/32)", "[0]224.1.1.1/32"),
        ("[0]+1223344556677880/64", "[0]+1223344556677880/64"),
        ("[0]0000-1111-2222/48", "[0]0000-1111-2222/48"),
        ("[0]48-51-12-N-2-20-55-E/100", "[0]48-51-12-N-2-20-55-E/100"),
    ];

    private static int Index(string eid) => PullLab.IndexOf(SeedEids.Single(e => e.Eid == eid).Hashed);

    [Fact]
    public void OracleAgreesWithTheSeedVectors()
    {
        // The test's own index function reproduces the seed's ETR log (vectors/decent-index.tsv), so the
        // expectations below are independent of the code under test.
        int n = 0;
        foreach (var line in File.ReadLines(TestFiles.Vector("decent-index.tsv")))
        {
            if (line.StartsWith('#') || line.Length == 0) continue;
            var f = line.Split('\t');
            Assert.Equal(int.Parse(f[4], System.Globalization.CultureInfo.InvariantCulture), PullLab.IndexOf(f[3], int.Parse(f[1], System.Globalization.CultureInfo.InvariantCulture)));
            n++;
        }
        Assert.True(n >= 9);
        // Every set gets something in the demo.
        Assert.Equal([0, 1, 2, 3], SeedEids.Select(e => PullLab.IndexOf(e.Hashed)).Distinct().Order());
    }

    [SkippableFact]
    public void OneProcessServesAllEightMapServersAndKeepsTheSetsApart()
    {
        Dnsmasq.SkipIfMissing();
        using var lab = new PullLab(network: 77, output: output);
        var ms = lab.Start("mrms", lab.MapServerConfig("mrms", lab.AllMapServers));
        Assert.Contains("8 map-server(s) with separate tables", ms.WaitForLine(" node-started ", Long));
        var etr = lab.Start("etr", lab.EtrConfig("etr", lab.Xtr(1), SeedEids.Select(e => e.Eid)));

        // Each map-server holds exactly the EIDs whose index names its set: one registration per A record.
        var expected = SeedEids.SelectMany(e => lab.MapServersOf(Index(e.Eid)).Select(a => (e.Eid, a))).ToList();
        PullLab.WaitForAccepted(ms, expected, Long);
        Thread.Sleep(2500); // two more register rounds: nothing lands anywhere else
        Assert.Equal(expected.ToHashSet(), PullLab.Accepted(ms).ToHashSet());
        Assert.False(ms.Any(" registration-rejected "), "the ETR sent something to the wrong set:\n" + string.Join("\n", ms.Lines));
        foreach (var a in lab.AllMapServers)
        {
            etr.WaitForLine($@" map-notify-accepted .* from {a}:{lab.Port}: registered ", Long); // every member acknowledged
        }

        // An ITR asking through the mapping system gets every EID from its set.
        var itr = lab.Start("itr", lab.ItrConfig("itr", lab.Xtr(2)), [.. SeedEids.SelectMany(e => new[] { "--request", e.Eid })]);
        foreach (var (eid, _) in SeedEids)
        {
            var line = itr.WaitForLine($@" map-cache-install {System.Text.RegularExpressions.Regex.Escape(eid)} -> {lab.Xtr(1)} ", Long);
            int i = Index(eid);
            Assert.True(lab.MapServersOf(i).Any(a => line.Contains($"from {a}:{lab.Port}", StringComparison.Ordinal)),
                $"{eid} (index {i}) answered by a map-server outside its set: {line}");
        }

        // lig to a resolver of the right set, and to one of another set (forwarded to the right set).
        foreach (var (eid, _) in new[] { SeedEids[0], SeedEids[5], SeedEids[8] })
        {
            int i = Index(eid);
            var right = lab.Lig(eid, lab.MapServer(i, 2));
            Assert.True(right.Replied);
            Assert.Equal([lab.Xtr(1)], right.Rlocs);
            var wrong = lab.Lig(eid, lab.MapServer((i + 1) % PullLab.Modulus, 1));
            Assert.True(wrong.Replied);
            Assert.Equal([lab.Xtr(1)], wrong.Rlocs);
        }

        // A set never vouches for more than was asked: an unregistered EID gets a host-length negative reply.
        var neg = lab.Lig("[0]10.9.9.9/32", lab.MapServer(PullLab.IndexOf("[0]10.9.9.9/32"), 1));
        Assert.True(neg.Replied);
        Assert.Empty(neg.Rlocs);
        Assert.Equal("[0]10.9.9.9/32", neg.RecordEid);

        // A registration for an EID the map-server does not serve is refused, counted and logged: an ETR with
        // another modulus (2) sends [0]2001::1/128 (index 2 of 4, 0 of 2) to set 0 and [0]1.1.1.1/32 (1 of 4,
        // 1 of 2) to set 1, the right one.
        Assert.Equal(2, PullLab.IndexOf("[0]2001::1/128"));
        Assert.Equal(0, PullLab.IndexOf("[0]2001::1/128", 2));
        Assert.Equal(1, PullLab.IndexOf("[0]1.1.1.1/32", 2));
        lab.Start("etr2", lab.EtrConfig("etr2", lab.Xtr(3), ["[0]2001::1/128", "[0]1.1.1.1/32"], modulus: 2));
        foreach (var a in lab.MapServersOf(0))
        {
            var refused = ms.WaitForLine($@" registration-rejected not-served-here: Map-Register from {lab.Xtr(3)}:\d+ for \[0\]2001::1/128: .*\(map-server {a}:{lab.Port}\)$", Long);
            Assert.Contains("index 2", refused);
        }
        ms.WaitForLine($@" registration-accepted site '[^']*' \[0\]1\.1\.1\.1/32 registered by {lab.Xtr(3)}:\d+ .*\(map-server {lab.MapServer(1, 1)}:", Long);
        Assert.DoesNotContain(PullLab.Accepted(ms), x => x.MapServer.StartsWith($"127.77.1.", StringComparison.Ordinal) && x.Eid == "[0]2001::1/128");
        var v6 = lab.Lig("[0]2001::1/128", lab.MapServer(2, 1));
        Assert.Equal([lab.Xtr(1)], v6.Rlocs);
        Assert.False(ms.HasExited);
    }

    [SkippableFact]
    public void KillingOneMapServerOfASetStillGetsAnswersFromTheOther()
    {
        Dnsmasq.SkipIfMissing();
        using var lab = new PullLab(network: 78, output: output);
        // Set 1's first member in a process of its own; every other map-server in another.
        string lone = lab.MapServer(1, 1);
        var rest = lab.Start("mrms", lab.MapServerConfig("mrms", lab.AllMapServers.Where(a => a != lone)));
        var single = lab.Start("ms-lone", lab.MapServerConfig("ms-lone", [lone]));
        string[] set1 = [.. SeedEids.Where(e => Index(e.Eid) == 1).Select(e => e.Eid)];
        Assert.True(set1.Length >= 2, "the demo puts [0]1.1.1.1/32 and [0]'dino' in set 1");
        lab.Start("etr", lab.EtrConfig("etr", lab.Xtr(1), SeedEids.Select(e => e.Eid)));
        PullLab.WaitForAccepted(single, [.. set1.Select(e => (e, lone))], Long);
        PullLab.WaitForAccepted(rest, [.. set1.Select(e => (e, lab.MapServer(1, 2)))], Long);
        Assert.Equal(set1.ToHashSet(), PullLab.Accepted(single).Select(x => x.Eid).ToHashSet());

        single.Kill();

        // The ITR spreads requests over the set (least recently used first), so one of the two goes to the dead
        // map-server first, times out and is sent again to the other member, which answers.
        var itr = lab.Start("itr", lab.ItrConfig("itr", lab.Xtr(2)), [.. set1.SelectMany(e => new[] { "--request", e })]);
        foreach (var eid in set1)
        {
            itr.WaitForLine($@" map-cache-install {System.Text.RegularExpressions.Regex.Escape(eid)} -> {lab.Xtr(1)} .* from {lab.MapServer(1, 2)}:{lab.Port}", Long);
        }
        Assert.True(itr.Any($@" map-request-retransmit .* to map-resolver {lab.MapServer(1, 2)}:{lab.Port}"), "no failover to the live member:\n" + string.Join("\n", itr.Lines));

        // lig straight at the dead one gets nothing; at the live one, the mapping.
        Assert.False(lab.Lig(set1[0], lone, count: 1).Replied);
        Assert.Equal([lab.Xtr(1)], lab.Lig(set1[0], lab.MapServer(1, 2)).Rlocs);
    }

    [SkippableFact]
    public void DnsDownAtStartNodesStartAndRegisterOnceDnsComesUp()
    {
        Dnsmasq.SkipIfMissing();
        using var lab = new PullLab(network: 79, startDns: false, output: output);
        var ms = lab.Start("mrms", lab.MapServerConfig("mrms", lab.AllMapServers));
        var etr = lab.Start("etr", lab.EtrConfig("etr", lab.Xtr(1), SeedEids.Select(e => e.Eid)));
        var itr = lab.Start("itr", lab.ItrConfig("itr", lab.Xtr(2)), "--request", "[0]2001::1/128");

        // Up, saying why nothing happens yet, and not giving up.
        etr.WaitForLine(@" decent-dns decent-dns: \d\.ms\.test: .*failure", Long);
        etr.WaitForLine(" no-map-server ", Long);
        itr.WaitForLine(@" map-request-waiting Map-Request for \[0\]2001::1/128", Long);
        Assert.Empty(PullLab.Accepted(ms));
        Assert.False(ms.HasExited || etr.HasExited || itr.HasExited);

        lab.Dns.Start();
        var expected = SeedEids.SelectMany(e => lab.MapServersOf(Index(e.Eid)).Select(a => (e.Eid, a))).ToList();
        PullLab.WaitForAccepted(ms, expected, Long);
        // The waiting request went out once its set resolved, to a map-resolver of set 2, and was answered.
        var installed = itr.WaitForLine(@" map-cache-install \[0\]2001::1/128", Long);
        Assert.True(lab.MapServersOf(2).Any(a => installed.Contains($"from {a}:{lab.Port}", StringComparison.Ordinal)), installed);
        Assert.Equal([lab.Xtr(1)], lab.Lig("[0]2001::1/128", lab.MapServer(2, 1)).Rlocs);
    }

    [Fact]
    public void EveryPackagedExampleLoads()
    {
        var dir = TestFiles.InProject("packaging", "examples");
        var files = Directory.GetFiles(dir, "*.toml");
        Assert.Contains(files, f => Path.GetFileName(f) == "pull-etr.toml");
        Assert.Contains(files, f => Path.GetFileName(f) == "pull-map-server.toml");
        foreach (var f in files)
        {
            var (rc, stdout, stderr) = ApplianceProcess.Run(TimeSpan.FromSeconds(60), "run", "--check", "--config", f);
            Assert.True(rc == 0, $"{f}: exit {rc}\n{stdout}{stderr}");
            Assert.Contains(": ok: node ", stdout);
        }
    }
}
