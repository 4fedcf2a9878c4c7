using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Numerics;

namespace Lisp.DataPlane.Offload;

/// <summary>
/// RFC 1071 Internet checksum helpers. A "sum" here is an unfolded one's-complement partial sum (ulong) of 16-bit
/// big-endian words; sums of regions can be added together as long as each region starts at an even offset of the
/// checksummed data (an odd-length region is padded with one zero byte, so only the last region may be odd).
/// <see cref="Fold"/> reduces a sum to 16 bits; the checksum stored on the wire is its complement (<see cref="Finish"/>).
/// </summary>
public static class InetChecksum
{
    /// <summary>
    /// Adds the bytes of <paramref name="data"/> to <paramref name="initial"/>. The loop adds 8 bytes at a time as two
    /// 32-bit halves into a 64-bit accumulator in host order (the one's-complement sum is byte-order independent,
    /// RFC 1071 2.(B)), then folds and swaps once at the end. Long inputs go through vector lanes first (the same
    /// 32-bit halves into 64-bit lanes, as wide as <see cref="Vector{T}"/> is on the machine):
    /// the ITR sums every segment it cuts and the ETR every segment it joins, so this runs over every byte of TCP
    /// through the overlay twice.
    /// </summary>
    public static ulong Sum(ReadOnlySpan<byte> data, ulong initial = 0)
    {
        ref byte start = ref MemoryMarshal.GetReference(data);
        int length = data.Length;
        int i = 0;
        ulong acc = 0;
        if (Vector.IsHardwareAccelerated && length >= 2 * Vector<byte>.Count)
        {
            // Vector<ulong> is as wide as the machine allows: 128-bit on the x86-64-v2 floor and arm64, 256-bit with AVX2.
            int step = Vector<byte>.Count;
            var low = new Vector<ulong>(0xffff_ffffUL);
            Vector<ulong> s0 = default, s1 = default;
            while (length - i >= 2 * step)
            {
                var a = Unsafe.ReadUnaligned<Vector<ulong>>(ref Unsafe.Add(ref start, i));
                var b = Unsafe.ReadUnaligned<Vector<ulong>>(ref Unsafe.Add(ref start, i + step));
                s0 += (a & low) + (a >> 32);
                s1 += (b & low) + (b >> 32);
                i += 2 * step;
            }
            acc += Vector.Sum(s0 + s1);
        }
        while (length - i >= 32)
        {
            ulong a = Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref start, i));
            ulong b = Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref start, i + 8));
            ulong c = Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref start, i + 16));
            ulong d = Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref start, i + 24));
            acc += (uint)a + (a >> 32) + (uint)b + (b >> 32) + (uint)c + (c >> 32) + (uint)d + (d >> 32);
            i += 32;
        }
        while (length - i >= 8)
        {
            ulong a = Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref start, i));
            acc += (uint)a + (a >> 32);
            i += 8;
        }
        if (length - i >= 4)
        {
            acc += Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref start, i));
            i += 4;
        }
        if (length - i >= 2)
        {
            acc += Unsafe.ReadUnaligned<ushort>(ref Unsafe.Add(ref start, i));
            i += 2;
        }
        if (i < length)
        {
            // The odd last byte is the high byte of a big-endian word padded with zero.
            uint last = Unsafe.Add(ref start, i);
            acc += BitConverter.IsLittleEndian ? last : last << 8;
        }
        ushort folded = Fold(acc);
        if (BitConverter.IsLittleEndian) folded = BinaryPrimitives.ReverseEndianness(folded);
        return initial + folded;
    }

    /// <summary>End-around-carry folds a partial sum to 16 bits (not complemented).</summary>
    public static ushort Fold(ulong sum)
    {
        sum = (sum & 0xffffffff) + (sum >> 32);
        sum = (sum & 0xffffffff) + (sum >> 32);
        sum = (sum & 0xffff) + (sum >> 16);
        sum = (sum & 0xffff) + (sum >> 16);
        sum = (sum & 0xffff) + (sum >> 16);
        return (ushort)sum;
    }

    /// <summary>The checksum to store: the complement of the folded sum.</summary>
    public static ushort Finish(ulong sum) => (ushort)~Fold(sum);

    /// <summary>
    /// IPv4 pseudo-header (RFC 793 / 768): source, destination, zero, protocol, upper-layer length.
    /// Addresses are 4 bytes each.
    /// </summary>
    public static ulong PseudoHeaderV4(ReadOnlySpan<byte> source, ReadOnlySpan<byte> destination, byte protocol, int length)
        => Sum(destination.Slice(0, 4), Sum(source.Slice(0, 4))) + protocol + (uint)(ushort)length;

    /// <summary>
    /// IPv6 pseudo-header (RFC 8200 8.1): source, destination, 32-bit upper-layer length, 24 zero bits, next header.
    /// Addresses are 16 bytes each.
    /// </summary>
    public static ulong PseudoHeaderV6(ReadOnlySpan<byte> source, ReadOnlySpan<byte> destination, byte protocol, int length)
        => Sum(destination.Slice(0, 16), Sum(source.Slice(0, 16))) + protocol + ((uint)length >> 16) + ((uint)length & 0xffff);

    /// <summary>
    /// The IPv4 header checksum of <paramref name="header"/> (the whole header, options included, at least 20 bytes),
    /// computed as if its checksum field (bytes 10-11) were zero.
    /// </summary>
    public static ushort Ipv4HeaderChecksum(ReadOnlySpan<byte> header)
        => Finish(Sum(header.Slice(12), Sum(header.Slice(0, 10))));

    /// <summary>True when the data (checksum field included) sums to 0xffff, i.e. its checksum verifies.</summary>
    public static bool Verifies(ReadOnlySpan<byte> data, ulong initial = 0) => Fold(Sum(data, initial)) == 0xffff;
}
