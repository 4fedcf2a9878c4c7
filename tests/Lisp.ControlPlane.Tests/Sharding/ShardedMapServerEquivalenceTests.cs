using System.Net;
using System.Text;
using Lisp.ControlPlane;
using Lisp.ControlPlane.Tables;
using Lisp.ControlPlane.Tests.Tables;
using Lisp.Wire;

namespace Lisp.ControlPlane.Tests.Sharding;

/// <summary>
/// N sharded map-servers (host delivery emulated by <see cref="ShardedMapServers"/>) against one unsharded
/// <see cref="MapServer"/> as oracle (itself tested against a linear scan in MapServerOracleTests), fed the same
/// random signed Map-Registers on a fake clock. After every step: the Map-Notify records, shard 0's
/// RegistrationCount and Registrations, the answering shard's Lookup, Map-Requests steered through the plan,
/// Map-Notify-Acks steered through the plan, and negative replies (never wider than the oracle's, holding no
/// registered prefix, checked against a model list of live prefixes).
/// </summary>
public class ShardedMapServerEquivalenceTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(150);
    private static readonly IPEndPoint Local = IPEndPoint.Parse("10.0.0.1:4342");

    internal static SiteConfig[] Sites() =>
    [
        // Short site prefixes (/8, /12, /16 MAC, /32 IPv6): registered as they are, they are replicated.
        new SiteConfig("a", "key-a",
            [H.E("[0]10.0.0.0/8"), H.E("[0]2001:db8::/32"), H.E("[1]10.0.0.0/8"), H.E("[0]0000-1111-0000/16"), H.E("[0]'dino'")])
        {
            AcceptMoreSpecifics = true,
        },
        // Inside a's 10/8 (the first site whose key verifies wins, as in the unsharded server).
        new SiteConfig("b", "key-b", [H.E("[0]10.16.0.0/12"), H.E("[0]172.16.0.0/12"), H.E("[0]2001:db8:8000::/33")])
        {
            AcceptMoreSpecifics = true,
        },
        // Anything (names, E.164, (S,G), prefixes shorter than /8).
        new SiteConfig("c", "key-c", [H.E("[0]192.168.0.0/16")]) { AcceptAnyEid = true },
    ];

    private static readonly IPAddress[] Sources = new[] { "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5" }.Select(IPAddress.Parse).ToArray();
    private static readonly IPAddress[] RlocPool = new[] { "192.0.2.1", "192.0.2.2", "10.0.0.3", "10.0.0.4" }.Select(IPAddress.Parse).ToArray();
    private static readonly int[] Ports = [4342, 5000, 5001];
    private static readonly byte[][] XtrIds = [.. Enumerable.Range(1, 3).Select(i => Enumerable.Repeat((byte)(0x10 * i), 16).ToArray())];

    private static readonly UInt128[] V4Bases =
        [OracleGen.V4("10.0.0.0"), OracleGen.V4("10.1.2.0"), OracleGen.V4("10.16.0.0"), OracleGen.V4("10.17.5.0"), OracleGen.V4("172.16.0.0"),
         OracleGen.V4("172.20.9.0"), OracleGen.V4("192.168.1.0")];
    private static readonly UInt128[] V6Bases = [OracleGen.V6("2001:db8::"), OracleGen.V6("2001:db8:1::"), OracleGen.V6("2001:db8:8000::")];

    /// <summary>EIDs the registers draw from: around the sites, every kind, many lengths on both sides of the steering length.</summary>
    internal static List<EidPrefix> Pool(OracleGen gen, int size = 60)
    {
        var rng = gen.Rng;
        var pool = new List<EidPrefix>
        {
            H.E("[0]10.0.0.0/8"), H.E("[0]10.16.0.0/12"), H.E("[0]10.0.0.0/14"), H.E("[0]10.1.0.0/16"), H.E("[0]172.16.0.0/12"),
            H.E("[0]2001:db8::/32"), H.E("[0]2001:db8:8000::/33"), H.E("[1]10.0.0.0/8"), H.E("[0]0000-1111-0000/16"), H.E("[0]0000-1111-2200/24"),
            H.E("[0]'dino'"), H.E("[0]'other'"), H.E("[0]64.0.0.0/2"), H.E("[0]192.168.0.0/16"),
            OracleGen.E164Prefix(0, (UInt128)0x0001_2233_0000_0000UL << 64, 16), OracleGen.E164Prefix(0, (UInt128)0x0001_2233_4455_0000UL << 64, 48),
            OracleGen.SourceGroup(0, 0, true, 0, OracleGen.V4("224.0.0.0"), true, 4),
        };
        for (int i = 0; i < size; i++)
        {
            pool.Add(rng.Next(12) switch
            {
                < 3 => OracleGen.IpPrefix(rng.Next(6) == 0 ? 1u : 0u, gen.Near(32, V4Bases), true, rng.Next(8, 16)),
                < 6 => OracleGen.IpPrefix(rng.Next(6) == 0 ? 1u : 0u, gen.Near(32, V4Bases), true, rng.Next(16, 33)),
                < 8 => OracleGen.IpPrefix(0, gen.Near(128, V6Bases), false, rng.Next(32, 129)),
                8 => OracleGen.MacPrefix(0, gen.Near(48, (UInt128)0x0000_1111_2222UL << 80), rng.Next(16, 49)),
                9 => OracleGen.E164Prefix(0, gen.Near(64, (UInt128)0x0001_2233_4455_6677UL << 64), rng.Next(16, 65)),
                10 => OracleGen.Name(rng.Next(4) == 0 ? 7u : 0u, "n" + rng.Next(6)),
                _ => OracleGen.SourceGroup(0, gen.Near(32, V4Bases), true, rng.Next(3) == 0 ? 0 : rng.Next(8, 33),
                    gen.Near(32, OracleGen.V4("224.1.1.0"), OracleGen.V4("239.255.0.0")), true, rng.Next(4, 33)),
            });
        }
        return pool.Select(p => p.Canonical()).Distinct().ToList();
    }

    internal static MappingRecord RandomRecord(Random rng, EidPrefix eid, bool withdrawals = true)
    {
        uint ttl = rng.Next(20) switch
        {
            < 3 when withdrawals => 0,                                    // withdraw
            3 => MappingRecord.TtlSecondsFlag | (uint)rng.Next(0, 3),     // (almost) expired as soon as made
            < 10 => (uint)rng.Next(1, 5),                                 // minutes
            _ => MappingRecord.TtlSecondsFlag | (uint)rng.Next(10, 400),  // seconds
        };
        var rlocs = RlocPool.OrderBy(_ => rng.Next()).Take(rng.Next(1, 3)).Select(a => new LocatorRecord(new IpAddress(a))).ToList();
        return new MappingRecord(eid, rlocs, ttl);
    }

    private static EidPrefix Query(OracleGen gen, RegistrationModel model, List<EidPrefix> pool)
    {
        var rng = gen.Rng;
        var q = rng.Next(5) switch
        {
            < 2 when model.Entries.Count > 0 => gen.Inside(model.Entries.Values.ElementAt(rng.Next(model.Entries.Count)).Eid),
            2 => gen.Inside(pool[rng.Next(pool.Count)]),
            3 => OracleGen.IpPrefix(0, gen.Near(32, V4Bases), true, rng.Next(4) == 0 ? rng.Next(4, 33) : 32),
            _ => gen.Query(pool),
        };
        return rng.Next(5) == 0 ? gen.Dirty(q) : q;
    }

    private static void Run(int shards, int seed, int steps)
    {
        var gen = new OracleGen(new Random(seed));
        var rng = gen.Rng;
        var sites = Sites();
        var options = new MapServerOptions { Sites = sites, RegistrationTimeout = Timeout, LogLevel = LogLevel.Info };
        var oracle = new MapServer(options);
        var sharded = new ShardedMapServers(shards, options);
        var model = new RegistrationModel(Timeout);
        var pool = Pool(gen);
        var now = H.T0;
        int handoffs = 0, replicatedRegistered = 0, foreignRecords = 0, negatives = 0, acks = 0;

        for (int step = 0; step < steps; step++)
        {
            string at = $"{shards} shards, seed {seed}, step {step}";
            now += TimeSpan.FromSeconds(rng.Next(4) == 0 ? 0 : rng.Next(1, 25));
            if (rng.Next(3) == 0)
            {
                oracle.Tick(now);
                Assert.Empty(sharded.Drain(0, sharded.Tick(now), now).Actions.OfType<ShardHandoffAction>());
                model.Sweep(now);
            }

            // One signed Map-Register, delivered to the oracle and (steered) to the shards.
            var site = sites[rng.Next(10) switch { < 5 => 0, < 8 => 1, _ => 2 }];
            var inside = pool.Where(p => RegistrationModel.SiteCovers(site, p)).ToList();
            var records = Enumerable.Range(0, rng.Next(1, 5))
                .Select(_ => RandomRecord(rng, rng.Next(10) != 0 && inside.Count > 0 ? inside[rng.Next(inside.Count)] : pool[rng.Next(pool.Count)]))
                .ToArray();
            var reg = H.Register((ulong)step + 1, rng.Next(2) == 0 ? AuthAlgorithm.HmacSha256_128 : AuthAlgorithm.HmacSha1_96, records) with
            {
                WantMapNotify = rng.Next(3) != 0,
                UseTtlForTimeout = rng.Next(2) == 0,
                ProxyReply = rng.Next(2) == 0,
                XtrId = rng.Next(2) == 0 ? null : XtrIds[rng.Next(XtrIds.Length)],
                SiteId = (ulong)rng.Next(3),
            };
            var from = new IPEndPoint(Sources[rng.Next(Sources.Length)], Ports[rng.Next(Ports.Length)]);
            var bytes = reg.ToSignedBytes(Encoding.UTF8.GetBytes(site.Key));
            var want = oracle.HandleMapRegister(H.Decode<MapRegister>(bytes), new ReceivedPacket(bytes, from, Local), now);
            var got = sharded.Deliver(bytes, from, Local, now);
            model.Apply(site, reg, from, now);
            handoffs += got.Handoffs;
            foreignRecords += records.Count(r => sharded.Plan.ShardOf(EidKey.From(r.Eid)) != got.Shard);
            string what = $"{at}: register from {from} site {site.Name} xtr {(reg.XtrId is null ? "-" : Convert.ToHexString(reg.XtrId))} " +
                $"T={reg.UseTtlForTimeout} M={reg.WantMapNotify} steered to {got.Shard}: " + string.Join("; ", records.Select(r => $"{r.Eid} ttl {r.TtlRaw:x}"));

            // The Map-Notify: sent by the steering shard alone, confirming the records the oracle confirms.
            Assert.True(ShardText.Notifies(got.All).Count <= 1, $"{what}: more than one Map-Notify for one Map-Register");
            var wantNotifies = ShardText.Notifies(want);
            var gotNotifies = ShardText.Notifies(got.All);
            Assert.True(wantNotifies.Count == gotNotifies.Count && wantNotifies.Zip(gotNotifies).All(x => x.First.SequenceEqual(x.Second)),
                $"{what}\n Map-Notify records got: {Fmt(gotNotifies)}\n want: {Fmt(wantNotifies)}");
            Assert.Equal(oracle.Counters.Events(ControlEvent.RegistrationAccepted), sharded.Events(ControlEvent.RegistrationAccepted));

            // An old-style ETR acknowledges (sometimes): the ack is steered like any datagram and counted, never matched.
            if (gotNotifies.Count == 1 && rng.Next(3) != 0)
            {
                var notify = H.Decode<MapNotify>(got.All.OfType<SendAction>().Single().Payload);
                var ackBytes = new MapNotify
                {
                    IsAck = true, Nonce = notify.Nonce, KeyId = notify.KeyId, Algorithm = notify.Algorithm, Records = notify.Records,
                    XtrId = notify.XtrId, SiteId = notify.SiteId,
                }.ToSignedBytes(Encoding.UTF8.GetBytes(site.Key));
                oracle.HandleMapNotifyAck(H.Decode<MapNotify>(ackBytes), new ReceivedPacket(ackBytes, from, Local), now);
                var ackd = sharded.Deliver(ackBytes, from, Local, now);
                Assert.True(ackd.Shard == got.Shard, $"{what}: Map-Notify-Ack steered to {ackd.Shard}, the Map-Notify came from {got.Shard}");
                acks++;
            }
            // A Map-Notify answering a Map-Register awaits no Ack (RFC 9301 5.7): an old-style ETR's Ack is a counted stale nonce.
            Assert.Equal(oracle.Counters.Drops(DropReason.StaleNonce), sharded.Drops(DropReason.StaleNonce));

            // Counts and the whole table, as shard 0 shows them (expired but not yet swept ones included in the count).
            Assert.True(oracle.RegistrationCount == sharded.Shard0.RegistrationCount,
                $"{what}: shard 0 RegistrationCount {sharded.Shard0.RegistrationCount}, oracle {oracle.RegistrationCount}");
            Assert.True(sharded.Limits.Total == sharded.Shard0.RegistrationCount,
                $"{what}: {sharded.Limits.Total} slots reserved for {sharded.Shard0.RegistrationCount} registrations");
            var wantRegs = ShardText.Show(oracle.Registrations(now));
            var gotRegs = ShardText.Show(sharded.Shard0.Registrations(now));
            Assert.True(wantRegs.SequenceEqual(gotRegs), $"{what}\n shard 0 Registrations:\n  {string.Join("\n  ", gotRegs)}\n oracle:\n  {string.Join("\n  ", wantRegs)}");
            // The management API's sliced read (3 EIDs per slice, resumed across every shard) sees the same registrations, each once.
            var sliced = new List<Registration>();
            MapServer.RegistrationCursor? cursor = default(MapServer.RegistrationCursor);
            for (int guard = 0; cursor is { } c && guard < 100_000; guard++) cursor = sharded.Shard0.RegistrationsSlice(c, 3, now, sliced);
            Assert.Null(cursor);
            Assert.Equal(wantRegs.Order(StringComparer.Ordinal), ShardText.Show(sliced).Order(StringComparer.Ordinal));
            Assert.Equal(model.LivePrefixes(now).Select(p => p.ToString()).Order(StringComparer.Ordinal).Distinct(),
                oracle.Registrations(now).Select(r => r.Eid.Canonical().ToString()).Order(StringComparer.Ordinal).Distinct());
            replicatedRegistered += oracle.Registrations(now).Count(r => sharded.Plan.IsReplicated(EidKey.From(r.Eid)));

            // Lookups on the answering shard (no Tick first: expired but unswept registrations must not answer).
            for (int i = 0; i < 8; i++)
            {
                var q = Query(gen, model, pool);
                var answering = sharded.Answering(q);
                var w = ShardText.Show(oracle.Lookup(q, now));
                var g = ShardText.Show(answering.Lookup(q, now));
                Assert.True(w.SequenceEqual(g) && (oracle.Lookup(q, now) is null) == (answering.Lookup(q, now) is null),
                    $"{what}\nLookup({q}) on shard {sharded.Plan.QueryShard(EidKey.From(q))}\n got: {string.Join("\n      ", g)}\n want: {string.Join("\n      ", w)}");
            }

            // Map-Requests steered through the plan: the same kind of answer to the same place.
            for (int i = 0; i < 2; i++)
            {
                var q = Query(gen, model, pool);
                var request = H.Request((ulong)(1000 * step + i), "192.0.2.77", "192.0.2.77") with { Records = [q] };
                var ecm = H.Ecm(request, "192.0.2.77", forMs: true);
                var itr = IPEndPoint.Parse("192.0.2.77:4342");
                var wantSend = oracle.HandleMapRequest(H.Decode<EncapsulatedControlMessage>(ecm), request, new ReceivedPacket(ecm, itr, Local), now)
                    .OfType<SendAction>().Single();
                var gotD = sharded.Deliver(ecm, itr, Local, now);
                Assert.Equal(0, gotD.Handoffs);
                var gotSend = gotD.Direct.OfType<SendAction>().Single();
                Assert.True(wantSend.To.Equals(gotSend.To), $"{what}: Map-Request for {q} answered to {gotSend.To}, oracle {wantSend.To}");
                Assert.Equal(Describe(wantSend.Payload, exactNegative: !q.IsIp), Describe(gotSend.Payload, exactNegative: !q.IsIp));
            }

            // Negative replies, after every shard and the oracle swept what expired.
            if (step % 2 == 0)
            {
                oracle.Tick(now);
                sharded.Drain(0, sharded.Tick(now), now);
                model.Sweep(now);
                var live = model.LivePrefixes(now);
                for (int i = 0; i < 8; i++)
                {
                    var q = Query(gen, model, pool).Canonical();
                    // Nothing registered covers the query, and (for a prefix query) nothing registered lies inside it: a
                    // prefix query holding registrations is answered about its address by the unsharded server too
                    // (MapServerOracleTests), which is not what this checks.
                    if (oracle.Lookup(q, now) is not null || live.Any(r => q.Covers(r))) continue;
                    negatives++;
                    var answering = sharded.Answering(q);
                    var neg = answering.Negative(q, now);
                    var oneg = oracle.Negative(q, now);
                    string n = $"{what}\nNegative({q}) on shard {sharded.Plan.QueryShard(EidKey.From(q))} = {neg.Eid}, oracle {oneg.Eid}";
                    Assert.True(neg.IsNegative, n);
                    Assert.Equal(oneg.Ttl, neg.Ttl);
                    Assert.Equal(oneg.Action, neg.Action);
                    if (!q.IsIp)
                    {
                        Assert.True(q.ToString() == neg.Eid.ToString(), n);
                        continue;
                    }
                    var ip = (IpAddress)q.Inner;
                    var host = OracleGen.IpPrefix(q.InstanceId, OracleGen.Bits(ip.Address), ip.IsV4, ip.HostMaskLength);
                    // About the query: covers it, or (a query shorter than the steering block) lies inside it around its first block.
                    Assert.True(neg.Eid.Covers(q) || (q.MaskLength < ShardText.SteeringBits(ip) && q.Covers(neg.Eid) && neg.Eid.Covers(host)), n);
                    // Never wider than the oracle's (inside it), and vouches for nothing registered.
                    Assert.True(oneg.Eid.Covers(neg.Eid), n + " (wider than the oracle's)");
                    foreach (var r in live)
                    {
                        Assert.False(neg.Eid.Covers(r) && !r.Covers(q), $"{n}: holds registered {r}");
                        Assert.False(r.Covers(neg.Eid), $"{n}: inside registered {r}");
                    }
                }
            }
        }

        // Far in the future everything has expired: every shard's table (replicas included) and the limits are empty.
        now += TimeSpan.FromDays(1);
        oracle.Tick(now);
        sharded.Drain(0, sharded.Tick(now), now);
        Assert.Equal(0, oracle.RegistrationCount);
        Assert.Equal(0, sharded.Shard0.RegistrationCount);
        Assert.Equal(0, sharded.Limits.Total);
        Assert.Empty(sharded.Shard0.Registrations(now));
        foreach (var s in sharded.Shards)
        {
            foreach (var p in pool) Assert.Null(s.Lookup(p, now));
        }

        // The run exercised what it is about.
        Assert.True(handoffs > steps / 4, $"only {handoffs} handoffs");
        Assert.True(foreignRecords > steps / 4, $"only {foreignRecords} records owned by another shard");
        Assert.True(replicatedRegistered > steps / 4, $"only {replicatedRegistered} replicated registrations seen");
        Assert.True(negatives > steps / 4, $"only {negatives} negative replies checked");
        Assert.True(acks > steps / 8, $"only {acks} acks");
    }

    private static string Fmt(List<List<string>> notifies) => string.Join(" | ", notifies.Select(n => string.Join(", ", n)));

    /// <summary>A Map-Request's answer as text: forwarded ECM, proxy reply (EID and locator set) or negative (EID only when exact).</summary>
    private static string Describe(byte[] payload, bool exactNegative)
    {
        var m = ShardText.Decode(payload);
        switch (m)
        {
            case EncapsulatedControlMessage e:
                return $"forwarded {((MapRequest)e.Message).Records[0]} for-etr={e.ForEtr}";
            case MapReply r:
                var rec = r.Records.Single();
                if (rec.IsNegative) return exactNegative ? $"negative {rec.Eid} ttl {rec.TtlRaw:x}" : $"negative ttl {rec.TtlRaw:x}";
                return $"reply {rec.Eid} ttl {rec.TtlRaw:x} " + string.Join(",", rec.Locators.Select(l => l.Locator.ToText()).Order(StringComparer.Ordinal));
            default:
                return m.Type.ToString();
        }
    }

    [Theory]
    [InlineData(2, 1)]
    [InlineData(2, 2)]
    [InlineData(3, 3)]
    [InlineData(3, 4)]
    [InlineData(4, 5)]
    [InlineData(4, 6)]
    public void Sharded_map_servers_answer_like_one(int shards, int seed) => Run(shards, seed, 400);
}
