using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using Lisp.Wire;

namespace Lisp.MapCache;

/// <summary>What a lookup found.</summary>
public enum LookupStatus : byte
{
    /// <summary>No entry covers the destination: the data plane posts a miss (Map-Request) and applies its default.</summary>
    Miss = 0,
    /// <summary>Positive entry with a usable RLOC: encapsulate to <see cref="LookupResult.RlocIndex"/>.</summary>
    Forward = 1,
    /// <summary>Negative entry: apply <see cref="LookupResult.Action"/> (drop, natively forward, send Map-Request).</summary>
    Negative = 2,
    /// <summary>Positive entry, but every RLOC is unreachable or has priority 255: treat as a miss / punt.</summary>
    NoUsableRloc = 3,
}

/// <summary>
/// The answer of one lookup: a small value type so a lookup never allocates. <see cref="Expires"/> is the
/// opaque expiry the control plane installed (its clock); the data plane may compare it and punt.
/// </summary>
[StructLayout(LayoutKind.Auto)]
public readonly struct LookupResult
{
    public readonly int EntryIndex;
    public readonly int RlocIndex;
    public readonly long Expires;
    public readonly uint TtlSeconds;
    public readonly LookupStatus Status;
    public readonly MapReplyAction Action;
    public readonly byte PrefixLength;
    /// <summary>The mapping's Map-Version number (RFC 9302, 12 bits; 0 = not versioned).</summary>
    public readonly ushort MapVersion;

    internal LookupResult(int entry, int rloc, long expires, uint ttl, LookupStatus status, MapReplyAction action, byte len, ushort mapVersion)
    {
        MapVersion = mapVersion;
        EntryIndex = entry;
        RlocIndex = rloc;
        Expires = expires;
        TtlSeconds = ttl;
        Status = status;
        Action = action;
        PrefixLength = len;
    }

    public bool Found => Status != LookupStatus.Miss;
    public override string ToString() => $"{Status} entry={EntryIndex} rloc={RlocIndex} action={Action} /{PrefixLength} ttl={TtlSeconds}";
}

/// <summary>Per-entry data the lookup reads after the table gave a slot (value type, no references): 24 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct Entry
{
    public long Expires;
    public int RingStart;    // positive entries: where the locator set's ring lies (a length word, then RLOC indexes)
    public uint Ttl;
    public ushort MapVersion;   // RFC 9302, 12 bits
    public byte Kind;        // 0 = free slot, 1 = positive, 2 = negative
    public MapReplyAction Action;
    public byte PrefixLength;
}

[InlineArray(16)]
internal struct Address16 { private byte _e; }

/// <summary>One RLOC as the data plane reads it: network-order bytes (IPv4 in the first 4), host-order IPv4.</summary>
internal struct RlocData
{
    public Address16 Bytes;
    public uint V4;
    public bool IsV4;
    public bool Reachable;
}

/// <summary>The RLOC table of a snapshot: index -> address, in the forms the data plane needs.</summary>
public sealed class RlocTable
{
    private readonly Chunks<RlocData> _data;
    private readonly Chunks<IPAddress?> _addresses;

    internal RlocTable(Chunks<RlocData> data, Chunks<IPAddress?> addresses, int count)
    {
        _data = data;
        _addresses = addresses;
        Count = count;
    }

    /// <summary>Indexes in use are below this (freed indexes inside the range have no address).</summary>
    public int Count { get; }
    public IPAddress Address(int index) => (uint)index < (uint)Count ? _addresses.At(index) ?? throw new ArgumentOutOfRangeException(nameof(index), "free RLOC index") : throw new ArgumentOutOfRangeException(nameof(index));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool IsV4(int index) => _data.At(index).IsV4;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool IsReachable(int index) => _data.At(index).Reachable;
    /// <summary>Network-order address bytes (4 or 16).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ReadOnlySpan<byte> Bytes(int index)
    {
        ref RlocData d = ref _data.At(index);
        return MemoryMarshal.CreateReadOnlySpan(ref Unsafe.As<Address16, byte>(ref d.Bytes), d.IsV4 ? 4 : 16);
    }
    /// <summary>An IPv4 RLOC as a host-order integer.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public uint V4(int index) => _data.At(index).V4;
    // The accessors above run once per encapsulated packet: forced inline (out-of-line calls in the AOT binary before).
}

/// <summary>
/// An immutable map-cache version. Readers obtain it once per batch from <see cref="MapCacheWriter.Current"/>
/// (a volatile read) and use it without locks; the garbage collector keeps it alive while any reader holds
/// it. Every lookup method is allocation-free.
/// </summary>
public sealed class MapCacheSnapshot
{
    private readonly Chunks<Entry> _entries;
    private readonly Chunks<int> _ring;
    private readonly long _entryAndRingBytes;
    private readonly uint[] _v4Iids;
    private readonly V4Lpm[] _v4;
    private readonly uint[] _v6Iids;
    private readonly V6Lpm[] _v6;
    private readonly BytesTable _exact;

