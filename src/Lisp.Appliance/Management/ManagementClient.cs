using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Lisp.Appliance.Management;

/// <summary>
/// A small HTTP/1.1 GET client for `lisp-decent show` (one request per connection, Connection: close, every
/// step bounded by one deadline). Enough for the management API; keeps HttpClient out of the binary.
/// </summary>
public static class ManagementClient
{
    public const int MaxResponseBytes = 16 << 20;

    /// <summary>GETs <paramref name="path"/>; throws <see cref="IOException"/> (refused, timed out, bad response).</summary>
    public static (int Status, string Body) Get(IPEndPoint server, string path, TimeSpan timeout, string? token = null)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            return GetAsync(server, path, token, cts.Token).GetAwaiter().GetResult();
        }
        catch (OperationCanceledException)
        {
            throw new IOException($"no answer from {server} within {timeout.TotalSeconds:0.#} s");
        }
        catch (SocketException e)
        {
            throw new IOException($"cannot reach {server}: {e.Message}");
        }
    }

    private static async Task<(int, string)> GetAsync(IPEndPoint server, string path, string? bearer, CancellationToken token)
    {
        using var socket = new Socket(server.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(server, token).ConfigureAwait(false);
        using var stream = new NetworkStream(socket, ownsSocket: false);
        string auth = bearer is null ? "" : $"Authorization: Bearer {bearer}\r\n";
        var request = $"GET {path} HTTP/1.1\r\nHost: {server}\r\nAccept: application/json, text/plain\r\nUser-Agent: lisp-decent-show\r\n{auth}Connection: close\r\n\r\n";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(request), token).ConfigureAwait(false);

        var buffer = new MemoryStream();
        var chunk = new byte[16384];
        int n;
        while ((n = await stream.ReadAsync(chunk, token).ConfigureAwait(false)) > 0)
        {
            buffer.Write(chunk, 0, n);
            if (buffer.Length > MaxResponseBytes) throw new IOException($"response from {server} is larger than {MaxResponseBytes} bytes");
        }
        return Parse(buffer.ToArray(), server);
    }

    /// <summary>Splits a complete response (read to EOF) into status and body (Content-Length or chunked).</summary>
    public static (int Status, string Body) Parse(byte[] raw, IPEndPoint? server = null)
    {
        int end = raw.AsSpan().IndexOf("\r\n\r\n"u8);
        if (end < 0) throw new IOException($"incomplete HTTP response from {server}");
        var head = Encoding.ASCII.GetString(raw, 0, end).Split("\r\n");
        var status = head[0].Split(' ', 3);
        if (status.Length < 2 || !status[0].StartsWith("HTTP/1.", StringComparison.Ordinal) || !int.TryParse(status[1], NumberStyles.None, CultureInfo.InvariantCulture, out int code))
        {
            throw new IOException($"not an HTTP response from {server}: '{head[0]}'");
        }
        bool chunked = false;
        long? length = null;
        foreach (var h in head.Skip(1))
        {
            int colon = h.IndexOf(':');
            if (colon <= 0) continue;
            var name = h[..colon].Trim();
            var value = h[(colon + 1)..].Trim();
            if (name.Equals("Transfer-Encoding", StringComparison.OrdinalIgnoreCase) && value.Contains("chunked", StringComparison.OrdinalIgnoreCase)) chunked = true;
            if (name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase) && long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var l)) length = l;
        }
        var body = raw.AsSpan(end + 4);
        if (chunked) return (code, Encoding.UTF8.GetString(Dechunk(body, server)));
        if (length is { } len)
        {
            if (len > body.Length) throw new IOException($"truncated HTTP response from {server} ({body.Length} of {len} bytes)");
            body = body[..(int)len];
        }
        return (code, Encoding.UTF8.GetString(body));
    }

    private static byte[] Dechunk(ReadOnlySpan<byte> body, IPEndPoint? server)
    {
        var output = new MemoryStream();
        while (true)
        {
            int eol = body.IndexOf("\r\n"u8);
            if (eol < 0) throw new IOException($"bad chunked response from {server}");
            var sizeText = Encoding.ASCII.GetString(body[..eol]).Split(';')[0].Trim();
            if (!int.TryParse(sizeText, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out int size) || size < 0 || eol + 2 + size > body.Length)
            {
                throw new IOException($"bad chunk in response from {server}");
            }
            if (size == 0) return output.ToArray();
            output.Write(body.Slice(eol + 2, size));
            body = body[(eol + 2 + size)..];
            if (body.StartsWith("\r\n"u8)) body = body[2..];
        }
    }
}
