using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Lisp.MapCache;

/// <summary>
/// IPv4 longest-prefix match for one instance-id. Values are entry slots (indexes into the snapshot's entry
/// array). Two layouts, chosen at build by prefix count:
/// <list type="bullet">
/// <item>Hash LPM (small instances): one <see cref="ExactTable{TKey,TOps}"/> per populated prefix length and a
/// 64-bit bitmap of populated lengths, probed longest first; memory is proportional to the prefix count.</item>
/// <item>DIR-24 + hashed tail (instances with at least <see cref="MapCacheOptions.Dir24Threshold"/> prefixes):
/// a 2^24-entry int table indexed by the top 24 address bits holds the best /0../24 answer, so most lookups
/// are one address-computed load with no data-dependent branch and independent lookups in a batch overlap
/// their cache misses. Prefixes longer than /24 (host EIDs are common in LISP) go into the per-length hash
/// tables and set the sign bit of their /24's entry; only lookups under such a /24 probe the tail tables.
/// Classic DIR-24-8 would give each such /24 a 1 KiB tbl8 group: with 25 % of 1M prefixes longer than /24
/// that is 256 MiB, against ~8 MiB for the hashed tail. Measured in perf/RESULTS.md: at 100k and 1M
/// prefixes hash LPM probes several lengths per lookup and misses cache on each; DIR-24 is several times
/// faster there. It costs a fixed 64 MiB per instance, hence the threshold.</item>
/// </list>
/// </summary>
internal sealed class V4Lpm
{
    // DIR-24 encoding: low 31 bits = slot + 1 of the best prefix of length <= 24 (0 = none);
    // sign bit = some prefix longer than /24 lies in this /24 (probe the tail tables first).
    private readonly int[]? _tbl24;
    private readonly ulong _lengths;   // bit L set when a hash table exists for length L (all lengths, or 25..32 with DIR-24)
    private readonly ExactTable<uint, V4Ops>?[] _tables = new ExactTable<uint, V4Ops>?[33];

    public int Count { get; }
    public bool IsDir24 => _tbl24 is not null;

    public long Bytes => (_tbl24 is null ? 0 : (long)_tbl24.Length * 4) + _tables.Sum(t => t?.Bytes ?? 0);

    /// <param name="prefixes">(network address host-order, length, slot); unique (address, length).</param>
    public V4Lpm(List<(uint Addr, byte Len, int Slot)> prefixes, bool hardware, int dir24Threshold)
    {
        Count = prefixes.Count;
        bool dir = prefixes.Count >= dir24Threshold;
        var byLen = new List<uint>[33];
        var slots = new List<int>[33];
        if (dir)
        {
            prefixes.Sort((a, b) => a.Len.CompareTo(b.Len));
            _tbl24 = new int[1 << 24];
        }
        foreach (var (addr, len, slot) in prefixes)
        {
            if (dir && len <= 24)
            {
                // Ascending length order: longer prefixes overwrite the shorter ones they sit in.
                _tbl24!.AsSpan((int)(addr >> 8), 1 << (24 - len)).Fill(slot + 1);
                continue;
            }
            if (dir) _tbl24![addr >> 8] |= int.MinValue;
            (byLen[len] ??= new()).Add(addr);
            (slots[len] ??= new()).Add(slot);
            _lengths |= 1UL << len;
        }
        for (int l = 0; l <= 32; l++)
        {
            if (byLen[l] is { } keys) _tables[l] = new ExactTable<uint, V4Ops>(CollectionsMarshal.AsSpan(keys), CollectionsMarshal.AsSpan(slots[l]), hardware);
        }
    }

    internal ExactTable<uint, V4Ops>? TableForLength(int len) => _tables[len];

    /// <summary>Slot of the longest prefix covering <paramref name="addr"/> (host order), or -1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int Lookup(uint addr)
    {
        if (_tbl24 is { } t24)
        {
            int v = Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(t24), (nint)(addr >> 8));
            if (v < 0)
            {
                int tail = LookupHash(addr);
                if (tail >= 0) return tail;
                v &= int.MaxValue;
            }
            return v - 1;
        }
        return LookupHash(addr);
    }

    private int LookupHash(uint addr)
    {
        ulong bits = _lengths;
        var tables = _tables;
        while (bits != 0)
        {
            int len = 63 - BitOperations.LeadingZeroCount(bits);
            uint mask = len == 0 ? 0u : uint.MaxValue << (32 - len);
            if (tables[len]!.TryGet(addr & mask, out int slot)) return slot;
            bits &= ~(1UL << len);
        }
        return -1;
    }
}

/// <summary>IPv6 longest-prefix match for one instance-id: one hashed exact table per populated length
/// (0..128) and a 129-bit bitmap of populated lengths, probed longest first.</summary>
internal sealed class V6Lpm
{
    private readonly ulong _lenHi;   // bit (L-64) for L in 64..127
    private readonly ulong _lenLo;   // bit L for L in 0..63
    private readonly bool _len128;
    private readonly ExactTable<V6Key, V6Ops>?[] _tables = new ExactTable<V6Key, V6Ops>?[129];
    public int Count { get; }
    public long Bytes => _tables.Sum(t => t?.Bytes ?? 0);

    public V6Lpm(List<(V6Key Addr, byte Len, int Slot)> prefixes, bool hardware)
    {
        Count = prefixes.Count;
        var byLen = new List<V6Key>[129];
        var slots = new List<int>[129];
        foreach (var (addr, len, slot) in prefixes)
        {
            (byLen[len] ??= new()).Add(addr);
            (slots[len] ??= new()).Add(slot);
            if (len == 128) _len128 = true;
            else if (len >= 64) _lenHi |= 1UL << (len - 64);
            else _lenLo |= 1UL << len;
        }
        for (int l = 0; l <= 128; l++)
        {
            if (byLen[l] is { } keys) _tables[l] = new ExactTable<V6Key, V6Ops>(CollectionsMarshal.AsSpan(keys), CollectionsMarshal.AsSpan(slots[l]), hardware);
        }
    }

    public static V6Key Mask(V6Key a, int len) =>
        len >= 128 ? a
        : len > 64 ? new V6Key(a.Hi, a.Lo & (ulong.MaxValue << (128 - len)))
        : len == 64 ? new V6Key(a.Hi, 0)
        : len == 0 ? default
        : new V6Key(a.Hi & (ulong.MaxValue << (64 - len)), 0);

    public int Lookup(V6Key addr)
    {
        int slot;
        if (_len128 && _tables[128]!.TryGet(addr, out slot)) return slot;
        ulong bits = _lenHi;
        while (bits != 0)
        {
            int b = 63 - BitOperations.LeadingZeroCount(bits);
            int len = 64 + b;
            var k = new V6Key(addr.Hi, len == 64 ? 0 : addr.Lo & (ulong.MaxValue << (128 - len)));
            if (_tables[len]!.TryGet(k, out slot)) return slot;
            bits &= ~(1UL << b);
        }
        bits = _lenLo;
        while (bits != 0)
        {
            int len = 63 - BitOperations.LeadingZeroCount(bits);
            var k = new V6Key(len == 0 ? 0 : addr.Hi & (ulong.MaxValue << (64 - len)), 0);
            if (_tables[len]!.TryGet(k, out slot)) return slot;
            bits &= ~(1UL << len);
        }
        return -1;
    }
}
