using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Lisp.Appliance.Config;
using Lisp.Appliance.Hosting;

namespace Lisp.Appliance.Management;

/// <summary>
/// The operations surface on [management] listen: a read-only HTTP API (JSON), Prometheus metrics and a
/// self-contained web page. Built on <see cref="HttpListener"/> (managed on Linux, trim/AOT clean, about half
/// Kestrel's size in the binary). Role state is only read on the control thread (<see cref="NodeHost.QueryAsync"/>,
/// bounded wait); at most <see cref="MaxConcurrent"/> requests are served at once, the rest get 503.
/// The listener is bound to the configured address and only answers requests whose Host header names it
/// (HttpListener matches the prefix), which also keeps DNS-rebinding pages away from the API.
/// </summary>
public sealed class ManagementServer : IDisposable
{
    public const int MaxConcurrent = 8;
    public static readonly TimeSpan QueryTimeout = TimeSpan.FromSeconds(2);

    private readonly HttpListener _listener = new();
    private readonly NodeHost _host;
    private readonly DataPlaneHost? _dataPlane;
    private readonly Log _log;
    private readonly SemaphoreSlim _slots = new(MaxConcurrent, MaxConcurrent);
    private readonly DateTimeOffset _startedAt = DateTimeOffset.UtcNow;
    private readonly string _version = typeof(ManagementServer).Assembly.GetName().Version?.ToString() ?? "";
    private Task? _loop;

    private ManagementServer(IPEndPoint endpoint, NodeHost host, DataPlaneHost? dataPlane, Log log)
    {
        Endpoint = endpoint;
        _host = host;
        _dataPlane = dataPlane;
        _log = log;
        _listener.Prefixes.Add($"http://{endpoint}/");
        _listener.IgnoreWriteExceptions = true;
    }

    public IPEndPoint Endpoint { get; }

    /// <summary>Binds and starts serving; throws <see cref="HttpListenerException"/> (address in use, not local ...).</summary>
    public static ManagementServer Start(IPEndPoint endpoint, NodeHost host, DataPlaneHost? dataPlane, Log log)
    {
        var s = new ManagementServer(endpoint, host, dataPlane, log);
        try
        {
            s._listener.Start();
        }
        catch
        {
            s._listener.Close();
            throw;
        }
        s._loop = Task.Run(s.AcceptLoop);
        log.Info("management-started", $"management API and web page on http://{endpoint}/");
        return s;
    }

    private async Task AcceptLoop()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext ctx;
            try
            {
                ctx = await _listener.GetContextAsync().ConfigureAwait(false);
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                if (!_listener.IsListening) return;
                _log.Warn("management", $"accept failed: {e.Message}");
                continue;
            }
            _ = Task.Run(() => Serve(ctx));
        }
    }

    private async Task Serve(HttpListenerContext ctx)
    {
        var response = ctx.Response;
        try
        {
            if (!_slots.Wait(0))
            {
                await Error(response, 503, "too many management requests at once").ConfigureAwait(false);
                return;
            }
            try
            {
                await Route(ctx.Request, response).ConfigureAwait(false);
            }
            finally
            {
                _slots.Release();
            }
        }
        catch (ObjectDisposedException)
        {
            // HttpListener answered the request itself (e.g. 411 for a body without a length) and closed it
        }
        catch (Exception e)
        {
            _log.Warn("management", $"{ctx.Request.HttpMethod} {ctx.Request.Url?.AbsolutePath}: {e.GetType().Name}: {e.Message}");
            try
            {
                await Error(response, 500, "internal error").ConfigureAwait(false);
            }
            catch (Exception)
            {
                // the client is gone
            }
        }
        finally
        {
            try
            {
                response.Close();
            }
            catch (Exception)
            {
                // already closed or the client is gone
            }
        }
    }

    private async Task Route(HttpListenerRequest request, HttpListenerResponse response)
    {
        string path = request.Url?.AbsolutePath ?? "/";
        if (request.HttpMethod != "GET")
        {
            response.AddHeader("Allow", "GET");
            await Error(response, 405, $"{request.HttpMethod} is not allowed; the management API is read-only").ConfigureAwait(false);
            return;
        }
        try
        {
            switch (path)
            {
                case "/" or "/index.html":
                    response.AddHeader("Content-Security-Policy", WebPage.ContentSecurityPolicy);
                    await Write(response, 200, "text/html; charset=utf-8", WebPage.Html).ConfigureAwait(false);
                    return;
                case "/api/status":
                    await Json(response, Status(), ManagementJsonContext.Default.StatusView).ConfigureAwait(false);
                    return;
                case "/api/site-table":
                    await Json(response, await _host.QueryAsync(Snapshots.SiteTable, QueryTimeout).ConfigureAwait(false), ManagementJsonContext.Default.SiteTableView).ConfigureAwait(false);
                    return;
                case "/api/map-cache":
                    await Json(response, await _host.QueryAsync(Snapshots.MapCache, QueryTimeout).ConfigureAwait(false), ManagementJsonContext.Default.MapCacheView).ConfigureAwait(false);
                    return;
                case "/api/registrations":
                    await Json(response, await _host.QueryAsync(Snapshots.Registrations, QueryTimeout).ConfigureAwait(false), ManagementJsonContext.Default.RegistrationsView).ConfigureAwait(false);
                    return;
                case "/api/counters":
                    await Json(response, await Counters().ConfigureAwait(false), ManagementJsonContext.Default.CountersView).ConfigureAwait(false);
                    return;
                case "/metrics":
                    await Write(response, 200, PrometheusText.ContentType, PrometheusText.Format(Status(), await Counters().ConfigureAwait(false))).ConfigureAwait(false);
                    return;
                default:
                    await Error(response, 404, $"no such page: {path} (try /, /api/status, /api/site-table, /api/map-cache, /api/registrations, /api/counters, /metrics)").ConfigureAwait(false);
                    return;
            }
        }
        catch (Exception e) when (e is TimeoutException or InvalidOperationException)
        {
            // The control thread is busy (or stopping): say so rather than wait on.
            await Error(response, 503, $"the control thread did not answer: {e.Message}").ConfigureAwait(false);
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
                ? new DataPlaneStatusView { Tun = dp.Tun, InstanceId = dp.InstanceId, Workers = dp.Workers, DataPort = dp.DataPort }
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
        }, QueryTimeout);
    }

    private static Task Json<T>(HttpListenerResponse response, T value, JsonTypeInfo<T> type) =>
        Write(response, 200, "application/json; charset=utf-8", JsonSerializer.Serialize(value, type));

    private static Task Error(HttpListenerResponse response, int status, string message) =>
        Write(response, status, "application/json; charset=utf-8", JsonSerializer.Serialize(new ErrorView { Error = message }, ManagementJsonContext.Default.ErrorView));

    private static async Task Write(HttpListenerResponse response, int status, string contentType, string body)
    {
        var bytes = Encoding.UTF8.GetBytes(body);
        response.StatusCode = status;
        response.ContentType = contentType;
        response.AddHeader("Cache-Control", "no-store");
        response.AddHeader("X-Content-Type-Options", "nosniff");
        response.ContentLength64 = bytes.Length;
        await response.OutputStream.WriteAsync(bytes).ConfigureAwait(false);
    }

    public void Dispose()
    {
        try
        {
            _listener.Stop();
            _listener.Close();
        }
        catch (ObjectDisposedException)
        {
        }
        try
        {
            _loop?.Wait(TimeSpan.FromSeconds(2));
        }
        catch (AggregateException)
        {
        }
    }
}
