using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using Lisp.Wire;

namespace Lisp.MapCache;

/// <summary>Build-time choices of a <see cref="MapCacheWriter"/>.</summary>
public sealed record MapCacheOptions
{
    /// <summary>An IPv4 instance with at least this many prefixes uses DIR-24 + hashed tail (64 MiB fixed) instead of hash LPM.</summary>
    public int Dir24Threshold { get; init; } = 16 * 1024;
    /// <summary>
    /// Internal (layout detail, tests and benchmarks force it): an IPv4 instance with at least this many
    /// prefixes, but fewer than <see cref="Dir24Threshold"/>, uses the DIR-16 front table (256 KiB fixed)
    /// with per-/16 length bitmaps; below it, plain hash LPM. See <see cref="DefaultDir16Threshold"/>.
    /// </summary>
    internal int Dir16Threshold { get; init; } = DefaultDir16Threshold;
    internal const int DefaultDir16Threshold = 64;
    /// <summary>null: the CRC32 instruction when <see cref="Crc32C.HardwareAvailable"/>; false forces the software hash.</summary>
    public bool? UseHardwareHash { get; init; }
    /// <summary>Upper bound on weighted-ring slots per entry (weights are scaled down above it).</summary>
    public int MaxRingSlots { get; init; } = 64;
    /// <summary>
    /// Reuse chunks that copy-on-write replaced once no reader holds them (<see cref="ChunkRecycler"/>). Every
    /// thread that reads snapshots must then do so through <see cref="MapCacheWriter.RegisterReader"/>, and
    /// <see cref="MapCacheWriter.Current"/> is for the writer's own thread. Off by default (tests and tools
    /// keep snapshots around); the appliance's data plane turns it on.
    /// </summary>
    public bool RecycleChunks { get; init; }
}

/// <summary>One RLOC of a mapping as the control plane learned it (RFC 9301 locator record).</summary>
public readonly record struct RlocSpec(IPAddress Address, byte Priority, byte Weight, bool Reachable = true);

/// <summary>
/// The single writer of a map-cache (the control plane's thread). Not thread-safe: one writer only.
/// <para>
/// Changes are applied in place to copy-on-write structures (<see cref="CowArray{T}"/>): the per-instance
/// LPM tables (<see cref="V4Builder"/>, <see cref="V6Builder"/>), the exact table for other EID kinds, the
/// entry array, the locator sets and their weighted rings, the RLOC table. <see cref="Publish"/> then
/// freezes them into a new immutable <see cref="MapCacheSnapshot"/> (copying only the chunk spines written
/// since the last publish) and makes it <see cref="Current"/> with one volatile reference write. A publish
/// costs O(changes since the last one), not O(entries): callers coalesce a turn's changes into one publish.
/// </para>
/// <para>
/// What the writer keeps beside the snapshot is index state only (key to slot, per-block counts, deduplicated
/// locator sets); the mapping itself lives in its owner (the ITR's table) and in the snapshot.
/// Slots (entry indexes) of a mapping are stable while it exists.
/// </para>
/// </summary>
public sealed class MapCacheWriter
{
    private readonly record struct MapKey(byte Family, uint Iid, byte Len, ulong Hi, ulong Lo);

    /// <summary>One locator of a set: RLOC index, priority, weight, and the record's own reachable bit.</summary>
    private readonly record struct Member(int Rloc, byte Priority, byte Weight, bool Reachable);

    /// <summary>
    /// A distinct locator list (most mappings share theirs), its users and its ring segment: one header word
    /// (the ring's current length) and room for the longest ring the set can have, so the segment stays put
    /// when reachability changes and the entries pointing at it never need rewriting.
    /// </summary>
    private sealed class LocatorSet
    {
        public required Member[] Members;
        public int Users;
        public int RingStart;
        public int RingCapacity;
    }

    private sealed class MembersComparer : IEqualityComparer<Member[]>
    {
        public static readonly MembersComparer Instance = new();
        public bool Equals(Member[]? a, Member[]? b) => a.AsSpan().SequenceEqual(b);
        public int GetHashCode(Member[] m)
        {
            var h = new HashCode();
            foreach (var x in m) h.Add(x);
            return h.ToHashCode();
        }
    }