    /// <summary>Increases by one at every publish.</summary>
    public long Generation { get; }
    public RlocTable Rlocs { get; }
    /// <summary>True when this snapshot's tables were hashed with the CRC32 instruction (else the software path).</summary>
    public bool HardwareHash { get; }
    public int Count { get; }

    internal MapCacheSnapshot(long generation, Chunks<Entry> entries, Chunks<int> ring, RlocTable rlocs,
        uint[] v4Iids, V4Lpm[] v4, uint[] v6Iids, V6Lpm[] v6, BytesTable exact, bool hw, int count, long entryAndRingBytes)
    {
        Generation = generation;
        _entries = entries;
        _ring = ring;
        _entryAndRingBytes = entryAndRingBytes;
        Rlocs = rlocs;
        _v4Iids = v4Iids;
        _v4 = v4;
        _v6Iids = v6Iids;
        _v6 = v6;
        _exact = exact;
        HardwareHash = hw;
        Count = count;
    }

    /// <summary>Approximate bytes held by the lookup structures (tables, entries, ring).</summary>
    public long LookupBytes => _v4.Sum(t => t.Bytes) + _v6.Sum(t => t.Bytes) + _entryAndRingBytes;

    internal bool V4UsesDir24(uint iid) => IndexOf(_v4Iids, iid) is int i && i >= 0 && _v4[i].IsDir24;
    internal V4Layout? V4LayoutOf(uint iid) => IndexOf(_v4Iids, iid) is int i && i >= 0 ? _v4[i].Layout : null;
    internal V6Lpm? V6Table(uint iid) => IndexOf(_v6Iids, iid) is int i && i >= 0 ? _v6[i] : null;
    internal V4Lpm? V4Table(uint iid) => IndexOf(_v4Iids, iid) is int i && i >= 0 ? _v4[i] : null;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int IndexOf(uint[] iids, uint iid)
    {
        // Almost every deployment has 1-4 instance-ids: a linear scan beats a dictionary.
        if (iids.Length <= 8)
        {
            for (int i = 0; i < iids.Length; i++) if (iids[i] == iid) return i;
            return -1;
        }
        return Array.BinarySearch(iids, iid);
    }

    /// <summary>IPv4 or IPv6 destination in network byte order (4 or 16 bytes).</summary>
    public bool TryLookup(uint iid, ReadOnlySpan<byte> destination, uint flowHash, out LookupResult result)
    {
        if (destination.Length == 4) return TryLookupV4(iid, BinaryPrimitives.ReadUInt32BigEndian(destination), flowHash, out result);
        if (destination.Length == 16) return TryLookupV6(iid, V6Key.FromBytes(destination), flowHash, out result);
        result = default;
        return false;
    }

    /// <summary>IPv4 destination as a host-order integer.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryLookupV4(uint iid, uint destination, uint flowHash, out LookupResult result)
    {
        int t = IndexOf(_v4Iids, iid);
        int slot = t < 0 ? -1 : _v4[t].Lookup(destination);
        return Resolve(slot, flowHash, out result);
    }

    public bool TryLookupV6(uint iid, V6Key destination, uint flowHash, out LookupResult result)
    {
        int t = IndexOf(_v6Iids, iid);
        int slot = t < 0 ? -1 : _v6[t].Lookup(destination);
        return Resolve(slot, flowHash, out result);
    }

    /// <summary>Exact match for a non-IP EID by its canonical key (<see cref="EidKey.Build"/>).</summary>
    public bool TryLookupExact(ReadOnlySpan<byte> canonicalKey, uint flowHash, out LookupResult result)
    {
        int slot = _exact.TryGet(canonicalKey, out int s) ? s : -1;
        return Resolve(slot, flowHash, out result);
    }

