using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;

namespace Lisp.MapCache;

/// <summary>Which IPv4 structure a <see cref="V4Lpm"/> was built with (chosen by prefix count).</summary>
internal enum V4Layout : byte { Hash, Dir16, Dir24 }

/// <summary>A /16 (DIR-16) or /24 (DIR-24) front-table block under which longer prefixes lie.</summary>
internal struct LongerBlock
{
    public uint Lengths;   // bit b: some prefix of length Stride+1+b lies under this block
    public int Best;       // slot + 1 of the best prefix of length <= Stride covering the block (0 = none)
}

/// <summary>
/// IPv4 longest-prefix match for one instance-id, as readers see it at one publish. Values are entry slots.
/// Three layouts, chosen by prefix count (<see cref="V4Builder"/> switches as the count crosses the thresholds):
/// <list type="bullet">
/// <item>Hash LPM (tiny instances, fewer than <see cref="MapCacheOptions.Dir16Threshold"/> prefixes): one
/// <see cref="ExactTable{TKey,TOps}"/> per populated prefix length and a 64-bit bitmap of populated lengths,
/// probed longest first; memory is proportional to the prefix count.</item>
/// <item>DIR-16 + per-/16 length bitmaps (small instances, below <see cref="MapCacheOptions.Dir24Threshold"/>):
/// a 2^16-entry int table (256 KiB) indexed by the top 16 address bits holds the best /0../16 answer. A /16
/// under which some longer prefix lies has the sign bit set and points into a side array holding that /16's
/// best /0../16 answer and a 16-bit mask of which lengths 17..32 occur under it; a lookup probes only those
/// lengths' hash tables (usually 0-2) and falls back to the /0../16 answer. Measured (perf/RESULTS.md): with the
/// route-table mix ~30 lengths are populated at 1k prefixes, and hash LPM took ~50-70 ns per lookup against
/// ~10-20 ns here.</item>
/// <item>DIR-24 + hashed tail (instances with at least <see cref="MapCacheOptions.Dir24Threshold"/> prefixes):
/// the same with a 2^24-entry front table (64 MiB, in 16 KiB copy-on-write chunks), so most lookups are one
/// address-computed load plus the chunk reference, and independent lookups in a batch overlap their cache
/// misses. Classic DIR-24-8 would give each /24 with longer prefixes a 1 KiB tbl8 group: with 25 % of 1M
/// prefixes longer than /24 that is 256 MiB, against ~8 MiB for the hashed tail.</item>
/// </list>
/// Every array is chunked (<see cref="CowArray{T}"/>): a change copies the chunks it touches, never the table.
/// </summary>
internal sealed class V4Lpm
{
    private readonly Chunks<int> _front;       // empty for hash LPM
    private readonly Chunks<LongerBlock> _longer;
    private readonly int _stride;              // 16 or 24 (0 for hash LPM)
    private readonly ulong _lengths;           // hash LPM: bit L set when length L has prefixes
    private readonly ExactTable<uint, V4Ops>?[] _tables;

    public int Count { get; }
    public V4Layout Layout { get; }
    public bool IsDir24 => Layout == V4Layout.Dir24;
    public long Bytes { get; }

    internal V4Lpm(V4Layout layout, Chunks<int> front, Chunks<LongerBlock> longer, ulong lengths, ExactTable<uint, V4Ops>?[] tables, int count, long bytes)
    {
        Layout = layout;
        _stride = layout switch { V4Layout.Dir24 => 24, V4Layout.Dir16 => 16, _ => 0 };
        _front = front;
        _longer = longer;
        _lengths = lengths;
        _tables = tables;
        Count = count;
        Bytes = bytes;
    }

    internal ExactTable<uint, V4Ops>? TableForLength(int len) => _tables[len];

    /// <summary>Slot of the longest prefix covering <paramref name="addr"/> (host order), or -1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int Lookup(uint addr)
    {
        if (_stride != 0)
        {
            int v = _front.At((int)(addr >> (32 - _stride)));
            if (v < 0) return LookupLonger(addr, v & int.MaxValue);
            return v - 1;
        }
        return LookupHash(addr);
    }

    /// <summary>True for DIR-16 / DIR-24: a lookup starts with one load from the front table.</summary>
    internal bool HasFront => _stride != 0;