    private sealed class BytesComparer : IEqualityComparer<byte[]>
    {
        public static readonly BytesComparer Instance = new();
        public bool Equals(byte[]? a, byte[]? b) => a.AsSpan().SequenceEqual(b);
        public int GetHashCode(byte[] b)
        {
            var h = new HashCode();
            h.AddBytes(b);
            return h.ToHashCode();
        }
    }

    private readonly MapCacheOptions _options;
    private readonly bool _hw;

    private readonly ChunkRecycler? _recycler;
    private readonly ReaderRegistry? _readers;

    // Entries by slot: chunks of 512 (12 KiB), the unit a change copies.
    private readonly CowArray<Entry> _entries;
    private readonly Stack<int> _freeSlots = new();
    private int _slotTop;
    private readonly Dictionary<MapKey, int> _byKey = new();
    private readonly Dictionary<byte[], int> _byExactKey = new(BytesComparer.Instance);

    // Locator sets and their rings.
    private readonly List<LocatorSet?> _sets = new();
    private readonly Stack<int> _freeSets = new();
    private readonly Dictionary<Member[], int> _setIndex = new(MembersComparer.Instance);
    private readonly List<int> _slotSet = new();   // writer only: the locator set of each slot (-1 none)
    private readonly CowArray<int> _ring;
    private readonly Dictionary<int, Stack<int>> _freeRing = new();
    private int _ringTop;
    private const int RingChunkShift = 12;

    // RLOCs: index by address, users, reachability, sets using each.
    private readonly Dictionary<IPAddress, int> _rlocIndex = new();
    private readonly List<int> _rlocUsers = new();
    private readonly List<HashSet<int>?> _rlocSets = new();
    private readonly Stack<int> _freeRlocs = new();
    private readonly HashSet<IPAddress> _down = new();
    private readonly CowArray<RlocData> _rlocData;
    private readonly CowArray<IPAddress?> _rlocAddresses;
    private int _rlocTop;

    // Lookup structures.
    private readonly Dictionary<uint, V4Builder> _v4 = new();
    private readonly Dictionary<uint, V6Builder> _v6 = new();
    private readonly CowBytesTable _exact;

    private MapCacheSnapshot _current;
    private long _generation;
    private readonly List<(uint Addr, byte Len, int Slot)> _relayout = new();

    public MapCacheWriter(MapCacheOptions? options = null)
    {
        _options = options ?? new MapCacheOptions();
        Crc32C.CheckHardware();
        _hw = (_options.UseHardwareHash ?? true) && Crc32C.HardwareAvailable;
        if (_options.RecycleChunks)
        {
            _recycler = new ChunkRecycler();
            _readers = new ReaderRegistry();
        }
        _entries = new(9, 0, _recycler);
        _ring = new(RingChunkShift, 0, _recycler);
        _rlocData = new(CowArray<RlocData>.ShiftFor(11), 0, _recycler);
        _rlocAddresses = new(11, 0, _recycler);
        _exact = new CowBytesTable(_hw, _recycler);
        _current = Build();
        if (_recycler is not null) _recycler.PendingTag = _current.Generation + 1;
    }

    /// <summary>A reader for one data-plane thread (see <see cref="MapCacheReader"/>).</summary>
    public MapCacheReader RegisterReader() => _readers is null ? MapCacheReader.From(() => Current) : new TrackedReader(this, _readers.Register());

    private sealed class TrackedReader(MapCacheWriter writer, int slot) : MapCacheReader
    {
        public override MapCacheSnapshot Acquire()
        {
            while (true)
            {
                var s = writer.Current;
                writer._readers!.Announce(slot, s.Generation);
                if (ReferenceEquals(writer.Current, s)) return s;
            }
        }

        public override void Release() => writer._readers!.Clear(slot);
    }

    /// <summary>The published snapshot (volatile read; readers call this once per batch).</summary>
    public MapCacheSnapshot Current => Volatile.Read(ref _current);
    public int Count => _byKey.Count + _byExactKey.Count;
    public bool HardwareHash => _hw;
    /// <summary>Chunks reused rather than allocated since start (0 without <see cref="MapCacheOptions.RecycleChunks"/>).</summary>
    public long RecycledChunks => _recycler?.Reused ?? 0;

