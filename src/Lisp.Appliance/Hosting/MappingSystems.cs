using System.Net;
using Lisp.Appliance.Config;
using Lisp.ControlPlane;

namespace Lisp.Appliance.Hosting;

/// <summary>Builds the mapping system a config asks for (static, LISP-Decent pull, LISP-Decent push).</summary>
public static class MappingSystems
{
    public static IMappingSystem Create(NodeConfig c, Log log)
    {
        if (c.DecentPull is not null)
        {
            throw new ConfigException("decent.pull: pull-based LISP-Decent is not wired into run yet");
        }
        if (c.DecentPush is not null)
        {
            throw new ConfigException("decent.push: push-based LISP-Decent is not built yet");
        }
        var self = (c.Listen.Count > 0 ? c.Listen : c.Rlocs).Select(a => new IPEndPoint(a, c.ControlPort)).ToList();
        var servers = c.MapServers.Count > 0 ? c.MapServers : c.Has("map-server") ? self : [];
        var resolvers = c.MapResolvers.Count > 0 ? c.MapResolvers : c.Has("map-resolver") ? self : [];
        return new StaticMappingSystem(servers, resolvers);
    }
}
