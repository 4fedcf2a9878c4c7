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

    private readonly Published<Keyed<MapCacheEntryView>> _mapCache;
    private readonly Published<Keyed<RegistrationView>> _registrations;
    private readonly NodeHost _host;
    private long _snapshots, _visits, _longestTicks;

    public TablePages(NodeHost host)
    {
        _host = host;
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

    /// <summary>
    /// A page of the site table, read straight from the map-server tables: each control-thread visit reads at most
    /// <see cref="SliceEntries"/> EIDs after the cursor (O(depth) to resume), and the page's rows are built on the
    /// caller's thread, so a page costs O(limit) however large the table is, and no table-sized copy is ever made
    /// (the 1-hour soak showed whole-table snapshots costing the control plane its p99 and, built at low priority,
    /// the API its answers). Order per map-server: the registered EIDs in table order (shard, then EID key: address
    /// order, shorter prefix first), one row per EID and site, then the configured prefixes nobody registered.
    /// </summary>
    public async Task<SiteTableView> SiteTable(int limit, string? after, TimeSpan wait)
    {
        var cursor = after is null ? new SiteCursor(0, 0, 0, null) : SiteCursor.Parse(after) ?? throw new FormatException("not a site-table cursor");
        var servers = new List<(string Node, List<string> Endpoints, int Total, List<SiteRowView> Rows)>();
        var deadline = Stopwatch.GetTimestamp() + (long)(wait.TotalSeconds * Stopwatch.Frequency);
        int rows = 0;
        DateTimeOffset? at = null;
        SiteCursor? next = cursor;
        while (next is { } c && rows < limit)
        {
            var left = TimeSpan.FromSeconds(Math.Max(0.05, (deadline - Stopwatch.GetTimestamp()) / (double)Stopwatch.Frequency));
            var visit = await _host.QueryAsync((nodes, now) => Timed(() => SiteVisit(nodes, now, c, Math.Min(SliceEntries, limit - rows))), left).ConfigureAwait(false);
            at ??= visit.Now;
            foreach (var part in visit.Parts)
            {
                if (servers.Count > 0 && servers[^1].Node == part.Node) servers[^1].Rows.AddRange(part.Rows);
                else servers.Add((part.Node, part.Endpoints, part.Total, part.Rows));
                rows += part.Rows.Count;
            }
            next = visit.Next;
        }
        return new SiteTableView
        {
            Total = servers.Sum(x => x.Total),
            Limit = limit,
            Next = next is { } n ? Encode(n.ToString()) : null,
            SnapshotAt = at,
            MapServers = servers.Select(x => new MapServerTableView { Node = x.Node, Endpoints = x.Endpoints, Total = x.Total, Rows = x.Rows }).ToList(),
        };
    }

    /// <summary>Whether a decoded ?after= value is a site-table cursor (untrusted text).</summary>
    public static bool IsSiteCursor(string after) => SiteCursor.Parse(after) is not null;

    private T Timed<T>(Func<T> read) => Timed(read, out _);

    /// <summary>Runs one control-thread visit, counts it, keeps the longest, and gives its cost in ticks.</summary>
    private T Timed<T>(Func<T> read, out long ticks)
    {
        long t0 = Stopwatch.GetTimestamp();
        var r = read();
        ticks = Stopwatch.GetTimestamp() - t0;
        Interlocked.Increment(ref _visits);
        long seen;
        while (ticks > (seen = Interlocked.Read(ref _longestTicks)) && Interlocked.CompareExchange(ref _longestTicks, ticks, seen) != seen)
        {
        }
        return r;
    }

    /// <summary>Where a site-table page goes on: map-server node, phase (0: registered EIDs, 1: unregistered configured prefixes), shard or index, last key.</summary>
    private readonly record struct SiteCursor(int Server, int Phase, int Position, Lisp.ControlPlane.Tables.EidKey? After)
    {
        public override string ToString() => $"s1|{Server}|{Phase}|{Position}|{(After is { } k ? KeyText(k) : "-")}";

        private static string KeyText(Lisp.ControlPlane.Tables.EidKey k) => string.Join('|', (int)k.Family, k.InstanceId, k.Bits.ToString("x", System.Globalization.CultureInfo.InvariantCulture),
            k.Length, (int)k.GroupFamily, (int)k.SourceFamily, k.SourceBits.ToString("x", System.Globalization.CultureInfo.InvariantCulture), k.SourceLength, k.Text is null ? "-" : "=" + k.Text);

        /// <summary>The cursor a page gave (untrusted text): null when it is not one.</summary>
        public static SiteCursor? Parse(string text)
        {
            var f = text.Split('|', 13);   // the last field (an exact EID's text) may itself hold '|'
            var inv = System.Globalization.CultureInfo.InvariantCulture;
            if (f.Length < 5 || f[0] != "s1" || !int.TryParse(f[1], System.Globalization.NumberStyles.None, inv, out int server)
                || !int.TryParse(f[2], System.Globalization.NumberStyles.None, inv, out int phase) || phase is not (0 or 1)
                || !int.TryParse(f[3], System.Globalization.NumberStyles.None, inv, out int position)) return null;
            if (f.Length == 5 && f[4] == "-") return new SiteCursor(server, phase, position, null);
            if (f.Length != 13 || !int.TryParse(f[4], System.Globalization.NumberStyles.None, inv, out int family) || family > (int)Lisp.ControlPlane.Tables.EidFamily.SourceGroup
                || !uint.TryParse(f[5], System.Globalization.NumberStyles.None, inv, out uint iid)
                || !UInt128.TryParse(f[6], System.Globalization.NumberStyles.AllowHexSpecifier, inv, out var bits)
                || !int.TryParse(f[7], System.Globalization.NumberStyles.None, inv, out int length) || length > 128
                || !int.TryParse(f[8], System.Globalization.NumberStyles.None, inv, out int groupFamily) || groupFamily > (int)Lisp.ControlPlane.Tables.EidFamily.SourceGroup
                || !int.TryParse(f[9], System.Globalization.NumberStyles.None, inv, out int sourceFamily) || sourceFamily > (int)Lisp.ControlPlane.Tables.EidFamily.SourceGroup
                || !UInt128.TryParse(f[10], System.Globalization.NumberStyles.AllowHexSpecifier, inv, out var sourceBits)
                || !int.TryParse(f[11], System.Globalization.NumberStyles.None, inv, out int sourceLength) || sourceLength > 128
                || !(f[12] == "-" || f[12].StartsWith('='))) return null;
            var key = new Lisp.ControlPlane.Tables.EidKey((Lisp.ControlPlane.Tables.EidFamily)family, iid, bits, length, f[12] == "-" ? null : f[12][1..],
                (Lisp.ControlPlane.Tables.EidFamily)groupFamily, (Lisp.ControlPlane.Tables.EidFamily)sourceFamily, sourceBits, sourceLength);
            return new SiteCursor(server, phase, position, key);
        }
    }

    private sealed record SitePart(string Node, List<string> Endpoints, int Total, List<SiteRowView> Rows);

    private sealed record SiteVisitResult(DateTimeOffset Now, List<SitePart> Parts, SiteCursor? Next);

    /// <summary>
    /// Control thread, every shard parked: up to <paramref name="max"/> EIDs (or configured prefixes) from
    /// <paramref name="c"/> on, as rows. Rows are built here: a slice is small, and its registrations are read once.
    /// </summary>
    private static SiteVisitResult SiteVisit(ControlNodeSet nodes, DateTimeOffset now, SiteCursor c, int max)
    {
        var servers = nodes.All.Where(n => n.Node.MapServer is not null).Select(n => n.Node).ToList();
        var parts = new List<SitePart>();
        int server = c.Server, phase = c.Phase, position = c.Position;
        var after = c.After;
        int taken = 0;
        while (server < servers.Count && taken < max)
        {
            var node = servers[server];
            var ms = node.MapServer!;
            var sites = ms.Options.Sites;
            var configured = new HashSet<(string, Lisp.ControlPlane.Tables.EidKey)>();
            foreach (var site in sites)
                foreach (var p in site.EidPrefixes) configured.Add((site.Name, Lisp.ControlPlane.Tables.EidKey.From(p.Canonical())));
            var rows = new List<SiteRowView>();
            // Registrations (one row each unless an EID has several registrants) plus the configured prefixes nobody
            // registered: O(configured prefixes), never O(table).
            int total = ms.RegistrationCount + sites.Sum(s => s.EidPrefixes.Count(p => !ms.HasLiveRegistration(p, now)));
            if (phase == 0)
            {
                var regs = new List<Registration>();
                var next = ms.RegistrationsSlice(new MapServer.RegistrationCursor(position, after), max - taken, now, regs);
                foreach (var group in regs.GroupBy(r => (r.Site, Key: Lisp.ControlPlane.Tables.EidKey.From(r.Eid.Canonical()))))
                {
                    var list = group.OrderBy(x => x.Registerer.ToString(), StringComparer.Ordinal).ToList();
                    rows.Add(Row(group.Key.Site, list[0].Eid.Canonical().ToString(), configured.Contains(group.Key), list));
                }
                // A slice that stopped early reached the end (its rows stand for what it read); a full one used the budget.
                taken = next is null ? taken + rows.Count : max;
                if (next is { } n)
                {
                    position = n.Shard;
                    after = n.After;
                }
                else
                {
                    phase = 1;
                    position = 0;
                    after = null;
                }
            }
            if (phase == 1 && taken < max)
            {
                var list = sites.SelectMany(s => s.EidPrefixes.Select(p => (Site: s.Name, Prefix: p.Canonical()))).ToList();
                while (position < list.Count && taken < max)
                {
                    var (site, prefix) = list[position++];
                    taken++;
                    if (!ms.HasLiveRegistration(prefix, now)) rows.Add(Row(site, prefix.ToString(), true, []));
                }
                if (position >= list.Count)
                {
                    server++;
                    phase = 0;
                    position = 0;
                    after = null;
                }
            }
            parts.Add(new SitePart(node.Options.Name, node.Options.LocalEndpoints.Select(e => e.ToString()).ToList(), total, rows));
        }
        return new SiteVisitResult(now, parts, server < servers.Count ? new SiteCursor(server, phase, position, after) : null);
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
                    bool finished = owner.Timed(() => reader.Step(nodes, now), out long ticks);
                    Interlocked.Add(ref total, ticks);
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
