using Lisp.Appliance.Config;

namespace Lisp.Appliance.Hosting;

/// <summary>
/// What a config reload (SIGHUP) may change in a running node, and what needs a restart.
/// <para>
/// Applied in place, on the control threads, without losing state: node.log_level; the map-server's sites (added,
/// removed, changed key or prefixes), registration_timeout, max_registrations, max_registrants_per_eid; the ETR's
/// [[database]] mappings (added ones registered, removed ones withdrawn with a TTL-0 Map-Register, unchanged ones
/// left alone), its key, algorithm, register_interval, record_ttl, want_map_notify, proxy_reply, map_reply_ttl.
/// </para>
/// <para>
/// Needs a restart (the old value is kept and one line says so): name, roles, listen, rlocs, control_port,
/// control_threads (the sockets and the shard plan), map_servers/map_resolvers and [decent.*] (the mapping
/// system), the ITR's settings (its map-cache and probes keep running as they are), the request admission limits,
/// log_rate, etr.map_version, gleaning, [data_plane] and [management].
/// </para>
/// </summary>
public static class ConfigReload
{
    /// <summary>The plan of one reload: the config the node will run, and what changed.</summary>
    /// <param name="Applied">The new config with every restart-only setting put back to the running value.</param>
    /// <param name="NeedRestart">Settings that changed but need a restart (kept at their old value).</param>
    /// <param name="Changed">Settings applied in place.</param>
    public sealed record Plan(NodeConfig Applied, IReadOnlyList<string> NeedRestart, IReadOnlyList<string> Changed);

    public static Plan Compare(NodeConfig old, NodeConfig next)
    {
        var restart = new List<string>();
        var changed = new List<string>();
        void R(string name, bool same)
        {
            if (!same) restart.Add(name);
        }
        void C(string name, bool same)
        {
            if (!same) changed.Add(name);
        }

        R("node.name", old.Name == next.Name);
        R("node.roles", old.Roles.SetEquals(next.Roles));
        R("node.listen", old.Listen.SequenceEqual(next.Listen));
        R("node.rlocs", old.Rlocs.SequenceEqual(next.Rlocs));
        R("node.control_port", old.ControlPort == next.ControlPort);
        R("node.control_threads", old.ControlThreads == next.ControlThreads);
        R("node.log_rate", old.LogRate == next.LogRate);
        R("node.request_rate_per_source", old.RequestRatePerSource == next.RequestRatePerSource);
        R("node.request_burst_per_source", old.RequestBurstPerSource == next.RequestBurstPerSource);
        R("node.reply_amplification_limit", old.ReplyAmplificationLimit == next.ReplyAmplificationLimit);
        R("map_servers", old.MapServers.SequenceEqual(next.MapServers));
        R("map_resolvers", old.MapResolvers.SequenceEqual(next.MapResolvers));
        R("decent.pull", SamePull(old.DecentPull, next.DecentPull));
        R("decent.push", SamePush(old.DecentPush, next.DecentPush));
        R("itr", old.RequestTimeout == next.RequestTimeout && old.RequestRetries == next.RequestRetries &&
            old.RlocProbeInterval == next.RlocProbeInterval && old.RlocProbeTimeout == next.RlocProbeTimeout &&
            old.RlocProbeBudget == next.RlocProbeBudget && old.RlocProbeMaxLocators == next.RlocProbeMaxLocators && old.ItrMaxTtl == next.ItrMaxTtl);
        R("etr.map_version", old.MapVersion == next.MapVersion);
        R("etr.glean", old.Glean == next.Glean && old.GleanTtl == next.GleanTtl);
        R("data_plane", SameDataPlane(old.DataPlane, next.DataPlane));
        R("management", Equals(old.Management, next.Management) && Equals(old.ManagementOptions, next.ManagementOptions));

        C("node.log_level", old.LogLevel == next.LogLevel);
        C("sites", old.Sites.Count == next.Sites.Count && old.Sites.Zip(next.Sites).All(p => Lisp.ControlPlane.MapServer.SameSite(p.First, p.Second)));
        C("map_server", old.RegistrationTimeout == next.RegistrationTimeout && old.MaxRegistrations == next.MaxRegistrations &&
            old.MaxRegistrantsPerEid == next.MaxRegistrantsPerEid);
        C("database", old.Database.Count == next.Database.Count && old.Database.Zip(next.Database).All(p => SameMapping(p.First, p.Second)));
        C("etr", old.RegistrationKey == next.RegistrationKey && old.Algorithm == next.Algorithm && old.RegisterInterval == next.RegisterInterval &&
            old.RecordTtl == next.RecordTtl && old.WantMapNotify == next.WantMapNotify && old.ProxyReply == next.ProxyReply && old.MapReplyTtl == next.MapReplyTtl);

        var applied = next with
        {
            Name = old.Name, Roles = old.Roles, Listen = old.Listen, Rlocs = old.Rlocs, ControlPort = old.ControlPort,
            ControlThreads = old.ControlThreads, LogRate = old.LogRate, RequestRatePerSource = old.RequestRatePerSource,
            RequestBurstPerSource = old.RequestBurstPerSource, ReplyAmplificationLimit = old.ReplyAmplificationLimit,
            MapServers = old.MapServers, MapResolvers = old.MapResolvers, DecentPull = old.DecentPull, DecentPush = old.DecentPush,
            RequestTimeout = old.RequestTimeout, RequestRetries = old.RequestRetries, RlocProbeInterval = old.RlocProbeInterval,
            RlocProbeTimeout = old.RlocProbeTimeout, RlocProbeBudget = old.RlocProbeBudget, RlocProbeMaxLocators = old.RlocProbeMaxLocators,
            ItrMaxTtl = old.ItrMaxTtl, MapVersion = old.MapVersion, Glean = old.Glean, GleanTtl = old.GleanTtl,
            DataPlane = old.DataPlane, Management = old.Management, ManagementOptions = old.ManagementOptions,
            Database = next.Database.Select(d => d with { MapVersion = old.MapVersion }).ToList(),
        };
        return new Plan(applied, restart, changed);
    }

    private static bool SameMapping(Lisp.ControlPlane.DatabaseMapping a, Lisp.ControlPlane.DatabaseMapping b) =>
        a.Eid.SameKey(b.Eid) && a.MapVersion == b.MapVersion && a.Rlocs.SequenceEqual(b.Rlocs);

    private static bool SamePull(DecentPullConfig? a, DecentPullConfig? b) =>
        a is null || b is null ? a is null && b is null : a.DnsServers.SequenceEqual(b.DnsServers) && a with { DnsServers = b.DnsServers } == b;

    private static bool SamePush(DecentPushConfig? a, DecentPushConfig? b) =>
        a is null || b is null ? a is null && b is null : a.Members.SequenceEqual(b.Members) && a with { Members = b.Members } == b;

    // The lists compare by content (a record compares them by reference: every reload of an unchanged [data_plane] with
    // accept_prefixes was "needs restart" until the lists were compared here).
    private static bool SameDataPlane(DataPlaneConfig? a, DataPlaneConfig? b) =>
        a is null || b is null ? a is null && b is null
            : a.Addresses.SequenceEqual(b.Addresses) && a.Routes.SequenceEqual(b.Routes) && a.AcceptPrefixes.SequenceEqual(b.AcceptPrefixes)
              && a with { Addresses = b.Addresses, Routes = b.Routes, AcceptPrefixes = b.AcceptPrefixes } == b;
}
