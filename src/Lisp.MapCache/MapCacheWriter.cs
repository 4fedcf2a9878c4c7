using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
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
}

/// <summary>One RLOC of a mapping as the control plane learned it (RFC 9301 locator record).</summary>
public readonly record struct RlocSpec(IPAddress Address, byte Priority, byte Weight, bool Reachable = true);

/// <summary>
/// The single writer of a map-cache (the control plane's thread). Not thread-safe: one writer only.
/// Changes accumulate until <see cref="Publish"/>, which builds a new immutable <see cref="MapCacheSnapshot"/>
/// and makes it <see cref="Current"/> with one volatile reference write. Only the (instance-id, family)
/// tables that changed are rebuilt; entries and RLOC rings are rebuilt every publish (O(entries)).
/// Slots (entry indexes) of a mapping are stable while it exists.
/// </summary>
public sealed class MapCacheWriter
{
    private readonly record struct MapKey(byte Family, uint Iid, byte Len, ulong Hi, ulong Lo, string? Exact);

    private sealed class Mapping
    {
        public required MapKey Key;
        public (int Rloc, byte Priority, byte Weight, bool Reachable)[] Rlocs = [];
        public bool Negative;
        public MapReplyAction Action;
        public uint Ttl;
        public long Expires;
        public byte[]? ExactKey;
        public ushort MapVersion;
    }

    private readonly MapCacheOptions _options;
    private readonly bool _hw;
    private readonly List<Mapping?> _slots = new();
    private readonly Stack<int> _free = new();
    private readonly Dictionary<MapKey, int> _byKey = new();
    private readonly Dictionary<IPAddress, int> _rlocIndex = new();
    private readonly List<IPAddress> _rlocs = new();
    private readonly List<bool> _rlocReachable = new();
    private readonly HashSet<(byte Family, uint Iid)> _dirty = new();
    private bool _exactDirty = true;
    private readonly Dictionary<uint, HashSet<int>> _v4Slots = new();
    private readonly Dictionary<uint, HashSet<int>> _v6Slots = new();
    private readonly HashSet<int> _exactSlots = new();
    private readonly Dictionary<uint, V4Lpm> _v4Built = new();
    private readonly Dictionary<uint, V6Lpm> _v6Built = new();
    private BytesTable? _exactBuilt;
    private readonly Dictionary<(ulong Hash, int Length), int> _ringDedup = new();
    private MapCacheSnapshot _current;
    private long _generation;

    public MapCacheWriter(MapCacheOptions? options = null)
    {
        _options = options ?? new MapCacheOptions();
        Crc32C.CheckHardware();
        _hw = (_options.UseHardwareHash ?? true) && Crc32C.HardwareAvailable;
        _current = Build();
    }

    /// <summary>The published snapshot (volatile read; readers call this once per batch).</summary>
    public MapCacheSnapshot Current => Volatile.Read(ref _current);
    public int Count => _byKey.Count;
    public bool HardwareHash => _hw;

    /// <summary>Adds or replaces a positive mapping.</summary>
    public int AddOrReplace(EidPrefix eid, ReadOnlySpan<RlocSpec> rlocs, uint ttlSeconds, long expires, ushort mapVersion = 0) =>
        Set(KeyOf(eid, out var exact), exact, rlocs, false, MapReplyAction.NoAction, ttlSeconds, expires, mapVersion);

    /// <summary>Adds or replaces a negative mapping (RFC 9301 negative Map-Reply) with its action.</summary>
    public int AddOrReplaceNegative(EidPrefix eid, MapReplyAction action, uint ttlSeconds, long expires) =>
        Set(KeyOf(eid, out var exact), exact, default, true, action, ttlSeconds, expires);

    /// <summary>Fast path for bulk loads: IPv4 prefix, address host-order (host bits are cleared).</summary>
    public int AddOrReplaceV4(uint iid, uint address, int length, ReadOnlySpan<RlocSpec> rlocs, uint ttlSeconds, long expires)
    {
        CheckLength(length, 32);
        return Set(V4Key(iid, address, length), null, rlocs, false, MapReplyAction.NoAction, ttlSeconds, expires);
    }

    public int AddOrReplaceNegativeV4(uint iid, uint address, int length, MapReplyAction action, uint ttlSeconds, long expires)
    {
        CheckLength(length, 32);
        return Set(V4Key(iid, address, length), null, default, true, action, ttlSeconds, expires);
    }

    public int AddOrReplaceV6(uint iid, V6Key address, int length, ReadOnlySpan<RlocSpec> rlocs, uint ttlSeconds, long expires)
    {
        CheckLength(length, 128);
        return Set(V6KeyOf(iid, address, length), null, rlocs, false, MapReplyAction.NoAction, ttlSeconds, expires);
    }

