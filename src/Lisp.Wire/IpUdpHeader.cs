using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace Lisp.Wire;

/// <summary>Internet checksum (RFC 1071) helpers.</summary>
public static class InternetChecksum
{
    public static uint Add(uint sum, ReadOnlySpan<byte> data)
    {
        int i = 0;
        for (; i + 1 < data.Length; i += 2) sum += (uint)(data[i] << 8 | data[i + 1]);
        if (i < data.Length) sum += (uint)(data[i] << 8);
        return sum;
    }

    public static ushort Finish(uint sum)
    {
        while ((sum >> 16) != 0) sum = (sum & 0xffff) + (sum >> 16);
        return (ushort)~sum;
    }

    /// <summary>Checksum of <paramref name="data"/>, plus <paramref name="pseudoHeaderSum"/> (an <see cref="Add"/> of a pseudo-header) when given.</summary>
    public static ushort Compute(ReadOnlySpan<byte> data, uint pseudoHeaderSum = 0) => Finish(Add(pseudoHeaderSum, data));

    /// <summary>UDP checksum over the pseudo-header and the UDP header + payload (checksum field as zero).</summary>
    public static ushort Udp(IPAddress source, IPAddress destination, ReadOnlySpan<byte> udpHeaderAndPayload) =>
        Udp(source, destination, udpHeaderAndPayload.Slice(0, 8), udpHeaderAndPayload.Slice(8));

    /// <summary>
    /// The same checksum with the 8-byte UDP header and the payload in separate spans (the header's even length
    /// keeps the payload's 16-bit words aligned, so the sum equals the one over both in a row).
    /// </summary>
    public static ushort Udp(IPAddress source, IPAddress destination, ReadOnlySpan<byte> udpHeader, ReadOnlySpan<byte> payload)
    {
        Span<byte> a = stackalloc byte[16];
        uint sum = 0;
        source.TryWriteBytes(a, out int n);
        sum = Add(sum, a.Slice(0, n));
        destination.TryWriteBytes(a, out n);
        sum = Add(sum, a.Slice(0, n));
        sum += 17;
        sum += (uint)(udpHeader.Length + payload.Length);
        sum = Add(Add(sum, udpHeader), payload);
        ushort c = Finish(sum);
        return c == 0 ? (ushort)0xffff : c;
    }
}

