using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Lisp.Appliance.Config;
using Lisp.Appliance.Hosting;

namespace Lisp.Appliance.Management;

/// <summary>
/// The operations surface on [management] listen: a read-only HTTP API (JSON), Prometheus metrics and a
/// self-contained web page. Built on <see cref="HttpServer"/> (the project's own small HTTP/1.1 server on a socket:
/// connection limit, header/idle timeouts, body limit, every refusal counted; issue 12). Role state is only read on
/// the control thread (<see cref="NodeHost.QueryAsync"/>, bounded wait); the big tables are paged from published
/// snapshots (<see cref="TablePages"/>), so polling them costs the control thread a bounded share of its time.
/// At most <see cref="MaxConcurrent"/> requests are served at once, the rest get 503. With a token
/// ([management] token_file) every request but the static page needs `Authorization: Bearer TOKEN`.
/// Only requests whose Host header names the listen address are served (DNS-rebinding pages stay away).
/// </summary>
public sealed class ManagementServer : IDisposable
{
    public const int MaxConcurrent = 8;
    public static readonly TimeSpan QueryTimeout = TimeSpan.FromSeconds(2);

    private readonly HttpServer _server;
    private readonly NodeHost _host;
    private readonly DataPlaneHost? _dataPlane;
    private readonly Log _log;
    private readonly ManagementConfig _options;
    private readonly TablePages _pages;
    private readonly byte[]? _tokenHash;
    private readonly SemaphoreSlim _slots = new(MaxConcurrent, MaxConcurrent);
    private readonly DateTimeOffset _startedAt = DateTimeOffset.UtcNow;
    private readonly string _version = typeof(ManagementServer).Assembly.GetName().Version?.ToString() ?? "";

    private ManagementServer(ManagementConfig options, NodeHost host, DataPlaneHost? dataPlane, Log log)
    {
        _options = options;
        _host = host;
        _dataPlane = dataPlane;
        _log = log;
        _pages = new TablePages(host);
        _tokenHash = options.Token is { } t ? Lisp.Wire.Crypto.Sha256.HashData(Encoding.UTF8.GetBytes(t)) : null;
        _server = new HttpServer(options.Listen, options.MaxConnections, options.HeaderTimeout, options.IdleTimeout, options.MaxBody, Serve);
        Endpoint = _server.Endpoint;
    }

    public IPEndPoint Endpoint { get; }

    /// <summary>Binds and starts serving; throws <see cref="HttpListenerException"/> (address in use, not local ...).</summary>
    public static ManagementServer Start(IPEndPoint endpoint, NodeHost host, DataPlaneHost? dataPlane, Log log)
    {
        var options = host.Config.ManagementOptions is { } o && o.Listen.Equals(endpoint) ? o : new ManagementConfig { Listen = endpoint };
        ManagementServer s;
        try
        {
            s = new ManagementServer(options, host, dataPlane, log);
        }
        catch (System.Net.Sockets.SocketException e)
        {
            throw new HttpListenerException((int)e.SocketErrorCode, e.Message);
        }
        s._server.Start();
        log.Info("management-started", $"management API and web page on http://{endpoint}/");
        return s;
    }

    private async Task<HttpAnswer> Serve(HttpRequest request)
    {
        try
        {
            if (!_slots.Wait(0))
            {
                Interlocked.Increment(ref _server.Counters.Busy);
                return HttpServer.Simple(503, "too many management requests at once");
            }
            try
            {
                return await Route(request).ConfigureAwait(false);
            }
            finally
            {
                _slots.Release();
            }
        }
        catch (Exception e)
        {
            _log.Warn("management", $"{request.Method} {request.Path}: {e.GetType().Name}: {e.Message}");
            return HttpServer.Simple(500, "internal error");
        }
    }

