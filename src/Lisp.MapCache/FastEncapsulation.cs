using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using Lisp.Wire;

[assembly: InternalsVisibleTo("Lisp.MapCache.Tests")]
[assembly: InternalsVisibleTo("Lisp.Perf")]

namespace Lisp.MapCache;

/// <summary>
/// Span/integer variant of <see cref="Encapsulation.WriteHeaders"/> for the data-plane hot path: the RLOC
/// comes straight from <see cref="RlocTable"/> as an integer or bytes (no <see cref="System.Net.IPAddress"/>),
/// the IPv4 header checksum is summed from the known fields instead of looping over the header, and the
/// LISP header is written as two 32-bit words. Output bytes (default destination port) are identical to WriteHeaders with
/// <c>DataHeader.ForInstance(iid, nonce)</c> (tested). Measured in perf/RESULTS.md (Encapsulate rows).
/// </summary>
public static class FastEncapsulation
{
    /// <summary>Writes outer IPv4 + UDP + LISP (N and I bits, 24-bit nonce, instance-id) in front of the inner
    /// packet; returns the outer start offset or -1 when the headroom is short.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int WriteV4(Span<byte> buffer, int innerOffset, int innerLength, uint source, uint destination,
        ushort sourcePort, uint instanceId, uint nonce, byte ttl = 64, ushort destinationPort = DataHeader.Port)
    {
        int start = innerOffset - Encapsulation.Ipv4Overhead;
        if (start < 0 || (uint)(innerOffset + innerLength) > (uint)buffer.Length) return -1;
        var p = buffer.Slice(start, Encapsulation.Ipv4Overhead);
        int udpLength = 16 + innerLength;
        int total = 20 + udpLength;
        uint sum = 0x4500u + (uint)total + 0x4000u + ((uint)ttl << 8 | 17u)
                   + (source >> 16) + (source & 0xffff) + (destination >> 16) + (destination & 0xffff);
        sum = (sum & 0xffff) + (sum >> 16);
        sum = (sum & 0xffff) + (sum >> 16);
        BinaryPrimitives.WriteUInt32BigEndian(p, 0x4500_0000u | (uint)total);
        BinaryPrimitives.WriteUInt32BigEndian(p.Slice(4), 0x0000_4000u);
        BinaryPrimitives.WriteUInt32BigEndian(p.Slice(8), ((uint)ttl << 24) | (17u << 16) | (~sum & 0xffff));
        BinaryPrimitives.WriteUInt32BigEndian(p.Slice(12), source);
        BinaryPrimitives.WriteUInt32BigEndian(p.Slice(16), destination);
        BinaryPrimitives.WriteUInt32BigEndian(p.Slice(20), ((uint)sourcePort << 16) | destinationPort);
        BinaryPrimitives.WriteUInt32BigEndian(p.Slice(24), (uint)udpLength << 16);
        WriteLispHeader(p.Slice(28), instanceId, nonce);
        return start;
    }

    /// <summary>IPv6 outer header with a zero UDP checksum (RFC 6935/6936 tunnel rule), addresses as 16 bytes.</summary>
    public static int WriteV6ZeroChecksum(Span<byte> buffer, int innerOffset, int innerLength, ReadOnlySpan<byte> source,
        ReadOnlySpan<byte> destination, ushort sourcePort, uint instanceId, uint nonce, byte hopLimit = 64,
        ushort destinationPort = DataHeader.Port)
    {
        int start = innerOffset - Encapsulation.Ipv6Overhead;
        if (start < 0 || (uint)(innerOffset + innerLength) > (uint)buffer.Length || source.Length != 16 || destination.Length != 16) return -1;
        var p = buffer.Slice(start, Encapsulation.Ipv6Overhead);
        int udpLength = 16 + innerLength;
        BinaryPrimitives.WriteUInt32BigEndian(p, 0x6000_0000u);
        BinaryPrimitives.WriteUInt32BigEndian(p.Slice(4), ((uint)udpLength << 16) | (17u << 8) | hopLimit);
        source.CopyTo(p.Slice(8));
        destination.CopyTo(p.Slice(24));
        BinaryPrimitives.WriteUInt32BigEndian(p.Slice(40), ((uint)sourcePort << 16) | destinationPort);
        BinaryPrimitives.WriteUInt32BigEndian(p.Slice(44), (uint)udpLength << 16);
        WriteLispHeader(p.Slice(48), instanceId, nonce);
        return start;
    }

    /// <summary>
    /// The 8-byte LISP header alone (N and I bits, 24-bit nonce, instance-id, LSBs 0), as two 32-bit words: what
    /// <c>DataHeader.ForInstance(iid, nonce).Write</c> produces. Used on its own when the kernel adds IP + UDP.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void WriteLispHeader(Span<byte> destination, uint instanceId, uint nonce)
    {
        BinaryPrimitives.WriteUInt32BigEndian(destination, 0x8800_0000u | (nonce & 0xffffff));
        BinaryPrimitives.WriteUInt32BigEndian(destination.Slice(4), (instanceId & 0xffffff) << 8);
    }
}
