using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Lisp.Appliance.Management;
using Lisp.Appliance.Tests.Support;
using Lisp.TestSupport;

namespace Lisp.Appliance.Tests;

/// <summary>The management API, metrics, web page and `show` against one running node (see <see cref="ManagementNode"/>).</summary>
public sealed class ManagementTests(ManagementNode node) : IClassFixture<ManagementNode>
{
    private static JsonElement Json(string body) => JsonDocument.Parse(body).RootElement.Clone();

    private JsonElement GetJson(string path)
    {
        var (status, type, body) = node.Get(path);
        Assert.True(status == 200, $"GET {path}: {status} {body}");
        Assert.StartsWith("application/json", type, StringComparison.Ordinal);
        return Json(body);
    }

    [Fact]
    public void StatusNamesTheNodeRolesMappingSystemAndEndpoints()
    {
        var s = GetJson("/api/status");
        Assert.Equal("mgmt-demo", s.GetProperty("name").GetString());
        Assert.Equal(["itr", "etr", "map-server", "map-resolver"], s.GetProperty("roles").EnumerateArray().Select(r => r.GetString()!).ToArray());
        Assert.Equal("static", s.GetProperty("mapping-system").GetString());
        Assert.True(s.GetProperty("uptime-seconds").GetInt64() >= 0);
        Assert.Equal([node.ControlEndpoint], s.GetProperty("control-endpoints").EnumerateArray().Select(e => e.GetString()!).ToArray());
        Assert.Equal(node.Management, s.GetProperty("management").GetString());
        Assert.Equal(JsonValueKind.Null, s.GetProperty("data-plane").ValueKind);
        var r = s.GetProperty("reachability"); // [itr] default: probing every 10 s, 15 s timeout; no data plane, no echo-nonce
        Assert.Equal(10, r.GetProperty("rloc-probe-interval-seconds").GetDouble());
        Assert.Equal(15, r.GetProperty("rloc-probe-timeout-seconds").GetDouble());
        Assert.Equal(JsonValueKind.Null, r.GetProperty("echo-nonce-interval-seconds").ValueKind);
    }

    [Fact]
    public void SiteTableShowsTheRegisteredDemoEidWithRegistererAndFlags()
    {
        var st = GetJson("/api/site-table");
        var ms = Assert.Single(st.GetProperty("map-servers").EnumerateArray());
        Assert.Equal([node.ControlEndpoint], ms.GetProperty("endpoints").EnumerateArray().Select(e => e.GetString()!).ToArray());
        var rows = ms.GetProperty("rows").EnumerateArray().ToList();

        var reg = Assert.Single(rows, r => r.GetProperty("eid").GetString() == "[0]10.1.1.0/24");
        Assert.Equal("demo", reg.GetProperty("site").GetString());
        Assert.True(reg.GetProperty("registered").GetBoolean());
        Assert.False(reg.GetProperty("configured").GetBoolean()); // a more-specific under [0]10.1.0.0/16
        Assert.Equal(node.ControlEndpoint, reg.GetProperty("last-registerer").GetString());
        // proxy_reply = true and want_map_notify = true: P and N upper case, lispers.net style.
        Assert.Equal("P-s-i-t-r-m-N", reg.GetProperty("flags").GetString());
        var first = reg.GetProperty("first-registered").GetDateTimeOffset();
        var last = reg.GetProperty("last-registered").GetDateTimeOffset();
        var expires = reg.GetProperty("expires").GetDateTimeOffset();
        Assert.True(first <= last && last < expires, $"{first} {last} {expires}");
        Assert.InRange((expires - last).TotalSeconds, 170, 190); // registration_timeout default / record TTL 3 min
        var rloc = Assert.Single(reg.GetProperty("rlocs").EnumerateArray());
        Assert.Equal(node.Topology.Address(1), rloc.GetProperty("address").GetString());
        Assert.Equal(1, rloc.GetProperty("priority").GetInt32());
        Assert.Equal(100, rloc.GetProperty("weight").GetInt32());

        var name = Assert.Single(rows, r => r.GetProperty("eid").GetString() == "[0]'demo-node'");
        Assert.True(name.GetProperty("registered").GetBoolean());
        Assert.True(name.GetProperty("configured").GetBoolean());

        // The configured covering prefix nobody registers exactly: a row, not registered.
        var cover = Assert.Single(rows, r => r.GetProperty("eid").GetString() == "[0]10.1.0.0/16");
        Assert.False(cover.GetProperty("registered").GetBoolean());
        Assert.Equal(JsonValueKind.Null, cover.GetProperty("last-registerer").ValueKind);
        Assert.Equal("p-s-i-t-r-m-n", cover.GetProperty("flags").GetString());
    }