    /// <summary>The front-table entry <see cref="Lookup"/> reads first for <paramref name="addr"/> (DIR layouts only): what a batch prefetches.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ref int FrontEntry(uint addr) => ref _front.At((int)(addr >> (32 - _stride)));

    /// <summary>The side entry a negative front value points to (read next when longer prefixes lie under the block).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ref LongerBlock LongerEntry(int frontValue) => ref _longer.At(frontValue & int.MaxValue);

    /// <summary>
    /// For a negative front value (longer prefixes under the block): the first hash bucket <see cref="LookupLonger"/>
    /// probes (its longest length present under the block), for a prefetch; null ref when there is none.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ref Bucket<uint> FirstLongerBucket(uint addr, int frontValue)
    {
        uint bits = _longer.At(frontValue & int.MaxValue).Lengths;
        if (bits == 0) return ref Unsafe.NullRef<Bucket<uint>>();
        int len = _stride + 1 + (31 - BitOperations.LeadingZeroCount(bits));
        return ref _tables[len]!.FirstBucket(addr & (uint.MaxValue << (32 - len)));
    }

    /// <summary>The rest of <see cref="Lookup"/> once the front value <paramref name="frontValue"/> of <paramref name="addr"/> was read.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal int SlotFromFront(uint addr, int frontValue) => frontValue < 0 ? LookupLonger(addr, frontValue & int.MaxValue) : frontValue - 1;

