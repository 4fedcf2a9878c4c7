using System.Net;
using Lisp.ControlPlane;
using Lisp.Wire;

namespace Lisp.Decent.Push;

/// <summary>
/// Push-based LISP-Decent (RFC 9962 section 4): the mapping system is a group whose members are each ETR,
/// ITR, map-server and map-resolver at once. Every Map-Register goes to the group, i.e. to every member
/// including this one (head-end replication: one endpoint per member; multicast: the group endpoint), and
/// every lookup is answered by this node's own map-resolver. The member list can be replaced at run time
/// (seed-group look-ups); reads are lock-free snapshots, so any thread may call it.
/// </summary>
public sealed class PushMappingSystem : IMappingSystem
{
    private volatile IReadOnlyList<IPEndPoint> _members;
    private readonly IReadOnlyList<IPEndPoint> _resolvers;

    public PushMappingSystem(PushOptions options)
    {
        if (options.Validate() is { } error) throw new ArgumentException("decent.push: " + error);
        Options = options;
        GroupEndPoint = new IPEndPoint(options.Group, options.ControlPort);
        _resolvers = [options.Self[0]];
        _members = Normalize(options.Members);
    }

    public PushOptions Options { get; }
    public IPAddress Group => Options.Group;
    public PushDelivery Delivery => Options.Delivery;
    /// <summary>The group on the control port: where a multicast Map-Register is sent.</summary>
    public IPEndPoint GroupEndPoint { get; }

    public string Name => $"decent-push {Options.Group} ({Options.Delivery switch
    {
        PushDelivery.Multicast => "multicast",
        PushDelivery.ReplicateEncapsulated => "replicate-encapsulated",
        _ => "replicate",
    }}, {_members.Count} members)";

    /// <summary>Every member's control endpoint, this node first.</summary>
    public IReadOnlyList<IPEndPoint> Members => _members;

    /// <summary>The members' RLOCs (addresses), this node first: the RLE of the peer-group registration.</summary>
    public IReadOnlyList<IPAddress> MemberRlocs => _members.Select(m => m.Address).Distinct().ToList();

    /// <summary>Replaces the other members (e.g. from a seed-group look-up); this node stays in.</summary>
    public void SetMembers(IEnumerable<IPEndPoint> others) => _members = Normalize(others);

    public bool IsSelf(IPEndPoint ep) => Options.Self.Any(s => s.Equals(ep));
    public bool IsSelfAddress(IPAddress a) => Options.Self.Any(s => s.Address.Equals(a));
    public bool IsMember(IPAddress a) => _members.Any(m => m.Address.Equals(a));

    public IReadOnlyList<IPEndPoint> MapServersFor(EidPrefix eid) =>
        Options.Delivery == PushDelivery.Multicast ? [GroupEndPoint] : _members;

    /// <summary>Always this node: every member holds every mapping, so a lookup never leaves the node.</summary>
    public IReadOnlyList<IPEndPoint> MapResolversFor(EidPrefix eid) => _resolvers;

    private List<IPEndPoint> Normalize(IEnumerable<IPEndPoint> others)
    {
        var list = new List<IPEndPoint>();
        foreach (var s in Options.Self)
        {
            if (!list.Contains(s)) list.Add(s);
        }
        foreach (var m in others)
        {
            var ep = m.Address.IsIPv4MappedToIPv6 ? new IPEndPoint(m.Address.MapToIPv4(), m.Port) : m;
            if (!list.Contains(ep) && !IsSelfAddress(ep.Address)) list.Add(ep);
        }
        return list;
    }

    public override string ToString() => Name;
}
