namespace Lisp.Appliance.Tests.Support;

/// <summary>
/// The one place that writes the `lisp-decent run` config of the map-server + ETR topologies the process tests
/// start: a map-server/map-resolver with its sites, and ETRs registering their database with it. Every node
/// listens on one address with control_port = {PORT}, which <see cref="Topology.StartNode"/> substitutes.
/// </summary>
public static class NodeToml
{
    /// <summary>A [[site]]; accept_more_specifics = true unless told otherwise.</summary>
    public sealed record Site(string Name, string Key, params string[] EidPrefixes)
    {
        public bool AcceptMoreSpecifics { get; init; } = true;
    }

    /// <summary>An RLOC of a [[database]] mapping: a bare address, or an inline table when a priority/weight is given.</summary>
    public sealed record Rloc(string Address, int? Priority = null, int? Weight = null)
    {
        public override string ToString() => Priority is null && Weight is null
            ? Q(Address)
            : "{ " + string.Join(", ", new[] { $"address = {Q(Address)}", Priority is { } p ? $"priority = {p}" : null, Weight is { } w ? $"weight = {w}" : null }.OfType<string>()) + " }";
    }

    /// <summary>A [[database]] mapping; with no RLOCs it uses the node's.</summary>
    public sealed record Mapping(string Eid, params Rloc[] Rlocs);

    /// <summary>roles = ["map-server", "map-resolver"] on <paramref name="address"/>.</summary>
    /// <param name="registrationTimeout">[map_server] registration_timeout, e.g. "5s"</param>
    /// <param name="maxRegistrations">[map_server] max_registrations</param>
    /// <param name="controlThreads">[node] control_threads</param>
    /// <param name="management">[management] listen, "ADDRESS:PORT"</param>
    public static string MapServer(string name, string address, Site[] sites, string? registrationTimeout = null, int? maxRegistrations = null,
        int? controlThreads = null, string? management = null)
    {
        var node = Lines("[node]", $"name = {Q(name)}", """roles = ["map-server", "map-resolver"]""", $"listen = [{Q(address)}]", "control_port = {PORT}",
            controlThreads is { } n ? $"control_threads = {n}" : null);
        var mapServer = registrationTimeout is null && maxRegistrations is null ? null : Lines("[map_server]",
            registrationTimeout is null ? null : $"registration_timeout = {Q(registrationTimeout)}",
            maxRegistrations is { } max ? $"max_registrations = {max}" : null);
        var siteTables = sites.Select(s => Lines("[[site]]", $"name = {Q(s.Name)}", $"key = {Q(s.Key)}", $"eid_prefixes = [{string.Join(", ", s.EidPrefixes.Select(Q))}]",
            s.AcceptMoreSpecifics ? "accept_more_specifics = true" : null));
        var mgmt = management is null ? null : Lines("[management]", $"listen = {Q(management)}");
        return Sections([node, mapServer, .. siteTables, mgmt]);
    }

    /// <summary>roles = ["etr"] on <paramref name="address"/>, registering <paramref name="database"/> with <paramref name="mapServer"/>.</summary>
    /// <param name="algorithm">[mapping] algorithm, e.g. "hmac-sha256"; left out (the default) when null</param>
    /// <param name="recordTtl">[etr] record_ttl, e.g. "3s"</param>
    /// <param name="nodeRlocs">whether [node] rlocs = [ADDRESS] (without it every mapping needs its own RLOCs)</param>
    public static string Etr(string name, string address, string mapServer, string key, Mapping[] database, string? algorithm = null,
        string registerInterval = "1s", string? recordTtl = null, bool nodeRlocs = true)
    {
        var node = Lines("[node]", $"name = {Q(name)}", """roles = ["etr"]""", $"listen = [{Q(address)}]", nodeRlocs ? $"rlocs = [{Q(address)}]" : null, "control_port = {PORT}");
        var mapping = Lines("[mapping]", $"map_servers = [{Q(mapServer)}]", $"key = {Q(key)}", algorithm is null ? null : $"algorithm = {Q(algorithm)}");
        var etr = Lines("[etr]", $"register_interval = {Q(registerInterval)}", recordTtl is null ? null : $"record_ttl = {Q(recordTtl)}");
        var mappings = database.Select(d => Lines("[[database]]", $"eid = {Q(d.Eid)}", d.Rlocs.Length == 0 ? null : $"rlocs = [{string.Join(", ", d.Rlocs)}]"));
        return Sections([node, mapping, etr, .. mappings]);
    }

    private static string Lines(params string?[] lines) => string.Join("\n", lines.OfType<string>());

    private static string Sections(string?[] sections) => string.Join("\n\n", sections.OfType<string>());

    /// <summary>A TOML basic string.</summary>
    private static string Q(string s) => "\"" + s.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"";
}
