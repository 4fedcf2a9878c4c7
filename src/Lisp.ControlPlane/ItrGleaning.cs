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
/// </summary>
public sealed partial class Itr
{
    // Keys of gleaned entries (as the cache keys them) -> the gleaned EID.
    private readonly Dictionary<Tables.EidKey, EidPrefix> _gleaned = new();

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
            return [new LogAction(LogLevel.Warning, "map-cache-full", $"{c} not gleaned: map-cache holds {_cache.Count} entries")];
        }
        PruneGleaned();
        var locator = new LocatorRecord(new IpAddress(rloc), 1, 100);
        var entry = Cache(key, new MapCacheEntry(c, [locator], MapReplyAction.NoAction, now, now + ttl, new IPEndPoint(rloc, DataHeader.Port), Authoritative: false), now);
        _gleaned[key] = c;
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
    /// </summary>
    private void ReleaseGleaned(EidPrefix eid, List<ControlAction> actions)
    {
        if (_gleaned.Count == 0) return;
        foreach (var (key, g) in _gleaned.ToList())
        {
            if (!eid.Covers(g)) continue;
            _gleaned.Remove(key);
            if (!Uncache(key)) continue;
            _counters.Count(ControlEvent.GleanReplaced);
            actions.Add(new MapCacheChanged(g, null));
            actions.Add(new LogAction(LogLevel.Info, "map-cache-glean-replaced", $"gleaned {g} replaced by the mapping system's {eid}"));
        }
    }

    /// <summary>Forgets gleaned keys whose entry is gone (expired or removed) so the set stays as small as the cache.</summary>
    private void PruneGleaned()
    {
        if (_gleaned.Count < 64) return;
        foreach (var key in _gleaned.Keys.Where(k => !_cache.ContainsKey(k)).ToList()) _gleaned.Remove(key);
    }
}
