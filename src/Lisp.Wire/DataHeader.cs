using System.Buffers.Binary;
using System.Net;

namespace Lisp.Wire;

/// <summary>
/// LISP data-plane header (RFC 9300 section 5.1), after the outer IP + UDP header (destination port 4341).
/// <code>
/// |N|L|E|V|I|R|K|K|            Nonce/Map-Version                  |
/// |                 Instance ID/Locator-Status-Bits               |
/// </code>
/// N = nonce present, L = locator-status-bits valid, E = echo-nonce request, V = map-version present,
/// I = instance-id present (then 24 bits IID + 8 bits LSBs). The 3 low flag bits are kept as received.
/// </summary>
public readonly record struct DataHeader(bool NoncePresent, bool LsbValid, bool EchoNonce, bool MapVersionPresent,
    bool InstanceIdPresent, uint Nonce, ushort SourceMapVersion, ushort DestMapVersion, uint InstanceId, uint Lsbs,
    byte LowFlags = 0)
{
    public const int Length = 8;
    public const ushort Port = 4341;
    public const ushort ControlPort = 4342;
    /// <summary>Instance-id LISP-Decent push mode uses for Map-Registers replicated to group members (RFC 9962).</summary>
    public const uint DecentControlInstanceId = 0xffffff;

    public static DataHeader ForInstance(uint instanceId, uint nonce) =>
        new(true, false, false, false, true, nonce & 0xffffff, 0, 0, instanceId & 0xffffff, 0);

    public void Write(Span<byte> dest)
    {
        dest[0] = (byte)((NoncePresent ? 0x80 : 0) | (LsbValid ? 0x40 : 0) | (EchoNonce ? 0x20 : 0) |
                         (MapVersionPresent ? 0x10 : 0) | (InstanceIdPresent ? 0x08 : 0) | (LowFlags & 7));
        uint mid = MapVersionPresent ? ((uint)(SourceMapVersion & 0xfff) << 12) | (uint)(DestMapVersion & 0xfff) : Nonce & 0xffffff;
        dest[1] = (byte)(mid >> 16);
        dest[2] = (byte)(mid >> 8);
        dest[3] = (byte)mid;
        uint word1 = InstanceIdPresent ? ((InstanceId & 0xffffff) << 8) | (Lsbs & 0xff) : Lsbs;
        BinaryPrimitives.WriteUInt32BigEndian(dest.Slice(4), word1);
    }

    public static WireStatus TryRead(ReadOnlySpan<byte> src, out DataHeader header)
    {
        header = default;
        if (src.Length < Length)
        {
            return new WireStatus(WireError.Truncated, $"LISP data header needs 8 bytes, got {src.Length}", 0);
        }
        byte f = src[0];
        bool n = (f & 0x80) != 0, v = (f & 0x10) != 0, i = (f & 0x08) != 0;
        if (n && v)
        {
            return new WireStatus(WireError.BadValue, "N and V bits both set (RFC 9300 forbids it)", 0);
        }
        uint mid = (uint)(src[1] << 16 | src[2] << 8 | src[3]);
        uint w1 = BinaryPrimitives.ReadUInt32BigEndian(src.Slice(4));
        header = new DataHeader(n, (f & 0x40) != 0, (f & 0x20) != 0, v, i,
            n ? mid : 0, v ? (ushort)(mid >> 12) : (ushort)0, v ? (ushort)(mid & 0xfff) : (ushort)0,
            i ? w1 >> 8 : 0, i ? w1 & 0xff : w1, (byte)(f & 7));
        return WireStatus.Ok;
    }
}

/// <summary>
/// Writes outer IPv4/IPv6 + UDP + LISP headers into the headroom in front of an inner packet, so
/// encapsulation never copies the payload. Headroom needed: 36 bytes (IPv4) or 56 bytes (IPv6).
/// </summary>
public static class Encapsulation
{
    public const int Ipv4Overhead = 20 + 8 + DataHeader.Length;
    public const int Ipv6Overhead = 40 + 8 + DataHeader.Length;

    /// <summary>
    /// <paramref name="buffer"/> holds the inner packet at [<paramref name="innerOffset"/>, +innerLength);
    /// writes the headers just before it and returns the offset where the outer packet starts, or -1 if
    /// the headroom is too small. IPv4: header checksum computed, UDP checksum 0 (RFC 9300 allows it).
    /// IPv6: UDP checksum computed over the whole datagram unless <paramref name="zeroIpv6UdpChecksum"/>
    /// (RFC 6935/6936 tunnel rule).
    /// </summary>
    public static int WriteHeaders(Span<byte> buffer, int innerOffset, int innerLength, IPAddress source, IPAddress destination,
        ushort sourcePort, in DataHeader lisp, byte ttl = 64, bool zeroIpv6UdpChecksum = false)
    {
        bool v4 = source.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork;
        int overhead = v4 ? Ipv4Overhead : Ipv6Overhead;
        int start = innerOffset - overhead;
        if (start < 0 || innerOffset + innerLength > buffer.Length) return -1;
        int udpLength = 8 + DataHeader.Length + innerLength;
        var pkt = buffer.Slice(start, overhead + innerLength);
        int ipLen = v4 ? 20 : 40;
        if (v4)
        {
            pkt[0] = 0x45;
            pkt[1] = 0;
            BinaryPrimitives.WriteUInt16BigEndian(pkt.Slice(2), (ushort)(20 + udpLength));
            BinaryPrimitives.WriteUInt32BigEndian(pkt.Slice(4), 0x0000_4000); // id 0, DF set
            pkt[8] = ttl;
            pkt[9] = 17;
            pkt[10] = 0;
            pkt[11] = 0;
            source.TryWriteBytes(pkt.Slice(12, 4), out _);
            destination.TryWriteBytes(pkt.Slice(16, 4), out _);
            BinaryPrimitives.WriteUInt16BigEndian(pkt.Slice(10), InternetChecksum.Compute(pkt.Slice(0, 20)));
        }
        else
        {
            BinaryPrimitives.WriteUInt32BigEndian(pkt, 0x6000_0000);
            BinaryPrimitives.WriteUInt16BigEndian(pkt.Slice(4), (ushort)udpLength);
            pkt[6] = 17;
            pkt[7] = ttl;
            source.TryWriteBytes(pkt.Slice(8, 16), out _);
            destination.TryWriteBytes(pkt.Slice(24, 16), out _);
        }
        var udp = pkt.Slice(ipLen);
        BinaryPrimitives.WriteUInt16BigEndian(udp, sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(udp.Slice(2), DataHeader.Port);
        BinaryPrimitives.WriteUInt16BigEndian(udp.Slice(4), (ushort)udpLength);
        BinaryPrimitives.WriteUInt16BigEndian(udp.Slice(6), 0);
        lisp.Write(udp.Slice(8));
        if (!v4 && !zeroIpv6UdpChecksum)
        {
            BinaryPrimitives.WriteUInt16BigEndian(udp.Slice(6), InternetChecksum.Udp(source, destination, udp.Slice(0, udpLength)));
        }
        return start;
    }
}
