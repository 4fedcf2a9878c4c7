using System.Diagnostics;
using System.Net;
using Lisp.MapCache;
using Xunit;

namespace Lisp.MapCache.Tests;

/// <summary>
/// Every lookup checked against a naive oracle. The linear-scan oracle (<see cref="Oracle.LinearV4"/>) is
/// exact but O(prefixes) per lookup, so big runs check a sample with it and every lookup against the
/// per-length dictionary oracle, which itself is first checked against the linear scan.
/// </summary>
public class RandomizedOracleTests
{
#if DEBUG
    private const bool IsDebug = true;
#else
    private const bool IsDebug = false;
#endif

    private static readonly RlocSpec[] One = [new(IPAddress.Parse("192.0.2.1"), 1, 100)];

    public static TheoryData<string> Layouts => Oracle.Layouts;

    [Theory]
    [MemberData(nameof(Layouts))]
    public void SmallIpv4AgainstLinearScan(string layout) => CheckStatic(3000, 100_000, 20_000, layout, seed: 11);

    /// <summary>Tiny instances (default layout choice around the DIR-16 threshold), checked exhaustively near every prefix edge.</summary>
    [Theory]
    [InlineData(1)]
    [InlineData(16)]
    [InlineData(MapCacheOptions.DefaultDir16Threshold)]
    [InlineData(300)]
    public void TinyIpv4AgainstLinearScanDefaultLayout(int count)
    {
        var rng = new Random(13 + count);
        var w = new MapCacheWriter();
        var prefixes = Oracle.RandomV4Prefixes(rng, count);
        var withSlots = prefixes.Select(p => (p.Addr, p.Len, w.AddOrReplaceV4(0, p.Addr, p.Len, One, 60, 0))).ToList();
        var s = w.Publish();
        foreach (var (a, l) in prefixes)
        {
            uint last = a | ~Oracle.Mask(l);
            foreach (uint d in new[] { a, last, a - 1, last + 1, a | (~Oracle.Mask(l) & 0x5555_5555u) })
                Assert.Equal(Oracle.LinearV4(withSlots, d), s.TryLookupV4(0, d, 0, out var r) ? r.EntryIndex : -1);
        }
        foreach (uint d in Oracle.Destinations(rng, prefixes, 20_000))
            Assert.Equal(Oracle.LinearV4(withSlots, d), s.TryLookupV4(0, d, 0, out var r) ? r.EntryIndex : -1);
    }

    [SkippableFact]
    public void Big100kPrefixes1MLookupsHashLpm()
    {
        Skip.If(IsDebug, "100k/1M runs in Release (dotnet test -c Release, as CI does)");
        CheckStatic(100_000, 1_000_000, 2_000, "hash", seed: 12);
    }

    /// <summary>DIR-16 forced at 100k: nearly every /16 then holds longer prefixes of several lengths.</summary>
    [SkippableFact]
    public void Big100kPrefixes1MLookupsDir16()
    {
        Skip.If(IsDebug, "100k/1M runs in Release (dotnet test -c Release, as CI does)");
        CheckStatic(100_000, 1_000_000, 2_000, "dir16", seed: 14);
    }

    [SkippableFact]
    public void Big100kPrefixes1MLookupsDir24()
    {
        Skip.If(IsDebug, "100k/1M runs in Release (dotnet test -c Release, as CI does)");
        CheckStatic(100_000, 1_000_000, 2_000, "dir24", seed: 15);
    }

    [Fact]
    public void SmallIpv6AgainstLinearScan()
    {
        var rng = new Random(21);
        var w = new MapCacheWriter();
        var prefixes = new List<(V6Key, int, int)>();
        var seen = new HashSet<(V6Key, int)>();
        // Prefixes clustered under a few /32s so that nesting is common.
        var roots = Enumerable.Range(0, 8).Select(_ => (ulong)rng.NextInt64() & 0xffff_ffff_0000_0000UL).ToArray();
        while (prefixes.Count < 2000)
        {
            int len = rng.Next(100) < 10 ? rng.Next(0, 129) : rng.Next(32, 65) + (rng.Next(4) == 0 ? 64 : 0);
            len = Math.Min(len, 128);
            var a = Oracle.MaskV6(new V6Key(roots[rng.Next(roots.Length)] | ((ulong)rng.NextInt64() & 0xffff_ffff), (ulong)rng.NextInt64()), len);
            if (!seen.Add((a, len))) continue;
            prefixes.Add((a, len, w.AddOrReplaceV6(3, a, len, One, 60, 0)));
        }
        var s = w.Publish();
        for (int i = 0; i < 20_000; i++)
        {
            V6Key d;
            if ((i & 1) == 0)
            {
                var (a, len, _) = prefixes[rng.Next(prefixes.Count)];
                var r = new V6Key((ulong)rng.NextInt64(), (ulong)rng.NextInt64());
                var m = Oracle.MaskV6(new V6Key(ulong.MaxValue, ulong.MaxValue), len);
                d = new V6Key(a.Hi | (r.Hi & ~m.Hi), a.Lo | (r.Lo & ~m.Lo));
            }
            else d = new V6Key(roots[rng.Next(roots.Length)] | ((ulong)rng.NextInt64() & 0xffff_ffff), (ulong)rng.NextInt64());
            int want = Oracle.LinearV6(prefixes, d);
            int got = s.TryLookupV6(3, d, 0, out var res) ? res.EntryIndex : -1;
            Assert.Equal(want, got);
        }
    }

