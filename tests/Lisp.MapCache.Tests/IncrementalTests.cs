using System.Net;
using Lisp.MapCache;
using Lisp.Wire;
using Xunit;

namespace Lisp.MapCache.Tests;

/// <summary>
/// The map-cache is changed in place between publishes (copy-on-write chunks, issue 10). These tests run
/// rounds of random adds, replacements and removals, check every published snapshot against a linear scan
/// over the prefixes held at that round, and then check snapshots published earlier again after many later
/// changes: a snapshot must answer exactly as it did when it was published.
/// </summary>
public class IncrementalTests
{
    private static readonly IPAddress[] Rlocs = Enumerable.Range(1, 6).Select(i => IPAddress.Parse($"192.0.2.{i}")).ToArray();

    private static RlocSpec[] RlocsFor(int k) => [new(Rlocs[k % Rlocs.Length], 1, 1)];

    /// <summary>What a snapshot answered at publish time: destination to (slot, RLOC address or null).</summary>
    private static Dictionary<uint, (int Slot, string? Rloc)> Answers(MapCacheSnapshot s, uint iid, uint[] dst)
    {
        var d = new Dictionary<uint, (int, string?)>();
        foreach (uint x in dst)
            d[x] = s.TryLookupV4(iid, x, 0, out var r) ? (r.EntryIndex, r.Status == LookupStatus.Forward ? s.Rlocs.Address(r.RlocIndex).ToString() : null) : (-1, null);
        return d;
    }

    /// <summary>
    /// IPv4 under each forced layout and under the default thresholds lowered so the instance crosses
    /// hash -> DIR-16 -> DIR-24 going up and back down as it shrinks.
    /// </summary>
    [Theory]
    [InlineData("hash", 51)]
    [InlineData("dir16", 52)]
    [InlineData("dir24", 53)]
    [InlineData("crossing", 54)]
    public void Ipv4RoundsAgainstLinearScan(string layout, int seed)
    {
        var rng = new Random(seed);
        var options = layout == "crossing" ? new MapCacheOptions { Dir24Threshold = 250, Dir16Threshold = 30 } : Oracle.Options(layout);
        var w = new MapCacheWriter(options);
        var held = new Dictionary<(uint, int), int>();
        var kept = new List<(MapCacheSnapshot Snap, uint[] Dst, Dictionary<uint, (int, string?)> Answers)>();
        var layoutsSeen = new HashSet<V4Layout>();
        for (int round = 0; round < 60; round++)
        {
            // Grow for 30 rounds, then shrink, so "crossing" goes up through the thresholds and back down.
            bool growing = round < 30;
            int changes = rng.Next(1, 60);
            for (int c = 0; c < changes; c++)
            {
                int op = rng.Next(10);
                if (held.Count > 0 && (growing ? op < 2 : op < 8))
                {
                    var (a, l) = held.Keys.ElementAt(rng.Next(held.Count));
                    Assert.True(w.RemoveV4(0, a, l));
                    held.Remove((a, l));
                }
                else if (held.Count > 0 && op == 9)
                {
                    var (a, l) = held.Keys.ElementAt(rng.Next(held.Count)); // replace: the slot stays
                    Assert.Equal(held[(a, l)], w.AddOrReplaceV4(0, a, l, RlocsFor(rng.Next(6)), 60, 0));
                }
                else
                {
                    var (a, l) = Oracle.RandomV4Prefixes(rng, 1)[0];
                    if (held.ContainsKey((a, l))) continue;
                    held[(a, l)] = rng.Next(5) == 0
                        ? w.AddOrReplaceNegativeV4(0, a, l, MapReplyAction.Drop, 10, 0)
                        : w.AddOrReplaceV4(0, a, l, RlocsFor(rng.Next(6)), 60, 0);
                }
            }
            var s = w.Publish();
            var list = held.Select(kv => (kv.Key.Item1, kv.Key.Item2, kv.Value)).ToList();
            if (s.V4LayoutOf(0) is { } lay) layoutsSeen.Add(lay);
            var dst = list.Count == 0 ? [0u, 1u, 0xffffffffu] : Edges(list, rng);
            foreach (uint d in dst)
            {
                int want = Oracle.LinearV4(list, d);
                int got = s.TryLookupV4(0, d, 0, out var r) ? r.EntryIndex : -1;
                if (want != got) Assert.Fail($"round {round}: dst {d:x8} want slot {want}, got {got} ({held.Count} held, layout {s.V4LayoutOf(0)})");
            }
            if (round % 7 == 0) kept.Add((s, dst, Answers(s, 0, dst)));
        }
        foreach (var (snap, dst, answers) in kept)
            Assert.Equal(answers, Answers(snap, 0, dst));
        if (layout == "crossing")
            Assert.Equal(new HashSet<V4Layout> { V4Layout.Hash, V4Layout.Dir16, V4Layout.Dir24 }, layoutsSeen);
    }

