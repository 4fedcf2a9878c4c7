using System.Buffers.Binary;
using Lisp.Wire;

namespace Lisp.ControlPlane.Tables;

/// <summary>The kinds of EID a table keeps apart: each (kind, instance-id) is its own key space.</summary>
public enum EidFamily : byte
{
    Ipv4,
    Ipv6,
    Mac,
    E164,
    /// <summary>Distinguished names, geo-coordinates and anything else matched exactly by its text.</summary>
    Exact,
    SourceGroup,
}

/// <summary>
/// A typed key for an EID-prefix: family, instance-id and the address bits left-aligned in a 128-bit word with
/// the prefix length (IPv4, IPv6, MAC, E.164), or the canonical text for the kinds matched exactly (names,
/// geo-coordinates). An (S,G) key carries the group in <see cref="Bits"/>/<see cref="Length"/> and the source in
/// <see cref="SourceBits"/>/<see cref="SourceLength"/>, each with its family.
/// </summary>
public readonly record struct EidKey(
    EidFamily Family, uint InstanceId, UInt128 Bits, int Length, string? Text = null,
    EidFamily GroupFamily = EidFamily.Ipv4, EidFamily SourceFamily = EidFamily.Ipv4, UInt128 SourceBits = default, int SourceLength = 0)
{
    /// <summary>Most bits a prefix of the family has (0 for exact kinds).</summary>
    public static int MaxLength(EidFamily f) => f switch
    {
        EidFamily.Ipv4 => 32,
        EidFamily.Ipv6 => 128,
        EidFamily.Mac => 48,
        EidFamily.E164 => 64,
        _ => 0,
    };

    /// <summary>The key of an EID-prefix (host bits beyond the mask are cleared).</summary>
    public static EidKey From(EidPrefix eid)
    {
        uint iid = eid.InstanceId;
        var inner = eid.Inner;
        if (TryBits(inner, out var family, out var bits))
        {
            int length = Math.Clamp((int)eid.MaskLength, 0, MaxLength(family));
            return new EidKey(family, iid, PrefixTrie<object>.Mask(bits, length), length);
        }
        if (eid.SourceGroup() is { } sg && TryBits(sg.Group.Inner, out var gf, out var g) && TryBits(sg.Source.Inner, out var sf, out var s)
            && gf is EidFamily.Ipv4 or EidFamily.Ipv6 && sf is EidFamily.Ipv4 or EidFamily.Ipv6)
        {
            int gl = Math.Clamp((int)sg.Group.MaskLength, 0, MaxLength(gf));
            int sl = Math.Clamp((int)sg.Source.MaskLength, 0, MaxLength(sf));
            return new EidKey(EidFamily.SourceGroup, iid, PrefixTrie<object>.Mask(g, gl), gl, null, gf, sf, PrefixTrie<object>.Mask(s, sl), sl);
        }
        return new EidKey(EidFamily.Exact, iid, default, 0, eid.BodyText());
    }

    /// <summary>An IPv4 or IPv6 key as an EID-prefix (plain, or in an Instance-ID LCAF when the instance-id is not 0).</summary>
    public EidPrefix ToPrefix()
    {
        Span<byte> b = stackalloc byte[16];
        System.Net.IPAddress address;
        switch (Family)
        {
            case EidFamily.Ipv4:
                BinaryPrimitives.WriteUInt32BigEndian(b, (uint)(Bits >> 96));
                address = new System.Net.IPAddress(b[..4]);
                break;
            case EidFamily.Ipv6:
                BinaryPrimitives.WriteUInt128BigEndian(b, Bits);
                address = new System.Net.IPAddress(b);
                break;
            default:
                throw new InvalidOperationException($"a {Family} key is not rebuilt");
        }
        return EidPrefix.Create(InstanceId, new IpAddress(address), Length);
    }

    /// <summary>The address bits of an IP, MAC or E.164 address, left-aligned.</summary>
    public static bool TryBits(LispAddress address, out EidFamily family, out UInt128 bits)
    {
        switch (address)
        {
            case IpAddress ip:
                Span<byte> b = stackalloc byte[16];
                ip.Address.TryWriteBytes(b, out int n);
                if (n == 4)
                {
                    family = EidFamily.Ipv4;
                    bits = (UInt128)BinaryPrimitives.ReadUInt32BigEndian(b) << 96;
                }
                else
                {
                    family = EidFamily.Ipv6;
                    bits = BinaryPrimitives.ReadUInt128BigEndian(b);
                }
                return true;
            case MacAddress mac:
                family = EidFamily.Mac;
                bits = (UInt128)(mac.Value & 0xffff_ffff_ffffUL) << 80;
                return true;
            case E164Address e:
                family = EidFamily.E164;
                bits = (UInt128)e.Value << 64;
                return true;
            default:
                family = EidFamily.Exact;
                bits = default;
                return false;
        }
    }
}

