using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.RegularExpressions;
using Lisp.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace Lisp.DataPlane.Tests;

/// <summary>
/// Real `lisp-decent run` processes in network namespaces the test creates:
/// <code>
///   ns X1 (xTR1)                         ns U (underlay + MS/MR)                    ns X2 (xTR2)
///   lisp0: 10.1.0.1/32, fd00:1::1/128     br0 192.168.50.1/24                        lisp0: 10.2.0.1/32, fd00:2::1/128
///   routes 10.2.0.0/24, fd00:2::/64       MS/MR on 192.168.50.1:4342                 routes 10.1.0.0/24, fd00:1::/64
///     -> lisp0 (TUN)                       |                                           -> lisp0 (TUN)
///   v1 192.168.50.11 ------------------ v1u  br0  v2u ------------------------------- v2 192.168.50.12
/// </code>
/// The EID addresses live only on the TUNs and no namespace routes the other side's EID prefix anywhere but
/// into its TUN, so a reply can only come back through the overlay. The underlay is captured with tcpdump on
/// br0 to check that it carries UDP 4341 between the RLOCs.
/// </summary>
[Collection("netns")]
public sealed class NetnsTests(ITestOutputHelper output)
{
    private static int _counter;

    [SkippableTheory]
    [InlineData("io_uring")]
    [InlineData("syscalls")]
    public void Ping_tcp_ipv6_and_restart_through_the_overlay(string io)
    {
        Skip.IfNot(Environment.UserName == "root" || Sh("id -u").Out.Trim() == "0", "needs root for network namespaces");
        Skip.IfNot(File.Exists("/dev/net/tun"), "/dev/net/tun is missing");
        foreach (var tool in new[] { "ip", "ping", "nc", "tcpdump" })
            Skip.If(Sh($"command -v {tool}").Code != 0, $"{tool} is not installed (./build.sh deps)");

        string id = $"{Environment.ProcessId % 100000}{Interlocked.Increment(ref _counter)}";
        string u = $"ldp{id}u", x1 = $"ldp{id}x1", x2 = $"ldp{id}x2";
        var nss = new[] { u, x1, x2 };
        var dir = Directory.CreateTempSubdirectory("ldp-netns-");
        var procs = new List<NsProcess>();
        try
        {
            foreach (var ns in nss)
            {
                var r = Sh($"ip netns add {ns}");
                Skip.If(r.Code != 0, $"ip netns add failed: {r.Err.Trim()}");
                Must($"ip -n {ns} link set lo up");
            }
            Must($"ip -n {u} link add br0 type bridge && ip -n {u} addr add 192.168.50.1/24 dev br0 && ip -n {u} link set br0 up");
            int n = 1;
            foreach (var x in new[] { x1, x2 })
            {
                Must($"ip link add v{n} netns {x} type veth peer name v{n}u netns {u}");
                Must($"ip -n {u} link set v{n}u master br0 up");
                Must($"ip -n {x} addr add 192.168.50.1{n}/24 dev v{n} && ip -n {x} link set v{n} up");
                n++;
            }

            File.WriteAllText(Path.Combine(dir.FullName, "ms.toml"), """
                [node]
                name = "msmr"
                roles = ["map-server", "map-resolver"]
                listen = ["192.168.50.1"]
                [[site]]
                name = "site1"
                key = "k1"
                eid_prefixes = ["[0]10.1.0.0/24", "[0]fd00:1::/64"]
                [[site]]
                name = "site2"
                key = "k2"
                eid_prefixes = ["[0]10.2.0.0/24", "[0]fd00:2::/64"]
                """);
            WriteXtr(dir.FullName, 1, 2, io);
            WriteXtr(dir.FullName, 2, 1, io);

            using var capture = NsProcess.Start(u, "tcpdump", ["-i", "br0", "-nn", "-l", "udp"]);
            procs.Add(capture);
            var ms = Run(u, Path.Combine(dir.FullName, "ms.toml"), procs);
            ms.WaitFor("node-started", TimeSpan.FromSeconds(30));
            var xtr1 = Run(x1, Path.Combine(dir.FullName, "xtr1.toml"), procs);
            var xtr2 = Run(x2, Path.Combine(dir.FullName, "xtr2.toml"), procs);
            xtr1.WaitFor("data-plane-started", TimeSpan.FromSeconds(30));
            xtr2.WaitFor("data-plane-started", TimeSpan.FromSeconds(30));
            // The nodes run with no `ip` on their PATH (NsProcess.StartNode): the TUN's MTU, addresses (IPv6 without
            // DAD) and routes came from the binary's own rtnetlink requests, as the kernel now reports.
            Assert.Equal(1, xtr1.Count(@"tun-configured lisp0: address fd00:1::1/128 \(no DAD\)"));
            var tunAddr = Sh($"ip -n {x1} addr show dev lisp0").Out;
            Assert.Contains("inet 10.1.0.1/32", tunAddr);
            Assert.Contains("inet6 fd00:1::1/128", tunAddr);
            Assert.DoesNotContain("tentative", tunAddr);
            Assert.Contains("10.2.0.0/24 dev lisp0", Sh($"ip -n {x1} route show").Out);
            // The configured backend is the one in use (io_uring works on this project's kernels; see PLATFORM.md).
            Assert.True(xtr1.Count(io == "io_uring" ? @"io: io_uring \(" : @"io: syscalls \(configured") == 1, "xtr1 did not log the io backend:\n" + xtr1.Output);
            ms.WaitForCount("registration-accepted", 4, TimeSpan.FromSeconds(30));

            // IPv4 ping: the first packets miss in both directions and are held until Map-Replies install the entries.
            var ping = Poll(() => Sh($"ip netns exec {x1} ping -c 3 -i 0.3 -W 2 -I 10.1.0.1 10.2.0.1"), r => r.Code == 0, 8);
            output.WriteLine(ping.Out);
            Assert.True(ping.Code == 0, $"ping failed:\n{ping.Out}{ping.Err}\nxtr1:\n{xtr1.Output}\nxtr2:\n{xtr2.Output}");

            // IPv6 EIDs over the IPv4 underlay.
            var ping6 = Poll(() => Sh($"ip netns exec {x1} ping -6 -c 3 -i 0.3 -W 2 -I fd00:1::1 fd00:2::1"), r => r.Code == 0, 8);
            output.WriteLine(ping6.Out);
            Assert.True(ping6.Code == 0, $"ping -6 failed:\n{ping6.Out}{ping6.Err}\nxtr1:\n{xtr1.Output}");

            // MTU: without DF a packet that no longer fits after encapsulation goes as outer IPv4 fragments (RFC 9300 7.1).
            var frag = Sh($"ip netns exec {x1} ping -c 2 -W 2 -M dont -s 1472 -I 10.1.0.1 10.2.0.1");
            Assert.True(frag.Code == 0, $"ping -M dont -s 1472 failed:\n{frag.Out}{frag.Err}");

            // With DF the same size gets ICMP fragmentation-needed with mtu 1464.
            var df = Sh($"ip netns exec {x1} ping -c 2 -W 2 -M do -s 1472 -I 10.1.0.1 10.2.0.1");
            output.WriteLine(df.Out + df.Err);
            Assert.Matches("mtu ?= ?1464|Message too long", df.Out + df.Err);
            // TCP: 2 MB from A to B through the overlay (TCP's DF segments also exercise the ICMP path).
            string sink = Path.Combine(dir.FullName, "received.bin");
            using (var server = NsProcess.Start(x2, "sh", ["-c", $"timeout 60 nc -l -s 10.2.0.1 -p 5001 > {sink}"]))
            {
                Thread.Sleep(500);
                var send = Sh($"ip netns exec {x1} sh -c 'head -c 2000000 /dev/zero | tr \"\\0\" x | timeout 60 nc -N -s 10.1.0.1 10.2.0.1 5001'");
                Assert.True(send.Code == 0, $"nc send failed: {send.Err}");
                server.WaitExit(TimeSpan.FromSeconds(30));
            }
            Assert.Equal(2000000, new FileInfo(sink).Length);

            // The underlay carried LISP data between the RLOCs.
            Thread.Sleep(300);
            Assert.True(capture.Count(@"192\.168\.50\.11\.\d+ > 192\.168\.50\.12\.4341") > 0, "tcpdump saw no 4341 from xTR1 to xTR2:\n" + Tail(capture.Output));
            Assert.True(capture.Count(@"192\.168\.50\.12\.\d+ > 192\.168\.50\.11\.4341") > 0, "tcpdump saw no 4341 from xTR2 to xTR1");
            Assert.Equal(0, capture.Count(@"\b10\.[12]\.0\.1\b")); // no EID address is visible on the underlay

            // Restart xTR2: the overlay recovers once it is up and registered again.
            xtr2.Stop();
            Assert.Contains("data-plane-stopped", xtr2.Output);
            var xtr2b = Run(x2, Path.Combine(dir.FullName, "xtr2.toml"), procs);
            xtr2b.WaitFor("data-plane-started", TimeSpan.FromSeconds(30));
            var again = Poll(() => Sh($"ip netns exec {x1} ping -c 2 -i 0.3 -W 2 -I 10.1.0.1 10.2.0.1"), r => r.Code == 0, 10);
            Assert.True(again.Code == 0, $"ping after xTR2 restart failed:\n{again.Out}\nxtr2:\n{xtr2b.Output}");
            xtr1.Stop();
            output.WriteLine(Tail(xtr1.Output, 15));
            if (io == "io_uring")
            {
                // No offloads with io_uring: raw sockets, and the ITR writes the outer fragments itself.
                Assert.Matches(@"data-plane-stopped.*encap [1-9]\d* pkts.*icmp-too-big [1-9]\d*, fragmented [1-9]", xtr1.Output);
            }
            else
            {
                // Offloads on (the default with syscalls): UDP sockets, so the kernel fragments the outer packet (the ITR's
                // own fragment counter stays 0), and the TCP transfer came through the TUN as super-packets.
                Assert.Matches(@"data-plane-stopped.*encap [1-9]\d* pkts.*icmp-too-big [1-9]\d*, fragmented 0.*offload super-packets [1-9]", xtr1.Output);
            }
        }
        finally
        {
            foreach (var p in procs) p.Dispose();
            foreach (var ns in nss) Sh($"ip netns del {ns}");
            try
            {
                dir.Delete(true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static void WriteXtr(string dir, int me, int other, string io) => File.WriteAllText(Path.Combine(dir, $"xtr{me}.toml"), $"""
        [node]
        name = "xtr{me}"
        roles = ["itr", "etr"]
        rlocs = ["192.168.50.1{me}"]
        listen = ["192.168.50.1{me}"]
        [mapping]
        map_servers = ["192.168.50.1"]
        map_resolvers = ["192.168.50.1"]
        key = "k{me}"
        [etr]
        register_interval = "3s"
        [[database]]
        eid = "[0]10.{me}.0.0/24"
        [[database]]
        eid = "[0]fd00:{me}::/64"
        [data_plane]
        tun = "lisp0"
        addresses = ["10.{me}.0.1/32", "fd00:{me}::1/128"]
        routes = ["10.{other}.0.0/24", "fd00:{other}::/64"]
        miss_policy = "queue"
        stats_interval = "1s"
        io = "{io}"
        """);

    private NsProcess Run(string ns, string config, List<NsProcess> procs)
    {
        var p = NsProcess.StartNode(ns, config);
        procs.Add(p);
        return p;
    }

    private static (int Code, string Out, string Err) Poll(Func<(int Code, string Out, string Err)> f, Func<(int Code, string Out, string Err), bool> ok, int tries)
    {
        var r = f();
        for (int i = 1; i < tries && !ok(r); i++)
        {
            Thread.Sleep(500);
            r = f();
        }
        return r;
    }

    private static string Tail(string s, int lines = 40) => string.Join("\n", s.Split('\n').TakeLast(lines));

    private void Must(string cmd)
    {
        var r = Sh(cmd);
        if (r.Code != 0) throw new InvalidOperationException($"{cmd}: {r.Err}");
    }

    internal static (int Code, string Out, string Err) Sh(string cmd, int timeoutMs = 30000)
    {
        var psi = new ProcessStartInfo("sh") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(cmd);
        using var p = Process.Start(psi)!;
        var so = p.StandardOutput.ReadToEndAsync();
        var se = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeoutMs))
        {
            p.Kill(true);
            p.WaitForExit(5000);
            return (-1, so.Result, se.Result + $"\n(timed out after {timeoutMs} ms)");
        }
        p.WaitForExit();
        return (p.ExitCode, so.Result, se.Result);
    }
}

/// <summary>A child process started with `ip netns exec NS ...`, its output lines collected; bounded waits; killed by its own id on dispose.</summary>
internal sealed class NsProcess : IDisposable
{
    private readonly Process _p;
    private readonly ConcurrentQueue<string> _lines = new();

    private NsProcess(Process p) => _p = p;

    private static readonly Lazy<string> EmptyDirectory = new(() => Directory.CreateTempSubdirectory("ldp-empty-path-").FullName);

    /// <summary>
    /// `lisp-decent run --config CONFIG` in <paramref name="ns"/>, with a PATH that holds no `ip` (nor anything else):
    /// the node configures its TUN through rtnetlink from the binary itself (issue 13), as on a minimal image.
    /// </summary>
    public static NsProcess StartNode(string ns, string config)
    {
        var (file, args) = ApplianceProcess.CommandLine("run", "--config", config);
        if (!Path.IsPathRooted(file)) file = NetnsTests.Sh($"command -v {file}").Out.Trim();
        return Start(ns, file, args, emptyPath: true);
    }

    public static NsProcess Start(string ns, string file, IEnumerable<string> args, bool emptyPath = false)
    {
        string ip = NetnsTests.Sh("command -v ip").Out.Trim();
        var psi = new ProcessStartInfo(ip.Length > 0 ? ip : "ip") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "netns", "exec", ns, file }.Concat(args)) psi.ArgumentList.Add(a);
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        if (emptyPath) psi.Environment["PATH"] = EmptyDirectory.Value;
        var p = new Process { StartInfo = psi };
        var np = new NsProcess(p);
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) np._lines.Enqueue(e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) np._lines.Enqueue(e.Data); };
        p.Start();
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return np;
    }

    public string Output => string.Join("\n", _lines);
    public int Count(string pattern) => _lines.Count(l => Regex.IsMatch(l, pattern));

    public void WaitFor(string pattern, TimeSpan timeout) => WaitForCount(pattern, 1, timeout);

    public void WaitForCount(string pattern, int count, TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        while (Count(pattern) < count)
        {
            if (sw.Elapsed > timeout || _p.HasExited)
            {
                Thread.Sleep(200);
                if (Count(pattern) >= count) return;
                throw new TimeoutException($"fewer than {count} lines matching /{pattern}/ in {timeout.TotalSeconds}s{(_p.HasExited ? $" (exited {_p.ExitCode})" : "")}:\n{Output}");
            }
            Thread.Sleep(100);
        }
    }

    public void WaitExit(TimeSpan timeout)
    {
        if (!_p.WaitForExit(timeout)) Dispose();
    }

    /// <summary>SIGTERM (clean stop: the appliance logs its counters), then kill after 5 s.</summary>
    public void Stop()
    {
        if (_p.HasExited) return;
        NetnsTests.Sh($"kill -TERM {_p.Id}");
        if (!_p.WaitForExit(5000)) _p.Kill(true);
        // Once it has exited, the parameterless wait also waits for the asynchronous readers to deliver the last
        // output lines (the timed one does not): the fast-exiting AOT binary's "data-plane-stopped" line was
        // missed that way once (ApplianceProcess had the same race).
        if (_p.WaitForExit(5000)) _p.WaitForExit();
    }

    public void Dispose()
    {
        try
        {
            if (!_p.HasExited)
            {
                _p.Kill(true);
                _p.WaitForExit(5000);
            }
        }
        catch (InvalidOperationException)
        {
        }
        _p.Dispose();
    }
}
