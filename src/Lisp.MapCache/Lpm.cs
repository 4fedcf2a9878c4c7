using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Lisp.MapCache;

/// <summary>Which IPv4 structure a <see cref="V4Lpm"/> was built with (chosen by prefix count).</summary>
internal enum V4Layout : byte { Hash, Dir16, Dir24 }

/// <summary>
/// IPv4 longest-prefix match for one instance-id. Values are entry slots (indexes into the snapshot's entry
/// array). Three layouts, chosen at build by prefix count:
/// <list type="bullet">
/// <item>Hash LPM (tiny instances, fewer than <see cref="MapCacheOptions.Dir16Threshold"/> prefixes): one
/// <see cref="ExactTable{TKey,TOps}"/> per populated prefix length and a 64-bit bitmap of populated lengths,
/// probed longest first; memory is proportional to the prefix count.</item>
/// <item>DIR-16 + per-/16 length bitmaps (small instances, below <see cref="MapCacheOptions.Dir24Threshold"/>):
/// a 2^16-entry int table (256 KiB) indexed by the top 16 address bits holds the best /0../16 answer. A /16
/// under which some longer prefix lies has the sign bit set and points into a small side array holding
/// that /16's best /0../16 answer and a 16-bit mask of which lengths 17..32 occur under that /16; a lookup
/// probes only those lengths' hash tables (usually 0-2, not every populated length) and falls back to
/// the /0../16 answer. Measured (perf/RESULTS.md): with the route-table mix ~30 lengths are populated at
/// 1k prefixes, and hash LPM took ~50-70 ns per lookup against ~10-20 ns here.</item>
/// <item>DIR-24 + hashed tail (instances with at least <see cref="MapCacheOptions.Dir24Threshold"/> prefixes):
/// a 2^24-entry int table indexed by the top 24 address bits holds the best /0../24 answer, so most lookups
/// are one address-computed load with no data-dependent branch and independent lookups in a batch overlap
/// their cache misses. Prefixes longer than /24 (host EIDs are common in LISP) go into the per-length hash
/// tables and their /24's entry gets the sign bit and points into the side array (best /0../24 answer and
/// which lengths 25..32 occur under that /24), so only lookups under such a /24 probe, and only the lengths
/// present there.
/// Classic DIR-24-8 would give each such /24 a 1 KiB tbl8 group: with 25 % of 1M prefixes longer than /24
/// that is 256 MiB, against ~8 MiB for the hashed tail. Measured in perf/RESULTS.md: at 100k and 1M
/// prefixes hash LPM probes several lengths per lookup and misses cache on each; DIR-24 is several times
/// faster there. It costs a fixed 64 MiB per instance, hence the threshold.</item>
/// </list>
/// </summary>
internal sealed class V4Lpm
{
    /// <summary>A /16 (DIR-16) or /24 (DIR-24) under which longer prefixes lie.</summary>
    private struct Longer
    {
        public uint Lengths;   // bit b: some prefix of length Stride+1+b lies under this /16 or /24
        public int Best;       // slot + 1 of the best prefix of length <= Stride covering it (0 = none)
    }

    // Front table (DIR-16 or DIR-24) encoding: value >= 0: slot + 1 of the best prefix of length <= stride
    // (0 = none); value < 0: (value & int.MaxValue) indexes _longer (longer prefixes lie in this block).
    private readonly int[]? _front;
    private readonly Longer[] _longer = [];
    private readonly int _stride;      // 16 or 24 (0 for hash LPM)
    private readonly ulong _lengths;   // bit L set when a hash table exists for length L
    private readonly ExactTable<uint, V4Ops>?[] _tables = new ExactTable<uint, V4Ops>?[33];

    public int Count { get; }
    public V4Layout Layout { get; }
    public bool IsDir24 => Layout == V4Layout.Dir24;

    public long Bytes => (_front is null ? 0 : (long)_front.Length * 4) + (long)_longer.Length * 8 + _tables.Sum(t => t?.Bytes ?? 0);

