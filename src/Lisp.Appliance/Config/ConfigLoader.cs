using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;
using Lisp.ControlPlane;
using Lisp.Decent.Push;
using Lisp.Wire;
using Tomlyn;
using Tomlyn.Model;
using Tomlyn.Parsing;
using Tomlyn.Serialization;

namespace Lisp.Appliance.Config;

/// <summary>Source-generated TOML model metadata (no reflection, native-AOT clean).</summary>
[TomlSerializable(typeof(TomlTable))]
internal sealed partial class ConfigTomlContext : TomlSerializerContext
{
}

/// <summary>A config problem, named by its key path so the operator knows where to look.</summary>
public sealed class ConfigException(string message) : Exception(message);

/// <summary>
/// Reads the TOML config into a validated <see cref="NodeConfig"/>. Every error names the key
/// (e.g. <c>site[2].eid_prefixes[0]</c>) and what is wrong with it; unknown keys are errors too, so a typo
/// never silently falls back to a default.
/// </summary>
public static partial class ConfigLoader
{
    public static NodeConfig LoadFile(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException($"cannot read config {path}: {e.Message}");
        }
        return Parse(text, path);
    }

    public static NodeConfig Parse(string text, string sourceName = "config")
    {
        // The syntax tree first: its diagnostics name duplicate keys and tables, which the model below silently
        // merges (last one wins), and they carry the line, which TomlSyntax.KeyAt turns into the key's name.
        Tomlyn.Syntax.DocumentSyntax doc;
        try
        {
            doc = SyntaxParser.Parse(text, sourceName);
        }
        catch (ArgumentException e)
        {
            // Tomlyn 2.10.2 throws while formatting its own error for an invalid \U escape (a surrogate or a value
            // above 0x10FFFF; fuzzing, FUZZING.md): a config error, not a crash.
            throw new ConfigException($"{sourceName}: invalid TOML: {e.Message}");
        }
        if (doc.HasErrors) throw TomlSyntax.Error(doc, sourceName);
        TomlTable root;
        try
        {
            root = TomlSerializer.Deserialize(text, ConfigTomlContext.Default.TomlTable) ?? new TomlTable();
        }
        catch (TomlException e)
        {
            throw TomlSyntax.ConversionError(doc, e, sourceName);
        }
        TomlSyntax.CheckTableArraysKept(doc, root, sourceName);
        var r = new Reader(sourceName);
        r.NoControlCharacters(root, "");
        return r.Read(root);
    }

    private sealed class Reader(string source)
    {
        private ConfigException Bad(string key, string what) => new($"{source}: {key}: {what}");

        public NodeConfig Read(TomlTable root)
        {
            Allow(root, "", "node", "mapping", "etr", "itr", "map_server", "site", "database", "decent", "management", "data_plane");
            var node = Table(root, "node") ?? new TomlTable();
            Allow(node, "node.", "name", "roles", "rlocs", "listen", "control_port", "log_level", "control_threads", "log_rate",
                "request_rate_per_source", "request_burst_per_source", "reply_amplification_limit");
            var cfg = new NodeConfig
            {
                Name = Str(node, "node.name") ?? "lisp-decent",
                Roles = Roles(node),
                Rlocs = Addresses(node, "node.rlocs"),
                Listen = Addresses(node, "node.listen"),
                ControlPort = Int(node, "node.control_port", 1, 65535) ?? DataHeader.ControlPort,
                LogLevel = Choice(node, "node.log_level", ["debug", "info", "warning", "error"]) ?? "info",
                ControlThreads = Int(node, "node.control_threads", 1, 64),
                LogRate = Int(node, "node.log_rate", 0, 1_000_000) ?? Hosting.Log.DefaultLinesPerKindPerSecond,
                RequestRatePerSource = Int(node, "node.request_rate_per_source", 0, 10_000_000) ?? Lisp.ControlPlane.RequestAdmissionOptions.DefaultRatePerSource,
                RequestBurstPerSource = Int(node, "node.request_burst_per_source", 1, 10_000_000) ?? Lisp.ControlPlane.RequestAdmissionOptions.DefaultBurstPerSource,
                ReplyAmplificationLimit = Int(node, "node.reply_amplification_limit", 0, 1000) ?? Lisp.ControlPlane.RequestAdmissionOptions.DefaultAmplificationFactor,
            };

            var mapping = Table(root, "mapping");
            if (mapping is not null)
            {
                Allow(mapping, "mapping.", "map_servers", "map_resolvers", "key", "algorithm");
                cfg = cfg with
                {
                    MapServers = Endpoints(mapping, "mapping.map_servers", cfg.ControlPort),
                    MapResolvers = Endpoints(mapping, "mapping.map_resolvers", cfg.ControlPort),
                    RegistrationKey = Str(mapping, "mapping.key") ?? "",
                    Algorithm = Algorithm(mapping, "mapping.algorithm") ?? cfg.Algorithm,
                };
            }

            var etr = Table(root, "etr");
            if (etr is not null)
            {
                Allow(etr, "etr.", "register_interval", "record_ttl", "want_map_notify", "proxy_reply", "map_version", "glean", "glean_ttl");
                cfg = cfg with
                {
                    RegisterInterval = Duration(etr, "etr.register_interval", Limits.RegisterInterval) ?? cfg.RegisterInterval,
                    RecordTtl = Duration(etr, "etr.record_ttl", Limits.Ttl) ?? cfg.RecordTtl,
                    WantMapNotify = Bool(etr, "etr.want_map_notify") ?? cfg.WantMapNotify,
                    ProxyReply = Bool(etr, "etr.proxy_reply") ?? cfg.ProxyReply,
                    MapVersion = (ushort)(Int(etr, "etr.map_version", 0, MapVersion.Max) ?? 0),
                    Glean = Bool(etr, "etr.glean") ?? cfg.Glean,
                    GleanTtl = Duration(etr, "etr.glean_ttl", Limits.GleanTtl) ?? cfg.GleanTtl,
                };
            }
            var itr = Table(root, "itr");
            if (itr is not null)
            {
                Allow(itr, "itr.", "request_timeout", "request_retries", "rloc_probe_interval", "rloc_probe_timeout",
                    "rloc_probe_budget", "rloc_probe_max_locators", "max_ttl");
                cfg = cfg with
                {
                    RequestTimeout = Duration(itr, "itr.request_timeout", Limits.RequestTimeout) ?? cfg.RequestTimeout,
                    RequestRetries = Int(itr, "itr.request_retries", 0, 10) ?? cfg.RequestRetries,
                    RlocProbeInterval = Duration(itr, "itr.rloc_probe_interval", Limits.RlocProbeInterval) ?? cfg.RlocProbeInterval,
                    RlocProbeTimeout = Duration(itr, "itr.rloc_probe_timeout", Limits.RlocProbeTimeout) ?? cfg.RlocProbeTimeout,
                    RlocProbeBudget = Int(itr, "itr.rloc_probe_budget", 0, 1_000_000) ?? cfg.RlocProbeBudget,
                    RlocProbeMaxLocators = Int(itr, "itr.rloc_probe_max_locators", 1, 255) ?? cfg.RlocProbeMaxLocators,
                    ItrMaxTtl = Duration(itr, "itr.max_ttl", Limits.ItrMaxTtl) ?? cfg.ItrMaxTtl,
                };
            }
            var ms = Table(root, "map_server");
            if (ms is not null)
            {
                Allow(ms, "map_server.", "registration_timeout", "map_reply_ttl", "max_registrations", "max_registrants_per_eid");
                cfg = cfg with
                {
                    RegistrationTimeout = Duration(ms, "map_server.registration_timeout", Limits.RegistrationTimeout) ?? cfg.RegistrationTimeout,
                    MaxRegistrations = Int(ms, "map_server.max_registrations", 1, 1 << 30) ?? cfg.MaxRegistrations,
                    MaxRegistrantsPerEid = Int(ms, "map_server.max_registrants_per_eid", 1, 1 << 16) ?? cfg.MaxRegistrantsPerEid,
                    MapReplyTtl = Duration(ms, "map_server.map_reply_ttl", Limits.Ttl) ?? cfg.MapReplyTtl,
                };
            }
            else
            {
                cfg = cfg with { RegistrationTimeout = cfg.RegisterInterval * 3 };
            }

            cfg = cfg with { Sites = Sites(root), Database = Database(root, cfg) };

            var decent = Table(root, "decent");
            if (decent is not null)
            {
                Allow(decent, "decent.", "pull", "push");
                var pull = Table(decent, "pull", "decent.pull");
                if (pull is not null) cfg = cfg with { DecentPull = Pull(pull, cfg) };
                var push = Table(decent, "push", "decent.push");
                if (push is not null) cfg = cfg with { DecentPush = Push(push, cfg) };
            }

            var dataPlane = Table(root, "data_plane");
            if (dataPlane is not null) cfg = cfg with { DataPlane = DataPlaneSection(dataPlane, cfg) };

            var mgmt = Table(root, "management");
            if (mgmt is not null)
            {
                Allow(mgmt, "management.", "listen", "max_connections", "header_timeout", "idle_timeout", "max_body", "token_file");
                var l = Str(mgmt, "management.listen");
                if (l is not null)
                {
                    var ep = ManagementEndpoint(l);
                    cfg = cfg with { Management = ep, ManagementOptions = ManagementSection(mgmt, ep) };
                }
            }
            Validate(cfg);
            return cfg;
        }

        // [management] limits and token (issue 12): a non-loopback listen address needs a token_file.
        private ManagementConfig ManagementSection(TomlTable t, IPEndPoint listen)
        {
            var m = new ManagementConfig
            {
                Listen = listen,
                MaxConnections = Int(t, "management.max_connections", 1, 4096) ?? ManagementConfig.DefaultMaxConnections,
                HeaderTimeout = Duration(t, "management.header_timeout", Limits.ManagementHeaderTimeout) ?? TimeSpan.FromSeconds(5),
                IdleTimeout = Duration(t, "management.idle_timeout", Limits.ManagementIdleTimeout) ?? TimeSpan.FromSeconds(15),
                MaxBody = Int(t, "management.max_body", 0, 16 << 20) ?? ManagementConfig.DefaultMaxBody,
                TokenFile = Str(t, "management.token_file"),
            };
            if (m.HeaderTimeout < TimeSpan.FromMilliseconds(100) || m.HeaderTimeout > TimeSpan.FromMinutes(5)) throw Bad("management.header_timeout", $"{m.HeaderTimeout.TotalSeconds} s is outside 100 ms .. 5 min");
            if (m.IdleTimeout < TimeSpan.FromMilliseconds(100) || m.IdleTimeout > TimeSpan.FromHours(1)) throw Bad("management.idle_timeout", $"{m.IdleTimeout.TotalSeconds} s is outside 100 ms .. 1 h");
            if (m.TokenFile is { } f)
            {
                string token;
                try
                {
                    token = File.ReadAllText(f).Trim();
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    throw Bad("management.token_file", $"cannot read {f}: {e.Message}");
                }
                if (token.Length < 16 || token.Any(c => c <= ' ' || c > '~')) throw Bad("management.token_file", $"{f} must hold one token of at least 16 printable characters (no spaces)");
                m = m with { Token = token };
            }
            else if (!IPAddress.IsLoopback(listen.Address))
            {
                throw Bad("management.token_file", $"listen {listen} is not a loopback address: give a token_file (requests then need 'Authorization: Bearer TOKEN')");
            }
            return m;
        }

        private void Validate(NodeConfig c)
        {
            if (c.Roles.Count == 0) throw Bad("node.roles", $"at least one role is needed ({string.Join(", ", NodeConfig.KnownRoles)})");
            if (c.Listen.Count == 0 && c.Rlocs.Count == 0) throw Bad("node.listen", "give the addresses to listen on (or node.rlocs)");
            if (c.Glean && (c.DataPlane is null || !c.Has("itr"))) throw Bad("etr.glean", "gleaning needs a [data_plane] and the itr role (gleaned mappings go into the ITR's map-cache)");
            if (c.Has("etr") && c.Database.Count == 0) throw Bad("database", "an ETR needs at least one [[database]] mapping");
            if (c.Has("etr") && c.Rlocs.Count == 0 && c.Database.Any(d => d.Rlocs.Count == 0))
                throw Bad("node.rlocs", "an ETR needs RLOCs (node.rlocs or rlocs in each [[database]])");
            bool decent = c.DecentPull is not null || c.DecentPush is not null;
            if (c.Has("etr") && !decent && c.MapServers.Count == 0 && !c.Has("map-server"))
                throw Bad("mapping.map_servers", "an ETR needs map-servers (or the map-server role, or [decent.pull]/[decent.push])");
            if (c.Has("itr") && !decent && c.MapResolvers.Count == 0 && !c.Has("map-resolver"))
                throw Bad("mapping.map_resolvers", "an ITR needs map-resolvers (or the map-resolver role, or [decent.pull]/[decent.push])");
            if (c.Has("map-server") && c.Sites.Count == 0 && c.DecentPush is null)
                throw Bad("site", "a map-server needs at least one [[site]]");
            if (c.Has("etr") && c.RegistrationKey.Length == 0 && c.DecentPull?.Key is null && c.DecentPush?.Key is null)
                throw Bad("mapping.key", "an ETR needs a registration key (mapping.key or the decent section's key)");
            if (c.DecentPull is not null && c.DecentPush is not null)
                throw Bad("decent", "choose one of [decent.pull] and [decent.push] (a push group can use pull only through seed_group)");
        }

        private HashSet<string> Roles(TomlTable node)
        {
            var set = new HashSet<string>(StringComparer.Ordinal);
            foreach (var (s, i) in StrList(node, "node.roles").Select((s, i) => (s, i)))
            {
                string role = s.Trim().ToLowerInvariant() switch
                {
                    "ms" or "mapserver" => "map-server",
                    "mr" or "mapresolver" => "map-resolver",
                    var x => x,
                };
                if (!NodeConfig.KnownRoles.Contains(role)) throw Bad($"node.roles[{i}]", $"unknown role '{s}' (known: {string.Join(", ", NodeConfig.KnownRoles)})");
                set.Add(role);
            }
            return set;
        }

        private List<SiteConfig> Sites(TomlTable root)
        {
            var list = new List<SiteConfig>();
            foreach (var (t, i) in Tables(root, "site"))
            {
                string k = $"site[{i}]";
                Allow(t, k + ".", "name", "key", "eid_prefixes", "accept_more_specifics", "description", "max_registrations");
                var name = Str(t, k + ".name") ?? $"site-{i}";
                var key = Str(t, k + ".key") ?? throw Bad(k + ".key", "every site needs an authentication key");
                if (key.Length == 0) throw Bad(k + ".key", "must not be empty");
                var prefixes = StrList(t, k + ".eid_prefixes").Select((s, j) => Eid(s, $"{k}.eid_prefixes[{j}]")).ToList();
                if (prefixes.Count == 0) throw Bad(k + ".eid_prefixes", "a site needs at least one EID-prefix");
                list.Add(new SiteConfig(name, key, prefixes)
                {
                    AcceptMoreSpecifics = Bool(t, k + ".accept_more_specifics") ?? false,
                    Description = Str(t, k + ".description") ?? "",
                    MaxRegistrations = Int(t, k + ".max_registrations", 1, 1 << 30) ?? 0,
                });
            }
            return list;
        }

        private List<DatabaseMapping> Database(TomlTable root, NodeConfig cfg)
        {
            var list = new List<DatabaseMapping>();
            foreach (var (t, i) in Tables(root, "database"))
            {
                string k = $"database[{i}]";
                Allow(t, k + ".", "eid", "rlocs");
                var eid = Eid(Str(t, k + ".eid") ?? throw Bad(k + ".eid", "missing"), k + ".eid");
                var rlocs = new List<LocatorRecord>();
                if (t.TryGetValue("rlocs", out var rv))
                {
                    if (rv is not TomlArray arr) throw Bad(k + ".rlocs", "must be a list of { address = ..., priority = ..., weight = ... } or addresses");
                    int j = 0;
                    foreach (var item in arr)
                    {
                        string rk = $"{k}.rlocs[{j++}]";
                        if (item is string s)
                        {
                            rlocs.Add(new LocatorRecord(new IpAddress(Address(s, rk))));
                        }
                        else if (item is TomlTable rt)
                        {
                            Allow(rt, rk + ".", "address", "priority", "weight");
                            var a = Address(Str(rt, rk + ".address") ?? throw Bad(rk + ".address", "missing"), rk + ".address");
                            rlocs.Add(new LocatorRecord(new IpAddress(a), (byte)(Int(rt, rk + ".priority", 0, 255) ?? 1), (byte)(Int(rt, rk + ".weight", 0, 255) ?? 100)));
                        }
                        else
                        {
                            throw Bad(rk, "must be an address string or an inline table");
                        }
                    }
                }
                list.Add(new DatabaseMapping(eid, rlocs, cfg.MapVersion));
            }
            return list;
        }

        private DataPlaneConfig DataPlaneSection(TomlTable t, NodeConfig cfg)
        {
            const string k = "data_plane.";
            Allow(t, k, "tun", "instance_id", "addresses", "routes", "workers", "data_port", "underlay_mtu", "tun_mtu", "miss_policy",
                "hold_time", "hold_packets", "miss_rate", "send_mode", "batch_size", "configure_tun", "stats_interval", "io",
                "echo_nonce", "echo_nonce_interval", "echo_nonce_timeout", "echo_nonce_retry", "accept_from", "accept_prefixes", "offload", "receive_buffer", "tun_qdisc");
            if (!cfg.Has("itr") && !cfg.Has("etr")) throw Bad("data_plane", "the data plane needs the itr or etr role");
            if (cfg.Rlocs.Count == 0) throw Bad("node.rlocs", "the data plane needs local RLOCs (the outer source addresses)");
            var tun = Str(t, k + "tun") ?? "lisp0";
            if (tun.Length is 0 or > 15 || tun.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))) throw Bad(k + "tun", $"'{tun}' is not an interface name (1..15 of a-z 0-9 - _ .)");
            List<IpPrefix> Prefixes(string key) => StrList(t, k + key).Select((s, i) =>
                IpPrefix.TryParse(s, out var p) ? p : throw Bad($"{k}{key}[{i}]", $"'{s}' is not ADDRESS/LENGTH")).ToList();
            var d = new DataPlaneConfig
            {
                Tun = tun,
                // 0xffffff is reserved: LISP-Decent push sends group Map-Registers with it (RFC 9962); never a TUN.
                InstanceId = (uint)(Int(t, k + "instance_id", 0, 0xfffffe) ?? 0),
                Addresses = Prefixes("addresses"),
                Routes = Prefixes("routes"),
                Workers = Int(t, k + "workers", 1, 64) ?? 1,
                DataPort = Int(t, k + "data_port", 1, 65535) ?? DataHeader.Port,
                UnderlayMtu = Int(t, k + "underlay_mtu", 576, 65535) ?? 1500,
                TunMtu = Int(t, k + "tun_mtu", 576, 65535) ?? 1500,
                MissPolicy = Choice(t, k + "miss_policy", ["drop", "queue"]) ?? "drop",
                HoldTime = Duration(t, k + "hold_time", Limits.HoldTime) ?? TimeSpan.FromSeconds(3),
                HoldPackets = Int(t, k + "hold_packets", 1, 4096) ?? 64,
                MissRate = Int(t, k + "miss_rate", 1, 100000) ?? 100,
                SendMode = Choice(t, k + "send_mode", ["auto", "raw", "udp"]) ?? "auto",
                BatchSize = Int(t, k + "batch_size", 1, 1024) ?? 64,
                ReceiveBuffer = Int(t, k + "receive_buffer", 64 << 10, 1 << 30) ?? Lisp.DataPlane.DataPlaneOptions.DefaultReceiveBufferBytes,
                Io = Choice(t, k + "io", ["auto", "io_uring", "syscalls"]) ?? "auto",
                Offload = Choice(t, k + "offload", ["auto", "off"]) ?? "auto",
                ConfigureTun = Bool(t, k + "configure_tun") ?? true,
                TunQdisc = Choice(t, k + "tun_qdisc", ["noqueue", "keep"]) ?? "noqueue",
                StatsInterval = Duration(t, k + "stats_interval", Limits.StatsInterval) ?? TimeSpan.FromSeconds(10),
                EchoNonce = Bool(t, k + "echo_nonce") ?? false,
                EchoNonceInterval = Duration(t, k + "echo_nonce_interval", Limits.EchoNonce) ?? TimeSpan.FromSeconds(10),
                EchoNonceTimeout = Duration(t, k + "echo_nonce_timeout", Limits.EchoNonce) ?? TimeSpan.FromSeconds(3),
                EchoNonceRetry = Duration(t, k + "echo_nonce_retry", Limits.EchoNonce) ?? TimeSpan.FromSeconds(30),
                AcceptFrom = Choice(t, k + "accept_from", ["any", "known"]) ?? "any",
                AcceptPrefixes = Prefixes("accept_prefixes"),
            };
            if (d.AcceptFrom == "any" && d.AcceptPrefixes.Count > 0)
                throw Bad(k + "accept_prefixes", "only used with accept_from = \"known\" (with \"any\" every source is accepted)");
            return d;
        }

        private DecentPullConfig Pull(TomlTable t, NodeConfig cfg)
        {
            Allow(t, "decent.pull.", "dns_suffix", "modulus", "hash", "dns_servers", "key", "hash_mask", "lookup_length", "sg_hash", "map_server_port", "min_dns_ttl", "dns_grace");
            var suffix = Str(t, "decent.pull.dns_suffix") ?? throw Bad("decent.pull.dns_suffix", "missing (e.g. \"ms.lispers.net\")");
            var modulus = Int(t, "decent.pull.modulus", 1, 1 << 20) ?? throw Bad("decent.pull.modulus", "missing (every node must use the same modulus)");
            var servers = Endpoints(t, "decent.pull.dns_servers", 53);
            if (servers.Count == 0) throw Bad("decent.pull.dns_servers", "give at least one DNS server as ADDRESS[:PORT]");
            return new DecentPullConfig(suffix, modulus,
                Choice(t, "decent.pull.hash", ["sha256", "hmac-sha256-lisp-decent"]) ?? "sha256",
                servers, Str(t, "decent.pull.key"),
                Int(t, "decent.pull.hash_mask", 0, 1024) ?? 0,
                Int(t, "decent.pull.lookup_length", 0, 128) ?? 0,
                Choice(t, "decent.pull.sg_hash", ["group", "draft", "source"]) ?? "group",
                Int(t, "decent.pull.map_server_port", 1, 65535) ?? cfg.ControlPort,
                Duration(t, "decent.pull.min_dns_ttl", Limits.MinDnsTtl) ?? TimeSpan.FromSeconds(30),
                Duration(t, "decent.pull.dns_grace", Limits.DnsGrace) ?? TimeSpan.FromMinutes(5));
        }

        private DecentPushConfig Push(TomlTable t, NodeConfig cfg)
        {
            Allow(t, "decent.push.", "group", "delivery", "members", "key", "register_interval", "seed_group", "interface", "multicast_ttl", "data_port",
                "membership_refresh");
            var g = Address(Str(t, "decent.push.group") ?? throw Bad("decent.push.group", "missing (the group address naming the mapping system)"), "decent.push.group");
            if (!PushGroup.IsMulticast(g)) throw Bad("decent.push.group", $"{g} is not a multicast address");
            var push = new DecentPushConfig(g,
                Choice(t, "decent.push.delivery", ["replicate", "multicast", "replicate-encapsulated"]) ?? "replicate",
                Endpoints(t, "decent.push.members", cfg.ControlPort),
                Str(t, "decent.push.key"),
                Duration(t, "decent.push.register_interval", Limits.RegisterInterval) ?? cfg.RegisterInterval,
                Str(t, "decent.push.seed_group"),
                Str(t, "decent.push.interface"),
                Int(t, "decent.push.multicast_ttl", 0, 255) ?? 1,
                Int(t, "decent.push.data_port", 1, 65535) ?? DataHeader.Port);
            // Re-resolving the seed group: every register interval unless set; "0" turns it off.
            return Duration(t, "decent.push.membership_refresh", Limits.MembershipRefresh) is { } refresh ? push with { MembershipRefresh = refresh } : push;
        }

        // ---- typed accessors: each names its key in the error ----

        private void Allow(TomlTable t, string prefix, params string[] keys)
        {
            foreach (var k in t.Keys)
            {
                if (!keys.Contains(k)) throw Bad(prefix + k, $"unknown key (allowed here: {string.Join(", ", keys)})");
            }
        }

        private TomlTable? Table(TomlTable t, string key, string? path = null)
        {
            if (!t.TryGetValue(key, out var v)) return null;
            return v as TomlTable ?? throw Bad(path ?? key, "must be a table ([" + (path ?? key) + "])");
        }

        private IEnumerable<(TomlTable, int)> Tables(TomlTable t, string key)
        {
            if (!t.TryGetValue(key, out var v)) return [];
            if (v is TomlTableArray ta) return ta.Select((x, i) => (x, i));
            throw Bad(key, $"must be written as [[{key}]] tables");
        }

        private string? Str(TomlTable t, string path)
        {
            if (!t.TryGetValue(Leaf(path), out var v)) return null;
            return v as string ?? throw Bad(path, $"must be a string, not {Describe(v)}");
        }

        private bool? Bool(TomlTable t, string path)
        {
            if (!t.TryGetValue(Leaf(path), out var v)) return null;
            return v is bool b ? b : throw Bad(path, $"must be true or false, not {Describe(v)}");
        }

        private int? Int(TomlTable t, string path, int min, int max)
        {
            if (!t.TryGetValue(Leaf(path), out var v)) return null;
            if (v is not long l) throw Bad(path, $"must be an integer, not {Describe(v)}");
            if (l < min || l > max) throw Bad(path, $"{l} is out of range {min}..{max}");
            return (int)l;
        }

        private string? Choice(TomlTable t, string path, string[] allowed)
        {
            var s = Str(t, path);
            if (s is null) return null;
            if (!allowed.Contains(s)) throw Bad(path, $"'{s}' is not one of {string.Join(", ", allowed)}");
            return s;
        }

        private AuthAlgorithm? Algorithm(TomlTable t, string path) => Choice(t, path, ["hmac-sha1", "hmac-sha256", "hmac-sha1-96", "hmac-sha256-128"]) switch
        {
            null => null,
            "hmac-sha1" or "hmac-sha1-96" => AuthAlgorithm.HmacSha1_96,
            _ => AuthAlgorithm.HmacSha256_128,
        };

        private List<string> StrList(TomlTable t, string path)
        {
            if (!t.TryGetValue(Leaf(path), out var v)) return [];
            if (v is string one) return [one];
            if (v is not TomlArray a) throw Bad(path, $"must be a list of strings, not {Describe(v)}");
            var list = new List<string>();
            int i = 0;
            foreach (var x in a)
            {
                list.Add(x as string ?? throw Bad($"{path}[{i}]", $"must be a string, not {Describe(x)}"));
                i++;
            }
            return list;
        }

        private List<IPAddress> Addresses(TomlTable t, string path) =>
            StrList(t, path).Select((s, i) => Address(s, $"{path}[{i}]")).ToList();

        private List<IPEndPoint> Endpoints(TomlTable t, string path, int defaultPort) =>
            StrList(t, path).Select((s, i) => Endpoint(s, $"{path}[{i}]", defaultPort)).ToList();

        private IPAddress Address(string s, string path) =>
            IPAddress.TryParse(s, out var a) && (s.Contains(':') || s.Count(c => c == '.') == 3) ? a : throw Bad(path, $"'{s}' is not an IPv4 or IPv6 address");

        private IPEndPoint Endpoint(string s, string path, int defaultPort) =>
            TryEndpoint(s, defaultPort, out var ep) ? ep : throw Bad(path, $"'{s}' is not ADDRESS or ADDRESS:PORT ([v6]:port for IPv6)");

        private EidPrefix Eid(string s, string path) =>
            EidPrefix.TryParse(s, out var p, out var err) ? p! : throw Bad(path, err ?? "not an EID");

        private TimeSpan? Duration(TomlTable t, string path, DurationLimit limit)
        {
            if (!t.TryGetValue(Leaf(path), out var v)) return null;
            double seconds;
            if (v is long l) seconds = l;
            else if (v is not string s || !TryDurationSeconds(s, out seconds))
                throw Bad(path, $"must be a duration like \"60s\", \"3m\", \"500ms\", \"1h\" or a whole number of seconds, not {Describe(v)}");
            if (seconds == 0 && limit.ZeroMeans is not null) return TimeSpan.Zero;
            if (seconds < limit.Min.TotalSeconds || seconds > limit.Max.TotalSeconds)
            {
                string range = $"{Human(limit.Min)} .. {Human(limit.Max)}";
                string allowed = limit.ZeroMeans is { } z ? $"0 ({z}) or {range}" : range;
                throw Bad(path, $"{Describe(v)} is outside {allowed}{(seconds == 0 && limit.WhyNotZero is { } why ? $"; 0 would {why}" : "")}");
            }
            if (limit.WholeSeconds && seconds != Math.Floor(seconds)) throw Bad(path, $"{Describe(v)} is not a whole number of seconds (TTLs are sent in minutes or seconds)");
            return TimeSpan.FromSeconds(seconds);
        }

        /// <summary>Refuses a control character (below U+0020, or U+007F) in any key or string value, naming where it is.</summary>
        public void NoControlCharacters(object? value, string path)
        {
            switch (value)
            {
                case string s:
                    int i = s.AsSpan().IndexOfAnyInRange('\0', '\u001f') is var lo and >= 0 ? lo : s.IndexOf('\u007f', StringComparison.Ordinal);
                    if (i >= 0) throw Bad(path, $"contains the control character U+{(int)s[i]:X4} at position {i + 1}; control characters are not allowed in strings");
                    break;
                case TomlTable table:
                    foreach (var (k, v) in table)
                    {
                        string p = path.Length == 0 ? k : $"{path}.{k}";
                        NoControlCharacters(k, p);
                        NoControlCharacters(v, p);
                    }
                    break;
                case TomlTableArray tables:
                    int ti = 0;
                    foreach (var x in tables) NoControlCharacters(x, $"{path}[{ti++}]");
                    break;
                case TomlArray array:
                    int ai = 0;
                    foreach (var x in array) NoControlCharacters(x, $"{path}[{ai++}]");
                    break;
            }
        }

        /// <summary>
        /// [management] listen: one IPv4 address and a port. The management API is served by the managed HttpListener,
        /// which binds a prefix's literal address and answers only requests addressed to it; it cannot bind IPv6
        /// literals or 0.0.0.0, so those are refused here rather than at start.
        /// </summary>
        private IPEndPoint ManagementEndpoint(string l)
        {
            const string key = "management.listen";
            if (!IPEndPoint.TryParse(l, out var ep) || ep.Port == 0 || (ep.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork && l.Count(c => c == '.') != 3))
                throw Bad(key, $"'{l}' is not ADDRESS:PORT (e.g. \"127.0.0.1:8080\")");
            if (ep.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6)
                throw Bad(key, $"'{l}' is an IPv6 address; the management API listens on one IPv4 address of this host (e.g. \"127.0.0.1:{ep.Port}\")");
            if (ep.Address.Equals(IPAddress.Any))
                throw Bad(key, $"'{l}' is the wildcard address; the management API listens on one IPv4 address of this host and answers only requests addressed to it (e.g. \"127.0.0.1:{ep.Port}\" or the node's RLOC)");
            var b = ep.Address.GetAddressBytes();
            if (b[0] >= 224 || ep.Address.Equals(IPAddress.Broadcast))
                throw Bad(key, $"'{l}' is a multicast or broadcast address; give one IPv4 address of this host (e.g. \"127.0.0.1:{ep.Port}\")");
            return ep;
        }

        private static string Leaf(string path) => path[(path.LastIndexOf('.') + 1)..];

        private static string Describe(object? v) => v switch
        {
            null => "nothing",
            string s => $"the string \"{s}\"",
            long l => $"the number {l}",
            double d => $"the number {d.ToString(CultureInfo.InvariantCulture)}",
            bool b => b ? "true" : "false",
            TomlTable => "a table",
            TomlArray => "a list",
            _ => v.GetType().Name,
        };
    }

    /// <summary>
    /// "ADDRESS" (port <paramref name="defaultPort"/>), "ADDRESS:PORT" or "[v6]:PORT"; a bare IPv4 address needs all
    /// four parts, and an explicit port must not be 0.
    /// </summary>
    public static bool TryEndpoint(string s, int defaultPort, out IPEndPoint endPoint)
    {
        if (IPAddress.TryParse(s, out var a) && !s.StartsWith('[') && (s.Contains(':') || s.Count(c => c == '.') == 3))
        {
            endPoint = new IPEndPoint(a, defaultPort);
            return true;
        }
        if (IPEndPoint.TryParse(s, out var ep) && ep.Port != 0)
        {
            endPoint = ep;
            return true;
        }
        endPoint = null!;
        return false;
    }

    /// <summary>
    /// A duration: a decimal number (digits, optionally a point and more digits; no sign, exponent, NaN or infinity)
    /// followed by ms, s, m or h. False for anything else, and for a value too large for a <see cref="TimeSpan"/>.
    /// </summary>
    public static bool TryDuration(string s, out TimeSpan d)
    {
        d = default;
        if (!TryDurationSeconds(s, out double seconds) || seconds >= MaxDurationSeconds) return false;
        d = TimeSpan.FromSeconds(seconds);
        return true;
    }

    /// <summary>Well below TimeSpan.MaxValue (about 29,000 years), so TimeSpan.FromSeconds never overflows.</summary>
    private const double MaxDurationSeconds = 1e11;

    /// <summary>The seconds of a duration string (see <see cref="TryDuration"/>); may be huge, never NaN or infinite.</summary>
    internal static bool TryDurationSeconds(string s, out double seconds)
    {
        seconds = 0;
        var m = DurationRegex().Match(s.Trim());
        if (!m.Success) return false;
        if (!double.TryParse(m.Groups["n"].Value, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double n) || !double.IsFinite(n)) return false;
        seconds = n * m.Groups["u"].Value switch { "ms" => 0.001, "s" => 1, "m" => 60, _ => 3600 };
        return double.IsFinite(seconds);
    }

    [GeneratedRegex(@"^(?<n>[0-9]+(\.[0-9]+)?)(?<u>ms|s|m|h)$", RegexOptions.CultureInvariant)]
    private static partial Regex DurationRegex();

    /// <summary>A duration in the largest unit that shows it whole: "100 ms", "1 s", "10 min", "24 h", "365 d".</summary>
    internal static string Human(TimeSpan t) =>
        t.TotalDays >= 2 && t.TotalDays == Math.Floor(t.TotalDays) ? $"{t.TotalDays:0} d"
        : t.TotalHours >= 1 && t.TotalHours == Math.Floor(t.TotalHours) ? $"{t.TotalHours:0} h"
        : t.TotalMinutes >= 1 && t.TotalMinutes == Math.Floor(t.TotalMinutes) ? $"{t.TotalMinutes:0} min"
        : t.TotalSeconds >= 1 ? $"{t.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture)} s"
        : $"{t.TotalMilliseconds.ToString("0.###", CultureInfo.InvariantCulture)} ms";
}