    public bool Remove(EidPrefix eid) => Remove(KeyOf(eid, out _));
    public bool RemoveV4(uint iid, uint address, int length) => Remove(V4Key(iid, address, length));
    public bool RemoveV6(uint iid, V6Key address, int length) => Remove(V6KeyOf(iid, address, length));

    /// <summary>Marks an RLOC reachable or not (RLOC probing, BFD...). Applies to every mapping using it at the next publish.</summary>
    public void SetReachability(IPAddress rloc, bool reachable)
    {
        int i = RlocIndex(rloc);
        _rlocReachable[i] = reachable;
    }

    /// <summary>Builds the new snapshot from the pending changes and swaps it in atomically.</summary>
    public MapCacheSnapshot Publish()
    {
        var s = Build();
        Volatile.Write(ref _current, s);
        return s;
    }

    private static void CheckLength(int length, int max)
    {
        if ((uint)length > (uint)max) throw new ArgumentOutOfRangeException(nameof(length), $"prefix length must be 0..{max}");
    }

    private static MapKey V4Key(uint iid, uint address, int length) =>
        new(1, iid, (byte)length, length == 0 ? 0 : address & (uint.MaxValue << (32 - length)), 0, null);

    private static MapKey V6KeyOf(uint iid, V6Key address, int length)
    {
        var m = V6Lpm.Mask(address, length);
        return new MapKey(2, iid, (byte)length, m.Hi, m.Lo, null);
    }

    private static MapKey KeyOf(EidPrefix eid, out byte[]? exactKey)
    {
        exactKey = null;
        if (eid.Inner is IpAddress ip)
        {
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
        exactKey = EidKey.Build(eid);
        return new MapKey(3, eid.InstanceId, eid.MaskLength, 0, 0, Convert.ToHexString(exactKey));
    }

    private int RlocIndex(IPAddress a)
    {
        if (a.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6))
            throw new ArgumentException("RLOC must be IPv4 or IPv6", nameof(a));
        if (!_rlocIndex.TryGetValue(a, out int i))
        {
            i = _rlocs.Count;
            _rlocs.Add(a);
            _rlocReachable.Add(true);
            _rlocIndex.Add(a, i);
        }
        return i;
    }

    private int Set(MapKey key, byte[]? exactKey, ReadOnlySpan<RlocSpec> rlocs, bool negative, MapReplyAction action, uint ttl, long expires, ushort mapVersion = 0)
    {
        if (!_byKey.TryGetValue(key, out int slot))
        {
            slot = _free.Count > 0 ? _free.Pop() : _slots.Count;
            if (slot == _slots.Count) _slots.Add(null);
            _byKey.Add(key, slot);
            MarkDirty(key);
            SlotSet(key).Add(slot);
        }
        var m = new Mapping { Key = key, Negative = negative, Action = action, Ttl = ttl, Expires = expires, ExactKey = exactKey, MapVersion = (ushort)(mapVersion & 0xfff) };
        if (!negative)
        {
            m.Rlocs = new (int, byte, byte, bool)[rlocs.Length];
            for (int i = 0; i < rlocs.Length; i++) m.Rlocs[i] = (RlocIndex(rlocs[i].Address), rlocs[i].Priority, rlocs[i].Weight, rlocs[i].Reachable);
        }
        _slots[slot] = m;
        return slot;
    }

    private bool Remove(MapKey key)
    {
        if (!_byKey.Remove(key, out int slot)) return false;
        _slots[slot] = null;
        _free.Push(slot);
        SlotSet(key).Remove(slot);
        MarkDirty(key);
        return true;
    }

    private HashSet<int> SlotSet(MapKey key)
    {
        if (key.Family == 3) return _exactSlots;
        var d = key.Family == 1 ? _v4Slots : _v6Slots;
        if (!d.TryGetValue(key.Iid, out var set)) d.Add(key.Iid, set = new HashSet<int>());
        return set;
    }

    private void MarkDirty(MapKey key)
    {
        if (key.Family == 3) _exactDirty = true;
        else _dirty.Add((key.Family, key.Iid));
    }

