using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Lisp.MapCache;

/// <summary>Hash and equality of a fixed-size table key (static, so the JIT/AOT compiler specializes each table).</summary>
internal interface IKeyOps<TKey> where TKey : struct
{
    /// <summary>Build-time hash: the path the writer chose (instruction or software, same value).</summary>
    static abstract uint Hash(in TKey key, bool hardware);
    /// <summary>Lookup-time hash: the instruction whenever the CPU has it, inlined, no flag (<see cref="Crc32C.Lookup32"/>).</summary>
    static abstract uint LookupHash(in TKey key);
    static abstract bool Equal(in TKey a, in TKey b);
}

internal struct V4Ops : IKeyOps<uint>
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Hash(in uint key, bool hardware) => Crc32C.Hash32(Crc32C.Seed, key, hardware);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint LookupHash(in uint key) => Crc32C.Lookup32(Crc32C.Seed, key);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Equal(in uint a, in uint b) => a == b;
}

/// <summary>An IPv6 address as two host-order halves (Hi = first 8 bytes on the wire).</summary>
public readonly record struct V6Key(ulong Hi, ulong Lo)
{
    /// <summary>From the 16 network-order bytes of an address (a packet's address field, say).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V6Key FromBytes(ReadOnlySpan<byte> address) =>
        new(BinaryPrimitives.ReadUInt64BigEndian(address), BinaryPrimitives.ReadUInt64BigEndian(address.Slice(8)));
}

internal struct V6Ops : IKeyOps<V6Key>
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Hash(in V6Key key, bool hardware) => Crc32C.Hash64(Crc32C.Hash64(Crc32C.Seed, key.Lo, hardware), key.Hi, hardware);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint LookupHash(in V6Key key) => Crc32C.Lookup64(Crc32C.Lookup64(Crc32C.Seed, key.Lo), key.Hi);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Equal(in V6Key a, in V6Key b) => a.Hi == b.Hi && a.Lo == b.Lo;
}

internal struct U64Ops : IKeyOps<ulong>
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Hash(in ulong key, bool hardware) => Crc32C.Hash64(Crc32C.Seed, key, hardware);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint LookupHash(in ulong key) => Crc32C.Lookup64(Crc32C.Seed, key);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Equal(in ulong a, in ulong b) => a == b;
}

[InlineArray(8)] internal struct Tags8 { private uint _e; }
[InlineArray(8)] internal struct Values8 { private int _e; }
[InlineArray(8)] internal struct Keys8<TKey> where TKey : struct { private TKey _e; }

/// <summary>
/// One bucket of an exact table: 8 tags, then 8 values, then 8 keys, contiguous, so a hit reads the 32-byte
/// tag line and the key and value next to it (96 bytes for IPv4 keys), where the previous layout (three
/// parallel arrays) touched three separate cache lines.
/// </summary>
internal struct Bucket<TKey> where TKey : struct
{
    public Tags8 Tags;
    public Values8 Values;
    public Keys8<TKey> Keys;
}

/// <summary>
/// Exact-match table key -&gt; int as the data plane reads it: an immutable view of a
/// <see cref="CowExactTable{TKey,TOps}"/> at one publish. Buckets of 8 slots; each slot has a 32-bit tag (the
/// key's CRC32-C with the low bit forced to 1, so 0 means empty and 2 marks a removed slot). A probe compares
/// the bucket's 8 tags at once: as one <see cref="Vector256{T}"/> where 256-bit vectors are hardware-accelerated
/// (AVX2: x86-64-v3 builds, the JIT on such CPUs), else as two <see cref="Vector128{T}"/> halves (SSE2/SSE4.1
/// at the shipped x86-64-v2 floor, AdvSimd on arm64) rather than an emulated Vector256; only slots whose tag
/// matches have their key compared. Measured (perf/RESULTS.md, run 2, native AOT at x86-64-v2): two Vector128
/// against the emulated Vector256 the code used before, hash LPM at 1k prefixes 95-104 ns vs 142-156 ns, DIR-16
/// 9.5-10.7 ns vs 15-16 ns. Building with -p:LispTagCompare=v256 forces the Vector256 form everywhere, for that
/// measurement only. The writer keeps the load at or under 50 %, so a probe almost always reads one bucket.
/// A lookup stops at the first bucket with an empty slot; removed slots (tag 2) never match and do not stop it.
/// </summary>
internal sealed class ExactTable<TKey, TOps> where TKey : struct where TOps : struct, IKeyOps<TKey>
{
    internal const int BucketSlots = 8;
    private readonly Chunks<Bucket<TKey>> _buckets;
    private readonly int _bucketMask;

