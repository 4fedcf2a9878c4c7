using System.Net;

namespace Lisp.Decent.Push;

/// <summary>What one <see cref="PushMembership.Update"/> changed in the send list.</summary>
/// <param name="Added">members new to the send list (learned from registrations, RLEs or a seed-group answer)</param>
/// <param name="Removed">dynamically learned members pruned: their peer-group registration was absent too long</param>
/// <param name="Arrived">members whose peer-group registration (re)appeared since the last update</param>
public sealed record PushMembershipChange(IReadOnlyList<IPAddress> Added, IReadOnlyList<IPAddress> Removed, IReadOnlyList<IPAddress> Arrived)
{
    public bool MembersChanged => Added.Count > 0 || Removed.Count > 0;
}

/// <summary>
/// Keeps a push member's send list up to date (RFC 9962 section 4: "ITRs SHOULD look up the group address
/// periodically to learn membership changes"). Members come from three places: the static configuration
/// (never removed), the group's peer-group registrations (a registerer and the RLE it names) and seed-group
/// answers. A member learned dynamically whose own peer-group registration has been absent (withdrawn, expired,
/// or never seen) for longer than <see cref="PruneAfter"/> is removed; once removed it is only taken back when
/// its own registration is present again, so another member's stale RLE (or a seed answer built from one)
/// cannot bring it back. Not thread-safe: one owner (the control thread) calls <see cref="Update"/>; it writes
/// the result to <see cref="PushMappingSystem.SetMembers"/>, which any thread may read.
/// </summary>
public sealed class PushMembership
{
    private readonly PushMappingSystem _push;
    private readonly HashSet<IPAddress> _static;
    /// <summary>Dynamically learned members and when their registration was last present (or when learned).</summary>
    private readonly Dictionary<IPAddress, DateTimeOffset> _dynamic = [];
    private readonly HashSet<IPAddress> _pruned = [];
    private HashSet<IPAddress> _present = [];

    /// <param name="push">the mapping system whose member list this keeps (its current members other than the
    /// static ones and this node, e.g. from a seed look-up at start, count as learned at <paramref name="now"/>)</param>
    /// <param name="pruneAfter">how long a learned member's registration may be absent: one registration timeout</param>
    public PushMembership(PushMappingSystem push, TimeSpan pruneAfter, DateTimeOffset now)
    {
        _push = push;
        PruneAfter = pruneAfter;
        _static = push.Options.Members.Select(m => Normal(m.Address)).ToHashSet();
        foreach (var m in push.Members)
        {
            var a = Normal(m.Address);
            if (!_static.Contains(a) && !push.IsSelfAddress(a)) _dynamic[a] = now;
        }
    }

    public TimeSpan PruneAfter { get; }

    /// <summary>The members learned at run time (not static, not this node).</summary>
    public IReadOnlyCollection<IPAddress> Learned => _dynamic.Keys;

    /// <summary>
    /// One pass: <paramref name="present"/> are the registerers of the group's peer-group registrations held
    /// now; <paramref name="mentioned"/> the members those registrations name (their RLEs); <paramref name="seedAnswer"/>
    /// a new seed-group answer to merge (null when none). Updates the mapping system's member list when it changed.
    /// </summary>
    public PushMembershipChange Update(IEnumerable<IPAddress> present, IEnumerable<IPAddress> mentioned, IEnumerable<IPAddress>? seedAnswer,
        DateTimeOffset now)
    {
        var presentNow = present.Select(Normal).Where(Usable).ToHashSet();
        var arrived = presentNow.Where(a => !_present.Contains(a) && !_push.IsSelfAddress(a)).ToList();
        _present = presentNow;
        var added = new List<IPAddress>();
        foreach (var a in presentNow)
        {
            _pruned.Remove(a); // its own registration is back: it may be learned again
            if (_static.Contains(a) || _push.IsSelfAddress(a)) continue;
            if (!_dynamic.ContainsKey(a)) added.Add(a);
            _dynamic[a] = now;
        }
        foreach (var a in mentioned.Concat(seedAnswer ?? []).Select(Normal).Where(Usable))
        {
            if (_static.Contains(a) || _push.IsSelfAddress(a) || _dynamic.ContainsKey(a) || _pruned.Contains(a)) continue;
            _dynamic[a] = now;
            added.Add(a);
        }
        var removed = _dynamic.Where(kv => !presentNow.Contains(kv.Key) && now - kv.Value > PruneAfter).Select(kv => kv.Key).ToList();
        foreach (var a in removed)
        {
            _dynamic.Remove(a);
            _pruned.Add(a);
        }
        var change = new PushMembershipChange(added.Distinct().ToList(), removed, arrived);
        if (change.MembersChanged)
        {
            var port = _push.Options.ControlPort;
            var statics = _push.Options.Members;
            _push.SetMembers(statics.Concat(_push.Members.Where(m => _dynamic.ContainsKey(Normal(m.Address))))
                .Concat(added.Where(a => !_push.IsMember(a)).Select(a => new IPEndPoint(a, port))));
        }
        return change;
    }

    private bool Usable(IPAddress a) => a.AddressFamily == _push.Group.AddressFamily && !a.Equals(IPAddress.Any) && !a.Equals(IPAddress.IPv6Any);

    private static IPAddress Normal(IPAddress a) => a.IsIPv4MappedToIPv6 ? a.MapToIPv4() : a;
}
