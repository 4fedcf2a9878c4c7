using System.Text.RegularExpressions;
using Lisp.Appliance.Tests.Support;
using Lisp.TestSupport;

namespace Lisp.Appliance.Tests.Artifact;

/// <summary>
/// The shipped binary, as users run it: what it maps into memory once it is up and serving (control plane with
/// HMAC, management API and web page, lig answered). It is fully static (./build.sh publish), so nothing but the
/// binary itself may be mapped from a file: no libc, no ld.so, no libssl/libcrypto, no ICU. README.md's
/// "Run-time libraries:" line says so; a library the README does not name is a dependency an operator would not
/// know to install.
/// </summary>
public sealed class RuntimeLibrariesTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);

    [SkippableFact]
    public void The_running_binary_maps_no_shared_library()
    {
        Skip.IfNot(ApplianceProcess.Artifact.IsNativeAot,
            $"the process tests run the JIT build here ({ApplianceProcess.Artifact.Source}); this test is about the native-AOT binary");
        Skip.IfNot(File.Exists("/proc/self/maps"), "no /proc/PID/maps on this machine");

        var named = NamedLibraries();
        Assert.Empty(named);

        using var topology = new Topology("127.0.52");
        string address = topology.Address(1);
        string management = $"{address}:{ManagementNode.FreeTcpPort(address)}";
        var node = topology.StartNode("libs", ManagementNode.Config(address, management), "--request", "[0]10.1.1.1/32");
        node.WaitForLine(@"map-notify-accepted .*\[0\]10\.1\.1\.0/24", Wait);   // HMAC-SHA-256 both ways
        node.WaitForLine(@"map-cache-install \[0\]10\.1\.1\.0/24 -> ", Wait);
        node.WaitForLine(@"management-started ", Wait);
        Assert.Equal(200, Http.Send(management, "GET", "/").Status);
        Assert.Equal(200, Http.Send(management, "GET", "/api/counters").Status);
        Assert.Equal("[0]10.1.1.0/24", topology.Lig("10.1.1.1", 1).Single.Eid);

        var mapped = File.ReadAllLines($"/proc/{node.Id}/maps")
            .Select(l => l.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries))
            .Where(f => f.Length == 6 && f[5].StartsWith('/'))
            .Select(f => f[5].Trim())
            .Distinct()
            .ToList();
        var binary = Path.GetFullPath(ApplianceProcess.Artifact.Path);
        Assert.Contains(binary, mapped);   // the map really is the binary's own

        var libraries = mapped.Where(p => p != binary && Regex.IsMatch(Path.GetFileName(p), @"\.so(\.|$)")).Select(Path.GetFileName).ToList();
        Assert.True(libraries.Count == 0,
            $"the static binary mapped shared libraries: {string.Join(", ", libraries)}\nall mapped files:\n{string.Join("\n", mapped)}");
        // Anything else mapped from a file (not a library, not the binary) would be a surprise too: say what.
        var other = mapped.Where(p => p != binary && !Regex.IsMatch(Path.GetFileName(p), @"\.so(\.|$)")).ToList();
        Assert.True(other.Count == 0, "files mapped besides the binary and its libraries:\n" + string.Join("\n", other));
    }

    [Fact]
    public void The_README_says_there_are_no_runtime_libraries_in_one_line()
    {
        Assert.Empty(NamedLibraries());
        var line = File.ReadLines(TestFiles.InProject("README.md")).First(l => l.StartsWith("Run-time libraries:", StringComparison.Ordinal));
        Assert.StartsWith("Run-time libraries: none", line, StringComparison.Ordinal);
    }

    /// <summary>The `backticked` .so names on README.md's line that starts with "Run-time libraries:".</summary>
    private static HashSet<string> NamedLibraries()
    {
        var line = File.ReadLines(TestFiles.InProject("README.md")).FirstOrDefault(l => l.StartsWith("Run-time libraries:", StringComparison.Ordinal));
        Assert.True(line is not null, "README.md has no line starting with 'Run-time libraries:'");
        return Regex.Matches(line!, "`([^`]+)`").Select(m => m.Groups[1].Value).Where(v => v.Contains(".so", StringComparison.Ordinal)).ToHashSet(StringComparer.Ordinal);
    }
}
