using System.Net;
using System.Text;
using Lisp.ControlPlane;
using Lisp.ControlPlane.Tables;
using Lisp.ControlPlane.Tests.Tables;
using Lisp.Wire;

namespace Lisp.ControlPlane.Tests.Sharding;

/// <summary>
/// The map-server's table limit (<see cref="MapServerOptions.MaxRegistrations"/>) held by shards that share one
/// <see cref="RegistrationLimits"/>: random registers against a small limit, invariants checked after every step.
/// </summary>
public class ShardedMapServerLimitsTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(150);
    private static readonly IPEndPoint Local = IPEndPoint.Parse("10.0.0.1:4342");
    private static readonly IPAddress[] Sources = new[] { "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5" }.Select(IPAddress.Parse).ToArray();
    private static readonly byte[][] XtrIds = [.. Enumerable.Range(1, 3).Select(i => Enumerable.Repeat((byte)(0x10 * i), 16).ToArray())];

    // Each site may fill the whole table (an explicit max_registrations = the table's): these tests are about the
    // map-server's limit, not a site's default share of it (issue 12, item 7).
    private static SiteConfig[] Sites(int limit) =>
    [
        new SiteConfig("a", "key-a", [H.E("[0]10.0.0.0/8"), H.E("[0]2001:db8::/32")]) { AcceptMoreSpecifics = true, MaxRegistrations = limit },
        new SiteConfig("c", "key-c", [H.E("[0]192.168.0.0/16")]) { AcceptAnyEid = true, MaxRegistrations = limit },
    ];

    private sealed record Step(MapRegister Register, SiteConfig Site, IPEndPoint From);

    private static Step RandomStep(OracleGen gen, SiteConfig[] sites, List<EidPrefix> pool, int n)
    {
        var rng = gen.Rng;
        var site = sites[rng.Next(4) == 0 ? 1 : 0];
        var inside = pool.Where(p => RegistrationModel.SiteCovers(site, p)).ToList();
        // Distinct EIDs in one message, every record inside the site: each record is accepted or refused on its own.
        var eids = inside.OrderBy(_ => rng.Next()).Take(rng.Next(1, 5)).ToList();
        var records = eids.Select(e =>
        {
            uint ttl = rng.Next(7) == 0 ? 0 : (uint)rng.Next(1, 4);
            return new MappingRecord(e, [new LocatorRecord(new IpAddress(Sources[rng.Next(Sources.Length)]))], ttl);
        }).ToArray();
        var reg = H.Register((ulong)n + 1, AuthAlgorithm.HmacSha256_128, records) with
        {
            WantMapNotify = true,
            XtrId = rng.Next(2) == 0 ? null : XtrIds[rng.Next(XtrIds.Length)],
        };
        return new Step(reg, site, new IPEndPoint(Sources[rng.Next(Sources.Length)], 4342));
    }

    [Theory]
    [InlineData(1, 12)]
    [InlineData(2, 12)]
    [InlineData(3, 30)]
    [InlineData(4, 5)]
    public void Three_shards_never_hold_more_than_the_limit_and_count_every_refusal(int seed, int limit)
    {
        var gen = new OracleGen(new Random(seed));
        var rng = gen.Rng;
        var sites = Sites(limit);
        var sharded = new ShardedMapServers(3, new MapServerOptions
        {
            Sites = sites, RegistrationTimeout = Timeout, MaxRegistrations = limit, LogLevel = LogLevel.Info,
        });
        var pool = ShardedMapServerEquivalenceTests.Pool(gen, 80);
        var now = H.T0;
        int refusedTotal = 0, confirmedTotal = 0, fullSteps = 0;
        for (int n = 0; n < 400; n++)
        {
            now += TimeSpan.FromSeconds(rng.Next(0, 12));
            if (rng.Next(3) == 0) sharded.Drain(0, sharded.Tick(now), now);
            var (reg, site, from) = RandomStep(gen, sites, pool, n);
            var before = sharded.Shard0.Registrations(now).Select(r => r.Eid.Canonical().ToString()).ToHashSet(StringComparer.Ordinal);
            long refusedBefore = sharded.Events(ControlEvent.RegistrationRefused);
            long fullBefore = sharded.Drops(DropReason.RegistrationTableFull);

            var bytes = reg.ToSignedBytes(Encoding.UTF8.GetBytes(site.Key));
            var got = sharded.Deliver(bytes, from, Local, now);
            string what = $"seed {seed}, limit {limit}, step {n}: steered to {got.Shard}, from {from} xtr {(reg.XtrId is null ? "-" : Convert.ToHexString(reg.XtrId))}: " +
                string.Join("; ", reg.Records.Select(r => $"{r.Eid} ttl {r.TtlRaw}"));

            // Never more than the limit, and every reserved slot is a registration held by some shard.
            Assert.True(sharded.Shard0.RegistrationCount <= limit, $"{what}: {sharded.Shard0.RegistrationCount} registrations");
            Assert.True(sharded.Limits.Total <= limit, $"{what}: {sharded.Limits.Total} slots");
            Assert.True(sharded.Limits.Total == sharded.Shard0.RegistrationCount, $"{what}: {sharded.Limits.Total} slots for {sharded.Shard0.RegistrationCount} registrations");
            var regs = sharded.Shard0.Registrations(now);
            Assert.True(regs.Count <= limit, $"{what}: {regs.Count} live registrations");
            if (sharded.Limits.Total == limit) fullSteps++;

            // Each record is confirmed by the (single) Map-Notify, or refused and counted; withdrawals are always confirmed.
            var notifies = got.All.OfType<SendAction>().Select(s => H.Decode<MapNotify>(s.Payload)).ToList();
            Assert.True(notifies.Count <= 1, what);
            var confirmed = notifies.SelectMany(x => x.Records).Select(r => r.Eid.Canonical().ToString()).ToHashSet(StringComparer.Ordinal);
            var refused = reg.Records.Where(r => !confirmed.Contains(r.Eid.Canonical().ToString())).ToList();
            Assert.All(refused, r => Assert.True(r.TtlRaw != 0, $"{what}: withdrawal of {r.Eid} not confirmed"));
            Assert.True(refused.Count == sharded.Events(ControlEvent.RegistrationRefused) - refusedBefore,
                $"{what}: {refused.Count} records missing from the Map-Notify, {sharded.Events(ControlEvent.RegistrationRefused) - refusedBefore} counted refused");
            Assert.Equal(refused.Count, sharded.Drops(DropReason.RegistrationTableFull) - fullBefore);
            refusedTotal += refused.Count;

            // A confirmed registration is held (shard 0's view and the answering shard's lookup); a refused new one is not.
            foreach (var rec in reg.Records)
            {
                var eid = rec.Eid.Canonical();
                string text = eid.ToString();
                var rows = regs.Where(r => r.Eid.Canonical().ToString() == text).ToList();
                if (rec.TtlRaw != 0 && confirmed.Contains(text))
                {
                    confirmedTotal++;
                    Assert.True(rows.Any(r => r.Registerer.Equals(from)), $"{what}: {eid} confirmed but not held from {from}");
                    var found = sharded.Answering(eid).Lookup(eid, now);
                    Assert.True(found is not null && found.Any(r => r.Eid.Canonical().ToString() == text && r.Registerer.Equals(from)),
                        $"{what}: {eid} confirmed but its answering shard does not find it");
                }
                else if (rec.TtlRaw != 0 && !before.Contains(text))
                {
                    Assert.True(rows.Count == 0, $"{what}: refused {eid} is held");
                }
            }
        }
        Assert.True(refusedTotal > 20, $"only {refusedTotal} refusals");
        Assert.True(confirmedTotal > 50, $"only {confirmedTotal} confirmations");
        Assert.True(fullSteps > 20, $"the table was full after only {fullSteps} steps");

        now += TimeSpan.FromDays(1);
        sharded.Drain(0, sharded.Tick(now), now);
        Assert.Equal(0, sharded.Limits.Total);
        Assert.Equal(0, sharded.Shard0.RegistrationCount);
    }

    // ------------------------------------------------------------ minimal cases (fixed EIDs picked by shard)

    /// <summary>The first EID <paramref name="make"/> yields that <paramref name="plan"/> puts on <paramref name="shard"/> (setup only).</summary>
    private static EidPrefix OnShard(ShardPlan plan, int shard, Func<int, EidPrefix> make)
    {
        for (int i = 0; ; i++)
        {
            var e = make(i);
            if (plan.ShardOf(EidKey.From(e)) == shard && !plan.IsReplicated(EidKey.From(e))) return e;
        }
    }

    private static (ShardedMapServers Sharded, MapServer Oracle) Pair(int shards, int limit)
    {
        var options = new MapServerOptions { Sites = Sites(limit), RegistrationTimeout = Timeout, MaxRegistrations = limit, LogLevel = LogLevel.Info };
        return (new ShardedMapServers(shards, options), new MapServer(options));
    }

    private static byte[] Signed(ulong nonce, params MappingRecord[] records) =>
        H.Register(nonce, AuthAlgorithm.HmacSha256_128, records).ToSignedBytes(Encoding.UTF8.GetBytes("key-a"));

    private static List<string> NotifyEids(IEnumerable<ControlAction> actions) =>
        actions.OfType<SendAction>().Select(s => H.Decode<MapNotify>(s.Payload)).SelectMany(n => n.Records).Select(r => r.Eid.ToString()).ToList();

    private static readonly IPEndPoint Etr = IPEndPoint.Parse("10.0.0.2:4342");

    [Fact]
    public void A_refresh_handed_to_another_shard_is_not_refused_at_the_limit()
    {
        // 2 shards, max_registrations 2. One ETR registers [A, X] with A on shard 0 and X on shard 1: both accepted,
        // the table is full. The same Map-Register again (the periodic refresh) must confirm both.
        var (sharded, oracle) = Pair(2, 2);
        var a = OnShard(sharded.Plan, 0, i => H.E($"[0]10.{i}.0.0/24"));
        var x = OnShard(sharded.Plan, 1, i => H.E($"[0]10.{i}.0.0/24"));
        var now = H.T0;
        for (ulong nonce = 1; nonce <= 2; nonce++)
        {
            var bytes = Signed(nonce, new MappingRecord(a, [H.Loc("10.0.0.2")], 3), new MappingRecord(x, [H.Loc("10.0.0.2")], 3));
            var want = oracle.HandleMapRegister(H.Decode<MapRegister>(bytes), new ReceivedPacket(bytes, Etr, Local), now);
            var got = sharded.Deliver(bytes, Etr, Local, now);
            Assert.Equal(0, got.Shard);
            Assert.Equal([a.ToString(), x.ToString()], NotifyEids(want));
            Assert.Equal(NotifyEids(want), NotifyEids(got.All));
            Assert.Equal(0, sharded.Events(ControlEvent.RegistrationRefused));
            now += TimeSpan.FromSeconds(60);
        }
        // Both still registered after the first registration's timeout (150 s), as the refresh at 60 s moved it.
        now = H.T0 + TimeSpan.FromSeconds(170);
        oracle.Tick(now);
        sharded.Tick(now);
        Assert.Equal(2, oracle.RegistrationCount);
        Assert.Equal(2, sharded.Shard0.RegistrationCount);
    }

    [Fact]
    public void A_new_record_is_not_refused_below_the_limit_because_of_a_foreign_refresh()
    {
        // 2 shards, max_registrations 3, X (shard 1) and B (shard 0) registered: 2 of 3 slots used. Then [B (refresh),
        // X (refresh, handed to shard 1), N (new, shard 0)]: N fits (3 of 3) and must be confirmed.
        var (sharded, oracle) = Pair(2, 3);
        var b = OnShard(sharded.Plan, 0, i => H.E($"[0]10.{i}.0.0/24"));
        var x = OnShard(sharded.Plan, 1, i => H.E($"[0]10.{i}.0.0/24"));
        var nNew = OnShard(sharded.Plan, 0, i => H.E($"[0]10.{i}.1.0/24"));
        var now = H.T0;
        var rb = new MappingRecord(b, [H.Loc("10.0.0.2")], 3);
        var rx = new MappingRecord(x, [H.Loc("10.0.0.2")], 3);
        var rn = new MappingRecord(nNew, [H.Loc("10.0.0.2")], 3);
        foreach (var (nonce, records) in new[] { (1UL, new[] { rb, rx }), (2UL, new[] { rb, rx, rn }) })
        {
            var bytes = Signed(nonce, records);
            var want = oracle.HandleMapRegister(H.Decode<MapRegister>(bytes), new ReceivedPacket(bytes, Etr, Local), now);
            var got = sharded.Deliver(bytes, Etr, Local, now);
            Assert.Equal(records.Select(r => r.Eid.ToString()), NotifyEids(want));
            Assert.Equal(NotifyEids(want), NotifyEids(got.All));
        }
        Assert.Equal(3, oracle.RegistrationCount);
        Assert.Equal(3, sharded.Shard0.RegistrationCount);
        Assert.Equal(0, sharded.Events(ControlEvent.RegistrationRefused));
    }

    [Fact]
    public void A_refused_short_prefix_is_not_replicated()
    {
        // 2 shards, max_registrations 1, full with X. A Map-Register for [10.0.0.0/8] (short: owned by shard 0, steered
        // there) is refused; no shard may then find it.
        var (sharded, oracle) = Pair(2, 1);
        var x = OnShard(sharded.Plan, 1, i => H.E($"[0]2001:db8:{i:x}::/48"));
        var now = H.T0;
        var first = Signed(1, new MappingRecord(x, [H.Loc("10.0.0.2")], 3));
        oracle.HandleMapRegister(H.Decode<MapRegister>(first), new ReceivedPacket(first, Etr, Local), now);
        sharded.Deliver(first, Etr, Local, now);

        var slash8 = H.E("[0]10.0.0.0/8");
        var bytes = Signed(2, new MappingRecord(slash8, [H.Loc("10.0.0.2")], 3));
        var want = oracle.HandleMapRegister(H.Decode<MapRegister>(bytes), new ReceivedPacket(bytes, Etr, Local), now);
        var got = sharded.Deliver(bytes, Etr, Local, now);
        Assert.Equal(0, got.Shard);
        Assert.Empty(NotifyEids(want));
        Assert.Empty(NotifyEids(got.All));
        Assert.Equal(1, sharded.Events(ControlEvent.RegistrationRefused));
        Assert.Equal(1, sharded.Shard0.RegistrationCount);

        // A host under 10/8 whose block is answered by shard 1.
        var host = OnShard(sharded.Plan, 1, i => H.E($"[0]10.{i}.0.1/32"));
        Assert.Null(oracle.Lookup(host, now));
        Assert.Null(sharded.Answering(host).Lookup(host, now));
        foreach (var s in sharded.Shards) Assert.Null(s.Lookup(slash8, now));
    }

    [Fact]
    public void A_map_notify_whose_first_record_was_refused_is_sent_once_and_confirms_only_the_rest()
    {
        // 2 shards, max_registrations 1, full with X (shard 0). Map-Register [N (new, shard 0: refused), W (withdrawal, shard 1)]:
        // steered to shard 0; the Map-Notify, sent once by the last shard to answer, confirms [W] only. It is the
        // Map-Register's acknowledgement (RFC 9301 5.7): nothing is retransmitted, and an old-style ETR's Ack for it
        // is counted as a stale nonce on whichever shard it is steered to.
        var (sharded, oracle) = Pair(2, 1);
        var x = OnShard(sharded.Plan, 0, i => H.E($"[0]10.{i}.0.0/24"));
        var nNew = OnShard(sharded.Plan, 0, i => H.E($"[0]10.{i}.1.0/24"));
        var w = OnShard(sharded.Plan, 1, i => H.E($"[0]10.{i}.2.0/24"));
        var now = H.T0;
        var first = Signed(1, new MappingRecord(x, [H.Loc("10.0.0.2")], 3));
        sharded.Deliver(first, Etr, Local, now);
        oracle.HandleMapRegister(H.Decode<MapRegister>(first), new ReceivedPacket(first, Etr, Local), now);

        var bytes = Signed(2, new MappingRecord(nNew, [H.Loc("10.0.0.2")], 3), new MappingRecord(w, [], 0));
        var want = oracle.HandleMapRegister(H.Decode<MapRegister>(bytes), new ReceivedPacket(bytes, Etr, Local), now);
        var got = sharded.Deliver(bytes, Etr, Local, now);
        Assert.Equal(0, got.Shard);
        Assert.Equal([w.ToString()], NotifyEids(want));
        Assert.Equal([w.ToString()], NotifyEids(got.All));
        Assert.Single(got.All.OfType<SendAction>());
        Assert.All(sharded.Shards, s => Assert.True(s.NextDeadline is null || s.NextDeadline > now.AddMinutes(1)));   // only expiry timers
        Assert.Empty(sharded.Tick(now.AddSeconds(10)).OfType<SendAction>());

        var notify = H.Decode<MapNotify>(got.All.OfType<SendAction>().Single().Payload);
        var ack = (notify with { IsAck = true }).ToSignedBytes(Encoding.UTF8.GetBytes("key-a"));
        var ackd = sharded.Deliver(ack, Etr, Local, now);
        Assert.Equal(1, ackd.Shard);
        Assert.Equal(1, sharded.Drops(DropReason.StaleNonce));
    }
}