    /// <summary>
    /// Batch of IPv4 lookups in one instance: destinations host-order; results equal <see cref="TryLookupV4"/>'s
    /// one by one (same slot, same flow-hash RLOC choice). Returns the number of results that are
    /// <see cref="LookupStatus.Forward"/>.
    /// <para>
    /// With a DIR-16/DIR-24 table on x86 the batch runs as a software pipeline (<see cref="PipelinedV4"/>): the
    /// loads each lookup depends on (front entry, then side entry, then map-cache entry, then its ring) are
    /// prefetched for the destinations <see cref="PrefetchDistance"/> steps ahead, so their cache misses overlap
    /// instead of following one another. A plain loop does not get that overlap at 1M prefixes (each lookup is a
    /// chain of 2-3 dependent DRAM/TLB misses, ~150 ns streamed, perf/RESULTS.md).
    /// </para>
    /// </summary>
    public int LookupV4Batch(uint iid, ReadOnlySpan<uint> destinations, ReadOnlySpan<uint> flowHashes, Span<LookupResult> results)
    {
        if (flowHashes.Length < destinations.Length || results.Length < destinations.Length)
            throw new ArgumentException("flowHashes and results must be at least as long as destinations");
        int t = IndexOf(_v4Iids, iid);
        if (t < 0)
        {
            results.Slice(0, destinations.Length).Clear();
            return 0;
        }
        var lpm = _v4[t];
        // arm64 has no managed prefetch intrinsic; tiny batches would spend more on the pipeline's fill and drain
        // than they save; the hash layout (fewer than 64 prefixes) is cache-resident anyway.
        if (Sse.IsSupported && lpm.HasFront && destinations.Length >= MinPipelinedBatch)
            return PipelinedV4(lpm, destinations, flowHashes, results);
        int forwards = 0;
        for (int i = 0; i < destinations.Length; i++)
        {
            Resolve(lpm.Lookup(destinations[i]), flowHashes[i], out results[i]);
            if (results[i].Status == LookupStatus.Forward) forwards++;
        }
        return forwards;
    }

    /// <summary>Steps between a pipeline stage and the next for one destination (stages are this many destinations apart).</summary>
    private const int PrefetchDistance = 4;
    /// <summary>Below this many destinations the batch is a plain loop (the pipeline's fill and drain cost 5 x distance steps).</summary>
    private const int MinPipelinedBatch = 16;
    /// <summary>In-flight state per destination, indexed modulo this (power of two, more than 5 x distance + 1).</summary>
    private const int PipelineRing = 32;

    /// <summary>
    /// The IPv4 batch as a six-stage pipeline. Step k works on six destinations at once, each in another stage:
    /// <list type="number">
    /// <item>k: prefetch destination k's front-table entry (DIR-24: a random line of a 64 MiB table);</item>
    /// <item>k - D: read that front value (now cached); if negative (longer prefixes under the block) prefetch its side entry;</item>
    /// <item>k - 2D: negative only: read the side entry and prefetch the hash bucket of the longest length under the block;</item>
    /// <item>k - 3D: finish the LPM (<see cref="V4Lpm.SlotFromFront"/>, the single lookup's own code) and prefetch the map-cache entry;</item>
    /// <item>k - 4D: read the entry and prefetch its locator set's ring (positive entries);</item>
    /// <item>k - 5D: <see cref="Resolve"/>, exactly as a single lookup.</item>
    /// </list>
    /// A prefetch never faults and never changes a result: a wrong or stale address only costs the load. The
    /// addresses come from refs into managed arrays; the collector may move an array between the prefetch and the
    /// load, which only makes that prefetch useless.
    /// </summary>
    private unsafe int PipelinedV4(V4Lpm lpm, ReadOnlySpan<uint> destinations, ReadOnlySpan<uint> flowHashes, Span<LookupResult> results)
    {
        const int D = PrefetchDistance;
        const int M = PipelineRing - 1;
        int n = destinations.Length;
        Span<int> state = stackalloc int[PipelineRing];   // front value after stage 2, slot after stage 4
        int forwards = 0;
        for (int k = 0; k < n + 5 * D; k++)
        {
            if (k < n)
                Sse.Prefetch0(Unsafe.AsPointer(ref lpm.FrontEntry(destinations[k])));
            int i1 = k - D;
            if ((uint)i1 < (uint)n)
            {
                int v = lpm.FrontEntry(destinations[i1]);
                state[i1 & M] = v;
                if (v < 0) Sse.Prefetch0(Unsafe.AsPointer(ref lpm.LongerEntry(v)));
            }
            int i2 = k - 2 * D;
            if ((uint)i2 < (uint)n)
            {
                int v = state[i2 & M];
                if (v < 0)
                {
                    ref var bucket = ref lpm.FirstLongerBucket(destinations[i2], v);
                    if (!Unsafe.IsNullRef(ref bucket)) Sse.Prefetch0(Unsafe.AsPointer(ref bucket));
                }
            }
            int i3 = k - 3 * D;
            if ((uint)i3 < (uint)n)
            {
                ref int s = ref state[i3 & M];
                s = lpm.SlotFromFront(destinations[i3], s);
                if (s >= 0) Sse.Prefetch0(Unsafe.AsPointer(ref _entries.At(s)));
            }
            int i4 = k - 4 * D;
            if ((uint)i4 < (uint)n)
            {
                int slot = state[i4 & M];
                if (slot >= 0)
                {
                    ref Entry e = ref _entries.At(slot);
                    if (e.Kind == 1) Sse.Prefetch0(Unsafe.AsPointer(ref _ring.At(e.RingStart)));
                }
            }
            int i5 = k - 5 * D;
            if ((uint)i5 < (uint)n)
            {
                Resolve(state[i5 & M], flowHashes[i5], out results[i5]);
                if (results[i5].Status == LookupStatus.Forward) forwards++;
            }
        }
        return forwards;
    }

