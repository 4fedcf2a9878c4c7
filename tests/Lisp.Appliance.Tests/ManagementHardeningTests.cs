using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Lisp.Appliance.Config;
using Lisp.Appliance.Tests.Support;
using Lisp.TestSupport;

namespace Lisp.Appliance.Tests;

/// <summary>
/// Issue 12: the management API must not stall the control plane (paged tables from published snapshots) and
/// must bound what clients can hold (connection limit, header/idle timeouts, body limit, optional bearer token).
/// Process-level: a `lisp-decent run` map-server with [management] on loopback.
/// </summary>
public sealed class ManagementHardeningTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    private static (Topology Topology, ApplianceProcess Process, string Management) Start(string network, string extra = "")
    {
        var topology = new Topology(network);
        string node = topology.Address(1);
        string management = $"{node}:{ManagementNode.FreeTcpPort(node)}";
        var toml = NodeToml.MapServer("mh", node, [new("load", "load-key", "[0]10.0.0.0/8")], registrationTimeout: "1h", management: management) + "\n" + extra + "\n";
        var process = topology.StartNode("mh", toml);
        process.WaitForLine("management-started", Wait);
        return (topology, process, management);
    }

    private static JsonElement Json(string body) => JsonDocument.Parse(body).RootElement;

    private static JsonElement ManagementCounters(string management)
    {
        var (status, _, body) = Http.Send(management, "GET", "/api/counters");
        Assert.Equal(200, status);
        return Json(body).GetProperty("management");
    }

    private static JsonElement Register(Topology topology, int eids)
    {
        var (rc, stdout, stderr) = ApplianceProcess.Run(TimeSpan.FromSeconds(120), ["load", "register", "--target", topology.Endpoint(1),
            "--bind", topology.Address(2), "--eid-base", "[0]10.0.0.0/32", "--eids", eids.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--key", "load-key", "--ttl", "1440", "--window", "256", "--timeout", "2s", "--duration", "100s", "--json"]);
        Assert.True(rc == 0, $"load register exited {rc}\n{stdout}\n{stderr}");
        return JsonDocument.Parse(stdout).RootElement.GetProperty("steps")[0];
    }

    private static JsonElement Requests(Topology topology, int eids, int seconds)
    {
        var (rc, stdout, stderr) = ApplianceProcess.Run(TimeSpan.FromSeconds(seconds + 60), ["load", "request", "--target", topology.Endpoint(1),
            "--bind", topology.Address(3), "--eids", eids.ToString(System.Globalization.CultureInfo.InvariantCulture), "--rloc", topology.Address(2),
            "--window", "64", "--duration", $"{seconds}s", "--timeout", "2s", "--json"]);
        Assert.True(rc == 0, $"load request exited {rc}\n{stdout}\n{stderr}");
        return JsonDocument.Parse(stdout).RootElement.GetProperty("steps")[0];
    }

    [Fact]
    public void Tables_come_in_pages_with_a_total_and_a_cursor_that_walks_every_row_once()
    {
        var (topology, process, management) = Start("127.0.66");
        using var _ = topology;
        Assert.Equal(250, Register(topology, 250).GetProperty("accepted").GetInt64());

        var first = Json(Http.Send(management, "GET", "/api/site-table").Body);
        Assert.Equal(251, first.GetProperty("total").GetInt32());            // the configured /8 and 250 /32s
        Assert.Equal(1000, first.GetProperty("limit").GetInt32());
        Assert.Equal(JsonValueKind.Null, first.GetProperty("next").ValueKind);

        var seen = new List<string>();
        string? after = null;
        int pages = 0;
        do
        {
            var (status, _, body) = Http.Send(management, "GET", "/api/site-table?limit=100" + (after is null ? "" : "&after=" + Uri.EscapeDataString(after)));
            Assert.Equal(200, status);
            var page = Json(body);
            var ms = page.GetProperty("map-servers")[0];
            Assert.Equal(251, ms.GetProperty("total").GetInt32());
            var rows = ms.GetProperty("rows").EnumerateArray().Select(r => r.GetProperty("eid").GetString()!).ToList();
            Assert.True(rows.Count <= 100);
            seen.AddRange(rows);
            after = page.GetProperty("next").ValueKind == JsonValueKind.Null ? null : page.GetProperty("next").GetString();
            pages++;
        } while (after is not null && pages < 10);
        Assert.Equal(3, pages);
        Assert.Equal(251, seen.Count);
        Assert.Equal(251, seen.Distinct().Count());
        // Pages follow the table (registered EIDs by shard and address), then the configured prefix nobody registered.
        var expected = Enumerable.Range(0, 250).Select(i => $"[0]10.0.{i / 256}.{i % 256}/32").Append("[0]10.0.0.0/8").ToHashSet();
        Assert.True(expected.SetEquals(seen), string.Join(" ", seen.Except(expected).Take(5)));
        Assert.Equal("[0]10.0.0.0/8", seen[^1]);

        // `show site-table` follows the cursors: with 100-row pages it still prints all 251 rows, each once.
        var (rc, shown, err) = ApplianceProcess.Run(TimeSpan.FromSeconds(60), ["show", "site-table", "--management", management, "--page-rows", "100"]);
        Assert.True(rc == 0, $"show exited {rc}: {err}");
        Assert.Contains("250 of 251 EID-prefixes registered", shown);
        foreach (var eid in seen) Assert.Equal(1, shown.Split('\n').Count(line => line.Contains(" " + eid + " ", StringComparison.Ordinal)));

        Assert.Equal(400, Http.Send(management, "GET", "/api/site-table?limit=0").Status);
        Assert.Equal(400, Http.Send(management, "GET", "/api/site-table?limit=10001").Status);
        Assert.Equal(400, Http.Send(management, "GET", "/api/site-table?after=%%%").Status);
        // Well-formed base64url that is not a site-table cursor (a map-cache style key; a truncated cursor).
        foreach (var bogus in new[] { "[0]10.0.0.1/32", "s1|0|0", "s1|0|2|0|-", "s1|0|0|0|0|0|zz|32|0|0|0|0|-" })
        {
            string cursor = Convert.ToBase64String(Encoding.UTF8.GetBytes(bogus)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
            Assert.Equal(400, Http.Send(management, "GET", "/api/site-table?after=" + cursor).Status);
        }
        Assert.Equal(200, Http.Send(management, "GET", "/api/map-cache?limit=5").Status);
        Assert.Equal(200, Http.Send(management, "GET", "/api/registrations?limit=5").Status);
        Assert.Null(process.ExitCode);
    }

    [Fact]
    public void Polling_the_site_table_at_20k_registrations_keeps_map_requests_answered_and_snapshots_bounded()
    {
        var (topology, process, management) = Start("127.0.67");
        using var _ = topology;
        const int Eids = 20000;
        Assert.Equal(Eids, Register(topology, Eids).GetProperty("accepted").GetInt64());

        const int Seconds = 6;
        var quiet = Requests(topology, Eids, Seconds);
        long before = ManagementCounters(management).GetProperty("snapshots").GetInt64();
        long beforeVisits = ManagementCounters(management).GetProperty("snapshot-visits").GetInt64();

        // Poll as hard as one client can (no pause), first page and a walk of 10k-row pages, while requests flow.
        using var stop = new CancellationTokenSource();
        int ok = 0, other = 0;
        var poller = new Thread(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                var (status, _, body) = Http.Send(management, "GET", "/api/site-table?limit=10000");
                if (status == 200) ok++; else other++;
                if (status == 200 && Json(body).GetProperty("next").GetString() is { } next)
                {
                    if (Http.Send(management, "GET", "/api/site-table?limit=10000&after=" + Uri.EscapeDataString(next)).Status == 200) ok++; else other++;
                }
            }
        }) { IsBackground = true };
        poller.Start();
        var sw = Stopwatch.StartNew();
        var polled = Requests(topology, Eids, Seconds);
        double pollSeconds = sw.Elapsed.TotalSeconds;
        stop.Cancel();
        Assert.True(poller.Join(Wait));
        // The views' builder (map-cache and registrations snapshots) runs at nice 19: start it with one read.
        Assert.Equal(200, Http.Send(management, "GET", "/api/map-cache?limit=5").Status);
        var m = ManagementCounters(management);
        long snapshots = m.GetProperty("snapshots").GetInt64() - before;

        double quietRate = quiet.GetProperty("replies").GetInt64() / (double)Seconds;
        double polledRate = polled.GetProperty("replies").GetInt64() / (double)Seconds;
        string detail = $"replies/s quiet {quietRate:0}, while polling {polledRate:0}; polls answered {ok}, not {other}; snapshots {snapshots}, longest read {m.GetProperty("longest-snapshot-read-ms").GetDouble()} ms";
        Assert.True(ok >= 4, detail);
        // Site-table pages are read from the table itself, never a whole-table snapshot (the one snapshot is the
        // map-cache read above):
        Assert.True(snapshots <= 1, detail);
        // ... so Map-Requests keep being answered at a comparable rate (the poller also competes for the two CPUs).
        Assert.True(polledRate >= quietRate * 0.3, detail);
        Assert.True(polled.GetProperty("replies").GetInt64() > 0, detail);
        // Each 10,000-row page was read in control-thread visits of at most 2,048 EIDs: at least 5 per full page.
        long visits = m.GetProperty("snapshot-visits").GetInt64() - beforeVisits;
        Assert.True(visits >= 5L * ok / 2, $"{detail}; visits {visits}");
        // The views are built on a thread at nice 19, so they never take the core from the control thread.
        Assert.True(m.GetProperty("snapshot-builder-low-priority").GetBoolean(), detail);
        Assert.Equal(19, ThreadNice(process.Id, "lisp-mgmt-build"));
        Assert.Null(process.ExitCode);
    }

    /// <summary>The nice value of the process's thread named <paramref name="name"/> (field 19 of /proc/PID/task/TID/stat).</summary>
    private static int ThreadNice(int pid, string name)
    {
        foreach (var task in Directory.GetDirectories($"/proc/{pid}/task"))
        {
            if (File.ReadAllText(Path.Combine(task, "comm")).Trim() != name) continue;
            var stat = File.ReadAllText(Path.Combine(task, "stat"));
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return int.Parse(fields[16], System.Globalization.CultureInfo.InvariantCulture);   // fields from 3 on: state is [0], nice (19) is [16]
        }
        throw new InvalidOperationException($"no thread named {name} in process {pid}");
    }

    [Fact]
    public void Connections_past_the_limit_are_refused_and_counted_and_idle_ones_time_out()
    {
        var (topology, process, management) = Start("127.0.68", "max_connections = 8\nidle_timeout = \"2s\"\nheader_timeout = \"2s\"");
        using var _ = topology;
        var ep = IPEndPoint.Parse(management);
        var sockets = new List<Socket>();
        try
        {
            for (int i = 0; i < 8 + 50; i++)
            {
                var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveTimeout = 5000 };
                s.Connect(ep);
                sockets.Add(s);
                if (i == 7) Thread.Sleep(300); // let the server take the first 8
            }
            // The extra 50 get a 503 and EOF right away (nothing is sent on them).
            int refused = 0;
            var buf = new byte[4096];
            foreach (var s in sockets.Skip(8))
            {
                var got = new StringBuilder();
                int n;
                try
                {
                    while ((n = s.Receive(buf)) > 0) got.Append(Encoding.ASCII.GetString(buf, 0, n));
                }
                catch (SocketException)
                {
                }
                if (got.ToString().StartsWith("HTTP/1.1 503", StringComparison.Ordinal)) refused++;
            }
            Assert.Equal(50, refused);
            // The first 8 are closed by the server after the idle timeout; then a new client is answered.
            var sw = Stopwatch.StartNew();
            foreach (var s in sockets.Take(8))
            {
                s.ReceiveTimeout = 10000;
                Assert.Equal(0, s.Receive(buf));
            }
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(9), $"idle connections closed after {sw.Elapsed}");
        }
        finally
        {
            foreach (var s in sockets) s.Dispose();
        }
        Thread.Sleep(200);
        var m = ManagementCounters(management);
        var events = m.GetProperty("events");
        Assert.True(events.GetProperty("connections-refused").GetInt64() >= 50, m.ToString());
        Assert.True(events.GetProperty("idle-closed").GetInt64() >= 8, m.ToString());
        Assert.Equal(8, m.GetProperty("max-connections").GetInt32());
        var metrics = Http.Send(management, "GET", "/metrics").Body;
        Assert.Matches(@"lisp_management_events_total\{node=""mh"",event=""connections-refused""\} [1-9]\d*", metrics);
        Assert.Null(process.ExitCode);
    }

    [Fact]
    public void A_slowloris_client_is_closed_after_the_header_timeout_and_bodies_are_bounded()
    {
        var (topology, process, management) = Start("127.0.69", "header_timeout = \"2s\"\nmax_body = 1024");
        using var _ = topology;
        using (var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            s.Connect(IPEndPoint.Parse(management));
            var head = Encoding.ASCII.GetBytes($"GET /api/status HTTP/1.1\r\nHost: {management}\r\nX-Slow: " + new string('a', 100));
            var sw = Stopwatch.StartNew();
            bool closed = false;
            foreach (var b in head)
            {
                try
                {
                    s.Send([b]);
                }
                catch (SocketException)
                {
                    closed = true;
                    break;
                }
                if (s.Poll(500_000, SelectMode.SelectRead))
                {
                    var buf = new byte[1024];
                    int n = s.Receive(buf);
                    Assert.True(n == 0 || Encoding.ASCII.GetString(buf, 0, n).StartsWith("HTTP/1.1 408", StringComparison.Ordinal));
                    closed = true;
                    break;
                }
            }
            Assert.True(closed, "the slow client was never closed");
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(6), $"closed after {sw.Elapsed}");
        }
        var body = new string('x', 2000);
        Assert.Equal(413, Http.Send(management, "POST", "/api/status", body).Status);
        var events = ManagementCounters(management).GetProperty("events");
        Assert.True(events.GetProperty("header-timeouts").GetInt64() >= 1);
        Assert.True(events.GetProperty("body-too-large").GetInt64() >= 1);
        Assert.Null(process.ExitCode);
    }

    [Fact]
    public void A_token_is_required_when_configured_and_a_wrong_one_is_refused()
    {
        var dir = Directory.CreateTempSubdirectory("lisp-mgmt-token-").FullName;
        try
        {
            var tokenFile = Path.Combine(dir, "token");
            const string Token = "s3cret-token-0123456789";
            File.WriteAllText(tokenFile, Token + "\n");
            var (topology, process, management) = Start("127.0.70", $"token_file = \"{tokenFile}\"");
            using var _ = topology;
            (int Status, string Body) Get(string path, string? auth)
            {
                var raw = $"GET {path} HTTP/1.1\r\nHost: {management}\r\nConnection: close\r\n" + (auth is null ? "" : $"Authorization: {auth}\r\n") + "\r\n";
                var r = Http.Parse(Http.SendRaw(management, Encoding.ASCII.GetBytes(raw)));
                return (r.Status, r.Body);
            }
            Assert.Equal(401, Get("/api/status", null).Status);
            Assert.Equal(401, Get("/metrics", "Bearer wrong-token-0123456789").Status);
            Assert.Equal(401, Get("/api/site-table", "Basic " + Convert.ToBase64String(Encoding.ASCII.GetBytes("a:" + Token))).Status);
            Assert.Equal(200, Get("/api/status", "Bearer " + Token).Status);
            Assert.Equal(200, Get("/", null).Status); // the page itself holds no data; it asks for the token
            var c = Json(Get("/api/counters", "Bearer " + Token).Body).GetProperty("management");
            Assert.True(c.GetProperty("token-required").GetBoolean());
            Assert.Equal(3, c.GetProperty("events").GetProperty("unauthorized").GetInt64());
            Assert.Null(process.ExitCode);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Check_refuses_a_non_loopback_listen_address_without_a_token_and_bad_limits()
    {
        const string Toml = """
            [node]
            name = "x"
            roles = ["map-server"]
            listen = ["127.0.0.1"]

            [[site]]
            name = "s"
            key = "k"
            eid_prefixes = ["[0]10.0.0.0/8"]

            [management]
            listen = "192.0.2.1:8080"
            """;
        var dir = Directory.CreateTempSubdirectory("lisp-mgmt-check-").FullName;
        try
        {
            var file = Path.Combine(dir, "node.toml");
            File.WriteAllText(file, Toml);
            var (rc, stdout, stderr) = ApplianceProcess.Run(TimeSpan.FromSeconds(30), "run", "--config", file, "--check");
            Assert.NotEqual(0, rc);
            Assert.Contains("management.token_file", stdout + stderr, StringComparison.Ordinal);

            var tokenFile = Path.Combine(dir, "token");
            File.WriteAllText(tokenFile, "0123456789abcdef0123");
            File.WriteAllText(file, Toml + $"\ntoken_file = \"{tokenFile}\"\n");
            (rc, stdout, stderr) = ApplianceProcess.Run(TimeSpan.FromSeconds(30), "run", "--config", file, "--check");
            Assert.True(rc == 0, stdout + stderr);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }

        var c = ConfigLoader.Parse(Toml.Replace("192.0.2.1", "127.0.0.1") + "\nmax_connections = 7\nheader_timeout = \"3s\"\nidle_timeout = \"9s\"\nmax_body = 100\n");
        Assert.Equal(7, c.ManagementOptions!.MaxConnections);
        Assert.Equal(TimeSpan.FromSeconds(3), c.ManagementOptions.HeaderTimeout);
        Assert.Equal(TimeSpan.FromSeconds(9), c.ManagementOptions.IdleTimeout);
        Assert.Equal(100, c.ManagementOptions.MaxBody);
        Assert.Null(c.ManagementOptions.Token);
        Assert.Equal(ManagementConfig.DefaultMaxConnections, ConfigLoader.Parse(Toml.Replace("192.0.2.1", "127.0.0.1")).ManagementOptions!.MaxConnections);
        Assert.ThrowsAny<Exception>(() => ConfigLoader.Parse(Toml.Replace("192.0.2.1", "127.0.0.1") + "\nmax_connections = 0\n"));
        Assert.ThrowsAny<Exception>(() => ConfigLoader.Parse(Toml.Replace("192.0.2.1", "127.0.0.1") + "\ntoken_file = \"/nonexistent/token\"\n"));
    }
}