    /// <param name="prefixes">(network address host-order, length, slot); unique (address, length).</param>
    public V4Lpm(List<(uint Addr, byte Len, int Slot)> prefixes, bool hardware, int dir16Threshold, int dir24Threshold)
    {
        Count = prefixes.Count;
        Layout = prefixes.Count >= dir24Threshold ? V4Layout.Dir24 : prefixes.Count >= dir16Threshold ? V4Layout.Dir16 : V4Layout.Hash;
        _stride = Layout switch { V4Layout.Dir24 => 24, V4Layout.Dir16 => 16, _ => 0 };
        var byLen = new List<uint>[33];
        var slots = new List<int>[33];
        uint[]? longMask = null;
        if (_stride != 0)
        {
            prefixes.Sort((a, b) => a.Len.CompareTo(b.Len));
            _front = new int[1 << _stride];
            longMask = new uint[1 << _stride];
        }
        int shift = 32 - _stride;
        foreach (var (addr, len, slot) in prefixes)
        {
            if (_stride != 0)
            {
                if (len <= _stride)
                {
                    // Ascending length order: longer prefixes overwrite the shorter ones they sit in.
                    _front!.AsSpan((int)(addr >> shift), 1 << (_stride - len)).Fill(slot + 1);
                    continue;
                }
                longMask![addr >> shift] |= 1u << (len - _stride - 1);
            }
            (byLen[len] ??= new()).Add(addr);
            (slots[len] ??= new()).Add(slot);
            _lengths |= 1UL << len;
        }
        if (longMask is not null)
        {
            int n = 0;
            foreach (uint m in longMask) if (m != 0) n++;
            _longer = new Longer[n];
            n = 0;
            for (int i = 0; i < longMask.Length; i++)
            {
                if (longMask[i] == 0) continue;
                _longer[n] = new Longer { Lengths = longMask[i], Best = _front![i] };
                _front[i] = int.MinValue | n;
                n++;
            }
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
        if (_front is { } front)
        {
            int v = Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(front), (nint)(addr >> (32 - _stride)));
            if (v < 0) return LookupLonger(addr, v & int.MaxValue);
            return v - 1;
        }
        return LookupHash(addr);
    }

    private int LookupLonger(uint addr, int index)
    {
        ref Longer e = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_longer), index);
        uint bits = e.Lengths;
        int first = _stride + 1;
        var tables = _tables;
        do
        {
            int b = 31 - BitOperations.LeadingZeroCount(bits);
            int len = first + b;
            // len is 17..32 here, so the shift count 32 - len is 0..15.
            if (tables[len]!.TryGet(addr & (uint.MaxValue << (32 - len)), out int slot)) return slot;
            bits &= ~(1u << b);
        } while (bits != 0);
        return e.Best - 1;
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

/// <summary>
/// IPv6 longest-prefix match for one instance-id: binary search on prefix lengths (Waldvogel et al., "Scalable
/// high speed IP routing lookups", SIGCOMM 1997). The distinct populated lengths are sorted; level i has one
/// hashed exact table keyed by the address masked to that length. Every prefix leaves a marker (its address
/// masked to the level's length) at each level where the binary search for it goes right (towards longer
/// lengths), and every key, marker or prefix, stores its best match: the longest real prefix of length
/// &lt;= the level's covering it (precomputed, -1 = none). A lookup hits -> remember that answer and go
/// longer; misses -> go shorter: ceil(log2(lengths + 1)) probes instead of one per populated length.
/// Measured (perf/RESULTS.md, IPv6 100k): the synthetic set populates ~97 lengths and the previous
/// longest-first probe of every populated length took 224-248 ns per lookup; binary search does at most 7
/// probes. Costs: up to ~log2(lengths) markers per prefix (more table memory, a sort at build).
/// </summary>
internal sealed class V6Lpm
{
    private readonly byte[] _lens;                               // sorted ascending distinct lengths
    private readonly ExactTable<V6Key, V6Ops>[] _levels;         // value: best-match slot, -1 = none
    public int Count { get; }
    /// <summary>Keys in all levels: prefixes plus markers.</summary>
    public int Keys { get; }
    public long Bytes => _levels.Sum(t => t.Bytes);

