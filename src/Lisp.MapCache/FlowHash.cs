using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace Lisp.MapCache;

/// <summary>
/// Per-flow hash of an inner packet's 5-tuple (addresses, protocol, ports for TCP/UDP/SCTP when not a
/// later fragment). The same flow always gives the same value, so it always picks the same RLOC and the
/// same outer UDP source port. Hashed with <see cref="Crc32C.Lookup64"/>: the inlined instruction whenever the
/// CPU has it (no flag read; same value as the software path).
/// </summary>
public static class FlowHash
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint V4(uint source, uint destination, byte protocol, ushort sourcePort, ushort destinationPort)
    {
        uint h = Crc32C.Lookup64(Crc32C.Seed, ((ulong)source << 32) | destination);
        h = Crc32C.Lookup64(h, ((ulong)protocol << 32) | ((uint)sourcePort << 16) | destinationPort);
        return Finish(h);
    }

    /// <summary>Hash of an IPv4 or IPv6 packet starting at <paramref name="packet"/>[0]; 0 for anything unparsable.</summary>
    public static uint FromPacket(ReadOnlySpan<byte> packet)
    {
        if (packet.Length < 20) return 0;
        int version = packet[0] >> 4;
        if (version == 4)
        {
            int ihl = (packet[0] & 0xf) * 4;
            byte proto = packet[9];
            uint ports = 0;
            bool firstFragment = (BinaryPrimitives.ReadUInt16BigEndian(packet.Slice(6)) & 0x1fff) == 0;
            if (firstFragment && proto is 6 or 17 or 132 && packet.Length >= ihl + 4) ports = BinaryPrimitives.ReadUInt32BigEndian(packet.Slice(ihl));
            uint h = Crc32C.Lookup64(Crc32C.Seed, BinaryPrimitives.ReadUInt64BigEndian(packet.Slice(12)));
            return Finish(Crc32C.Lookup64(h, ((ulong)proto << 32) | ports));
        }
        if (version == 6 && packet.Length >= 40)
        {
            byte nh = packet[6];
            uint ports = nh is 6 or 17 or 132 && packet.Length >= 44 ? BinaryPrimitives.ReadUInt32BigEndian(packet.Slice(40)) : 0;
            uint h = Crc32C.Seed;
            for (int i = 8; i < 40; i += 8) h = Crc32C.Lookup64(h, BinaryPrimitives.ReadUInt64BigEndian(packet.Slice(i)));
            return Finish(Crc32C.Lookup64(h, ((ulong)nh << 32) | ports));
        }
        return 0;
    }

    /// <summary>Outer UDP source port from the flow hash (49152..65535, RFC 9300 section 5.3 entropy).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort SourcePort(uint flowHash) => (ushort)(0xC000 | (flowHash >> 18));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Finish(uint h)
    {
        // CRC is linear; a multiply-xorshift round spreads it into the high bits the ring pick uses.
        h ^= h >> 16;
        h *= 0x7feb352d;
        h ^= h >> 15;
        return h;
    }
}
