using System.Net;
using Lisp.Wire;

namespace Lisp.ControlPlane;

/// <summary>Map-Resolver settings.</summary>
public sealed record MapResolverOptions
{
    /// <summary>
    /// Negative Map-Reply TTL when neither this node's Map-Server nor the mapping system knows a map-server
    /// for the EID (nothing configured): short, so the ITR asks again once the mapping system has an answer.
    /// </summary>
    public TimeSpan NoMapServerTtl { get; init; } = TimeSpan.FromMinutes(1);
    public MapReplyAction NoMapServerAction { get; init; } = MapReplyAction.NativelyForward;
    /// <summary>
    /// This node's Map-Server holds the whole mapping system (LISP-Decent push: every member receives every
    /// registration), so it answers every request itself and nothing is forwarded.
    /// </summary>
    public bool AnswerLocally { get; init; }
}

/// <summary>
/// Map-Resolver (RFC 9301 section 8.3): takes ECM Map-Requests from ITRs. When this node's own Map-Server
/// holds a covering registration, or the mapping system names this node among the map-servers for the EID
/// (or names none while a local Map-Server exists), the local Map-Server answers; otherwise the ECM is
/// forwarded, M bit set, to the first map-server the mapping system names. With no map-server at all it
/// answers a host-length negative Map-Reply (natively-forward, short TTL). Pure and single-threaded.
/// </summary>
public sealed class MapResolver
{
    private readonly MapResolverOptions _options;
    private readonly IMappingSystem _mappingSystem;
    private readonly MapServer? _localMapServer;
    private readonly IReadOnlyList<IPEndPoint> _localEndpoints;
    private readonly ControlCounters _counters;

    /// <param name="localMapServer">This node's Map-Server, when it has one.</param>
    /// <param name="localEndpoints">The addresses this node answers on: a map-server among them is "itself".</param>
    public MapResolver(MapResolverOptions options, IMappingSystem mappingSystem, MapServer? localMapServer = null,
        IReadOnlyList<IPEndPoint>? localEndpoints = null, ControlCounters? counters = null)
    {
        _options = options;
        _mappingSystem = mappingSystem;
        _localMapServer = localMapServer;
        _localEndpoints = localEndpoints ?? [];
        _counters = counters ?? localMapServer?.Counters ?? new ControlCounters();
    }

    public MapResolverOptions Options => _options;
    public ControlCounters Counters => _counters;

    private bool IsLocal(IPEndPoint ep, ReceivedPacket p) => ep.Equals(p.Local) || _localEndpoints.Contains(ep);

    /// <summary>Handles an ECM Map-Request from an ITR.</summary>
    public IReadOnlyList<ControlAction> HandleMapRequest(EncapsulatedControlMessage ecm, MapRequest request, ReceivedPacket packet, DateTimeOffset now)
    {
        if (request.Records.Count == 0)
        {
            _counters.Drop(DropReason.NoRecords);
            return [new LogAction(LogLevel.Debug, "map-request-dropped", $"Map-Request from {packet.From} has no EID records")];
        }
        var eid = request.Records[0];
        if (_localMapServer is not null)
        {
            // One lookup per request: the Map-Server answers from what the resolver found.
            var found = _localMapServer.FindForResolver(eid, now);
            if (_options.AnswerLocally || found is not null) return _localMapServer.HandleMapRequest(ecm, request, packet, now, true, found);
        }
        var servers = _mappingSystem.MapServersFor(eid);
        bool selfListed = servers.Any(s => IsLocal(s, packet));
        var remote = servers.Where(s => !IsLocal(s, packet)).ToList();
        if (_localMapServer is not null && (selfListed || remote.Count == 0 || ecm.ForMapServer))
        {
            return _localMapServer.HandleMapRequest(ecm, request, packet, now);
        }
        if (remote.Count > 0 && !ecm.ForMapServer)
        {
            var to = remote[0];
            _counters.Count(ControlEvent.MapRequestForwarded);
            return
            [
                new SendAction(to, (ecm with { ForMapServer = true }).ToBytes(), Util.FromFor(packet.Local, to)),
                new LogAction(LogLevel.Debug, "map-request-forwarded",
                    $"Map-Request for {eid} (nonce {Util.Hex(request.Nonce)}) forwarded to map-server {to} ({_mappingSystem.Name})"),
            ];
        }
        // Nothing to forward to (or it already came from a resolver and we hold no Map-Server): we cannot vouch
        // for anything wider than the EID itself.
        var record = new MappingRecord(PrefixMath.HostPrefix(eid.Canonical()), [], MapServer.TtlMinutes(_options.NoMapServerTtl),
            _options.NoMapServerAction, Authoritative: false);
        if (!MapServer.TryReplyTarget(request, ecm, packet, out var target))
        {
            _counters.Drop(DropReason.NoReplyPath);
            return [new LogAction(LogLevel.Warning, "map-request-dropped", $"Map-Request for {eid} from {packet.From}: no ITR-RLOC to answer to")];
        }
        _counters.Count(ControlEvent.NegativeMapReplySent);
        return
        [
            new SendAction(target, new MapReply { Nonce = request.Nonce, Records = [record] }.ToBytes(), Util.FromFor(packet.Local, target)),
            new LogAction(LogLevel.Info, "negative-map-reply",
                $"no map-server for {eid} in {_mappingSystem.Name}: negative Map-Reply {record.Eid} {record.Action} to {target}"),
        ];
    }
}
