using System.Net;
using Lisp.Wire;
using Xunit;
using Xunit.Abstractions;

namespace Lisp.Decent.Tests;

public sealed class PullMappingSystemTests(ITestOutputHelper output)
{
    private static DecentPullOptions Options(int modulus = 4, SourceGroupHashing sg = SourceGroupHashing.Group) => new()
    {
        DnsSuffix = "ms.test",
        Hash = new DecentHashOptions { Modulus = modulus, SourceGroup = sg },
        Dns = new DnsResolverOptions { Servers = [new IPEndPoint(IPAddress.Loopback, 53)], MinimumTtl = TimeSpan.FromSeconds(1) },
    };

    /// <summary>The seed's DNS slide on loopback: i.ms.test -> 127.0.(i+1).1 and .2.</summary>
    private static ScriptedDnsSource SeedLike(int modulus = 4)
    {
        var src = new ScriptedDnsSource();
        for (int i = 0; i < modulus; i++) src.Set($"{i}.ms.test", TimeSpan.FromSeconds(60), $"127.0.{i + 1}.1", $"127.0.{i + 1}.2");
        return src;
    }

    private static string[] Texts(IEnumerable<IPEndPoint> e) => e.Select(x => x.ToString()).ToArray();

    [Fact]
    public async Task Map_servers_are_the_whole_set_of_the_eids_index_at_port_4342()
    {
        using var ms = new PullMappingSystem(Options(), SeedLike(), new ManualTimeProvider());
        Assert.Equal("decent-pull ms.test mod 4 sha256", ms.Name);
        var eid = EidPrefix.Parse("[0]1.1.1.1/32");          // seed: index 1
        // The first ask starts resolution on the thread pool and returns what is served at that moment: empty, or
        // already the set when the scripted answer wins the race. That it never blocks is DnsCacheTests' job (gated source).
        var first = Texts(ms.MapServersFor(eid));
        Assert.True(first.Length == 0 || first.SequenceEqual(["127.0.2.1:4342", "127.0.2.2:4342"]), string.Join(", ", first));
        await ms.Dns.PendingAsync("1.ms.test");
        Assert.Equal(["127.0.2.1:4342", "127.0.2.2:4342"], Texts(ms.MapServersFor(eid)));
        await ms.WarmUpAsync([0]);
        Assert.Equal(["127.0.1.1:4342", "127.0.1.2:4342"], Texts(ms.MapServersFor(EidPrefix.Parse("[0]2.2.2.2/32")))); // seed: index 0
        var loc = ms.Locate(eid);
        Assert.Equal((1, "1.ms.test"), (loc.Index, loc.DnsName));
    }

    [Fact]
    public async Task Warm_up_makes_every_set_available_at_once()
    {
        using var ms = new PullMappingSystem(Options(), SeedLike(), new ManualTimeProvider());
        await ms.WarmUpAllAsync();
        for (int i = 0; i < 4; i++)
        {
            Assert.Equal([$"127.0.{i + 1}.1:4342", $"127.0.{i + 1}.2:4342"], Texts(ms.MapServersForIndex(i)));
        }
        // The seed's Map-Request EIDs, as an ITR would look them up.
        Assert.Equal(2, ms.MapResolversFor(EidPrefix.Parse("[0]2001::1/128")).Count);
        Assert.StartsWith("127.0.3.", ms.MapResolversFor(EidPrefix.Parse("[0]2001::1/128"))[0].Address.ToString()); // set 2
    }

    [Fact]
    public async Task Resolvers_rotate_least_recently_used_first()
    {
        var src = new ScriptedDnsSource();
        src.Set("3.ms.test", TimeSpan.FromSeconds(60), "127.0.4.1", "127.0.4.2", "127.0.4.3");
        using var ms = new PullMappingSystem(Options(), src, new ManualTimeProvider());
        await ms.WarmUpAsync([3]);
        var firsts = Enumerable.Range(0, 6).Select(_ => ms.MapResolversForIndex(3)).ToList();
        foreach (var f in firsts) output.WriteLine(string.Join(" ", Texts(f)));
        Assert.Equal(["127.0.4.1:4342", "127.0.4.2:4342", "127.0.4.3:4342", "127.0.4.1:4342", "127.0.4.2:4342", "127.0.4.3:4342"],
            firsts.Select(f => f[0].ToString()).ToArray());
        Assert.All(firsts, f => Assert.Equal(3, f.Distinct().Count()));
        // The next in line after the first is the fallback: the one used longest ago.
        Assert.Equal("127.0.4.2:4342", firsts[0][1].ToString());

        // The ITR timed out on the first and used the second: the third is next.
        var r = ms.MapResolversForIndex(3);                   // 127.0.4.1 first
        Assert.Equal("127.0.4.1:4342", r[0].ToString());
        ms.NoteUsed(r[1]);                                     // fell over to 127.0.4.2
        Assert.Equal("127.0.4.3:4342", ms.MapResolversForIndex(3)[0].ToString());
    }

