using System.Net;
using System.Text;
using System.Text.Json;
using Lisp.Appliance.Cli;
using Lisp.Load;

namespace Lisp.Appliance.Tests.Load;

/// <summary>`lisp-decent load` against its own sink on loopback (in-process), the self-test, the report and the help.</summary>
public sealed class LoadSinkTests
{
    private static (int Rc, string Out, string Err) Cli(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int rc = Program.Dispatch(["load", .. args], o, e);
        return (rc, o.ToString(), e.ToString());
    }

    private static JsonElement Json(params string[] args)
    {
        var (rc, stdout, stderr) = Cli([.. args, "--json"]);
        Assert.True(rc == 0, $"load exited {rc}: {stderr}\n{stdout}");
        return JsonDocument.Parse(stdout).RootElement;
    }

    private static long L(JsonElement e, string name) => e.GetProperty(name).GetInt64();

    private static LoadSink Sink(string key = "sink-key") =>
        new(new SinkOptions { Listen = new IPEndPoint(IPAddress.Parse("127.0.62.1"), 0), Echo = true, Key = Encoding.UTF8.GetBytes(key) });

    [Fact]
    public void RequestsAndRegistersAgainstTheEchoingSinkAreAllAnswered()
    {
        using var sink = Sink();
        sink.Start();
        string target = sink.Local.ToString();
        var req = Json("request", "--target", target, "--bind", "127.0.62.2", "--eids", "500", "--count", "3000", "--window", "64",
            "--rloc", "127.0.62.1", "--threads", "2", "--batch", "16", "--timeout", "5s");
        var s = req.GetProperty("steps")[0];
        Assert.Equal(3000, L(s, "sent"));
        Assert.Equal(3000, L(s, "positive"));
        Assert.Equal(0, L(s, "lost") + L(s, "wrong-eid") + L(s, "rloc-mismatch") + L(s, "malformed") + L(s, "unmatched"));
        Assert.Equal(3000, L(s, "latency-samples"));
        Assert.True(s.GetProperty("p99-us").GetDouble() >= s.GetProperty("p50-us").GetDouble());

        var reg = Json("register", "--target", target, "--bind", "127.0.62.3", "--eids", "300", "--records", "3", "--key", "sink-key", "--window", "32", "--timeout", "5s", "--ack");
        var r = reg.GetProperty("steps")[0];
        Assert.Equal(100, L(r, "sent"));
        Assert.Equal(100, L(r, "accepted"));
        Assert.Equal(100, L(r, "acks-sent"));
        Assert.Equal(0, L(r, "auth-bad") + L(r, "record-mismatch") + L(r, "lost"));

        var mixed = Json("mixed", "--target", target, "--bind", "127.0.62.4", "--eids", "100", "--ratio", "1:3", "--count", "400", "--key", "sink-key", "--window", "16", "--timeout", "5s");
        var m = mixed.GetProperty("steps")[0];
        Assert.Equal(100, L(m, "sent-registers"));
        Assert.Equal(300, L(m, "sent-requests"));
        Assert.Equal(400, L(m, "replies"));
        var counts = sink.Stop();
        Assert.Equal(3000 + 300, counts.MapRequests);
        Assert.Equal(100 + 100, counts.MapRegisters);
        Assert.Equal(100, counts.MapNotifyAcks);   // the register run acked (--ack), the mixed one did not (the default)
    }

    [Fact]
    public void Ipv6RequestsForNameAndIpv6EidsAgainstTheSinkOnLoopback()
    {
        using var sink = new LoadSink(new SinkOptions { Listen = new IPEndPoint(IPAddress.IPv6Loopback, 0), Echo = true, Threads = 2 });
        sink.Start();
        foreach (var eidBase in new[] { "[0]2001:db8::/128", "[3]'load'" })
        {
            var s = Json("request", "--target", sink.Local.ToString(), "--bind", "::1", "--eid-base", eidBase, "--eids", "50", "--count", "500",
                "--window", "32", "--rloc", "::1", "--timeout", "5s").GetProperty("steps")[0];
            Assert.Equal(500, L(s, "positive"));
            Assert.Equal(0, L(s, "lost") + L(s, "wrong-eid") + L(s, "rloc-mismatch"));
        }
        Assert.Equal(1000, sink.Stop().MapRequests);
    }

