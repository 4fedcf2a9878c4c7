using System.Text;
using Lisp.ControlPlane;
using Lisp.ControlPlane.Tables;
using Lisp.ControlPlane.Tests.Tables;
using Lisp.Wire;

namespace Lisp.ControlPlane.Tests.Sharding;

/// <summary>
/// Properties of <see cref="ShardPlan"/>'s steering over random EIDs of every kind (fixed seeds): shards in range,
/// deterministic, short prefixes replicated from shard 0, every address under a prefix answered by the shard that
/// owns the prefix, messages steered by the EID they are about, and blocks spread over the shards. Expected
/// values come from the documented steering lengths (written out in <see cref="ShardText.SteeringBits"/>) and
/// bit arithmetic done here, never from the plan itself, except where a property relates two of its answers.
/// </summary>
public class SteeringPropertyTests
{
    public static readonly TheoryData<int> Counts = new() { 1, 2, 3, 4, 7 };

    private static readonly string Letters = "abcdefghijklmnopqrstuvwxyz0123456789.-";

    private static string RandomName(Random rng) => new(Enumerable.Range(0, rng.Next(1, 20)).Select(_ => Letters[rng.Next(Letters.Length)]).ToArray());

    private static uint AnyIid(Random rng) => rng.Next(4) switch
    {
        0 => (uint)rng.Next(1, 1 << 24),
        1 => 1,
        _ => 0,
    };

    /// <summary>An EID of any kind: clustered (OracleGen) or uniformly random bits at any length, names, (S,G) with any group length.</summary>
    private static EidPrefix AnyEid(OracleGen gen)
    {
        var rng = gen.Rng;
        if (rng.Next(3) == 0) return rng.Next(2) == 0 ? gen.Prefix() : gen.Query([]);
        uint iid = AnyIid(rng);
        switch (rng.Next(7))
        {
            case 0: return OracleGen.IpPrefix(iid, gen.Random128(), true, rng.Next(33));
            case 1: return OracleGen.IpPrefix(iid, gen.Random128(), false, rng.Next(129));
            case 2: return OracleGen.MacPrefix(iid, gen.Random128(), rng.Next(49));
            case 3: return OracleGen.E164Prefix(iid, gen.Random128(), rng.Next(65));
            case 4: return OracleGen.Name(iid, RandomName(rng));
            default:
            {
                bool gV4 = rng.Next(2) == 0, sV4 = rng.Next(2) == 0;
                return OracleGen.SourceGroup(iid, gen.Random128(), sV4, rng.Next(sV4 ? 33 : 129), gen.Random128(), gV4, rng.Next(gV4 ? 33 : 129));
            }
        }
    }

    /// <summary>An address-kind EID (or (S,G)) whose steered part is at least the steering length.</summary>
    private static EidPrefix LongEid(OracleGen gen)
    {
        while (true)
        {
            var p = AnyEid(gen);
            if (ShardText.Steered(p) is { } s && s.Length >= s.Steering) return p;
        }
    }

    /// <summary>The first block of a prefix: its address with every bit after the mask zero, at host length (the group for (S,G)).</summary>
    private static EidPrefix FirstHost(EidPrefix p, OracleGen gen)
    {
        switch (p.Inner)
        {
            case IpAddress ip:
                return OracleGen.IpPrefix(p.InstanceId, OracleGen.Bits(ip.Address) & OracleGen.MaskOf(p.MaskLength), ip.IsV4, ip.IsV4 ? 32 : 128);
            case MacAddress:
                return OracleGen.MacPrefix(p.InstanceId, OracleGen.AddressBits(p)!.Value.Bits & OracleGen.MaskOf(p.MaskLength), 48);
            case E164Address:
                return OracleGen.E164Prefix(p.InstanceId, OracleGen.AddressBits(p)!.Value.Bits & OracleGen.MaskOf(p.MaskLength), 64);
            case MulticastInfoAddress mi:
            {
                var g = (IpAddress)mi.Group;
                // Any source: the group alone steers.
                bool sV4 = gen.Rng.Next(2) == 0;
                return OracleGen.SourceGroup(p.InstanceId, gen.Random128(), sV4, sV4 ? 32 : 128,
                    OracleGen.Bits(g.Address) & OracleGen.MaskOf(mi.GroupMaskLength), g.IsV4, g.IsV4 ? 32 : 128);
            }
            default:
                return p;
        }
    }