    /// <summary>Each held prefix's first and last address and their neighbours outside it, plus random destinations.</summary>
    private static uint[] Edges(List<(uint Addr, int Len, int Slot)> list, Random rng)
    {
        var d = new List<uint>();
        foreach (var (a, l, _) in list)
        {
            uint last = a | ~Oracle.Mask(l);
            d.Add(a);
            d.Add(last);
            d.Add(a - 1);
            d.Add(last + 1);
        }
        d.AddRange(Oracle.Destinations(rng, list.Select(p => (p.Addr, p.Len)).ToList(), 400));
        return d.ToArray();
    }

    [Theory]
    [InlineData("all", 61)]
    [InlineData("few", 62)]
    [InlineData("nested", 63)]
    [InlineData("short", 64)]
    public void Ipv6RoundsAgainstLinearScan(string mix, int seed)
    {
        var rng = new Random(seed);
        var w = new MapCacheWriter();
        var held = new Dictionary<(V6Key, int), int>();
        var roots = Enumerable.Range(0, 3).Select(_ => (ulong)rng.NextInt64() & 0xffff_0000_0000_0000UL).ToArray();
        V6Key Rand() => new(roots[rng.Next(roots.Length)] | ((ulong)rng.NextInt64() & 0xffff_ffff_ffff), (ulong)rng.NextInt64());
        int[] few = [48, 56, 64, 128];
        var all1 = new V6Key(ulong.MaxValue, ulong.MaxValue);
        MapCacheSnapshot? early = null;
        List<(V6Key Dst, int Slot)>? earlyAnswers = null;
        for (int round = 0; round < 50; round++)
        {
            for (int c = rng.Next(1, 50); c > 0; c--)
            {
                if (held.Count > 0 && rng.Next(10) < (round < 25 ? 3 : 7))
                {
                    var (a, l) = held.Keys.ElementAt(rng.Next(held.Count));
                    Assert.True(w.RemoveV6(2, a, l));
                    held.Remove((a, l));
                    continue;
                }
                var batch = new List<(V6Key, int)>();
                if (mix == "nested")
                {
                    var a = Rand();
                    for (int len = rng.Next(0, 20); len <= 128; len += rng.Next(1, 30)) batch.Add((Oracle.MaskV6(a, len), len));
                }
                else
                {
                    int len = mix == "few" ? few[rng.Next(few.Length)] : mix == "short" ? (rng.Next(3) == 0 ? rng.Next(0, 17) : rng.Next(17, 49)) : rng.Next(0, 129);
                    batch.Add((Oracle.MaskV6(Rand(), len), len));
                }
                foreach (var (a, len) in batch)
                    if (!held.ContainsKey((a, len))) held[(a, len)] = w.AddOrReplaceV6(2, a, len, RlocsFor(len), 60, 0);
            }
            var s = w.Publish();
            var list = held.Select(kv => (kv.Key.Item1, kv.Key.Item2, kv.Value)).ToList();
            var dsts = new List<V6Key>();
            foreach (var (a, len, _) in list)
            {
                var m = Oracle.MaskV6(all1, len);
                var last = new V6Key(a.Hi | ~m.Hi, a.Lo | ~m.Lo);
                dsts.Add(a);
                dsts.Add(last);
                dsts.Add(new V6Key(last.Lo == ulong.MaxValue ? last.Hi + 1 : last.Hi, last.Lo + 1));
                dsts.Add(new V6Key(a.Lo == 0 ? a.Hi - 1 : a.Hi, a.Lo - 1));
            }
            for (int i = 0; i < 300; i++) dsts.Add(Rand());
            var answers = new List<(V6Key, int)>();
            foreach (var d in dsts)
            {
                int want = Oracle.LinearV6(list, d);
                int got = s.TryLookupV6(2, d, 0, out var r) ? r.EntryIndex : -1;
                if (want != got) Assert.Fail($"round {round}: {d.Hi:x16}:{d.Lo:x16} want {want} got {got}");
                answers.Add((d, got));
            }
            if (round == 10) (early, earlyAnswers) = (s, answers);
        }
        foreach (var (d, slot) in earlyAnswers!)
            Assert.Equal(slot, early!.TryLookupV6(2, d, 0, out var r) ? r.EntryIndex : -1);
    }

