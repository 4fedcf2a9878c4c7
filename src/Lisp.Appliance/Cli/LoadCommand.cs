using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Lisp.Appliance.Config;
using Lisp.Load;
using Lisp.Wire;

namespace Lisp.Appliance.Cli;

/// <summary>
/// `lisp-decent load`: a load generator for LISP control planes (register, request, mixed, refresh) and a
/// counting sink. Parsing and printing here; the work is in Lisp.Load.
/// </summary>
public static class LoadCommand
{
    public const string Help = """
        Usage: lisp-decent load SCENARIO --target ADDR[:PORT] [options]
               lisp-decent load sink --listen ADDR:PORT [options]

        Drives a map-server / map-resolver with RFC 9301 control messages over UDP and counts what comes back:
        rate, loss, latency percentiles (kernel receive timestamp - send time), bad replies, kernel drops.
        Batched sendmmsg/recvmmsg, one socket and thread per --threads, bounded by --duration and --count.

        Scenarios:
          register   Map-Registers (type 3) for --eids EIDs, --records per message, one locator (--rloc); each
                     Map-Notify is matched by nonce and its HMAC checked, as an ETR would (no Map-Notify-Ack: a
                     solicited Map-Notify needs none, RFC 9301 5.7; --ack sends one). Reports accepted/s (unique
                     Map-Notifies). Each EID once unless
                     --count, --steps or --self-test say otherwise.
          request    ECM (type 8) Map-Requests (inner IP + UDP to 4342, ITR-RLOC = our address) for EIDs drawn at
                     random from the range; Map-Replies matched by nonce and checked: a record must cover the EID
                     (wrong EID otherwise), positive / negative, and with --rloc the RLOC expected (RLOC mismatch).
          mixed      both, --ratio registers:requests
          refresh    re-registers the same EIDs from the same port(s) for --duration (use --bind ADDR:PORT so the
                     map-server sees refreshes, not new registrations)
          sink       receive and count (see "Sink options"); with --echo answer each Map-Request with a canned
                     Map-Reply and each Map-Register with a Map-Notify carrying the same nonce

        Target and addresses:
          --target ADDR[:PORT]   the map-server / map-resolver (port 4342 when omitted; [v6]:port for IPv6)
          --bind ADDR[:PORT]     local address and first port (thread i uses PORT+i); default: the address routing
                                 picks toward the target, ephemeral ports. The map-server keys a registration by EID
                                 and registerer address:port, so fix the port for refreshes
          --rloc ADDR            register: the locator registered (default: the bound address);
                                 request: the RLOC every positive reply must carry (default: not checked)

        EIDs:
          --eid-base EID         first EID (default [0]10.0.0.0/32); IP prefixes count up by their size
                                 ([5]2001:db8::/64 -> 2001:db8:0:1::/64 ...), names as 'NAME-i' ([0]'load' -> 'load-0')
          --eids N               how many EIDs (default 1000, at most 2000000)
          --eid-file F           one EID per line (# comments) instead of a range
          --records K            records per Map-Register (default 1, at most 255)
          --ttl MINUTES          record TTL in Map-Registers (default 3)

        Registration:
          --key KEY              the site's authentication key (default load-key)
          --algorithm A          hmac-sha256 (default) or hmac-sha1
          --no-proxy             clear the P bit (default set: the map-server answers requests itself)
          --no-notify            clear the M bit (default set; without it nothing comes back to count)
          --ack                  answer each Map-Notify with a signed Map-Notify-Ack (type 5), for map-servers that expect one
          --no-ack               send no Map-Notify-Acks (the default)
          --no-verify            do not check Map-Notify HMACs or Map-Reply records

        Load shape:
          --rate R               open loop: R messages/s in all, paced (k and m suffixes: 10k); 0 = unpaced (default)
          --window W             closed loop: at most W unanswered in all (default 0 = no limit; with --rate: capped)
          --steps R1,R2,...      one run per rate (e.g. 10k,20k,50k), each --duration long, to find the knee
          --ratio A:B            mixed: A registers to B requests (default 1:9)
          --duration D           stop sending after D (default 10s, at most 2h; e.g. 500ms, 20s, 5m; a bare number is seconds)
          --count N              stop after N messages (per step; default: register = each message once, else 0 = none)
          --timeout D            unanswered after D = lost; also the drain time at the end (default 1s, at most 60s)
          --threads T            sockets, each on its own thread with 1/T of the load (default 1, at most 64)
          --batch N              datagrams per sendmmsg (default 32, at most 1024)
          --seed N               random seed for request EIDs (default: time)

        Output:
          --json                 one JSON object instead of the table
          --report FILE.html     also write a self-contained HTML page (table; inline SVG latency/rate charts)
          --no-kernel-drops      do not read /proc/net/udp(6) drop counters
          --self-test            measure the generator's own ceiling: start the built-in echoing sink (on --target
                                 when given, else 127.0.0.1, ephemeral port) and run the scenario against it
                                 (register then re-registers for --duration; default window 256 per thread)

        Sink options (lisp-decent load sink):
          --listen ADDR:PORT     where to receive (required)
          --echo                 answer Map-Request ECMs and Map-Registers (no table: built from the request's bytes)
          --key KEY              sign echoed Map-Notifies with KEY (give the generator's key, else its HMAC check fails)
          --rloc ADDR            RLOC in echoed Map-Replies (default the listen address)
          --threads T            sockets on the same ADDR:PORT (SO_REUSEPORT), one thread each (default 1)
          --batch N              datagrams per recvmmsg (default 64)
          --duration D           stop after D (default 60s, at most 2h; Ctrl-C stops earlier)
          --json                 print the counts as JSON

          -h, --help             show this help (lisp-decent load SCENARIO --help: the same)

        Exit status: 0 run completed, 1 socket error, 2 usage error.
        """;