    /// <summary>
    /// IPv6 binary search on lengths against the linear scan: "all" = lengths 0..128 uniformly (markers at
    /// every level), "few" = /48, /64, /128 only (real EID tables), "nested" = chains of prefixes each inside
    /// the previous one (markers and real prefixes share keys; best-match precomputation through nesting).
    /// Destinations: inside a random prefix, at its first and last address, just outside it, and random.
    /// </summary>
    [Theory]
    [InlineData("all", 3000, 41)]
    [InlineData("few", 3000, 42)]
    [InlineData("nested", 3000, 43)]
    [InlineData("all", 1, 44)]
    [InlineData("all", 5, 45)]
    [InlineData("short", 3000, 46)]
    public void Ipv6AgainstLinearScan(string mix, int count, int seed)
    {
        var rng = new Random(seed);
        var w = new MapCacheWriter();
        var prefixes = new List<(V6Key, int, int)>();
        var seen = new HashSet<(V6Key, int)>();
        var roots = Enumerable.Range(0, 4).Select(_ => (ulong)rng.NextInt64() & 0xffff_0000_0000_0000UL).ToArray();
        V6Key Rand() => new(roots[rng.Next(roots.Length)] | ((ulong)rng.NextInt64() & 0xffff_ffff_ffff), (ulong)rng.NextInt64());
        int[] few = [48, 64, 128];
        while (prefixes.Count < count)
        {
            var batch = new List<(V6Key, int)>();
            if (mix == "nested")
            {
                var a = Rand();
                for (int len = rng.Next(0, 20); len <= 128; len += rng.Next(1, 24)) batch.Add((Oracle.MaskV6(a, len), len));
            }
            else
            {
                // "short": a third of the prefixes /0../16 (default routes and covering aggregates), the rest /17../48,
                // so the /16 entries' best short answers are updated and refilled as prefixes come and go.
                int len = mix == "few" ? few[rng.Next(3)] : mix == "short" ? (rng.Next(3) == 0 ? rng.Next(0, 17) : rng.Next(17, 49)) : rng.Next(0, 129);
                batch.Add((Oracle.MaskV6(Rand(), len), len));
            }
            foreach (var (a, len) in batch)
                if (prefixes.Count < count && seen.Add((a, len))) prefixes.Add((a, len, w.AddOrReplaceV6(5, a, len, One, 60, 0)));
        }
        var s = w.Publish();
        var all1 = new V6Key(ulong.MaxValue, ulong.MaxValue);
        void Check(V6Key d)
        {
            int want = Oracle.LinearV6(prefixes, d);
            int got = s.TryLookupV6(5, d, 0, out var r) ? r.EntryIndex : -1;
            if (want != got) Assert.Fail($"{d.Hi:x16}:{d.Lo:x16}: want {want} got {got}");
        }
        foreach (var (a, len, _) in prefixes)
        {
            var m = Oracle.MaskV6(all1, len);
            var last = new V6Key(a.Hi | ~m.Hi, a.Lo | ~m.Lo);
            Check(a);
            Check(last);
            Check(new V6Key(last.Lo == ulong.MaxValue ? last.Hi + 1 : last.Hi, last.Lo + 1));
            Check(new V6Key(a.Lo == 0 ? a.Hi - 1 : a.Hi, a.Lo - 1));
        }
        for (int i = 0; i < 20_000; i++)
        {
            if ((i & 1) == 0)
            {
                var (a, len, _) = prefixes[rng.Next(prefixes.Count)];
                var r = new V6Key((ulong)rng.NextInt64(), (ulong)rng.NextInt64());
                var m = Oracle.MaskV6(all1, len);
                Check(new V6Key(a.Hi | (r.Hi & ~m.Hi), a.Lo | (r.Lo & ~m.Lo)));
            }
            else Check(Rand());
        }
    }