/// <summary>
/// Values of type <typeparamref name="T"/> indexed by EID-prefix, one key space per (kind, instance-id):
/// longest-prefix match for IPv4, IPv6, MAC and E.164 (a <see cref="PrefixTrie{T}"/> each), exact match for names
/// and geo-coordinates (a hash table), and (S,G) as group-then-source (a trie of groups, each holding tries of
/// sources). Every operation walks one path or one hash bucket: nothing here grows with the table.
/// Not thread-safe: one control shard owns a table.
/// </summary>
public sealed class EidTable<T> where T : class
{
    private sealed class Sources
    {
        public readonly Dictionary<EidFamily, PrefixTrie<T>> ByFamily = [];
        public int Count;
    }

    private readonly Dictionary<(EidFamily, uint), PrefixTrie<T>> _prefixes = [];
    private readonly Dictionary<(EidFamily, uint), PrefixTrie<Sources>> _groups = [];
    private readonly Dictionary<(uint, string), T> _exact = [];
    // The exact keys in order, for walks that resume from a key (management pages); names are rare next to
    // prefixes, so the O(log n) upkeep per name registration is not felt.
    private readonly SortedSet<(uint, string)> _exactOrder = new(ExactOrder.Instance);

    private sealed class ExactOrder : IComparer<(uint, string)>
    {
        public static readonly ExactOrder Instance = new();
        public int Compare((uint, string) a, (uint, string) b) => a.Item1 != b.Item1 ? a.Item1.CompareTo(b.Item1) : string.CompareOrdinal(a.Item2, b.Item2);
    }

    /// <summary>Keys holding a value.</summary>
    public int Count { get; private set; }

    /// <summary>The value stored for exactly this EID-prefix, or null.</summary>
    public T? Get(EidPrefix eid) => Get(EidKey.From(eid));

    public T? Get(in EidKey k)
    {
        switch (k.Family)
        {
            case EidFamily.Exact:
                return _exact.TryGetValue((k.InstanceId, k.Text!), out var v) ? v : null;
            case EidFamily.SourceGroup:
                if (!_groups.TryGetValue((k.GroupFamily, k.InstanceId), out var groups)) return null;
                var sources = groups.Get(k.Bits, k.Length);
                return sources is not null && sources.ByFamily.TryGetValue(k.SourceFamily, out var st) ? st.Get(k.SourceBits, k.SourceLength) : null;
            default:
                return _prefixes.TryGetValue((k.Family, k.InstanceId), out var t) ? t.Get(k.Bits, k.Length) : null;
        }
    }

    /// <summary>Stores the value for the EID-prefix, replacing any.</summary>
    public void Set(in EidKey k, T value)
    {
        bool added;
        switch (k.Family)
        {
            case EidFamily.Exact:
                added = _exact.TryAdd((k.InstanceId, k.Text!), value);
                if (!added) _exact[(k.InstanceId, k.Text!)] = value;
                else _exactOrder.Add((k.InstanceId, k.Text!));
                break;
            case EidFamily.SourceGroup:
                if (!_groups.TryGetValue((k.GroupFamily, k.InstanceId), out var groups)) _groups[(k.GroupFamily, k.InstanceId)] = groups = new();
                var sources = groups.Get(k.Bits, k.Length);
                if (sources is null) groups.Set(k.Bits, k.Length, sources = new Sources());
                if (!sources.ByFamily.TryGetValue(k.SourceFamily, out var st)) sources.ByFamily[k.SourceFamily] = st = new();
                int before = st.Count;
                st.Set(k.SourceBits, k.SourceLength, value);
                added = st.Count > before;
                if (added) sources.Count++;
                break;
            default:
                if (!_prefixes.TryGetValue((k.Family, k.InstanceId), out var t)) _prefixes[(k.Family, k.InstanceId)] = t = new();
                int was = t.Count;
                t.Set(k.Bits, k.Length, value);
                added = t.Count > was;
                break;
        }
        if (added) Count++;
    }

