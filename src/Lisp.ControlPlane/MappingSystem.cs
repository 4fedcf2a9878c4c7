using System.Net;
using Lisp.Wire;

namespace Lisp.ControlPlane;

/// <summary>
/// "Where do my registrations and requests go": the one seam between the xTR roles and a mapping system.
/// Static (configured map-servers/resolvers), pull (EID hash -> DNS name -> A/AAAA records) and push
/// (a group's members) all implement it, so ETR/ITR/MS/MR code does not change between them.
/// Calls are synchronous and cheap: implementations that need I/O (DNS) keep a cached view that a
/// background loop refreshes, and return an empty list while they have no answer yet (the caller retries
/// at its next timer tick).
/// </summary>
public interface IMappingSystem
{
    /// <summary>Short name for logs and `show` ("static", "decent-pull ms.test mod 4", "decent-push 224.1.1.1").</summary>
    string Name { get; }

    /// <summary>Every map-server an ETR must send a Map-Register for <paramref name="eid"/> to.</summary>
    IReadOnlyList<IPEndPoint> MapServersFor(EidPrefix eid);

    /// <summary>
    /// Map-resolvers for a Map-Request about <paramref name="eid"/>, in the order to try them: the ITR sends
    /// to the first and moves to the next one on timeout.
    /// </summary>
    IReadOnlyList<IPEndPoint> MapResolversFor(EidPrefix eid);
}

/// <summary>The plain mapping system: the same configured map-servers and map-resolvers for every EID.</summary>
public sealed class StaticMappingSystem(IReadOnlyList<IPEndPoint> mapServers, IReadOnlyList<IPEndPoint> mapResolvers) : IMappingSystem
{
    public string Name => "static";
    public IReadOnlyList<IPEndPoint> MapServersFor(EidPrefix eid) => mapServers;
    public IReadOnlyList<IPEndPoint> MapResolversFor(EidPrefix eid) => mapResolvers;
}