    [Theory]
    [MemberData(nameof(Counts))]
    public void Shards_are_in_range_deterministic_and_only_short_prefixes_are_replicated(int count)
    {
        var gen = new OracleGen(new Random(100 + count));
        var plan = new ShardPlan(count);
        var again = new ShardPlan(count);
        var seen = new HashSet<string>();
        for (int i = 0; i < 4000; i++)
        {
            var eid = AnyEid(gen);
            var key = EidKey.From(eid);
            int owner = plan.ShardOf(key), query = plan.QueryShard(key);
            string at = $"{eid} over {count} shards";
            Assert.InRange(owner, 0, count - 1);
            Assert.InRange(query, 0, count - 1);

            // Deterministic: the same answer again, from another plan, from a key rebuilt from scratch and from the
            // same prefix with host bits set past its mask.
            Assert.Equal(owner, plan.ShardOf(key));
            Assert.Equal(owner, again.ShardOf(EidKey.From(eid)));
            Assert.Equal(query, again.QueryShard(EidKey.From(eid)));
            var dirty = gen.Dirty(eid);
            Assert.True(owner == plan.ShardOf(EidKey.From(dirty)), $"{at}: {dirty} (host bits set) steers elsewhere");
            Assert.True(query == plan.QueryShard(EidKey.From(dirty)), $"{at}: query {dirty} (host bits set) steers elsewhere");

            bool shortPrefix = ShardText.Steered(eid) is { } s && s.Length < s.Steering;
            bool replicated = plan.IsReplicated(key);
            Assert.True(replicated == (count > 1 && shortPrefix), $"{at}: IsReplicated {replicated}, short {shortPrefix}");
            if (count == 1)
            {
                Assert.Equal(0, owner);
                Assert.Equal(0, query);
            }
            if (replicated)
            {
                Assert.True(owner == 0, $"{at}: replicated prefix owned by shard {owner}, not 0");
                // A query shorter than the steering length goes to the shard of its first block.
                var first = FirstHost(eid, gen);
                Assert.True(query == plan.QueryShard(EidKey.From(first)), $"{at}: short query on {query}, its first block {first} on {plan.QueryShard(EidKey.From(first))}");
            }
            else
            {
                Assert.True(owner == query, $"{at}: owner {owner} but a request for it goes to {query}");
            }
            seen.Add(eid.Inner.GetType().Name + (replicated ? "/replicated" : ""));
        }
        // Every kind was drawn (and, sharded, short prefixes of the address kinds and (S,G)).
        foreach (var kind in new[] { "IpAddress", "MacAddress", "E164Address", "DistinguishedName", "GeoCoordinates", "MulticastInfoAddress" })
        {
            Assert.Contains(kind, seen);
            if (count > 1 && kind is not ("DistinguishedName" or "GeoCoordinates")) Assert.Contains(kind + "/replicated", seen);
        }
    }

    [Theory]
    [MemberData(nameof(Counts))]
    public void Every_eid_under_a_prefix_at_least_the_steering_length_is_answered_by_the_prefix_owner(int count)
    {
        var gen = new OracleGen(new Random(200 + count));
        var plan = new ShardPlan(count);
        for (int i = 0; i < 1500; i++)
        {
            var p = LongEid(gen);
            int owner = plan.ShardOf(EidKey.From(p));
            Assert.False(plan.IsReplicated(EidKey.From(p)));
            for (int j = 0; j < 8; j++)
            {
                var inside = gen.Inside(p);
                if (j % 3 == 0) inside = gen.Dirty(inside);
                Assert.True(p.Canonical().Covers(inside.Canonical()), $"generator: {inside} not inside {p}");
                int q = plan.QueryShard(EidKey.From(inside));
                Assert.True(q == owner, $"{count} shards: {p} is owned by shard {owner}, a request for {inside} goes to {q}");
                // A registration of the more-specific lives there too.
                Assert.Equal(owner, plan.ShardOf(EidKey.From(inside)));
            }
        }
    }

