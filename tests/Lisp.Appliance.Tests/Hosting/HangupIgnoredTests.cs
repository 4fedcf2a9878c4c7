using System.Collections.Concurrent;
using System.Diagnostics;
using Lisp.TestSupport;

namespace Lisp.Appliance.Tests.Hosting;

/// <summary>
/// A node started with SIGHUP ignored (`nohup`, as an operator might start it by hand) still reloads on SIGHUP: the
/// .NET runtime never delivered an inherited-ignored signal to the registration, so reloads were lost without a word
/// (found when the suite itself ran under nohup).
/// </summary>
public sealed class HangupIgnoredTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("lisp-hup-ignored-").FullName;

    public void Dispose()
    {
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    [SkippableFact]
    public void A_node_started_under_nohup_reloads_on_sighup_and_says_it_took_the_signal_back()
    {
        Skip.If(!File.Exists("/usr/bin/nohup") && !File.Exists("/bin/nohup"), "nohup (coreutils) is not installed");
        string config = Path.Combine(_dir, "node.toml");
        File.WriteAllText(config, """
            [node]
            name = "hup-ignored"
            roles = ["map-server", "map-resolver"]
            listen = ["127.0.93.1"]
            control_port = 47342
            log_level = "info"

            [[site]]
            name = "one"
            key = "k"
            eid_prefixes = ["[0]10.1.0.0/16"]
            """);
        var (file, args) = ApplianceProcess.CommandLine("run", "--config", config);
        var psi = new ProcessStartInfo("nohup") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(file);
        foreach (var a in args) psi.ArgumentList.Add(a);
        var lines = new ConcurrentQueue<string>();
        using var p = new Process { StartInfo = psi };
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) lines.Enqueue(e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lines.Enqueue(e.Data); };
        p.Start();
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        try
        {
            Wait(lines, "node-started", p);
            Assert.Contains(lines, l => l.Contains("SIGHUP was ignored by whoever started this process", StringComparison.Ordinal));
            using (var kill = Process.Start("kill", ["-HUP", p.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!)
            {
                Assert.True(kill.WaitForExit(5000) && kill.ExitCode == 0, "kill -HUP failed");
            }
            Wait(lines, "config-reloaded", p);
            Assert.False(p.HasExited, string.Join("\n", lines));
            using (var term = Process.Start("kill", ["-TERM", p.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!)
            {
                term.WaitForExit(5000);
            }
            Assert.True(p.WaitForExit(10000), "the node did not stop on SIGTERM");
            Assert.Equal(0, p.ExitCode);
        }
        finally
        {
            if (!p.HasExited) p.Kill(true);
        }
    }

    private static void Wait(ConcurrentQueue<string> lines, string what, Process p)
    {
        var sw = Stopwatch.StartNew();
        while (!lines.Any(l => l.Contains(what, StringComparison.Ordinal)))
        {
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(20) && !p.HasExited, $"no '{what}' line within 20 s:\n{string.Join("\n", lines)}");
            Thread.Sleep(100);
        }
    }
}
