using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;

namespace Lisp.MapCache;

/// <summary>
/// CRC32-C (Castagnoli) used as the table hash. The hardware instruction (SSE4.2 <c>crc32</c> on x64,
/// <c>CRC32CX</c> on arm64) and the table-driven software path compute bit-identical values. Tables are built
/// with the path their writer chose (<see cref="HardwareAvailable"/>: the instruction exists and agreed with
/// the software path on fixed vectors at start; <c>MapCacheOptions.UseHardwareHash = false</c> forces
/// software). Values are raw CRC state (no final inversion) because they only feed bucket indexes and tags.
/// <para>
/// Lookups call <see cref="Lookup32"/>/<see cref="Lookup64"/>, which use the instruction whenever the CPU has
/// it, without reading any per-table flag. Under native AOT at the shipped floor (x86-64-v2, which includes
/// SSE4.2) and under the JIT, <c>Sse42.IsSupported</c> is a compile-time constant, so the probe contains the
/// <c>crc32</c> instruction inline and no branch (checked by perf/inspect-codegen.sh and AotCodegenTests).
/// That is sound because both paths give the same value for every input (the self-test here and the MapCache
/// test HardwareAndSoftwareHashBuildIdenticalTables check it); should the instruction ever disagree with the
/// software path, <see cref="MapCacheWriter"/> refuses to start (<see cref="CheckHardware"/>) instead of
/// forwarding wrongly. Measured reason (perf/RESULTS.md, "What the AOT binary compiles to"): with the old
/// flag-selected hash, every probe in the AOT binary tested the table's flag and a runtime CPU-feature flag
/// before its <c>crc32</c>, with the software path an out-of-line call.
/// </para>
/// </summary>
public static class Crc32C
{
    /// <summary>Seed for all table hashes (any non-zero constant; zero would map key 0 to hash 0).</summary>
    public const uint Seed = 0x9E3779B9;

    private static readonly uint[] Table = BuildTable();

    /// <summary>True when a CRC32-C instruction exists and agreed with the software path at start.</summary>
    public static readonly bool HardwareAvailable = (Sse42.X64.IsSupported || Crc32.Arm64.IsSupported) && SelfTest();

    /// <summary>
    /// Throws when the CPU has the CRC32-C instruction but it disagreed with the software CRC32-C at start (a CPU
    /// defect): lookups use the instruction whenever it exists, so a software-built table would be probed with
    /// different hashes. Called by <see cref="MapCacheWriter"/>.
    /// </summary>
    internal static void CheckHardware()
    {
        if ((Sse42.X64.IsSupported || Crc32.Arm64.IsSupported) && !HardwareAvailable)
            throw new PlatformNotSupportedException("the CPU's CRC32-C instruction disagrees with the software CRC32-C (self-test failed)");
    }

    private static uint[] BuildTable()
    {
        var t = new uint[256];
        for (uint i = 0; i < 256; i++)
        {
            uint c = i;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
            t[i] = c;
        }
        return t;
    }

    /// <summary>Standard check: CRC32-C("123456789") = 0xE3069283 on both paths, plus agreement on many keys.</summary>
    private static bool SelfTest()
    {
        ReadOnlySpan<byte> check = "123456789"u8;
        uint sw = ~SoftwareBytes(0xffffffff, check);
        if (sw != 0xE3069283) return false;
        uint hw = 0xffffffff;
        foreach (byte b in check) hw = HardwareByte(hw, b);
        if (~hw != 0xE3069283) return false;
        ulong x = 0x0123456789abcdef;
        for (int i = 0; i < 64; i++)
        {
            if (Hash32(Seed, (uint)x, true) != Hash32(Seed, (uint)x, false)) return false;
            if (Hash64(Seed, x, true) != Hash64(Seed, x, false)) return false;
            x = x * 6364136223846793005UL + 1442695040888963407UL;
        }
        return true;
    }

    private static uint HardwareByte(uint crc, byte b) =>
        Sse42.IsSupported ? Sse42.Crc32(crc, b) : Crc32.ComputeCrc32C(crc, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Hash32(uint crc, uint data, bool hardware)
    {
        if (hardware)
        {
            if (Sse42.IsSupported) return Sse42.Crc32(crc, data);
            if (Crc32.IsSupported) return Crc32.ComputeCrc32C(crc, data);
        }
        return Software32(crc, data);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Hash64(uint crc, ulong data, bool hardware)
    {
        if (hardware)
        {
            if (Sse42.X64.IsSupported) return (uint)Sse42.X64.Crc32(crc, data);
            if (Crc32.Arm64.IsSupported) return Crc32.Arm64.ComputeCrc32C(crc, data);
        }
        return Software32(Software32(crc, (uint)data), (uint)(data >> 32));
    }

    /// <summary>
    /// The lookup-path hash of a 32-bit key: the instruction when the CPU has it (a compile-time constant under
    /// the JIT and under AOT at x86-64-v2 or higher: inlined <c>crc32</c>, no flag), else software. Same value
    /// as <see cref="Hash32"/> with either flag.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Lookup32(uint crc, uint data)
    {
        if (Sse42.IsSupported) return Sse42.Crc32(crc, data);
        if (Crc32.IsSupported) return Crc32.ComputeCrc32C(crc, data);
        return Software32(crc, data);
    }

    /// <summary>The lookup-path hash of a 64-bit key (see <see cref="Lookup32"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Lookup64(uint crc, ulong data)
    {
        if (Sse42.X64.IsSupported) return (uint)Sse42.X64.Crc32(crc, data);
        if (Crc32.Arm64.IsSupported) return Crc32.Arm64.ComputeCrc32C(crc, data);
        return Software32(Software32(crc, (uint)data), (uint)(data >> 32));
    }

    /// <summary>CRC over bytes: 8 at a time through <see cref="Hash64"/>, the tail byte by byte.</summary>
    public static uint HashBytes(uint crc, ReadOnlySpan<byte> data, bool hardware)
    {
        int i = 0;
        for (; i + 8 <= data.Length; i += 8)
            crc = Hash64(crc, System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(data.Slice(i)), hardware);
        for (; i < data.Length; i++)
            crc = hardware && Sse42.IsSupported ? Sse42.Crc32(crc, data[i])
                : hardware && Crc32.IsSupported ? Crc32.ComputeCrc32C(crc, data[i])
                : (crc >> 8) ^ Table[(byte)(crc ^ data[i])];
        return crc;
    }

    private static uint Software32(uint crc, uint data)
    {
        var t = Table;
        crc ^= data;
        crc = (crc >> 8) ^ t[(byte)crc];
        crc = (crc >> 8) ^ t[(byte)crc];
        crc = (crc >> 8) ^ t[(byte)crc];
        return (crc >> 8) ^ t[(byte)crc];
    }

    private static uint SoftwareBytes(uint crc, ReadOnlySpan<byte> data)
    {
        foreach (byte b in data) crc = (crc >> 8) ^ Table[(byte)(crc ^ b)];
        return crc;
    }
}
