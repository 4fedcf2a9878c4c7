using System.Text;
using Lisp.Appliance.Hosting;
using Lisp.ControlPlane;
using Lisp.DataPlane;
using Lisp.Wire;

namespace Lisp.Appliance.Management;

/// <summary>
/// Builds the management views from role state. The Control* methods read role state and must run on the
/// control thread (through <see cref="NodeHost.QueryAsync"/>); what they return is a detached copy. The big
/// tables are paged from published snapshots (<see cref="TablePages"/>).
/// </summary>
public static class Snapshots
{
    /// <summary>A map-cache entry's view (any thread: the entry is an immutable record).</summary>
    public static MapCacheEntryView Entry(MapCacheEntry e, DateTimeOffset now) => new()
    {
        Eid = e.Eid.ToString(),
        Negative = e.IsNegative,
        Action = Kebab(e.Action.ToString()),
        Rlocs = Rlocs(e.Locators),
        TtlSeconds = (long)e.Ttl.TotalSeconds,
        TtlLeftSeconds = Math.Max(0, (long)Math.Ceiling((e.ExpiresAt - now).TotalSeconds)),
        InstalledAt = e.InstalledAt,
        ExpiresAt = e.ExpiresAt,
        LearnedFrom = e.LearnedFrom?.ToString(),
        Authoritative = e.Authoritative,
    };

    /// <summary>Control-plane counters and gauges of every node (the counters themselves are thread-safe; the gauges are not).</summary>
    public static List<NodeCountersView> ControlCounters(ControlNodeSet nodes, DateTimeOffset now)
    {
        var list = new List<NodeCountersView>();
        foreach (var (node, _) in nodes.All)
        {
            var c = node.Counters;
            var ms = node.MapServer;
            var itr = node.Itr;
            var view = new NodeCountersView
            {
                Node = node.Options.Name,
                Registrations = ms?.RegistrationCount ?? 0,
                MapCacheEntries = itr?.CacheCount ?? 0,
                MaxRegistrations = ms?.Options.MaxRegistrations,
                MaxRegistrantsPerEid = ms?.Options.MaxRegistrantsPerEid,
                Sites = ms is null ? [] : SiteLimits(ms.Options),
                MaxMapCacheEntries = itr?.Options.MaxCacheEntries,
                PendingRequests = itr?.Outstanding.Count,
                MaxPendingRequests = itr?.Options.MaxOutstanding,
            };
            foreach (var r in Enum.GetValues<Lisp.ControlPlane.DropReason>()) view.Drops[Kebab(r.ToString())] = c.Drops(r);
            foreach (var e in Enum.GetValues<WireError>()) view.Malformed[Kebab(e.ToString())] = c.Malformed(e);
            foreach (var e in Enum.GetValues<ControlEvent>()) view.Events[Kebab(e.ToString())] = c.Events(e);
            list.Add(view);
        }
        return list;
    }

    /// <summary>
    /// Each site's live registrations (the shared per-node reservation counts, every shard) and its limit: its own
    /// max_registrations, else its share of the table (max_registrations / sites, rounded up; a lone site: the table).
    /// </summary>
    private static List<SiteLimitView> SiteLimits(MapServerOptions o)
    {
        int sites = o.Sites.Count;
        int share = sites > 1 ? (int)Math.Min(int.MaxValue, ((long)o.MaxRegistrations + sites - 1) / sites) : o.MaxRegistrations;
        return o.Sites.Select(s => new SiteLimitView
        {
            Site = s.Name,
            Registrations = o.Shard?.Limits.Site(s.Name) ?? 0,
            MaxRegistrations = s.MaxRegistrations > 0 ? s.MaxRegistrations : share,
        }).ToList();
    }

    /// <summary>Probed RLOCs listed at most in <see cref="RlocProbingView.Rlocs"/> (the echo-nonce table holds 4,096 at most too).</summary>
    public const int MaxProbedRlocs = 4096;

