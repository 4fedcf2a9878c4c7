using System.Buffers.Binary;
using System.Net;
using Lisp.MapCache;
using Lisp.Wire;
using Xunit;

namespace Lisp.MapCache.Tests;

/// <summary>
/// <see cref="MapCacheSnapshot.LookupV4Batch"/> / <see cref="MapCacheSnapshot.LookupV6Batch"/> (a prefetching
/// pipeline on x86) against the single lookups, field by field, over random tables: several instance-ids,
/// prefix lengths on both sides of the DIR strides, positive mappings with different weighted locator sets (so
/// the flow-hash RLOC choice differs between mappings), negative mappings, an all-unreachable set, misses, and
/// every batch size 1..300. The single lookups themselves are checked against the linear-scan oracle on a sample.
/// </summary>
public class BatchLookupTests
{
    private static readonly uint[] Iids = [0, 7, 1_000_000];

    private static readonly RlocSpec[][] Sets =
    [
        [new(IPAddress.Parse("192.0.2.1"), 1, 100)],
        [new(IPAddress.Parse("192.0.2.2"), 1, 30), new(IPAddress.Parse("192.0.2.3"), 1, 70)],
        [new(IPAddress.Parse("192.0.2.4"), 1, 10), new(IPAddress.Parse("192.0.2.5"), 1, 20), new(IPAddress.Parse("2001:db8::5"), 1, 70)],
        [new(IPAddress.Parse("192.0.2.6"), 1, 50, Reachable: false)],   // no usable RLOC
    ];

    private static readonly MapReplyAction[] Actions = [MapReplyAction.Drop, MapReplyAction.NativelyForward, MapReplyAction.SendMapRequest];

    public static TheoryData<string> Layouts => Oracle.Layouts;

    [Theory]
    [MemberData(nameof(Layouts))]
    public void Ipv4BatchEqualsSingleLookups(string layout)
    {
        var rng = new Random(layout.Length * 101 + 5);
        var w = new MapCacheWriter(Oracle.Options(layout));
        var held = new Dictionary<uint, List<(uint Addr, int Len, int Slot)>>();
        var all = new List<(uint Addr, int Len)>();
        foreach (uint iid in Iids)
        {
            var list = held[iid] = new();
            // The hash layout stays small (it is the < 64 prefixes layout); the DIR layouts get enough to have longer-prefix blocks.
            int count = layout == "hash" ? 50 : 3000;
            foreach (var (a, l) in Oracle.RandomV4Prefixes(rng, count))
            {
                int slot = rng.Next(5) == 0
                    ? w.AddOrReplaceNegativeV4(iid, a, l, Actions[rng.Next(Actions.Length)], 30, 0)
                    : w.AddOrReplaceV4(iid, a, l, Sets[rng.Next(Sets.Length)], 60, 0);
                list.Add((a, l, slot));
                all.Add((a, l));
            }
        }
        var s = w.Publish();
        Assert.Equal(Oracle.Expected(layout), s.V4LayoutOf(0));

        var dst = Oracle.Destinations(rng, all, 20_000);
        var flows = new uint[dst.Length];
        for (int i = 0; i < flows.Length; i++) flows[i] = (uint)rng.NextInt64();

        // Single lookups against the independent oracle first (sample), so "equal to single" means "correct".
        for (int i = 0; i < 500; i++)
        {
            uint iid = Iids[i % Iids.Length];
            int want = Oracle.LinearV4(held[iid], dst[i]);
            Assert.Equal(want, s.TryLookupV4(iid, dst[i], flows[i], out var r) ? r.EntryIndex : -1);
        }

        AssertBatchEqualsSingles(dst, flows, rng, s.LookupV4Batch, s.TryLookupV4);
    }

    [Fact]
    public void Ipv6BatchEqualsSingleLookups()
    {
        var rng = new Random(66);
        var w = new MapCacheWriter();
        var held = new Dictionary<uint, List<(V6Key Addr, int Len, int Slot)>>();
        var all = new List<(V6Key Addr, int Len)>();
        ulong[] roots = [0x2001_0db8_0000_0000UL, 0x2001_0db8_ab00_0000UL, 0xfd00_1234_0000_0000UL];
        foreach (uint iid in Iids)
        {
            var list = held[iid] = new();
            var keys = new HashSet<(V6Key, int)>();
            while (list.Count < 1500)
            {
                int r = rng.Next(100);
                // Lengths in every tier of V6Lpm: /0-/16, /17-/48, /49-/112 and /113-/128.
                int len = r < 3 ? rng.Next(0, 17) : r < 30 ? rng.Next(17, 49) : r < 80 ? rng.Next(49, 113) : rng.Next(113, 129);
                var raw = new V6Key(roots[rng.Next(roots.Length)] | ((ulong)rng.NextInt64() & 0xffff_ffffUL), (ulong)rng.NextInt64());
                var a = Oracle.MaskV6(raw, len);
                if (!keys.Add((a, len))) continue;
                int slot = rng.Next(5) == 0
                    ? w.AddOrReplaceNegative(EidPrefix.Parse($"[{iid}]{ToIp(a)}/{len}"), Actions[rng.Next(Actions.Length)], 30, 0)
                    : w.AddOrReplaceV6(iid, a, len, Sets[rng.Next(Sets.Length)], 60, 0);
                list.Add((a, len, slot));
                all.Add((a, len));
            }
        }
        var s = w.Publish();

        var dst = new V6Key[20_000];
        for (int i = 0; i < dst.Length; i++)
        {
            var x = new V6Key((ulong)rng.NextInt64(), (ulong)rng.NextInt64());
            if (i % 3 == 0)
            {
                var (a, l) = all[rng.Next(all.Count)];
                var m = Oracle.MaskV6(new V6Key(ulong.MaxValue, ulong.MaxValue), l);
                dst[i] = new V6Key(a.Hi | (x.Hi & ~m.Hi), a.Lo | (x.Lo & ~m.Lo));   // inside a held prefix
            }
            else if (i % 3 == 1) dst[i] = new V6Key(roots[rng.Next(roots.Length)] | (x.Hi & 0xffff_ffffUL), x.Lo);   // inside a root, mostly a miss below
            else dst[i] = x;   // anywhere
        }
        var flows = new uint[dst.Length];
        for (int i = 0; i < flows.Length; i++) flows[i] = (uint)rng.NextInt64();

        for (int i = 0; i < 300; i++)
        {
            uint iid = Iids[i % Iids.Length];
            int want = Oracle.LinearV6(held[iid], dst[i]);
            Assert.Equal(want, s.TryLookupV6(iid, dst[i], flows[i], out var r) ? r.EntryIndex : -1);
        }

        AssertBatchEqualsSingles(dst, flows, rng, s.LookupV6Batch, s.TryLookupV6);
    }

