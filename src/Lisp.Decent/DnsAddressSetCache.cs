using System.Collections.Concurrent;
using System.Globalization;
using System.Net;

namespace Lisp.Decent;

/// <summary>What the cache holds for one name, for `show` and tests.</summary>
public sealed record DnsSetStatus(
    string Name,
    IReadOnlyList<IPAddress> Addresses,
    bool Serving,
    DateTimeOffset? FetchedAt,
    DateTimeOffset? ExpiresAt,
    DateTimeOffset? ServeUntil,
    int Failures,
    string? LastError,
    long Queries);

/// <summary>
/// Name -> address set, kept fresh in the background. The contract the mapping system needs:
/// <list type="bullet">
/// <item><see cref="Get"/> never blocks: it returns what is cached (empty while nothing is known) and, on
/// the first ask for a name, starts resolving it.</item>
/// <item>An answer is kept for its record TTL clamped to [MinimumTtl, MaximumTtl]; a refresh starts when
/// <c>RefreshAtFraction</c> of it has passed, so a healthy name never goes stale.</item>
/// <item>A failed resolution (timeout, NXDOMAIN, SERVFAIL, no records, socket error) is logged and retried
/// with exponential back-off from RetryInitial, doubling up to RetryMaximum; meanwhile the last good
/// answer is served until TTL expiry + Grace, after which <see cref="Get"/> answers empty.</item>
/// </list>
/// Entries are kept for the cache's life: a node asks for at most <c>modulus</c> index names plus a few
/// others (a seed group), so nothing needs evicting. All timing comes from the injected <see cref="TimeProvider"/>.
/// Thread-safe: one lock per name; queries run outside the lock.
/// </summary>
public sealed class DnsAddressSetCache : IDisposable
{
    private static readonly TimeSpan MinimumRefreshDelay = TimeSpan.FromMilliseconds(100);

    private readonly IDnsAddressSource _source;
    private readonly DnsResolverOptions _options;
    private readonly TimeProvider _time;
    private readonly Action<string>? _log;
    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stop = new();
    private volatile bool _disposed;

    /// <summary>Raised (on a pool thread) when a successful answer differs from the previous set (first answer included).</summary>
    public event Action<string, IReadOnlyList<IPAddress>>? SetChanged;

    public DnsAddressSetCache(IDnsAddressSource source, DnsResolverOptions options, TimeProvider? time = null, Action<string>? log = null)
    {
        if (options.Validate() is { } err) throw new ArgumentException(err, nameof(options));
        _source = source;
        _options = options;
        _time = time ?? TimeProvider.System;
        _log = log;
    }

    /// <summary>A cache over DnsClient asking <paramref name="options"/>' servers.</summary>
    public DnsAddressSetCache(DnsResolverOptions options, TimeProvider? time = null, Action<string>? log = null)
        : this(new DnsClientAddressSource(options), options, time, log)
    {
    }

    public DnsResolverOptions Options => _options;

    public static string NormalizeName(string name) => name.Trim().TrimEnd('.').ToLowerInvariant();

    /// <summary>Cached addresses of <paramref name="name"/>; empty while unknown or past TTL + grace. Never blocks.</summary>
    public IReadOnlyList<IPAddress> Get(string name)
    {
        var e = EntryFor(name, out bool created);
        if (created) StartQuery(e);
        lock (e) return Serving(e, _time.GetUtcNow());
    }

    /// <summary>Resolves now (joining a query already running) and returns what is then served.</summary>
    public async Task<IReadOnlyList<IPAddress>> ResolveAsync(string name, CancellationToken cancellationToken = default)
    {
        var e = EntryFor(name, out _);
        await StartQuery(e).WaitAsync(cancellationToken).ConfigureAwait(false);
        lock (e) return Serving(e, _time.GetUtcNow());
    }

    /// <summary>Starts (or joins) a resolution of <paramref name="name"/> now, whatever its TTL says.</summary>
    public Task RefreshAsync(string name) => StartQuery(EntryFor(name, out _));

    /// <summary>The resolution running for <paramref name="name"/>, or a completed task (for tests and start-up).</summary>
    public Task PendingAsync(string name) =>
        _entries.TryGetValue(NormalizeName(name), out var e) && e.InFlight is { } t ? t : Task.CompletedTask;

    public DnsSetStatus? Status(string name)
    {
        if (!_entries.TryGetValue(NormalizeName(name), out var e)) return null;
        lock (e) return StatusOf(e, _time.GetUtcNow());
    }

    public IReadOnlyList<DnsSetStatus> Snapshot()
    {
        var now = _time.GetUtcNow();
        var list = new List<DnsSetStatus>();
        foreach (var e in _entries.Values)
        {
            lock (e) list.Add(StatusOf(e, now));
        }
        list.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        return list;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _stop.Cancel();
        foreach (var e in _entries.Values)
        {
            lock (e) e.Timer?.Dispose();
        }
        _stop.Dispose();
    }

    private Entry EntryFor(string name, out bool created)
    {
        string key = NormalizeName(name);
        if (key.Length == 0) throw new ArgumentException("empty DNS name", nameof(name));
        if (_entries.TryGetValue(key, out var e))
        {
            created = false;
            return e;
        }
        var fresh = new Entry(key);
        e = _entries.GetOrAdd(key, fresh);
        created = ReferenceEquals(e, fresh);
        return e;
    }

