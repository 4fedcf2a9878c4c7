using System.Net;
using Lisp.MapCache;
using Lisp.Wire;
using Xunit;

namespace Lisp.MapCache.Tests;

public class MapCacheTests
{
    private static readonly RlocSpec[] One = [new(IPAddress.Parse("192.0.2.1"), 1, 100)];
    private static uint V4(string s) => System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(IPAddress.Parse(s).GetAddressBytes());

    public static TheoryData<string> Layouts => Oracle.Layouts;

    [Theory]
    [MemberData(nameof(Layouts))]
    public void Ipv4LongestPrefixWins(string layout)
    {
        var w = new MapCacheWriter(Oracle.Options(layout));
        int s8 = w.AddOrReplace(EidPrefix.Parse("[0]10.0.0.0/8"), One, 60, 1000);
        int s16 = w.AddOrReplace(EidPrefix.Parse("[0]10.1.0.0/16"), One, 60, 1000);
        int s26 = w.AddOrReplace(EidPrefix.Parse("[0]10.1.2.64/26"), One, 60, 1000);
        int s32 = w.AddOrReplace(EidPrefix.Parse("[0]10.1.2.70/32"), One, 60, 1000);
        int other = w.AddOrReplace(EidPrefix.Parse("[7]10.1.2.0/24"), One, 60, 1000);
        var s = w.Publish();
        Assert.Equal(Oracle.Expected(layout), s.V4LayoutOf(0));
        Assert.Equal(layout == "dir24", s.V4UsesDir24(0));
        Assert.True(s.TryLookupV4(0, V4("10.9.9.9"), 0, out var r) && r.EntryIndex == s8 && r.PrefixLength == 8);
        Assert.True(s.TryLookupV4(0, V4("10.1.9.9"), 0, out r) && r.EntryIndex == s16);
        Assert.True(s.TryLookupV4(0, V4("10.1.2.65"), 0, out r) && r.EntryIndex == s26);
        Assert.True(s.TryLookupV4(0, V4("10.1.2.63"), 0, out r) && r.EntryIndex == s16);
        Assert.True(s.TryLookupV4(0, V4("10.1.2.70"), 0, out r) && r.EntryIndex == s32 && r.PrefixLength == 32);
        Assert.True(s.TryLookup(7, IPAddress.Parse("10.1.2.70").GetAddressBytes(), 0, out r) && r.EntryIndex == other);
        Assert.False(s.TryLookupV4(7, V4("10.1.3.1"), 0, out r));
        Assert.Equal(LookupStatus.Miss, r.Status);
        Assert.False(s.TryLookupV4(0, V4("11.0.0.1"), 0, out _));
        Assert.False(s.TryLookupV4(3, V4("10.1.2.70"), 0, out _));
        Assert.Equal(IPAddress.Parse("192.0.2.1"), s.Rlocs.Address(r.RlocIndex < 0 ? 0 : r.RlocIndex));

        Assert.True(w.Remove(EidPrefix.Parse("[0]10.1.2.64/26")));
        Assert.False(w.Remove(EidPrefix.Parse("[0]10.1.2.64/26")));
        var s2 = w.Publish();
        Assert.Equal(s.Generation + 1, s2.Generation);
        Assert.True(s2.TryLookupV4(0, V4("10.1.2.65"), 0, out r) && r.EntryIndex == s16);
        Assert.True(s.TryLookupV4(0, V4("10.1.2.65"), 0, out r) && r.EntryIndex == s26); // old snapshot unchanged
    }

    [Fact]
    public void DefaultRouteAndHostRouteInDir24Table()
    {
        var w = new MapCacheWriter(new MapCacheOptions { Dir24Threshold = 1 });
        int d = w.AddOrReplaceV4(0, 0, 0, One, 60, 0);
        int h = w.AddOrReplaceV4(0, 0xffffffff, 32, One, 60, 0);
        int h2 = w.AddOrReplaceV4(0, 0xfffffff0, 28, One, 60, 0);
        var s = w.Publish();
        Assert.True(s.TryLookupV4(0, 0x01020304, 0, out var r) && r.EntryIndex == d);
        Assert.True(s.TryLookupV4(0, 0xffffffff, 0, out r) && r.EntryIndex == h);
        Assert.True(s.TryLookupV4(0, 0xfffffff1, 0, out r) && r.EntryIndex == h2);
        Assert.True(s.TryLookupV4(0, 0xffffffe1, 0, out r) && r.EntryIndex == d);
    }

