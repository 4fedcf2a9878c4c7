using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.RegularExpressions;
using Lisp.Appliance.Tests.Support;
using Lisp.TestSupport;

namespace Lisp.Appliance.Tests.Artifact;

/// <summary>
/// The shipped binaries (./build.sh publish) are fully static, one per architecture: no program interpreter and
/// no needed shared library in the ELF headers, `version` says so from the running process, and each runs in an
/// empty chroot (a directory holding only the binary and its config) where no libc, no OpenSSL, no /proc and no
/// /dev exist: HMAC registration, a Map-Request from a `lig` outside the chroot, the management API.
/// <para>
/// No /dev/urandom either: the appliance's nonces and the runtime's seeds come from getrandom(2) (the file is
/// only the appliance's fallback on kernels without that call). The linux-arm64 binary runs under
/// qemu-aarch64-static, itself a static binary copied into the chroot (no binfmt_misc needed).
/// </para>
/// </summary>
public sealed class StaticBinaryTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan EmulatedWait = TimeSpan.FromSeconds(90);

    private const ushort MachineX64 = 62;     // EM_X86_64
    private const ushort MachineArm64 = 183;  // EM_AARCH64

    [SkippableFact]
    public void The_x64_binary_is_fully_static_in_its_ELF_headers()
    {
        var binary = X64Binary();
        var elf = Elf.Read(binary);
        Assert.Equal(MachineX64, elf.Machine);
        Assert.False(elf.HasInterpreter, $"{binary} has a PT_INTERP (program interpreter): it is dynamically linked");
        Assert.True(elf.Needed.Count == 0, $"{binary} needs shared libraries: {string.Join(", ", elf.Needed)}");
        Assert.True(new FileInfo(binary).Length <= 12L * 1024 * 1024, $"{binary} is {new FileInfo(binary).Length} bytes, over the 12 MiB budget");
    }

    [SkippableFact]
    public void The_arm64_binary_is_fully_static_in_its_ELF_headers()
    {
        var binary = Arm64Binary();
        var elf = Elf.Read(binary);
        Assert.Equal(MachineArm64, elf.Machine);
        Assert.False(elf.HasInterpreter, $"{binary} has a PT_INTERP (program interpreter): it is dynamically linked");
        Assert.True(elf.Needed.Count == 0, $"{binary} needs shared libraries: {string.Join(", ", elf.Needed)}");
        Assert.True(new FileInfo(binary).Length <= 12L * 1024 * 1024, $"{binary} is {new FileInfo(binary).Length} bytes, over the 12 MiB budget");
    }

    [Fact]
    public void The_ELF_reader_sees_the_interpreter_and_libraries_of_a_dynamic_binary()
    {
        // The check above is only as good as the reader: a dynamically linked program on this machine must show both.
        var dynamic = new[] { "/bin/sh", "/usr/bin/env", "/bin/ls" }.FirstOrDefault(File.Exists);
        Skip.If(dynamic is null, "no /bin/sh, /usr/bin/env or /bin/ls to read");
        var elf = Elf.Read(dynamic!);
        Assert.True(elf.HasInterpreter, $"{dynamic}: no PT_INTERP found");
        Assert.Contains(elf.Needed, n => n.StartsWith("libc.so", StringComparison.Ordinal));
    }

    [SkippableFact]
    public void Version_says_static_and_x64()
    {
        var binary = X64Binary();
        var (rc, stdout, stderr) = Exec.Run(binary, [], TimeSpan.FromSeconds(30), "version");
        Assert.True(rc == 0, $"version exited {rc}: {stderr}");
        AssertVersion(stdout, "linux-x64");
        Assert.Matches(@"(?m)^arch:\s+linux-x64 \(x86-64-v2\)$", stdout);
    }

    [SkippableFact]
    public void Version_says_static_and_arm64_under_qemu()
    {
        var binary = Arm64Binary();
        var qemu = Qemu();
        var (rc, stdout, stderr) = Exec.Run(qemu, [], TimeSpan.FromSeconds(60), binary, "version");
        Assert.True(rc == 0, $"version under qemu exited {rc}: {stderr}");
        AssertVersion(stdout, "linux-arm64");
    }

    [SkippableFact]
    public void The_x64_binary_serves_from_an_empty_chroot()
    {
        var binary = X64Binary();
        using var topology = new Topology("127.0.91");
        var root = EmptyRoot(topology, binary, null);
        RunInChroot(topology, root, [], Wait, management: true);
    }

    [SkippableFact]
    public void The_arm64_binary_serves_from_an_empty_chroot_under_qemu()
    {
        var binary = Arm64Binary();
        var qemu = Qemu();
        using var topology = new Topology("127.0.92");
        var root = EmptyRoot(topology, binary, qemu);
        RunInChroot(topology, root, ["/qemu-aarch64-static"], EmulatedWait, management: true);
    }

    private static void AssertVersion(string stdout, string arch)
    {
        Assert.Matches(@"^lisp-decent [0-9]+\.[0-9]+\.[0-9]+", stdout);
        Assert.Matches($@"(?m)^arch:\s+{arch}\b", stdout);
        Assert.Matches(@"(?m)^linking:\s+static\b", stdout);
        Assert.Matches(@"(?m)^runtime:\s+native AOT\b", stdout);
        Assert.Matches(@"(?m)^crypto:\s+managed\b", stdout);
        Assert.Matches(@"(?m)^commit:\s+([0-9a-f]{7,40}(-dirty)?|unknown)$", stdout);
        Assert.Matches(@"(?m)^built:\s+([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z|unknown)$", stdout);
    }

    /// <summary>
    /// Starts `[emulator] /lisp-decent run --config /node.toml` chrooted into <paramref name="root"/>: it must register
    /// with HMAC-SHA-256 (Map-Notify accepted), answer a lig run outside the chroot, and serve the management API.
    /// </summary>
    private static void RunInChroot(Topology topology, string root, string[] emulator, TimeSpan wait, bool management)
    {
        string address = topology.Address(1);
        string mgmt = $"{address}:{ManagementNode.FreeTcpPort(address)}";
        File.Copy(topology.WriteConfig("chroot", ManagementNode.Config(address, management ? mgmt : null)), Path.Combine(root, "node.toml"));
        using var node = Exec.Start("chroot", [root, .. emulator, "/lisp-decent", "run", "--config", "/node.toml", "--request", "[0]10.1.1.1/32"]);
        node.WaitForLine(@" node-started ", wait);
        node.WaitForLine(@"map-notify-accepted .*\[0\]10\.1\.1\.0/24", wait);   // HMAC-SHA-256 both ways
        node.WaitForLine(@"map-cache-install \[0\]10\.1\.1\.0/24 -> ", wait);
        var reply = topology.Lig("10.1.1.1", 1, count: 3, timeout: "3s");      // the host's lig, outside the chroot
        Assert.Equal("[0]10.1.1.0/24", reply.Single.Eid);
        Assert.Contains(reply.Single.Rlocs, r => r.Address == address);
        if (management)
        {
            node.WaitForLine(@"management-started ", wait);
            var (status, _, body) = Http.Send(mgmt, "GET", "/api/counters");
            Assert.True(status == 200, $"GET /api/counters: {status}\n{body}\nnode log:\n{node.Output}");
            Assert.Equal(200, Http.Send(mgmt, "GET", "/").Status);
        }
        Assert.Null(node.ExitCode);
        Assert.False(node.Any(@"(?i)libssl|libcrypto|DllNotFound|internal error"), node.Output);
    }

    /// <summary>
    /// A fresh directory holding only /lisp-decent and, for arm64, the emulator: no /dev, /proc, /sys, /etc, no lib
    /// directory. Probes with `chroot ROOT [emulator] /lisp-decent version` (which must say static); skips when
    /// chroot(2) is not permitted here (not root, no CAP_SYS_CHROOT).
    /// </summary>
    private static string EmptyRoot(Topology topology, string binary, string? qemu)
    {
        Skip.IfNot(File.Exists("/usr/sbin/chroot") || File.Exists("/usr/bin/chroot"), "no chroot(8) on this machine");
        var root = Path.Combine(topology.Dir, "root");
        Directory.CreateDirectory(root);
        File.Copy(binary, Path.Combine(root, "lisp-decent"));
        string[] emulator = [];
        if (qemu is not null)
        {
            File.Copy(qemu, Path.Combine(root, "qemu-aarch64-static"));
            emulator = ["/qemu-aarch64-static"];
        }
        var entries = Directory.EnumerateFileSystemEntries(root, "*", SearchOption.AllDirectories).Select(p => "/" + Path.GetRelativePath(root, p)).Order().ToList();
        var expected = new List<string> { "/lisp-decent" };
        if (qemu is not null) expected.Add("/qemu-aarch64-static");
        Assert.Equal(expected.Order(), entries);

        var (rc, stdout, stderr) = Exec.Run("chroot", [], TimeSpan.FromSeconds(60), [root, .. emulator, "/lisp-decent", "version"]);
        Skip.If(rc != 0 && stderr.Contains("Operation not permitted", StringComparison.Ordinal), $"chroot is not permitted here (not root?): {stderr.Trim()}");
        Assert.True(rc == 0, $"version in the empty chroot exited {rc}: {stderr}");
        AssertVersion(stdout, qemu is null ? "linux-x64" : "linux-arm64");
        return root;
    }

    private static string X64Binary()
    {
        Skip.IfNot(ApplianceProcess.Artifact.IsNativeAot,
            $"the process tests run the JIT build here ({ApplianceProcess.Artifact.Source}); these tests are about the published binary");
        return ApplianceProcess.Artifact.Path;
    }

    /// <summary>$LISP_DECENT_BINARY_ARM64, else artifacts/publish-arm64/lisp-decent (./build.sh publish).</summary>
    private static string Arm64Binary()
    {
        var fromEnv = Environment.GetEnvironmentVariable("LISP_DECENT_BINARY_ARM64");
        var path = string.IsNullOrEmpty(fromEnv) ? TestFiles.InProject("artifacts", "publish-arm64", "lisp-decent") : fromEnv;
        Skip.IfNot(File.Exists(path), $"no linux-arm64 binary at {path} (./build.sh publish builds it when gcc-aarch64-linux-gnu is installed)");
        return path;
    }

    private static string Qemu()
    {
        var q = new[] { "/usr/bin/qemu-aarch64-static", "/usr/local/bin/qemu-aarch64-static" }.FirstOrDefault(File.Exists);
        Skip.If(q is null, "no qemu-aarch64-static (apt-get install qemu-user-static) to run the linux-arm64 binary");
        return q!;
    }
}

