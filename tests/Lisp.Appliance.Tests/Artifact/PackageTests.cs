using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.RegularExpressions;
using Lisp.TestSupport;
using Xunit.Abstractions;

namespace Lisp.Appliance.Tests.Artifact;

/// <summary>
/// The Debian packages `./build.sh package` makes from the published binaries (packaging/debian, packaging/systemd):
/// what they hold and with which modes, that lintian finds nothing beyond the commented overrides, that systemd
/// accepts the unit offline and rates its exposure at most 2.5, and that the binary runs with no writable and
/// executable memory (the unit sets MemoryDenyWriteExecute=yes). The package is built once for the class.
/// Skips, with the reason, when the binary is not published or dpkg-deb, lintian, systemd-analyze are missing.
/// </summary>
public sealed class PackageTests(ITestOutputHelper output)
{
    private const string Conffile = "/etc/lisp-decent/lisp-decent.toml";
    private const double ExposureLimit = 2.5;

    private static readonly Lazy<Build> Built = new(BuildPackages);

    [SkippableFact]
    public void The_deb_holds_the_binary_config_unit_and_user_with_their_modes()
    {
        var b = Require();
        Assert.True(b.Debs.ContainsKey("amd64"), "no amd64 .deb:\n" + b.Output);
        if (File.Exists(TestFiles.InProject("artifacts", "publish-arm64", "lisp-decent")))
            Assert.True(b.Debs.ContainsKey("arm64"), "the arm64 binary is published but no arm64 .deb was built:\n" + b.Output);
        else
            Assert.Contains("arm64 skipped", b.Output);

        string version = Regex.Match(File.ReadLines(TestFiles.InProject("packaging", "debian", "changelog")).First(), @"^lisp-decent \(([^)]+)\)").Groups[1].Value;
        Assert.Matches(@"^[0-9][0-9A-Za-z.+~]*$", version);   // Debian-native: no revision
        foreach (var (arch, deb) in b.Debs)
        {
            output.WriteLine($"{Path.GetFileName(deb)}: {new FileInfo(deb).Length} bytes");
            Assert.Equal("lisp-decent", Tool("dpkg-deb", "-f", deb, "Package").Trim());
            Assert.Equal(version, Tool("dpkg-deb", "-f", deb, "Version").Trim());
            Assert.Equal(arch, Tool("dpkg-deb", "-f", deb, "Architecture").Trim());

            // dpkg-deb -c: "MODE OWNER/GROUP SIZE DATE TIME PATH"
            var entries = Tool("dpkg-deb", "-c", deb).Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Select(l => l.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries))
                .ToDictionary(f => f[5].TrimStart('.').TrimEnd('/') is var p && p.Length > 0 ? p : "/", f => (Mode: f[0], Owner: f[1]));
            var expected = new Dictionary<string, string>
            {
                ["/usr/sbin/lisp-decent"] = "-rwxr-xr-x",
                [Conffile] = "-rw-r-----",   // holds keys; postinst gives it group lisp-decent
                ["/usr/lib/systemd/system/lisp-decent.service"] = "-rw-r--r--",
                ["/usr/lib/sysusers.d/lisp-decent.conf"] = "-rw-r--r--",
                ["/usr/share/doc/lisp-decent/copyright"] = "-rw-r--r--",
                ["/usr/share/doc/lisp-decent/changelog.gz"] = "-rw-r--r--",
                ["/usr/share/doc/lisp-decent/README"] = "-rw-r--r--",
                ["/usr/share/man/man8/lisp-decent.8.gz"] = "-rw-r--r--",
                ["/usr/share/doc/lisp-decent/examples/single-node.toml"] = "-rw-r--r--",
            };
            foreach (var (path, mode) in expected)
            {
                Assert.True(entries.TryGetValue(path, out var e), $"{path} is not in {Path.GetFileName(deb)}:\n{string.Join("\n", entries.Keys)}");
                Assert.Equal(mode, e.Mode);
            }
            Assert.All(entries, e => Assert.Equal("root/root", e.Value.Owner));   // --root-owner-group
            Assert.All(entries.Where(e => e.Value.Mode.StartsWith('d')), e => Assert.Equal("drwxr-xr-x", e.Value.Mode));
            Assert.Equal([Conffile], Tool("dpkg-deb", "-I", deb, "conffiles").Split('\n', StringSplitOptions.RemoveEmptyEntries));

            using var root = Unpacked(deb);
            // The packaged binary is the published one, byte for byte.
            string published = arch == "amd64" ? TestFiles.InProject("artifacts", "publish", "lisp-decent") : TestFiles.InProject("artifacts", "publish-arm64", "lisp-decent");
            Assert.Equal(Sha256(published), Sha256(root.Path("usr/sbin/lisp-decent")));

            // The user the unit runs as is the one sysusers creates; the postinst gives the conffile its group.
            var unit = UnitSettings(root.Path("usr/lib/systemd/system/lisp-decent.service"));
            Assert.Equal("lisp-decent", unit["User"].Single());
            Assert.Matches(@"^u lisp-decent ", File.ReadLines(root.Path("usr/lib/sysusers.d/lisp-decent.conf")).Single(l => !l.StartsWith('#') && l.Trim().Length > 0));
            string postinst = Tool("dpkg-deb", "-I", deb, "postinst");
            Assert.Contains("systemd-sysusers /usr/lib/sysusers.d/lisp-decent.conf", postinst);
            Assert.Contains("dpkg-statoverride --update --add root lisp-decent 0640 \"$CONF\"", postinst);
            Assert.Contains($"CONF={Conffile}", postinst);
            foreach (var script in new[] { "postinst", "prerm", "postrm" })
            {
                File.WriteAllText(root.Path(script), Tool("dpkg-deb", "-I", deb, script));
                Assert.Equal(0, Run("sh", "-n", root.Path(script)).ExitCode);   // they parse
            }
        }