    /// <summary>
    /// Boundaries of the front tables: /0 and /32 at both ends of the space, a /16 (or /24) block with longer
    /// prefixes whose fallback is a shorter covering prefix, a block with longer prefixes and no cover (miss),
    /// /17 and /25 (first lengths past each front table), nested longer prefixes in one block.
    /// </summary>
    [Theory]
    [MemberData(nameof(Layouts))]
    public void Ipv4FrontTableBoundaries(string layout)
    {
        var w = new MapCacheWriter(Oracle.Options(layout));
        int Add(string p) => w.AddOrReplace(EidPrefix.Parse("[0]" + p), One, 60, 0);
        int d = Add("0.0.0.0/0"), z = Add("0.0.0.0/32"), h = Add("255.255.255.255/32");
        int a = Add("10.0.0.0/8"), b = Add("10.1.0.0/16"), g = Add("10.1.0.0/17"), c = Add("10.1.2.0/24"), c25 = Add("10.1.2.128/25");
        int e = Add("10.1.2.3/32"), f = Add("10.2.128.0/17"), n = Add("10.3.4.0/23");
        var w2 = new MapCacheWriter(Oracle.Options(layout));
        int lone = w2.AddOrReplace(EidPrefix.Parse("[0]20.0.0.0/20"), One, 60, 0);
        int lone2 = w2.AddOrReplace(EidPrefix.Parse("[0]20.0.1.0/24"), One, 60, 0);
        var s = w.Publish();
        var s2 = w2.Publish();
        Assert.Equal(Oracle.Expected(layout), s.V4LayoutOf(0));
        Assert.Equal(Oracle.Expected(layout), s2.V4LayoutOf(0));
        void Is(MapCacheSnapshot snap, string addr, int want) =>
            Assert.Equal(want, snap.TryLookupV4(0, V4(addr), 0, out var r) ? r.EntryIndex : -1);
        Is(s, "10.1.2.3", e);
        Is(s, "10.1.2.4", c);
        Is(s, "10.1.2.200", c25);
        Is(s, "10.1.3.1", g);
        Is(s, "10.1.200.1", b);
        Is(s, "10.2.200.1", f);
        Is(s, "10.2.1.1", a);        // block with a /17 but no /16: falls back to the /8
        Is(s, "10.3.5.9", n);
        Is(s, "10.3.6.9", a);
        Is(s, "11.0.0.1", d);
        Is(s, "255.255.255.255", h);
        Is(s, "255.255.255.254", d);
        Is(s, "0.0.0.0", z);
        Is(s, "0.0.0.1", d);
        Is(s2, "20.0.1.7", lone2);
        Is(s2, "20.0.2.7", lone);
        Is(s2, "20.0.16.1", -1);     // block with longer prefixes, none covering, no short cover: miss
        Is(s2, "20.1.0.1", -1);
    }

    [Fact]
    public void DefaultLayoutDependsOnPrefixCount()
    {
        var rng = new Random(8);
        foreach (var (count, want) in new[] { (MapCacheOptions.DefaultDir16Threshold - 1, V4Layout.Hash), (MapCacheOptions.DefaultDir16Threshold, V4Layout.Dir16), (16 * 1024 - 1, V4Layout.Dir16), (16 * 1024, V4Layout.Dir24) })
        {
            var w = new MapCacheWriter();
            var prefixes = Oracle.RandomV4Prefixes(rng, count);
            var withSlots = prefixes.Select(p => (p.Addr, p.Len, w.AddOrReplaceV4(0, p.Addr, p.Len, One, 60, 0))).ToList();
            var s = w.Publish();
            Assert.Equal(want, s.V4LayoutOf(0));
            foreach (var dst in Oracle.Destinations(rng, prefixes, 2000))
                Assert.Equal(Oracle.LinearV4(withSlots, dst), s.TryLookupV4(0, dst, 0, out var r) ? r.EntryIndex : -1);
        }
    }

