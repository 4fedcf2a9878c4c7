using System.Net;
using Lisp.Appliance.Config;
using Lisp.ControlPlane;
using Lisp.Decent;
using Lisp.Wire;

namespace Lisp.Appliance.Hosting;

/// <summary>Builds the mapping system a config asks for (static, LISP-Decent pull, LISP-Decent push).</summary>
public static class MappingSystems
{
    public static IMappingSystem Create(NodeConfig c, Log log)
    {
        if (c.DecentPull is { } pull)
        {
            return CreatePull(pull, log);
        }
        if (c.DecentPush is { } push)
        {
            return PushHosting.Create(c, push, log);
        }
        var self = c.ControlEndpoints();
        var servers = c.MapServers.Count > 0 ? c.MapServers : c.Has("map-server") ? self : [];
        var resolvers = c.MapResolvers.Count > 0 ? c.MapResolvers : c.Has("map-resolver") ? self : [];
        return new StaticMappingSystem(servers, resolvers);
    }

    /// <summary>Pull-based LISP-Decent: EID hash -> "&lt;index&gt;.&lt;suffix&gt;" -> DNS A/AAAA -> map-server set.</summary>
    public static PullMappingSystem CreatePull(DecentPullConfig p, Log log)
    {
        var options = new DecentPullOptions
        {
            DnsSuffix = p.DnsSuffix,
            MapServerPort = p.MapServerPort,
            Hash = new DecentHashOptions
            {
                Modulus = p.Modulus,
                Algorithm = p.Hash == "hmac-sha256-lisp-decent" ? DecentHashAlgorithm.HmacSha256 : DecentHashAlgorithm.Sha256,
                HashMask = p.HashMask,
                LookupLengths = p.LookupLength > 0 ? [new LookupLengthRule(p.LookupLength)] : [],
                SourceGroup = p.SgHash switch
                {
                    "draft" => SourceGroupHashing.Draft,
                    "source" => SourceGroupHashing.Source,
                    _ => SourceGroupHashing.Group,
                },
            },
            Dns = new DnsResolverOptions
            {
                Servers = p.DnsServers,
                MinimumTtl = p.MinDnsTtl,
                Grace = p.DnsGrace,
            },
        };
        if (options.Validate() is { } error) throw new ConfigException("decent.pull: " + error);
        var system = new PullMappingSystem(options, TimeProvider.System, m => log.Write(LogLevel.Info, "decent-dns", m));
        // Resolve every set at start so the first registrations and lookups need not wait for DNS.
        _ = system.WarmUpAllAsync();
        return system;
    }
}
