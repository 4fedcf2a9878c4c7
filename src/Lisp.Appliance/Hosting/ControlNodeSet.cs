using System.Net;
using Lisp.Appliance.Config;
using Lisp.ControlPlane;
using Lisp.Decent;

namespace Lisp.Appliance.Hosting;

/// <summary>
/// The <see cref="ControlNode"/>s one process runs, and which of them a received datagram belongs to.
/// <para>
/// Usually one node plays every role. A LISP-Decent pull map-server is split instead: each listen address is
/// its own map-server (+ map-resolver) with its own registration table, because each address is a member of
/// the map-server sets whose DNS names list it, and sets must stay apart (the seed's one container answering
/// as all 8 map-servers of 4 sets). Such a node takes Map-Registers only for EIDs that hash to a set its
/// address is in (<see cref="MapServerOptions.EidFilter"/>; others are refused and counted), and answers a
/// Map-Request only from its own table (or forwards it to the EID's set). The ETR and ITR, if configured, run
/// in one more node of their own.
/// </para>
/// <para>
/// Routing is by message type, then by the local endpoint the datagram arrived on: what a map-server or
/// map-resolver takes (Map-Register, Map-Notify-Ack, an ECM without the E bit) goes to the server node of that
/// endpoint; what an xTR takes (Map-Notify, Map-Reply, Map-Request, an ECM with the E bit) goes to the xTR node.
/// When the wanted kind of node does not exist, the other kind gets it (and counts it as unexpected).
/// </para>
/// </summary>
public sealed class ControlNodeSet
{
    private readonly Dictionary<IPEndPoint, ControlNode> _servers = new();
    private readonly List<(ControlNode Node, string? Label)> _all = [];
    private readonly ControlNode? _xtr;
    private readonly ControlNode _fallback;

    private ControlNodeSet(ControlNode single)
    {
        _xtr = single;
        _fallback = single;
        _all.Add((single, null));
    }

    private ControlNodeSet(IReadOnlyList<(IPEndPoint Local, ControlNode Node)> servers, ControlNode? xtr)
    {
        foreach (var (local, node) in servers)
        {
            _servers[local] = node;
            _all.Add((node, $"map-server {local}"));
        }
        _xtr = xtr;
        if (xtr is not null) _all.Insert(0, (xtr, null));
        _fallback = xtr ?? servers[0].Node;
    }

    /// <summary>The node that plays the ETR and ITR roles, else the first map-server node (`show`, one-node callers).</summary>
    public ControlNode Primary => _fallback;

    /// <summary>Every node, each with the label its log lines carry (null: none).</summary>
    public IReadOnlyList<(ControlNode Node, string? Label)> All => _all;

    /// <summary>Map-server nodes by the local endpoint they answer on (empty when not split).</summary>
    public IReadOnlyDictionary<IPEndPoint, ControlNode> Servers => _servers;

    /// <summary>The node with the ITR, if any (lookups asked for by the operator go there).</summary>
    public ControlNode? ItrNode => _all.Select(n => n.Node).FirstOrDefault(n => n.Itr is not null);

    public bool IsSplit => _servers.Count > 0;

    /// <summary>One node for every role (static and push modes, pull without the map-server role).</summary>
    public static ControlNodeSet Single(ControlNode node) => new(node);

    /// <summary>
    /// Pull mode with the map-server role: a map-server (+ map-resolver) node per local endpoint, refusing
    /// registrations for EIDs outside its sets, plus an xTR node for the ETR/ITR roles when configured.
    /// </summary>
    /// <param name="shard">Control shards: adjusts each node's options (its map-server's shard), null: unsharded.</param>
    /// <param name="counters">The counters of a node by name (shared by its shards), null: each node its own.</param>
    /// <param name="withXtr">False for shards other than 0: the ETR and ITR live in shard 0 only.</param>
    public static ControlNodeSet ForPull(NodeConfig config, PullMappingSystem pull, IReadOnlyList<IPEndPoint> local,
        Func<ControlNodeOptions, ControlNodeOptions>? shard = null, Func<string, ControlCounters>? counters = null, bool withXtr = true)
    {
        shard ??= o => o;
        var all = NodeHost.BuildOptions(config, local);
        var servers = new List<(IPEndPoint, ControlNode)>();
        foreach (var ep in local)
        {
            var address = ep.Address;
            var options = all with
            {
                Name = $"{config.Name} {ep}",
                LocalEndpoints = [ep],
                Etr = null,
                Itr = null,
                MapServer = all.MapServer! with { EidFilter = eid => pull.WhyNotServed(eid, address) },
            };
            options = shard(options);
            servers.Add((ep, new ControlNode(options, pull, null, counters?.Invoke(options.Name))));
        }
        ControlNode? xtr = null;
        if (withXtr && (all.Etr is not null || all.Itr is not null))
        {
            var options = all with { MapServer = null, MapResolver = null };
            xtr = new ControlNode(options, pull, null, counters?.Invoke(options.Name));
        }
        return new ControlNodeSet(servers, xtr);
    }

    /// <summary>The node that handles <paramref name="packet"/> (decodes it; the host's path passes the decoded message).</summary>
    public ControlNode Route(ReceivedPacket packet)
    {
        var status = Lisp.Wire.ControlMessage.TryDecode(packet.Payload, out var message);
        return Route(packet, status.IsOk ? message : null);
    }

    /// <summary>
    /// The node that handles <paramref name="packet"/>, from the message the steering step decoded: one look at the
    /// message type decides server or xTR node (what cannot be decoded goes to the xTR node, which counts it).
    /// </summary>
    public ControlNode Route(ReceivedPacket packet, Lisp.Wire.ControlMessage? message)
    {
        if (_servers.Count == 0) return _fallback;
        if (ForServer(message))
        {
            if (_servers.TryGetValue(packet.Local, out var node)) return node;
            return _xtr ?? _fallback;
        }
        if (_xtr is not null) return _xtr;
        return _servers.TryGetValue(packet.Local, out var s) ? s : _fallback;
    }

    /// <summary>
    /// True for what a map-server or map-resolver takes: Map-Register, Map-Notify-Ack, an Encapsulated Control
    /// Message without the E bit. Anything else (and what did not decode) is the xTR's.
    /// </summary>
    public static bool ForServer(Lisp.Wire.ControlMessage? message) => message switch
    {
        Lisp.Wire.MapRegister => true,
        Lisp.Wire.MapNotify { IsAck: true } => true,
        Lisp.Wire.EncapsulatedControlMessage { ForEtr: false } => true,
        _ => false,
    };

    /// <summary>The map-server node that answers on <paramref name="local"/> (the only node when not split).</summary>
    public ControlNode ServerFor(IPEndPoint local) => _servers.TryGetValue(local, out var n) ? n : _fallback;

    /// <summary>Earliest deadline over every node.</summary>
    public DateTimeOffset? NextDeadline
    {
        get
        {
            DateTimeOffset? d = null;
            foreach (var (n, _) in _all)
            {
                if (n.NextDeadline is { } v && (d is null || v < d)) d = v;
            }
            return d;
        }
    }

    public long TotalDrops => _all.Sum(n => n.Node.Counters.TotalDrops);
}