    /// <summary>RLOC-probing of the ITR node (null without one); reads role state: control thread only.</summary>
    public static RlocProbingView? RlocProbing(ControlNodeSet nodes)
    {
        if (nodes.ItrNode is not { Itr: { } itr } node) return null;
        var c = itr.ProbeCounters;
        var probes = itr.RlocProbes;
        var states = new Dictionary<string, int> { ["unknown"] = 0, ["up"] = 0, ["down"] = 0 };
        foreach (var p in probes) states[Kebab(p.State.ToString())]++;
        return new RlocProbingView
        {
            Node = node.Options.Name,
            Enabled = itr.Options.ProbeInterval > TimeSpan.Zero,
            IntervalSeconds = Math.Max(0, itr.Options.ProbeInterval.TotalSeconds),
            TimeoutSeconds = itr.Options.ProbeInterval > TimeSpan.Zero ? itr.Options.EffectiveProbeTimeout.TotalSeconds : 0,
            Sent = c.Sent,
            RepliesAccepted = c.RepliesAccepted,
            RepliesUnexpected = c.RepliesUnexpected,
            RlocUp = c.RlocUp,
            RlocDown = c.RlocDown,
            Deferred = c.Deferred,
            LocatorsNotProbed = c.LocatorsNotProbed,
            BudgetPerSecond = Math.Max(0, itr.Options.ProbeBudgetPerSecond),
            MaxLocators = itr.Options.MaxProbedLocatorsPerRecord,
            States = states,
            Rlocs = probes.Take(MaxProbedRlocs).Select(p => new RlocProbeView
            {
                Rloc = p.Rloc.ToString(),
                State = Kebab(p.State.ToString()),
                RttMs = p.LastRtt is { } rtt ? Math.Round(rtt.TotalMilliseconds, 3) : null,
                LastReply = p.LastReply,
                NextProbe = p.NextProbe,
                Entries = p.Entries,
            }).ToList(),
        };
    }

    /// <summary>Data-plane counters per worker (any thread: workers publish plain 64-bit counters).</summary>
    public static DataPlaneCountersView? DataPlane(DataPlaneHost? host)
    {
        if (host is null) return null;
        var workers = new List<WorkerCountersView>();
        var engine = host.Engine;
        for (int i = 0; i < engine.Itrs.Count; i++) workers.Add(Worker($"itr-{i}", engine.Itrs[i].Counters, engine.Itrs[i].HeldPackets));
        for (int i = 0; i < engine.Etrs.Count; i++) workers.Add(Worker($"etr-{i}", engine.Etrs[i].Counters));
        return new DataPlaneCountersView
        {
            MapCacheEntries = host.MapCache.Count,
            Total = Worker("total", engine.Counters),
            Workers = workers,
            EchoNonce = host.EchoNonce is { } e ? EchoNonce(e) : null,
            HoldPackets = host.Config.HoldPackets,
            MissQueue = new QueueView
            {
                Depth = host.Misses.Count, Capacity = host.Misses.Capacity, Posted = host.Misses.Posted,
                RefusedFull = host.Misses.RefusedFull, RefusedRate = host.Misses.RefusedRate,
            },
            Tuns = engine.Tuns.Select((t, q) => new TunView
            {
                Name = t.Name, Queue = q, Losses = t.Losses, Reopens = t.Reopens, ReopenFailures = t.ReopenFailures,
            }).ToList(),
        };
    }

    private static EchoNonceView EchoNonce(Lisp.DataPlane.EchoNonceTable e)
    {
        return new EchoNonceView
        {
            Requests = e.Requests, EchoesReceived = e.EchoesReceived, EchoesSent = e.EchoesSent, Down = e.Downs,
            Retries = e.Retries, Abandoned = e.Abandoned, TableFull = e.TableFull,
            Rlocs = e.Snapshot(System.Diagnostics.Stopwatch.GetTimestamp()).Select(r => new EchoNonceRlocView
            {
                Rloc = r.Rloc.ToString(), State = r.State, SecondsSinceEcho = r.SecondsSinceEcho is { } s ? Math.Round(s, 3) : null,
                Requests = r.Requests, EchoesReceived = r.EchoesReceived, EchoesSent = r.EchoesSent, Down = r.Downs,
            }).ToList(),
        };
    }