    private static void CheckStatic(int prefixCount, int lookups, int linearSample, string layout, int seed)
    {
        var rng = new Random(seed);
        var w = new MapCacheWriter(Oracle.Options(layout));
        var prefixes = Oracle.RandomV4Prefixes(rng, prefixCount);
        var withSlots = new List<(uint, int, int)>(prefixCount);
        foreach (var (a, l) in prefixes) withSlots.Add((a, l, w.AddOrReplaceV4(0, a, l, One, 60, 0)));
        var s = w.Publish();
        Assert.Equal(Oracle.Expected(layout), s.V4LayoutOf(0));
        var dict = new Oracle.DictV4(withSlots);
        var dst = Oracle.Destinations(rng, prefixes, lookups);
        for (int i = 0; i < Math.Min(linearSample, dst.Length); i++)
        {
            int want = Oracle.LinearV4(withSlots, dst[i]);
            Assert.Equal(want, dict.Lookup(dst[i]));
            Assert.Equal(want, s.TryLookupV4(0, dst[i], 0, out var r) ? r.EntryIndex : -1);
        }
        var results = new LookupResult[1024];
        var flows = new uint[1024];
        for (int i = 0; i < dst.Length; i += 1024)
        {
            int n = Math.Min(1024, dst.Length - i);
            s.LookupV4Batch(0, dst.AsSpan(i, n), flows, results);
            for (int k = 0; k < n; k++)
            {
                int want = dict.Lookup(dst[i + k]);
                int got = results[k].Found ? results[k].EntryIndex : -1;
                if (want != got) Assert.Fail($"dst {dst[i + k]:x8}: want slot {want}, got {got}");
            }
        }
    }

    [Fact]
    public void ConcurrentPublishSmall() => Concurrent(stableCount: 5_000, minLookups: 200_000, publishes: 40, new MapCacheOptions(), seed: 31);

    [Theory]
    [MemberData(nameof(Layouts))]
    public void ConcurrentPublishSmallForcedLayout(string layout) =>
        Concurrent(stableCount: 2_000, minLookups: 100_000, publishes: 20, Oracle.Options(layout), seed: 33);

    /// <summary>
    /// The same with chunk recycling: readers go through registered handles, and the writer reuses chunks
    /// the moment no handle holds them. A reuse too early would show up as a wrong or torn answer.
    /// </summary>
    [Theory]
    [MemberData(nameof(Layouts))]
    public void ConcurrentPublishWithChunkRecycling(string layout) =>
        Concurrent(stableCount: 3_000, minLookups: 300_000, publishes: 60, Oracle.Options(layout) with { RecycleChunks = true }, seed: 34);

    [SkippableFact]
    public void ConcurrentPublish100kPrefixes1MLookups()
    {
        Skip.If(IsDebug, "100k/1M runs in Release (dotnet test -c Release, as CI does)");
        Concurrent(stableCount: 100_000, minLookups: 1_000_000, publishes: 30, new MapCacheOptions(), seed: 32);
    }