    public int Count { get; }
    public long Bytes => (long)(_bucketMask + 1) * Unsafe.SizeOf<Bucket<TKey>>();

    internal ExactTable(Chunks<Bucket<TKey>> buckets, int bucketMask, int count)
    {
        _buckets = buckets;
        _bucketMask = bucketMask;
        Count = count;
    }

    /// <summary>The bucket <see cref="TryGet"/> reads first for <paramref name="key"/> (what a batch prefetches).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ref Bucket<TKey> FirstBucket(TKey key) => ref _buckets.At((int)(TOps.LookupHash(key) >> 7) & _bucketMask);

    /// <summary>Every tag in slot order (tests compare hardware- and software-hashed tables with it).</summary>
    internal uint[] Tags
    {
        get
        {
            var tags = new uint[(_bucketMask + 1) * BucketSlots];
            for (int b = 0; b <= _bucketMask; b++)
                for (int i = 0; i < BucketSlots; i++) tags[b * BucketSlots + i] = _buckets.At(b).Tags[i];
            return tags;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryGet(in TKey key, out int value)
    {
        uint h = TOps.LookupHash(key);
        uint tag = h | 1;
        int b = (int)(h >> 7) & _bucketMask;
        while (true)
        {
            ref Bucket<TKey> bucket = ref _buckets.At(b);
            ref uint tags = ref Unsafe.As<Tags8, uint>(ref bucket.Tags);
            uint hits;
            bool hasEmpty;
#if LISP_TAGS_V256
            bool wide = true;
#else
            // A JIT/ILC constant: true only when the target has AVX2 (x86-64-v3 and up).
            bool wide = Vector256.IsHardwareAccelerated;
#endif
            if (wide)
            {
                var v = Vector256.LoadUnsafe(ref tags);
                hits = Vector256.Equals(v, Vector256.Create(tag)).ExtractMostSignificantBits();
                hasEmpty = Vector256.EqualsAny(v, Vector256<uint>.Zero);
            }
            else
            {
                var lo = Vector128.LoadUnsafe(ref tags);
                var hi = Vector128.LoadUnsafe(ref tags, 4);
                var want = Vector128.Create(tag);
                hits = Vector128.Equals(lo, want).ExtractMostSignificantBits() | (Vector128.Equals(hi, want).ExtractMostSignificantBits() << 4);
                hasEmpty = (Vector128.Equals(lo, Vector128<uint>.Zero) | Vector128.Equals(hi, Vector128<uint>.Zero)) != Vector128<uint>.Zero;
            }
            while (hits != 0)
            {
                int s = BitOperations.TrailingZeroCount(hits);
                if (TOps.Equal(Unsafe.Add(ref Unsafe.As<Keys8<TKey>, TKey>(ref bucket.Keys), s), key))
                {
                    value = Unsafe.Add(ref Unsafe.As<Values8, int>(ref bucket.Values), s);
                    return true;
                }
                hits &= hits - 1;
            }
            if (hasEmpty)
            {
                value = 0;
                return false;
            }
            b = (b + 1) & _bucketMask;
        }
    }
}

/// <summary>
/// The writer's side of an <see cref="ExactTable{TKey,TOps}"/>: insert, update and remove in place, with
/// copy-on-write chunks (<see cref="CowArray{T}"/>) so a publish costs the buckets written since the last one.
/// Removal leaves a tombstone (tag 2): lookups probe past it, inserts reuse it. The table is rebuilt at double
/// size when live + removed slots pass half the slots, and at a fitting size when removed slots pass a quarter;
/// both are O(entries of this table) and amortized over as many changes. Single writer; not thread-safe.
/// </summary>
internal sealed class CowExactTable<TKey, TOps> where TKey : struct where TOps : struct, IKeyOps<TKey>
{
    private const int Slots = ExactTable<TKey, TOps>.BucketSlots;
    private const uint Removed = 2;
    private readonly bool _hw;
    private CowArray<Bucket<TKey>> _buckets;
    private int _bucketMask;
    private int _tombstones;
    private ExactTable<TKey, TOps>? _published;
    private readonly ChunkRecycler? _recycler;

    public int Count { get; private set; }

    public CowExactTable(bool hardware, ChunkRecycler? recycler = null)
    {
        _hw = hardware;
        _recycler = recycler;
        _buckets = NewBuckets(1, out _bucketMask);
    }

    // Sized for 25 % load after a (re)build: it may then double its entries before the next rebuild.
    private static int BucketsFor(int entries) => (int)BitOperations.RoundUpToPowerOf2((uint)Math.Max(1, (entries + 1) / 2));

    // Chunks of at most 16 KiB: a change copies one (96 bytes per IPv4 bucket: 128 buckets).
    private CowArray<Bucket<TKey>> NewBuckets(int buckets, out int mask)
    {
        mask = buckets - 1;
        int shift = Math.Min(CowArray<Bucket<TKey>>.ShiftFor(16), BitOperations.Log2((uint)buckets));
        while (shift > 0 && Unsafe.SizeOf<Bucket<TKey>>() << shift > 16 * 1024) shift--;
        return new CowArray<Bucket<TKey>>(shift, buckets, _recycler);
    }

    /// <summary>
    /// The one probe walk TryGet, Set and Remove share: the key's bucket and slot (-1, -1 when absent) and the
    /// first free or removed slot met on the way (where Set inserts). Stops at the first bucket with an empty slot,
    /// as the readers' lookup does.
    /// </summary>
    private (int Bucket, int Slot, int FreeBucket, int FreeSlot) Probe(in TKey key, uint tag)
    {
        int freeBucket = -1, freeSlot = -1;
        for (int b = (int)(tag >> 7) & _bucketMask; ; b = (b + 1) & _bucketMask)
        {
            var bucket = _buckets[b];
            bool empty = false;
            for (int i = 0; i < Slots; i++)
            {
                uint t = bucket.Tags[i];
                if (t == tag && TOps.Equal(bucket.Keys[i], key)) return (b, i, freeBucket, freeSlot);
                if ((t == 0 || t == Removed) && freeBucket < 0) { freeBucket = b; freeSlot = i; }
                if (t == 0) empty = true;
            }
            if (empty) return (-1, -1, freeBucket, freeSlot);
        }
    }

    /// <summary>Value of <paramref name="key"/> as the writer holds it now.</summary>
    public bool TryGet(in TKey key, out int value)
    {
        var p = Probe(key, TOps.Hash(key, _hw) | 1);
        value = p.Bucket < 0 ? 0 : _buckets[p.Bucket].Values[p.Slot];
        return p.Bucket >= 0;
    }

    /// <summary>Adds or updates; true when the key is new.</summary>
    public bool Set(in TKey key, int value)
    {
        uint tag = TOps.Hash(key, _hw) | 1;
        var p = Probe(key, tag);
        if (p.Bucket >= 0)
        {
            if (_buckets[p.Bucket].Values[p.Slot] != value)
            {
                _buckets.Write(p.Bucket).Values[p.Slot] = value;
                _published = null;
            }
            return false;
        }
        ref var w = ref _buckets.Write(p.FreeBucket);
        if (w.Tags[p.FreeSlot] == Removed) _tombstones--;
        w.Tags[p.FreeSlot] = tag;
        w.Keys[p.FreeSlot] = key;
        w.Values[p.FreeSlot] = value;
        Count++;
        _published = null;
        if ((Count + _tombstones) * 2 > (_bucketMask + 1) * Slots) Rebuild(Count * 2);
        return true;
    }

    public bool Remove(in TKey key)
    {
        var p = Probe(key, TOps.Hash(key, _hw) | 1);
        if (p.Bucket < 0) return false;
        ref var w = ref _buckets.Write(p.Bucket);
        w.Tags[p.Slot] = Removed;
        w.Keys[p.Slot] = default;
        w.Values[p.Slot] = 0;
        Count--;
        _tombstones++;
        _published = null;
        if (_tombstones * 4 > (_bucketMask + 1) * Slots) Rebuild(Count);
        return true;
    }

    /// <summary>Every (key, value) held now.</summary>
    public void ForEach<TState>(TState state, Action<TState, TKey, int> visit)
    {
        for (int b = 0; b <= _bucketMask; b++)
        {
            var bucket = _buckets[b];
            for (int i = 0; i < Slots; i++)
                if ((bucket.Tags[i] & 1) != 0) visit(state, bucket.Keys[i], bucket.Values[i]);
        }
    }

    private void Rebuild(int entries)
    {
        var old = _buckets;
        int oldMask = _bucketMask;
        _buckets = NewBuckets(BucketsFor(entries), out _bucketMask);
        _tombstones = 0;
        int count = Count;
        Count = 0;
        for (int b = 0; b <= oldMask; b++)
        {
            var bucket = old[b];
            for (int i = 0; i < Slots; i++)
                if ((bucket.Tags[i] & 1) != 0) Place(bucket.Tags[i], bucket.Keys[i], bucket.Values[i]);
        }
        System.Diagnostics.Debug.Assert(Count == count);
    }

    // Rebuild only: the key is known to be absent and the new table has no tombstones.
    private void Place(uint tag, in TKey key, int value)
    {
        for (int b = (int)(tag >> 7) & _bucketMask; ; b = (b + 1) & _bucketMask)
        {
            var bucket = _buckets[b];
            for (int i = 0; i < Slots; i++)
            {
                if (bucket.Tags[i] != 0) continue;
                ref var w = ref _buckets.Write(b);
                w.Tags[i] = tag;
                w.Keys[i] = key;
                w.Values[i] = value;
                Count++;
                return;
            }
        }
    }

    /// <summary>The table as readers see it from now on (the same object while nothing changed).</summary>
    public ExactTable<TKey, TOps> Publish() => _published ??= new ExactTable<TKey, TOps>(_buckets.Publish(), _bucketMask, Count);
}

/// <summary>One slot of a <see cref="BytesTable"/>: hash 0 = empty, 2 = removed, odd = held.</summary>
internal struct BytesSlot
{
    public uint Hash;
    public int Value;
    public byte[]? Key;
}

/// <summary>
/// Exact match over variable-length canonical byte keys (names, MAC, E.164, (S,G), geo), as readers see it at
/// one publish: open addressing, linear probing. Not on the IP fast path.
/// </summary>
internal sealed class BytesTable
{
    private readonly Chunks<BytesSlot> _slots;
    private readonly int _mask;
    public int Count { get; }

    internal BytesTable(Chunks<BytesSlot> slots, int mask, int count)
    {
        _slots = slots;
        _mask = mask;
        Count = count;
    }

    public bool TryGet(ReadOnlySpan<byte> key, out int value)
    {
        uint h = Crc32C.HashBytes(Crc32C.Seed, key, Crc32C.HardwareAvailable) | 1;
        for (int s = (int)(h >> 1) & _mask; ; s = (s + 1) & _mask)
        {
            ref BytesSlot slot = ref _slots.At(s);
            if (slot.Hash == 0) break;
            if (slot.Hash == h && slot.Key.AsSpan().SequenceEqual(key))
            {
                value = slot.Value;
                return true;
            }
        }
        value = 0;
        return false;
    }
}

/// <summary>The writer's side of a <see cref="BytesTable"/>: copy-on-write chunks, tombstones, rebuilt like <see cref="CowExactTable{TKey,TOps}"/>.</summary>
internal sealed class CowBytesTable
{
    private const uint Removed = 2;
    private CowArray<BytesSlot> _slots;
    private int _mask;
    private int _tombstones;
    private BytesTable? _published;
    private readonly bool _hw;
    private readonly ChunkRecycler? _recycler;

    public int Count { get; private set; }

    public CowBytesTable(bool hardware, ChunkRecycler? recycler = null)
    {
        _hw = hardware;
        _recycler = recycler;
        _slots = NewSlots(4, out _mask);
    }

    private CowArray<BytesSlot> NewSlots(int size, out int mask)
    {
        mask = size - 1;
        return new CowArray<BytesSlot>(Math.Min(CowArray<BytesSlot>.ShiftFor(10), BitOperations.Log2((uint)size)), size, _recycler);
    }

    // Readers hash with the instruction whenever the CPU has it; the writer's flag may force software, which gives the same value.
    private uint HashOf(ReadOnlySpan<byte> key) => Crc32C.HashBytes(Crc32C.Seed, key, _hw) | 1;

    public void Set(byte[] key, int value)
    {
        uint h = HashOf(key);
        int free = -1;
        for (int s = (int)(h >> 1) & _mask; ; s = (s + 1) & _mask)
        {
            var slot = _slots[s];
            if (slot.Hash == h && slot.Key.AsSpan().SequenceEqual(key))
            {
                if (slot.Value != value)
                {
                    _slots.Write(s).Value = value;
                    _published = null;
                }
                return;
            }
            if ((slot.Hash == 0 || slot.Hash == Removed) && free < 0) free = s;
            if (slot.Hash == 0) break;
        }
        ref var w = ref _slots.Write(free);
        if (w.Hash == Removed) _tombstones--;
        w = new BytesSlot { Hash = h, Value = value, Key = key };
        Count++;
        _published = null;
        if ((Count + _tombstones) * 2 > _mask + 1) Rebuild(Count * 4);
    }

    public bool Remove(ReadOnlySpan<byte> key)
    {
        uint h = HashOf(key);
        for (int s = (int)(h >> 1) & _mask; ; s = (s + 1) & _mask)
        {
            var slot = _slots[s];
            if (slot.Hash == 0) return false;
            if (slot.Hash != h || !slot.Key.AsSpan().SequenceEqual(key)) continue;
            _slots.Write(s) = new BytesSlot { Hash = Removed };
            Count--;
            _tombstones++;
            _published = null;
            if (_tombstones * 4 > _mask + 1) Rebuild(Math.Max(4, Count * 4));
            return true;
        }
    }

    private void Rebuild(int size)
    {
        var old = _slots;
        int oldMask = _mask;
        _slots = NewSlots((int)BitOperations.RoundUpToPowerOf2((uint)Math.Max(4, size)), out _mask);
        _tombstones = 0;
        for (int i = 0; i <= oldMask; i++)
        {
            var slot = old[i];
            if ((slot.Hash & 1) == 0) continue;
            int s = (int)(slot.Hash >> 1) & _mask;
            while (_slots[s].Hash != 0) s = (s + 1) & _mask;
            _slots.Write(s) = slot;
        }
    }

    public BytesTable Publish() => _published ??= new BytesTable(_slots.Publish(), _mask, Count);
}