    private delegate int BatchLookup<T>(uint iid, ReadOnlySpan<T> destinations, ReadOnlySpan<uint> flowHashes, Span<LookupResult> results);
    private delegate bool SingleLookup<T>(uint iid, T destination, uint flowHash, out LookupResult result);

    /// <summary>
    /// Every batch size 1..300 (shuffled) over the destinations, in every instance-id and in 99 (no table: every result a
    /// miss): each result equals the single lookup's, the forward count is right, results past the batch stay untouched,
    /// and the tables really exercised every outcome.
    /// </summary>
    private static void AssertBatchEqualsSingles<T>(T[] dst, uint[] flows, Random rng, BatchLookup<T> batch, SingleLookup<T> single)
    {
        var seen = new int[4];
        var results = new LookupResult[310];
        foreach (uint iid in Iids.Append(99u))
        {
            int offset = 0;
            foreach (int n in BatchSizes(rng))
            {
                if (offset + n > dst.Length) offset = 0;
                Array.Fill(results, Sentinel);
                int forwards = batch(iid, dst.AsSpan(offset, n), flows.AsSpan(offset, n), results);
                int wantForwards = 0;
                for (int k = 0; k < n; k++)
                {
                    bool found = single(iid, dst[offset + k], flows[offset + k], out var one);
                    AssertSame(one, results[k], $"iid {iid} batch {n} index {k} dst {dst[offset + k]}");
                    Assert.Equal(found, results[k].Found);
                    if (one.Status == LookupStatus.Forward) wantForwards++;
                    seen[(int)one.Status]++;
                }
                Assert.Equal(wantForwards, forwards);
                for (int k = n; k < results.Length; k++) AssertSame(Sentinel, results[k], "past the batch must stay untouched");
                offset += n;
            }
        }
        Assert.All(seen, c => Assert.True(c > 0, $"outcomes seen: {string.Join(",", seen)}"));
    }

    [Fact]
    public void FlowHashPicksTheRlocOfTheWeightedRing()
    {
        // One /8 with weights 30/70: the batch must spread flows as the single lookup does, and both RLOCs occur.
        var w = new MapCacheWriter(Oracle.Options("dir24"));
        w.AddOrReplaceV4(0, 0x0A00_0000, 8, Sets[1], 60, 0);
        var s = w.Publish();
        var dst = new uint[256];
        var flows = new uint[256];
        for (int i = 0; i < 256; i++) { dst[i] = 0x0A00_0000u | (uint)i; flows[i] = (uint)i * 0x0100_0000u; }
        var results = new LookupResult[256];
        Assert.Equal(256, s.LookupV4Batch(0, dst, flows, results));
        var used = new HashSet<int>();
        for (int i = 0; i < 256; i++)
        {
            Assert.True(s.TryLookupV4(0, dst[i], flows[i], out var single));
            Assert.Equal(single.RlocIndex, results[i].RlocIndex);
            used.Add(results[i].RlocIndex);
        }
        Assert.Equal(2, used.Count);
    }

    /// <summary>Every size 1..300 once (the pipeline's fill/drain edges at 16, 24, 32, 40 included), in random order.</summary>
    private static IEnumerable<int> BatchSizes(Random rng) => Enumerable.Range(1, 300).OrderBy(_ => rng.Next());

    private static readonly LookupResult Sentinel = new(-7, -7, -7, 7, LookupStatus.NoUsableRloc, MapReplyAction.DropAuthFailure, 99, 77);

    private static void AssertSame(LookupResult want, LookupResult got, string where)
    {
        if (want.Status != got.Status || want.EntryIndex != got.EntryIndex || want.RlocIndex != got.RlocIndex || want.Expires != got.Expires ||
            want.TtlSeconds != got.TtlSeconds || want.Action != got.Action || want.PrefixLength != got.PrefixLength || want.MapVersion != got.MapVersion)
            Assert.Fail($"{where}: want {want}, got {got}");
    }

    private static string ToIp(V6Key a)
    {
        Span<byte> b = stackalloc byte[16];
        BinaryPrimitives.WriteUInt64BigEndian(b, a.Hi);
        BinaryPrimitives.WriteUInt64BigEndian(b.Slice(8), a.Lo);
        return new IPAddress(b).ToString();
    }
}
