using System.Net;
using Lisp.Wire;

namespace Lisp.ControlPlane;

/// <summary>
/// Gleaning (RFC 9300 section 9, optional, off unless the host calls <see cref="Glean"/>): the ETR saw a
/// decapsulated packet from EID <c>e</c> encapsulated by RLOC <c>r</c>, so traffic back to <c>e</c> can go to
/// <c>r</c> before the mapping system answers. Rules kept here:
/// <list type="bullet">
/// <item>only a host EID (/32, /128) is gleaned, only when no entry covers it (a mapping from the mapping system,
/// or an earlier glean, is never overridden: counted as <see cref="ControlEvent.GleanCovered"/>);</item>
/// <item>the gleaned entry lives for the given short TTL, is not authoritative, and is verified at once: a
/// Map-Request for the EID goes out, and the mapping system's answer (positive or negative) replaces every gleaned
/// entry it covers (<see cref="ReleaseGleaned"/>, called by the Map-Reply path; <see cref="ControlEvent.GleanReplaced"/>);</item>
/// <item>the host bounds the rate (the data plane's glean queue); a full map-cache refuses (logged).</item>
/// </list>
/// The gleaned set follows the cache exactly (an entry that goes, expired or removed, is forgotten in
/// <see cref="Uncache"/>), and is also kept in address order so the entries under an answer are found with a range
/// query: O(log G + gleaned entries under the EID) per record, not a walk over every gleaned entry (issue 10).
/// </summary>
public sealed partial class Itr
{
    // Keys of gleaned entries (as the cache keys them) -> the gleaned EID and when it was gleaned (its order).
    private readonly Dictionary<Tables.EidKey, (EidPrefix Eid, long Seq)> _gleaned = new();
    // The same keys in (family, instance-id, address) order: gleaned EIDs are IP hosts, so those under a prefix are a range.
    private readonly SortedSet<Tables.EidKey> _gleanedByAddress = new(GleanKeyOrder.Instance);
    private long _gleanSeq;

    /// <summary>How many map-cache entries are gleaned (not from the mapping system) right now.</summary>
    public int GleanedCount => _gleaned.Count;

    /// <summary>Whether the entry for <paramref name="eid"/> (the exact prefix) was gleaned.</summary>
    public bool IsGleaned(EidPrefix eid) => _gleaned.ContainsKey(Tables.EidKey.From(eid.Canonical()));

    /// <summary>
    /// Installs <paramref name="eid"/> (a host EID) -> <paramref name="rloc"/> for <paramref name="ttl"/> unless an
    /// entry covers it already, and asks the mapping system to verify it.
    /// </summary>
    public IReadOnlyList<ControlAction> Glean(EidPrefix eid, IPAddress rloc, TimeSpan ttl, DateTimeOffset now)
    {
        var c = eid.Canonical();
        if (c.Address is not IpAddress ip || c.MaskLength != ip.HostMaskLength || ttl <= TimeSpan.Zero) return [];
        if (TryLookup(c, now, out _))
        {
            _counters.Count(ControlEvent.GleanCovered);
            return [];
        }
        var key = Tables.EidKey.From(c);
        if (_cache.Count >= _options.MaxCacheEntries)
        {
            _counters.Drop(DropReason.MapCacheFull);
            return [new LogAction(LogLevel.Warning, "map-cache-full", $"{c} not gleaned: map-cache holds {_cache.Count} entries")];
        }
        var locator = new LocatorRecord(new IpAddress(rloc), 1, 100);
        var entry = Cache(key, new MapCacheEntry(c, [locator], MapReplyAction.NoAction, now, now + ttl, new IPEndPoint(rloc, DataHeader.Port), Authoritative: false), now);
        if (_gleaned.TryAdd(key, (c, ++_gleanSeq))) _gleanedByAddress.Add(key);
        _counters.Count(ControlEvent.MapCacheGleaned);
        var actions = new List<ControlAction>
        {
            new MapCacheChanged(c, entry),
            new LogAction(LogLevel.Info, "map-cache-glean", $"{c} -> {rloc} gleaned from a decapsulated packet, TTL {ttl.TotalSeconds:0.#} s; verifying with a Map-Request"),
        };
        actions.AddRange(Request(c, now));
        return actions;
    }

    /// <summary>
    /// The mapping system answered for <paramref name="eid"/>: every gleaned entry it covers goes (its own key too,
    /// which the answer then replaces), so a more specific glean cannot shadow the mapping system's answer.
    /// Gleaned entries are IP hosts: a host-length answer is one lookup, a shorter one a range of the ordered set;
    /// those found go in the order they were gleaned.
    /// </summary>
    private void ReleaseGleaned(EidPrefix eid, List<ControlAction> actions)
    {
        if (_gleaned.Count == 0 || eid.Inner is not IpAddress ip) return; // only IP EIDs can cover a gleaned (IP host) EID
        var key = Tables.EidKey.From(eid);
        List<(Tables.EidKey Key, EidPrefix Eid, long Seq)> found = [];
        if (eid.MaskLength >= ip.HostMaskLength)
        {
            if (_gleaned.TryGetValue(key, out var g) && eid.Covers(g.Eid)) found.Add((key, g.Eid, g.Seq));
        }
        else
        {
            var low = key with { Length = 0 };
            var high = key with { Bits = key.Bits | (key.Length <= 0 ? UInt128.MaxValue : UInt128.MaxValue >> key.Length), Length = int.MaxValue };
            foreach (var k in _gleanedByAddress.GetViewBetween(low, high))
            {
                var g = _gleaned[k];
                if (eid.Covers(g.Eid)) found.Add((k, g.Eid, g.Seq));
            }
            if (found.Count > 1) found.Sort(static (a, b) => a.Seq.CompareTo(b.Seq));
        }
        foreach (var (k, g, _) in found)
        {
            ForgetGleaned(k);
            if (!Uncache(k)) continue;
            _counters.Count(ControlEvent.GleanReplaced);
            actions.Add(new MapCacheChanged(g, null));
            actions.Add(new LogAction(LogLevel.Info, "map-cache-glean-replaced", $"gleaned {g} replaced by the mapping system's {eid}"));
        }
    }

    /// <summary>The entry under <paramref name="key"/> is gone (or replaced): it is not gleaned any more.</summary>
    private void ForgetGleaned(Tables.EidKey key)
    {
        if (_gleaned.Remove(key)) _gleanedByAddress.Remove(key);
    }

    private void ClearGleaned()
    {
        _gleaned.Clear();
        _gleanedByAddress.Clear();
    }

    /// <summary>Orders gleaned keys by family, instance-id, address bits, then length (ranges of one prefix are contiguous).</summary>
    private sealed class GleanKeyOrder : IComparer<Tables.EidKey>
    {
        public static readonly GleanKeyOrder Instance = new();

        public int Compare(Tables.EidKey x, Tables.EidKey y)
        {
            int c = x.Family.CompareTo(y.Family);
            if (c == 0) c = x.InstanceId.CompareTo(y.InstanceId);
            if (c == 0) c = x.Bits.CompareTo(y.Bits);
            if (c == 0) c = x.Length.CompareTo(y.Length);
            return c;
        }
    }
}