    private static readonly string[] ValueOptions =
    [
        "target", "bind", "rloc", "eid-base", "eids", "eid-file", "records", "ttl", "key", "algorithm", "rate", "window",
        "steps", "ratio", "duration", "count", "timeout", "threads", "batch", "seed", "report", "listen",
    ];

    private static readonly string[] FlagOptions = ["no-proxy", "no-notify", "ack", "no-ack", "no-verify", "json", "no-kernel-drops", "self-test", "echo"];

    /// <summary>Every option `load` accepts (the help must explain each).</summary>
    public static IReadOnlyList<string> OptionNames => [.. ValueOptions, .. FlagOptions];

    public static int Run(IReadOnlyList<string> args, TextWriter stdout, TextWriter stderr)
    {
        var cl = CommandLine.Parse(args, ValueOptions, FlagOptions);
        if (cl.Has("help"))
        {
            stdout.WriteLine(Help);
            return 0;
        }
        if (cl.Error is not null || cl.Positional.Count != 1)
        {
            stderr.WriteLine($"load: {cl.Error ?? "give exactly one scenario: register, request, mixed, refresh or sink"} (see lisp-decent load --help)");
            return 2;
        }
        try
        {
            return cl.Positional[0] switch
            {
                "sink" => RunSink(cl, stdout, stderr),
                "register" => RunLoad(cl, LoadScenario.Register, stdout, stderr),
                "request" => RunLoad(cl, LoadScenario.Request, stdout, stderr),
                "mixed" => RunLoad(cl, LoadScenario.Mixed, stdout, stderr),
                "refresh" => RunLoad(cl, LoadScenario.Refresh, stdout, stderr),
                _ => Usage(stderr, $"unknown scenario '{cl.Positional[0]}'"),
            };
        }
        catch (UsageException e)
        {
            return Usage(stderr, e.Message);
        }
        catch (IOException e)
        {
            stderr.WriteLine($"load: {e.Message}");
            return 1;
        }
    }

    private sealed class UsageException(string message) : Exception(message);

    private static int Usage(TextWriter stderr, string message)
    {
        stderr.WriteLine($"load: {message} (see lisp-decent load --help)");
        return 2;
    }