    private MapCacheSnapshot Build()
    {
        // Entries and weighted rings (reachability may have changed for any RLOC).
        var entries = new Entry[_slots.Count];
        _ringDedup.Clear();
        var ring = new List<int>(64);
        var members = new List<(int Rloc, int Weight)>(8);
        for (int s = 0; s < _slots.Count; s++)
        {
            var m = _slots[s];
            if (m is null) continue;
            ref var e = ref entries[s];
            e.Kind = m.Negative ? (byte)2 : (byte)1;
            e.Action = m.Action;
            e.Ttl = m.Ttl;
            e.Expires = m.Expires;
            e.PrefixLength = m.Key.Len;
            e.MapVersion = m.MapVersion;
            if (m.Negative) continue;
            e.RingLength = (ushort)BuildRing(m, ring, members, out e.RingStart);
        }

        foreach (var (family, iid) in _dirty)
        {
            var set = (family == 1 ? _v4Slots : _v6Slots).GetValueOrDefault(iid);
            if (family == 1)
            {
                if (set is null || set.Count == 0) { _v4Built.Remove(iid); continue; }
                var list = new List<(uint, byte, int)>(set.Count);
                foreach (int s in set) list.Add(((uint)_slots[s]!.Key.Hi, _slots[s]!.Key.Len, s));
                _v4Built[iid] = new V4Lpm(list, _hw, _options.Dir16Threshold, _options.Dir24Threshold);
            }
            else
            {
                if (set is null || set.Count == 0) { _v6Built.Remove(iid); continue; }
                var list = new List<(V6Key, byte, int)>(set.Count);
                foreach (int s in set) list.Add((new V6Key(_slots[s]!.Key.Hi, _slots[s]!.Key.Lo), _slots[s]!.Key.Len, s));
                _v6Built[iid] = new V6Lpm(list, _hw);
            }
        }
        _dirty.Clear();
        if (_exactDirty || _exactBuilt is null)
        {
            var items = new List<(byte[], int)>(_exactSlots.Count);
            foreach (int s in _exactSlots) items.Add((_slots[s]!.ExactKey!, s));
            _exactBuilt = new BytesTable(items, _hw);
            _exactDirty = false;
        }

        var v4Iids = _v4Built.Keys.Order().ToArray();
        var v6Iids = _v6Built.Keys.Order().ToArray();
        return new MapCacheSnapshot(++_generation, entries, ring.ToArray(),
            new RlocTable(_rlocs.ToArray(), _rlocReachable.ToArray()),
            v4Iids, v4Iids.Select(i => _v4Built[i]).ToArray(),
            v6Iids, v6Iids.Select(i => _v6Built[i]).ToArray(), _exactBuilt, _hw, _byKey.Count);
    }

    /// <summary>
    /// RFC 9300 section 5.3 selection: among reachable RLOCs with priority &lt; 255 take the lowest priority;
    /// spread flows over them by weight (all-zero weights mean equal shares; a zero weight beside non-zero
    /// ones gets no share). The ring holds each member weight-many times (scaled to MaxRingSlots).
    /// </summary>
    private int BuildRing(Mapping m, List<int> ring, List<(int Rloc, int Weight)> members, out int ringStart)
    {
        ringStart = 0;
        int best = 255;
        foreach (var r in m.Rlocs)
            if (r.Priority < best && r.Reachable && _rlocReachable[r.Rloc]) best = r.Priority;
        if (best == 255) return 0;
        members.Clear();
        int total = 0;
        foreach (var r in m.Rlocs)
        {
            if (r.Priority != best || !r.Reachable || !_rlocReachable[r.Rloc]) continue;
            members.Add((r.Rloc, r.Weight));
            total += r.Weight;
        }
        var span = CollectionsMarshal.AsSpan(members);
        if (total == 0)
        {
            for (int i = 0; i < span.Length; i++) span[i].Weight = 1;
            total = span.Length;
        }
        // Shares are what matter: divide by the GCD of the weights (50/50 -> 1/1).
        int g = 0;
        foreach (var (_, w) in span) if (w != 0) g = Gcd(g, w);
        int start = ring.Count;
        int max = Math.Max(_options.MaxRingSlots, span.Length);
        total /= g;
        foreach (var (rloc, w0) in span)
        {
            int w = w0 / g;
            if (w == 0) continue;
            int n = total <= max ? w : Math.Max(1, (int)((long)w * max / total));
            for (int k = 0; k < n; k++) ring.Add(rloc);
        }
        int length = ring.Count - start;
        // Most mappings share their RLOC set: reuse an identical ring already in the array.
        var seg = CollectionsMarshal.AsSpan(ring).Slice(start, length);
        ulong h = 14695981039346656037UL;
        foreach (int r in seg) h = (h ^ (uint)r) * 1099511628211UL;
        if (_ringDedup.TryGetValue((h, length), out int prior) && CollectionsMarshal.AsSpan(ring).Slice(prior, length).SequenceEqual(seg))
        {
            ring.RemoveRange(start, length);
            ringStart = prior;
            return length;
        }
        _ringDedup[(h, length)] = start;
        ringStart = start;
        return length;
    }

    private static int Gcd(int a, int b)
    {
        while (b != 0) (a, b) = (b, a % b);
        return a;
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