    [Fact]
    public void ExactEidsAddReplaceRemove()
    {
        var w = new MapCacheWriter();
        var names = Enumerable.Range(0, 300).Select(i => EidPrefix.Parse($"[7]'host-{i}.example'")).ToList();
        var slots = names.Select((n, i) => w.AddOrReplace(n, RlocsFor(i), 60, 0)).ToList();
        var first = w.Publish();
        for (int i = 0; i < names.Count; i += 2) Assert.True(w.Remove(names[i]));
        for (int i = 1; i < names.Count; i += 4) w.AddOrReplaceNegative(names[i], MapReplyAction.NativelyForward, 30, 0);
        var second = w.Publish();
        for (int i = 0; i < names.Count; i++)
        {
            var key = EidKey.Build(names[i]);
            Assert.True(first.TryLookupExact(key, 0, out var r1), names[i].ToString());
            Assert.Equal(slots[i], r1.EntryIndex);
            Assert.Equal(LookupStatus.Forward, r1.Status);
            bool found = second.TryLookupExact(key, 0, out var r2);
            Assert.Equal(i % 2 == 1, found);
            if (found) Assert.Equal(i % 4 == 1 ? LookupStatus.Negative : LookupStatus.Forward, r2.Status);
        }
        Assert.False(second.TryLookupExact(EidKey.Build(EidPrefix.Parse("[7]'nobody'")), 0, out _));
        Assert.Equal(150, second.Count);
    }

    /// <summary>Reachability rewrites the locator set's ring; the snapshot published before still uses the old ring.</summary>
    [Fact]
    public void ReachabilityChangeLeavesEarlierSnapshotAlone()
    {
        var a = IPAddress.Parse("192.0.2.1");
        var b = IPAddress.Parse("192.0.2.2");
        var w = new MapCacheWriter();
        RlocSpec[] both = [new(a, 1, 50), new(b, 2, 50)];
        for (uint i = 0; i < 1000; i++) w.AddOrReplaceV4(0, 0x0a000000u | (i << 8), 24, both, 60, 0);
        var before = w.Publish();
        w.SetReachability(a, false);
        var after = w.Publish();
        for (uint i = 0; i < 1000; i += 37)
        {
            uint d = 0x0a000000u | (i << 8) | 9;
            Assert.True(before.TryLookupV4(0, d, 0, out var r0));
            Assert.Equal(a, before.Rlocs.Address(r0.RlocIndex));
            Assert.True(after.TryLookupV4(0, d, 0, out var r1));
            Assert.Equal(b, after.Rlocs.Address(r1.RlocIndex));
        }
        // A set that loses its last user frees its RLOCs; re-adding reuses the indexes and keeps the reachability.
        for (uint i = 0; i < 1000; i++) Assert.True(w.RemoveV4(0, 0x0a000000u | (i << 8), 24));
        var empty = w.Publish();
        Assert.Equal(0, empty.Count);
        w.AddOrReplaceV4(0, 0x0b000000u, 8, both, 60, 0);
        var again = w.Publish();
        Assert.True(again.TryLookupV4(0, 0x0b010203u, 0, out var r2));
        Assert.Equal(b, again.Rlocs.Address(r2.RlocIndex));
        Assert.True(before.TryLookupV4(0, 0x0a000109u, 0, out var r3)); // still answers as published
        Assert.Equal(a, before.Rlocs.Address(r3.RlocIndex));
    }

    /// <summary>
    /// The point of the copy-on-write layout: one change to a DIR-24 instance of 50k prefixes, published,
    /// allocates a few chunks (tens of KiB), where the rebuild it replaced allocated the two 64 MiB arrays.
    /// Counted with the thread's allocation counter (bytes, not time).
    /// </summary>
    [Fact]
    public void OneChangeCopiesChunksNotTables()
    {
        var rng = new Random(71);
        var w = new MapCacheWriter(new MapCacheOptions { Dir24Threshold = 1 });
        var prefixes = Oracle.RandomV4Prefixes(rng, 50_000);
        foreach (var (a, l) in prefixes) w.AddOrReplaceV4(0, a, l, RlocsFor(l), 60, 0);
        w.Publish();
        long worst = 0;
        for (int i = 0; i < 50; i++)
        {
            var (a, l) = prefixes[rng.Next(prefixes.Count)];
            if (l < 20) continue; // a /8 legitimately rewrites 65,536 front entries (16 chunks)
            long before = GC.GetAllocatedBytesForCurrentThread();
            if (i % 2 == 0) w.RemoveV4(0, a, l);
            else w.AddOrReplaceV4(0, a, l, RlocsFor(i), 60, 0);
            w.Publish();
            worst = Math.Max(worst, GC.GetAllocatedBytesForCurrentThread() - before);
        }
        Assert.InRange(worst, 1, 512 * 1024);
    }
}