    [Fact]
    public void Ipv6LongestPrefixWins()
    {
        var w = new MapCacheWriter();
        int a = w.AddOrReplace(EidPrefix.Parse("[0]2001:db8::/32"), One, 60, 0);
        int b = w.AddOrReplace(EidPrefix.Parse("[0]2001:db8:1::/48"), One, 60, 0);
        int c = w.AddOrReplace(EidPrefix.Parse("[0]2001:db8:1:2::/64"), One, 60, 0);
        int d = w.AddOrReplace(EidPrefix.Parse("[0]2001:db8:1:2:3::/80"), One, 60, 0);
        int e = w.AddOrReplace(EidPrefix.Parse("[0]2001:db8:1:2:3::9/128"), One, 60, 0);
        int z = w.AddOrReplace(EidPrefix.Parse("[0]::/0"), One, 60, 0);
        var s = w.Publish();
        int Look(string ip) => s.TryLookup(0, IPAddress.Parse(ip).GetAddressBytes(), 0, out var r) ? r.EntryIndex : -1;
        Assert.Equal(e, Look("2001:db8:1:2:3::9"));
        Assert.Equal(d, Look("2001:db8:1:2:3::8"));
        Assert.Equal(c, Look("2001:db8:1:2:4::8"));
        Assert.Equal(b, Look("2001:db8:1:3::1"));
        Assert.Equal(a, Look("2001:db8:2::1"));
        Assert.Equal(z, Look("2002::1"));
        Assert.Equal(-1, s.TryLookup(5, IPAddress.Parse("2002::1").GetAddressBytes(), 0, out _) ? 0 : -1);
    }

    [Fact]
    public void NonIpEidsMatchExactly()
    {
        var w = new MapCacheWriter();
        var names = new[] { "[0]'dino'", "[5]'dino'", "[0]0000-1111-2222/48", "[0]+1223344556677880/64", "[1](1.1.1.1/32, 224.1.1.1/32)", "[0]48-51-12-N-2-20-55-E/100" };
        var slots = new List<int>();
        foreach (var n in names)
        {
            var p = EidPrefix.Parse(n);
            slots.Add(w.AddOrReplace(p, One, 30, 5));
        }
        var s = w.Publish();
        for (int i = 0; i < names.Length; i++)
        {
            var key = EidKey.Build(EidPrefix.Parse(names[i]));
            Assert.True(s.TryLookupExact(key, 0, out var r), names[i]);
            Assert.Equal(slots[i], r.EntryIndex);
            Assert.Equal(LookupStatus.Forward, r.Status);
        }
        Assert.False(s.TryLookupExact(EidKey.Build(EidPrefix.Parse("[0]'dina'")), 0, out _));
        Assert.False(s.TryLookupExact(EidKey.Build(EidPrefix.Parse("[0]0000-1111-2223/48")), 0, out _));
        Assert.True(w.Remove(EidPrefix.Parse("[0]'dino'")));
        s = w.Publish();
        Assert.False(s.TryLookupExact(EidKey.Build(EidPrefix.Parse("[0]'dino'")), 0, out _));
        Assert.True(s.TryLookupExact(EidKey.Build(EidPrefix.Parse("[5]'dino'")), 0, out _));
    }

    [Fact]
    public void NegativeEntriesCarryActionTtlAndExpiry()
    {
        var w = new MapCacheWriter();
        w.AddOrReplace(EidPrefix.Parse("[0]10.0.0.0/8"), One, 60, 111);
        w.AddOrReplaceNegative(EidPrefix.Parse("[0]10.2.0.0/16"), MapReplyAction.Drop, 15, 222);
        w.AddOrReplaceNegative(EidPrefix.Parse("[0]10.3.0.0/16"), MapReplyAction.NativelyForward, 16, 333);
        w.AddOrReplaceNegative(EidPrefix.Parse("[0]2001:db8::/32"), MapReplyAction.SendMapRequest, 17, 444);
        var s = w.Publish();
        Assert.True(s.TryLookupV4(0, V4("10.2.3.4"), 0, out var r));
        Assert.Equal((LookupStatus.Negative, MapReplyAction.Drop, 15u, 222L, -1), (r.Status, r.Action, r.TtlSeconds, r.Expires, r.RlocIndex));
        Assert.True(s.TryLookupV4(0, V4("10.3.3.4"), 0, out r));
        Assert.Equal((LookupStatus.Negative, MapReplyAction.NativelyForward, 16u, 333L), (r.Status, r.Action, r.TtlSeconds, r.Expires));
        Assert.True(s.TryLookup(0, IPAddress.Parse("2001:db8::5").GetAddressBytes(), 0, out r));
        Assert.Equal((LookupStatus.Negative, MapReplyAction.SendMapRequest, 17u, 444L), (r.Status, r.Action, r.TtlSeconds, r.Expires));
        Assert.True(s.TryLookupV4(0, V4("10.4.3.4"), 0, out r));
        Assert.Equal((LookupStatus.Forward, 60u, 111L), (r.Status, r.TtlSeconds, r.Expires));
        // Replace negative with positive.
        w.AddOrReplace(EidPrefix.Parse("[0]10.2.0.0/16"), One, 5, 9);
        s = w.Publish();
        Assert.True(s.TryLookupV4(0, V4("10.2.3.4"), 0, out r));
        Assert.Equal(LookupStatus.Forward, r.Status);
        Assert.Equal(16, r.PrefixLength);
    }

