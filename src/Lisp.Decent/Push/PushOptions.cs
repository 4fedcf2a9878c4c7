using System.Net;
using Lisp.Wire;

namespace Lisp.Decent.Push;

/// <summary>How a Map-Register sent to the group reaches the members (spec/decent.md "Push-based").</summary>
public enum PushDelivery
{
    /// <summary>Head-end replication as plain unicast Map-Registers to each member's control port (4342).</summary>
    Replicate,
    /// <summary>Underlay IP multicast: one Map-Register to the group address on the control port.</summary>
    Multicast,
    /// <summary>
    /// Head-end replication the way RFC 9962 and lispers.net do it: the Map-Register LISP-data-encapsulated to
    /// each member's RLOC on the data port, instance-id 0xffffff, inner destination the group.
    /// </summary>
    ReplicateEncapsulated,
}

/// <summary>One push-based LISP-Decent mapping system, as a member sees it.</summary>
public sealed record PushOptions
{
    /// <summary>The multicast group address that names the mapping system.</summary>
    public required IPAddress Group { get; init; }
    public PushDelivery Delivery { get; init; } = PushDelivery.Replicate;
    /// <summary>The other members' control endpoints (this node is added by itself).</summary>
    public IReadOnlyList<IPEndPoint> Members { get; init; } = [];
    /// <summary>This node's control endpoints (the first one of each family is its RLOC in the group).</summary>
    public required IReadOnlyList<IPEndPoint> Self { get; init; }
    /// <summary>The group key: every member's Map-Registers to the group are signed with it.</summary>
    public required string Key { get; init; }
    public int ControlPort { get; init; } = DataHeader.ControlPort;
    /// <summary>Where encapsulated Map-Registers go (the members' LISP data port).</summary>
    public int DataPort { get; init; } = DataHeader.Port;

    /// <summary>The site name members register under at every member's Map-Server.</summary>
    public string SiteName => "decent-push-" + Group;

    public string? Validate()
    {
        if (!PushGroup.IsMulticast(Group)) return $"group {Group} is not a multicast address";
        if (Key.Length == 0) return "the group needs a key";
        if (Self.Count == 0) return "no local control endpoint";
        if (ControlPort is < 1 or > 65535 || DataPort is < 1 or > 65535) return "ports must be 1..65535";
        return null;
    }
}
