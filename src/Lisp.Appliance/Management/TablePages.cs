using System.Diagnostics;
using System.Text;
using Lisp.Appliance.Hosting;
using Lisp.ControlPlane;

namespace Lisp.Appliance.Management;

/// <summary>
/// The big tables (site table, map-cache, ETR registrations) as published read-only snapshots, served in pages
/// (issue 12). The control thread only copies references to the tables' immutable records, a bounded slice
/// (<see cref="SliceEntries"/>) per <see cref="NodeHost.QueryAsync"/> visit, resuming from a key cursor, so no visit
/// grows with the table; sorting, grouping and the views are built on a low-priority thread
/// (<see cref="BackgroundBuilder"/>), and every page is cut from the published copy without touching the control
/// thread. A snapshot is reused while it is younger than <see cref="MinAge"/> or 20 times the control-thread time
/// all its slices took, so however often the page is polled, the control thread spends at most about 5 % of its
/// time on these reads.
/// Pages: stable order (map-server, site, EID text / EID text / EID text + map-server), keyset cursors
/// (`next`, opaque), so a page after a newer snapshot continues where the last one stopped.
/// </summary>
public sealed class TablePages
{
    public const int DefaultLimit = 1000;
    public const int MaxLimit = 10000;
    public static readonly TimeSpan MinAge = TimeSpan.FromSeconds(2);
    /// <summary>How long a snapshot's control-thread read may wait for the shards (the HTTP request waits less).</summary>
    public static readonly TimeSpan ReadTimeout = TimeSpan.FromSeconds(30);

    private readonly Published<SiteSnapshot> _siteTable;
    private readonly Published<Keyed<MapCacheEntryView>> _mapCache;
    private readonly Published<Keyed<RegistrationView>> _registrations;
    private long _snapshots, _visits, _longestTicks;

    public TablePages(NodeHost host)
    {
        _siteTable = new(this, host, () => new SiteRead(), BuildSiteTable);
        _mapCache = new(this, host, () => new MapCacheRead(), BuildMapCache);
        _registrations = new(this, host, () => new RegistrationsRead(), BuildRegistrations);
    }

    public long SnapshotCount => Interlocked.Read(ref _snapshots);
    public long VisitCount => Interlocked.Read(ref _visits);
    /// <summary>The longest single control-thread visit a snapshot read has taken (one slice).</summary>
    public double LongestReadMs => Interlocked.Read(ref _longestTicks) * 1000.0 / Stopwatch.Frequency;

    // ---- control thread: bounded slices of references ----

    /// <summary>Registrations (map-server) or map-cache entries (ITR) read per control-thread visit.</summary>
    public const int SliceEntries = 2048;

    /// <summary>
    /// A snapshot read in slices: <see cref="Step"/> runs on the control thread with every shard parked, reads at most
    /// <see cref="SliceEntries"/> table entries after where the last step stopped (a key cursor, O(depth) to resume),
    /// and returns true once the whole table has been read. Between steps the control thread goes back to its
    /// packets, so a read of a 1M-entry table costs ~500 visits of ~0.3 ms each instead of one visit of 0.2 s.
    /// A row present for the whole read appears exactly once; one added or removed meanwhile may or may not.
    /// </summary>
    private interface ISlicedRead
    {
        bool Step(ControlNodeSet nodes, DateTimeOffset now);
    }

    private sealed class SiteRead : ISlicedRead
    {
        public readonly List<(string Node, List<string> Endpoints, IReadOnlyList<SiteConfig> Sites, List<Registration> Regs)> MapServers = [];
        private List<MapServer>? _servers;
        private int _server;
        private MapServer.RegistrationCursor _cursor;

        public bool Step(ControlNodeSet nodes, DateTimeOffset now)
        {
            if (_servers is null)
            {
                _servers = [];
                foreach (var (node, _) in nodes.All)
                {
                    if (node.MapServer is not { } ms) continue;
                    _servers.Add(ms);
                    MapServers.Add((node.Options.Name, node.Options.LocalEndpoints.Select(e => e.ToString()).ToList(), ms.Options.Sites, []));
                }
            }
            if (_server >= _servers.Count) return true;
            var next = _servers[_server].RegistrationsSlice(_cursor, SliceEntries, now, MapServers[_server].Regs);
            if (next is { } c) _cursor = c;
            else
            {
                _server++;
                _cursor = default;
            }
            return _server >= _servers.Count;
        }
    }