    /// <summary>Removes the EID-prefix; true when it was there.</summary>
    public bool Remove(in EidKey k)
    {
        bool removed;
        switch (k.Family)
        {
            case EidFamily.Exact:
                removed = _exact.Remove((k.InstanceId, k.Text!));
                if (removed) _exactOrder.Remove((k.InstanceId, k.Text!));
                break;
            case EidFamily.SourceGroup:
                removed = false;
                if (_groups.TryGetValue((k.GroupFamily, k.InstanceId), out var groups) && groups.Get(k.Bits, k.Length) is { } sources
                    && sources.ByFamily.TryGetValue(k.SourceFamily, out var st) && st.Remove(k.SourceBits, k.SourceLength))
                {
                    removed = true;
                    if (st.Count == 0) sources.ByFamily.Remove(k.SourceFamily);
                    if (--sources.Count == 0) groups.Remove(k.Bits, k.Length);
                    if (groups.Count == 0) _groups.Remove((k.GroupFamily, k.InstanceId));
                }
                break;
            default:
                removed = _prefixes.TryGetValue((k.Family, k.InstanceId), out var t) && t.Remove(k.Bits, k.Length);
                if (removed && t!.Count == 0) _prefixes.Remove((k.Family, k.InstanceId));
                break;
        }
        if (removed) Count--;
        return removed;
    }

    /// <summary>
    /// The value of the most specific stored EID-prefix that covers <paramref name="query"/> and that
    /// <paramref name="accept"/> takes: longest prefix for address kinds; for (S,G) the longest group that has an
    /// accepted source covering S, then the longest such source; exact match for names and geo-coordinates.
    /// </summary>
    public T? Longest<TState>(in EidKey query, Func<T, TState, bool> accept, TState state)
    {
        switch (query.Family)
        {
            case EidFamily.Exact:
                return _exact.TryGetValue((query.InstanceId, query.Text!), out var v) && accept(v, state) ? v : null;
            case EidFamily.SourceGroup:
                if (!_groups.TryGetValue((query.GroupFamily, query.InstanceId), out var groups)) return null;
                var found = groups.LongestMatch(query.Bits, query.Length, static (sources, s) =>
                    sources.ByFamily.TryGetValue(s.Query.SourceFamily, out var st)
                    && st.LongestMatch(s.Query.SourceBits, s.Query.SourceLength, s.Accept, s.State) is not null,
                    (Query: query, Accept: accept, State: state));
                return found is not null && found.ByFamily.TryGetValue(query.SourceFamily, out var hit)
                    ? hit.LongestMatch(query.SourceBits, query.SourceLength, accept, state) : null;
            default:
                return _prefixes.TryGetValue((query.Family, query.InstanceId), out var t) ? t.LongestMatch(query.Bits, query.Length, accept, state) : null;
        }
    }

    /// <summary>
    /// For an address-kind query: the most leading bits its address shares with a stored prefix of its kind and
    /// instance-id that does not contain it (-1: none). Other kinds: -1.
    /// </summary>
    public int DeepestDivergence(in EidKey query) =>
        query.Family is EidFamily.Exact or EidFamily.SourceGroup || !_prefixes.TryGetValue((query.Family, query.InstanceId), out var t)
            ? -1
            : t.DeepestDivergence(query.Bits);

    /// <summary>
    /// The table's total order on keys, which <see cref="WalkAfter"/> follows: family (<see cref="EidFamily"/>
    /// order), instance-id, then the address bits and the prefix length (shorter first) for address kinds, the text
    /// (ordinal) for exact kinds, and for (S,G) the group's family, bits and length, then the source's.
    /// </summary>
    public static int CompareKeys(in EidKey a, in EidKey b)
    {
        int c = a.Family.CompareTo(b.Family);
        if (c != 0) return c;
        if ((c = a.InstanceId.CompareTo(b.InstanceId)) != 0) return c;
        switch (a.Family)
        {
            case EidFamily.Exact:
                return string.CompareOrdinal(a.Text, b.Text);
            case EidFamily.SourceGroup:
                if ((c = a.GroupFamily.CompareTo(b.GroupFamily)) != 0) return c;
                if ((c = a.Bits.CompareTo(b.Bits)) != 0 || (c = a.Length.CompareTo(b.Length)) != 0) return c;
                if ((c = a.SourceFamily.CompareTo(b.SourceFamily)) != 0) return c;
                return (c = a.SourceBits.CompareTo(b.SourceBits)) != 0 ? c : a.SourceLength.CompareTo(b.SourceLength);
            default:
                return (c = a.Bits.CompareTo(b.Bits)) != 0 ? c : a.Length.CompareTo(b.Length);
        }
    }