    /// <summary>"2500", "10k", "1.5m" -> 2500, 10000, 1500000.</summary>
    internal static bool TryRate(string s, out double rate)
    {
        s = s.Trim().ToLowerInvariant();
        double scale = 1;
        if (s.EndsWith('k')) { scale = 1e3; s = s[..^1]; }
        else if (s.EndsWith('m')) { scale = 1e6; s = s[..^1]; }
        bool ok = double.TryParse(s, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out rate);
        rate *= scale;
        return ok && rate >= 0;
    }

    private static long Long(CommandLine cl, string name, long dflt, long min, long max)
    {
        if (cl.Value(name) is not { } v) return dflt;
        if (!TryRate(v, out double d) || d != Math.Floor(d) || d < min || d > max) throw new UsageException($"--{name} must be a whole number {min}..{max}");
        return (long)d;
    }

    private static TimeSpan Duration(CommandLine cl, string name, TimeSpan dflt)
    {
        if (cl.Value(name) is not { } v) return dflt;
        if (double.TryParse(v, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double seconds)) v += "s"; // a bare number is seconds
        if (!ConfigLoader.TryDuration(v, out var d) || d <= TimeSpan.Zero) throw new UsageException($"--{name} must be a duration like 10s or 500ms");
        return d;
    }

    private static IPAddress? Address(CommandLine cl, string name)
    {
        if (cl.Value(name) is not { } v) return null;
        return IPAddress.TryParse(v, out var a) ? a : throw new UsageException($"--{name} '{v}' is not an address");
    }

    private static IPEndPoint Endpoint(string name, string value, int defaultPort) =>
        ConfigLoader.TryEndpoint(value, defaultPort, out var ep) ? ep : throw new UsageException($"--{name} '{value}' is not ADDR or ADDR:PORT");