    /// <summary>Adds or replaces a positive mapping.</summary>
    public int AddOrReplace(EidPrefix eid, ReadOnlySpan<RlocSpec> rlocs, uint ttlSeconds, long expires, ushort mapVersion = 0) =>
        eid.Inner is IpAddress
            ? Set(KeyOf(eid), rlocs, false, MapReplyAction.NoAction, ttlSeconds, expires, mapVersion)
            : SetExact(EidKey.Build(eid), eid.MaskLength, rlocs, false, MapReplyAction.NoAction, ttlSeconds, expires, mapVersion);

    /// <summary>Adds or replaces a negative mapping (RFC 9301 negative Map-Reply) with its action.</summary>
    public int AddOrReplaceNegative(EidPrefix eid, MapReplyAction action, uint ttlSeconds, long expires) =>
        eid.Inner is IpAddress
            ? Set(KeyOf(eid), default, true, action, ttlSeconds, expires, 0)
            : SetExact(EidKey.Build(eid), eid.MaskLength, default, true, action, ttlSeconds, expires, 0);

    /// <summary>Fast path for bulk loads: IPv4 prefix, address host-order (host bits are cleared).</summary>
    public int AddOrReplaceV4(uint iid, uint address, int length, ReadOnlySpan<RlocSpec> rlocs, uint ttlSeconds, long expires)
    {
        CheckLength(length, 32);
        return Set(V4Key(iid, address, length), rlocs, false, MapReplyAction.NoAction, ttlSeconds, expires, 0);
    }

    public int AddOrReplaceNegativeV4(uint iid, uint address, int length, MapReplyAction action, uint ttlSeconds, long expires)
    {
        CheckLength(length, 32);
        return Set(V4Key(iid, address, length), default, true, action, ttlSeconds, expires, 0);
    }

    public int AddOrReplaceV6(uint iid, V6Key address, int length, ReadOnlySpan<RlocSpec> rlocs, uint ttlSeconds, long expires)
    {
        CheckLength(length, 128);
        return Set(V6KeyOf(iid, address, length), rlocs, false, MapReplyAction.NoAction, ttlSeconds, expires, 0);
    }

    public bool Remove(EidPrefix eid) => eid.Inner is IpAddress ? Remove(KeyOf(eid)) : RemoveExact(EidKey.Build(eid));
    public bool RemoveV4(uint iid, uint address, int length) => Remove(V4Key(iid, address, length));
    public bool RemoveV6(uint iid, V6Key address, int length) => Remove(V6KeyOf(iid, address, length));

