using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.RegularExpressions;
using Lisp.TestSupport;
using Xunit;

namespace Lisp.DataPlane.Tests;

/// <summary>
/// The scaffolding of the process-level network-namespace tests, in one place: <see cref="Open"/> skips (with the
/// reason) unless the test runs as root with /dev/net/tun and the tools it names; the lab then creates uniquely named
/// namespaces (loopback up), veth pairs and bridges, a temporary directory for configs and captures, and starts nodes
/// and other processes inside the namespaces. Dispose kills every process it started (by its own id), deletes the
/// namespaces it created and the directory, in that order, so a failed or skipped test leaves nothing behind.
/// The static helpers (<see cref="Sh"/>, <see cref="Must"/>, <see cref="Poll"/>, <see cref="Tail"/>, <see cref="Cli"/>)
/// are meant for `using static`.
/// </summary>
internal sealed class NetnsLab : IDisposable
{
    private static int _counter;
    private readonly List<string> _namespaces = [];
    private readonly List<NsProcess> _processes = [];

    private NetnsLab(string directoryPrefix) => Directory = System.IO.Directory.CreateTempSubdirectory(directoryPrefix);

    /// <summary>The lab's temporary directory (configs, captured files); deleted on dispose.</summary>
    public DirectoryInfo Directory { get; }

    /// <summary>
    /// Skips the test unless it can build namespaces here: root, /dev/net/tun, and every tool in
    /// <paramref name="tools"/> on the PATH; then a lab whose temporary directory starts with <paramref name="directoryPrefix"/>.
    /// </summary>
    public static NetnsLab Open(string directoryPrefix, params string[] tools)
    {
        Skip.IfNot(Environment.UserName == "root" || Sh("id -u").Out.Trim() == "0", "needs root for network namespaces");
        Skip.IfNot(File.Exists("/dev/net/tun"), "/dev/net/tun is missing");
        foreach (var tool in tools)
            Skip.If(Sh($"command -v {tool}").Code != 0, $"{tool} is not installed (./build.sh deps)");
        return new NetnsLab(directoryPrefix);
    }

    /// <summary>The full path of <paramref name="name"/> in the lab's directory.</summary>
    public string PathOf(string name) => Path.Combine(Directory.FullName, name);

    /// <summary>Writes <paramref name="text"/> to <paramref name="name"/> in the lab's directory; its full path.</summary>
    public string WriteFile(string name, string text)
    {
        string path = PathOf(name);
        File.WriteAllText(path, text);
        return path;
    }

    /// <summary>
    /// One namespace per suffix, all named <paramref name="prefix"/> + an id unique to this test process and call +
    /// the suffix, each with its loopback up. Skips the test when the kernel refuses `ip netns add`.
    /// </summary>
    public string[] AddNamespaces(string prefix, params string[] suffixes)
    {
        string id = $"{Environment.ProcessId % 100000}{Interlocked.Increment(ref _counter)}";
        var names = suffixes.Select(s => prefix + id + s).ToArray();
        foreach (var ns in names)
        {
            var r = Sh($"ip netns add {ns}");
            Skip.If(r.Code != 0, $"ip netns add failed: {r.Err.Trim()}");
            _namespaces.Add(ns);
            Must($"ip -n {ns} link set lo up");
        }
        return names;
    }

    /// <summary>
    /// Two namespaces (<see cref="AddNamespaces"/> with suffixes "a" and "b") joined by a veth pair: v1 in A with
    /// <paramref name="addressesA"/>, v2 in B with <paramref name="addressesB"/>, both up (<see cref="Up"/>).
    /// </summary>
    public (string A, string B) AddVethPair(string prefix, string[] addressesA, string[] addressesB)
    {
        var nss = AddNamespaces(prefix, "a", "b");
        Veth(nss[0], "v1", nss[1], "v2");
        Up(nss[0], "v1", addressesA);
        Up(nss[1], "v2", addressesB);
        return (nss[0], nss[1]);
    }

    /// <summary>A veth pair: <paramref name="nameA"/> in <paramref name="nsA"/>, its peer <paramref name="nameB"/> in <paramref name="nsB"/> (both down, no address).</summary>
    public static void Veth(string nsA, string nameA, string nsB, string nameB) =>
        Must($"ip link add {nameA} netns {nsA} type veth peer name {nameB} netns {nsB}");

    /// <summary>
    /// Adds <paramref name="addresses"/> (CIDR; IPv6 ones without duplicate address detection, so they are usable at
    /// once) to <paramref name="dev"/> in <paramref name="ns"/> and sets it up.
    /// </summary>
    public static void Up(string ns, string dev, params string[] addresses)
    {
        var steps = addresses.Select(a => $"ip -n {ns} addr add {a} dev {dev}{(a.Contains(':') ? " nodad" : "")}")
            .Append($"ip -n {ns} link set {dev} up");
        Must(string.Join(" && ", steps));
    }

    /// <summary>A bridge <paramref name="name"/> in <paramref name="ns"/> with <paramref name="address"/>, up.</summary>
    public static void Bridge(string ns, string name, string address) =>
        Must($"ip -n {ns} link add {name} type bridge && ip -n {ns} addr add {address} dev {name} && ip -n {ns} link set {name} up");

    /// <summary>Makes <paramref name="dev"/> in <paramref name="ns"/> a port of <paramref name="bridge"/>, up.</summary>
    public static void BridgePort(string ns, string dev, string bridge) => Must($"ip -n {ns} link set {dev} master {bridge} up");

