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
/// <item>DIR-24-8 (instances with at least <see cref="MapCacheOptions.Dir24Threshold"/> prefixes): a 2^24-entry
/// int table indexed by the top 24 address bits, plus 256-entry groups for prefixes longer than /24. One
/// address-computed load per lookup (two for &gt;/24), no data-dependent branches, so independent lookups in
/// a batch overlap their cache misses. Measured in perf/RESULTS.md: at 100k and 1M prefixes hash LPM probes
/// several lengths per lookup and misses cache on each; DIR-24-8 is several times faster there. It costs a
/// fixed 64 MiB per instance, hence the threshold.</item>
/// </list>
/// </summary>
internal sealed class V4Lpm
{
    // DIR-24-8 encoding: 0 = no route; v > 0: slot + 1; v < 0: tbl8 group index in the low 31 bits.
    private readonly int[]? _tbl24;
    private readonly int[]? _tbl8;
    private readonly ulong _lengths;   // bit L set when some prefix has length L (0..32)
    private readonly ExactTable<uint, V4Ops>?[]? _tables;

    public int Count { get; }
    public bool IsDir24 => _tbl24 is not null;

    public long Bytes =>
        _tbl24 is not null ? (long)_tbl24.Length * 4 + (long)_tbl8!.Length * 4
        : _tables!.Sum(t => t?.Bytes ?? 0);

    /// <param name="prefixes">(network address host-order, length, slot); unique (address, length).</param>
    public V4Lpm(List<(uint Addr, byte Len, int Slot)> prefixes, bool hardware, int dir24Threshold)
    {
        Count = prefixes.Count;
        if (prefixes.Count >= dir24Threshold)
        {
            prefixes.Sort((a, b) => a.Len.CompareTo(b.Len));
            _tbl24 = new int[1 << 24];
            int groups = 0;
            foreach (var p in prefixes) if (p.Len > 24) groups++;
            var tbl8 = new int[Math.Max(1, groups) * 256];
            int used = 0;
            foreach (var (addr, len, slot) in prefixes)
            {
                if (len <= 24)
                {
                    // Shorter lengths are painted first, so longer ones overwrite them.
                    _tbl24.AsSpan((int)(addr >> 8), 1 << (24 - len)).Fill(slot + 1);
                }
                else
                {
                    int i24 = (int)(addr >> 8);
                    int g = _tbl24[i24];
                    if (g >= 0)
                    {
                        tbl8.AsSpan(used * 256, 256).Fill(g);
                        g = used++ | int.MinValue;
                        _tbl24[i24] = g;
                    }
                    int group = g & int.MaxValue;
                    tbl8.AsSpan(group * 256 + (int)(addr & 0xff), 1 << (32 - len)).Fill(slot + 1);
                }
            }
            _tbl8 = used == groups ? tbl8 : tbl8.AsSpan(0, Math.Max(1, used) * 256).ToArray();
            return;
        }
        var byLen = new List<uint>[33];
        var slots = new List<int>[33];
        foreach (var (addr, len, slot) in prefixes)
        {
            (byLen[len] ??= new()).Add(addr);
            (slots[len] ??= new()).Add(slot);
            _lengths |= 1UL << len;
        }
        _tables = new ExactTable<uint, V4Ops>?[33];
        for (int l = 0; l <= 32; l++)
        {
            if (byLen[l] is { } keys) _tables[l] = new ExactTable<uint, V4Ops>(CollectionsMarshal.AsSpan(keys), CollectionsMarshal.AsSpan(slots[l]), hardware);
        }
    }

    internal ExactTable<uint, V4Ops>? TableForLength(int len) => _tables?[len];

    /// <summary>Slot of the longest prefix covering <paramref name="addr"/> (host order), or -1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int Lookup(uint addr)
    {
        if (_tbl24 is { } t24)
        {
            int v = Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(t24), (nint)(addr >> 8));
            if (v < 0) v = Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_tbl8!), (nint)(((uint)(v & int.MaxValue) << 8) | (addr & 0xff)));
            return v - 1;
        }
        return LookupHash(addr);
    }

    private int LookupHash(uint addr)
    {
        ulong bits = _lengths;
        var tables = _tables!;
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