    [Fact]
    public void MapCacheHasTheEntryTheRequestInstalled()
    {
        var mc = GetJson("/api/map-cache");
        Assert.True(mc.GetProperty("itr").GetBoolean());
        var e = Assert.Single(mc.GetProperty("entries").EnumerateArray(), x => x.GetProperty("eid").GetString() == "[0]10.1.1.0/24");
        Assert.False(e.GetProperty("negative").GetBoolean());
        Assert.Equal(180, e.GetProperty("ttl-seconds").GetInt64());
        Assert.InRange(e.GetProperty("ttl-left-seconds").GetInt64(), 1, 180);
        Assert.Equal(node.ControlEndpoint, e.GetProperty("learned-from").GetString());
        var rloc = Assert.Single(e.GetProperty("rlocs").EnumerateArray());
        Assert.Equal(node.Topology.Address(1), rloc.GetProperty("address").GetString());
        Assert.Equal(1, rloc.GetProperty("priority").GetInt32());
        Assert.Equal(100, rloc.GetProperty("weight").GetInt32());
        Assert.True(rloc.GetProperty("reachable").GetBoolean());
    }

    [Fact]
    public void RegistrationsListEachEidWithItsMapServerAndNotify()
    {
        var rg = GetJson("/api/registrations");
        Assert.True(rg.GetProperty("etr").GetBoolean());
        var regs = rg.GetProperty("registrations").EnumerateArray().ToList();
        Assert.Equal(["[0]'demo-node'", "[0]10.1.1.0/24"], regs.Select(r => r.GetProperty("eid").GetString()!).Order(StringComparer.Ordinal).ToArray());
        foreach (var r in regs)
        {
            Assert.Equal(node.ControlEndpoint, r.GetProperty("map-server").GetString());
            var sent = r.GetProperty("last-sent").GetDateTimeOffset();
            var notified = r.GetProperty("last-notified").GetDateTimeOffset(); // want_map_notify: acknowledged
            Assert.True(notified >= sent, $"{sent} {notified}");
        }
    }

