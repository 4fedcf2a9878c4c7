using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Lisp.TestSupport;
using Xunit.Abstractions;

namespace Lisp.Appliance.Tests.Codegen;

/// <summary>
/// The shipped native-AOT binary takes the hardware paths on the map-cache hot path (the same checks as
/// perf/inspect-codegen.sh). The binary is stripped, so each function's address range comes from the symbol
/// table in lisp-decent.dbg beside it (<c>nm -S</c>) and that range of the binary is disassembled with
/// <c>objdump -d --start-address --stop-address</c>; call targets are named through the same table.
/// Runs on artifacts/publish/lisp-decent (<c>./build.sh publish</c>) or $LISP_DECENT_BINARY; skips, saying
/// why, only when the binary, its .dbg or objdump/nm is missing.
/// </summary>
public sealed class AotCodegenTests
{
    private readonly ITestOutputHelper _out;
    public AotCodegenTests(ITestOutputHelper output) => _out = output;

    /// <summary>Tiny helpers that must be inlined into the lookup (a call to any of them is a failure).</summary>
    private static readonly Regex Helper = new(
        @"Crc32C__|ExactTable_2<.*>__TryGet|V6Lpm__Mask|RlocTable__(V4|IsV4)|PacketBatch__(Slot|SlotPointer|Packet|AddressPointer|AddressBytes)$|DataPlaneCounters__Drop|FlowHash__(SourcePort|Finish)",
        RegexOptions.Compiled);

    private static readonly Regex Crc32 = new(@"\bcrc32\b", RegexOptions.Compiled);
    private static readonly Regex VectorCompare = new(@"\bv?pcmpeq[dq]\b", RegexOptions.Compiled);
    private static readonly Regex Call = new(@"\bcall\s+([0-9a-f]+)\b", RegexOptions.Compiled);

    private sealed record Symbol(string Name, ulong Start, ulong Size);

    private sealed class Binary
    {
        public required string Path;
        public required List<Symbol> Code;

        public Symbol Find(string suffix) =>
            Code.FirstOrDefault(s => s.Name.EndsWith(suffix, StringComparison.Ordinal))
            ?? throw new Xunit.Sdk.XunitException($"no symbol ending in {suffix} in {Path}.dbg (renamed, or inlined everywhere?)");

        public string? NameAt(ulong address) => Code.FirstOrDefault(s => address >= s.Start && address < s.Start + s.Size)?.Name;

        /// <summary>Instruction lines of one function.</summary>
        public List<string> Disassemble(Symbol s)
        {
            var text = Run("objdump", "-d", "--no-show-raw-insn", "-M", "intel",
                $"--start-address=0x{s.Start:x}", $"--stop-address=0x{s.Start + s.Size:x}", Path);
            return text.Split('\n').Where(l => Regex.IsMatch(l, @"^\s*[0-9a-f]+:\s")).ToList();
        }
    }

    private static string? Which(string tool) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(d => System.IO.Path.Combine(d, tool)).FirstOrDefault(File.Exists);