    [Fact]
    public void RlocChoiceFollowsPriorityWeightAndReachability()
    {
        var a = IPAddress.Parse("192.0.2.1");
        var b = IPAddress.Parse("192.0.2.2");
        var c = IPAddress.Parse("2001:db8::3");
        var d = IPAddress.Parse("192.0.2.4");
        var w = new MapCacheWriter();
        w.AddOrReplace(EidPrefix.Parse("[0]10.0.0.0/8"), new RlocSpec[] { new(a, 1, 75), new(b, 1, 25), new(c, 2, 100), new(d, 255, 100) }, 60, 0);
        w.AddOrReplace(EidPrefix.Parse("[0]11.0.0.0/8"), new RlocSpec[] { new(d, 255, 100) }, 60, 0);
        w.AddOrReplace(EidPrefix.Parse("[0]12.0.0.0/8"), new RlocSpec[] { new(a, 1, 0), new(b, 1, 0) }, 60, 0);
        w.AddOrReplace(EidPrefix.Parse("[0]13.0.0.0/8"), new RlocSpec[] { new(a, 1, 50, Reachable: false), new(b, 3, 50) }, 60, 0);
        var s = w.Publish();

        var counts = new Dictionary<IPAddress, int>();
        var rng = new Random(1);
        for (int i = 0; i < 20000; i++)
        {
            uint flow = (uint)rng.NextInt64();
            Assert.True(s.TryLookupV4(0, V4("10.1.1.1"), flow, out var r));
            Assert.Equal(LookupStatus.Forward, r.Status);
            var addr = s.Rlocs.Address(r.RlocIndex);
            counts[addr] = counts.GetValueOrDefault(addr) + 1;
            Assert.True(s.TryLookupV4(0, V4("10.200.1.1"), flow, out var again));
            Assert.Equal(r.RlocIndex, again.RlocIndex); // same flow, same RLOC
        }
        Assert.Equal(2, counts.Count); // only priority 1
        Assert.InRange(counts[a], 14000, 16000);
        Assert.InRange(counts[b], 4000, 6000);

        Assert.True(s.TryLookupV4(0, V4("11.1.1.1"), 5, out var r11));
        Assert.Equal(LookupStatus.NoUsableRloc, r11.Status); // priority 255 never used
        var zero = new HashSet<int>();
        for (uint f = 0; f < 64; f++) { s.TryLookupV4(0, V4("12.1.1.1"), f * 0x0400_0000u, out var rz); zero.Add(rz.RlocIndex); }
        Assert.Equal(2, zero.Count); // all-zero weights: equal share
        Assert.True(s.TryLookupV4(0, V4("13.1.1.1"), 5, out var r13));
        Assert.Equal(b, s.Rlocs.Address(r13.RlocIndex)); // unreachable a skipped, next priority used

        // Reachability from probing: a and b down -> priority 2 RLOC c for 10/8.
        w.SetReachability(a, false);
        w.SetReachability(b, false);
        s = w.Publish();
        for (uint f = 0; f < 100; f++)
        {
            Assert.True(s.TryLookupV4(0, V4("10.1.1.1"), f * 40000000u, out var r));
            Assert.Equal(c, s.Rlocs.Address(r.RlocIndex));
            Assert.False(s.Rlocs.IsV4(r.RlocIndex));
            Assert.Equal(c.GetAddressBytes(), s.Rlocs.Bytes(r.RlocIndex).ToArray());
        }
        Assert.True(s.TryLookupV4(0, V4("13.1.1.1"), 5, out r13));
        Assert.Equal(LookupStatus.NoUsableRloc, r13.Status);
        w.SetReachability(a, true);
        s = w.Publish();
        Assert.True(s.TryLookupV4(0, V4("10.1.1.1"), 5, out var back));
        Assert.Equal(a, s.Rlocs.Address(back.RlocIndex));
        Assert.Equal(V4("192.0.2.1"), s.Rlocs.V4(back.RlocIndex));
    }