    [Theory]
    [MemberData(nameof(Counts))]
    public void Hosts_under_a_replicated_prefix_are_answered_where_their_own_block_lives(int count)
    {
        // A short prefix spans many blocks: shard 0 owns it, and each host in it is answered by its block's shard,
        // which is the shard of every registration at least the steering length around that host.
        var gen = new OracleGen(new Random(300 + count));
        var rng = gen.Rng;
        var plan = new ShardPlan(count);
        for (int i = 0; i < 2000; i++)
        {
            bool v4 = rng.Next(2) == 0;
            var p = OracleGen.IpPrefix(AnyIid(rng), rng.Next(2) == 0 ? gen.Random128() : gen.UnicastBits(v4).Bits, v4, rng.Next(v4 ? 16 : 48));
            Assert.Equal(count > 1, plan.IsReplicated(EidKey.From(p)));
            Assert.Equal(0, plan.ShardOf(EidKey.From(p)));
            for (int j = 0; j < 4; j++)
            {
                var host = ShardText.HostIn(rng, p);
                var ip = (IpAddress)host.Inner;
                var block = OracleGen.IpPrefix(host.InstanceId, OracleGen.Bits(ip.Address), ip.IsV4, v4 ? 16 : 48);
                Assert.True(p.Covers(block) && block.Covers(host), $"generator: {p} {block} {host}");
                Assert.Equal(plan.ShardOf(EidKey.From(block)), plan.QueryShard(EidKey.From(host)));
            }
        }
    }

    [Theory]
    [MemberData(nameof(Counts))]
    public void A_register_its_ack_and_requests_for_its_first_eid_steer_to_one_shard(int count)
    {
        var gen = new OracleGen(new Random(400 + count));
        var rng = gen.Rng;
        var plan = new ShardPlan(count);
        var key = Encoding.UTF8.GetBytes("steering-key");
        for (int i = 0; i < 600; i++)
        {
            var records = Enumerable.Range(0, rng.Next(1, 5))
                .Select(_ => new MappingRecord(rng.Next(4) == 0 ? gen.Dirty(AnyEid(gen)) : AnyEid(gen), [H.Loc("192.0.2.1")], 3))
                .ToList();
            var first = records[0].Eid;
            int owner = plan.ShardOf(EidKey.From(first));
            string at = $"{count} shards, first record {first}";

            var register = new MapRegister
            {
                Nonce = (ulong)i + 1, Algorithm = AuthAlgorithm.HmacSha256_128, Records = records, WantMapNotify = true,
                XtrId = rng.Next(2) == 0 ? null : Enumerable.Repeat((byte)7, 16).ToArray(),
            };
            var decoded = H.Decode<MapRegister>(register.ToSignedBytes(key));
            Assert.True(owner == plan.ShardOf(decoded), $"{at}: Map-Register steered to {plan.ShardOf(decoded)}, its first record's owner is {owner}");

            // The ETR acknowledges with the Map-Notify's records (Etr: Records = notify.Records).
            var notify = new MapNotify { Nonce = register.Nonce, Algorithm = register.Algorithm, Records = decoded.Records, XtrId = register.XtrId };
            var ack = notify with { IsAck = true };
            Assert.True(owner == plan.ShardOf(H.Decode<MapNotify>(ack.ToSignedBytes(key))), $"{at}: Map-Notify-Ack steered elsewhere");
            // A Map-Notify (not an ack) is the xTR's business: shard 0.
            Assert.Equal(0, plan.ShardOf(H.Decode<MapNotify>(notify.ToSignedBytes(key))));

            // A Map-Request for anything inside the first record goes where that record is answered; when the
            // record is not replicated, that is its owner.
            var query = gen.Inside(first.Canonical());
            var request = new MapRequest { Nonce = (ulong)i, ItrRlocs = [IpAddress.Parse("192.0.2.9")], Records = [query] };
            foreach (bool forMs in new[] { true, false })
            {
                var ecm = H.Decode<EncapsulatedControlMessage>(H.Ecm(request, "192.0.2.9", forMs: forMs));
                int q = plan.ShardOf(ecm);
                Assert.Equal(plan.QueryShard(EidKey.From(query)), q);
                if (!plan.IsReplicated(EidKey.From(first))) Assert.True(owner == q, $"{at}: Map-Request for {query} steered to {q}");
                if (count == 1) Assert.Equal(0, q);
            }
            // For the ETR (forwarded by a map-server), plain Map-Requests and Map-Replies: shard 0 (the xTR).
            Assert.Equal(0, plan.ShardOf(H.Decode<EncapsulatedControlMessage>(H.Ecm(request, "192.0.2.9", forEtr: true))));
            Assert.Equal(0, plan.ShardOf(H.Decode<MapRequest>(request.ToBytes())));
            Assert.Equal(0, plan.ShardOf(H.Decode<MapReply>(new MapReply { Nonce = 1, Records = records }.ToBytes())));
        }
    }

