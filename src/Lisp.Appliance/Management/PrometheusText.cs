using System.Globalization;
using System.Text;

namespace Lisp.Appliance.Management;

/// <summary>
/// GET /metrics: the counters in the Prometheus text exposition format (version 0.0.4): a HELP and TYPE line
/// per metric family, then one sample per line, `name{label="value",...} number`.
/// </summary>
public static class PrometheusText
{
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    /// <summary>
    /// Per-RLOC series (…_rloc_up, …_rtt_seconds) at most per mechanism, down RLOCs first, then by address: a
    /// map-cache of thousands of RLOCs must not turn one scrape into thousands of series. The per-state counts
    /// (…_rlocs{state}) are exact.
    /// </summary>
    public const int MaxRlocSeries = 256;

    public static string Format(StatusView status, CountersView counters)
    {
        var w = new Writer();
        w.Family("lisp_up", "gauge", "1 while the appliance runs.");
        w.Sample("lisp_up", 1, ("node", status.Name));
        w.Family("lisp_uptime_seconds", "gauge", "Seconds since the appliance started.");
        w.Sample("lisp_uptime_seconds", status.UptimeSeconds, ("node", status.Name));
        // The runtime's collector: every thread stops during a blocking collection, the control shards too, so its
        // pauses are part of the latency operators see (read straight from the GC, any thread).
        w.Family("lisp_runtime_gc_collections_total", "counter", "Garbage collections by generation (2 includes background ones).");
        for (int g = 0; g <= 2; g++) w.Sample("lisp_runtime_gc_collections_total", GC.CollectionCount(g), ("node", status.Name), ("generation", g.ToString(CultureInfo.InvariantCulture)));
        w.Family("lisp_runtime_gc_pause_seconds_total", "counter", "Time all threads were paused by the garbage collector.");
        w.Sample("lisp_runtime_gc_pause_seconds_total", GC.GetTotalPauseDuration().TotalSeconds, ("node", status.Name));
        w.Family("lisp_runtime_heap_bytes", "gauge", "Managed heap size after the last collection.");
        w.Sample("lisp_runtime_heap_bytes", GC.GetGCMemoryInfo().HeapSizeBytes, ("node", status.Name));
        w.Family("lisp_runtime_allocated_bytes_total", "counter", "Bytes allocated on the managed heap since start.");
        w.Sample("lisp_runtime_allocated_bytes_total", GC.GetTotalAllocatedBytes(), ("node", status.Name));

        w.Family("lisp_control_drops_total", "counter", "Control messages dropped, by reason.");
        foreach (var n in counters.Control)
            foreach (var (k, v) in n.Drops) w.Sample("lisp_control_drops_total", v, ("node", n.Node), ("reason", k));
        w.Family("lisp_control_malformed_total", "counter", "Control messages the codec refused, by kind.");
        foreach (var n in counters.Control)
            foreach (var (k, v) in n.Malformed) w.Sample("lisp_control_malformed_total", v, ("node", n.Node), ("kind", k));
        w.Family("lisp_control_events_total", "counter", "Control-plane events (messages sent and received, registrations, map-cache changes).");
        foreach (var n in counters.Control)
            foreach (var (k, v) in n.Events) w.Sample("lisp_control_events_total", v, ("node", n.Node), ("event", k));
        w.Family("lisp_map_server_registrations", "gauge", "Live registrations in a map-server's site table.");
        foreach (var n in counters.Control) w.Sample("lisp_map_server_registrations", n.Registrations, ("node", n.Node));
        w.Family("lisp_map_cache_entries", "gauge", "Entries in the ITR's map-cache.");
        foreach (var n in counters.Control) w.Sample("lisp_map_cache_entries", n.MapCacheEntries, ("node", n.Node));
        // Limits in force beside what they bound (README "Limits and protections"): only for nodes with the role.
        w.Family("lisp_map_server_max_registrations", "gauge", "[map_server] max_registrations: the registration table's cap.");
        foreach (var n in counters.Control)
            if (n.MaxRegistrations is { } v) w.Sample("lisp_map_server_max_registrations", v, ("node", n.Node));
        w.Family("lisp_map_server_max_registrants_per_eid", "gauge", "[map_server] max_registrants_per_eid.");
        foreach (var n in counters.Control)
            if (n.MaxRegistrantsPerEid is { } v) w.Sample("lisp_map_server_max_registrants_per_eid", v, ("node", n.Node));
        w.Family("lisp_map_server_site_registrations", "gauge", "Live registrations of a site.");
        foreach (var n in counters.Control)
            foreach (var site in n.Sites) w.Sample("lisp_map_server_site_registrations", site.Registrations, ("node", n.Node), ("site", site.Site));
        w.Family("lisp_map_server_site_max_registrations", "gauge", "A site's registration limit: its max_registrations, else its share of the table.");
        foreach (var n in counters.Control)
            foreach (var site in n.Sites) w.Sample("lisp_map_server_site_max_registrations", site.MaxRegistrations, ("node", n.Node), ("site", site.Site));
        w.Family("lisp_map_cache_max_entries", "gauge", "Most entries the ITR's map-cache holds; a Map-Reply or glean past it is not installed.");
        foreach (var n in counters.Control)
            if (n.MaxMapCacheEntries is { } v) w.Sample("lisp_map_cache_max_entries", v, ("node", n.Node));
        w.Family("lisp_control_pending_requests", "gauge", "Map-Requests the ITR has in flight.");
        foreach (var n in counters.Control)
            if (n.PendingRequests is { } v) w.Sample("lisp_control_pending_requests", v, ("node", n.Node));
        w.Family("lisp_control_max_pending_requests", "gauge", "Most Map-Requests in flight; a further one is dropped (reason no-resolver).");
        foreach (var n in counters.Control)
            if (n.MaxPendingRequests is { } v) w.Sample("lisp_control_max_pending_requests", v, ("node", n.Node));
        w.Family("lisp_control_queue_drops_total", "counter", "Control datagrams dropped because the control queue was full.");
        w.Sample("lisp_control_queue_drops_total", counters.QueueDrops, ("node", status.Name));
        w.Family("lisp_control_send_errors_total", "counter", "Control datagrams the kernel refused to send.");
        w.Sample("lisp_control_send_errors_total", counters.SendErrors, ("node", status.Name));
        if (counters.Management is { } m)
        {
            w.Family("lisp_management_connections", "gauge", "Open connections to the management API.");
            w.Sample("lisp_management_connections", m.ActiveConnections, ("node", status.Name));
            w.Family("lisp_management_max_connections", "gauge", "[management] max_connections.");
            w.Sample("lisp_management_max_connections", m.MaxConnections, ("node", status.Name));
            w.Family("lisp_management_events_total", "counter", "Management server: connections accepted and refused (over max_connections), header timeouts, idle keep-alive closes, oversized heads and bodies, bad and unauthorized requests, busy (503), requests.");
            foreach (var (k, v) in m.Events) w.Sample("lisp_management_events_total", v, ("node", status.Name), ("event", k));
            w.Family("lisp_management_snapshots_total", "counter", "Table snapshots the management API took on the control thread.");
            w.Sample("lisp_management_snapshots_total", m.Snapshots, ("node", status.Name));
            w.Family("lisp_management_snapshot_visits_total", "counter", "Control-thread visits the table snapshots took (each reads one bounded slice of a table).");
            w.Sample("lisp_management_snapshot_visits_total", m.SnapshotVisits, ("node", status.Name));
            w.Family("lisp_management_snapshot_read_max_seconds", "gauge", "Longest single control-thread visit of a table snapshot read (one slice).");
            w.Sample("lisp_management_snapshot_read_max_seconds", m.LongestSnapshotReadMs / 1000.0, ("node", status.Name));
        }

        if (counters.Log is { } log)
        {
            w.Family("lisp_log_lines_suppressed_total", "counter", "Log lines over [node] log_rate (per event name per second), summarized as log-suppressed lines.");
            w.Sample("lisp_log_lines_suppressed_total", log.Suppressed, ("node", status.Name));
            w.Family("lisp_log_lines_dropped_total", "counter", "Log lines dropped because the log writer's queue was full.");
            w.Sample("lisp_log_lines_dropped_total", log.Dropped, ("node", status.Name));
            w.Family("lisp_log_rate", "gauge", "[node] log_rate: lines per second per event name (0 = unlimited).");
            w.Sample("lisp_log_rate", log.LinesPerKindPerSecond, ("node", status.Name));
        }

        if (counters.RlocProbing is { } p)
        {
            var node = ("node", p.Node);
            w.Family("lisp_control_rloc_probe_total", "counter", "RLOC-probing (RFC 9301 7.1): probes sent, replies accepted or unexpected, RLOC up/down transitions, probes deferred by the budget, locators past rloc_probe_max_locators.");
            foreach (var (k, v) in new[] { ("sent", p.Sent), ("replies-accepted", p.RepliesAccepted), ("replies-unexpected", p.RepliesUnexpected),
                ("rloc-up", p.RlocUp), ("rloc-down", p.RlocDown), ("deferred", p.Deferred), ("locators-not-probed", p.LocatorsNotProbed) })
            {
                w.Sample("lisp_control_rloc_probe_total", v, node, ("event", k));
            }
            w.Family("lisp_control_rloc_probe_budget", "gauge", "[itr] rloc_probe_budget: most probes per second (0 = no budget).");
            w.Sample("lisp_control_rloc_probe_budget", p.BudgetPerSecond, node);
            w.Family("lisp_control_rloc_probe_max_locators", "gauge", "[itr] rloc_probe_max_locators: locators probed per map-cache entry.");
            w.Sample("lisp_control_rloc_probe_max_locators", p.MaxLocators, node);
            w.Family("lisp_control_rloc_probe_rlocs", "gauge", "RLOCs the ITR probes, by state (unknown, up, down).");
            foreach (var (k, v) in p.States) w.Sample("lisp_control_rloc_probe_rlocs", v, node, ("state", k));
            var shown = Bounded(p.Rlocs, r => r.State == "down");
            w.Family("lisp_control_rloc_probe_rloc_up", "gauge", $"Per probed RLOC: 1 unless RLOC-probing marked it down (at most {MaxRlocSeries} RLOCs, down ones first).");
            foreach (var r in shown) w.Sample("lisp_control_rloc_probe_rloc_up", r.State == "down" ? 0 : 1, node, ("rloc", r.Rloc));
            w.Family("lisp_control_rloc_probe_rtt_seconds", "gauge", "Per probed RLOC: round-trip time of the last answered probe (RLOCs never answered have no sample).");
            foreach (var r in shown)
                if (r.RttMs is { } ms) w.Sample("lisp_control_rloc_probe_rtt_seconds", ms / 1000.0, node, ("rloc", r.Rloc));
        }

        if (counters.DataPlane is { } dp)
        {
            w.Family("lisp_dataplane_packets_total", "counter", "Inner packets encapsulated (encap) or decapsulated (decap), per worker.");
            foreach (var x in dp.Workers)
            {
                w.Sample("lisp_dataplane_packets_total", x.EncapPackets, ("worker", x.Worker), ("direction", "encap"));
                w.Sample("lisp_dataplane_packets_total", x.DecapPackets, ("worker", x.Worker), ("direction", "decap"));
            }
            w.Family("lisp_dataplane_bytes_total", "counter", "Inner bytes encapsulated or decapsulated, per worker.");
            foreach (var x in dp.Workers)
            {
                w.Sample("lisp_dataplane_bytes_total", x.EncapBytes, ("worker", x.Worker), ("direction", "encap"));
                w.Sample("lisp_dataplane_bytes_total", x.DecapBytes, ("worker", x.Worker), ("direction", "decap"));
            }
            w.Family("lisp_dataplane_misses_total", "counter", "Map-cache misses posted to the control plane or refused by the miss queue.");
            foreach (var x in dp.Workers)
            {
                w.Sample("lisp_dataplane_misses_total", x.MissesPosted, ("worker", x.Worker), ("outcome", "posted"));
                w.Sample("lisp_dataplane_misses_total", x.MissesRefused, ("worker", x.Worker), ("outcome", "refused"));
            }
            w.Family("lisp_dataplane_icmp_too_big_total", "counter", "ICMP too-big messages sent back into the TUN.");
            foreach (var x in dp.Workers) w.Sample("lisp_dataplane_icmp_too_big_total", x.IcmpTooBig, ("worker", x.Worker));
            w.Family("lisp_dataplane_fragmented_total", "counter", "Encapsulated packets sent as outer fragments.");
            foreach (var x in dp.Workers) w.Sample("lisp_dataplane_fragmented_total", x.Fragmented, ("worker", x.Worker));
            w.Family("lisp_dataplane_drops_total", "counter", "Data-plane packets dropped, by worker and reason.");
            foreach (var x in dp.Workers)
                foreach (var (k, v) in x.Drops) w.Sample("lisp_dataplane_drops_total", v, ("worker", x.Worker), ("reason", k));
            w.Family("lisp_dataplane_events_total", "counter", "Data-plane feature events (plain control, map-versioning, gleaning, segmentation offloads), by worker and event.");
            foreach (var x in dp.Workers)
                foreach (var (k, v) in x.Events) w.Sample("lisp_dataplane_events_total", v, ("worker", x.Worker), ("event", k));
            if (dp.EchoNonce is { } e)
            {
                w.Family("lisp_dataplane_echo_nonce_total", "counter", "Echo-nonce locator reachability (RFC 9300 10.1): requests, echoes, verdicts.");
                foreach (var (k, v) in new[] { ("requests", e.Requests), ("echoes-received", e.EchoesReceived), ("echoes-sent", e.EchoesSent),
                    ("down", e.Down), ("retries", e.Retries), ("abandoned", e.Abandoned), ("table-full", e.TableFull) })
                {
                    w.Sample("lisp_dataplane_echo_nonce_total", v, ("event", k));
                }
                w.Family("lisp_dataplane_echo_nonce_rlocs", "gauge", "Remote RLOCs echo-nonce tracks, by state (unknown, requesting, up, down).");
                foreach (var state in new[] { "unknown", "requesting", "up", "down" })
                    w.Sample("lisp_dataplane_echo_nonce_rlocs", e.Rlocs.Count(r => r.State == state), ("state", state));
                w.Family("lisp_dataplane_echo_nonce_rloc_up", "gauge", $"Per remote RLOC: 1 unless echo-nonce marked it down (at most {MaxRlocSeries} RLOCs, down ones first).");
                foreach (var r in Bounded(e.Rlocs, r => r.State == "down")) w.Sample("lisp_dataplane_echo_nonce_rloc_up", r.State == "down" ? 0 : 1, ("rloc", r.Rloc));
            }
            w.Family("lisp_dataplane_held_packets", "gauge", "Packets an ITR worker holds waiting for a Map-Reply (miss_policy = \"queue\").");
            foreach (var x in dp.Workers)
                if (x.Worker.StartsWith("itr-", StringComparison.Ordinal)) w.Sample("lisp_dataplane_held_packets", x.HeldPackets, ("worker", x.Worker));
            w.Family("lisp_dataplane_hold_packets", "gauge", "[data_plane] hold_packets: most packets each ITR worker holds; a miss past it is dropped (miss-hold-expired).");
            w.Sample("lisp_dataplane_hold_packets", dp.HoldPackets);
            w.Family("lisp_dataplane_miss_queue_depth", "gauge", "Misses waiting in the queue to the control plane.");
            w.Sample("lisp_dataplane_miss_queue_depth", dp.MissQueue.Depth);
            w.Family("lisp_dataplane_miss_queue_capacity", "gauge", "Capacity of the miss queue.");
            w.Sample("lisp_dataplane_miss_queue_capacity", dp.MissQueue.Capacity);
            w.Family("lisp_dataplane_miss_queue_total", "counter", "Miss queue: posted, refused-full (at capacity), refused-rate (over [data_plane] miss_rate).");
            w.Sample("lisp_dataplane_miss_queue_total", dp.MissQueue.Posted, ("event", "posted"));
            w.Sample("lisp_dataplane_miss_queue_total", dp.MissQueue.RefusedFull, ("event", "refused-full"));
            w.Sample("lisp_dataplane_miss_queue_total", dp.MissQueue.RefusedRate, ("event", "refused-rate"));
            w.Family("lisp_dataplane_tun_total", "counter", "TUN queue losses (device gone), reattaches, failed reattach attempts.");
            foreach (var t in dp.Tuns)
            {
                var q = t.Queue.ToString(CultureInfo.InvariantCulture);
                w.Sample("lisp_dataplane_tun_total", t.Losses, ("tun", t.Name), ("queue", q), ("event", "lost"));
                w.Sample("lisp_dataplane_tun_total", t.Reopens, ("tun", t.Name), ("queue", q), ("event", "reopened"));
                w.Sample("lisp_dataplane_tun_total", t.ReopenFailures, ("tun", t.Name), ("queue", q), ("event", "reopen-failed"));
            }
            w.Family("lisp_dataplane_map_cache_entries", "gauge", "Entries in the data plane's map-cache.");
            w.Sample("lisp_dataplane_map_cache_entries", dp.MapCacheEntries);
        }
        return w.ToString();
    }

