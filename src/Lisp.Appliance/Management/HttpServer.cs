using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Lisp.Appliance.Management;

/// <summary>One parsed request: method, path (raw, not decoded), query parameters (decoded), headers.</summary>
public sealed class HttpRequest
{
    public string Method { get; init; } = "";
    public string Path { get; init; } = "/";
    public Dictionary<string, string> Query { get; init; } = new(StringComparer.Ordinal);
    public Dictionary<string, string> Headers { get; init; } = new(StringComparer.OrdinalIgnoreCase);
}

/// <summary>What a handler answers.</summary>
public sealed record HttpAnswer(int Status, string ContentType, byte[] Body, IReadOnlyList<(string Name, string Value)>? Headers = null);

/// <summary>Connection-level events of the management server, counted since start (thread-safe).</summary>
public sealed class HttpServerCounters
{
    public long Accepted, Refused, HeaderTimeouts, IdleClosed, HeaderTooLarge, BodyTooLarge, BadRequests, Unauthorized, Busy, Requests;
    public int Active;

    public Dictionary<string, long> Events() => new(StringComparer.Ordinal)
    {
        ["connections-accepted"] = Interlocked.Read(ref Accepted),
        ["connections-refused"] = Interlocked.Read(ref Refused),
        ["header-timeouts"] = Interlocked.Read(ref HeaderTimeouts),
        ["idle-closed"] = Interlocked.Read(ref IdleClosed),
        ["header-too-large"] = Interlocked.Read(ref HeaderTooLarge),
        ["body-too-large"] = Interlocked.Read(ref BodyTooLarge),
        ["bad-requests"] = Interlocked.Read(ref BadRequests),
        ["unauthorized"] = Interlocked.Read(ref Unauthorized),
        ["busy"] = Interlocked.Read(ref Busy),
        ["requests"] = Interlocked.Read(ref Requests),
    };
}

/// <summary>
/// A small HTTP/1.1 server on a socket, for the management API (issue 12: HttpListener has no connection limit,
/// and its timers restart on every read, so a slowloris client was never closed). Every resource is bounded:
/// at most <c>maxConnections</c> open connections (the next is answered 503 and closed, counted), a request's
/// head and body must arrive within <c>headerTimeout</c> of its first byte, a kept-alive connection waits
/// <c>idleTimeout</c> for the next request, heads are at most 16 KiB and bodies at most <c>maxBody</c>. Each refusal
/// and timeout is counted (<see cref="Counters"/>). Only requests whose Host header names the listen address are
/// served (DNS rebinding), unless it listens on the any-address.
/// </summary>
public sealed class HttpServer : IDisposable
{
    public const int MaxHeadBytes = 16 * 1024;
    private static readonly TimeSpan WriteTimeout = TimeSpan.FromSeconds(10);

    private readonly Socket _listener;
    private readonly Func<HttpRequest, Task<HttpAnswer>> _handler;
    private readonly int _maxConnections, _maxBody;
    private readonly TimeSpan _headerTimeout, _idleTimeout;
    private readonly string _host;
    private readonly bool _anyHost;
    private readonly CancellationTokenSource _stop = new();
    private Task? _loop;

