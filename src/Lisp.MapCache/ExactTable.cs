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

/// <summary>
/// Immutable exact-match table: key -> int value. Buckets of 8 slots; each slot has a 32-bit tag (the key's
/// CRC32-C with the low bit forced to 1, so 0 means empty). A probe compares the bucket's 8 tags at once: as
/// one <see cref="Vector256{T}"/> where 256-bit vectors are hardware-accelerated (AVX2: x86-64-v3 builds, the
/// JIT on such CPUs), else as two <see cref="Vector128{T}"/> halves (SSE2/SSE4.1 at the shipped x86-64-v2
/// floor, AdvSimd on arm64) rather than an emulated Vector256; only slots whose tag matches have their key
/// compared. Measured (perf/RESULTS.md, run 2, native AOT at x86-64-v2): two Vector128 against the emulated
/// Vector256 the code used before, hash LPM at 1k prefixes 95-104 ns vs 142-156 ns, DIR-16 9.5-10.7 ns vs
/// 15-16 ns. Building with -p:LispTagCompare=v256 forces the Vector256 form everywhere, for that measurement only.
/// Sized for load &lt;= 50 %, so a probe almost always touches one 32-byte tag line plus the key and
/// value of the hit. Insertion goes to the first bucket (linear from the home bucket) with a free slot and
/// lookups stop at the first bucket that has a free slot, which is consistent because tables are never
/// mutated after build.
/// Measured (perf/RESULTS.md, hash-LPM rows): with tags+keys+values in three parallel arrays a hit costs
/// about 3 cache lines; that is why large IPv4 instances use the DIR-24 table instead (one address-computed load).
/// </summary>
internal sealed class ExactTable<TKey, TOps> where TKey : struct where TOps : struct, IKeyOps<TKey>
{
    private const int BucketSlots = 8;
    private readonly uint[] _tags;
    private readonly TKey[] _keys;
    private readonly int[] _values;
    private readonly int _bucketMask;
    private readonly bool _hw;

    public int Count { get; }
    public long Bytes => (long)_tags.Length * (4 + 4 + Unsafe.SizeOf<TKey>());
    internal ReadOnlySpan<uint> Tags => _tags;

    public ExactTable(ReadOnlySpan<TKey> keys, ReadOnlySpan<int> values, bool hardware)
    {
        _hw = hardware;
        int buckets = (int)BitOperations.RoundUpToPowerOf2((uint)Math.Max(1, (keys.Length + 3) / 4));
        _bucketMask = buckets - 1;
        _tags = new uint[buckets * BucketSlots];
        _keys = new TKey[buckets * BucketSlots];
        _values = new int[buckets * BucketSlots];
        for (int i = 0; i < keys.Length; i++) Insert(keys[i], values[i]);
        Count = keys.Length;
    }

    private void Insert(in TKey key, int value)
    {
        uint h = TOps.Hash(key, _hw);
        uint tag = h | 1;
        int b = (int)(h >> 7) & _bucketMask;
        while (true)
        {
            int baseSlot = b * BucketSlots;
            for (int i = 0; i < BucketSlots; i++)
            {
                int s = baseSlot + i;
                if (_tags[s] == tag && TOps.Equal(_keys[s], key)) { _values[s] = value; return; }
                if (_tags[s] == 0)
                {
                    _tags[s] = tag;
                    _keys[s] = key;
                    _values[s] = value;
                    return;
                }
            }
            b = (b + 1) & _bucketMask;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryGet(in TKey key, out int value)
    {
        uint h = TOps.LookupHash(key);
        uint tag = h | 1;
        int b = (int)(h >> 7) & _bucketMask;
        ref uint tags = ref MemoryMarshal.GetArrayDataReference(_tags);
        while (true)
        {
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
                var v = Vector256.LoadUnsafe(ref tags, (nuint)(b * BucketSlots));
                hits = Vector256.Equals(v, Vector256.Create(tag)).ExtractMostSignificantBits();
                hasEmpty = Vector256.EqualsAny(v, Vector256<uint>.Zero);
            }
            else
            {
                var lo = Vector128.LoadUnsafe(ref tags, (nuint)(b * BucketSlots));
                var hi = Vector128.LoadUnsafe(ref tags, (nuint)(b * BucketSlots + 4));
                var want = Vector128.Create(tag);
                hits = Vector128.Equals(lo, want).ExtractMostSignificantBits() | (Vector128.Equals(hi, want).ExtractMostSignificantBits() << 4);
                hasEmpty = (Vector128.Equals(lo, Vector128<uint>.Zero) | Vector128.Equals(hi, Vector128<uint>.Zero)) != Vector128<uint>.Zero;
            }
            while (hits != 0)
            {
                int s = b * BucketSlots + BitOperations.TrailingZeroCount(hits);
                if (TOps.Equal(Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_keys), s), key))
                {
                    value = Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_values), s);
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

/// <summary>Exact match over variable-length canonical byte keys (names, MAC, E.164, (S,G), geo): not on the IP fast path.</summary>
internal sealed class BytesTable
{
    private readonly uint[] _hashes;   // 0 = empty
    private readonly int[] _offsets;
    private readonly int[] _lengths;
    private readonly int[] _values;
    private readonly byte[] _blob;
    private readonly int _mask;
    private readonly bool _hw;
    public int Count { get; }

    public BytesTable(IReadOnlyList<(byte[] Key, int Value)> items, bool hardware)
    {
        _hw = hardware;
        int size = (int)BitOperations.RoundUpToPowerOf2((uint)Math.Max(2, items.Count * 2));
        _mask = size - 1;
        _hashes = new uint[size];
        _offsets = new int[size];
        _lengths = new int[size];
        _values = new int[size];
        _blob = new byte[items.Sum(i => i.Key.Length)];
        int off = 0;
        foreach (var (key, value) in items)
        {
            key.CopyTo(_blob, off);
            uint h = Crc32C.HashBytes(Crc32C.Seed, key, _hw) | 1;
            int s = (int)(h >> 1) & _mask;
            while (_hashes[s] != 0) s = (s + 1) & _mask;
            _hashes[s] = h;
            _offsets[s] = off;
            _lengths[s] = key.Length;
            _values[s] = value;
            off += key.Length;
        }
        Count = items.Count;
    }

    public bool TryGet(ReadOnlySpan<byte> key, out int value)
    {
        uint h = Crc32C.HashBytes(Crc32C.Seed, key, _hw) | 1;
        int s = (int)(h >> 1) & _mask;
        while (_hashes[s] != 0)
        {
            if (_hashes[s] == h && _blob.AsSpan(_offsets[s], _lengths[s]).SequenceEqual(key))
            {
                value = _values[s];
                return true;
            }
            s = (s + 1) & _mask;
        }
        value = 0;
        return false;
    }
}
