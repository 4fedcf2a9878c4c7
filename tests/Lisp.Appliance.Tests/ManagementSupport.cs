using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Lisp.Appliance.Tests.Support;
using Lisp.TestSupport;

namespace Lisp.Appliance.Tests;

/// <summary>
/// One `lisp-decent run` node on 127.0.50.1 (ETR + ITR + map-server + map-resolver for itself, the demo EIDs)
/// with [management] on 127.0.50.1:free port; it has asked its ITR for [0]10.1.1.1/32 and installed the answer.
/// </summary>
public sealed class ManagementNode : IDisposable
{
    public const string Network = "127.0.50";
    public static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);

    public ManagementNode()
    {
        Topology = new Topology(Network);
        ManagementPort = FreeTcpPort(Topology.Address(1));
        Management = $"{Topology.Address(1)}:{ManagementPort}";
        Process = Topology.StartNode("mgmt", Config(Topology.Address(1), Management), "--request", "[0]10.1.1.1/32");
        Process.WaitForLine(@"management-started management API and web page on http://" + Management.Replace(".", @"\.", StringComparison.Ordinal), Wait);
        Process.WaitForLine(@"map-notify-accepted .*\[0\]10\.1\.1\.0/24", Wait);
        Process.WaitForLine(@"map-cache-install \[0\]10\.1\.1\.0/24 -> ", Wait);
    }

    public Topology Topology { get; }
    public ApplianceProcess Process { get; }
    public int ManagementPort { get; }
    /// <summary>"127.0.50.1:PORT" of the management API.</summary>
    public string Management { get; }
    public string ControlEndpoint => Topology.Endpoint(1);

    public static string Config(string address, string? management) => $$"""
        [node]
        name = "mgmt-demo"
        roles = ["itr", "etr", "map-server", "map-resolver"]
        rlocs = ["{{address}}"]
        listen = ["{{address}}"]
        control_port = {PORT}
        log_level = "info"

        [mapping]
        map_servers = ["{{address}}"]
        map_resolvers = ["{{address}}"]
        key = "demo-key"
        algorithm = "hmac-sha256"

        [etr]
        register_interval = "60s"
        record_ttl = "3m"
        want_map_notify = true
        proxy_reply = true

        [[site]]
        name = "demo"
        key = "demo-key"
        eid_prefixes = ["[0]10.1.0.0/16", "[0]'demo-node'"]
        accept_more_specifics = true

        [[database]]
        eid = "[0]10.1.1.0/24"
        rlocs = [{ address = "{{address}}", priority = 1, weight = 100 }]

        [[database]]
        eid = "[0]'demo-node'"
        """ + (management is null ? "" : $"\n\n[management]\nlisten = \"{management}\"\n");

    /// <summary>A TCP port that was free on <paramref name="address"/> a moment ago.</summary>
    public static int FreeTcpPort(string address)
    {
        var l = new TcpListener(IPAddress.Parse(address), 0);
        l.Start();
        int p = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return p;
    }

    /// <summary>GET on the management API: status code, content type and body (bounded).</summary>
    public (int Status, string ContentType, string Body) Get(string path) => Http.Send(Management, "GET", path);

    public void Dispose() => Topology.Dispose();
}

/// <summary>Raw HTTP/1.1 over a socket, so tests can also send what a well-behaved client would not.</summary>
public static class Http
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    public static (int Status, string ContentType, string Body) Send(string endpoint, string method, string path, string? body = null)
    {
        var head = $"{method} {path} HTTP/1.1\r\nHost: {endpoint}\r\nConnection: close\r\n" +
            (body is null ? "" : $"Content-Type: text/plain\r\nContent-Length: {Encoding.UTF8.GetByteCount(body)}\r\n") + "\r\n" + (body ?? "");
        return Parse(SendRaw(endpoint, Encoding.UTF8.GetBytes(head)));
    }

    /// <summary>Sends bytes, half-closes, reads the answer to EOF (bounded); returns what arrived.</summary>
    public static string SendRaw(string endpoint, byte[] request)
    {
        var ep = IPEndPoint.Parse(endpoint);
        using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveTimeout = (int)Timeout.TotalMilliseconds, SendTimeout = (int)Timeout.TotalMilliseconds };
        s.Connect(ep);
        s.Send(request);
        var sb = new MemoryStream();
        var buf = new byte[16384];
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < Timeout)
        {
            int n;
            try
            {
                n = s.Receive(buf);
            }
            catch (SocketException)
            {
                break;
            }
            if (n == 0) break;
            sb.Write(buf, 0, n);
        }
        return Encoding.UTF8.GetString(sb.ToArray());
    }

    public static (int Status, string ContentType, string Body) Parse(string raw)
    {
        int end = raw.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        Assert.True(end > 0, $"not an HTTP response: {raw}");
        var lines = raw[..end].Split("\r\n");
        int status = int.Parse(lines[0].Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        string type = lines.FirstOrDefault(l => l.StartsWith("Content-Type:", StringComparison.OrdinalIgnoreCase))?[13..].Trim() ?? "";
        bool chunked = lines.Any(l => l.StartsWith("Transfer-Encoding:", StringComparison.OrdinalIgnoreCase) && l.Contains("chunked", StringComparison.OrdinalIgnoreCase));
        string body = raw[(end + 4)..];
        if (chunked)
        {
            var sb = new StringBuilder();
            while (true)
            {
                int eol = body.IndexOf("\r\n", StringComparison.Ordinal);
                int size = int.Parse(body[..eol], System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture);
                if (size == 0) break;
                sb.Append(body.AsSpan(eol + 2, size));
                body = body[(eol + 2 + size + 2)..];
            }
            body = sb.ToString();
        }
        return (status, type, body);
    }
}

/// <summary>Headless Debian chromium, as the web page's real reader.</summary>
public static class Chromium
{
    public static string? Path =>
        new[] { "/usr/bin/chromium", "/usr/bin/chromium-browser" }.FirstOrDefault(File.Exists);

    /// <summary>Loads <paramref name="url"/>, lets its scripts run for a few (virtual) seconds and returns the DOM; bounded.</summary>
    public static (string Dom, string Stderr) DumpDom(string url, TimeSpan timeout)
    {
        var profile = Directory.CreateTempSubdirectory("lisp-mgmt-chromium-").FullName;
        try
        {
            var psi = new ProcessStartInfo(Path ?? throw new InvalidOperationException("chromium is not installed"))
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            foreach (var a in new[] { "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-dev-shm-usage", $"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom", url })
            {
                psi.ArgumentList.Add(a);
            }
            using var p = System.Diagnostics.Process.Start(psi)!;
            var so = p.StandardOutput.ReadToEndAsync();
            var se = p.StandardError.ReadToEndAsync();
            if (!p.WaitForExit(timeout))
            {
                p.Kill(entireProcessTree: true);
                p.WaitForExit(5000);
                throw new TimeoutException($"chromium --dump-dom {url} did not finish within {timeout.TotalSeconds} s");
            }
            p.WaitForExit();
            return (so.Result, se.Result);
        }
        finally
        {
            try
            {
                Directory.Delete(profile, recursive: true);
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }
    }
}