    [Fact]
    public void EidFileEidsAreRequestedAndRegistered()
    {
        string file = Path.Combine(Path.GetTempPath(), $"load-eids-{Guid.NewGuid():N}.txt");
        File.WriteAllLines(file, ["# three EIDs of different kinds", "[0]10.7.0.1/32", "", "[5]2001:db8::7/128", "[0]'printer'"]);
        try
        {
            using var sink = Sink();
            sink.Start();
            var q = Json("request", "--target", sink.Local.ToString(), "--bind", "127.0.62.12", "--eid-file", file, "--count", "90", "--window", "8", "--timeout", "5s");
            Assert.Equal(3, q.GetProperty("eids").GetInt32());
            Assert.Equal(90, L(q.GetProperty("steps")[0], "positive"));
            var r = Json("register", "--target", sink.Local.ToString(), "--bind", "127.0.62.12", "--eid-file", file, "--key", "sink-key", "--window", "8", "--timeout", "5s");
            Assert.Equal(3, L(r.GetProperty("steps")[0], "accepted"));
            Assert.Equal(2, Cli("request", "--target", sink.Local.ToString(), "--eid-file", file + ".missing").Rc);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void AWrongKeyAtTheSinkIsCountedAsAuthBadNotAccepted()
    {
        using var sink = Sink("other-key");
        sink.Start();
        var r = Json("register", "--target", sink.Local.ToString(), "--bind", "127.0.62.5", "--eids", "20", "--key", "sink-key", "--window", "8", "--timeout", "300ms")
            .GetProperty("steps")[0];
        Assert.Equal(0, L(r, "accepted"));
        Assert.Equal(20, L(r, "auth-bad"));
        Assert.Equal(0, L(r, "acks-sent"));
    }

    [Fact]
    public void MalformedAndForeignRepliesAreCountedNotFatal()
    {
        // A "map-resolver" that answers every request with junk, a short Map-Reply, a foreign nonce, a Map-Request, or
        // (every fifth) a Map-Reply carrying the request's own nonce but a record cut short.
        using var bad = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Dgram, System.Net.Sockets.ProtocolType.Udp);
        bad.Bind(new IPEndPoint(IPAddress.Parse("127.0.62.6"), 0));
        bad.ReceiveTimeout = 200;
        var stop = new CancellationTokenSource();
        var responder = new Thread(() =>
        {
            var buf = new byte[2048];
            int i = 0, got = 0;
            while (!stop.IsCancellationRequested)
            {
                EndPoint from = new IPEndPoint(IPAddress.Any, 0);
                try
                {
                    got = bad.ReceiveFrom(buf, ref from);
                }
                catch (System.Net.Sockets.SocketException)
                {
                    continue;
                }
                // ECM (4) + inner IPv4 (20) + UDP (8), then the Map-Request: its nonce is at bytes 4..11 of it.
                const int NonceAt = 4 + 20 + 8 + 4;
                byte[] reply = (i++ % 5) switch
                {
                    0 => [0xff, 1, 2],
                    1 => [0x20, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 9, 9],
                    2 => [0x20, 0, 0, 0, 0x12, 0x34, 0x56, 0x78, 0, 0, 0, 1],
                    3 => [0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                    _ when got >= NonceAt + 8 => [0x20, 0, 0, 1, .. buf.AsSpan(NonceAt, 8), 0, 0, 0, 60, 1],   // 1 record, 5 of its 16+ bytes
                    _ => [0],
                };
                bad.SendTo(reply, from);
            }
        }) { IsBackground = true };
        responder.Start();
        try
        {
            var s = Json("request", "--target", bad.LocalEndPoint!.ToString()!, "--bind", "127.0.62.7", "--count", "40", "--window", "1", "--timeout", "200ms")
                .GetProperty("steps")[0];
            Assert.Equal(40, L(s, "sent"));
            Assert.Equal(0, L(s, "replies"));
            // None got a valid reply (lost = sent - replies); the 8 answered with their own nonce but a broken record
            // are malformed and were not left to time out; the other 32 got nothing of theirs back.
            Assert.Equal(40, L(s, "lost"));
            Assert.Equal(32, L(s, "timed-out"));
            Assert.True(L(s, "malformed") >= 8, s.ToString());
            Assert.True(L(s, "malformed") + L(s, "other-type") + L(s, "unmatched") >= 38, s.ToString());
        }
        finally
        {
            stop.Cancel();
            responder.Join(TimeSpan.FromSeconds(5));
        }
    }

    [Fact]
    public void SelfTestAndRateStepsWriteJsonAndAnHtmlReportWithAnSvgChart()
    {
        string html = Path.Combine(Path.GetTempPath(), $"load-report-{Guid.NewGuid():N}.html");
        try
        {
            var rep = Json("request", "--self-test", "--target", "127.0.62.8:0", "--bind", "127.0.62.9", "--steps", "500,1k", "--duration", "700ms",
                "--eids", "100", "--report", html);
            Assert.True(rep.GetProperty("self-test").GetBoolean());
            var steps = rep.GetProperty("steps");
            Assert.Equal(2, steps.GetArrayLength());
            Assert.Equal(500, steps[0].GetProperty("offered-rate").GetDouble());
            Assert.Equal(1000, steps[1].GetProperty("offered-rate").GetDouble());
            foreach (var s in steps.EnumerateArray())
            {
                Assert.True(L(s, "replies") > 0);
                Assert.Equal(L(s, "replies"), L(s, "positive"));
            }
            Assert.True(rep.GetProperty("sink").GetProperty("map-requests").GetInt64() >= steps[0].GetProperty("replies").GetInt64());
            string page = File.ReadAllText(html);
            Assert.Contains("<svg", page);
            Assert.Contains("<polyline", page);
            Assert.Contains("<table>", page);
            Assert.DoesNotContain("http://", page.Replace("http://www.w3.org/2000/svg", "", StringComparison.Ordinal));
        }
        finally
        {
            File.Delete(html);
        }
    }

    [Fact]
    public void TheHumanTableNamesEveryCounter()
    {
        var (rc, stdout, stderr) = Cli("register", "--self-test", "--target", "127.0.62.10:0", "--bind", "127.0.62.11", "--duration", "300ms", "--eids", "50");
        Assert.True(rc == 0, stderr);
        foreach (var word in new[] { "sent", "replies", "accepted", "lost", "late", "duplicate", "unmatched", "malformed", "latency us", "p99.9", "kernel drops", "sink" })
        {
            Assert.Contains(word, stdout);
        }
    }

    [Fact]
    public void HelpExplainsEveryOptionAndBadOptionsAreUsageErrors()
    {
        var (rc, help, _) = Cli("--help");
        Assert.Equal(0, rc);
        var (rc2, help2, _) = Cli("register", "--help");
        Assert.Equal(0, rc2);
        Assert.Equal(help, help2);
        foreach (var option in LoadCommand.OptionNames) Assert.Contains("--" + option, help);
        foreach (var scenario in new[] { "register", "request", "mixed", "refresh", "sink" }) Assert.Contains(scenario, help);
        Assert.Contains("(default", help);
        Assert.Equal(2, Cli("register", "--target", "127.0.0.1", "--bogus").Rc);
        Assert.Equal(2, Cli("register").Rc);
        Assert.Equal(2, Cli("flood", "--target", "127.0.0.1").Rc);
        Assert.Equal(2, Cli("request", "--target", "127.0.0.1", "--threads", "0").Rc);
        Assert.Equal(2, Cli("request", "--target", "127.0.0.1", "--eid-base", "[0]255.255.255.255/32", "--eids", "2").Rc);
        Assert.Contains("load", Program.Help);
    }
}