    /// <summary>
    /// One writer churns prefixes and publishes while two readers look up. Stable prefixes live in 0/1 and
    /// never change, so their answers are known in advance; churn lives in 128/1. Each publish with
    /// generation g installs marker 200.g.g.0/24 pointing at RLOC 10.g.g.g and removes marker g-4: a reader
    /// holding snapshot g must see marker g with exactly that RLOC and no marker g-5 or older (a torn or
    /// mixed snapshot would fail this). The final snapshot is then checked against the oracle on every lookup.
    /// </summary>
    private static void Concurrent(int stableCount, int minLookups, int publishes, MapCacheOptions options, int seed)
    {
        var rng = new Random(seed);
        var w = new MapCacheWriter(options);
        var stable = Oracle.RandomV4Prefixes(rng, stableCount * 11 / 10)
            .Select(p => (Addr: p.Addr & 0x7fffffffu & Oracle.Mask(Math.Max(1, p.Len)), Len: Math.Max(1, p.Len)))
            .Distinct().Take(stableCount).ToList();
        var all = new Dictionary<(uint, int), int>();
        foreach (var (a, l) in stable) all[(a, l)] = w.AddOrReplaceV4(0, a, l, One, 60, 0);
        static uint Marker(long g) => (200u << 24) | ((uint)(g & 0xffff) << 8);
        static IPAddress MarkerRloc(long g) => new(new byte[] { 10, (byte)(g >> 16), (byte)(g >> 8), (byte)g });
        long next = w.Current.Generation + 1;
        w.AddOrReplaceV4(0, Marker(next), 24, [new(MarkerRloc(next), 1, 1)], 60, next);
        w.Publish();

        var stableList = all.Select(kv => (kv.Key.Item1, kv.Key.Item2, kv.Value)).ToList();
        var stableOracle = new Oracle.DictV4(stableList);
        var dst = Oracle.Destinations(rng, stable, 1 << 16).Select(d => d & 0x7fffffffu).ToArray(); // stay out of the churn half
        var expect = dst.Select(stableOracle.Lookup).ToArray();
        for (int i = 0; i < 500; i++) Assert.Equal(Oracle.LinearV4(stableList, dst[i]), expect[i]);

        using var done = new CancellationTokenSource();
        long lookupsDone = 0;
        string? failure = null;
        void Reader(int id)
        {
            var results = new LookupResult[256];
            var flows = new uint[256];
            int offset = id * 4096;
            long mine = 0;
            long lastGen = 0;
            using var handle = w.RegisterReader();
            try
            {
                while (!done.IsCancellationRequested || mine < minLookups / 2)
                {
                    var s = handle.Acquire();
                    long g = s.Generation;
                    if (g < lastGen) throw new Exception($"generation went back {lastGen} -> {g}");
                    lastGen = g;
                    if (!s.TryLookupV4(0, Marker(g) | 7, 0, out var m) || m.RlocIndex < 0 || !s.Rlocs.Address(m.RlocIndex).Equals(MarkerRloc(g)) || m.Expires != g)
                        throw new Exception($"snapshot {g}: marker {g} missing or wrong ({m})");
                    for (long old = Math.Max(1, g - 12); old < g - 4; old++)
                        if (s.TryLookupV4(0, Marker(old) | 7, 0, out _)) throw new Exception($"snapshot {g}: stale marker {old} present");
                    for (int chunk = 0; chunk < 16; chunk++)
                    {
                        int start = offset & (dst.Length - 1) & ~255;
                        s.LookupV4Batch(0, dst.AsSpan(start, 256), flows, results);
                        for (int k = 0; k < 256; k++)
                        {
                            int got = results[k].Found ? results[k].EntryIndex : -1;
                            if (got != expect[start + k]) throw new Exception($"snapshot {g}: dst {dst[start + k]:x8} want {expect[start + k]} got {got}");
                        }
                        offset += 256;
                        mine += 256;
                    }
                    handle.Release();
                }
            }
            catch (Exception e)
            {
                Interlocked.CompareExchange(ref failure, e.Message, null);
            }
            Interlocked.Add(ref lookupsDone, mine);
        }

        var readers = new[] { new Thread(() => Reader(0)), new Thread(() => Reader(1)) };
        foreach (var t in readers) t.Start();
        var churn = new List<(uint, int)>();
        var sw = Stopwatch.StartNew();
        for (int p = 0; p < publishes && failure is null; p++)
        {
            for (int k = 0; k < 200; k++)
            {
                if (churn.Count > 0 && rng.Next(3) == 0)
                {
                    int i = rng.Next(churn.Count);
                    var (a, l) = churn[i];
                    churn[i] = churn[^1];
                    churn.RemoveAt(churn.Count - 1);
                    Assert.True(w.RemoveV4(0, a, l));
                    all.Remove((a, l));
                }
                else
                {
                    int l = rng.Next(9, 33);
                    uint a = (0x80000000u | (uint)rng.NextInt64()) & Oracle.Mask(l);
                    if ((a >> 24) == 200 || all.ContainsKey((a, l))) continue;
                    all[(a, l)] = rng.Next(4) == 0
                        ? w.AddOrReplaceNegativeV4(0, a, l, Lisp.Wire.MapReplyAction.Drop, 10, 0)
                        : w.AddOrReplaceV4(0, a, l, One, 60, 0);
                    churn.Add((a, l));
                }
            }
            long g = w.Current.Generation + 1;
            w.AddOrReplaceV4(0, Marker(g), 24, [new(MarkerRloc(g), 1, 1)], 60, g);
            if (g - 4 >= 1) w.RemoveV4(0, Marker(g - 4), 24);
            w.Publish();
        }
        done.Cancel();
        foreach (var t in readers) t.Join();
        Assert.Null(failure);
        Assert.True(lookupsDone >= minLookups, $"{lookupsDone} lookups");
        if (options.RecycleChunks) Assert.True(w.RecycledChunks > 0, "no chunk was reused");

        // Final snapshot against the oracle, churn included.
        var final = w.Current;
        var oracleList = all.Select(kv => (kv.Key.Item1, kv.Key.Item2, kv.Value)).ToList();
        var oracle = new Oracle.DictV4(oracleList);
        var churnDst = Oracle.Destinations(rng, all.Keys.Select(k => (k.Item1, k.Item2)).ToList(), minLookups);
        for (int i = 0; i < churnDst.Length; i++)
        {
            int want = oracle.Lookup(churnDst[i]);
            if (i < 1000) Assert.Equal(Oracle.LinearV4(oracleList, churnDst[i]), want);
            int got = final.TryLookupV4(0, churnDst[i], 0, out var r) ? r.EntryIndex : -1;
            if (want != got) Assert.Fail($"final: dst {churnDst[i]:x8} want {want} got {got}");
        }
    }
}
