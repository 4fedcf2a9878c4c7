using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Lisp.Appliance.Cli;

/// <summary>
/// `lisp-decent version`: what this binary is. Version, commit and build date come from MSBuild (build.sh passes
/// the git commit and the UTC build time; a build without them says "unknown"). Architecture and linking are read
/// from the running process, not from the build: linking is "static" when the kernel started no program
/// interpreter (auxiliary vector AT_BASE = 0, i.e. no ld.so was mapped), which also holds in an empty chroot with
/// no /proc.
/// </summary>
public static partial class VersionCommand
{
    public const string Help = """
        Usage: lisp-decent version

        Prints the version, the git commit and build date, the architecture (and the CPU floor it was compiled
        for), whether the binary is statically linked (checked at run time: no dynamic loader was started), the
        runtime (native AOT or JIT) and the crypto backend.
        """;

    public static int Run(IReadOnlyList<string> args, TextWriter stdout, TextWriter stderr)
    {
        if (args.Count == 1 && args[0] is "--help" or "-h")
        {
            stdout.WriteLine(Help);
            return 0;
        }
        if (args.Count > 0)
        {
            stderr.WriteLine("version: takes no arguments (see lisp-decent version --help)");
            return 2;
        }
        var asm = typeof(VersionCommand).Assembly;
        string version = asm.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? asm.GetName().Version?.ToString() ?? "unknown";
        int plus = version.IndexOf('+', StringComparison.Ordinal);
        if (plus >= 0) version = version[..plus];   // the SDK appends +commit; the commit has its own line
        stdout.WriteLine($"lisp-decent {version}");
        stdout.WriteLine($"commit:     {Metadata(asm, "LispCommit")}");
        stdout.WriteLine($"built:      {Metadata(asm, "LispBuildDate")}");
        string floor = Metadata(asm, "LispInstructionSet");
        stdout.WriteLine($"arch:       {Architecture()}{(floor == "unknown" ? "" : $" ({floor})")}");
        stdout.WriteLine($"linking:    {Linking()}");
        stdout.WriteLine($"runtime:    {(RuntimeFeature.IsDynamicCodeSupported ? "JIT (.NET " + Environment.Version + ")" : "native AOT (.NET " + Environment.Version + ")")}");
        stdout.WriteLine("crypto:     managed (HMAC-SHA-1/-256 and SHA-256 in src/Lisp.Wire/Crypto, no OpenSSL); randomness: kernel getrandom(2)");
        return 0;
    }

    /// <summary>"linux-x64", "linux-arm64", ... of the running process.</summary>
    public static string Architecture() => RuntimeInformation.ProcessArchitecture switch
    {
        System.Runtime.InteropServices.Architecture.X64 => "linux-x64",
        System.Runtime.InteropServices.Architecture.Arm64 => "linux-arm64",
        var a => "linux-" + a.ToString().ToLowerInvariant(),
    };

    /// <summary>"static" or "dynamic (...)": whether the kernel mapped a program interpreter (ld.so) for this process.</summary>
    public static string Linking()
    {
        if (!OperatingSystem.IsLinux()) return "unknown (not Linux)";
        nuint interpreterBase = GetAuxVal(AtBase);
        return interpreterBase == 0
            ? "static (no dynamic loader, no shared library)"
            : $"dynamic (program interpreter at 0x{(ulong)interpreterBase:x})";
    }

    private static string Metadata(Assembly asm, string key)
    {
        foreach (var a in asm.GetCustomAttributes<AssemblyMetadataAttribute>())
        {
            if (a.Key == key && !string.IsNullOrWhiteSpace(a.Value)) return a.Value!;
        }
        return "unknown";
    }

    private const ulong AtBase = 7;   // AT_BASE: base address of the program interpreter, 0 when there is none

    [LibraryImport("libc", EntryPoint = "getauxval")]
    private static partial nuint GetAuxVal(ulong type);
}