        // The shipped config is valid: the packaged binary accepts it (the amd64 one runs here).
        using (var root = Unpacked(b.Debs["amd64"]))
        {
            var check = Run(root.Path("usr/sbin/lisp-decent"), "run", "--config", root.Path(Conffile.TrimStart('/')), "--check");
            Assert.True(check.ExitCode == 0, check.Stdout + check.Stderr);
            Assert.Contains(": ok: ", check.Stdout);
        }
    }

    [SkippableFact]
    public void The_unit_is_hardened_as_designed_and_validates_with_check_before_start_and_reload()
    {
        var b = Require();
        using var root = Unpacked(b.Debs["amd64"]);
        var u = UnitSettings(root.Path("usr/lib/systemd/system/lisp-decent.service"));
        string check = $"/usr/sbin/lisp-decent run --config {Conffile} --check";
        Assert.Equal("notify", u["Type"].Single());
        Assert.Equal("main", u["NotifyAccess"].Single());
        Assert.Matches(@"^[0-9]+s$", u["WatchdogSec"].Single());
        Assert.Equal([check], u["ExecStartPre"]);
        Assert.Equal($"/usr/sbin/lisp-decent run --config {Conffile}", u["ExecStart"].Single());
        Assert.Equal([check, "/bin/sh -c 'kill -HUP $MAINPID'"], u["ExecReload"]);
        Assert.Equal("on-failure", u["Restart"].Single());
        Assert.Equal(new[] { "CAP_NET_ADMIN", "CAP_NET_RAW" }, u["CapabilityBoundingSet"].Single().Split(' ').Order().ToArray());
        Assert.Equal(new[] { "CAP_NET_ADMIN", "CAP_NET_RAW" }, u["AmbientCapabilities"].Single().Split(' ').Order().ToArray());
        foreach (var yes in new[] { "NoNewPrivileges", "ProtectHome", "PrivateTmp", "MemoryDenyWriteExecute" })
            Assert.Equal("yes", u[yes].Single());
        Assert.Equal("strict", u["ProtectSystem"].Single());
        Assert.Equal("/dev/net/tun rw", u["DeviceAllow"].Single());
        Assert.Equal(new[] { "AF_INET", "AF_INET6", "AF_NETLINK", "AF_UNIX" }, u["RestrictAddressFamilies"].Single().Split(' ').Order(StringComparer.Ordinal).ToArray());
        Assert.Equal("@system-service", u["SystemCallFilter"].First());
    }

    [SkippableFact]
    public void Lintian_finds_no_error_or_warning_beyond_the_commented_overrides()
    {
        var b = Require();
        Skip.If(Which("lintian") is null, "lintian is not installed (./build.sh deps installs it)");
        foreach (var (arch, deb) in b.Debs)
        {
            var r = Run("lintian", "--fail-on", "none", "--display-info", "--show-overrides", deb);
            Assert.True(r.ExitCode == 0, $"lintian exit {r.ExitCode}:\n{r.Stdout}{r.Stderr}");
            var tags = r.Stdout.Split('\n').Where(l => Regex.IsMatch(l, "^[EWIO]: ")).ToList();
            output.WriteLine($"lintian {arch}: {tags.Count(t => t[0] == 'E')} errors, {tags.Count(t => t[0] == 'W')} warnings, " +
                             $"{tags.Count(t => t[0] == 'I')} info, {tags.Count(t => t[0] == 'O')} overridden");
            foreach (var t in tags) output.WriteLine("  " + t);
            Assert.True(!tags.Any(t => t[0] is 'E' or 'W'), $"lintian errors or warnings in {Path.GetFileName(deb)}:\n{r.Stdout}");

            // Each override in the package comes with its reason: a comment right above it.
            using var root = Unpacked(deb);
            var lines = File.ReadAllLines(root.Path("usr/share/lintian/overrides/lisp-decent"));
            for (int i = 0; i < lines.Length; i++)
                if (lines[i].StartsWith("lisp-decent:", StringComparison.Ordinal))
                    Assert.True(i > 0 && lines[i - 1].StartsWith('#'), $"override without a comment: {lines[i]}");
        }
    }

    [SkippableFact]
    public void Systemd_analyze_verifies_the_unit_offline_and_rates_its_exposure_at_most_2_5()
    {
        var b = Require();
        Skip.If(Which("systemd-analyze") is null, "systemd-analyze is not installed (Debian package systemd)");
        var targets = Directory.Exists("/usr/lib/systemd/system") ? Directory.GetFiles("/usr/lib/systemd/system", "*.target") : [];
        Skip.If(targets.Length == 0, "no systemd targets under /usr/lib/systemd/system (the unit's default dependencies)");
        foreach (var (arch, deb) in b.Debs)
        {
            using var root = Unpacked(deb);
            string unit = root.Path("usr/lib/systemd/system/lisp-decent.service");
            // Offline, without systemd as PID 1: the unpacked tree is the root (so the Exec paths and the man page
            // are the package's), with the host's targets for the default dependencies.
            foreach (var t in targets) File.Copy(t, root.Path("usr/lib/systemd/system/" + Path.GetFileName(t)), overwrite: false);
            var verify = RunWithEnv("systemd-analyze", new() { ["MANPATH"] = root.Path("usr/share/man") }, "verify", "--root=" + root.Dir, "--man=yes", unit);
            Assert.True(verify.ExitCode == 0 && (verify.Stdout + verify.Stderr).Trim().Length == 0,
                $"systemd-analyze verify ({arch}), exit {verify.ExitCode}:\n{verify.Stdout}{verify.Stderr}");

            var security = Run("systemd-analyze", "security", "--offline=yes", "--root=" + root.Dir, "lisp-decent.service");
            var m = Regex.Match(security.Stdout + security.Stderr, @"Overall exposure level for lisp-decent\.service: ([0-9]+\.[0-9])");
            Assert.True(m.Success, "no exposure level in:\n" + security.Stdout + security.Stderr);
            double level = double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
            output.WriteLine($"systemd-analyze security --offline=yes ({arch}): exposure {level} (limit {ExposureLimit})");
            Assert.True(level <= ExposureLimit, $"exposure {level} > {ExposureLimit}:\n{security.Stdout}");
        }

        // The check is not vacuous: a unit naming a binary the tree lacks is refused.
        using (var root = Unpacked(b.Debs["amd64"]))
        {
            foreach (var t in targets) File.Copy(t, root.Path("usr/lib/systemd/system/" + Path.GetFileName(t)), overwrite: false);
            File.Delete(root.Path("usr/sbin/lisp-decent"));
            var verify = RunWithEnv("systemd-analyze", new() { ["MANPATH"] = root.Path("usr/share/man") }, "verify", "--root=" + root.Dir, "--man=yes",
                root.Path("usr/lib/systemd/system/lisp-decent.service"));
            Assert.NotEqual(0, verify.ExitCode);
        }
    }

    /// <summary>
    /// MemoryDenyWriteExecute=yes with a native-AOT binary: nothing is compiled at run time, so no mapping may be
    /// writable and executable, and nothing may become executable later. The kernel enforces the same rule when
    /// asked (prctl PR_SET_MDWE, Linux 6.3; inherited across exec): the packaged binary is started under it on the
    /// packaged config (moved to a loopback address of its own), must register with HMAC and serve its management
    /// API, and its /proc/PID/maps must hold no rwx mapping. Where strace is present, systemd's own filter rule
    /// (no mmap with PROT_WRITE|PROT_EXEC, no mprotect/pkey_mprotect adding PROT_EXEC) is checked on the calls too.
    /// </summary>
    [SkippableFact]
    public void The_binary_runs_with_no_writable_executable_memory()
    {
        var b = Require();
        Skip.If(Which("python3") is null, "python3 is not installed (it applies prctl(PR_SET_MDWE) before exec)");
        using var root = Unpacked(b.Debs["amd64"]);
        const string address = "127.0.58.1";
        string config = File.ReadAllText(root.Path(Conffile.TrimStart('/')))
            .Replace("127.0.0.1:8080", $"{address}:{ManagementNode.FreeTcpPort(address)}", StringComparison.Ordinal)
            .Replace("control_port = 4342", $"control_port = {Loopback.FreeUdpPort(address)}", StringComparison.Ordinal)
            .Replace("127.0.0.1", address, StringComparison.Ordinal);
        string configPath = root.Path("test.toml");
        File.WriteAllText(configPath, config);

        const string wrapper = "import ctypes,os,sys\n" +
                               "libc = ctypes.CDLL(None, use_errno=True)\n" +
                               "if libc.prctl(65, 1, 0, 0, 0) != 0: sys.exit(77)\n" +   // PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
                               "print('mdwe', libc.prctl(66, 0, 0, 0, 0), flush=True)\n" +   // PR_GET_MDWE
                               "os.execv(sys.argv[1], sys.argv[1:])\n";
        string? strace = Which("strace");
        string trace = root.Path("strace.log");
        var argv = new List<string>();
        if (strace is not null) argv.AddRange([strace, "-f", "-o", trace, "-e", "trace=mmap,mprotect,pkey_mprotect"]);
        argv.AddRange(["python3", "-c", wrapper, root.Path("usr/sbin/lisp-decent"), "run", "--config", configPath]);

        var lines = new ConcurrentQueue<string>();
        var psi = new ProcessStartInfo(argv[0]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in argv.Skip(1)) psi.ArgumentList.Add(a);
        using var p = new Process { StartInfo = psi };
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) lines.Enqueue(e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lines.Enqueue(e.Data); };
        p.Start();
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        try
        {
            bool Seen(string re) => lines.Any(l => Regex.IsMatch(l, re));
            var sw = Stopwatch.StartNew();
            while (sw.Elapsed < TimeSpan.FromSeconds(30) && !p.HasExited && !(Seen("map-notify-accepted") && Seen("management-started")))
                Thread.Sleep(50);
            if (p.HasExited && p.ExitCode == 77)
                Skip.If(true, "this kernel has no prctl(PR_SET_MDWE) (Linux >= 6.3)");
            Assert.True(Seen("^mdwe 1$"), "PR_SET_MDWE was not in force:\n" + string.Join("\n", lines));
            Assert.True(Seen("map-notify-accepted") && Seen("management-started"), "the node did not come up under MDWE:\n" + string.Join("\n", lines));

            int pid = NodePid(p.Id);
            var rwx = File.ReadAllLines($"/proc/{pid}/maps").Where(l => l.Split(' ')[1].StartsWith("rwx", StringComparison.Ordinal)).ToList();
            Assert.True(File.ReadAllLines($"/proc/{pid}/maps").Length > 10, "read the wrong maps");
            Assert.True(rwx.Count == 0, "writable and executable mappings:\n" + string.Join("\n", rwx));
            output.WriteLine($"pid {pid}: {File.ReadAllLines($"/proc/{pid}/maps").Length} mappings, none rwx; ran under PR_SET_MDWE");
            Run("kill", "-TERM", pid.ToString(CultureInfo.InvariantCulture));
            Assert.True(p.WaitForExit(15000), "the node did not stop on SIGTERM");
            p.WaitForExit();
            Assert.True(Seen("node-stopped"), string.Join("\n", lines));
        }
        finally
        {
            if (!p.HasExited) p.Kill(entireProcessTree: true);
            p.WaitForExit(5000);
        }

        if (strace is not null)
        {
            var calls = File.ReadAllLines(trace);
            Assert.True(calls.Length > 0, "strace recorded nothing");
            var refused = calls.Where(l =>
                Regex.IsMatch(l, @"\bmmap\(.*PROT_WRITE\|PROT_EXEC|\bmmap\(.*PROT_EXEC\|PROT_WRITE") ||
                Regex.IsMatch(l, @"\b(pkey_)?mprotect\(.*PROT_EXEC")).ToList();
            output.WriteLine($"strace: {calls.Length} mmap/mprotect calls, {refused.Count} that systemd's MemoryDenyWriteExecute filter refuses");
            Assert.True(refused.Count == 0, "calls MemoryDenyWriteExecute=yes refuses:\n" + string.Join("\n", refused));
        }
    }

    // ---- the package, built once -------------------------------------------------------------------------

    private sealed record Build(Dictionary<string, string> Debs, string Output, string? SkipReason);

    private static Build Require()
    {
        var b = Built.Value;
        Skip.If(b.SkipReason is not null, b.SkipReason);
        return b;
    }

    private static Build BuildPackages()
    {
        if (Which("dpkg-deb") is null) return new([], "", "dpkg-deb is not installed");
        if (Which("readelf") is null) return new([], "", "readelf (binutils) is not installed");
        if (!File.Exists(TestFiles.InProject("artifacts", "publish", "lisp-decent")))
            return new([], "", "the binary is not published (./build.sh publish writes artifacts/publish/lisp-decent)");
        var r = Run("bash", TestFiles.InProject("build.sh"), "package");
        string log = r.Stdout + r.Stderr;
        var dir = TestFiles.InProject("artifacts", "package");
        var debs = Directory.Exists(dir)
            ? Directory.GetFiles(dir, "lisp-decent_*.deb").ToDictionary(f => Regex.Match(Path.GetFileName(f), @"_([a-z0-9]+)\.deb$").Groups[1].Value)
            : [];
        // build.sh's own verdict (lintian, verify, exposure) must agree with the tests below.
        Assert.True(r.ExitCode == 0, $"./build.sh package exit {r.ExitCode}:\n{log}");
        return new(debs, log, null);
    }

    private sealed class TempRoot : IDisposable
    {
        public string Dir { get; } = Directory.CreateTempSubdirectory("lisp-deb-").FullName;
        public string Path(string relative) => System.IO.Path.Combine(Dir, relative);
        public void Dispose() => Directory.Delete(Dir, recursive: true);
    }

    private static TempRoot Unpacked(string deb)
    {
        var root = new TempRoot();
        Tool("dpkg-deb", "-x", deb, root.Dir);
        return root;
    }

    /// <summary>[Service]/[Unit] settings of a unit file: key -> values in order (a key may repeat).</summary>
    private static Dictionary<string, List<string>> UnitSettings(string file)
    {
        var d = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        foreach (var line in File.ReadLines(file))
        {
            if (line.StartsWith('#') || line.StartsWith('[') || !line.Contains('=')) continue;
            int i = line.IndexOf('=');
            var key = line[..i].Trim();
            if (!d.TryGetValue(key, out var l)) d[key] = l = [];
            l.Add(line[(i + 1)..].Trim());
        }
        return d;
    }

    /// <summary>The lisp-decent process under strace/python: the deepest descendant of <paramref name="pid"/>.</summary>
    private static int NodePid(int pid)
    {
        for (int depth = 0; depth < 4; depth++)
        {
            var children = $"/proc/{pid}/task/{pid}/children";
            var next = File.Exists(children) ? File.ReadAllText(children).Split(' ', StringSplitOptions.RemoveEmptyEntries) : [];
            if (next.Length == 0) break;
            pid = int.Parse(next[0], CultureInfo.InvariantCulture);
        }
        Assert.EndsWith("lisp-decent", File.ReadAllText($"/proc/{pid}/comm").Trim());
        return pid;
    }

    private static string Sha256(string file) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(file)));

    private static string? Which(string tool) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin").Split(':')
            .Select(d => System.IO.Path.Combine(d, tool)).FirstOrDefault(File.Exists);

    private static string Tool(params string[] args)
    {
        var r = Run(args[0], args[1..]);
        Assert.True(r.ExitCode == 0, $"{string.Join(' ', args)}: exit {r.ExitCode}\n{r.Stderr}");
        return r.Stdout;
    }

    private static (int ExitCode, string Stdout, string Stderr) Run(string file, params string[] args) => RunWithEnv(file, [], args);

    private static (int ExitCode, string Stdout, string Stderr) RunWithEnv(string file, Dictionary<string, string> env, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (k, v) in env) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var so = p.StandardOutput.ReadToEndAsync();
        var se = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(5)))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish within 5 minutes");
        }
        p.WaitForExit();
        return (p.ExitCode, so.Result, se.Result);
    }
}