/// <summary>The parts of an ELF64 little-endian file that say how it is linked.</summary>
internal sealed record Elf(ushort Machine, bool HasInterpreter, IReadOnlyList<string> Needed)
{
    private const uint PtDynamic = 2, PtInterp = 3, PtLoad = 1;
    private const long DtNull = 0, DtNeeded = 1, DtStrtab = 5;

    public static Elf Read(string path)
    {
        var b = File.ReadAllBytes(path);
        Assert.True(b.Length > 64 && b[0] == 0x7f && b[1] == (byte)'E' && b[2] == (byte)'L' && b[3] == (byte)'F', $"{path} is not an ELF file");
        Assert.True(b[4] == 2 && b[5] == 1, $"{path}: not ELF64 little-endian");
        ushort machine = U16(b, 18);
        long phoff = (long)U64(b, 32);
        int phentsize = U16(b, 54), phnum = U16(b, 56);
        bool interp = false;
        var loads = new List<(ulong Vaddr, ulong Offset, ulong Filesz)>();
        (long Offset, long Size)? dynamic = null;
        for (int i = 0; i < phnum; i++)
        {
            int o = checked((int)(phoff + (long)i * phentsize));
            uint type = BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(o));
            ulong offset = U64(b, o + 8), vaddr = U64(b, o + 16), filesz = U64(b, o + 32);
            if (type == PtInterp) interp = true;
            if (type == PtLoad) loads.Add((vaddr, offset, filesz));
            if (type == PtDynamic) dynamic = ((long)offset, (long)filesz);
        }
        var needed = new List<string>();
        if (dynamic is { } d)
        {
            var neededOffsets = new List<ulong>();
            ulong strtab = 0;
            for (long o = d.Offset; o + 16 <= d.Offset + d.Size; o += 16)
            {
                long tag = (long)U64(b, (int)o);
                ulong val = U64(b, (int)o + 8);
                if (tag == DtNull) break;
                if (tag == DtNeeded) neededOffsets.Add(val);
                if (tag == DtStrtab) strtab = val;
            }
            foreach (var n in neededOffsets)
            {
                // DT_STRTAB is a virtual address: map it to a file offset through the PT_LOAD segments.
                var seg = loads.FirstOrDefault(l => strtab >= l.Vaddr && strtab < l.Vaddr + l.Filesz);
                int at = (int)(strtab - seg.Vaddr + seg.Offset + n);
                int end = Array.IndexOf(b, (byte)0, at);
                needed.Add(System.Text.Encoding.ASCII.GetString(b, at, end - at));
            }
        }
        return new Elf(machine, interp, needed);
    }

    private static ushort U16(byte[] b, int o) => BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(o));
    private static ulong U64(byte[] b, int o) => BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(o));
}

