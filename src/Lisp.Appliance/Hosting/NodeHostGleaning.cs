using System.Net;
using Lisp.Wire;

namespace Lisp.Appliance.Hosting;

/// <summary>Gleaning's way into the control plane: the data plane's ETRs post candidates, the ITR role (on shard 0) decides.</summary>
public sealed partial class NodeHost
{
    /// <summary>Hands a gleaning candidate (a host EID and the RLOC that encapsulated it) to the ITR (thread-safe; handled on shard 0).</summary>
    public void Glean(EidPrefix eid, IPAddress rloc, TimeSpan ttl)
    {
        Post(_shards[0], (Action)(() =>
        {
            if (Nodes.ItrNode is { Itr: { } itr }) Execute(_shards[0], itr.Glean(eid, rloc, ttl, Clock.GetUtcNow()), null);
        }), force: false);
    }
}
