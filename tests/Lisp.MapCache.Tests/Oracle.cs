using Xunit;
using Lisp.MapCache;

namespace Lisp.MapCache.Tests;

/// <summary>Naive LPM oracles: a linear scan over every prefix, and a per-length dictionary probe for big runs.</summary>
internal static class Oracle
{
    public static uint Mask(int len) => len == 0 ? 0u : uint.MaxValue << (32 - len);

    /// <summary>IPv4 layouts every layout-sensitive test runs under, each forced whatever the prefix count.</summary>
    public static TheoryData<string> Layouts => new() { "hash", "dir16", "dir24" };

    public static MapCacheOptions Options(string layout) => layout switch
    {
        "hash" => new MapCacheOptions { Dir24Threshold = int.MaxValue, Dir16Threshold = int.MaxValue },
        "dir16" => new MapCacheOptions { Dir24Threshold = int.MaxValue, Dir16Threshold = 1 },
        "dir24" => new MapCacheOptions { Dir24Threshold = 1 },
        _ => throw new ArgumentException(layout),
    };

    public static V4Layout Expected(string layout) => layout switch
    {
        "hash" => V4Layout.Hash,
        "dir16" => V4Layout.Dir16,
        _ => V4Layout.Dir24,
    };

    /// <summary>Linear scan: the longest prefix whose masked address equals the masked destination.</summary>
    public static int LinearV4(IReadOnlyList<(uint Addr, int Len, int Slot)> prefixes, uint dst)
    {
        int best = -1, bestLen = -1;
        foreach (var (addr, len, slot) in prefixes)
        {
            if (len > bestLen && (dst & Mask(len)) == addr) { best = slot; bestLen = len; }
        }
        return best;
    }

    public static int LinearV6(IReadOnlyList<(V6Key Addr, int Len, int Slot)> prefixes, V6Key dst)
    {
        int best = -1, bestLen = -1;
        foreach (var (addr, len, slot) in prefixes)
        {
            if (len > bestLen && MaskV6(dst, len) == addr) { best = slot; bestLen = len; }
        }
        return best;
    }

    public static V6Key MaskV6(V6Key a, int len)
    {
        ulong hi = len >= 64 ? a.Hi : len == 0 ? 0 : a.Hi & (ulong.MaxValue << (64 - len));
        ulong lo = len >= 128 ? a.Lo : len <= 64 ? 0 : a.Lo & (ulong.MaxValue << (128 - len));
        return new V6Key(hi, lo);
    }

    /// <summary>Per-length dictionaries probed longest first (checked against <see cref="LinearV4"/> on samples).</summary>
    public sealed class DictV4
    {
        private readonly Dictionary<uint, int>?[] _byLen = new Dictionary<uint, int>?[33];
        public DictV4(IEnumerable<(uint Addr, int Len, int Slot)> prefixes)
        {
            foreach (var (a, l, s) in prefixes) (_byLen[l] ??= new())[a] = s;
        }
        public int Lookup(uint dst)
        {
            for (int l = 32; l >= 0; l--)
            {
                if (_byLen[l] is { } d && d.TryGetValue(dst & Mask(l), out int s)) return s;
            }
            return -1;
        }
    }

    /// <summary>Random prefixes with a route-table-like length mix (mostly /16../24, some short, some host routes).</summary>
    public static List<(uint Addr, int Len)> RandomV4Prefixes(Random rng, int count)
    {
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

    /// <summary>Destinations: half inside a random installed prefix (random host bits), half uniformly random.</summary>
    public static uint[] Destinations(Random rng, IReadOnlyList<(uint Addr, int Len)> prefixes, int count)
    {
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
}