    /// <summary>At most <see cref="MaxRlocSeries"/> of <paramref name="rlocs"/>: the down ones first, each group in its given order.</summary>
    private static List<T> Bounded<T>(List<T> rlocs, Func<T, bool> down) =>
        rlocs.Count <= MaxRlocSeries ? rlocs : rlocs.Where(down).Concat(rlocs.Where(r => !down(r))).Take(MaxRlocSeries).ToList();

    /// <summary>A label value with \, " and newline escaped as the format requires.</summary>
    public static string Escape(string value) =>
        value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);

    private sealed class Writer
    {
        private readonly StringBuilder _sb = new();

        public void Family(string name, string type, string help)
        {
            _sb.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n');
            _sb.Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');
        }

        public void Sample(string name, long value, params (string Name, string Value)[] labels) =>
            Sample(name, value.ToString(CultureInfo.InvariantCulture), labels);

        /// <summary>A fractional sample in plain decimal notation (no exponent).</summary>
        public void Sample(string name, double value, params (string Name, string Value)[] labels) =>
            Sample(name, value.ToString("0.#########", CultureInfo.InvariantCulture), labels);

        private void Sample(string name, string value, (string Name, string Value)[] labels)
        {
            _sb.Append(name);
            if (labels.Length > 0)
            {
                _sb.Append('{');
                for (int i = 0; i < labels.Length; i++)
                {
                    if (i > 0) _sb.Append(',');
                    _sb.Append(labels[i].Name).Append("=\"").Append(Escape(labels[i].Value)).Append('"');
                }
                _sb.Append('}');
            }
            _sb.Append(' ').Append(value).Append('\n');
        }

        public override string ToString() => _sb.ToString();
    }
}