    [Fact]
    public async Task Source_group_registrations_and_lookups_follow_the_mode()
    {
        var sg = EidPrefix.Parse("[0](1.1.1.1/32, 224.1.1.1/32)");
        using (var ms = new PullMappingSystem(Options(), SeedLike(), new ManualTimeProvider()))
        {
            await ms.WarmUpAllAsync();
            // Group mode: [0]224.1.1.1/32 -> 2 both ways.
            Assert.Equal(Texts(ms.MapServersForIndex(2)), Texts(ms.MapServersFor(sg)));
            Assert.Equal(Texts(ms.MapServersForIndex(2)).Order(), Texts(ms.MapResolversFor(sg)).Order());
        }
        using (var ms = new PullMappingSystem(Options(sg: SourceGroupHashing.Source), SeedLike(), new ManualTimeProvider()))
        {
            await ms.WarmUpAllAsync();
            // lispers.net 2019: registered at the source's set (1), looked up at the group's (2).
            Assert.Equal(Texts(ms.MapServersForIndex(1)), Texts(ms.MapServersFor(sg)));
            Assert.Equal(Texts(ms.MapServersForIndex(2)).Order(), Texts(ms.MapResolversFor(sg)).Order());
        }
    }

    [Fact]
    public async Task A_node_learns_which_sets_it_serves()
    {
        var src = SeedLike();
        src.Set("3.ms.test", TimeSpan.FromSeconds(60), "127.0.4.1", "127.0.1.1"); // 127.0.1.1 serves sets 0 and 3
        using var ms = new PullMappingSystem(Options(), src, new ManualTimeProvider());
        await ms.WarmUpAllAsync();
        Assert.Equal([0, 3], ms.IndexesServedBy([IPAddress.Parse("127.0.1.1")]));
        Assert.Equal([1], ms.IndexesServedBy([IPAddress.Parse("127.0.2.2"), IPAddress.Parse("10.9.9.9")]));
        Assert.Equal([1], ms.IndexesServedBy([IPAddress.Parse("::ffff:127.0.2.2")]));
        Assert.Empty(ms.IndexesServedBy([IPAddress.Parse("127.0.9.9")]));
        Assert.Equal("0, 3 of 4", ServedIndexes.Describe([0, 3], 4));
        Assert.True(ms.Serves(EidPrefix.Parse("[0]1.1.1.1/32"), [IPAddress.Parse("127.0.2.1")]));
        Assert.False(ms.Serves(EidPrefix.Parse("[0]1.1.1.1/32"), [IPAddress.Parse("127.0.1.1")]));
        Assert.Equal([0, 2], ServedIndexes.Find([IPAddress.Parse("127.0.0.9")], 3, i => i == 1 ? [] : [IPAddress.Parse("127.0.0.9")]));
    }

    [Fact]
    public async Task Any_name_resolves_through_the_same_cache_for_a_seed_group()
    {
        var src = SeedLike();
        src.Set("seed-group.ms.test", TimeSpan.FromSeconds(60), "127.0.7.1", "127.0.7.2", "127.0.7.3");
        using var ms = new PullMappingSystem(Options(), src, new ManualTimeProvider());
        var set = await ms.ResolveNameAsync("seed-group.ms.test");
        Assert.Equal(3, set.Count);
        Assert.Equal(3, ms.Dns.Get("seed-group.ms.test").Count);
    }

    [Fact]
    public void Options_are_checked()
    {
        Assert.NotNull((Options() with { DnsSuffix = " . " }).Validate());
        Assert.NotNull((Options() with { MapServerPort = 0 }).Validate());
        Assert.NotNull((Options() with { Hash = new DecentHashOptions { Modulus = 0 } }).Validate());
        Assert.Throws<ArgumentException>(() => new PullMappingSystem(Options() with { DnsSuffix = "" }, new ScriptedDnsSource()));
        Assert.Null(Options().Validate());
        Assert.Equal(4342, new DecentPullOptions().MapServerPort);
        using var ms = new PullMappingSystem(Options(), new ScriptedDnsSource(), new ManualTimeProvider());
        Assert.Throws<ArgumentOutOfRangeException>(() => ms.DnsNameFor(4));
        Assert.Equal("3.ms.test", ms.DnsNameFor(3));
    }
}