    private sealed class MapCacheRead : ISlicedRead
    {
        public int Outstanding = -1;   // -1: no ITR
        public readonly List<MapCacheEntry> Entries = [];
        private bool _started;
        private Lisp.ControlPlane.Tables.EidKey? _after;

        public bool Step(ControlNodeSet nodes, DateTimeOffset now)
        {
            if (nodes.ItrNode?.Itr is not { } itr) return true;
            if (!_started)
            {
                _started = true;
                Outstanding = itr.Outstanding.Count;
            }
            _after = itr.EntriesSlice(_after, SliceEntries, now, Entries);
            return _after is null;
        }
    }

    private sealed class RegistrationsRead : ISlicedRead
    {
        public IReadOnlyList<EtrRegistrationState>? States;

        // The ETR's registration states: one per database mapping and map-server, sized by the config, read at once.
        public bool Step(ControlNodeSet nodes, DateTimeOffset now)
        {
            States = nodes.All.Select(n => n.Node.Etr).FirstOrDefault(e => e is not null) is { } etr ? etr.RegistrationStates : null;
            return true;
        }
    }

    // ---- pool thread: the views ----

    /// <summary>A table's rows in page order with their keys (ordinal order).</summary>
    private class Keyed<T>(List<string> keys, List<T> rows, DateTimeOffset at, object? extra = null)
    {
        public readonly List<string> Keys = keys;
        public readonly List<T> Rows = rows;
        public readonly DateTimeOffset At = at;
        public readonly object? Extra = extra;
    }

    private sealed class SiteSnapshot(List<string> keys, List<SiteRowView> rows, DateTimeOffset at, List<(string Node, List<string> Endpoints, int First, int Count)> servers)
        : Keyed<SiteRowView>(keys, rows, at)
    {
        public readonly List<(string Node, List<string> Endpoints, int First, int Count)> Servers = servers;
    }

    private static SiteSnapshot BuildSiteTable(ISlicedRead read, DateTimeOffset now)
    {
        var r = (SiteRead)read;
        var keys = new List<string>();
        var rows = new List<SiteRowView>();
        var servers = new List<(string, List<string>, int, int)>();
        for (int n = 0; n < r.MapServers.Count; n++)
        {
            var (node, endpoints, sites, regs) = r.MapServers[n];
            int first = rows.Count;
            var bySite = regs.GroupBy(x => x.Site, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.ToList(), StringComparer.Ordinal);
            for (int s = 0; s < sites.Count; s++)
            {
                var site = sites[s];
                var byEid = (bySite.GetValueOrDefault(site.Name) ?? []).GroupBy(x => x.Eid.ToString(), StringComparer.Ordinal)
                    .ToDictionary(g => g.Key, g => (g.First().Eid, Regs: g.OrderBy(x => x.Registerer.ToString(), StringComparer.Ordinal).ToList()), StringComparer.Ordinal);
                var siteRows = new SortedDictionary<string, SiteRowView>(StringComparer.Ordinal);
                foreach (var p in site.EidPrefixes)
                {
                    var pc = p.Canonical();
                    string text = pc.ToString();
                    siteRows[text] = Row(site.Name, text, true, byEid.TryGetValue(text, out var e) ? e.Regs : []);
                }
                foreach (var (text, e) in byEid)
                {
                    if (!siteRows.ContainsKey(text)) siteRows[text] = Row(site.Name, text, false, e.Regs);
                }
                foreach (var (text, row) in siteRows)
                {
                    keys.Add($"{n:D4}\u0001{s:D6}\u0001{text}");
                    rows.Add(row);
                }
            }
            servers.Add((node, endpoints, first, rows.Count - first));
        }
        return new SiteSnapshot(keys, rows, now, servers);
    }

