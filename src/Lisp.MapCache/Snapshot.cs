using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
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
    public int LocatorSet;   // index of the entry's locator set (its ring); -1 for a negative entry
    public uint Ttl;
    public ushort MapVersion;   // RFC 9302, 12 bits
    public byte Kind;        // 0 = free slot, 1 = positive, 2 = negative
    public MapReplyAction Action;
    public byte PrefixLength;
}

/// <summary>Where a locator set's weighted ring lies in the ring array (length 0: no usable RLOC).</summary>
internal struct RingRef
{
    public int Start;
    public int Length;
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
    private readonly Chunks<RingRef> _setRings;
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

    internal MapCacheSnapshot(long generation, Chunks<Entry> entries, Chunks<RingRef> setRings, Chunks<int> ring, RlocTable rlocs,
        uint[] v4Iids, V4Lpm[] v4, uint[] v6Iids, V6Lpm[] v6, BytesTable exact, bool hw, int count, long entryAndRingBytes)
    {
        Generation = generation;
        _entries = entries;
        _setRings = setRings;
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
    /// Batch of IPv4 lookups in one instance: destinations host-order. The loop carries no dependency
    /// between iterations, so with DIR-24 the CPU overlaps the table loads of consecutive packets.
    /// Returns the number of results that are <see cref="LookupStatus.Forward"/>.
    /// </summary>
    public int LookupV4Batch(uint iid, ReadOnlySpan<uint> destinations, ReadOnlySpan<uint> flowHashes, Span<LookupResult> results)
    {
        if (flowHashes.Length < destinations.Length || results.Length < destinations.Length)
            throw new ArgumentException("flowHashes and results must be at least as long as destinations");
        int t = IndexOf(_v4Iids, iid);
        int forwards = 0;
        if (t < 0)
        {
            results.Slice(0, destinations.Length).Clear();
            return 0;
        }
        var lpm = _v4[t];
        for (int i = 0; i < destinations.Length; i++)
        {
            Resolve(lpm.Lookup(destinations[i]), flowHashes[i], out results[i]);
            if (results[i].Status == LookupStatus.Forward) forwards++;
        }
        return forwards;
    }

    /// <summary>Batch of IPv6 lookups in one instance.</summary>
    public int LookupV6Batch(uint iid, ReadOnlySpan<V6Key> destinations, ReadOnlySpan<uint> flowHashes, Span<LookupResult> results)
    {
        if (flowHashes.Length < destinations.Length || results.Length < destinations.Length)
            throw new ArgumentException("flowHashes and results must be at least as long as destinations");
        int t = IndexOf(_v6Iids, iid);
        int forwards = 0;
        for (int i = 0; i < destinations.Length; i++)
        {
            Resolve(t < 0 ? -1 : _v6[t].Lookup(destinations[i]), flowHashes[i], out results[i]);
            if (results[i].Status == LookupStatus.Forward) forwards++;
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
        RingRef ring = _setRings.At(e.LocatorSet);
        if (ring.Length == 0)
        {
            result = new LookupResult(slot, -1, e.Expires, e.Ttl, LookupStatus.NoUsableRloc, e.Action, e.PrefixLength, e.MapVersion);
        }
        else
        {
            // Multiply-shift maps the 32-bit flow hash onto the weighted ring without a division.
            int rloc = _ring.At(ring.Start + (int)(((ulong)flowHash * (uint)ring.Length) >> 32));
            result = new LookupResult(slot, rloc, e.Expires, e.Ttl, LookupStatus.Forward, e.Action, e.PrefixLength, e.MapVersion);
        }
        return true;
    }
}