    /// <summary>Constant time in the token's contents: both sides are hashed first, then compared byte by byte without an early exit.</summary>
    private bool Authorized(HttpRequest request)
    {
        if (_tokenHash is null) return true;
        var h = request.Headers.GetValueOrDefault("Authorization") ?? "";
        if (!h.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)) return false;
        var given = Lisp.Wire.Crypto.Sha256.HashData(Encoding.UTF8.GetBytes(h[7..].Trim()));
        int diff = 0;
        for (int i = 0; i < given.Length; i++) diff |= given[i] ^ _tokenHash[i];
        return diff == 0;
    }

    private async Task<HttpAnswer> Route(HttpRequest request)
    {
        string path = request.Path;
        if (request.Method != "GET")
        {
            var e = HttpServer.Simple(405, $"{request.Method} is not allowed; the management API is read-only");
            return e with { Headers = [("Allow", "GET")] };
        }
        if (path is "/" or "/index.html")
        {
            // The page holds no data (it asks for a token when the API needs one).
            return new HttpAnswer(200, "text/html; charset=utf-8", Encoding.UTF8.GetBytes(WebPage.Html), [("Content-Security-Policy", WebPage.ContentSecurityPolicy)]);
        }
        if (!Authorized(request))
        {
            Interlocked.Increment(ref _server.Counters.Unauthorized);
            return HttpServer.Simple(401, "this management API needs 'Authorization: Bearer TOKEN' ([management] token_file)") with { Headers = [("WWW-Authenticate", "Bearer")] };
        }
        try
        {
            switch (path)
            {
                case "/api/status":
                    return Json(Status(), ManagementJsonContext.Default.StatusView);
                case "/api/site-table" or "/api/map-cache" or "/api/registrations":
                    if (TablePages.Arguments(request.Query, out var error) is not var (limit, after)) return HttpServer.Simple(400, error!);
                    if (path == "/api/site-table" && after is not null && !TablePages.IsSiteCursor(after))
                        return HttpServer.Simple(400, "after is not a cursor this server gave (use the page's `next`)");
                    return path switch
                    {
                        "/api/site-table" => Json(await _pages.SiteTable(limit, after, QueryTimeout).ConfigureAwait(false), ManagementJsonContext.Default.SiteTableView),
                        "/api/map-cache" => Json(await _pages.MapCache(limit, after, QueryTimeout).ConfigureAwait(false), ManagementJsonContext.Default.MapCacheView),
                        _ => Json(await _pages.Registrations(limit, after, QueryTimeout).ConfigureAwait(false), ManagementJsonContext.Default.RegistrationsView),
                    };
                case "/api/counters":
                    return Json(await Counters().ConfigureAwait(false), ManagementJsonContext.Default.CountersView);
                case "/metrics":
                    return new HttpAnswer(200, PrometheusText.ContentType, Encoding.UTF8.GetBytes(PrometheusText.Format(Status(), await Counters().ConfigureAwait(false))));
                default:
                    return HttpServer.Simple(404, $"no such page: {path} (try /, /api/status, /api/site-table, /api/map-cache, /api/registrations, /api/counters, /metrics)");
            }
        }
        catch (Exception e) when (e is TimeoutException or InvalidOperationException)
        {
            // The control thread is busy (or stopping), or a snapshot is still being taken: say so rather than wait on.
            return HttpServer.Simple(503, $"the control thread did not answer: {e.Message}");
        }
    }

    private StatusView Status()
    {
        var c = _host.Config;
        var now = DateTimeOffset.UtcNow;
        return new StatusView
        {
            Name = c.Name,
            Version = _version,
            Roles = NodeConfig.KnownRoles.Where(c.Has).ToList(),
            MappingSystem = _host.Node.MappingSystem.Name,
            StartedAt = _startedAt,
            UptimeSeconds = (long)(now - _startedAt).TotalSeconds,
            ControlEndpoints = _host.LocalEndpoints.Select(e => e.ToString()).ToList(),
            Management = Endpoint.ToString(),
            // The node list is fixed at construction: names only, no role state.
            Nodes = _host.Nodes.All.Select(n => n.Node.Options.Name).ToList(),
            DataPlane = c.DataPlane is { } dp && _dataPlane is not null
                ? new DataPlaneStatusView
                {
                    Tun = dp.Tun, InstanceId = dp.InstanceId, Workers = dp.Workers, DataPort = dp.DataPort,
                    Offloads = _dataPlane.Engine.Offloads.Describe(), OffloadNotes = [.. _dataPlane.Engine.Offloads.Notes],
                }
                : null,
            Reachability = Reachability(c),
        };
    }

    /// <summary>The configured reachability mechanisms (immutable options: no role state read).</summary>
    private ReachabilityStatusView Reachability(NodeConfig c)
    {
        var itr = _host.Nodes.All.Select(n => n.Node.Options.Itr).FirstOrDefault(o => o is not null);
        bool probing = itr is not null && itr.ProbeInterval > TimeSpan.Zero;
        bool echo = _dataPlane is not null && c.DataPlane is { EchoNonce: true };
        return new ReachabilityStatusView
        {
            RlocProbeIntervalSeconds = probing ? itr!.ProbeInterval.TotalSeconds : null,
            RlocProbeTimeoutSeconds = probing ? itr!.EffectiveProbeTimeout.TotalSeconds : null,
            EchoNonceIntervalSeconds = echo ? c.DataPlane!.EchoNonceInterval.TotalSeconds : null,
            EchoNonceTimeoutSeconds = echo ? c.DataPlane!.EchoNonceTimeout.TotalSeconds : null,
        };
    }

    private Task<CountersView> Counters()
    {
        var dataPlane = _dataPlane;
        long queueDrops = _host.QueueDrops, sendErrors = _host.SendErrors;
        return _host.QueryAsync((nodes, now) => new CountersView
        {
            Control = Snapshots.ControlCounters(nodes, now),
            QueueDrops = queueDrops,
            SendErrors = sendErrors,
            DataPlane = Snapshots.DataPlane(dataPlane), // on the control thread too: its map-cache writer is owned there
            RlocProbing = Snapshots.RlocProbing(nodes),
        }, QueryTimeout).ContinueWith(t =>
        {
            var v = t.GetAwaiter().GetResult();
            v.Management = ServerView();
            v.Log = new LogCountersView { LinesPerKindPerSecond = _log.LinesPerKindPerSecond, Suppressed = _log.Suppressed, Dropped = _log.Dropped };
            return v;
        }, TaskScheduler.Default);
    }

    private ManagementServerView ServerView() => new()
    {
        ActiveConnections = Volatile.Read(ref _server.Counters.Active),
        MaxConnections = _options.MaxConnections,
        HeaderTimeoutSeconds = _options.HeaderTimeout.TotalSeconds,
        IdleTimeoutSeconds = _options.IdleTimeout.TotalSeconds,
        MaxBody = _options.MaxBody,
        TokenRequired = _tokenHash is not null,
        Events = _server.Counters.Events(),
        Snapshots = _pages.SnapshotCount,
        SnapshotVisits = _pages.VisitCount,
        SnapshotBuilderLowPriority = BackgroundBuilder.LowPriority,
        LongestSnapshotReadMs = Math.Round(_pages.LongestReadMs, 3),
    };

    private static HttpAnswer Json<T>(T value, JsonTypeInfo<T> type) =>
        new(200, "application/json; charset=utf-8", JsonSerializer.SerializeToUtf8Bytes(value, type));

    public void Dispose() => _server.Dispose();
}