    /// <summary>Marks an RLOC reachable or not (RLOC probing, echo-nonce...). Rewrites the rings of the locator sets using it.</summary>
    public void SetReachability(IPAddress rloc, bool reachable)
    {
        if (rloc.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6))
            throw new ArgumentException("RLOC must be IPv4 or IPv6", nameof(rloc));
        if (!(reachable ? _down.Remove(rloc) : _down.Add(rloc))) return;
        if (!_rlocIndex.TryGetValue(rloc, out int i)) return;
        _rlocData.Write(i).Reachable = reachable;
        if (_rlocSets[i] is { } sets)
            foreach (int s in sets) Rering(s);
    }

    /// <summary>Freezes the changes made since the last publish into a new snapshot and swaps it in atomically.</summary>
    public MapCacheSnapshot Publish()
    {
        var s = Build();
        Volatile.Write(ref _current, s);
        if (_recycler is not null)
        {
            // Full fence between publishing and reading the readers' announcements (see ReaderRegistry).
            Interlocked.MemoryBarrier();
            _recycler.SafeTag = Math.Min(_readers!.Oldest(), s.Generation);
            _recycler.PendingTag = s.Generation + 1;
        }
        return s;
    }

    private static void CheckLength(int length, int max)
    {
        if ((uint)length > (uint)max) throw new ArgumentOutOfRangeException(nameof(length), $"prefix length must be 0..{max}");
    }

    private static MapKey V4Key(uint iid, uint address, int length) =>
        new(1, iid, (byte)length, length == 0 ? 0 : address & (uint.MaxValue << (32 - length)), 0);

    private static MapKey V6KeyOf(uint iid, V6Key address, int length)
    {
        var m = V6Lpm.Mask(address, length);
        return new MapKey(2, iid, (byte)length, m.Hi, m.Lo);
    }

    private static MapKey KeyOf(EidPrefix eid)
    {
        var ip = (IpAddress)eid.Inner;
        Span<byte> b = stackalloc byte[16];
        ip.Address.TryWriteBytes(b, out int n);
        if (n == 4)
        {
            CheckLength(eid.MaskLength, 32);
            return V4Key(eid.InstanceId, BinaryPrimitives.ReadUInt32BigEndian(b), eid.MaskLength);
        }
        CheckLength(eid.MaskLength, 128);
        return V6KeyOf(eid.InstanceId, V6Key.FromBytes(b), eid.MaskLength);
    }

    private int NewSlot()
    {
        int slot = _freeSlots.Count > 0 ? _freeSlots.Pop() : _slotTop++;
        _entries.EnsureLength(slot + 1);
        if (slot == _slotSet.Count) _slotSet.Add(-1);
        return slot;
    }

    private int Set(MapKey key, ReadOnlySpan<RlocSpec> rlocs, bool negative, MapReplyAction action, uint ttl, long expires, ushort mapVersion)
    {
        if (!_byKey.TryGetValue(key, out int slot))
        {
            slot = NewSlot();
            _byKey.Add(key, slot);
            WriteEntry(slot, key.Len, rlocs, negative, action, ttl, expires, mapVersion, fresh: true);
            if (key.Family == 1) V4Of(key.Iid).Insert((uint)key.Hi, key.Len, slot);
            else InsertV6(key.Iid, new V6Key(key.Hi, key.Lo), key.Len, slot);
            if (key.Family == 1) RelayoutUp(key.Iid);
        }
        else WriteEntry(slot, key.Len, rlocs, negative, action, ttl, expires, mapVersion, fresh: false);
        return slot;
    }

    private int SetExact(byte[] key, byte length, ReadOnlySpan<RlocSpec> rlocs, bool negative, MapReplyAction action, uint ttl, long expires, ushort mapVersion)
    {
        if (!_byExactKey.TryGetValue(key, out int slot))
        {
            slot = NewSlot();
            _byExactKey.Add(key, slot);
            WriteEntry(slot, length, rlocs, negative, action, ttl, expires, mapVersion, fresh: true);
            _exact.Set(key, slot);
        }
        else WriteEntry(slot, length, rlocs, negative, action, ttl, expires, mapVersion, fresh: false);
        return slot;
    }

    private bool Remove(MapKey key)
    {
        if (!_byKey.Remove(key, out int slot)) return false;
        if (key.Family == 1)
        {
            var b = _v4[key.Iid];
            b.Remove((uint)key.Hi, key.Len, slot);
            if (b.Count == 0) _v4.Remove(key.Iid);
        }
        else
        {
            var b = _v6[key.Iid];
            b.Remove(new V6Key(key.Hi, key.Lo), key.Len);
            if (b.Count == 0) _v6.Remove(key.Iid);
        }
        FreeSlot(slot);
        return true;
    }

    private bool RemoveExact(byte[] key)
    {
        if (!_byExactKey.Remove(key, out int slot)) return false;
        _exact.Remove(key);
        FreeSlot(slot);
        return true;
    }

    private void FreeSlot(int slot)
    {
        if (_slotSet[slot] >= 0) ReleaseSet(_slotSet[slot]);
        _slotSet[slot] = -1;
        _entries.Write(slot) = default;
        _freeSlots.Push(slot);
    }

    private void WriteEntry(int slot, byte length, ReadOnlySpan<RlocSpec> rlocs, bool negative, MapReplyAction action, uint ttl, long expires, ushort mapVersion, bool fresh)
    {
        int old = fresh ? -1 : _slotSet[slot];
        // Acquire the new set before releasing the old one, so an unchanged locator list keeps its set and ring.
        int set = negative ? -1 : AcquireSet(rlocs);
        if (old >= 0) ReleaseSet(old);
        ref Entry e = ref _entries.Write(slot);
        e.Kind = negative ? (byte)2 : (byte)1;
        e.Action = action;
        e.Ttl = ttl;
        e.Expires = expires;
        e.PrefixLength = length;
        e.MapVersion = (ushort)(mapVersion & 0xfff);
        e.RingStart = set < 0 ? 0 : _sets[set]!.RingStart;
        _slotSet[slot] = set;
    }

    private void InsertV6(uint iid, V6Key addr, byte len, int slot)
    {
        if (!_v6.TryGetValue(iid, out var b)) _v6[iid] = b = new V6Builder(_hw, _recycler);
        b.Insert(addr, len, slot);
    }

    private V4Builder V4Of(uint iid)
    {
        if (!_v4.TryGetValue(iid, out var b)) _v4[iid] = b = new V4Builder(LayoutFor(0, null), _hw, _recycler);
        return b;
    }

    /// <summary>
    /// The layout for an instance of <paramref name="count"/> prefixes. Upward switches happen as the count
    /// reaches a threshold; downward ones only below half of it, so an instance at a threshold does not flip
    /// between layouts (each switch rebuilds that instance).
    /// </summary>
    private V4Layout LayoutFor(int count, V4Layout? now)
    {
        var want = count >= _options.Dir24Threshold ? V4Layout.Dir24 : count >= _options.Dir16Threshold ? V4Layout.Dir16 : V4Layout.Hash;
        if (now is { } n && want < n)
        {
            long keep = n == V4Layout.Dir24 ? _options.Dir24Threshold / 2 : _options.Dir16Threshold / 2;
            if (count >= keep) return n;
        }
        return want;
    }

    private void RelayoutUp(uint iid)
    {
        var b = _v4[iid];
        if (LayoutFor(b.Count, b.Layout) > b.Layout) Relayout(iid, b);
    }

    private void Relayout(uint iid, V4Builder b)
    {
        var layout = LayoutFor(b.Count, b.Layout);
        if (layout == b.Layout) return;
        _relayout.Clear();
        b.ForEach(_relayout);
        // Shortest first: each front-table fill then writes every entry it covers once.
        _relayout.Sort(static (x, y) => x.Len.CompareTo(y.Len));
        var n = new V4Builder(layout, _hw, _recycler);
        foreach (var (a, l, s) in _relayout) n.Insert(a, l, s);
        _v4[iid] = n;
        _relayout.Clear();
    }

    // ---- locator sets and rings ----

    private int AcquireSet(ReadOnlySpan<RlocSpec> rlocs)
    {
        var members = new Member[rlocs.Length];
        for (int i = 0; i < rlocs.Length; i++)
        {
            var a = rlocs[i].Address;
            if (a.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6))
                throw new ArgumentException("RLOC must be IPv4 or IPv6", nameof(rlocs));
            members[i] = new Member(-1 - i, rlocs[i].Priority, rlocs[i].Weight, rlocs[i].Reachable);
        }
        // Look up by content with the RLOC indexes resolved (an address seen for the first time cannot be in a held set).
        bool allKnown = true;
        for (int i = 0; i < members.Length; i++)
        {
            if (_rlocIndex.TryGetValue(rlocs[i].Address, out int r)) members[i] = members[i] with { Rloc = r };
            else allKnown = false;
        }
        if (allKnown && _setIndex.TryGetValue(members, out int held))
        {
            _sets[held]!.Users++;
            return held;
        }
        for (int i = 0; i < members.Length; i++) members[i] = members[i] with { Rloc = AcquireRloc(rlocs[i].Address) };
        int index = _freeSets.Count > 0 ? _freeSets.Pop() : _sets.Count;
        if (index == _sets.Count) _sets.Add(null);
        var set = new LocatorSet { Members = members, Users = 1 };
        set.RingCapacity = RingCapacity(members);
        set.RingStart = AllocRing(set.RingCapacity + 1);
        _sets[index] = set;
        _setIndex.Add(members, index);
        foreach (var m in members) (_rlocSets[m.Rloc] ??= new()).Add(index);
        Rering(index);
        return index;
    }

    private void ReleaseSet(int index)
    {
        var set = _sets[index]!;
        if (--set.Users > 0) return;
        _setIndex.Remove(set.Members);
        FreeRing(set.RingStart, set.RingCapacity + 1);
        foreach (var m in set.Members)
        {
            _rlocSets[m.Rloc]!.Remove(index);
            ReleaseRloc(m.Rloc);
        }
        _sets[index] = null;
        _freeSets.Push(index);
    }

    private int AcquireRloc(IPAddress a)
    {
        if (_rlocIndex.TryGetValue(a, out int i))
        {
            _rlocUsers[i]++;
            return i;
        }
        i = _freeRlocs.Count > 0 ? _freeRlocs.Pop() : _rlocTop++;
        if (i == _rlocUsers.Count)
        {
            _rlocUsers.Add(0);
            _rlocSets.Add(null);
        }
        _rlocUsers[i] = 1;
        _rlocIndex.Add(a, i);
        _rlocData.EnsureLength(i + 1);
        _rlocAddresses.EnsureLength(i + 1);
        ref RlocData d = ref _rlocData.Write(i);
        d = default;
        a.TryWriteBytes(d.Bytes, out _);
        d.IsV4 = a.AddressFamily == AddressFamily.InterNetwork;
        d.V4 = d.IsV4 ? BinaryPrimitives.ReadUInt32BigEndian(d.Bytes) : 0;
        d.Reachable = !_down.Contains(a);
        _rlocAddresses.Write(i) = a;
        return i;
    }

    private void ReleaseRloc(int i)
    {
        if (--_rlocUsers[i] > 0) return;
        _rlocIndex.Remove(_rlocAddresses[i]!);
        _rlocAddresses.Write(i) = null;
        _rlocSets[i] = null;
        _freeRlocs.Push(i);
    }

    private bool Usable(in Member m) => m.Reachable && m.Priority < 255 && _rlocData[m.Rloc].Reachable;

    /// <summary>Writes the set's current ring (header = length, then the RLOC indexes) into its segment.</summary>
    private void Rering(int index)
    {
        var set = _sets[index]!;
        int best = 255;
        foreach (var m in set.Members)
            if (Usable(m) && m.Priority < best) best = m.Priority;
        Span<int> ring = stackalloc int[RingBound(set.Members.Length)];
        int length = best == 255 ? 0 : BuildRing(set.Members, best, allUsable: false, ring);
        // Bounded by RingCapacity (see there); the clamp only guards the invariant.
        length = Math.Min(length, set.RingCapacity);
        var segment = _ring.WriteSpan(set.RingStart, set.RingCapacity + 1);
        segment[0] = length;
        ring.Slice(0, length).CopyTo(segment.Slice(1));
    }

    private int RingBound(int members) => 2 * Math.Max(_options.MaxRingSlots, members) + 1;

    /// <summary>
    /// The longest ring the set can have: the longest over its priority groups with every member usable.
    /// Marking members unusable never lengthens a group's ring: the total weight drops and the GCD of the
    /// remaining weights can only grow, and the scaled form is bounded by MaxRingSlots plus the members left.
    /// </summary>
    private int RingCapacity(Member[] members)
    {
        Span<int> ring = stackalloc int[RingBound(members.Length)];
        int capacity = 0;
        foreach (var m in members)
            if (m.Priority < 255) capacity = Math.Max(capacity, BuildRing(members, m.Priority, allUsable: true, ring));
        return capacity;
    }

    /// <summary>
    /// RFC 9300 section 5.3 selection within one priority group: spread flows over its usable members by weight
    /// (all-zero weights mean equal shares; a zero weight beside non-zero ones gets no share). The ring holds each
    /// member weight-many times, reduced by the weights' GCD (50/50 is 1/1) and scaled down to MaxRingSlots.
    /// </summary>
    private int BuildRing(Member[] members, int priority, bool allUsable, Span<int> ring)
    {
        int total = 0, g = 0, count = 0;
        foreach (var m in members)
        {
            if (m.Priority != priority || !(allUsable || Usable(m))) continue;
            count++;
            total += m.Weight;
            if (m.Weight != 0) g = Gcd(g, m.Weight);
        }
        if (count == 0) return 0;
        bool equal = total == 0;
        if (equal) { total = count; g = 1; }
        total /= g;
        int max = Math.Max(_options.MaxRingSlots, count);
        int length = 0;
        foreach (var m in members)
        {
            if (m.Priority != priority || !(allUsable || Usable(m))) continue;
            int w = equal ? 1 : m.Weight / g;
            if (w == 0) continue;
            int n = total <= max ? w : Math.Max(1, (int)((long)w * max / total));
            for (int k = 0; k < n && length < ring.Length; k++) ring[length++] = m.Rloc;
        }
        return length;
    }

    private int AllocRing(int length)
    {
        if (_freeRing.TryGetValue(length, out var free) && free.Count > 0) return free.Pop();
        int chunk = 1 << RingChunkShift;
        // A segment never straddles two chunks (WriteSpan writes within one).
        if ((_ringTop & (chunk - 1)) + length > chunk) _ringTop = (_ringTop + chunk - 1) & ~(chunk - 1);
        int start = _ringTop;
        _ringTop += length;
        _ring.EnsureLength(_ringTop);
        return start;
    }

    private void FreeRing(int start, int length)
    {
        if (length == 0) return;
        if (!_freeRing.TryGetValue(length, out var free)) _freeRing[length] = free = new Stack<int>();
        free.Push(start);
    }

    private static int Gcd(int a, int b)
    {
        while (b != 0) (a, b) = (b, a % b);
        return a;
    }

    private MapCacheSnapshot Build()
    {
        // Instances that shrank below half their layout's threshold move down a layout (rare; rebuilds that instance).
        List<uint>? shrink = null;
        foreach (var (iid, b) in _v4)
            if (LayoutFor(b.Count, b.Layout) != b.Layout) (shrink ??= new()).Add(iid);
        if (shrink is not null) foreach (uint iid in shrink) Relayout(iid, _v4[iid]);

        var v4Iids = _v4.Keys.Order().ToArray();
        var v6Iids = _v6.Keys.Order().ToArray();
        var v4 = new V4Lpm[v4Iids.Length];
        for (int i = 0; i < v4.Length; i++) v4[i] = _v4[v4Iids[i]].Publish();
        var v6 = new V6Lpm[v6Iids.Length];
        for (int i = 0; i < v6.Length; i++) v6[i] = _v6[v6Iids[i]].Publish();
        var rlocs = new RlocTable(_rlocData.Publish(), _rlocAddresses.Publish(), _rlocTop);
        return new MapCacheSnapshot(++_generation, _entries.Publish(), _ring.Publish(), rlocs,
            v4Iids, v4, v6Iids, v6, _exact.Publish(), _hw, Count, (long)_slotTop * Unsafe.SizeOf<Entry>() + _ringTop * 4L);
    }
}