    /// <summary>
    /// Batch of IPv6 lookups in one instance; results equal <see cref="TryLookupV6"/>'s one by one. On x86 a
    /// four-stage pipeline (<see cref="PipelinedV6"/>) prefetches the first hash bucket of the /48 and /16 block
    /// tables, then the map-cache entry, then its ring, <see cref="PrefetchDistance"/> destinations ahead. The
    /// per-length probes after the block tables depend on the block's length mask and are not prefetched.
    /// </summary>
    public int LookupV6Batch(uint iid, ReadOnlySpan<V6Key> destinations, ReadOnlySpan<uint> flowHashes, Span<LookupResult> results)
    {
        if (flowHashes.Length < destinations.Length || results.Length < destinations.Length)
            throw new ArgumentException("flowHashes and results must be at least as long as destinations");
        int t = IndexOf(_v6Iids, iid);
        if (t < 0)
        {
            results.Slice(0, destinations.Length).Clear();
            return 0;
        }
        var lpm = _v6[t];
        if (Sse.IsSupported && destinations.Length >= MinPipelinedBatch)
            return PipelinedV6(lpm, destinations, flowHashes, results);
        int forwards = 0;
        for (int i = 0; i < destinations.Length; i++)
        {
            Resolve(lpm.Lookup(destinations[i]), flowHashes[i], out results[i]);
            if (results[i].Status == LookupStatus.Forward) forwards++;
        }
        return forwards;
    }

    /// <summary>
    /// Step k: prefetch destination k's first-level buckets; k - D: the whole LPM (its first probes now cached),
    /// prefetch the entry; k - 2D: read the entry, prefetch its ring; k - 3D: <see cref="Resolve"/>.
    /// </summary>
    private unsafe int PipelinedV6(V6Lpm lpm, ReadOnlySpan<V6Key> destinations, ReadOnlySpan<uint> flowHashes, Span<LookupResult> results)
    {
        const int D = PrefetchDistance;
        int n = destinations.Length;
        Span<int> slots = stackalloc int[PipelineRing];
        int forwards = 0;
        for (int k = 0; k < n + 3 * D; k++)
        {
            if (k < n) lpm.PrefetchFirstLevel(destinations[k]);
            int i1 = k - D;
            if ((uint)i1 < (uint)n)
            {
                int slot = lpm.Lookup(destinations[i1]);
                slots[i1 & (PipelineRing - 1)] = slot;
                if (slot >= 0) Sse.Prefetch0(Unsafe.AsPointer(ref _entries.At(slot)));
            }
            int i2 = k - 2 * D;
            if ((uint)i2 < (uint)n)
            {
                int slot = slots[i2 & (PipelineRing - 1)];
                if (slot >= 0)
                {
                    ref Entry e = ref _entries.At(slot);
                    if (e.Kind == 1) Sse.Prefetch0(Unsafe.AsPointer(ref _ring.At(e.RingStart)));
                }
            }
            int i3 = k - 3 * D;
            if ((uint)i3 < (uint)n)
            {
                Resolve(slots[i3 & (PipelineRing - 1)], flowHashes[i3], out results[i3]);
                if (results[i3].Status == LookupStatus.Forward) forwards++;
            }
        }
        return forwards;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool Resolve(int slot, uint flowHash, out LookupResult result)
    {
        if (slot < 0)
        {
            result = default;
            return false;
        }
        ref Entry e = ref _entries.At(slot);
        if (e.Kind == 2)
        {
            result = new LookupResult(slot, -1, e.Expires, e.Ttl, LookupStatus.Negative, e.Action, e.PrefixLength, e.MapVersion);
            return true;
        }
        ref int ring = ref _ring.At(e.RingStart);
        int length = ring;
        if (length == 0)
        {
            result = new LookupResult(slot, -1, e.Expires, e.Ttl, LookupStatus.NoUsableRloc, e.Action, e.PrefixLength, e.MapVersion);
        }
        else
        {
            // Multiply-shift maps the 32-bit flow hash onto the weighted ring without a division.
            int rloc = Unsafe.Add(ref ring, 1 + (int)(((ulong)flowHash * (uint)length) >> 32));
            result = new LookupResult(slot, rloc, e.Expires, e.Ttl, LookupStatus.Forward, e.Action, e.PrefixLength, e.MapVersion);
        }
        return true;
    }
}