    private static IPAddress LocalAddressFor(IPEndPoint target)
    {
        using var probe = new Socket(target.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        probe.Connect(target); // sends nothing: asks the kernel which source address it would use
        return ((IPEndPoint)probe.LocalEndPoint!).Address;
    }

    internal static LoadOptions ParseOptions(CommandLine cl, LoadScenario scenario, IPEndPoint? targetOverride = null)
    {
        bool selfTest = cl.Has("self-test");
        IPEndPoint target;
        if (targetOverride is not null) target = targetOverride;
        else if (cl.Value("target") is { } t) target = Endpoint("target", t, DataHeader.ControlPort);
        else throw new UsageException("--target is required");
        IPEndPoint bind;
        if (cl.Value("bind") is { } b)
        {
            if (IPAddress.TryParse(b, out var ba) && !b.StartsWith('[')) bind = new IPEndPoint(ba, 0);
            else bind = Endpoint("bind", b, 0);
        }
        else
        {
            bind = new IPEndPoint(LocalAddressFor(target), 0);
        }
        var eidBase = EidPrefix.Parse("[0]10.0.0.0/32");
        if (cl.Value("eid-base") is { } eb)
        {
            if (!EidPrefix.TryParse(eb, out var p, out var err)) throw new UsageException($"--eid-base: {err}");
            eidBase = p!;
        }
        List<EidPrefix>? list = null;
        if (cl.Value("eid-file") is { } f)
        {
            if (!File.Exists(f)) throw new UsageException($"--eid-file '{f}' not found");
            list = [];
            int line = 0;
            foreach (var raw in File.ReadLines(f))
            {
                line++;
                var s = raw.Trim();
                if (s.Length == 0 || s.StartsWith('#')) continue;
                if (!EidPrefix.TryParse(s, out var p, out var err)) throw new UsageException($"--eid-file {f}:{line}: {err}");
                list.Add(p!);
                if (list.Count > LoadOptions.MaxEids) throw new UsageException($"--eid-file holds more than {LoadOptions.MaxEids} EIDs");
            }
            if (list.Count == 0) throw new UsageException($"--eid-file {f} holds no EID");
        }
        int eids = (int)Long(cl, "eids", 1000, 1, LoadOptions.MaxEids);
        if (list is null && EidRange.Check(eidBase, eids) is { } rangeError) throw new UsageException($"--eid-base/--eids: {rangeError}");
        var algorithm = cl.Value("algorithm") switch
        {
            null or "hmac-sha256" or "sha256" or "hmac-sha256-128" => AuthAlgorithm.HmacSha256_128,
            "hmac-sha1" or "sha1" or "hmac-sha1-96" => AuthAlgorithm.HmacSha1_96,
            var a => throw new UsageException($"--algorithm '{a}': use hmac-sha256 or hmac-sha1"),
        };
        int rr = 1, rq = 9;
        if (cl.Value("ratio") is { } ratio)
        {
            var parts = ratio.Split(':');
            if (parts.Length != 2 || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out rr) ||
                !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out rq) || rr + rq == 0 || rr > 1000 || rq > 1000)
            {
                throw new UsageException("--ratio must be A:B, e.g. 1:9");
            }
        }
        double rate = 0;
        if (cl.Value("rate") is { } rs && !TryRate(rs, out rate)) throw new UsageException("--rate must be a number >= 0 (k and m suffixes allowed)");
        List<double>? steps = null;
        if (cl.Value("steps") is { } ss)
        {
            steps = [];
            foreach (var part in ss.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                if (!TryRate(part, out var r) || r <= 0) throw new UsageException($"--steps: '{part}' is not a rate > 0");
                steps.Add(r);
            }
        }
        int threads = (int)Long(cl, "threads", 1, 1, LoadOptions.MaxThreads);
        int window = (int)Long(cl, "window", selfTest ? 256 * threads : 0, 0, 1 << 22);
        long count = Long(cl, "count", 0, 0, long.MaxValue / 2);
        if (selfTest && scenario == LoadScenario.Register && count == 0 && steps is null) scenario = LoadScenario.Refresh;
        var o = new LoadOptions
        {
            Scenario = scenario,
            Target = target,
            Bind = bind,
            Rloc = Address(cl, "rloc"),
            EidBase = eidBase,
            Eids = list?.Count ?? eids,
            EidList = list,
            RecordsPerRegister = (int)Long(cl, "records", 1, 1, 255),
            RecordTtlMinutes = (uint)Long(cl, "ttl", 3, 0, 1440 * 365),
            Algorithm = algorithm,
            Key = Encoding.UTF8.GetBytes(cl.Value("key") ?? "load-key"),
            ProxyReply = !cl.Has("no-proxy"),
            WantMapNotify = !cl.Has("no-notify"),
            Ack = cl.Has("ack") && !cl.Has("no-ack"),
            Verify = !cl.Has("no-verify"),
            RatioRegister = rr,
            RatioRequest = rq,
            Rate = rate,
            Window = window,
            Steps = steps,
            Duration = Duration(cl, "duration", TimeSpan.FromSeconds(10)),
            Count = count,
            Timeout = Duration(cl, "timeout", TimeSpan.FromSeconds(1)),
            Threads = threads,
            Batch = (int)Long(cl, "batch", 32, 1, LoadOptions.MaxBatch),
            Seed = (int)Long(cl, "seed", Environment.TickCount & 0x7fffffff, 0, int.MaxValue),
            KernelDrops = !cl.Has("no-kernel-drops"),
        };
        if (o.Validate() is { } err2) throw new UsageException(err2);
        return o;
    }

    private static int RunLoad(CommandLine cl, LoadScenario scenario, TextWriter stdout, TextWriter stderr)
    {
        if (cl.Value("listen") is not null || cl.Has("echo")) throw new UsageException("--listen and --echo belong to `load sink`");
        bool selfTest = cl.Has("self-test");
        LoadSink? sink = null;
        try
        {
            IPEndPoint? sinkTarget = null;
            if (selfTest)
            {
                // The sink may take an ephemeral port here (ADDR or ADDR:0).
                var at = new IPEndPoint(IPAddress.Loopback, 0);
                if (cl.Value("target") is { } t)
                {
                    if (IPAddress.TryParse(t, out var ta) && !t.StartsWith('[') && (t.Contains(':') || t.Count(ch => ch == '.') == 3)) at = new IPEndPoint(ta, 0);
                    else if (!IPEndPoint.TryParse(t, out at!)) throw new UsageException($"--target '{t}' is not ADDR or ADDR:PORT");
                }
                sink = new LoadSink(new SinkOptions
                {
                    Listen = at,
                    Echo = true,
                    Key = Encoding.UTF8.GetBytes(cl.Value("key") ?? "load-key"),
                    Rloc = Address(cl, "rloc"),
                    Threads = (int)Long(cl, "threads", 1, 1, LoadOptions.MaxThreads),
                });
                sinkTarget = sink.Local;
            }
            var o = ParseOptions(cl, scenario, sinkTarget);
            using var cts = new CancellationTokenSource();
            ConsoleCancelEventHandler onCancel = (_, e) =>
            {
                e.Cancel = true;
                cts.Cancel();
            };
            Console.CancelKeyPress += onCancel;
            LoadReport report;
            try
            {
                using var runner = new LoadRunner(o);
                sink?.Start();
                report = runner.Run(cts.Token, o.Steps is { Count: > 1 } ? line => stderr.WriteLine("load: " + line) : null);
            }
            finally
            {
                Console.CancelKeyPress -= onCancel;
            }
            if (sink is not null) report = report with { SelfTest = true, Sink = sink.Stop() };
            if (cl.Value("report") is { } file)
            {
                File.WriteAllText(file, LoadReportFormat.Html(report));
            }
            if (cl.Has("json")) stdout.WriteLine(JsonSerializer.Serialize(report, LoadJsonContext.Default.LoadReport));
            else stdout.Write(LoadReportFormat.Text(report));
            return 0;
        }
        catch (ArgumentException e)
        {
            throw new UsageException(e.Message);
        }
        finally
        {
            sink?.Dispose();
        }
    }

    private static int RunSink(CommandLine cl, TextWriter stdout, TextWriter stderr)
    {
        if (cl.Value("listen") is not { } l) throw new UsageException("sink needs --listen ADDR:PORT");
        var listen = Endpoint("listen", l, DataHeader.ControlPort);
        var duration = Duration(cl, "duration", TimeSpan.FromSeconds(60));
        if (duration > LoadOptions.MaxDuration) throw new UsageException("--duration must be at most 2h");
        using var sink = new LoadSink(new SinkOptions
        {
            Listen = listen,
            Echo = cl.Has("echo"),
            Key = cl.Value("key") is { } k ? Encoding.UTF8.GetBytes(k) : null,
            Rloc = Address(cl, "rloc"),
            Threads = (int)Long(cl, "threads", 1, 1, LoadOptions.MaxThreads),
            Batch = (int)Long(cl, "batch", 64, 1, LoadOptions.MaxBatch),
        });
        using var done = new ManualResetEventSlim();
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            e.Cancel = true;
            done.Set();
        };
        Console.CancelKeyPress += onCancel;
        SinkReport report;
        try
        {
            sink.Start();
            if (!cl.Has("json")) stderr.WriteLine($"load sink: listening on {sink.Local}{(cl.Has("echo") ? ", echoing" : "")} for {duration.TotalSeconds:0.###} s");
            done.Wait(duration);
            report = sink.Stop();
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
        if (cl.Has("json")) stdout.WriteLine(JsonSerializer.Serialize(report, LoadJsonContext.Default.SinkReport));
        else
        {
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"sink {report.Listen}: received {report.Received} in {report.Seconds:0.000} s = {report.ReceivedRate:0.0}/s; map-request ECMs {report.MapRequests}, map-registers {report.MapRegisters}, map-notify-acks {report.MapNotifyAcks}, other {report.Other}, malformed {report.Malformed}; replies sent {report.RepliesSent}; kernel drops {report.KernelDrops?.ToString(CultureInfo.InvariantCulture) ?? "n/a"}"));
        }
        return 0;
    }
}