    /// <summary>
    /// `lisp-decent run --config CONFIG` in <paramref name="ns"/>, stopped on dispose. By default with a PATH that holds
    /// no `ip` (nor anything else): the node configures its TUN through rtnetlink from the binary itself (issue 13), as
    /// on a minimal image.
    /// </summary>
    public NsProcess StartNode(string ns, string config, bool emptyPath = true)
    {
        var (file, args) = ApplianceProcess.CommandLine("run", "--config", config);
        if (emptyPath && !Path.IsPathRooted(file)) file = Sh($"command -v {file}").Out.Trim();
        return Start(ns, file, args, emptyPath);
    }

    /// <summary>`ip netns exec NS FILE ARGS`, its output collected, stopped on dispose (disposing it earlier is fine).</summary>
    public NsProcess Start(string ns, string file, IEnumerable<string> args, bool emptyPath = false)
    {
        var p = NsProcess.Start(ns, file, args, emptyPath);
        _processes.Add(p);
        return p;
    }

    public void Dispose()
    {
        foreach (var p in _processes) p.Dispose();
        foreach (var ns in _namespaces) Sh($"ip netns del {ns}");
        try
        {
            Directory.Delete(true);
        }
        catch (IOException)
        {
            // A file still held open by a killed process's child; the temp directory is left to the system.
        }
    }

    /// <summary>`lisp-decent ARGS` (the CLI, e.g. `show counters`) run inside <paramref name="ns"/>, where the management API listens on the loopback.</summary>
    public static (int Code, string Out, string Err) Cli(string ns, params string[] args)
    {
        var (file, fullArgs) = ApplianceProcess.CommandLine(args);
        return Sh($"ip netns exec {ns} {file} {string.Join(' ', fullArgs.Select(x => $"'{x}'"))}");
    }

    /// <summary>`sh -c CMD`: exit code, stdout, stderr; killed (code -1) after <paramref name="timeoutMs"/>.</summary>
    public static (int Code, string Out, string Err) Sh(string cmd, int timeoutMs = 30000)
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

    /// <summary><see cref="Sh"/> that throws when the command fails (setup steps that must work).</summary>
    public static void Must(string cmd)
    {
        var r = Sh(cmd);
        if (r.Code != 0) throw new InvalidOperationException($"{cmd}: {r.Err}");
    }

    /// <summary>
    /// Runs <paramref name="f"/> up to <paramref name="tries"/> times, 500 ms apart, until <paramref name="ok"/> (by
    /// default: exit code 0); the last result.
    /// </summary>
    public static (int Code, string Out, string Err) Poll(Func<(int Code, string Out, string Err)> f, int tries, Func<(int Code, string Out, string Err), bool>? ok = null)
    {
        ok ??= r => r.Code == 0;
        var r = f();
        for (int i = 1; i < tries && !ok(r); i++)
        {
            Thread.Sleep(500);
            r = f();
        }
        return r;
    }

    /// <summary>The last <paramref name="lines"/> lines of <paramref name="s"/>.</summary>
    public static string Tail(string s, int lines = 40) => string.Join("\n", s.Split('\n').TakeLast(lines));
}

/// <summary>A child process started with `ip netns exec NS ...`, its output lines collected; bounded waits; killed by its own id on dispose.</summary>
internal sealed class NsProcess : IDisposable
{
    private readonly Process _p;
    private readonly ConcurrentQueue<string> _lines = new();
    private bool _disposed;

    private NsProcess(Process p) => _p = p;

    private static readonly Lazy<string> EmptyDirectory = new(() => Directory.CreateTempSubdirectory("ldp-empty-path-").FullName);

    /// <summary>
    /// `ip netns exec NS FILE ARGS`; with <paramref name="emptyPath"/> the command runs with a PATH naming an empty
    /// directory (so <paramref name="file"/> must be a full path). Prefer <see cref="NetnsLab.Start"/>, which also stops it.
    /// </summary>
    public static NsProcess Start(string ns, string file, IEnumerable<string> args, bool emptyPath = false)
    {
        string ip = NetnsLab.Sh("command -v ip").Out.Trim();
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
    public bool HasExited => _p.HasExited;
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

    /// <summary>
    /// The node's own pid: `ip netns exec` execs the command in place (no fork outside batch mode), so normally the
    /// child's pid; otherwise the process whose command line names this config file.
    /// </summary>
    public int NodePid(string config)
    {
        if (Cmdline(_p.Id).Contains(config, StringComparison.Ordinal)) return _p.Id;
        var r = NetnsLab.Sh($"pgrep -f -- '--config {config}'");
        var pids = r.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).Where(p => Cmdline(p).Contains(" run ", StringComparison.Ordinal)).ToList();
        Assert.True(pids.Count == 1, $"cannot find the node's pid (child {_p.Id}: '{Cmdline(_p.Id)}'; pgrep: {r.Out})");
        return pids[0];
    }

    private static string Cmdline(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ');
        }
        catch (IOException)
        {
            return "";
        }
    }

    /// <summary>SIGTERM (clean stop: the appliance logs its counters), then kill after 5 s.</summary>
    public void Stop() => Stop(TimeSpan.FromSeconds(5));

    /// <summary>SIGTERM, then the exit code; killed and -1 when it does not stop within <paramref name="timeout"/>.</summary>
    public int Stop(TimeSpan timeout)
    {
        if (!_p.HasExited) NetnsLab.Sh($"kill -TERM {_p.Id}");
        if (!_p.WaitForExit(timeout))
        {
            _p.Kill(true);
            _p.WaitForExit(5000);
            return -1;
        }
        // Once it has exited, the parameterless wait also waits for the asynchronous readers to deliver the last
        // output lines (the timed one does not): the fast-exiting AOT binary's "data-plane-stopped" line was
        // missed that way once (ApplianceProcess had the same race).
        _p.WaitForExit();
        return _p.ExitCode;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
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
            // The process was never started or is already gone.
        }
        _p.Dispose();
    }
}