/// <summary>A child process with its output lines collected (ApplianceProcess runs only lisp-decent itself).</summary>
internal sealed class Exec : IDisposable
{
    private readonly Process _p;
    private readonly ConcurrentQueue<string> _lines = new();

    private Exec(Process p) => _p = p;

    public string Output => string.Join("\n", _lines);
    public int? ExitCode => _p.HasExited ? _p.ExitCode : null;
    public bool Any(string pattern) => _lines.Any(l => Regex.IsMatch(l, pattern));

    public static Exec Start(string file, string[] args)
    {
        var p = new Process { StartInfo = Psi(file, args) };
        var e = new Exec(p);
        p.OutputDataReceived += (_, a) => { if (a.Data is not null) e._lines.Enqueue(a.Data); };
        p.ErrorDataReceived += (_, a) => { if (a.Data is not null) e._lines.Enqueue(a.Data); };
        p.Start();
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return e;
    }

    public static (int ExitCode, string Stdout, string Stderr) Run(string file, string[] prefix, TimeSpan timeout, params string[] args)
    {
        using var p = new Process { StartInfo = Psi(file, [.. prefix, .. args]) };
        p.Start();
        var so = p.StandardOutput.ReadToEndAsync();
        var se = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            p.WaitForExit(5000);
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish within {timeout.TotalSeconds}s");
        }
        p.WaitForExit();
        return (p.ExitCode, so.Result, se.Result);
    }

    private static ProcessStartInfo Psi(string file, string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        return psi;
    }

    public string WaitForLine(string pattern, TimeSpan timeout)
    {
        var re = new Regex(pattern);
        var sw = Stopwatch.StartNew();
        while (true)
        {
            bool exited = _p.HasExited;
            var hit = _lines.FirstOrDefault(l => re.IsMatch(l));
            if (hit is not null) return hit;
            if (exited || sw.Elapsed > timeout)
            {
                if (exited) _p.WaitForExit();
                throw new TimeoutException($"no line matching /{pattern}/ within {timeout.TotalSeconds:0}s" +
                    $"{(exited ? $" (exited with {_p.ExitCode})" : "")}; log:\n{string.Join("\n", _lines.TakeLast(60))}");
            }
            Thread.Sleep(100);
        }
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
