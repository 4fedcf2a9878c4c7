using System.Net;
using Lisp.Appliance.Config;
using Lisp.Decent;
using Lisp.Decent.Push;

namespace Lisp.Appliance.Hosting;

/// <summary>Builds a push-based LISP-Decent mapping system from [decent.push], resolving a seed group when one is named.</summary>
public static class PushHosting
{
    public static PushMappingSystem Create(NodeConfig c, DecentPushConfig p, Log log)
    {
        var self = c.ControlEndpoints();
        var delivery = p.Delivery switch
        {
            "multicast" => PushDelivery.Multicast,
            "replicate-encapsulated" => PushDelivery.ReplicateEncapsulated,
            _ => PushDelivery.Replicate,
        };
        var options = new PushOptions
        {
            Group = p.Group,
            Delivery = delivery,
            Self = self,
            Members = p.Members,
            Key = p.Key ?? c.RegistrationKey,
            ControlPort = c.ControlPort,
            DataPort = p.DataPort,
        };
        if (options.Validate() is { } error) throw new ConfigException("decent.push: " + error);
        var system = new PushMappingSystem(options);
        if (p.SeedGroupName is { Length: > 0 } seed)
        {
            var found = ResolveSeed(seed, p.Group, self[0].Address, log);
            if (found is { Count: > 0 })
            {
                system.SetMembers(p.Members.Concat(found.Select(a => new IPEndPoint(a, c.ControlPort))));
                log.Info("push-seed-group", $"seed group '{seed}' names {found.Count} member(s) of {p.Group}: {string.Join(", ", found)}");
            }
            else
            {
                log.Warn("push-seed-group", $"seed group '{seed}' gave no members for {p.Group}; using the configured ones ({p.Members.Count})");
            }
        }
        return system;
    }

    /// <summary>
    /// "lisp:ADDR[:PORT]" (or a bare ADDR[:PORT]): look the group up at that seed-group member (RFC 9962 4.4);
    /// "dns:NAME@SERVER[:PORT]" (or NAME@SERVER): the A/AAAA records of NAME (a pull-style DNS name) are the members.
    /// Bounded: about 3 s at most.
    /// </summary>
    internal static IReadOnlyList<IPAddress>? ResolveSeed(string seed, IPAddress group, IPAddress source, Log log)
    {
        string s = seed.StartsWith("lisp:", StringComparison.Ordinal) ? seed[5..] : seed;
        if (!seed.StartsWith("dns:", StringComparison.Ordinal) && (IPEndPoint.TryParse(s, out var ep)))
        {
            if (ep.Port == 0) ep = new IPEndPoint(ep.Address, Lisp.Wire.DataHeader.ControlPort);
            try
            {
                var task = PushSeedGroup.LookupAsync(ep, group, ep.AddressFamily == source.AddressFamily ? source : null, TimeSpan.FromSeconds(1), tries: 3);
                return task.Wait(TimeSpan.FromSeconds(4)) ? task.Result : null;
            }
            catch (AggregateException e)
            {
                log.Warn("push-seed-group", $"look-up of {group} at {ep}: {e.InnerException?.Message}");
                return null;
            }
        }
        if (seed.StartsWith("dns:", StringComparison.Ordinal)) s = seed[4..];
        int at = s.IndexOf('@', StringComparison.Ordinal);
        if (at <= 0 || !DnsResolverOptions.TryParseServer(s[(at + 1)..], out var server) || server is null)
        {
            throw new ConfigException($"decent.push.seed_group: '{seed}' is neither lisp:ADDR[:PORT] nor dns:NAME@SERVER[:PORT]");
        }
        var source2 = new DnsClientAddressSource(new DnsResolverOptions { Servers = [server], QueryTimeout = TimeSpan.FromSeconds(1) });
        try
        {
            var answer = source2.QueryAsync(s[..at], CancellationToken.None);
            return answer.Wait(TimeSpan.FromSeconds(4)) ? answer.Result.Addresses : null;
        }
        catch (AggregateException e)
        {
            log.Warn("push-seed-group", $"DNS look-up of {s[..at]}: {e.InnerException?.Message}");
            return null;
        }
    }
}