    private static SiteRowView Row(string site, string eid, bool configured, List<Registration> regs)
    {
        if (regs.Count == 0) return new SiteRowView { Site = site, Eid = eid, Configured = configured, Flags = Registration.FormatFlags(0) };
        var last = regs.MaxBy(x => x.LastRegistered)!;
        return new SiteRowView
        {
            Site = site,
            Eid = eid,
            Configured = configured,
            Registered = true,
            LastRegisterer = last.Registerer.ToString(),
            FirstRegistered = regs.Min(x => x.FirstRegistered),
            LastRegistered = last.LastRegistered,
            Expires = regs.Max(x => x.ExpiresAt),
            Flags = last.FlagsText,
            Registrants = regs.Count,
            Rlocs = Snapshots.Rlocs(regs.SelectMany(x => x.Rlocs).DistinctBy(l => l.Locator).ToList()),
        };
    }

    private static Keyed<MapCacheEntryView> BuildMapCache(ISlicedRead read, DateTimeOffset now)
    {
        var r = (MapCacheRead)read;
        var (outstanding, entries) = (r.Outstanding, r.Entries);
        var keys = new List<string>(entries.Count);
        var rows = new List<MapCacheEntryView>(entries.Count);
        foreach (var e in entries)
        {
            var v = Snapshots.Entry(e, now);
            keys.Add(v.Eid);
            rows.Add(v);
        }
        Sort(keys, rows);
        return new Keyed<MapCacheEntryView>(keys, rows, now, outstanding);
    }

    private static Keyed<RegistrationView> BuildRegistrations(ISlicedRead read, DateTimeOffset now)
    {
        var states = ((RegistrationsRead)read).States;
        if (states is null) return new Keyed<RegistrationView>([], [], now, null);
        var keys = new List<string>(states.Count);
        var rows = new List<RegistrationView>(states.Count);
        foreach (var s in states)
        {
            var v = new RegistrationView { Eid = s.Eid.ToString(), MapServer = s.MapServer.ToString(), LastSent = s.LastSent, LastNotified = s.LastNotified };
            keys.Add($"{v.Eid}\u0001{v.MapServer}");
            rows.Add(v);
        }
        Sort(keys, rows);
        return new Keyed<RegistrationView>(keys, rows, now, true);
    }

    private static void Sort<T>(List<string> keys, List<T> rows)
    {
        var k = keys.ToArray();
        var r = rows.ToArray();
        Array.Sort(k, r, StringComparer.Ordinal);
        keys.Clear();
        keys.AddRange(k);
        rows.Clear();
        rows.AddRange(r);
    }

    // ---- pages ----

    /// <summary>Page arguments: ?limit= (1..<see cref="MaxLimit"/>) and ?after= (a `next` cursor); null and an error text when bad.</summary>
    public static (int Limit, string? After)? Arguments(IReadOnlyDictionary<string, string> query, out string? error)
    {
        error = null;
        int limit = DefaultLimit;
        if (query.TryGetValue("limit", out var l) && (!int.TryParse(l, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out limit) || limit < 1 || limit > MaxLimit))
        {
            error = $"limit must be 1..{MaxLimit}";
            return null;
        }
        string? after = null;
        if (query.TryGetValue("after", out var a) && a.Length > 0)
        {
            after = Decode(a);
            if (after is null)
            {
                error = "after is not a cursor this server gave (use the page's `next`)";
                return null;
            }
        }
        return (limit, after);
    }

    private static (int Start, int End, string? Next) Cut(List<string> keys, int limit, string? after)
    {
        int start = 0;
        if (after is not null)
        {
            int i = keys.BinarySearch(after, StringComparer.Ordinal);
            start = i >= 0 ? i + 1 : ~i;
        }
        int end = Math.Min(keys.Count, start + limit);
        return (start, end, end < keys.Count && end > start ? Encode(keys[end - 1]) : null);
    }

    public async Task<SiteTableView> SiteTable(int limit, string? after, TimeSpan wait)
    {
        var snap = await _siteTable.Get(wait).ConfigureAwait(false);
        var (start, end, next) = Cut(snap.Keys, limit, after);
        return new SiteTableView
        {
            Total = snap.Rows.Count,
            Limit = limit,
            Next = next,
            SnapshotAt = snap.At,
            MapServers = snap.Servers.Select(s =>
            {
                int a = Math.Max(start, s.First), b = Math.Min(end, s.First + s.Count);
                return new MapServerTableView { Node = s.Node, Endpoints = s.Endpoints, Total = s.Count, Rows = b > a ? snap.Rows.GetRange(a, b - a) : [] };
            }).ToList(),
        };
    }