    private IReadOnlyList<IPAddress> Serving(Entry e, DateTimeOffset now) =>
        e.FetchedAt is not null && now < e.ExpiresAt + _options.Grace ? e.Addresses : [];

    private DnsSetStatus StatusOf(Entry e, DateTimeOffset now) => new(
        e.Name, e.Addresses, Serving(e, now).Count > 0, e.FetchedAt,
        e.FetchedAt is null ? null : e.ExpiresAt,
        e.FetchedAt is null ? null : e.ExpiresAt + _options.Grace,
        e.Failures, e.LastError, e.Queries);

    private Task StartQuery(Entry e)
    {
        if (_disposed) return Task.CompletedTask;
        lock (e)
        {
            if (e.InFlight is { IsCompleted: false } running) return running;
            e.Timer?.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            e.Queries++;
            // Run the query off this thread: callers (Get, a timer) must never wait on DNS.
            var t = Task.Run(() => QueryAndStore(e));
            e.InFlight = t;
            return t;
        }
    }

    private async Task QueryAndStore(Entry e)
    {
        DnsAnswer answer;
        try
        {
            answer = await _source.QueryAsync(e.Name, _stop.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (_disposed)
        {
            return;
        }
        catch (Exception ex)
        {
            answer = DnsAnswer.Failed(DnsOutcome.Error, $"{ex.GetType().Name}: {ex.Message}");
        }
        if (_disposed) return;

        IReadOnlyList<IPAddress>? changed = null;
        string? message;
        var now = _time.GetUtcNow();
        lock (e)
        {
            TimeSpan next;
            if (answer.Outcome == DnsOutcome.Ok && answer.Addresses.Count > 0)
            {
                var ttl = answer.Ttl < _options.MinimumTtl ? _options.MinimumTtl
                    : answer.Ttl > _options.MaximumTtl ? _options.MaximumTtl : answer.Ttl;
                if (e.FetchedAt is null || !SameSet(e.Addresses, answer.Addresses)) changed = answer.Addresses;
                message = e.Failures > 0
                    ? $"decent-dns: {e.Name}: resolved again after {e.Failures} failure(s): {Join(answer.Addresses)}"
                    : answer.Detail is { } d ? $"decent-dns: {e.Name}: {d}" : null;
                if (changed is not null && e.FetchedAt is not null) message = $"decent-dns: {e.Name}: set changed: {Join(e.Addresses)} -> {Join(answer.Addresses)}";
                e.Addresses = answer.Addresses;
                e.FetchedAt = now;
                e.ExpiresAt = now + ttl;
                e.Failures = 0;
                e.LastError = null;
                next = ttl * _options.RefreshAtFraction;
                if (next < MinimumRefreshDelay) next = MinimumRefreshDelay;
            }
            else
            {
                e.Failures++;
                e.LastError = $"{answer.Outcome}: {answer.Detail}";
                next = Backoff(e.Failures);
                string serving = Serving(e, now) is { Count: > 0 } s
                    ? $"serving the last answer {Join(s)} until {(e.ExpiresAt + _options.Grace).ToString("HH:mm:ss.fff", CultureInfo.InvariantCulture)}"
                    : "nothing to serve";
                message = $"decent-dns: {e.Name}: {e.LastError}; failure {e.Failures}, retry in {next.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture)}s; {serving}";
            }
            if (e.Timer is null)
            {
                e.Timer = _time.CreateTimer(static s =>
                {
                    var (cache, entry) = ((DnsAddressSetCache, Entry))s!;
                    cache.StartQuery(entry);
                }, (this, e), next, Timeout.InfiniteTimeSpan);
            }
            else
            {
                e.Timer.Change(next, Timeout.InfiniteTimeSpan);
            }
        }
        if (message is not null) _log?.Invoke(message);
        if (changed is not null) SetChanged?.Invoke(e.Name, changed);
    }

    /// <summary>RetryInitial * 2^(failures-1), capped at RetryMaximum.</summary>
    public TimeSpan Backoff(int failures)
    {
        double factor = Math.Pow(2, Math.Clamp(failures - 1, 0, 30));
        double ms = Math.Min(_options.RetryInitial.TotalMilliseconds * factor, _options.RetryMaximum.TotalMilliseconds);
        return TimeSpan.FromMilliseconds(ms);
    }

    private static bool SameSet(IReadOnlyList<IPAddress> a, IReadOnlyList<IPAddress> b) =>
        a.Count == b.Count && a.All(b.Contains);

    private static string Join(IReadOnlyList<IPAddress> a) => a.Count == 0 ? "(none)" : string.Join(", ", a);

    private sealed class Entry(string name)
    {
        public readonly string Name = name;
        public IReadOnlyList<IPAddress> Addresses = [];
        public DateTimeOffset? FetchedAt;
        public DateTimeOffset ExpiresAt;
        public int Failures;
        public string? LastError;
        public long Queries;
        public Task? InFlight;
        public ITimer? Timer;
    }
}