    private static WorkerCountersView Worker(string name, DataPlaneCounters c, int held = 0)
    {
        var view = new WorkerCountersView
        {
            Worker = name,
            EncapPackets = Volatile.Read(ref c.EncapPackets),
            EncapBytes = Volatile.Read(ref c.EncapBytes),
            DecapPackets = Volatile.Read(ref c.DecapPackets),
            DecapBytes = Volatile.Read(ref c.DecapBytes),
            MissesPosted = Volatile.Read(ref c.MissesPosted),
            MissesRefused = Volatile.Read(ref c.MissesRefused),
            IcmpTooBig = Volatile.Read(ref c.IcmpTooBig),
            Fragmented = Volatile.Read(ref c.Fragmented),
            HeldThenSent = Volatile.Read(ref c.HeldThenSent),
            HeldPackets = held,
            Batches = Volatile.Read(ref c.Batches),
        };
        foreach (var r in Enum.GetValues<Lisp.DataPlane.DropReason>()) view.Drops[Kebab(r.ToString())] = c[r];
        view.Events["control"] = Volatile.Read(ref c.ControlPackets);
        view.Events["plain-control"] = Volatile.Read(ref c.PlainControlPackets);
        view.Events["versioned-sent"] = Volatile.Read(ref c.VersionedSent);
        view.Events["versioned-received"] = Volatile.Read(ref c.VersionedPackets);
        view.Events["version-refreshes"] = Volatile.Read(ref c.VersionRefreshes);
        view.Events["dest-version-stale"] = Volatile.Read(ref c.DestVersionStale);
        view.Events["dest-version-newer"] = Volatile.Read(ref c.DestVersionNewer);
        view.Events["gleans-posted"] = Volatile.Read(ref c.GleansPosted);
        view.Events["gleans-refused"] = Volatile.Read(ref c.GleansRefused);
        view.Events["unknown-source-lookups"] = Volatile.Read(ref c.UnknownSourceLookups);
        // Segmentation offloads (issue 13): ITR super-packets split, GSO sends, checksums completed; ETR GRO runs and coalesced writes.
        view.Events["offload-super-packets"] = Volatile.Read(ref c.SuperPackets);
        view.Events["offload-segments"] = Volatile.Read(ref c.SuperSegments);
        view.Events["gso-sends"] = Volatile.Read(ref c.GsoSends);
        view.Events["checksums-completed"] = Volatile.Read(ref c.ChecksumsCompleted);
        view.Events["gro-buffers"] = Volatile.Read(ref c.GroBuffers);
        view.Events["gro-datagrams"] = Volatile.Read(ref c.GroDatagrams);
        view.Events["coalesced-writes"] = Volatile.Read(ref c.CoalescedWrites);
        view.Events["coalesced-segments"] = Volatile.Read(ref c.CoalescedSegments);
        return view;
    }

    public static List<RlocView> Rlocs(IReadOnlyList<LocatorRecord> rlocs) =>
        rlocs.Select(l => new RlocView { Address = l.Locator.ToText(), Priority = l.Priority, Weight = l.Weight, Reachable = l.Reachable }).ToList();

    /// <summary>"AuthFailure" -> "auth-failure".</summary>
    public static string Kebab(string s)
    {
        var sb = new StringBuilder(s.Length + 4);
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            if (char.IsUpper(c) && i > 0) sb.Append('-');
            sb.Append(char.ToLowerInvariant(c));
        }
        return sb.ToString();
    }
}
