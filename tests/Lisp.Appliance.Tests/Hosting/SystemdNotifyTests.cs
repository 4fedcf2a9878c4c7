using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using Lisp.Appliance.Tests.Support;
using Lisp.TestSupport;

namespace Lisp.Appliance.Tests.Hosting;

/// <summary>
/// Issue 14: `lisp-decent run` speaks the systemd notification protocol itself. The test plays systemd: it binds an
/// AF_UNIX datagram socket, starts the binary with $NOTIFY_SOCKET (and $WATCHDOG_USEC) naming it, and reads what
/// arrives: READY=1 once up, RELOADING=1 + MONOTONIC_USEC then READY=1 on SIGHUP, WATCHDOG=1 at half the watchdog
/// period, STOPPING=1 on SIGTERM.
/// </summary>
public sealed class SystemdNotifyTests : IDisposable
{
    private const string Network = "127.0.92";
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);
    private readonly Topology _net = new(Network);

    public void Dispose() => _net.Dispose();

    private string Config() => $$"""
        [node]
        name = "notify"
        roles = ["map-server", "map-resolver"]
        listen = ["{{_net.Address(1)}}"]
        control_port = {PORT}

        [[site]]
        name = "one"
        key = "key-one"
        eid_prefixes = ["[0]10.1.0.0/16"]
        """;

    /// <summary>The binary with extra environment, its output collected (ApplianceProcess inherits the test's environment only).</summary>
    private sealed class Child : IDisposable
    {
        private readonly Process _p;
        public readonly ConcurrentQueue<string> Lines = new();

        public Child(string config, IReadOnlyDictionary<string, string> env)
        {
            var (file, args) = ApplianceProcess.CommandLine("run", "--config", config);
            var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in args) psi.ArgumentList.Add(a);
            foreach (var (k, v) in env) psi.Environment[k] = v;
            _p = new Process { StartInfo = psi };
            _p.OutputDataReceived += (_, e) => { if (e.Data is not null) Lines.Enqueue(e.Data); };
            _p.ErrorDataReceived += (_, e) => { if (e.Data is not null) Lines.Enqueue(e.Data); };
            _p.Start();
            _p.BeginOutputReadLine();
            _p.BeginErrorReadLine();
        }

        public int Id => _p.Id;
        public bool HasExited => _p.HasExited;
        public int ExitCode => _p.ExitCode;
        public string Output => string.Join("\n", Lines);

        public void Signal(string name)
        {
            using var kill = Process.Start("kill", [$"-{name}", Id.ToString(CultureInfo.InvariantCulture)])!;
            Assert.True(kill.WaitForExit(5000) && kill.ExitCode == 0, $"kill -{name} failed");
        }

        public bool WaitForExit(TimeSpan t) => _p.WaitForExit(t);

        /// <summary>True once a log line contains <paramref name="text"/> (bounded wait: output arrives asynchronously).</summary>
        public bool WaitForLine(string text, TimeSpan timeout)
        {
            var sw = Stopwatch.StartNew();
            while (sw.Elapsed < timeout)
            {
                if (Lines.Any(l => l.Contains(text, StringComparison.Ordinal))) return true;
                Thread.Sleep(50);
            }
            return false;
        }

        public void Dispose()
        {
            try
            {
                if (!_p.HasExited) _p.Kill(entireProcessTree: true);
                _p.WaitForExit(5000);
            }
            catch (InvalidOperationException)
            {
            }
            _p.Dispose();
        }
    }

    /// <summary>Plays systemd's end: a bound AF_UNIX datagram socket; each datagram is one notification.</summary>
    private sealed class NotifySocket : IDisposable
    {
        private readonly Socket _s = new(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        public readonly List<(TimeSpan At, string Text)> Received = [];
        private readonly Stopwatch _clock = Stopwatch.StartNew();

        /// <param name="path">a file path, or "\0name" for an abstract name</param>
        public NotifySocket(string path)
        {
            _s.Bind(new UnixDomainSocketEndPoint(path));
            _s.ReceiveTimeout = 200;
        }

        /// <summary>Reads until a notification matching <paramref name="accept"/> arrives (bounded); returns it.</summary>
        public string WaitFor(Func<string, bool> accept, TimeSpan timeout, Func<string>? context = null)
        {
            var sw = Stopwatch.StartNew();
            var buf = new byte[4096];
            while (sw.Elapsed < timeout)
            {
                int n;
                try
                {
                    n = _s.Receive(buf);
                }
                catch (SocketException e) when (e.SocketErrorCode is SocketError.TimedOut or SocketError.WouldBlock)
                {
                    continue;
                }
                var text = Encoding.UTF8.GetString(buf, 0, n);
                Received.Add((_clock.Elapsed, text));
                if (accept(text)) return text;
            }
            Assert.Fail($"no matching notification within {timeout.TotalSeconds} s; got: [{string.Join("] [", Received.Select(r => r.Text.Replace("\n", "\\n", StringComparison.Ordinal)))}]\n{context?.Invoke()}");
            return "";
        }

        /// <summary>Reads (and records) what is queued now, without waiting for more.</summary>
        public void Drain()
        {
            var buf = new byte[4096];
            for (int i = 0; i < 10_000 && _s.Available > 0; i++)
            {
                int n = _s.Receive(buf);
                Received.Add((_clock.Elapsed, Encoding.UTF8.GetString(buf, 0, n)));
            }
        }

        public void Dispose() => _s.Dispose();
    }

    private static bool Has(string text, string assignment) => text.Split('\n').Contains(assignment);

    [Fact]
    public void Ready_reloading_watchdog_and_stopping_reach_the_notify_socket()
    {
        var socketPath = Path.Combine(_net.Dir, "notify.sock");
        using var notify = new NotifySocket(socketPath);
        var config = _net.WriteConfig("notify", Config());
        using var child = new Child(config, new Dictionary<string, string> { ["NOTIFY_SOCKET"] = socketPath, ["WATCHDOG_USEC"] = "600000" });

        var ready = notify.WaitFor(t => Has(t, "READY=1"), Wait, () => child.Output);
        Assert.Contains($"MAINPID={child.Id}", ready.Split('\n'));
        // READY=1 comes once the node is up: its control socket answers then.
        Assert.True(child.WaitForLine(" node-started ", Wait), child.Output);
        var lig = Topology.LigAt("[0]10.1.1.1", _net.Endpoint(1), count: 2);
        Assert.True(lig.Replied, lig.Raw);

        // WATCHDOG_USEC = 600 ms: WATCHDOG=1 about every 300 ms while the control loop answers.
        notify.WaitFor(t => Has(t, "WATCHDOG=1"), Wait, () => child.Output);
        notify.Drain();   // what queued up while the test did other things: the spacing below is measured live
        notify.WaitFor(t => Has(t, "WATCHDOG=1"), Wait, () => child.Output);
        var sw = Stopwatch.StartNew();
        int more = 0;
        notify.WaitFor(t => Has(t, "WATCHDOG=1") && ++more >= 3, Wait, () => child.Output);
        Assert.InRange(sw.Elapsed.TotalSeconds, 0.5, 10);   // three more at ~300 ms each: not a burst, not absent

        // SIGHUP: RELOADING=1 with MONOTONIC_USEC (CLOCK_MONOTONIC, as Stopwatch reads it here), then READY=1.
        ulong beforeUsec = (ulong)(Stopwatch.GetTimestamp() / (Stopwatch.Frequency / 1_000_000));
        child.Signal("HUP");
        var reloading = notify.WaitFor(t => Has(t, "RELOADING=1"), Wait, () => child.Output);
        var mono = reloading.Split('\n').Single(l => l.StartsWith("MONOTONIC_USEC=", StringComparison.Ordinal));
        ulong usec = ulong.Parse(mono["MONOTONIC_USEC=".Length..], CultureInfo.InvariantCulture);
        ulong afterUsec = (ulong)(Stopwatch.GetTimestamp() / (Stopwatch.Frequency / 1_000_000));
        Assert.InRange(usec, beforeUsec, afterUsec);
        notify.WaitFor(t => Has(t, "READY=1"), Wait, () => child.Output);
        Assert.False(child.HasExited, "SIGHUP stopped the process:\n" + child.Output);
        Assert.True(child.WaitForLine(" config-reloaded ", Wait), child.Output);

        // SIGTERM: STOPPING=1, then a clean exit.
        child.Signal("TERM");
        notify.WaitFor(t => Has(t, "STOPPING=1"), Wait, () => child.Output);
        Assert.True(child.WaitForExit(TimeSpan.FromSeconds(15)), "did not exit after SIGTERM");
        Assert.Equal(0, child.ExitCode);
    }

    [Fact]
    public void An_abstract_notify_socket_name_works_and_no_watchdog_without_WATCHDOG_USEC()
    {
        var name = $"lisp-decent-test-{Environment.ProcessId}-{Guid.NewGuid():N}";
        using var notify = new NotifySocket("\0" + name);
        var config = _net.WriteConfig("notify", Config());
        using (var child = new Child(config, new Dictionary<string, string> { ["NOTIFY_SOCKET"] = "@" + name }))
        {
            notify.WaitFor(t => Has(t, "READY=1"), Wait, () => child.Output);
            child.Signal("TERM");
            notify.WaitFor(t => Has(t, "STOPPING=1"), Wait, () => child.Output);
            Assert.True(child.WaitForExit(TimeSpan.FromSeconds(15)));
            // No WATCHDOG_USEC: no watchdog pings.
            Assert.DoesNotContain(notify.Received, r => Has(r.Text, "WATCHDOG=1"));
        }
    }
}
