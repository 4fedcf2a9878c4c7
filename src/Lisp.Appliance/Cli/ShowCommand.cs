using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Lisp.Appliance.Management;

namespace Lisp.Appliance.Cli;

/// <summary>`lisp-decent show WHAT`: reads a running node's management API and prints it for an operator.</summary>
public static class ShowCommand
{
    public const string DefaultManagement = "127.0.0.1:8080";
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);

    public const string Help = """
        Usage: lisp-decent show WHAT [--management ADDRESS:PORT] [--json]

        Asks a running node (`lisp-decent run` with [management] listen = "ADDRESS:PORT" in its config) and
        prints what it has:
          status         node name, roles, mapping system, uptime, control and management endpoints
          site-table     each map-server's site table (as lispers.net shows it): EID-prefix, registered,
                         last registerer, first/last registered, flags p-s-i-t-r-m-n (upper case = set:
                         proxy-reply, LISP-SEC, xTR-ID, TTL timeout, refresh, mobile node, want Map-Notify),
                         RLOCs, expiry
          map-cache      the ITR's map-cache: EID-prefix, RLOCs with priority/weight/state, action, TTL left
          registrations  the ETR's registrations: EID-prefix, map-server, last Map-Register sent, last Map-Notify
          counters       control-plane events and drops by reason, data-plane counters per worker (non-zero ones;
                         --json has every counter), and locator reachability: RLOC-probing and echo-nonce
                         counters side by side, one line per RLOC and mechanism (state, RTT or last echo)

        The same data: GET http://ADDRESS:PORT/api/{status,site-table,map-cache,registrations,counters},
        Prometheus metrics at /metrics, a web page at /.

        Options:
          --management ADDRESS:PORT   the node's management API (default 127.0.0.1:8080)
          --token-file FILE           the bearer token, when the node's [management] token_file is set
          --page-rows N               rows per page asked of the node (1..10000, default 10000)
          --json                      print the API's JSON as it is (site-table, map-cache, registrations: the
                                      first page; follow its `next` with ?after=)

        site-table, map-cache and registrations are fetched page by page and printed whole (each page is one
        short visit to the node's control plane).
          -h, --help                  show this help

        Exit status: 0 printed, 1 the node did not answer (or answered with an error), 2 usage error.
        """;

    private static readonly string[] Whats = ["status", "site-table", "map-cache", "registrations", "counters"];

    public static int Run(IReadOnlyList<string> args, TextWriter stdout, TextWriter stderr)
    {
        var cl = CommandLine.Parse(args, ["management", "token-file", "page-rows"], ["json"]);
        if (cl.Has("help"))
        {
            stdout.WriteLine(Help);
            return 0;
        }
        if (cl.Error is not null || cl.Positional.Count != 1 || !Whats.Contains(cl.Positional[0]))
        {
            string why = cl.Error ?? (cl.Positional.Count == 0 ? "say what to show" : cl.Positional.Count > 1 ? $"unexpected argument {cl.Positional[1]}" : $"cannot show '{cl.Positional[0]}'");
            stderr.WriteLine($"show: {why}: one of {string.Join(", ", Whats)} (see lisp-decent show --help)");
            return 2;
        }
        string what = cl.Positional[0];
        string managementText = cl.Value("management") ?? DefaultManagement;
        if (!IPEndPoint.TryParse(managementText, out var management) || management.Port == 0)
        {
            stderr.WriteLine($"show: --management '{managementText}' is not ADDRESS:PORT");
            return 2;
        }

        string? token = null;
        if (cl.Value("token-file") is { } tokenFile)
        {
            try
            {
                token = File.ReadAllText(tokenFile).Trim();
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                stderr.WriteLine($"show: --token-file {tokenFile}: {e.Message}");
                return 2;
            }
        }
        int pageRows = MaxPageRows;
        if (cl.Value("page-rows") is { } pr && (!int.TryParse(pr, NumberStyles.None, CultureInfo.InvariantCulture, out pageRows) || pageRows is < 1 or > MaxPageRows))
        {
            stderr.WriteLine($"show: --page-rows '{pr}' is not a number from 1 to {MaxPageRows}");
            return 2;
        }
        bool paged = what is "site-table" or "map-cache" or "registrations";
        string path = "/api/" + what + (paged ? "?limit=" + pageRows.ToString(CultureInfo.InvariantCulture) : "");
        int status;
        string body;
        try
        {
            (status, body) = ManagementClient.Get(management, path, Timeout, token);
        }
        catch (IOException e)
        {
            stderr.WriteLine($"show: {e.Message} (is the node running with [management] listen = \"{management}\"?)");
            return 1;
        }
        if (status != 200)
        {
            stderr.WriteLine($"show: {management} answered HTTP {status}: {ErrorText(body)}");
            return 1;
        }
        if (cl.Has("json"))
        {
            stdout.WriteLine(body.TrimEnd());
            return 0;
        }
        try
        {
            stdout.Write(what switch
            {
                "status" => FormatStatus(Parse(body, ManagementJsonContext.Default.StatusView)),
                "site-table" => FormatSiteTable(AllPages(Parse(body, ManagementJsonContext.Default.SiteTableView), v => v.Next, AppendSiteRows,
                    management, path, token, ManagementJsonContext.Default.SiteTableView)),
                "map-cache" => FormatMapCache(AllPages(Parse(body, ManagementJsonContext.Default.MapCacheView), v => v.Next,
                    (v, more) => v.Entries.AddRange(more.Entries), management, path, token, ManagementJsonContext.Default.MapCacheView), DateTimeOffset.UtcNow),
                "registrations" => FormatRegistrations(AllPages(Parse(body, ManagementJsonContext.Default.RegistrationsView), v => v.Next,
                    (v, more) => v.Registrations.AddRange(more.Registrations), management, path, token, ManagementJsonContext.Default.RegistrationsView), DateTimeOffset.UtcNow),
                _ => FormatCounters(Parse(body, ManagementJsonContext.Default.CountersView)),
            });
        }
        catch (JsonException e)
        {
            stderr.WriteLine($"show: {management} answered something that is not the {what} API: {e.Message}");
            return 1;
        }
        catch (IOException e)
        {
            stderr.WriteLine($"show: {e.Message}");
            return 1;
        }
        return 0;
    }

    /// <summary>Rows per page asked for by default (the API's maximum).</summary>
    private const int MaxPageRows = 10_000;

    // A site-table page holds each map-server's rows of that page: append them to the same map-server's.
    private static void AppendSiteRows(SiteTableView v, SiteTableView more)
    {
        foreach (var m in more.MapServers)
        {
            var into = v.MapServers.FirstOrDefault(x => x.Node == m.Node);
            if (into is null) v.MapServers.Add(m);
            else into.Rows.AddRange(m.Rows);
        }
    }
    /// <summary>At most this many pages are followed (10M rows), so a table that keeps changing cannot keep `show` going.</summary>
    private const int MaxPages = 1000;

    /// <summary>Follows the `next` cursors of a paged view, appending each page's rows to the first.</summary>
    private static T AllPages<T>(T first, Func<T, string?> next, Action<T, T> append, IPEndPoint management, string path, string? token, JsonTypeInfo<T> type)
    {
        var cursor = next(first);
        for (int page = 1; cursor is not null && page < MaxPages; page++)
        {
            var (status, body) = ManagementClient.Get(management, path + "&after=" + Uri.EscapeDataString(cursor), Timeout, token);
            if (status != 200) throw new IOException($"{management} answered HTTP {status} for a later page: {ErrorText(body)}");
            var more = Parse(body, type);
            append(first, more);
            cursor = next(more);
        }
        return first;
    }

    private static T Parse<T>(string body, JsonTypeInfo<T> type) => JsonSerializer.Deserialize(body, type) ?? throw new JsonException("null document");

    private static string ErrorText(string body)
    {
        try
        {
            return JsonSerializer.Deserialize(body, ManagementJsonContext.Default.ErrorView)?.Error ?? body;
        }
        catch (JsonException)
        {
            return body.Length > 200 ? body[..200] : body;
        }
    }

    public static string FormatStatus(StatusView s)
    {
        var sb = new StringBuilder();
        void Line(string k, string v) => sb.Append(CultureInfo.InvariantCulture, $"{k,-16}{v}\n");
        Line("Node", s.Name);
        Line("Version", s.Version);
        Line("Roles", string.Join(", ", s.Roles));
        Line("Mapping system", s.MappingSystem);
        Line("Uptime", $"{Duration(s.UptimeSeconds)} (since {Time(s.StartedAt)})");
        Line("Control", string.Join(", ", s.ControlEndpoints));
        Line("Management", s.Management);
        if (s.Nodes.Count > 1) Line("Nodes", string.Join("; ", s.Nodes));
        Line("Data plane", s.DataPlane is { } d ? $"tun {d.Tun}, instance-id {d.InstanceId}, {d.Workers} worker(s), data port {d.DataPort}" : "none");
        if (s.DataPlane is { } o)
        {
            Line("Offloads", o.Offloads);
            foreach (var note in o.OffloadNotes) Line("", note);
        }
        var r = s.Reachability;
        Line("Reachability", string.Join("; ",
            r.RlocProbeIntervalSeconds is { } pi ? $"rloc-probing every {Seconds(pi)} (timeout {Seconds(r.RlocProbeTimeoutSeconds ?? 0)})" : "rloc-probing off",
            r.EchoNonceIntervalSeconds is { } ei ? $"echo-nonce every {Seconds(ei)} (timeout {Seconds(r.EchoNonceTimeoutSeconds ?? 0)})" : "echo-nonce off"));
        return sb.ToString();
    }

    public static string FormatSiteTable(SiteTableView v)
    {
        if (v.MapServers.Count == 0) return "This node has no map-server role.\n";
        var sb = new StringBuilder();
        foreach (var m in v.MapServers)
        {
            if (sb.Length > 0) sb.Append('\n');
            sb.Append(CultureInfo.InvariantCulture, $"Map-server {m.Node} ({string.Join(", ", m.Endpoints)}): {m.Rows.Count(r => r.Registered)} of {m.Rows.Count} EID-prefixes registered\n");
            if (m.Total > m.Rows.Count)
                sb.Append(CultureInfo.InvariantCulture, $"(the first {m.Rows.Count} of {m.Total} rows; the rest: GET /api/site-table?after=NEXT, NEXT from the JSON)\n");
            var t = new TextTable("Site", "EID-prefix", "Registered", "Last registerer", "First registered", "Last registered", "Flags", "RLOCs", "Expires");
            foreach (var r in m.Rows)
            {
                t.Add(r.Site, r.Eid, r.Registered ? "yes" : "no", r.LastRegisterer ?? "--", Time(r.FirstRegistered), Time(r.LastRegistered), r.Flags,
                    r.Rlocs.Count == 0 ? "--" : string.Join(", ", r.Rlocs.Select(Rloc)), Time(r.Expires));
            }
            sb.Append(t);
        }
        return sb.ToString();
    }

    public static string FormatMapCache(MapCacheView v, DateTimeOffset now)
    {
        if (!v.Itr) return "This node has no itr role.\n";
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"Map-cache: {v.Entries.Count} entries, {v.Outstanding} Map-Request(s) outstanding\n");
        var t = new TextTable("EID-prefix", "RLOCs", "Action", "TTL", "TTL left", "Learned from");
        foreach (var e in v.Entries)
        {
            t.Add(e.Eid, e.Negative ? "(negative)" : string.Join(", ", e.Rlocs.Select(Rloc)), e.Action, Duration(e.TtlSeconds), Duration(e.TtlLeftSeconds), e.LearnedFrom ?? "--");
        }
        sb.Append(t);
        return sb.ToString();
    }

    public static string FormatRegistrations(RegistrationsView v, DateTimeOffset now)
    {
        if (!v.Etr) return "This node has no etr role.\n";
        var t = new TextTable("EID-prefix", "Map-server", "Last Map-Register sent", "Last Map-Notify");
        foreach (var r in v.Registrations)
        {
            t.Add(r.Eid, r.MapServer, $"{Time(r.LastSent)} ({Ago(now - r.LastSent)})", r.LastNotified is { } n ? $"{Time(n)} ({Ago(now - n)})" : "never");
        }
        return t.ToString();
    }

    public static string FormatCounters(CountersView v, DateTimeOffset? now = null)
    {
        var sb = new StringBuilder();
        foreach (var n in v.Control)
        {
            sb.Append(CultureInfo.InvariantCulture, $"Control node {n.Node}: {n.Registrations} registration(s), {n.MapCacheEntries} map-cache entries\n");
            var t = new TextTable("Kind", "Counter", "Value");
            foreach (var (k, x) in n.Events.Where(p => p.Value != 0)) t.Add("event", k, Num(x));
            foreach (var (k, x) in n.Drops.Where(p => p.Value != 0)) t.Add("drop", k, Num(x));
            foreach (var (k, x) in n.Malformed.Where(p => p.Value != 0)) t.Add("malformed", k, Num(x));
            if (t.Count == 0) sb.Append("  (all counters 0)\n");
            else sb.Append(t);
            if (!n.Drops.Values.Any(x => x != 0)) sb.Append("  no drops\n");
            sb.Append('\n');
        }
        sb.Append(CultureInfo.InvariantCulture, $"Control queue drops {Num(v.QueueDrops)}, send errors {Num(v.SendErrors)}\n");
        if (v.DataPlane is { } dp)
        {
            sb.Append(CultureInfo.InvariantCulture, $"\nData plane: {dp.MapCacheEntries} map-cache entries\n");
            var t = new TextTable("Worker", "Encap pkts", "Encap bytes", "Decap pkts", "Decap bytes", "Misses", "Refused", "Too-big", "Fragmented", "Drops");
            foreach (var w in dp.Workers.Append(dp.Total))
            {
                var drops = w.Drops.Where(p => p.Value != 0).Select(p => $"{p.Key}={Num(p.Value)}").ToList();
                t.Add(w.Worker, Num(w.EncapPackets), Num(w.EncapBytes), Num(w.DecapPackets), Num(w.DecapBytes), Num(w.MissesPosted), Num(w.MissesRefused),
                    Num(w.IcmpTooBig), Num(w.Fragmented), drops.Count == 0 ? "none" : string.Join(", ", drops));
            }
            sb.Append(t);
            var events = dp.Total.Events.Where(p => p.Value != 0).Select(p => $"{p.Key}={Num(p.Value)}").ToList();
            if (events.Count > 0) sb.Append(CultureInfo.InvariantCulture, $"Data-plane events: {string.Join(", ", events)}\n");
        }
        else
        {
            sb.Append("Data plane: not running\n");
        }
        sb.Append('\n').Append(FormatReachability(v.RlocProbing, v.DataPlane, now ?? DateTimeOffset.UtcNow));
        return sb.ToString();
    }

    /// <summary>
    /// Both locator-reachability mechanisms side by side: RLOC-probing (control plane, [itr] rloc_probe_interval)
    /// and echo-nonce (data plane, [data_plane] echo_nonce), their counters, then one line per RLOC and mechanism.
    /// </summary>
    public static string FormatReachability(RlocProbingView? probing, DataPlaneCountersView? dataPlane, DateTimeOffset now)
    {
        var sb = new StringBuilder("Reachability:\n");
        var rows = new TextTable("RLOC", "State", "Mechanism", "RTT / last echo", "Detail");
        if (probing is null) sb.Append("  RLOC-probing: no itr role\n");
        else if (!probing.Enabled) sb.Append(CultureInfo.InvariantCulture, $"  RLOC-probing: off ([itr] rloc_probe_interval = 0; node {probing.Node})\n");
        else
        {
            sb.Append(CultureInfo.InvariantCulture, $"  RLOC-probing: every {Seconds(probing.IntervalSeconds)}, timeout {Seconds(probing.TimeoutSeconds)} (node {probing.Node}): ");
            sb.Append(CultureInfo.InvariantCulture, $"probes sent {Num(probing.Sent)}, replies accepted {Num(probing.RepliesAccepted)}, unexpected {Num(probing.RepliesUnexpected)}, ");
            sb.Append(CultureInfo.InvariantCulture, $"rloc-up {Num(probing.RlocUp)}, rloc-down {Num(probing.RlocDown)}; RLOCs {States(probing.States)}\n");
            foreach (var r in probing.Rlocs)
            {
                string reply = r.LastReply is { } lr ? $"last reply {Ago(now - lr)}" : "no reply yet";
                string next = r.NextProbe > now ? $"next probe in {Duration((long)Math.Ceiling((r.NextProbe - now).TotalSeconds))}" : "probe due";
                rows.Add(r.Rloc, r.State, "rloc-probing", r.RttMs is { } ms ? $"rtt {ms.ToString("0.###", CultureInfo.InvariantCulture)} ms" : "--",
                    $"{reply}, {next}, {r.Entries} entr{(r.Entries == 1 ? "y" : "ies")}");
            }
            if (probing.Rlocs.Count < probing.States.Values.Sum())
                sb.Append(CultureInfo.InvariantCulture, $"  (the first {probing.Rlocs.Count} of {probing.States.Values.Sum()} probed RLOCs are listed)\n");
        }
        if (dataPlane is null) sb.Append("  Echo-nonce: off (no data plane)\n");
        else if (dataPlane.EchoNonce is not { } e) sb.Append("  Echo-nonce: off ([data_plane] echo_nonce = false)\n");
        else
        {
            var states = new Dictionary<string, int>();
            foreach (var r in e.Rlocs) states[r.State] = states.GetValueOrDefault(r.State) + 1;
            sb.Append(CultureInfo.InvariantCulture, $"  Echo-nonce: requests {Num(e.Requests)}, echoes received {Num(e.EchoesReceived)}, echoes sent {Num(e.EchoesSent)}, down {Num(e.Down)}, ");
            sb.Append(CultureInfo.InvariantCulture, $"retries {Num(e.Retries)}, abandoned {Num(e.Abandoned)}, table full {Num(e.TableFull)}; RLOCs {States(states)}\n");
            foreach (var x in e.Rlocs)
            {
                rows.Add(x.Rloc, x.State, "echo-nonce", x.SecondsSinceEcho is { } s ? $"echo {s.ToString("0.#", CultureInfo.InvariantCulture)} s ago" : "no echo yet",
                    $"requests {Num(x.Requests)}, echoes in {Num(x.EchoesReceived)}, echoes out {Num(x.EchoesSent)}, down {Num(x.Down)}");
            }
        }
        if (rows.Count > 0) sb.Append(rows);
        return sb.ToString();
    }

    private static string States(IReadOnlyDictionary<string, int> states)
    {
        int all = states.Values.Sum();
        if (all == 0) return "none";
        return $"{all} ({string.Join(", ", states.Where(p => p.Value != 0).Select(p => $"{p.Value} {p.Key}"))})";
    }

    private static string Seconds(double s) => s.ToString("0.###", CultureInfo.InvariantCulture) + " s";

    private static string Rloc(RlocView r) => $"{r.Address} p{r.Priority} w{r.Weight} {(r.Reachable ? "up" : "down")}";

    private static string Num(long x) => x.ToString(CultureInfo.InvariantCulture);

    private static string Time(DateTimeOffset? t) => t?.ToUniversalTime().ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture) ?? "--";

    private static string Ago(TimeSpan t) => t < TimeSpan.Zero ? "just now" : Duration((long)t.TotalSeconds) + " ago";

    /// <summary>lispers.net-like durations: "45s", "3m12s", "2h05m", "3d04h".</summary>
    public static string Duration(long seconds)
    {
        if (seconds < 0) seconds = 0;
        if (seconds < 60) return $"{seconds}s";
        if (seconds < 3600) return $"{seconds / 60}m{seconds % 60:00}s";
        if (seconds < 86400) return $"{seconds / 3600}h{seconds % 3600 / 60:00}m";
        return $"{seconds / 86400}d{seconds % 86400 / 3600:00}h";
    }

    /// <summary>Left-aligned columns two spaces apart, sized to the widest cell.</summary>
    private sealed class TextTable(params string[] headers)
    {
        private readonly List<string[]> _rows = [];

        public int Count => _rows.Count;

        public void Add(params string[] cells) => _rows.Add(cells);

        public override string ToString()
        {
            var widths = headers.Select((h, i) => Math.Max(h.Length, _rows.Count == 0 ? 0 : _rows.Max(r => r[i].Length))).ToArray();
            var sb = new StringBuilder();
            void Row(string[] cells)
            {
                var line = new StringBuilder("  ");
                for (int i = 0; i < cells.Length; i++) line.Append(i == cells.Length - 1 ? cells[i] : cells[i].PadRight(widths[i] + 2));
                sb.Append(line.ToString().TrimEnd()).Append('\n');
            }
            Row(headers);
            foreach (var r in _rows) Row(r);
            return sb.ToString();
        }
    }
}