    [Fact]
    public void CountersHaveEveryReasonAndEventNonNegative()
    {
        var c = GetJson("/api/counters");
        var n = Assert.Single(c.GetProperty("control").EnumerateArray());
        Assert.Equal("mgmt-demo", n.GetProperty("node").GetString());
        Assert.Equal(2, n.GetProperty("registrations").GetInt32());
        Assert.True(n.GetProperty("map-cache-entries").GetInt32() >= 1);
        var drops = n.GetProperty("drops").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetInt64());
        var events = n.GetProperty("events").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetInt64());
        var malformed = n.GetProperty("malformed").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetInt64());
        foreach (var k in new[] { "auth-failure", "unknown-site", "malformed", "rate-limited", "stale-nonce", "not-served-here" }) Assert.Contains(k, drops.Keys);
        foreach (var k in new[] { "received", "registration-accepted", "map-register-sent", "map-notify-accepted", "map-request-sent", "map-cache-installed" }) Assert.Contains(k, events.Keys);
        Assert.NotEmpty(malformed);
        Assert.All(drops.Values.Concat(events.Values).Concat(malformed.Values), v => Assert.True(v >= 0));
        Assert.True(events["registration-accepted"] >= 1);
        Assert.True(events["map-cache-installed"] >= 1);
        Assert.Equal(0, drops["auth-failure"]);
        Assert.True(c.GetProperty("queue-drops").GetInt64() >= 0);
        Assert.True(c.GetProperty("send-errors").GetInt64() >= 0);
        Assert.Equal(JsonValueKind.Null, c.GetProperty("data-plane").ValueKind); // no [data_plane] in this config
    }

    [Fact]
    public void CountersShowRlocProbingOfTheCachedRloc()
    {
        // The ITR probes the RLOC of the entry it installed (its own, 127.0.50.1) from its next tick on.
        JsonElement p = default;
        var deadline = DateTime.UtcNow + ManagementNode.Wait;
        do
        {
            p = GetJson("/api/counters").GetProperty("rloc-probing");
            if (p.GetProperty("sent").GetInt64() >= 1) break;
            Thread.Sleep(200);
        }
        while (DateTime.UtcNow < deadline);
        Assert.Equal("mgmt-demo", p.GetProperty("node").GetString());
        Assert.True(p.GetProperty("enabled").GetBoolean());
        Assert.Equal(10, p.GetProperty("interval-seconds").GetDouble());
        Assert.True(p.GetProperty("sent").GetInt64() >= 1, p.ToString());
        Assert.Equal(0, p.GetProperty("replies-unexpected").GetInt64());
        Assert.Equal(0, p.GetProperty("rloc-down").GetInt64());
        var rloc = Assert.Single(p.GetProperty("rlocs").EnumerateArray());
        Assert.Equal(node.Topology.Address(1), rloc.GetProperty("rloc").GetString());
        Assert.Contains(rloc.GetProperty("state").GetString(), new[] { "unknown", "up" });
        Assert.True(rloc.GetProperty("entries").GetInt32() >= 1);
        Assert.Equal(1, p.GetProperty("states").EnumerateObject().Sum(x => x.Value.GetInt32()));

        var (_, _, metrics) = node.Get("/metrics");
        Assert.Matches(@"(?m)^lisp_control_rloc_probe_total\{node=""mgmt-demo"",event=""sent""\} [1-9]\d*$", metrics);
        Assert.Matches($@"(?m)^lisp_control_rloc_probe_rloc_up\{{node=""mgmt-demo"",rloc=""{Regex.Escape(node.Topology.Address(1))}""\}} 1$", metrics);
    }

    private static readonly Regex Sample = new(
        @"^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?<labels>[a-zA-Z_][a-zA-Z0-9_]*=""(?:[^""\\\n]|\\[\\""n])*""(,[a-zA-Z_][a-zA-Z0-9_]*=""(?:[^""\\\n]|\\[\\""n])*"")*)\})? (?<value>-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?)$");

    [Fact]
    public void MetricsParseAsPrometheusText()
    {
        var (status, type, body) = node.Get("/metrics");
        Assert.Equal(200, status);
        Assert.StartsWith("text/plain; version=0.0.4", type, StringComparison.Ordinal);
        Assert.EndsWith("\n", body, StringComparison.Ordinal);
        var types = new Dictionary<string, string>(StringComparer.Ordinal);
        var samples = new List<(string Name, string Labels, double Value)>();
        foreach (var line in body.TrimEnd('\n').Split('\n'))
        {
            if (line.StartsWith("# HELP ", StringComparison.Ordinal)) continue;
            var t = Regex.Match(line, @"^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$");
            if (t.Success)
            {
                Assert.True(types.TryAdd(t.Groups[1].Value, t.Groups[2].Value), $"TYPE twice: {line}");
                continue;
            }
            var m = Sample.Match(line);
            Assert.True(m.Success, $"not a Prometheus sample line: '{line}'");
            string name = m.Groups["name"].Value;
            Assert.True(types.ContainsKey(name), $"sample before its TYPE: {line}");
            if (types[name] == "counter") Assert.EndsWith("_total", name, StringComparison.Ordinal);
            double v = double.Parse(m.Groups["value"].Value, CultureInfo.InvariantCulture);
            Assert.True(v >= 0, line);
            samples.Add((name, m.Groups["labels"].Value, v));
        }
        Assert.Contains(samples, s => s.Name == "lisp_up" && s.Value == 1);
        // The collector's figures: three generations, a heap and allocations that are not zero in a running node.
        Assert.Equal(3, samples.Count(s => s.Name == "lisp_runtime_gc_collections_total"));
        Assert.Contains(samples, s => s.Name == "lisp_runtime_gc_pause_seconds_total");
        Assert.Contains(samples, s => s.Name == "lisp_runtime_heap_bytes" && s.Value > 0);
        Assert.Contains(samples, s => s.Name == "lisp_runtime_allocated_bytes_total" && s.Value > 0);
        Assert.Contains(samples, s => s.Name == "lisp_control_events_total" && s.Labels == "node=\"mgmt-demo\",event=\"registration-accepted\"" && s.Value >= 1);
        Assert.Contains(samples, s => s.Name == "lisp_control_drops_total" && s.Labels == "node=\"mgmt-demo\",reason=\"auth-failure\"");
        Assert.Contains(samples, s => s.Name == "lisp_map_server_registrations" && s.Value == 2);
        Assert.Contains(samples, s => s.Name == "lisp_map_cache_entries" && s.Value >= 1);
        foreach (var ev in new[] { "sent", "replies-accepted", "replies-unexpected", "rloc-up", "rloc-down" })
            Assert.Contains(samples, s => s.Name == "lisp_control_rloc_probe_total" && s.Labels == $"node=\"mgmt-demo\",event=\"{ev}\"");
        Assert.Equal(1, samples.Where(s => s.Name == "lisp_control_rloc_probe_rlocs").Sum(s => s.Value));
        Assert.DoesNotContain(samples, s => s.Name.StartsWith("lisp_dataplane_", StringComparison.Ordinal)); // no data plane
        Assert.Equal(samples.Count, samples.Select(s => s.Name + "{" + s.Labels + "}").Distinct().Count()); // no duplicate series
    }

    [Fact]
    public void PrometheusLabelValuesAreEscaped()
    {
        Assert.Equal(@"a\\b\""c\nd", PrometheusText.Escape("a\\b\"c\nd"));
    }

    [Fact]
    public void ShowPrintsEachTable()
    {
        string Show(params string[] args)
        {
            var (rc, stdout, stderr) = ApplianceProcess.Run(TimeSpan.FromSeconds(60), ["show", .. args, "--management", node.Management]);
            Assert.True(rc == 0, $"show {string.Join(' ', args)} exited {rc}: {stderr}");
            return stdout;
        }
        string a = Regex.Escape(node.Topology.Address(1));
        string cep = Regex.Escape(node.ControlEndpoint);

        var status = Show("status");
        Assert.Matches(@"(?m)^Node\s+mgmt-demo$", status);
        Assert.Matches(@"(?m)^Roles\s+itr, etr, map-server, map-resolver$", status);
        Assert.Matches(@"(?m)^Mapping system\s+static$", status);
        Assert.Matches($@"(?m)^Control\s+{cep}$", status);
        Assert.Matches(@"(?m)^Uptime\s+\d+[smhd]", status);
        Assert.Matches(@"(?m)^Reachability\s+rloc-probing every 10 s \(timeout 15 s\); echo-nonce off$", status);

        var site = Show("site-table");
        Assert.Contains($"Map-server mgmt-demo ({node.ControlEndpoint}): 2 of 3 EID-prefixes registered", site, StringComparison.Ordinal);
        Assert.Matches(@"(?m)^\s+Site\s+EID-prefix\s+Registered\s+Last registerer\s+First registered\s+Last registered\s+Flags\s+RLOCs\s+Expires$", site);
        Assert.Matches($@"(?m)^\s+demo\s+\[0\]10\.1\.1\.0/24\s+yes\s+{cep}\s+\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\dZ\s+\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\dZ\s+P-s-i-t-r-m-N\s+{a} p1 w100 up\s+\d{{4}}-", site);
        Assert.Matches(@"(?m)^\s+demo\s+\[0\]10\.1\.0\.0/16\s+no\s+--\s+--\s+--\s+p-s-i-t-r-m-n\s+--\s+--$", site);

        var mc = Show("map-cache");
        Assert.Matches($@"(?m)^\s+\[0\]10\.1\.1\.0/24\s+{a} p1 w100 up\s+no-action\s+3m00s\s+\d+m\d\ds\s+{cep}$", mc);

        var rg = Show("registrations");
        Assert.Matches($@"(?m)^\s+\[0\]10\.1\.1\.0/24\s+{cep}\s+\d{{4}}-.*ago\)\s+\d{{4}}-.*ago\)$", rg);
        Assert.Matches($@"(?m)^\s+\[0\]'demo-node'\s+{cep}\s+", rg);

        var c = Show("counters");
        Assert.Contains("Control node mgmt-demo: 2 registration(s)", c, StringComparison.Ordinal);
        Assert.Matches(@"(?m)^\s+event\s+registration-accepted\s+[1-9]\d*$", c);
        Assert.Contains("Data plane: not running", c, StringComparison.Ordinal);
        Assert.Matches(@"(?m)^Reachability:\n  RLOC-probing: every 10 s, timeout 15 s \(node mgmt-demo\): probes sent \d+, replies accepted \d+, unexpected 0, rloc-up [01], rloc-down 0; RLOCs 1 \(1 (up|unknown)\)$", c);
        Assert.Matches(@"(?m)^  Echo-nonce: off \(no data plane\)$", c);
        Assert.Matches($@"(?m)^  {a}\s+(up|unknown)\s+rloc-probing\s+", c);

        // --json is the API's document as it is.
        var json = Json(Show("site-table", "--json"));
        Assert.Contains(json.GetProperty("map-servers")[0].GetProperty("rows").EnumerateArray(), r => r.GetProperty("eid").GetString() == "[0]10.1.1.0/24");
    }

    [Fact]
    public void BadRequestsGetErrorsAndTheServerKeepsServing()
    {
        foreach (var path in new[] { "/nope", "/api/nope", "/api/status/extra", "/api", "/metrics/x", "/../../etc/passwd", "/api/site-table%00", "/" + new string('a', 3000) })
        {
            var (status, type, body) = node.Get(path);
            Assert.True(status is 404 or 400, $"GET {path}: {status}");
            if (status == 404)
            {
                Assert.StartsWith("application/json", type, StringComparison.Ordinal);
                Assert.Contains("no such page", Json(body).GetProperty("error").GetString(), StringComparison.Ordinal);
            }
        }
        // Read-only: anything but GET is 405.
        foreach (var method in new[] { "POST", "PUT", "DELETE" })
        {
            var (status, _, _) = Http.Send(node.Management, method, "/api/status", "x=1");
            Assert.Equal(405, status);
        }
        // Garbage and half requests: the server answers 400 or closes; it does not fall over.
        foreach (var raw in new[] { "\0\0\0\0\r\n\r\n", "GET\r\n\r\n", "GET / HTTP/9.9\r\n\r\n", "HELLO WORLD\r\n\r\n", "GET / HTTP/1.1\r\nHost: " + new string('x', 20000) + "\r\n\r\n" })
        {
            var answer = Http.SendRaw(node.Management, Encoding.ASCII.GetBytes(raw));
            Assert.True(answer.Length == 0 || Regex.IsMatch(answer, @"^HTTP/1\.[01] [45]\d\d "), $"answer to {raw[..Math.Min(20, raw.Length)]}: {answer[..Math.Min(200, answer.Length)]}");
        }
        // A request for another host name (DNS rebinding) is not served.
        var other = Http.Parse(Http.SendRaw(node.Management, Encoding.ASCII.GetBytes("GET /api/status HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")));
        Assert.NotEqual(200, other.Status);

        Assert.Null(node.Process.ExitCode);
        Assert.Equal(200, node.Get("/api/status").Status);
        Assert.False(node.Process.Any(@" error "), node.Process.Output);
    }

    [Fact]
    public void ManyConcurrentRequestsAreAnsweredOrRefusedNeverHung()
    {
        var paths = new[] { "/api/site-table", "/api/map-cache", "/api/counters", "/metrics", "/api/registrations" };
        var results = new int[60];
        Parallel.For(0, results.Length, new ParallelOptions { MaxDegreeOfParallelism = 16 }, i => results[i] = node.Get(paths[i % paths.Length]).Status);
        Assert.All(results, s => Assert.True(s is 200 or 503, $"status {s}"));
        Assert.Contains(200, results);
        Assert.Equal(200, node.Get("/api/site-table").Status);
    }

    [Fact]
    public void WebPageIsSelfContained()
    {
        var (status, type, html) = node.Get("/");
        Assert.Equal(200, status);
        Assert.StartsWith("text/html", type, StringComparison.Ordinal);
        Assert.DoesNotMatch(@"(?i)(src|href)\s*=\s*""(https?:)?//", html); // nothing from elsewhere
        Assert.DoesNotContain("<script src", html, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("<link", html, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("fetch(", html, StringComparison.Ordinal);
        Assert.Contains("setInterval(refresh, 3000)", html, StringComparison.Ordinal);
    }

    [SkippableFact]
    public void WebPageRendersTheSiteTableInHeadlessChromium()
    {
        Skip.If(Chromium.Path is null, "chromium is not installed (./build.sh deps installs it); the web page was not checked in a browser");
        var (dom, stderr) = Chromium.DumpDom($"http://{node.Management}/", TimeSpan.FromSeconds(90));
        Assert.True(dom.Contains("data-loaded=\"yes\"", StringComparison.Ordinal), $"page never loaded the APIs; DOM:\n{dom}\nchromium stderr:\n{stderr}");
        Assert.Contains("<title>lisp-decent mgmt-demo</title>", dom, StringComparison.Ordinal);
        Assert.Contains("<div id=\"error\"></div>", dom, StringComparison.Ordinal);
        string cep = Regex.Escape(node.ControlEndpoint);
        // The site-table row, as rendered by the page's script from /api/site-table.
        Assert.Matches($@"<tr><td>demo</td><td>\[0\]10\.1\.1\.0/24</td><td>yes</td><td>{cep}</td><td>\d{{4}}-[^<]+</td><td>\d{{4}}-[^<]+</td><td>P-s-i-t-r-m-N</td><td>{Regex.Escape(node.Topology.Address(1))} p1 w100</td>", dom);
        Assert.Matches(@"<tr><td>demo</td><td>\[0\]10\.1\.0\.0/16</td><td>no</td><td>--</td>", dom);
        // Map-cache and registrations tables too.
        Assert.Matches($@"<table id=""map-cache-rows"">.*<td>\[0\]10\.1\.1\.0/24</td><td>{Regex.Escape(node.Topology.Address(1))} p1 w100</td>", dom);
        Assert.Matches($@"<table id=""registration-rows"">.*<td>\[0\]'demo-node'</td><td>{cep}</td>", dom);
        Assert.Matches(@"<table id=""counter-rows"">.*<td>registration-accepted</td>", dom);
    }
}

/// <summary>`show` usage errors, an unreachable node, a management port in use, and no [management] section.</summary>
public sealed class ManagementCliTests
{
    private static (int Rc, string Out, string Err) Dispatch(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int rc = Program.Dispatch(args, o, e);
        return (rc, o.ToString(), e.ToString());
    }

    [Fact]
    public void ShowHelpAndUsageErrors()
    {
        var help = Dispatch("show", "--help");
        Assert.Equal(0, help.Rc);
        Assert.Contains("Usage: lisp-decent show WHAT [--management ADDRESS:PORT] [--json]", help.Out, StringComparison.Ordinal);
        foreach (var w in new[] { "status", "site-table", "map-cache", "registrations", "counters" }) Assert.Contains(w, help.Out, StringComparison.Ordinal);
        Assert.Contains("show ", Dispatch("--help").Out, StringComparison.Ordinal);

        Assert.Equal(2, Dispatch("show").Rc);
        var bogus = Dispatch("show", "bogus");
        Assert.Equal(2, bogus.Rc);
        Assert.Contains("cannot show 'bogus'", bogus.Err, StringComparison.Ordinal);
        Assert.Equal(2, Dispatch("show", "status", "extra").Rc);
        Assert.Equal(2, Dispatch("show", "status", "--frobnicate").Rc);
        var bad = Dispatch("show", "status", "--management", "nonsense");
        Assert.Equal(2, bad.Rc);
        Assert.Contains("is not ADDRESS:PORT", bad.Err, StringComparison.Ordinal);
    }

    [Fact]
    public void ShowAgainstNothingListeningSaysSo()
    {
        int port = ManagementNode.FreeTcpPort("127.0.50.4");
        var r = Dispatch("show", "status", "--management", $"127.0.50.4:{port}");
        Assert.Equal(1, r.Rc);
        Assert.Contains($"cannot reach 127.0.50.4:{port}", r.Err, StringComparison.Ordinal);
    }

    [Fact]
    public void ShowReportsAnHttpErrorFromSomethingElse()
    {
        // Something that answers HTTP but is not a node: show exits 1 with the status.
        var l = new System.Net.Sockets.TcpListener(IPAddress.Parse("127.0.50.5"), 0);
        l.Start();
        try
        {
            int port = ((IPEndPoint)l.LocalEndpoint).Port;
            var server = new Thread(() =>
            {
                using var c = l.AcceptTcpClient();
                using var s = c.GetStream();
                var buf = new byte[4096];
                s.ReadTimeout = 10000;
                _ = s.Read(buf);
                s.Write("HTTP/1.1 500 Oops\r\nContent-Type: application/json\r\nContent-Length: 17\r\nConnection: close\r\n\r\n{\"error\": \"boom\"}"u8);
            }) { IsBackground = true };
            server.Start();
            var r = Dispatch("show", "counters", "--management", $"127.0.50.5:{port}");
            Assert.True(server.Join(TimeSpan.FromSeconds(15)));
            Assert.Equal(1, r.Rc);
            Assert.Contains("answered HTTP 500: boom", r.Err, StringComparison.Ordinal);
        }
        finally
        {
            l.Stop();
        }
    }

    [Fact]
    public void ManagementPortInUseIsAStartupFailure()
    {
        using var topo = new Topology(ManagementNode.Network);
        var holder = new System.Net.Sockets.TcpListener(IPAddress.Parse("127.0.50.2"), 0);
        holder.Start();
        try
        {
            string mgmt = $"127.0.50.2:{((IPEndPoint)holder.LocalEndpoint).Port}";
            var path = topo.WriteConfig("busy", ManagementNode.Config("127.0.50.2", mgmt));
            var (rc, stdout, stderr) = ApplianceProcess.Run(TimeSpan.FromSeconds(60), "run", "--config", path);
            Assert.True(rc == 1, $"exit {rc}; stdout:\n{stdout}\nstderr:\n{stderr}");
            Assert.Contains($"run: cannot start the management API on {mgmt}", stderr, StringComparison.Ordinal);
            Assert.DoesNotContain("node-started", stdout, StringComparison.Ordinal);
        }
        finally
        {
            holder.Stop();
        }
    }

    [Fact]
    public void NoManagementSectionMeansNoServer()
    {
        using var topo = new Topology(ManagementNode.Network);
        var p = topo.StartNode("plain", ManagementNode.Config("127.0.50.3", null).Replace("127.0.50.3", "127.0.50.3", StringComparison.Ordinal));
        p.WaitForLine(@"map-notify-accepted ", ManagementNode.Wait);
        Assert.False(p.Any("management"), p.Output);
    }
}