    [Theory]
    [MemberData(nameof(Layouts))]
    public void LookupsDoNotAllocate(string layout)
    {
        var w = new MapCacheWriter(Oracle.Options(layout));
        var rng = new Random(3);
        var prefixes = Oracle.RandomV4Prefixes(rng, 2000);
        foreach (var (a, l) in prefixes) w.AddOrReplaceV4(0, a, l, One, 60, 0);
        for (int i = 0; i < 200; i++) w.AddOrReplaceV6(0, new V6Key((ulong)rng.NextInt64(), 0), 64, One, 60, 0);
        w.AddOrReplace(EidPrefix.Parse("[0]'dino'"), One, 60, 0);
        var s = w.Publish();
        var dst = Oracle.Destinations(rng, prefixes, 4096);
        var flows = new uint[dst.Length];
        var results = new LookupResult[dst.Length];
        var v6 = new V6Key[64];
        var key = EidKey.Build(EidPrefix.Parse("[0]'dino'"));
        byte[] v4bytes = [10, 1, 2, 3];
        // Warm up (JIT, tiering) before measuring.
        for (int round = 0; round < 3; round++) Run();
        long before = GC.GetAllocatedBytesForCurrentThread();
        int hits = Run();
        long after = GC.GetAllocatedBytesForCurrentThread();
        Assert.True(hits > 0);
        Assert.Equal(0, after - before);

        int Run()
        {
            int h = 0;
            for (int i = 0; i < dst.Length; i++) if (s.TryLookupV4(0, dst[i], (uint)i, out _)) h++;
            h += s.LookupV4Batch(0, dst, flows, results);
            h += s.LookupV6Batch(0, v6, flows, results);
            if (s.TryLookupExact(key, 1, out _)) h++;
            if (s.TryLookup(0, v4bytes, 1, out _)) h++;
            return h;
        }
    }

    [SkippableFact]
    public void HardwareAndSoftwareHashBuildIdenticalTables()
    {
        Skip.IfNot(Crc32C.HardwareAvailable, "no CRC32 instruction on this CPU");
        var rng = new Random(5);
        var prefixes = Oracle.RandomV4Prefixes(rng, 5000);
        var hw = new MapCacheWriter(new MapCacheOptions { UseHardwareHash = true });
        var sw = new MapCacheWriter(new MapCacheOptions { UseHardwareHash = false });
        var v6 = new List<(V6Key, int)>();
        for (int i = 0; i < 1000; i++) v6.Add((Oracle.MaskV6(new V6Key((ulong)rng.NextInt64(), (ulong)rng.NextInt64()), i % 129), i % 129));
        foreach (var w in new[] { hw, sw })
        {
            foreach (var (a, l) in prefixes) w.AddOrReplaceV4(0, a, l, One, 60, 0);
            foreach (var (a, l) in v6) w.AddOrReplaceV6(0, a, l, One, 60, 0);
            w.AddOrReplace(EidPrefix.Parse("[0]'dino'"), One, 60, 0);
        }
        var sh = hw.Publish();
        var ss = sw.Publish();
        Assert.True(sh.HardwareHash);
        Assert.False(ss.HardwareHash);
        for (int len = 0; len <= 32; len++)
        {
            var th = sh.V4Table(0)!.TableForLength(len);
            var ts = ss.V4Table(0)!.TableForLength(len);
            Assert.Equal(th is null, ts is null);
            if (th is not null) Assert.True(th.Tags.SequenceEqual(ts!.Tags), $"/{len} tags differ");
        }
        Assert.True(sh.V6Table(0)!.Blocks > 0, "prefixes longer than /48 are indexed by their /48 block");
        Assert.Equal(sh.V6Table(0)!.Blocks, ss.V6Table(0)!.Blocks);
        for (int len = 0; len <= 128; len++)
        {
            var th = sh.V6Table(0)!.TableForLength(len);
            var ts = ss.V6Table(0)!.TableForLength(len);
            Assert.Equal(th is null, ts is null);
            if (th is not null) Assert.True(th.Tags.SequenceEqual(ts!.Tags), $"v6 /{len} tags differ");
        }
        foreach (var d in Oracle.Destinations(rng, prefixes, 50000))
        {
            Assert.Equal(sh.TryLookupV4(0, d, d, out var a) ? a.EntryIndex : -1, ss.TryLookupV4(0, d, d, out var b) ? b.EntryIndex : -1);
        }
        foreach (var (a, l) in v6)
        {
            Assert.True(sh.TryLookupV6(0, a, 0, out var x));
            Assert.True(ss.TryLookupV6(0, a, 0, out var y));
            Assert.Equal(x.EntryIndex, y.EntryIndex);
        }
        var key = EidKey.Build(EidPrefix.Parse("[0]'dino'"));
        Assert.True(sh.TryLookupExact(key, 0, out _) && ss.TryLookupExact(key, 0, out _));
        ulong v = 1;
        for (int i = 0; i < 1000; i++, v = v * 6364136223846793005UL + 1)
        {
            Assert.Equal(Crc32C.Hash64(7, v, true), Crc32C.Hash64(7, v, false));
            Assert.Equal(Crc32C.Hash32(7, (uint)v, true), Crc32C.Hash32(7, (uint)v, false));
        }
    }