    public HttpServer(IPEndPoint endpoint, int maxConnections, TimeSpan headerTimeout, TimeSpan idleTimeout, int maxBody, Func<HttpRequest, Task<HttpAnswer>> handler)
    {
        _handler = handler;
        _maxConnections = maxConnections;
        _headerTimeout = headerTimeout;
        _idleTimeout = idleTimeout;
        _maxBody = maxBody;
        _host = endpoint.ToString();
        _anyHost = endpoint.Address.Equals(IPAddress.Any) || endpoint.Address.Equals(IPAddress.IPv6Any);
        _listener = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            _listener.Bind(endpoint);
            _listener.Listen(128);
        }
        catch
        {
            _listener.Dispose();
            throw;
        }
        Endpoint = (IPEndPoint)_listener.LocalEndPoint!;
    }

    public IPEndPoint Endpoint { get; }
    public HttpServerCounters Counters { get; } = new();
    public int MaxConnections => _maxConnections;

    public void Start() => _loop = Task.Run(AcceptLoop);

    private async Task AcceptLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket s;
            try
            {
                s = await _listener.AcceptAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            catch (SocketException)
            {
                // EMFILE and friends: do not spin on them
                try
                {
                    await Task.Delay(50, _stop.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                continue;
            }
            if (Interlocked.Increment(ref Counters.Active) > _maxConnections)
            {
                Interlocked.Decrement(ref Counters.Active);
                Interlocked.Increment(ref Counters.Refused);
                Refuse(s);
                continue;
            }
            Interlocked.Increment(ref Counters.Accepted);
            _ = Task.Run(() => Connection(s));
        }
    }

    /// <summary>Over the limit: one non-blocking 503 (it fits the socket buffer) and close; nothing waits on the client.</summary>
    private static void Refuse(Socket s)
    {
        try
        {
            s.Blocking = false;
            s.Send("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: 49\r\nConnection: close\r\n\r\n{\"error\":\"too many management connections open\"}"u8);
            s.Shutdown(SocketShutdown.Send);
        }
        catch (SocketException)
        {
        }
        finally
        {
            s.Dispose();
        }
    }

    private async Task Connection(Socket s)
    {
        var buffer = new byte[MaxHeadBytes];
        int have = 0;
        try
        {
            s.NoDelay = true;
            while (!_stop.IsCancellationRequested)
            {
                // Wait for the request's first byte (idle), then for the whole head from there (header timeout).
                if (have == 0)
                {
                    int n = await Receive(s, buffer.AsMemory(0), _idleTimeout).ConfigureAwait(false);
                    if (n < 0)
                    {
                        Interlocked.Increment(ref Counters.IdleClosed);
                        return;
                    }
                    if (n == 0) return;
                    have = n;
                }
                var deadline = DateTime.UtcNow + _headerTimeout;
                int end;
                while ((end = buffer.AsSpan(0, have).IndexOf("\r\n\r\n"u8)) < 0)
                {
                    if (have == buffer.Length)
                    {
                        Interlocked.Increment(ref Counters.HeaderTooLarge);
                        await Send(s, Simple(431, "request head too large"), close: true).ConfigureAwait(false);
                        return;
                    }
                    int n = await Receive(s, buffer.AsMemory(have), deadline - DateTime.UtcNow).ConfigureAwait(false);
                    if (n < 0)
                    {
                        Interlocked.Increment(ref Counters.HeaderTimeouts);
                        await Send(s, Simple(408, "request head not received in time"), close: true).ConfigureAwait(false);
                        return;
                    }
                    if (n == 0) return;
                    have += n;
                }
                var request = Parse(Encoding.Latin1.GetString(buffer, 0, end), out bool keepAlive, out long contentLength, out string? error);
                if (request is null)
                {
                    Interlocked.Increment(ref Counters.BadRequests);
                    await Send(s, Simple(400, error ?? "bad request"), close: true).ConfigureAwait(false);
                    return;
                }
                if (contentLength > _maxBody)
                {
                    Interlocked.Increment(ref Counters.BodyTooLarge);
                    await Send(s, Simple(413, $"request body larger than {_maxBody} bytes"), close: true).ConfigureAwait(false);
                    return;
                }
                // Skip the body (the API only reads) within the same deadline.
                int consumed = end + 4;
                long bodyLeft = contentLength;
                int inBuffer = (int)Math.Min(bodyLeft, have - consumed);
                consumed += inBuffer;
                bodyLeft -= inBuffer;
                while (bodyLeft > 0)
                {
                    int n = await Receive(s, buffer.AsMemory(0, (int)Math.Min(buffer.Length, bodyLeft)), deadline - DateTime.UtcNow).ConfigureAwait(false);
                    if (n < 0)
                    {
                        Interlocked.Increment(ref Counters.HeaderTimeouts);
                        return;
                    }
                    if (n == 0) return;
                    bodyLeft -= n;
                }
                // Keep what follows (a pipelined request) at the buffer's start.
                int rest = Math.Max(0, have - consumed);
                if (rest > 0) Buffer.BlockCopy(buffer, consumed, buffer, 0, rest);
                have = rest;

                HttpAnswer answer;
                if (!_anyHost && !string.Equals(request.Headers.GetValueOrDefault("Host"), _host, StringComparison.OrdinalIgnoreCase))
                {
                    Interlocked.Increment(ref Counters.BadRequests);
                    answer = Simple(400, "the Host header does not name this server");
                    keepAlive = false;
                }
                else
                {
                    Interlocked.Increment(ref Counters.Requests);
                    answer = await _handler(request).ConfigureAwait(false);
                }
                if (!await Send(s, answer, close: !keepAlive).ConfigureAwait(false) || !keepAlive) return;
            }
        }
        catch (Exception e) when (e is SocketException or IOException or ObjectDisposedException)
        {
            // the client went away
        }
        finally
        {
            Interlocked.Decrement(ref Counters.Active);
            try
            {
                s.Shutdown(SocketShutdown.Both);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
            }
            s.Dispose();
        }
    }

    /// <summary>Bytes read, 0 at EOF, -1 when <paramref name="timeout"/> passed first.</summary>
    private async Task<int> Receive(Socket s, Memory<byte> into, TimeSpan timeout)
    {
        if (timeout <= TimeSpan.Zero) return -1;
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        cts.CancelAfter(timeout);
        try
        {
            return await s.ReceiveAsync(into, SocketFlags.None, cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return -1;
        }
    }

    private async Task<bool> Send(Socket s, HttpAnswer a, bool close)
    {
        var head = new StringBuilder(256);
        head.Append(CultureInfo.InvariantCulture, $"HTTP/1.1 {a.Status} {Reason(a.Status)}\r\n");
        head.Append(CultureInfo.InvariantCulture, $"Content-Type: {a.ContentType}\r\nContent-Length: {a.Body.Length}\r\n");
        head.Append("Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n");
        if (a.Headers is not null) foreach (var (n, v) in a.Headers) head.Append(CultureInfo.InvariantCulture, $"{n}: {v}\r\n");
        head.Append(close ? "Connection: close\r\n\r\n" : "Connection: keep-alive\r\n\r\n");
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        cts.CancelAfter(WriteTimeout); // a reader that does not read loses its connection
        try
        {
            await s.SendAsync(Encoding.ASCII.GetBytes(head.ToString()), SocketFlags.None, cts.Token).ConfigureAwait(false);
            int sent = 0;
            while (sent < a.Body.Length) sent += await s.SendAsync(a.Body.AsMemory(sent), SocketFlags.None, cts.Token).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>Parses a request head (without the blank line); null with <paramref name="error"/> when it is not HTTP/1.x.</summary>
    public static HttpRequest? Parse(string head, out bool keepAlive, out long contentLength, out string? error)
    {
        keepAlive = false;
        contentLength = 0;
        error = null;
        var lines = head.Split("\r\n");
        var parts = lines[0].Split(' ');
        if (parts.Length != 3 || parts[0].Length == 0 || !parts[0].All(char.IsAsciiLetterUpper) || !parts[1].StartsWith('/') || parts[2] is not ("HTTP/1.1" or "HTTP/1.0"))
        {
            error = "not an HTTP/1.x request line";
            return null;
        }
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        for (int i = 1; i < lines.Length; i++)
        {
            int colon = lines[i].IndexOf(':');
            if (colon <= 0)
            {
                error = "bad header line";
                return null;
            }
            var name = lines[i][..colon].Trim();
            var value = lines[i][(colon + 1)..].Trim();
            if (headers.ContainsKey(name) && name.Equals("Host", StringComparison.OrdinalIgnoreCase))
            {
                error = "more than one Host header";
                return null;
            }
            headers[name] = value;
        }
        if (headers.ContainsKey("Transfer-Encoding"))
        {
            error = "request bodies must have a Content-Length";
            return null;
        }
        if (headers.TryGetValue("Content-Length", out var cl) && (!long.TryParse(cl, NumberStyles.None, CultureInfo.InvariantCulture, out contentLength) || contentLength < 0))
        {
            error = "bad Content-Length";
            return null;
        }
        bool http11 = parts[2] == "HTTP/1.1";
        string connection = headers.GetValueOrDefault("Connection") ?? "";
        keepAlive = http11 ? !connection.Contains("close", StringComparison.OrdinalIgnoreCase) : connection.Contains("keep-alive", StringComparison.OrdinalIgnoreCase);
        string target = parts[1];
        int q = target.IndexOf('?');
        var query = new Dictionary<string, string>(StringComparer.Ordinal);
        if (q >= 0)
        {
            foreach (var pair in target[(q + 1)..].Split('&', StringSplitOptions.RemoveEmptyEntries))
            {
                int eq = pair.IndexOf('=');
                var k = Uri.UnescapeDataString(eq < 0 ? pair : pair[..eq]);
                var v = eq < 0 ? "" : Uri.UnescapeDataString(pair[(eq + 1)..].Replace('+', ' '));
                query[k] = v;
            }
        }
        return new HttpRequest { Method = parts[0], Path = q < 0 ? target : target[..q], Query = query, Headers = headers };
    }

    public static HttpAnswer Simple(int status, string message) =>
        new(status, "application/json; charset=utf-8", Encoding.UTF8.GetBytes(System.Text.Json.JsonSerializer.Serialize(new ErrorView { Error = message }, ManagementJsonContext.Default.ErrorView)));

    private static string Reason(int status) => status switch
    {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    };

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Dispose();
        try
        {
            _loop?.Wait(TimeSpan.FromSeconds(2));
        }
        catch (AggregateException)
        {
        }
    }
}