    /// <summary>
    /// Visits the stored values in <see cref="CompareKeys"/> order, starting with the first key after
    /// <paramref name="after"/> (null: the first key), until <paramref name="visit"/> returns false. A walk that
    /// stops after k values costs O(key spaces + depth + k): the management API pages the map-server's table and
    /// the ITR's map-cache from a cursor key this way, a bounded slice per control-thread visit, so a read never
    /// holds the control thread in proportion to the table (issue 12). Keys present for the whole of a paged walk
    /// are visited exactly once; keys added or removed meanwhile may or may not be.
    /// </summary>
    public void WalkAfter(EidKey? after, Func<EidKey, T, bool> visit)
    {
        foreach (var family in Enum.GetValues<EidFamily>())
        {
            if (after is { } a0 && a0.Family > family) continue;
            switch (family)
            {
                case EidFamily.Exact:
                {
                    if (_exactOrder.Count == 0) break;
                    IEnumerable<(uint, string)> keys = _exactOrder;
                    bool skipFirst = false;
                    if (after is { Family: EidFamily.Exact } a)
                    {
                        if (ExactOrder.Instance.Compare((a.InstanceId, a.Text!), _exactOrder.Max) >= 0) break;
                        keys = _exactOrder.GetViewBetween((a.InstanceId, a.Text!), _exactOrder.Max);
                        skipFirst = true;
                    }
                    foreach (var (iid, text) in keys)
                    {
                        if (skipFirst && iid == after!.Value.InstanceId && text == after.Value.Text) continue;
                        skipFirst = false;
                        if (!visit(new EidKey(EidFamily.Exact, iid, default, 0, text), _exact[(iid, text)])) return;
                    }
                    break;
                }
                case EidFamily.SourceGroup:
                {
                    foreach (var (groupFamily, iid) in _groups.Keys.OrderBy(k => k.Item2).ThenBy(k => k.Item1).ToList())
                    {
                        EidKey? from = after is { Family: EidFamily.SourceGroup } a ? a : null;
                        if (from is { } f && (f.InstanceId > iid || (f.InstanceId == iid && f.GroupFamily > groupFamily))) continue;
                        if (from is { } g && (g.InstanceId != iid || g.GroupFamily != groupFamily)) from = null;
                        bool go = true;
                        var state = (Visit: visit, Iid: iid, GroupFamily: groupFamily, From: from);
                        _groups[(groupFamily, iid)].WalkFrom(from?.Bits ?? UInt128.Zero, from?.Length ?? 0, inclusive: true, (gBits, gLength, sources, st) =>
                        {
                            bool sameGroup = st.From is { } f2 && f2.Bits == gBits && f2.Length == gLength;
                            foreach (var (sourceFamily, trie) in sources.ByFamily.OrderBy(p => p.Key))
                            {
                                if (sameGroup && st.From!.Value.SourceFamily > sourceFamily) continue;
                                bool resume = sameGroup && st.From!.Value.SourceFamily == sourceFamily;
                                trie.WalkFrom(resume ? st.From!.Value.SourceBits : UInt128.Zero, resume ? st.From!.Value.SourceLength : 0, inclusive: !resume,
                                    (sBits, sLength, value, _) => go = visit(new EidKey(EidFamily.SourceGroup, iid, gBits, gLength, null, groupFamily, sourceFamily, sBits, sLength), value), 0);
                                if (!go) return false;
                            }
                            return true;
                        }, state);
                        if (!go) return;
                    }
                    break;
                }
                default:
                {
                    foreach (var iid in _prefixes.Keys.Where(k => k.Item1 == family).Select(k => k.Item2).Order().ToList())
                    {
                        bool resume = after is { } a && a.Family == family && a.InstanceId == iid;
                        if (after is { } b && b.Family == family && b.InstanceId > iid) continue;
                        bool go = true;
                        _prefixes[(family, iid)].WalkFrom(resume ? after!.Value.Bits : UInt128.Zero, resume ? after!.Value.Length : 0, inclusive: !resume,
                            (bits, length, value, _) => go = visit(new EidKey(family, iid, bits, length), value), 0);
                        if (!go) return;
                    }
                    break;
                }
            }
            after = after is { } x && x.Family == family ? null : after;
        }
    }

    /// <summary>Every stored value (no order promised).</summary>
    public IEnumerable<T> Values()
    {
        foreach (var t in _prefixes.Values)
        {
            foreach (var (_, _, v) in t.Items()) yield return v;
        }
        foreach (var g in _groups.Values)
        {
            foreach (var (_, _, sources) in g.Items())
            {
                foreach (var st in sources.ByFamily.Values)
                {
                    foreach (var (_, _, v) in st.Items()) yield return v;
                }
            }
        }
        foreach (var v in _exact.Values) yield return v;
    }
}