/// <summary>Compact canonical byte keys for EIDs matched exactly (everything but IPv4/IPv6 prefixes).</summary>
public static class EidKey
{
    /// <summary>
    /// [kind][instance-id, 4 bytes BE][body]: MAC = 6 bytes + mask, E.164 = 8 bytes + mask, names, (S,G) and
    /// geo = their canonical text (UTF-8). Build at control-plane time; the data plane keeps the bytes.
    /// </summary>
    public static byte[] Build(EidPrefix eid)
    {
        var inner = eid.Inner;
        byte kind;
        byte[] body;
        switch (inner)
        {
            case MacAddress mac:
                kind = 1;
                body = new byte[7];
                for (int i = 0; i < 6; i++) body[i] = (byte)(mac.Value >> (40 - 8 * i));
                body[6] = eid.MaskLength;
                break;
            case E164Address e:
                kind = 2;
                body = new byte[9];
                BinaryPrimitives.WriteUInt64BigEndian(body, e.Value);
                body[8] = eid.MaskLength;
                break;
            case DistinguishedName:
                kind = 3;
                body = Encoding.UTF8.GetBytes(eid.BodyText());
                break;
            case MulticastInfoAddress or SourceDestAddress:
                kind = 4;
                body = Encoding.UTF8.GetBytes(eid.BodyText());
                break;
            case GeoCoordinates:
                kind = 5;
                body = Encoding.UTF8.GetBytes(eid.BodyText());
                break;
            default:
                kind = 6;
                body = Encoding.UTF8.GetBytes(eid.BodyText());
                break;
        }
        var key = new byte[5 + body.Length];
        key[0] = kind;
        BinaryPrimitives.WriteUInt32BigEndian(key.AsSpan(1), eid.InstanceId);
        body.CopyTo(key, 5);
        return key;
    }
}