    public V6Lpm(List<(V6Key Addr, byte Len, int Slot)> prefixes, bool hardware)
    {
        Count = prefixes.Count;
        var present = new bool[129];
        foreach (var p in prefixes) present[p.Len] = true;
        _lens = Enumerable.Range(0, 129).Where(l => present[l]).Select(l => (byte)l).ToArray();
        int n = _lens.Length;
        // Per level: key -> real prefix slot (or -1 for a marker only).
        var keys = new Dictionary<V6Key, int>[n];
        for (int i = 0; i < n; i++) keys[i] = new();
        foreach (var (addr, len, slot) in prefixes)
        {
            int lo = 0, hi = n - 1;
            while (lo <= hi)
            {
                int mid = (lo + hi) >>> 1;
                if (_lens[mid] < len)
                {
                    keys[mid].TryAdd(Mask(addr, _lens[mid]), -1);
                    lo = mid + 1;
                }
                else if (_lens[mid] == len)
                {
                    keys[mid][addr] = slot;
                    break;
                }
                else hi = mid - 1;
            }
        }
        // Best match of every key: sorted by (address, length) a covering prefix comes before everything it
        // covers and the covering prefixes seen so far nest, so a stack of open real prefixes gives it.
        int total = 0;
        foreach (var d in keys) total += d.Count;
        Keys = total;
        var all = new (UInt128 Addr, byte Len, int Level, int Slot)[total];
        int k = 0;
        for (int i = 0; i < n; i++)
            foreach (var (key, slot) in keys[i]) all[k++] = (new UInt128(key.Hi, key.Lo), _lens[i], i, slot);
        Array.Sort(all, static (a, b) => a.Addr != b.Addr ? a.Addr.CompareTo(b.Addr) : a.Len.CompareTo(b.Len));
        var stack = new List<(UInt128 Addr, byte Len, int Slot)>();
        var levelKeys = new List<V6Key>[n];
        var levelValues = new List<int>[n];
        for (int i = 0; i < n; i++) { levelKeys[i] = new(keys[i].Count); levelValues[i] = new(keys[i].Count); }
        foreach (var (addr, len, level, slot) in all)
        {
            while (stack.Count > 0 && (stack[^1].Len == 0 ? UInt128.Zero : addr & (UInt128.MaxValue << (128 - stack[^1].Len))) != stack[^1].Addr)
                stack.RemoveAt(stack.Count - 1);
            if (slot >= 0) stack.Add((addr, len, slot));
            levelKeys[level].Add(new V6Key((ulong)(addr >> 64), (ulong)addr));
            levelValues[level].Add(stack.Count > 0 ? stack[^1].Slot : -1);
        }
        _levels = new ExactTable<V6Key, V6Ops>[n];
        for (int i = 0; i < n; i++)
            _levels[i] = new ExactTable<V6Key, V6Ops>(CollectionsMarshal.AsSpan(levelKeys[i]), CollectionsMarshal.AsSpan(levelValues[i]), hardware);
    }

    internal ExactTable<V6Key, V6Ops>? TableForLength(int len) => Array.IndexOf(_lens, (byte)len) is int i && i >= 0 ? _levels[i] : null;

    // Inlined: it is called once per binary-search level; the AOT binary kept it as a call before.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V6Key Mask(V6Key a, int len) =>
        len >= 128 ? a
        : len > 64 ? new V6Key(a.Hi, a.Lo & (ulong.MaxValue << (128 - len)))
        : len == 64 ? new V6Key(a.Hi, 0)
        : len == 0 ? default
        : new V6Key(a.Hi & (ulong.MaxValue << (64 - len)), 0);

    public int Lookup(V6Key addr)
    {
        var lens = _lens;
        var levels = _levels;
        int lo = 0, hi = lens.Length - 1, best = -1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            if (levels[mid].TryGet(Mask(addr, lens[mid]), out int v))
            {
                best = v;
                lo = mid + 1;
            }
            else hi = mid - 1;
        }
        return best;
    }
}