/// <summary>
/// The accepted range of a duration key. <see cref="ZeroMeans"/>: 0 is accepted and means this (e.g. "off");
/// otherwise 0 is below <see cref="Min"/> and <see cref="WhyNotZero"/> says what it would do.
/// </summary>
public sealed record DurationLimit(TimeSpan Min, TimeSpan Max, string? ZeroMeans = null, string? WhyNotZero = null, bool WholeSeconds = false);

/// <summary>Every duration key's range (README "Configuration", "Durations and their limits").</summary>
public static class Limits
{
    private static TimeSpan S(double s) => TimeSpan.FromSeconds(s);
    private static readonly TimeSpan Day = TimeSpan.FromDays(1);

    /// <summary>[etr] register_interval, [decent.push] register_interval: Map-Register period.</summary>
    public static readonly DurationLimit RegisterInterval = new(S(1), Day, WhyNotZero: "send Map-Registers in a busy loop");
    /// <summary>[etr] record_ttl, [map_server] map_reply_ttl: TTL of registered / replied mappings.</summary>
    public static readonly DurationLimit Ttl = new(S(1), TimeSpan.FromDays(365), WhyNotZero: "make every record a withdrawal (TTL 0)", WholeSeconds: true);
    /// <summary>[etr] glean_ttl.</summary>
    public static readonly DurationLimit GleanTtl = new(S(1), TimeSpan.FromHours(1), WhyNotZero: "expire gleaned mappings at once");
    /// <summary>[itr] request_timeout: first Map-Request retransmit (doubles per try).</summary>
    public static readonly DurationLimit RequestTimeout = new(S(0.1), S(60), WhyNotZero: "retransmit Map-Requests in a busy loop");
    /// <summary>[itr] rloc_probe_interval (0: no probing).</summary>
    public static readonly DurationLimit RlocProbeInterval = new(S(1), Day, ZeroMeans: "no RLOC-probing");
    /// <summary>[itr] rloc_probe_timeout.</summary>
    public static readonly DurationLimit RlocProbeTimeout = new(S(0.1), Day, WhyNotZero: "mark every RLOC down at once");
    /// <summary>[map_server] registration_timeout: soft state of a registration not refreshed.</summary>
    public static readonly DurationLimit RegistrationTimeout = new(S(1), TimeSpan.FromDays(7), WhyNotZero: "drop every registration as it arrives");
    /// <summary>[data_plane] hold_time: how long a queued miss waits for its mapping.</summary>
    public static readonly DurationLimit HoldTime = new(S(0.01), S(60), WhyNotZero: "drop every queued packet at once");
    /// <summary>[data_plane] stats_interval (0: counters only at stop).</summary>
    public static readonly DurationLimit StatsInterval = new(S(1), Day, ZeroMeans: "log the counters only at stop");
    /// <summary>[data_plane] echo_nonce_interval, echo_nonce_timeout, echo_nonce_retry.</summary>
    public static readonly DurationLimit EchoNonce = new(S(0.1), TimeSpan.FromHours(1), WhyNotZero: "make echo-nonce a busy loop");
    /// <summary>[decent.pull] min_dns_ttl: floor of a DNS answer's TTL; at most the 10 min ceiling of the DNS cache.</summary>
    public static readonly DurationLimit MinDnsTtl = new(S(1), TimeSpan.FromMinutes(10), WhyNotZero: "re-resolve TTL-0 answers in a busy loop");
    /// <summary>[decent.pull] dns_grace: serve the last answer this long after its TTL while DNS fails (0: not at all).</summary>
    public static readonly DurationLimit DnsGrace = new(S(1), Day, ZeroMeans: "no grace");
    /// <summary>[decent.push] membership_refresh (0: never re-resolve the seed group).</summary>
    public static readonly DurationLimit MembershipRefresh = new(S(1), Day, ZeroMeans: "never re-resolve the seed group");
    /// <summary>[itr] max_ttl: ceiling on a map-cache entry's TTL (a longer record TTL is installed capped).</summary>
    public static readonly DurationLimit ItrMaxTtl = new(S(1), TimeSpan.FromDays(365), WhyNotZero: "expire every map-cache entry at once");
    /// <summary>[management] header_timeout: a request's head and body must arrive within it.</summary>
    public static readonly DurationLimit ManagementHeaderTimeout = new(S(0.1), S(300), WhyNotZero: "close every connection before its request arrives");
    /// <summary>[management] idle_timeout: an idle or kept-alive connection is closed after it.</summary>
    public static readonly DurationLimit ManagementIdleTimeout = new(S(0.1), TimeSpan.FromHours(1), WhyNotZero: "close every connection at once");
}