    private int LookupLonger(uint addr, int index)
    {
        ref LongerBlock e = ref _longer.At(index);
        uint bits = e.Lengths;
        int first = _stride + 1;
        var tables = _tables;
        while (bits != 0)
        {
            int b = 31 - BitOperations.LeadingZeroCount(bits);
            int len = first + b;
            // len is 17..32 here, so the shift count 32 - len is 0..15.
            if (tables[len]!.TryGet(addr & (uint.MaxValue << (32 - len)), out int slot)) return slot;
            bits &= ~(1u << b);
        }
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
/// The writer of one IPv4 instance's <see cref="V4Lpm"/>: inserts and removes prefixes in place (copy-on-write),
/// so a change costs the front-table entries its prefix covers, not a rebuild.
/// <list type="bullet">
/// <item>Insert /len &lt;= stride: every front entry in its range whose current best is shorter gets it
/// (a writer-only byte per entry remembers the best's length); a block with longer prefixes keeps its pointer
/// and has its side entry's best updated instead.</item>
/// <item>Remove /len &lt;= stride: the next best (the longest held prefix covering it, found by probing the
/// shorter lengths) replaces it wherever it was the best.</item>
/// <item>Longer prefixes go into their length's hash table, and their block's side entry counts them per
/// length (writer-only counts), so a length bit clears when its last prefix under the block goes.</item>
/// </list>
/// Single writer; not thread-safe.
/// </summary>
internal sealed class V4Builder
{
    private const int FrontChunkShift = 12;   // 4,096 ints = 16 KiB copied per touched chunk
    private readonly bool _hw;
    private readonly int _stride;
    private readonly CowArray<int>? _front;
    private readonly byte[]? _frontLength;          // length + 1 of each front entry's best (0 = none); writer only
    private readonly CowArray<LongerBlock> _longer;
    private readonly ChunkRecycler? _recycler;
    private int[] _longerCounts = [];               // per side entry, per length above the stride: prefixes held
    private readonly Stack<int> _freeLonger = new();
    private int _longerTop;
    private readonly Dictionary<uint, int>?[] _short = new Dictionary<uint, int>?[33];   // lengths <= stride
    private readonly CowExactTable<uint, V4Ops>?[] _tables = new CowExactTable<uint, V4Ops>?[33];
    private ulong _lengths;
    private V4Lpm? _published;

    public V4Layout Layout { get; }
    public int Count { get; private set; }

    public V4Builder(V4Layout layout, bool hardware, ChunkRecycler? recycler = null)
    {
        Layout = layout;
        _hw = hardware;
        _recycler = recycler;
        _longer = new(CowArray<LongerBlock>.ShiftFor(11), 0, recycler);
        _stride = layout switch { V4Layout.Dir24 => 24, V4Layout.Dir16 => 16, _ => 0 };
        if (_stride != 0)
        {
            _front = new CowArray<int>(FrontChunkShift, 1 << _stride, recycler);
            _frontLength = new byte[1 << _stride];
        }
    }

    private int Span => 32 - _stride;

    /// <summary>Adds a prefix that is not held yet (the caller keeps keys unique).</summary>
    public void Insert(uint addr, int len, int slot)
    {
        _published = null;
        Count++;
        _lengths |= 1UL << len;
        if (len > _stride || _stride == 0)
        {
            (_tables[len] ??= new CowExactTable<uint, V4Ops>(_hw, _recycler)).Set(addr, slot);
            if (_stride != 0) AddLonger(addr >> (32 - _stride), len);
            return;
        }
        (_short[len] ??= new()).Add(addr, slot);
        int start = (int)(addr >> (32 - _stride)), count = 1 << (_stride - len);
        for (int i = start; i < start + count; i++)
        {
            if (_frontLength![i] > len) continue;  // a longer prefix is the best here already
            _frontLength[i] = (byte)(len + 1);
            int v = _front![i];
            if (v < 0) _longer.Write(v & int.MaxValue).Best = slot + 1;
            else _front.Write(i) = slot + 1;
        }
    }

    public void Remove(uint addr, int len, int slot)
    {
        _published = null;
        Count--;
        if (len > _stride || _stride == 0)
        {
            var t = _tables[len]!;
            t.Remove(addr);
            if (t.Count == 0) _lengths &= ~(1UL << len);
            if (_stride != 0) RemoveLonger(addr >> (32 - _stride), len);
            return;
        }
        var d = _short[len]!;
        d.Remove(addr);
        if (d.Count == 0) _lengths &= ~(1UL << len);
        // The next best: the longest held prefix of a shorter length covering this one.
        int nextSlot = -1, nextLen = -1;
        for (int l = len - 1; l >= 0; l--)
        {
            if ((_lengths & (1UL << l)) == 0) continue;
            uint m = l == 0 ? 0 : addr & (uint.MaxValue << (32 - l));
            if (_short[l]!.TryGetValue(m, out int s)) { nextSlot = s; nextLen = l; break; }
        }
        int start = (int)(addr >> (32 - _stride)), count = 1 << (_stride - len);
        for (int i = start; i < start + count; i++)
        {
            if (_frontLength![i] != len + 1) continue;   // a longer prefix is the best here: unchanged
            _frontLength[i] = (byte)(nextLen + 1);
            int v = _front![i];
            if (v < 0) _longer.Write(v & int.MaxValue).Best = nextSlot + 1;
            else _front.Write(i) = nextSlot + 1;
        }
    }

    private void AddLonger(uint block, int len)
    {
        int v = _front![(int)block];
        int index;
        if (v >= 0)
        {
            index = _freeLonger.Count > 0 ? _freeLonger.Pop() : _longerTop++;
            _longer.EnsureLength(index + 1);
            if (_longerCounts.Length < (index + 1) * Span) Array.Resize(ref _longerCounts, Math.Max(64, (index + 1) * Span * 2));
            _longer.Write(index) = new LongerBlock { Lengths = 0, Best = v };
            _front.Write((int)block) = int.MinValue | index;
        }
        else index = v & int.MaxValue;
        int b = len - _stride - 1;
        if (_longerCounts[index * Span + b]++ == 0) _longer.Write(index).Lengths |= 1u << b;
    }

    private void RemoveLonger(uint block, int len)
    {
        int index = _front![(int)block] & int.MaxValue;
        int b = len - _stride - 1;
        if (--_longerCounts[index * Span + b] != 0) return;
        uint lengths = _longer[index].Lengths & ~(1u << b);
        if (lengths != 0)
        {
            _longer.Write(index).Lengths = lengths;
            return;
        }
        _front.Write((int)block) = _longer[index].Best;
        _freeLonger.Push(index);
    }

    /// <summary>Every held prefix (for a rebuild in another layout).</summary>
    public void ForEach(List<(uint Addr, byte Len, int Slot)> into)
    {
        for (int l = 0; l <= 32; l++)
        {
            if (_short[l] is { } d) foreach (var (a, s) in d) into.Add((a, (byte)l, s));
            _tables[l]?.ForEach((into, (byte)l), static (st, a, s) => st.into.Add((a, st.Item2, s)));
        }
    }

    public V4Lpm Publish()
    {
        if (_published is not null) return _published;
        var tables = new ExactTable<uint, V4Ops>?[33];
        long bytes = 0;
        for (int l = 0; l <= 32; l++)
        {
            if (_tables[l] is not { Count: > 0 } t) continue;
            tables[l] = t.Publish();
            bytes += tables[l]!.Bytes;
        }
        var front = _front?.Publish() ?? default;
        var longer = _longer.Publish();
        bytes += (_front is null ? 0 : (1L << _stride) * 4) + (long)_longerTop * Unsafe.SizeOf<LongerBlock>();
        return _published = new V4Lpm(Layout, front, longer, _lengths, tables, Count, bytes);
    }
}

/// <summary>
/// IPv6 longest-prefix match for one instance-id, as readers see it at one publish. Three tiers, each an
/// index that says which longer lengths exist below it, so a lookup probes only lengths that can match:
/// <list type="bullet">
/// <item>/48 blocks: a hash table keyed by the top 48 bits gives, for a block under which prefixes of
/// /49../128 lie, an 80-bit mask of those lengths; they are probed longest first.</item>
/// <item>/16 blocks: a hash table keyed by the top 16 bits gives, for a /16 under which prefixes of /17../48
/// lie, a 32-bit mask of those lengths (probed next) and the best /0../16 prefix covering the /16.</item>
/// <item>Otherwise the /0../16 prefixes (rare in IPv6: a default route), probed longest first.</item>
/// </list>
/// LISP IPv6 EIDs cluster at a few lengths (/48 sites, /56, /64, /128 hosts), so a lookup is typically two block
/// probes and one or two length probes. Memory is proportional to the prefixes and the blocks they populate.
/// This replaced binary search on lengths (Waldvogel et al.), whose markers and precomputed best matches had to be
/// rebuilt for the whole instance on every change; here a change touches its own length's table and one or two
/// block entries (issue 10: no full rebuild per change). Measured in perf/RESULTS.md.
/// </summary>
internal sealed class V6Lpm
{
    internal struct Front
    {
        public int Best;     // slot + 1 of the best /0../16 prefix covering the /16 (0 = none)
        public uint Mid;     // bit L-17: a prefix of length L in 17..48 lies under this /16
        public int BestLength;   // writer's bookkeeping: length + 1 of Best (0 = none)
    }

    internal struct Tail
    {
        public ulong Low;    // bit L-49 for L in 49..112
        public ulong High;   // bit L-113 for L in 113..128
    }

    private readonly ExactTable<ulong, U64Ops> _fronts;   // top 16 bits -> index into _frontData
    private readonly Chunks<Front> _frontData;
    private readonly ExactTable<ulong, U64Ops> _blocks;   // top 48 bits -> index into _tails
    private readonly Chunks<Tail> _tails;
    private readonly ExactTable<V6Key, V6Ops>?[] _tables;  // per length 17..128
    private readonly ExactTable<ulong, U64Ops>?[] _short;  // per length 0..16, keyed by the top 16 bits (masked)
    private readonly uint _shortLengths;                   // bit L: some /L with L <= 16 is held

    public int Count { get; }
    public long Bytes { get; }
    /// <summary>/48 blocks under which /49../128 prefixes lie.</summary>
    public int Blocks => _blocks.Count;

    internal V6Lpm(ExactTable<ulong, U64Ops> fronts, Chunks<Front> frontData, ExactTable<ulong, U64Ops> blocks, Chunks<Tail> tails,
        ExactTable<V6Key, V6Ops>?[] tables, ExactTable<ulong, U64Ops>?[] shortTables, uint shortLengths, int count, long bytes)
    {
        _fronts = fronts;
        _frontData = frontData;
        _blocks = blocks;
        _tails = tails;
        _tables = tables;
        _short = shortTables;
        _shortLengths = shortLengths;
        Count = count;
        Bytes = bytes;
    }

    internal ExactTable<V6Key, V6Ops>? TableForLength(int len) => len < _tables.Length ? _tables[len] : null;

    // Inlined: it is called once per probe; the AOT binary kept it as a call before.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V6Key Mask(V6Key a, int len) =>
        len >= 128 ? a
        : len > 64 ? new V6Key(a.Hi, a.Lo & (ulong.MaxValue << (128 - len)))
        : len == 64 ? new V6Key(a.Hi, 0)
        : len == 0 ? default
        : new V6Key(a.Hi & (ulong.MaxValue << (64 - len)), 0);

    /// <summary>
    /// Prefetches the first bucket of both first-level probes of <see cref="Lookup"/> (the /48 block table and the
    /// /16 table) for <paramref name="addr"/>; x86 only (the caller checks <see cref="Sse.IsSupported"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal unsafe void PrefetchFirstLevel(V6Key addr)
    {
        if (_blocks.Count != 0) Sse.Prefetch0(Unsafe.AsPointer(ref _blocks.FirstBucket(addr.Hi >> 16)));
        if (_fronts.Count != 0) Sse.Prefetch0(Unsafe.AsPointer(ref _fronts.FirstBucket(addr.Hi >> 48)));
    }

    public int Lookup(V6Key addr)
    {
        var tables = _tables;
        if (_blocks.Count != 0 && _blocks.TryGet(addr.Hi >> 16, out int tail))
        {
            ref Tail t = ref _tails.At(tail);
            ulong high = t.High;
            while (high != 0)
            {
                int b = 63 - BitOperations.LeadingZeroCount(high);
                int len = 113 + b;
                if (tables[len]!.TryGet(new V6Key(addr.Hi, addr.Lo & (ulong.MaxValue << (128 - len))), out int slot)) return slot;
                high &= ~(1UL << b);
            }
            ulong low = t.Low;
            while (low != 0)
            {
                int b = 63 - BitOperations.LeadingZeroCount(low);
                if (tables[49 + b]!.TryGet(Mask(addr, 49 + b), out int slot)) return slot;
                low &= ~(1UL << b);
            }
        }
        ulong top = addr.Hi >> 48;
        if (_fronts.Count != 0 && _fronts.TryGet(top, out int front))
        {
            ref Front f = ref _frontData.At(front);
            uint mid = f.Mid;
            while (mid != 0)
            {
                int b = 31 - BitOperations.LeadingZeroCount(mid);
                int len = 17 + b;
                if (tables[len]!.TryGet(new V6Key(addr.Hi & (ulong.MaxValue << (64 - len)), 0), out int slot)) return slot;
                mid &= ~(1u << b);
            }
            return f.Best - 1;
        }
        return ShortLookup(top);
    }

    private int ShortLookup(ulong top)
    {
        uint bits = _shortLengths;
        while (bits != 0)
        {
            int len = 31 - BitOperations.LeadingZeroCount(bits);
            if (_short[len]!.TryGet(top & V6Builder.TopMask(len), out int slot)) return slot;
            bits &= ~(1u << len);
        }
        return -1;
    }
}

/// <summary>
/// The writer of one IPv6 instance's <see cref="V6Lpm"/>: the same scheme as <see cref="V4Builder"/>, with the
/// /16 front table hashed (only /16s holding /17../48 prefixes have an entry) and a mask per /48 block.
/// Single writer; not thread-safe.
/// </summary>
internal sealed class V6Builder
{
    private readonly bool _hw;
    private readonly ChunkRecycler? _recycler;
    private readonly CowExactTable<ulong, U64Ops> _fronts;
    private readonly CowArray<V6Lpm.Front> _frontData;
    private readonly Stack<int> _freeFronts = new();
    private int _frontTop;
    private readonly Dictionary<(int Block, byte Len), int> _midCounts = new();   // per /16, per length 17..48: prefixes held
    private readonly CowExactTable<ulong, U64Ops> _blocks;
    private readonly CowArray<V6Lpm.Tail> _tails;
    private readonly Stack<int> _freeTails = new();
    private int _tailTop;
    private readonly Dictionary<(ulong Block, byte Len), int> _tailCounts = new();
    private readonly CowExactTable<ulong, U64Ops>?[] _short = new CowExactTable<ulong, U64Ops>?[17];
    private uint _shortLengths;
    private readonly CowExactTable<V6Key, V6Ops>?[] _tables = new CowExactTable<V6Key, V6Ops>?[129];
    private V6Lpm? _published;

    public int Count { get; private set; }

    public V6Builder(bool hardware, ChunkRecycler? recycler = null)
    {
        _hw = hardware;
        _recycler = recycler;
        _fronts = new CowExactTable<ulong, U64Ops>(hardware, recycler);
        _frontData = new(CowArray<V6Lpm.Front>.ShiftFor(10), 0, recycler);
        _blocks = new CowExactTable<ulong, U64Ops>(hardware, recycler);
        _tails = new(CowArray<V6Lpm.Tail>.ShiftFor(10), 0, recycler);
    }

    /// <summary>The top <paramref name="len"/> of 16 bits (len 0..16).</summary>
    public static ulong TopMask(int len) => len == 0 ? 0 : (0xFFFFUL << (16 - len)) & 0xFFFF;

    public void Insert(V6Key addr, int len, int slot)
    {
        _published = null;
        Count++;
        if (len > 16)
        {
            (_tables[len] ??= new CowExactTable<V6Key, V6Ops>(_hw, _recycler)).Set(addr, slot);
            if (len <= 48)
            {
                int block = (int)(addr.Hi >> 48);
                if (CollectionsMarshal.GetValueRefOrAddDefault(_midCounts, (block, (byte)len), out _)++ == 0)
                    _frontData.Write(FrontOf(block)).Mid |= 1u << (len - 17);
                return;
            }
            ulong b48 = addr.Hi >> 16;
            ref int n = ref CollectionsMarshal.GetValueRefOrAddDefault(_tailCounts, (b48, (byte)len), out _);
            if (n++ != 0) return;
            if (!_blocks.TryGet(b48, out int tail))
            {
                tail = _freeTails.Count > 0 ? _freeTails.Pop() : _tailTop++;
                _tails.EnsureLength(tail + 1);
                _tails.Write(tail) = default;
                _blocks.Set(b48, tail);
            }
            ref var t = ref _tails.Write(tail);
            if (len >= 113) t.High |= 1UL << (len - 113);
            else t.Low |= 1UL << (len - 49);
            return;
        }
        ulong top = addr.Hi >> 48;
        (_short[len] ??= new CowExactTable<ulong, U64Ops>(_hw, _recycler)).Set(top, slot);
        _shortLengths |= 1u << len;
        ForFrontsUnder(top, len, (slot, len), static (b, ref f, st) =>
        {
            if (f.BestLength > st.len) return false;   // a longer short prefix is the best here already
            f.Best = st.slot + 1;
            f.BestLength = st.len + 1;
            return true;
        });
    }

    public void Remove(V6Key addr, int len)
    {
        _published = null;
        Count--;
        if (len > 16)
        {
            _tables[len]!.Remove(addr);
            if (len <= 48)
            {
                int block = (int)(addr.Hi >> 48);
                if (--CollectionsMarshal.GetValueRefOrNullRef(_midCounts, (block, (byte)len)) != 0) return;
                _midCounts.Remove((block, (byte)len));
                _fronts.TryGet((ulong)block, out int index);
                ref var f = ref _frontData.Write(index);
                f.Mid &= ~(1u << (len - 17));
                if (f.Mid == 0)
                {
                    // Nothing of /17../48 under this /16 any more: lookups take the short prefixes directly.
                    _fronts.Remove((ulong)block);
                    _freeFronts.Push(index);
                }
                return;
            }
            ulong b48 = addr.Hi >> 16;
            var key = (b48, (byte)len);
            if (--_tailCounts[key] != 0) return;
            _tailCounts.Remove(key);
            _blocks.TryGet(b48, out int tail);
            ref var t = ref _tails.Write(tail);
            if (len >= 113) t.High &= ~(1UL << (len - 113));
            else t.Low &= ~(1UL << (len - 49));
            if ((t.High | t.Low) == 0)
            {
                _blocks.Remove(b48);
                _freeTails.Push(tail);
            }
            return;
        }
        ulong top = addr.Hi >> 48;
        var d = _short[len]!;
        d.Remove(top);
        if (d.Count == 0) _shortLengths &= ~(1u << len);
        // Every /16 under this prefix shares its first len bits, so the next best is the same for all of them.
        var (nextSlot, nextLen) = ShortBest(top, len - 1);
        ForFrontsUnder(top, len, (len, nextSlot, nextLen), static (b, ref f, st) =>
        {
            if (f.BestLength != st.len + 1) return false;   // a longer short prefix is the best here: unchanged
            f.Best = st.nextSlot + 1;
            f.BestLength = st.nextLen + 1;
            return true;
        });
    }

    /// <summary>The longest held prefix of length &lt;= <paramref name="maxLen"/> covering /16 <paramref name="top"/>.</summary>
    private (int Slot, int Len) ShortBest(ulong top, int maxLen)
    {
        for (int l = maxLen; l >= 0; l--)
        {
            if ((_shortLengths & (1u << l)) == 0) continue;
            if (_short[l]!.TryGet(top & TopMask(l), out int s)) return (s, l);
        }
        return (-1, -1);
    }

    private int FrontOf(int block)
    {
        if (_fronts.TryGet((ulong)block, out int index)) return index;
        index = _freeFronts.Count > 0 ? _freeFronts.Pop() : _frontTop++;
        _frontData.EnsureLength(index + 1);
        var (best, bestLen) = ShortBest((ulong)block, 16);
        _frontData.Write(index) = new V6Lpm.Front { Best = best + 1, BestLength = bestLen + 1 };
        _fronts.Set((ulong)block, index);
        return index;
    }

    private delegate bool FrontUpdate<TState>(int block, ref V6Lpm.Front front, TState state);

    /// <summary>
    /// Applies <paramref name="update"/> to each /16 entry under prefix <paramref name="top"/>/<paramref name="len"/>
    /// (len &lt;= 16): by walking the range when it is smaller than the number of entries, else by walking the entries.
    /// Reads first and copies a chunk only where something changes.
    /// </summary>
    private void ForFrontsUnder<TState>(ulong top, int len, TState state, FrontUpdate<TState> update)
    {
        int start = (int)top, count = 1 << (16 - len);
        if (count <= _fronts.Count)
        {
            for (int b = start; b < start + count; b++)
                if (_fronts.TryGet((ulong)b, out int index)) Apply(b, index);
            return;
        }
        var hits = new List<(int Block, int Index)>();
        _fronts.ForEach(hits, static (h, b, i) => h.Add(((int)b, i)));
        foreach (var (b, index) in hits)
            if (b >= start && b < start + count) Apply(b, index);

        void Apply(int b, int index)
        {
            var copy = _frontData[index];
            if (update(b, ref copy, state)) _frontData.Write(index) = copy;
        }
    }

    public void ForEach(List<(V6Key Addr, byte Len, int Slot)> into)
    {
        for (int l = 0; l <= 16; l++)
            _short[l]?.ForEach((into, (byte)l), static (st, top, s) => st.into.Add((new V6Key(top << 48, 0), st.Item2, s)));
        for (int l = 17; l <= 128; l++)
            _tables[l]?.ForEach((into, (byte)l), static (st, a, s) => st.into.Add((a, st.Item2, s)));
    }

    public V6Lpm Publish()
    {
        if (_published is not null) return _published;
        var tables = new ExactTable<V6Key, V6Ops>?[129];
        long bytes = (long)_frontTop * Unsafe.SizeOf<V6Lpm.Front>() + (long)_tailTop * Unsafe.SizeOf<V6Lpm.Tail>();
        for (int l = 17; l <= 128; l++)
        {
            if (_tables[l] is not { Count: > 0 } t) continue;
            tables[l] = t.Publish();
            bytes += tables[l]!.Bytes;
        }
        var shortTables = new ExactTable<ulong, U64Ops>?[17];
        for (int l = 0; l <= 16; l++)
            if (_short[l] is { Count: > 0 } t) bytes += (shortTables[l] = t.Publish()).Bytes;
        var fronts = _fronts.Publish();
        var blocks = _blocks.Publish();
        bytes += fronts.Bytes + blocks.Bytes;
        return _published = new V6Lpm(fronts, _frontData.Publish(), blocks, _tails.Publish(), tables, shortTables, _shortLengths, Count, bytes);
    }
}
