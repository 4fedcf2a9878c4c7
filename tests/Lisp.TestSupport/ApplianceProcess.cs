using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Lisp.TestSupport;

/// <summary>
/// Runs the real `lisp-decent` as a child process, optionally inside a network namespace (`ip netns exec`):
/// long-running nodes with their log lines collected, and one-shot commands (lig, decode ...). Every wait is
/// bounded; Dispose kills the process tree.
/// <para>
/// Which build runs (<see cref="Artifact"/>): the published native-AOT binary users run, i.e. $LISP_DECENT_BINARY
/// (set by `./build.sh test`, which publishes once before the tests) or else artifacts/publish/lisp-decent when it
/// is at least as new as the JIT build beside the tests. `LISP_TEST_JIT=1` runs `dotnet lisp-decent.dll`
/// instead, for debugging (breakpoints, stack traces with line numbers). With neither available the JIT build
/// runs and a note says so on stderr; under CI (CI=true) a missing binary is an error instead, so CI never
/// silently tests the wrong artifact.
/// </para>
/// </summary>
public sealed class ApplianceProcess : IDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _lines = new();
    private readonly SemaphoreSlim _lineArrived = new(0);

    private ApplianceProcess(Process p, string name)
    {
        _process = p;
        Name = name;
    }

    public static string DllPath
    {
        get
        {
            var p = Path.Combine(AppContext.BaseDirectory, "lisp-decent.dll");
            if (!File.Exists(p)) throw new FileNotFoundException("lisp-decent.dll is not beside the test assembly", p);
            return p;
        }
    }

    private static readonly Lazy<ApplianceArtifact> Chosen = new(ChooseArtifact);

    /// <summary>The build the process tests run (decided once per test process).</summary>
    public static ApplianceArtifact Artifact => Chosen.Value;

    /// <summary>
    /// The command line that starts lisp-decent with <paramref name="args"/>: (binary, args) for the AOT build,
    /// ("dotnet", [dll, args]) for the JIT build. For callers that start it their own way (e.g. `ip netns exec`).
    /// </summary>
    public static (string File, string[] Args) CommandLine(params string[] args) =>
        Artifact.IsNativeAot ? (Artifact.Path, args) : ("dotnet", [Artifact.Path, .. args]);

    private static ApplianceArtifact ChooseArtifact()
    {
        if (Environment.GetEnvironmentVariable("LISP_TEST_JIT") == "1") return new ApplianceArtifact(DllPath, false, "LISP_TEST_JIT=1");
        var fromEnv = Environment.GetEnvironmentVariable("LISP_DECENT_BINARY");
        if (!string.IsNullOrEmpty(fromEnv))
        {
            if (!File.Exists(fromEnv)) throw new FileNotFoundException("LISP_DECENT_BINARY names no file", fromEnv);
            return new ApplianceArtifact(Path.GetFullPath(fromEnv), true, "LISP_DECENT_BINARY");
        }
        var published = TestFiles.InProject("artifacts", "publish", "lisp-decent");
        if (File.Exists(published) && File.GetLastWriteTimeUtc(published) >= File.GetLastWriteTimeUtc(DllPath))
        {
            return new ApplianceArtifact(published, true, "artifacts/publish");
        }
        var why = File.Exists(published) ? $"{published} is older than the JIT build beside the tests" : $"{published} does not exist";
        if (Environment.GetEnvironmentVariable("CI") == "true")
        {
            throw new InvalidOperationException($"CI must test the native-AOT binary, but {why}; run ./build.sh test (it publishes first) or set LISP_DECENT_BINARY");
        }
        Console.Error.WriteLine($"ApplianceProcess: running the JIT build ({why}; ./build.sh test publishes the native-AOT binary first)");
        return new ApplianceArtifact(DllPath, false, "fallback: " + why);
    }

    /// <summary>Names the process in timeout messages ("lisp-decent" unless the starter gave a name).</summary>
    public string Name { get; }
    public IReadOnlyCollection<string> Lines => _lines.ToArray();
    public bool HasExited => _process.HasExited;
    public int Id => _process.Id;

    public static ApplianceProcess Start(params string[] args) => StartIn(null, "lisp-decent", args);

    /// <summary>
    /// Starts it inside network namespace <paramref name="netns"/> (directly when null); <paramref name="name"/>
    /// labels its timeout messages.
    /// </summary>
    public static ApplianceProcess StartIn(string? netns, string name, params string[] args)
    {
        var psi = Psi(netns, args);
        var p = new Process { StartInfo = psi, EnableRaisingEvents = true };
        var ap = new ApplianceProcess(p, name);
        p.OutputDataReceived += (_, e) => ap.Add(e.Data);
        p.ErrorDataReceived += (_, e) => ap.Add(e.Data);
        p.Start();
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return ap;
    }

    private void Add(string? line)
    {
        if (line is null) return;
        _lines.Enqueue(line);
        _lineArrived.Release();
    }

    /// <summary>
    /// True when the process has exited, after waiting for its last output lines: the asynchronous readers can
    /// deliver them after HasExited turns true (a loaded machine once took over 200 ms), and the parameterless
    /// WaitForExit returns only once both streams reached end of file.
    /// </summary>
    private bool ExitedAndDrained()
    {
        if (!_process.HasExited) return false;
        _process.WaitForExit();
        return true;
    }

    /// <summary>Waits until a log line matches; returns it, or throws with the collected log on timeout.</summary>
    public string WaitForLine(string pattern, TimeSpan timeout)
    {
        var re = new Regex(pattern);
        var sw = Stopwatch.StartNew();
        while (true)
        {
            bool exited = ExitedAndDrained();
            foreach (var l in _lines)
            {
                if (re.IsMatch(l)) return l;
            }
            var left = timeout - sw.Elapsed;
            if (left <= TimeSpan.Zero || exited)
            {
                throw new TimeoutException($"{Name}: no line matching /{pattern}/ within {timeout.TotalSeconds:0.#}s" +
                    $"{(_process.HasExited ? $" (process exited with {_process.ExitCode})" : "")}; log:\n{string.Join("\n", _lines.TakeLast(60))}");
            }
            _lineArrived.Wait(left < TimeSpan.FromMilliseconds(250) ? left : TimeSpan.FromMilliseconds(250));
        }
    }

    /// <summary>
    /// Waits until the newest line matching <paramref name="pattern"/> satisfies <paramref name="accept"/> (e.g. a
    /// periodic state dump reaching the wanted state); returns it, or throws with the collected log on timeout.
    /// </summary>
    public string WaitForNewest(string pattern, TimeSpan timeout, Func<string, bool> accept)
    {
        var re = new Regex(pattern);
        var sw = Stopwatch.StartNew();
        while (true)
        {
            bool exited = ExitedAndDrained();
            var hit = _lines.Reverse().FirstOrDefault(l => re.IsMatch(l));
            if (hit is not null && accept(hit)) return hit;
            var left = timeout - sw.Elapsed;
            if (left <= TimeSpan.Zero || exited)
            {
                throw new TimeoutException($"{Name}: no acceptable line /{pattern}/ within {timeout.TotalSeconds:0.#}s" +
                    $"{(_process.HasExited ? $" (process exited with {_process.ExitCode})" : "")}; newest match: {hit ?? "none"}; log:\n{string.Join("\n", _lines.TakeLast(60))}");
            }
            _lineArrived.Wait(left < TimeSpan.FromMilliseconds(250) ? left : TimeSpan.FromMilliseconds(250));
        }
    }

    public bool Any(string pattern) => _lines.Any(l => Regex.IsMatch(l, pattern));

    /// <summary>How many collected lines match <paramref name="pattern"/> so far.</summary>
    public int Count(string pattern) => _lines.Count(l => Regex.IsMatch(l, pattern));

    /// <summary>Waits until at least <paramref name="count"/> lines match; throws with the collected log on timeout.</summary>
    public void WaitForCount(string pattern, int count, TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            bool exited = ExitedAndDrained();
            if (Count(pattern) >= count) return;
            var left = timeout - sw.Elapsed;
            if (left <= TimeSpan.Zero || exited)
            {
                throw new TimeoutException($"{Name}: fewer than {count} lines matching /{pattern}/ within {timeout.TotalSeconds:0.#}s" +
                    $"{(_process.HasExited ? $" (process exited with {_process.ExitCode})" : "")}; log:\n{string.Join("\n", _lines.TakeLast(60))}");
            }
            _lineArrived.Wait(left < TimeSpan.FromMilliseconds(250) ? left : TimeSpan.FromMilliseconds(250));
        }
    }

    /// <summary>Exit code once the process has exited (null while it runs).</summary>
    public int? ExitCode => _process.HasExited ? _process.ExitCode : null;

    /// <summary>Everything collected so far (stdout and stderr interleaved), for failure messages.</summary>
    public string Output => string.Join("\n", _lines);

    /// <summary>Runs a one-shot command to completion (bounded by <paramref name="timeout"/>).</summary>
    public static (int ExitCode, string Stdout, string Stderr) Run(TimeSpan timeout, params string[] args) => RunIn(null, timeout, args);

    /// <summary>Runs a one-shot command inside network namespace <paramref name="netns"/> (directly when null).</summary>
    public static (int ExitCode, string Stdout, string Stderr) RunIn(string? netns, TimeSpan timeout, params string[] args)
    {
        using var p = new Process { StartInfo = Psi(netns, args) };
        p.Start();
        var so = p.StandardOutput.ReadToEndAsync();
        var se = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            p.WaitForExit(5000);
            throw new TimeoutException($"lisp-decent {string.Join(' ', args)} did not finish within {timeout.TotalSeconds}s");
        }
        p.WaitForExit();
        return (p.ExitCode, so.Result, se.Result);
    }

    /// <summary>`lisp-decent ARGS` (see <see cref="CommandLine"/>), or the same under `ip netns exec NETNS`.</summary>
    private static ProcessStartInfo Psi(string? netns, string[] args)
    {
        var (file, fullArgs) = CommandLine(args);
        var psi = new ProcessStartInfo(netns is null ? file : "ip")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (netns is not null)
        {
            foreach (var a in new[] { "netns", "exec", netns, file }) psi.ArgumentList.Add(a);
        }
        foreach (var a in fullArgs) psi.ArgumentList.Add(a);
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        return psi;
    }

    /// <summary>Stops the node the way an operator would (SIGTERM, then kill after a grace period).</summary>
    public void Stop(TimeSpan? grace = null)
    {
        if (ExitedAndDrained()) return;
        try
        {
            // The child of `ip netns exec` is the same process (exec), so the signal reaches lisp-decent.
            Process.Start("kill", ["-TERM", _process.Id.ToString()])?.WaitForExit(2000);
            if (!_process.WaitForExit(grace ?? TimeSpan.FromSeconds(3))) _process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // already gone
        }
        // WaitForExit with a timeout does not wait for the output readers: a test reading Lines right after Stop
        // could miss the last lines (a clean-clone run once missed " node-stopped ").
        _process.WaitForExit(5000);
        ExitedAndDrained();
    }

    public void Kill()
    {
        try
        {
            if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // already gone
        }
        _process.WaitForExit(5000);
        ExitedAndDrained();
    }

    public void Dispose()
    {
        Kill();
        _process.Dispose();
    }
}

/// <summary>The lisp-decent build under test: the native-AOT binary, or the JIT-compiled dll run by `dotnet`.</summary>
/// <param name="Path">absolute path of the binary (AOT) or of lisp-decent.dll (JIT)</param>
/// <param name="IsNativeAot">true for the published native-AOT binary</param>
/// <param name="Source">why this one was chosen (for messages)</param>
public sealed record ApplianceArtifact(string Path, bool IsNativeAot, string Source);