    [Fact]
    public void SoftwareCrcMatchesStandardCheckValue()
    {
        Assert.Equal(0xE3069283u, ~Crc32C.HashBytes(0xffffffff, "123456789"u8, false));
        if (Crc32C.HardwareAvailable) Assert.Equal(0xE3069283u, ~Crc32C.HashBytes(0xffffffff, "123456789"u8, true));
    }

    [Fact]
    public void LookupHashEqualsSoftwareHash()
    {
        // Lookups hash with the instruction whenever the CPU has it, whatever path built the table: only sound
        // when both give the same value for every key.
        ulong v = 3;
        for (int i = 0; i < 10000; i++, v = v * 6364136223846793005UL + 1442695040888963407UL)
        {
            Assert.Equal(Crc32C.Hash32(Crc32C.Seed, (uint)v, false), Crc32C.Lookup32(Crc32C.Seed, (uint)v));
            Assert.Equal(Crc32C.Hash64(Crc32C.Seed, v, false), Crc32C.Lookup64(Crc32C.Seed, v));
        }
    }

    [Theory]
    [InlineData(64)]
    [InlineData(1400)]
    public void FastEncapsulationMatchesWireWriteHeaders(int innerLength)
    {
        var rng = new Random(innerLength);
        var a = new byte[64 + innerLength];
        rng.NextBytes(a.AsSpan(64));
        var b = (byte[])a.Clone();
        var src = IPAddress.Parse("192.0.2.10");
        var dst = IPAddress.Parse("198.51.100.77");
        int sa = Encapsulation.WriteHeaders(a, 64, innerLength, src, dst, 54321, DataHeader.ForInstance(0x123456, 0xabcdef));
        int sb = FastEncapsulation.WriteV4(b, 64, innerLength, V4("192.0.2.10"), V4("198.51.100.77"), 54321, 0x123456, 0xabcdef);
        Assert.Equal(sa, sb);
        Assert.Equal(a, b);

        var s6 = IPAddress.Parse("2001:db8::1");
        var d6 = IPAddress.Parse("2001:db8::2");
        a = new byte[64 + innerLength];
        rng.NextBytes(a.AsSpan(64));
        b = (byte[])a.Clone();
        sa = Encapsulation.WriteHeaders(a, 64, innerLength, s6, d6, 50000, DataHeader.ForInstance(9, 1), zeroIpv6UdpChecksum: true);
        sb = FastEncapsulation.WriteV6ZeroChecksum(b, 64, innerLength, s6.GetAddressBytes(), d6.GetAddressBytes(), 50000, 9, 1);
        Assert.Equal(sa, sb);
        Assert.Equal(a, b);
        Assert.Equal(-1, FastEncapsulation.WriteV4(b, 10, innerLength, 1, 2, 3, 4, 5));
    }

    [Fact]
    public void FlowHashIsStablePerFlowAndSpreads()
    {
        var pkt = new byte[40];
        pkt[0] = 0x45; pkt[9] = 17;
        pkt[12] = 10; pkt[15] = 1; pkt[16] = 10; pkt[19] = 2;
        pkt[20] = 0x30; pkt[21] = 0x39; pkt[22] = 0; pkt[23] = 53;
        uint h1 = FlowHash.FromPacket(pkt);
        Assert.Equal(h1, FlowHash.FromPacket(pkt));
        Assert.Equal(h1, FlowHash.FromPacket(pkt)); // deterministic
        pkt[21] = 0x3a;
        Assert.NotEqual(h1, FlowHash.FromPacket(pkt));
        Assert.InRange(FlowHash.SourcePort(h1), 49152, 65535);
        var buckets = new int[4];
        for (uint p = 0; p < 4000; p++) buckets[FlowHash.V4(1, 2, 6, (ushort)p, 80) >> 30]++;
        Assert.All(buckets, c => Assert.InRange(c, 800, 1200));
    }
}
