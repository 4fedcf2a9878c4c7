using System.Net;
using Lisp.MapCache;

namespace Lisp.Perf;

/// <summary>Deterministic random prefix sets and destinations shared by the benchmarks.</summary>
public static class Data
{
    public static uint Mask(int len) => len == 0 ? 0u : uint.MaxValue << (32 - len);
    public static readonly RlocSpec[] Rlocs = [new(IPAddress.Parse("192.0.2.1"), 1, 50), new(IPAddress.Parse("192.0.2.2"), 1, 50)];

    /// <summary>Route-table-like length mix: 2 % /0-/11, 8 % /12-/15, 65 % /16-/24, 25 % /25-/32 (host EIDs).</summary>
    public static List<(uint Addr, int Len)> V4Prefixes(int count, int seed = 1)
    {
        var rng = new Random(seed);
        var seen = new HashSet<(uint, int)>();
        var list = new List<(uint, int)>(count);
        while (list.Count < count)
        {
            int r = rng.Next(100);
            int len = r < 2 ? rng.Next(0, 12) : r < 10 ? rng.Next(12, 16) : r < 75 ? rng.Next(16, 25) : rng.Next(25, 33);
            uint a = (uint)rng.NextInt64() & Mask(len);
            if (seen.Add((a, len))) list.Add((a, len));
        }
        return list;
    }

    /// <summary>Half inside a random installed prefix, half uniform over the address space.</summary>
    public static uint[] V4Destinations(List<(uint Addr, int Len)> prefixes, int count, int seed = 2)
    {
        var rng = new Random(seed);
        var d = new uint[count];
        for (int i = 0; i < count; i++)
        {
            if ((i & 1) == 0)
            {
                var (a, l) = prefixes[rng.Next(prefixes.Count)];
                d[i] = a | ((uint)rng.NextInt64() & ~Mask(l));
            }
            else d[i] = (uint)rng.NextInt64();
        }
        return d;
    }

    /// <summary>IPv6 prefixes under 16 /32 allocations: lengths /32-/64 and /128 hosts.</summary>
    public static List<(V6Key Addr, int Len)> V6Prefixes(int count, int seed = 3)
    {
        var rng = new Random(seed);
        var roots = Enumerable.Range(0, 16).Select(_ => (ulong)rng.NextInt64() & 0xffff_ffff_0000_0000UL).ToArray();
        var seen = new HashSet<(V6Key, int)>();
        var list = new List<(V6Key, int)>(count);
        while (list.Count < count)
        {
            int r = rng.Next(100);
            int len = r < 70 ? rng.Next(32, 65) : r < 80 ? rng.Next(65, 128) : 128;
            var a = MaskV6(new V6Key(roots[rng.Next(roots.Length)] | ((ulong)rng.NextInt64() & 0xffff_ffff), (ulong)rng.NextInt64()), len);
            if (seen.Add((a, len))) list.Add((a, len));
        }
        return list;
    }

    public static V6Key MaskV6(V6Key a, int len)
    {
        ulong hi = len >= 64 ? a.Hi : len == 0 ? 0 : a.Hi & (ulong.MaxValue << (64 - len));
        ulong lo = len >= 128 ? a.Lo : len <= 64 ? 0 : a.Lo & (ulong.MaxValue << (128 - len));
        return new V6Key(hi, lo);
    }

    public static V6Key[] V6Destinations(List<(V6Key Addr, int Len)> prefixes, int count, int seed = 4)
    {
        var rng = new Random(seed);
        var d = new V6Key[count];
        for (int i = 0; i < count; i++)
        {
            var (a, l) = prefixes[rng.Next(prefixes.Count)];
            var m = MaskV6(new V6Key(ulong.MaxValue, ulong.MaxValue), l);
            var x = new V6Key((ulong)rng.NextInt64(), (ulong)rng.NextInt64());
            d[i] = (i & 1) == 0 ? new V6Key(a.Hi | (x.Hi & ~m.Hi), a.Lo | (x.Lo & ~m.Lo)) : new V6Key(a.Hi & 0xffff_ffff_0000_0000UL | (x.Hi & 0xffff_ffff), x.Lo);
        }
        return d;
    }
}

/// <summary>The baseline every lookup benchmark names: one Dictionary keyed (masked address, length), probed over the populated lengths longest first.</summary>
public sealed class DictionaryLpmV4
{
    private readonly Dictionary<(uint, int), int> _map = new();
    private readonly int[] _lengths;
    public DictionaryLpmV4(List<(uint Addr, int Len)> prefixes)
    {
        for (int i = 0; i < prefixes.Count; i++) _map[prefixes[i]] = i;
        _lengths = prefixes.Select(p => p.Len).Distinct().OrderDescending().ToArray();
    }
    public int Lookup(uint dst)
    {
        foreach (int l in _lengths)
            if (_map.TryGetValue((dst & Mask(l), l), out int v)) return v;
        return -1;
    }
    private static uint Mask(int len) => len == 0 ? 0u : uint.MaxValue << (32 - len);
}

public sealed class DictionaryLpmV6
{
    private readonly Dictionary<(UInt128, int), int> _map = new();
    private readonly int[] _lengths;
    public DictionaryLpmV6(List<(V6Key Addr, int Len)> prefixes)
    {
        for (int i = 0; i < prefixes.Count; i++) _map[(ToU(prefixes[i].Addr), prefixes[i].Len)] = i;
        _lengths = prefixes.Select(p => p.Len).Distinct().OrderDescending().ToArray();
    }
    private static UInt128 ToU(V6Key k) => new(k.Hi, k.Lo);
    public int Lookup(V6Key dst)
    {
        var u = ToU(dst);
        foreach (int l in _lengths)
        {
            UInt128 m = l == 0 ? UInt128.Zero : UInt128.MaxValue << (128 - l);
            if (_map.TryGetValue((u & m, l), out int v)) return v;
        }
        return -1;
    }
}
