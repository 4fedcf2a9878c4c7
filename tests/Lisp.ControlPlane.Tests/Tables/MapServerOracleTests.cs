using System.Net;
using System.Text;
using Lisp.ControlPlane;
using Lisp.Wire;

namespace Lisp.ControlPlane.Tests.Tables;

/// <summary>
/// <see cref="MapServer"/> fed random signed Map-Registers on an advancing clock, compared after every step with
/// a model that is a plain list of registrations scanned linearly: Lookup (the live registration set of the most
/// specific covering prefix), Holds, Registrations, RegistrationCount, the Map-Notify, and Negative (against
/// <see cref="PrefixMath.LeastSpecificUncovered"/> over registered and configured prefixes, after Tick).
/// </summary>
public class MapServerOracleTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(150);

    private static string Show(EidPrefix eid, string site, byte[]? xtr, IPEndPoint registerer, DateTimeOffset first, DateTimeOffset last, DateTimeOffset expires, IEnumerable<IPAddress> rlocs) =>
        $"{eid} site={site} xtr={(xtr is null ? "-" : Convert.ToHexString(xtr))} from={registerer} first={first:O} last={last:O} expires={expires:O} rlocs={string.Join(",", rlocs)}";

    private static string Show(Registration r) =>
        Show(r.Eid, r.Site, r.XtrId, r.Registerer, r.FirstRegistered, r.LastRegistered, r.ExpiresAt, r.Rlocs.Select(l => ((IpAddress)l.Locator).Address));

    private static string Show(EidPrefix eid, RegistrationModel.Reg r) => Show(eid, r.Site, r.Xtr, r.Registerer, r.First, r.Last, r.Expires, r.Rlocs);

    private static SiteConfig[] Sites(bool siteLimit) =>
    [
        new SiteConfig("a", "key-a",
            [H.E("[0]10.0.0.0/8"), H.E("[0]2001:db8::/32"), H.E("[1]10.0.0.0/8"), H.E("[0]0000-1111-0000/32"), H.E("[0]'dino'")])
        {
            AcceptMoreSpecifics = true,
        },
        // Overlaps site a: 10.1/16 and 10.128/9 lie inside a's 10/8.
        new SiteConfig("b", "key-b", [H.E("[0]10.1.0.0/16"), H.E("[0]10.128.0.0/9"), H.E("[0]2001:db8:8000::/33")])
        {
            AcceptMoreSpecifics = true, MaxRegistrations = siteLimit ? 5 : 0,
        },
        new SiteConfig("c", "key-c", [H.E("[0]172.16.0.0/12")]) { AcceptAnyEid = true },
    ];

    private static readonly IPAddress[] Sources = new[] { "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5" }.Select(IPAddress.Parse).ToArray();
    private static readonly IPAddress[] RlocPool = new[] { "192.0.2.1", "192.0.2.2", "10.0.0.3", "10.0.0.4" }.Select(IPAddress.Parse).ToArray();
    private static readonly int[] Ports = [4342, 5000, 5001];
    private static readonly byte[][] XtrIds = [.. Enumerable.Range(1, 3).Select(i => Enumerable.Repeat((byte)(0x10 * i), 16).ToArray())];

    /// <summary>EIDs the registers draw from: around the sites' prefixes (and a little outside them), every kind.</summary>
    private static List<EidPrefix> Pool(OracleGen gen)
    {
        var rng = gen.Rng;
        var pool = new List<EidPrefix>
        {
            H.E("[0]10.0.0.0/8"), H.E("[0]10.1.0.0/16"), H.E("[0]10.128.0.0/9"), H.E("[0]2001:db8::/32"), H.E("[0]'dino'"), H.E("[0]'other'"),
            H.E("[1]10.0.0.0/8"), H.E("[0]172.16.0.0/12"), H.E("[0]0000-1111-0000/32"),
        };
        var v4 = new[] { OracleGen.V4("10.1.2.0"), OracleGen.V4("10.1.0.0"), OracleGen.V4("10.128.0.0"), OracleGen.V4("10.0.0.0"), OracleGen.V4("172.16.0.0") };
        var v6 = new[] { OracleGen.V6("2001:db8:1::"), OracleGen.V6("2001:db8:8000::"), OracleGen.V6("2001:db8::") };
        for (int i = 0; i < 40; i++)
        {
            pool.Add(rng.Next(10) switch
            {
                < 5 => OracleGen.IpPrefix(rng.Next(5) == 0 ? 1u : 0u, gen.Near(32, v4), true, rng.Next(6, 33)),
                < 8 => OracleGen.IpPrefix(0, gen.Near(128, v6), false, rng.Next(30, 129)),
                8 => OracleGen.MacPrefix(0, gen.Near(48, (UInt128)0x0000_1111_2222UL << 80), rng.Next(30, 49)),
                _ => OracleGen.SourceGroup(0, gen.Near(32, v4), true, rng.Next(3) == 0 ? 0 : rng.Next(8, 33),
                    gen.Near(32, OracleGen.V4("224.1.1.0")), true, rng.Next(4, 33)),
            });
        }
        return pool.Distinct().ToList();
    }

    private static MappingRecord RandomRecord(Random rng, EidPrefix eid)
    {
        uint ttl = rng.Next(20) switch
        {
            < 3 => 0,                                                     // withdraw
            3 => MappingRecord.TtlSecondsFlag,                            // zero seconds: expired as soon as made
            < 10 => (uint)rng.Next(1, 5),                                 // minutes
            _ => MappingRecord.TtlSecondsFlag | (uint)rng.Next(10, 400),  // seconds
        };
        var rlocs = RlocPool.OrderBy(_ => rng.Next()).Take(rng.Next(1, 3)).Select(a => new LocatorRecord(new IpAddress(a))).ToList();
        return new MappingRecord(eid, rlocs, ttl);
    }

    /// <summary>An EID to look up: inside something registered, inside a pool EID, or anywhere near the clusters.</summary>
    private static EidPrefix Query(OracleGen gen, RegistrationModel model, List<EidPrefix> pool) => gen.Rng.Next(4) switch
    {
        < 2 when model.Entries.Count > 0 => gen.Inside(model.Entries.Values.ElementAt(gen.Rng.Next(model.Entries.Count)).Eid),
        2 => gen.Inside(pool[gen.Rng.Next(pool.Count)]),
        _ => gen.Query(pool),
    };

    private static void Run(int seed, bool siteLimit, int maxRegistrations, int steps, NegativePrefixPolicy policy = NegativePrefixPolicy.LeastSpecificUncovered)
    {
        var gen = new OracleGen(new Random(seed));
        var rng = gen.Rng;
        var sites = Sites(siteLimit);
        var ms = new MapServer(new MapServerOptions
        {
            Sites = sites, RegistrationTimeout = Timeout, MaxRegistrations = maxRegistrations, LogLevel = LogLevel.Info, NegativePrefix = policy,
        });
        var model = new RegistrationModel(Timeout, maxRegistrations) { DefaultSiteLimit = RegistrationModel.ShareOf(maxRegistrations, sites.Length) };
        var pool = Pool(gen);
        var local = IPEndPoint.Parse("10.0.0.1:4342");
        var now = H.T0;
        for (int step = 0; step < steps; step++)
        {
            string at = $"seed {seed}, step {step}";
            now += TimeSpan.FromSeconds(rng.Next(4) == 0 ? 0 : rng.Next(1, 25));
            if (rng.Next(3) == 0)
            {
                ms.Tick(now);
                model.Sweep(now);
            }

            // One signed Map-Register.
            var site = sites[rng.Next(10) switch { < 5 => 0, < 8 => 1, _ => 2 }];
            var inside = pool.Where(p => RegistrationModel.SiteCovers(site, p)).ToList();
            var records = Enumerable.Range(0, rng.Next(1, 4))
                .Select(_ => RandomRecord(rng, rng.Next(8) != 0 && inside.Count > 0 ? inside[rng.Next(inside.Count)] : pool[rng.Next(pool.Count)]))
                .ToArray();
            var reg = H.Register((ulong)step + 1, rng.Next(2) == 0 ? AuthAlgorithm.HmacSha256_128 : AuthAlgorithm.HmacSha1_96, records) with
            {
                WantMapNotify = rng.Next(2) == 0,
                UseTtlForTimeout = rng.Next(2) == 0,
                ProxyReply = rng.Next(2) == 0,
                XtrId = rng.Next(2) == 0 ? null : XtrIds[rng.Next(XtrIds.Length)],
                SiteId = (ulong)rng.Next(3),
            };
            var from = new IPEndPoint(Sources[rng.Next(Sources.Length)], Ports[rng.Next(Ports.Length)]);
            var bytes = reg.ToSignedBytes(Encoding.UTF8.GetBytes(site.Key));
            var actions = ms.HandleMapRegister(H.Decode<MapRegister>(bytes), new ReceivedPacket(bytes, from, local), now);
            var (accepted, confirmed) = model.Apply(site, reg, from, now);
            string what = $"{at}: register from {from} site {site.Name} xtr {(reg.XtrId is null ? "-" : Convert.ToHexString(reg.XtrId))} T={reg.UseTtlForTimeout} " +
                string.Join("; ", records.Select(r => $"{r.Eid} ttl {r.TtlRaw:x}"));
            int notifies = H.Sends(actions).Count;
            Assert.True((accepted && confirmed > 0 && reg.WantMapNotify ? 1 : 0) == notifies, $"{what}: {notifies} Map-Notify, oracle accepted={accepted} confirmed={confirmed}");
            if (notifies == 1)
            {
                var notify = H.Decode<MapNotify>(H.Sends(actions)[0].Payload);
                Assert.Equal(confirmed, notify.Records.Count);
            }

            // Held registrations, expired but not yet swept ones included.
            Assert.True(model.Total == ms.RegistrationCount, $"{what}: RegistrationCount {ms.RegistrationCount}, oracle {model.Total}");
            Assert.Equal(model.Live(now).Select(x => Show(x.Eid, x.Reg)).Order(StringComparer.Ordinal).ToList(),
                ms.Registrations(now).Select(Show).Order(StringComparer.Ordinal).ToList());

            // Lookups (no Tick first: expired-but-unswept registrations must not answer).
            for (int i = 0; i < 6; i++)
            {
                var q = Query(gen, model, pool);
                if (rng.Next(5) == 0) q = gen.Dirty(q);   // host bits set past the mask: the same prefix
                var want = model.Lookup(q, now);
                var got = ms.Lookup(q, now);
                var wantText = want is null ? [] : want.Value.Live.Select(r => Show(want.Value.Eid, r)).Order(StringComparer.Ordinal).ToList();
                var gotText = got is null ? [] : got.Select(Show).Order(StringComparer.Ordinal).ToList();
                Assert.True(want is null == got is null && wantText.SequenceEqual(gotText),
                    $"{what}\nLookup({q}) at {now:O}\n got: {(got is null ? "null" : string.Join("\n      ", gotText))}\n want: {(want is null ? "null" : string.Join("\n      ", wantText))}");
                Assert.Equal(want is not null, ms.Holds(q, now));
            }

            // Negative replies, after Tick has swept what expired.
            if (step % 2 == 0)
            {
                ms.Tick(now);
                model.Sweep(now);
                Assert.True(model.Total == ms.RegistrationCount, $"{at}: RegistrationCount after Tick {ms.RegistrationCount}, oracle {model.Total}");
                var sitePrefixes = sites.SelectMany(s => s.EidPrefixes).Select(p => p.Canonical()).ToList();
                for (int i = 0; i < 6; i++)
                {
                    var q = Query(gen, model, pool).Canonical();
                    var neg = ms.Negative(q, now);
                    bool siteCovers = sitePrefixes.Any(p => p.Covers(q));
                    Assert.Equal(siteCovers ? TimeSpan.FromMinutes(1) : TimeSpan.FromMinutes(15), neg.Ttl);
                    Assert.True(neg.IsNegative);
                    if (!q.IsIp)
                    {
                        Assert.Equal(q.ToString(), neg.Eid.ToString());
                        continue;
                    }
                    int minLength = sitePrefixes.Where(p => p.IsIp && p.Covers(q)).Select(p => (int)p.MaskLength).DefaultIfEmpty(0).Max();
                    var obstacles = model.Entries.Values.Select(e => e.Eid).Concat(sitePrefixes.Where(p => !p.Covers(q))).ToList();
                    var want = policy switch
                    {
                        NegativePrefixPolicy.HostLength => EidPrefix.Create(q.InstanceId, q.Inner, ((IpAddress)q.Inner).HostMaskLength),
                        // Never wider than asked, still narrowed around what is registered inside.
                        NegativePrefixPolicy.RequestedPrefix => PrefixMath.LeastSpecificUncovered(q, obstacles, Math.Max(minLength, q.MaskLength)),
                        _ => PrefixMath.LeastSpecificUncovered(q, obstacles, minLength),
                    };
                    Assert.True(want.ToString() == neg.Eid.ToString(),
                        $"{at}: Negative({q}) = {neg.Eid}, oracle {want} (min length {minLength}, registered: {string.Join(", ", model.Entries.Keys)})");
                }
            }
        }

        // Far in the future everything has expired and Tick empties the table.
        now += TimeSpan.FromDays(1);
        ms.Tick(now);
        Assert.Equal(0, ms.RegistrationCount);
        Assert.Empty(ms.Registrations(now));
        foreach (var p in pool) Assert.Null(ms.Lookup(p, now));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void Random_registers_match_the_model(int seed) => Run(seed, siteLimit: false, MapServerOptions.DefaultMaxRegistrations, 500);

    [Theory]
    [InlineData(11)]
    [InlineData(12)]
    public void Random_registers_under_site_and_table_limits_match_the_model(int seed) => Run(seed, siteLimit: true, maxRegistrations: 12, 500);

    [Theory]
    [InlineData(21, NegativePrefixPolicy.RequestedPrefix)]
    [InlineData(22, NegativePrefixPolicy.HostLength)]
    public void Random_registers_match_the_model_under_capped_negative_policies(int seed, NegativePrefixPolicy policy) =>
        Run(seed, siteLimit: false, MapServerOptions.DefaultMaxRegistrations, 400, policy);
}