    private static void AssertSpread(int count, IEnumerable<EidPrefix> eids, double fairShareFraction, string what)
    {
        var plan = new ShardPlan(count);
        var hist = new int[count];
        int n = 0;
        foreach (var e in eids)
        {
            hist[plan.QueryShard(EidKey.From(e))]++;
            n++;
        }
        for (int s = 0; s < count; s++)
        {
            Assert.True(hist[s] > fairShareFraction * n / count,
                $"{what} over {count} shards: shard {s} got {hist[s]} of {n} ({string.Join("/", hist)})");
        }
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(7)]
    public void Blocks_spread_over_the_shards(int count)
    {
        var gen = new OracleGen(new Random(500 + count));
        var rng = gen.Rng;
        // 10k random IPv4 /32s: each shard gets more than half its fair share (4 shards: more than 12.5%).
        AssertSpread(count, Enumerable.Range(0, 10_000).Select(_ => OracleGen.IpPrefix(0, gen.Random128(), true, 32)).ToList(), 0.5, "random /32s");
        AssertSpread(count, Enumerable.Range(0, 10_000).Select(_ => OracleGen.IpPrefix(0, gen.Random128(), false, 128)).ToList(), 0.5, "random /128s");
        // Neighbouring blocks (one site's 10.0/16 .. 10.255/16, 2001:db8:0..255::/48) spread too.
        AssertSpread(count, Enumerable.Range(0, 256).Select(x => H.E($"[0]10.{x}.1.1/32")).ToList(), 0.4, "10.x.1.1/32");
        AssertSpread(count, Enumerable.Range(0, 256).Select(x => H.E($"[0]2001:db8:{x:x}::1/128")).ToList(), 0.4, "2001:db8:x::1/128");
        // The same address in many instance-ids, MACs, E.164 numbers, names, (S,G) groups.
        AssertSpread(count, Enumerable.Range(0, 2000).Select(x => H.E($"[{x}]10.1.1.1/32")).ToList(), 0.5, "[iid]10.1.1.1");
        AssertSpread(count, Enumerable.Range(0, 2000).Select(_ => OracleGen.MacPrefix(0, gen.Random128(), 48)).ToList(), 0.5, "MACs");
        AssertSpread(count, Enumerable.Range(0, 2000).Select(_ => OracleGen.E164Prefix(0, gen.Random128(), 64)).ToList(), 0.5, "E.164");
        AssertSpread(count, Enumerable.Range(0, 2000).Select(x => OracleGen.Name(0, "host-" + x)).ToList(), 0.5, "names");
        AssertSpread(count, Enumerable.Range(0, 2000)
            .Select(_ => OracleGen.SourceGroup(0, gen.Random128(), true, 32, OracleGen.V4("224.0.0.0") | (gen.Random128() >> 4), true, 32)).ToList(), 0.5, "(S,G)");

        // Hosts of one block never spread: all of 10.7.0.0/16 on one shard.
        var plan = new ShardPlan(count);
        var one = Enumerable.Range(0, 500).Select(_ => plan.QueryShard(EidKey.From(ShardText.HostIn(rng, H.E("[0]10.7.0.0/16"))))).Distinct().ToList();
        Assert.Single(one);
    }

    [Fact]
    public void Four_shards_each_get_more_than_a_tenth_of_10k_random_blocks()
    {
        var gen = new OracleGen(new Random(600));
        var plan = new ShardPlan(4);
        var hist = new int[4];
        for (int i = 0; i < 10_000; i++) hist[plan.QueryShard(EidKey.From(OracleGen.IpPrefix(0, gen.Random128(), true, 32)))]++;
        Assert.All(hist, h => Assert.True(h > 1000, string.Join("/", hist)));
    }
}