    public async Task<MapCacheView> MapCache(int limit, string? after, TimeSpan wait)
    {
        var snap = await _mapCache.Get(wait).ConfigureAwait(false);
        int outstanding = (int)snap.Extra!;
        if (outstanding < 0) return new MapCacheView { Limit = limit, SnapshotAt = snap.At };
        var (start, end, next) = Cut(snap.Keys, limit, after);
        return new MapCacheView { Itr = true, Outstanding = outstanding, Total = snap.Rows.Count, Limit = limit, Next = next, SnapshotAt = snap.At, Entries = snap.Rows.GetRange(start, end - start) };
    }

    public async Task<RegistrationsView> Registrations(int limit, string? after, TimeSpan wait)
    {
        var snap = await _registrations.Get(wait).ConfigureAwait(false);
        if (snap.Extra is null) return new RegistrationsView { Limit = limit, SnapshotAt = snap.At };
        var (start, end, next) = Cut(snap.Keys, limit, after);
        return new RegistrationsView { Etr = true, Total = snap.Rows.Count, Limit = limit, Next = next, SnapshotAt = snap.At, Registrations = snap.Rows.GetRange(start, end - start) };
    }

    private static string Encode(string key) => Convert.ToBase64String(Encoding.UTF8.GetBytes(key)).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static string? Decode(string cursor)
    {
        if (cursor.Length > 4096) return null;
        var b64 = cursor.Replace('-', '+').Replace('_', '/');
        b64 += new string('=', (4 - b64.Length % 4) % 4);
        var bytes = new byte[b64.Length];
        return Convert.TryFromBase64String(b64, bytes, out int n) ? Encoding.UTF8.GetString(bytes, 0, n) : null;
    }

    /// <summary>
    /// One table's published snapshot: rebuilt on demand when stale; concurrent requests share one build. The read
    /// goes in slices through the control thread (<see cref="ISlicedRead"/>); the rows are sorted and the views built
    /// on <see cref="BackgroundBuilder"/>'s low-priority thread, so a build never competes with the control shards
    /// for a core (the 30-minute soak's p99 of ~135 ms came from a pool thread doing this beside a pinned control
    /// thread).
    /// </summary>
    private sealed class Published<T>(TablePages owner, NodeHost host, Func<ISlicedRead> start, Func<ISlicedRead, DateTimeOffset, T> build)
        where T : class
    {
        private readonly object _gate = new();
        private Task<T>? _current;
        private long _builtAt, _readTicks;

        public Task<T> Get(TimeSpan wait)
        {
            Task<T> t;
            lock (_gate)
            {
                long age = Stopwatch.GetTimestamp() - _builtAt;
                long fresh = Math.Max((long)(MinAge.TotalSeconds * Stopwatch.Frequency), 20 * Interlocked.Read(ref _readTicks));
                if (_current is null || _current.IsFaulted || _current.IsCanceled || (_current.IsCompletedSuccessfully && age >= fresh))
                {
                    _current = Build();
                }
                t = _current;
            }
            return t.WaitAsync(wait);
        }

        private async Task<T> Build()
        {
            var reader = start();
            DateTimeOffset? at = null;
            long total = 0;
            while (true)
            {
                var (done, now) = await host.QueryAsync((nodes, now) =>
                {
                    long t0 = Stopwatch.GetTimestamp();
                    bool finished = reader.Step(nodes, now);
                    long ticks = Stopwatch.GetTimestamp() - t0;
                    Interlocked.Add(ref total, ticks);
                    Interlocked.Increment(ref owner._visits);
                    long seen;
                    while (ticks > (seen = Interlocked.Read(ref owner._longestTicks)) && Interlocked.CompareExchange(ref owner._longestTicks, ticks, seen) != seen)
                    {
                    }
                    return (finished, now);
                }, ReadTimeout).ConfigureAwait(false);
                at ??= now;
                if (done) break;
            }
            // The freshness rule (20x the control-thread time the read took) counts every slice of it.
            Interlocked.Exchange(ref _readTicks, Interlocked.Read(ref total));
            Interlocked.Increment(ref owner._snapshots);
            var snapshotAt = at.Value;
            var value = await BackgroundBuilder.Run(() => build(reader, snapshotAt)).ConfigureAwait(false);
            Interlocked.Exchange(ref _builtAt, Stopwatch.GetTimestamp());
            return value;
        }
    }
}