/// <summary>
/// The IPv4 or IPv6 header and UDP header that an Encapsulated Control Message carries in front of its inner
/// message (RFC 9301 5.8). Fields are kept as received so decode then encode returns the same bytes; lengths
/// and the IPv4 header checksum are recomputed on write. <see cref="UdpChecksum"/> null means "compute it".
/// </summary>
public sealed record IpUdpHeader(IPAddress Source, IPAddress Destination, ushort SourcePort, ushort DestinationPort,
    byte TtlOrHopLimit = 64, ushort? UdpChecksum = null, byte Tos = 0, ushort Identification = 0,
    ushort FlagsFragment = 0, uint FlowLabel = 0)
{
    public bool IsV4 => Source.AddressFamily == AddressFamily.InterNetwork;
    public int Length => (IsV4 ? 20 : 40) + 8;

    /// <summary>
    /// IPv4: |Ver|IHL|TOS|Total Length|Identification|Flags+Fragment|TTL|Protocol=17|Checksum|Source|Destination|
    /// IPv6: |Ver|Traffic Class|Flow Label|Payload Length|Next Header=17|Hop Limit|Source (128)|Destination (128)|
    /// UDP:  |Source Port|Destination Port|Length|Checksum|
    /// </summary>
    public void Write(Span<byte> dest, ReadOnlySpan<byte> payload)
    {
        int udpLength = 8 + payload.Length;
        int ip;
        if (IsV4)
        {
            dest[0] = 0x45;
            dest[1] = Tos;
            BinaryPrimitives.WriteUInt16BigEndian(dest.Slice(2), (ushort)(20 + udpLength));
            BinaryPrimitives.WriteUInt16BigEndian(dest.Slice(4), Identification);
            BinaryPrimitives.WriteUInt16BigEndian(dest.Slice(6), FlagsFragment);
            dest[8] = TtlOrHopLimit;
            dest[9] = 17;
            dest[10] = 0;
            dest[11] = 0;
            Source.TryWriteBytes(dest.Slice(12, 4), out _);
            Destination.TryWriteBytes(dest.Slice(16, 4), out _);
            BinaryPrimitives.WriteUInt16BigEndian(dest.Slice(10), InternetChecksum.Compute(dest.Slice(0, 20)));
            ip = 20;
        }
        else
        {
            BinaryPrimitives.WriteUInt32BigEndian(dest, 0x6000_0000u | ((uint)Tos << 20) | (FlowLabel & 0xfffff));
            BinaryPrimitives.WriteUInt16BigEndian(dest.Slice(4), (ushort)udpLength);
            dest[6] = 17;
            dest[7] = TtlOrHopLimit;
            Source.TryWriteBytes(dest.Slice(8, 16), out _);
            Destination.TryWriteBytes(dest.Slice(24, 16), out _);
            ip = 40;
        }
        var udp = dest.Slice(ip);
        BinaryPrimitives.WriteUInt16BigEndian(udp, SourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(udp.Slice(2), DestinationPort);
        BinaryPrimitives.WriteUInt16BigEndian(udp.Slice(4), (ushort)udpLength);
        BinaryPrimitives.WriteUInt16BigEndian(udp.Slice(6), 0);
        // The caller copies the payload after the header, so it is summed from its own span.
        ushort checksum = UdpChecksum ?? InternetChecksum.Udp(Source, Destination, udp.Slice(0, 8), payload);
        BinaryPrimitives.WriteUInt16BigEndian(udp.Slice(6), checksum);
    }

    /// <summary>Reads an IPv4/IPv6 + UDP header; the payload length is taken from the UDP length field.</summary>
    public static IpUdpHeader? Read(ref SpanReader r, out int payloadLength)
    {
        payloadLength = 0;
        if (r.Ok && r.Remaining == 0)
        {
            r.Fail(WireError.Truncated, "inner IP header missing (0 bytes left)");
            return null;
        }
        int version = r.Peek(0) >> 4;
        IPAddress src, dst;
        byte ttl, tos = 0;
        ushort id = 0, frag = 0;
        uint flow = 0;
        int ipPayload;
        if (version == 4)
        {
            byte vihl = r.U8("inner IPv4 version/IHL");
            tos = r.U8("inner IPv4 TOS");
            ushort total = r.U16("inner IPv4 total length");
            id = r.U16("inner IPv4 identification");
            frag = r.U16("inner IPv4 flags/fragment");
            ttl = r.U8("inner IPv4 TTL");
            byte proto = r.U8("inner IPv4 protocol");
            r.U16("inner IPv4 checksum");
            var s = r.Bytes(4, "inner IPv4 source");
            var d = r.Bytes(4, "inner IPv4 destination");
            if (!r.Ok) return null;
            if ((vihl & 0x0f) != 5)
            {
                r.Fail(WireError.BadValue, $"inner IPv4 header with options (IHL {vihl & 0x0f}) is not accepted");
                return null;
            }
            if (proto != 17)
            {
                r.Fail(WireError.BadValue, $"inner IPv4 protocol {proto}, expected UDP (17)");
                return null;
            }
            src = new IPAddress(s);
            dst = new IPAddress(d);
            ipPayload = total - 20;
        }
        else if (version == 6)
        {
            uint w0 = r.U32("inner IPv6 version/class/flow");
            ushort plen = r.U16("inner IPv6 payload length");
            byte next = r.U8("inner IPv6 next header");
            ttl = r.U8("inner IPv6 hop limit");
            var s = r.Bytes(16, "inner IPv6 source");
            var d = r.Bytes(16, "inner IPv6 destination");
            if (!r.Ok) return null;
            if (next != 17)
            {
                r.Fail(WireError.BadValue, $"inner IPv6 next header {next}, expected UDP (17)");
                return null;
            }
            tos = (byte)(w0 >> 20);
            flow = w0 & 0xfffff;
            src = new IPAddress(s);
            dst = new IPAddress(d);
            ipPayload = plen;
        }
        else
        {
            r.Fail(WireError.BadValue, $"inner IP version {version}, expected 4 or 6");
            return null;
        }
        ushort sport = r.U16("inner UDP source port");
        ushort dport = r.U16("inner UDP destination port");
        ushort ulen = r.U16("inner UDP length");
        ushort csum = r.U16("inner UDP checksum");
        if (!r.Ok) return null;
        if (ulen < 8 || ulen != ipPayload)
        {
            r.Fail(WireError.BadLength, $"inner UDP length {ulen} does not match the IP payload length {ipPayload}");
            return null;
        }
        payloadLength = ulen - 8;
        return new IpUdpHeader(src, dst, sport, dport, ttl, csum, tos, id, frag, flow);
    }
}