    private static string Run(string tool, params string[] args)
    {
        var psi = new ProcessStartInfo(tool) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"{tool} exited {p.ExitCode}: {stderr.Result}");
        return stdout.Result;
    }

    /// <summary>The published binary and its code symbols, or a skip with the reason.</summary>
    private Binary Load()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "the codegen check reads an ELF binary (Linux only)");
        Skip.IfNot(System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture == System.Runtime.InteropServices.Architecture.X64,
            "the checks look for x86-64 instructions (crc32, pcmpeqd); arm64 code has other names");
        // The same binary the process tests run (ApplianceProcess picks it: LISP_DECENT_BINARY, else a fresh artifacts/publish).
        var artifact = ApplianceProcess.Artifact;
        Skip.IfNot(artifact.IsNativeAot, $"the process tests run the JIT build here ({artifact.Source}); the codegen check needs the native-AOT binary");
        var path = artifact.Path;
        Skip.If(!File.Exists(path), $"no published binary at {path}: run ./build.sh publish (or set LISP_DECENT_BINARY)");
        Skip.If(!File.Exists(path + ".dbg"), $"{path}.dbg missing: the symbol table comes from the StripSymbols side file");
        Skip.If(Which("objdump") is null || Which("nm") is null, "objdump/nm not installed (apt-get install binutils)");
        var code = new List<Symbol>();
        foreach (var line in Run("nm", "-S", "--defined-only", path + ".dbg").Split('\n'))
        {
            var f = line.Split(' ', 4, StringSplitOptions.RemoveEmptyEntries);
            if (f.Length == 4 && f[2] is "t" or "T")
                code.Add(new Symbol(f[3], ulong.Parse(f[0], NumberStyles.HexNumber), ulong.Parse(f[1], NumberStyles.HexNumber)));
        }
        Assert.True(code.Count > 1000, $"only {code.Count} code symbols in {path}.dbg");
        _out.WriteLine($"binary: {path} ({new FileInfo(path).Length} bytes), {code.Count} code symbols");
        return new Binary { Path = path, Code = code };
    }

    /// <summary>Disassembles a function, prints the interesting lines and returns (instructions, named call targets).</summary>
    private (List<string> Asm, List<string> Calls) Inspect(Binary b, string suffix)
    {
        var s = b.Find(suffix);
        var asm = b.Disassemble(s);
        var calls = asm.Select(l => Call.Match(l)).Where(m => m.Success)
            .Select(m => b.NameAt(ulong.Parse(m.Groups[1].Value, NumberStyles.HexNumber)) ?? "0x" + m.Groups[1].Value)
            .Distinct().ToList();
        _out.WriteLine($"{s.Name}: {s.Size} bytes, {asm.Count} instructions");
        foreach (var l in asm.Where(l => Crc32.IsMatch(l) || VectorCompare.IsMatch(l))) _out.WriteLine("   " + l.Trim());
        foreach (var c in calls) _out.WriteLine("   call -> " + c);
        return (asm, calls);
    }

    [SkippableFact]
    public void Exact_table_probe_inlines_crc32_and_a_simd_tag_compare_with_no_helper_calls()
    {
        var b = Load();
        // ExactTable.TryGet (AggressiveInlining) is inlined into these three lookups, with Crc32C.Lookup32/64 in it.
        foreach (var f in new[] { "V4Lpm__LookupLonger", "V4Lpm__LookupHash", "V6Lpm__Lookup" })
        {
            var (asm, calls) = Inspect(b, f);
            Assert.True(asm.Any(l => Crc32.IsMatch(l)), $"{f}: no crc32 instruction (CRC32-C hash not the inlined hardware path)");
            Assert.True(asm.Any(l => VectorCompare.IsMatch(l)), $"{f}: no pcmpeqd/vpcmpeqd (tag compare not vectorized)");
            var helpers = calls.Where(c => Helper.IsMatch(c)).ToList();
            Assert.True(helpers.Count == 0, $"{f} calls helpers that should be inlined: {string.Join(", ", helpers)}");
        }
    }

    [SkippableFact]
    public void Crc32c_hash_of_the_lookup_and_flow_hash_is_the_crc32_instruction()
    {
        var b = Load();
        // The lookup-path hash has no body of its own: it is inlined wherever it is used.
        Assert.DoesNotContain(b.Code, s => s.Name.EndsWith("Crc32C__Lookup32", StringComparison.Ordinal) || s.Name.EndsWith("Crc32C__Lookup64", StringComparison.Ordinal));
        var (asm, calls) = Inspect(b, "FlowHash__FromPacket");
        Assert.True(asm.Count(l => Crc32.IsMatch(l)) >= 2, "FlowHash.FromPacket: expected inlined crc32 instructions");
        Assert.DoesNotContain(calls, c => Helper.IsMatch(c));
    }

    [SkippableFact]
    public void Per_packet_worker_code_does_not_call_the_tiny_helpers()
    {
        var b = Load();
        foreach (var f in new[] { "ItrWorker__Encapsulate", "ItrWorker__Process", "EtrWorker__Decapsulate" })
        {
            var (_, calls) = Inspect(b, f);
            var helpers = calls.Where(c => Helper.IsMatch(c)).ToList();
            Assert.True(helpers.Count == 0, $"{f} calls helpers that should be inlined: {string.Join(", ", helpers)}");
        }
    }
}
