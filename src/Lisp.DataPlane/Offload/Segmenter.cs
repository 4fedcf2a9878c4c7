using System.Buffers.Binary;

namespace Lisp.DataPlane.Offload;

/// <summary>Why <see cref="Segmenter.Segment"/> (or a helper) produced no segments. Values are negative.</summary>
public enum SegmentError
{
    /// <summary>The packet does not parse (lengths out of range, wrong IP version for the gso type, bad csum offsets).</summary>
    Malformed = -1,
    /// <summary>Parses but is not handled: IPv6 extension headers, UFO (gso UDP), unknown gso type, IPv6 jumbograms.</summary>
    Unsupported = -2,
    /// <summary>More segments than <c>lengths</c> has room for.</summary>
    TooManySegments = -3,
    /// <summary><c>output</c> cannot hold all segments at their stride.</summary>
    OutputTooSmall = -4,
    /// <summary>mss &lt;= 0 or prefix &lt; 0.</summary>
    InvalidArgument = -5,
}

/// <summary>
/// Software TSO/USO: splits a GSO super-packet read from a vnet-header TUN into wire-sized segments, the way the
/// kernel's GSO would, and completes partial (NEEDS_CSUM) checksums. Pure byte work on spans, no allocation.
/// </summary>
/// <remarks>
/// Segmentation rules (gso_type TCPV4 / TCPV6, ECN bit allowed):
/// <list type="bullet">
/// <item>each segment gets a copy of the IP header (IPv4 options are copied as they are) and the TCP header with options;</item>
/// <item>IPv4: total length per segment, ID = first ID + k (mod 2^16), header checksum recomputed;
///   IPv6: payload length per segment (no extension headers: next header must be TCP);</item>
/// <item>TCP seq = first seq + k * mss; FIN and PSH only on the last segment; CWR only on the first;</item>
/// <item>the TCP checksum is computed in full per segment (the field of the super-packet, partial or not, is ignored).</item>
/// </list>
/// gso_type UDP_L4 (USO): each segment gets the IP + UDP header; UDP length per segment, IPv4 ID + k and header
/// checksum as above, full UDP checksum per segment (a computed 0 is sent as 0xffff, RFC 768).
/// gso_type NONE: one segment, a copy of the packet, its checksum completed when NEEDS_CSUM is set.
/// The header length is computed from the packet, never taken from <see cref="VirtioNetHeader.HeaderLength"/>.
/// Packet length is the IPv4 total length / 40 + IPv6 payload length (must fit in the span; trailing bytes ignored).
/// Garbage never throws: every offset is checked and an error returned.
/// </remarks>
public static class Segmenter
{
    private const byte ProtoTcp = 6;
    private const byte ProtoUdp = 17;
    private const byte TcpFin = 0x01;
    private const byte TcpPsh = 0x08;
    private const byte TcpCwr = 0x80;

    /// <summary>
    /// Completes the checksum of a non-GSO packet read with NEEDS_CSUM: the field at csum_start+csum_offset holds the
    /// pseudo-header sum; sum from csum_start to the end of the span and store the complement there (0 stored as
    /// 0xffff, as Linux's skb_checksum_help does; equivalent for TCP, required for UDP).
    /// True without touching the packet when NEEDS_CSUM is not set; false on offsets outside the packet.
    /// </summary>
    public static bool TryCompleteChecksum(Span<byte> packet, in VirtioNetHeader h)
    {
        if (!h.NeedsChecksum) return true;
        int start = h.CsumStart;
        int field = start + h.CsumOffset;
        if (start > packet.Length || field + 2 > packet.Length) return false;
        ushort checksum = InetChecksum.Finish(InetChecksum.Sum(packet.Slice(start)));
        if (checksum == 0) checksum = 0xffff;
        BinaryPrimitives.WriteUInt16BigEndian(packet.Slice(field), checksum);
        return true;
    }

    /// <summary>
    /// IP header + TCP/UDP header length of a GSO super-packet (what each segment repeats), or a negative
    /// <see cref="SegmentError"/>. For gso NONE it is 0: the single segment is the whole packet
    /// (output must then hold prefix + packet length).
    /// Segment k of <see cref="Segment"/> starts at k * (prefix + HeaderLength + mss) + prefix.
    /// </summary>
    public static int HeaderLength(ReadOnlySpan<byte> packet, in VirtioNetHeader h)
    {
        if (h.GsoKind == VirtioNetHeader.GsoNone) return 0;
        int r = Parse(packet, h, out _, out int ipHeader, out int l4Header, out _, out _);
        return r < 0 ? r : ipHeader + l4Header;
    }

    /// <summary>How many segments <see cref="Segment"/> will produce with this mss, or a negative <see cref="SegmentError"/>.</summary>
    public static int SegmentCount(ReadOnlySpan<byte> packet, in VirtioNetHeader h, int mss)
    {
        if (mss <= 0) return (int)SegmentError.InvalidArgument;
        if (h.GsoKind == VirtioNetHeader.GsoNone) return 1;
        int r = Parse(packet, h, out _, out int ipHeader, out int l4Header, out int ipLength, out _);
        if (r < 0) return r;
        int payload = ipLength - ipHeader - l4Header;
        return payload == 0 ? 1 : (int)(((long)payload + mss - 1) / mss);
    }

    /// <summary>
    /// Splits <paramref name="superPacket"/> (an IPv4/IPv6 packet, no vnet header) into segments of at most
    /// <paramref name="mss"/> payload bytes. Segment k is written at output[k * stride + prefix ..] with
    /// stride = prefix + HeaderLength + mss, leaving <paramref name="prefix"/> bytes free in front of each (e.g. for the
    /// LISP header, so full segments lie back to back as a UDP_SEGMENT send wants). lengths[k] = segment k's length
    /// without the prefix. Returns the number of segments or a negative <see cref="SegmentError"/>.
    /// </summary>
    public static int Segment(ReadOnlySpan<byte> superPacket, in VirtioNetHeader h, int mss, Span<byte> output, int prefix, Span<int> lengths)
    {
        if (mss <= 0 || prefix < 0) return (int)SegmentError.InvalidArgument;
        if (h.GsoKind == VirtioNetHeader.GsoNone) return Single(superPacket, h, output, prefix, lengths);
        return Split(superPacket, h, mss, output, prefix, lengths, copyPayload: true);
    }

    /// <summary>
    /// <see cref="Segment"/> without copying the payload: only each segment's headers are written, at
    /// output[k * (prefix + HeaderLength) + prefix ..]; segment k's payload is <paramref name="superPacket"/>[HeaderLength
    /// + k * mss ..] of lengths[k] - HeaderLength bytes, where it lies, and its checksum is computed over the headers
    /// written and that payload. Headers then payload, segment by segment, is the segment (a gather list for sendmsg).
    /// GSO packets only: gso NONE is <see cref="SegmentError.Unsupported"/> here (use <see cref="Segment"/>).
    /// </summary>
    public static int SegmentHeaders(ReadOnlySpan<byte> superPacket, in VirtioNetHeader h, int mss, Span<byte> output, int prefix, Span<int> lengths)
    {
        if (mss <= 0 || prefix < 0) return (int)SegmentError.InvalidArgument;
        if (h.GsoKind == VirtioNetHeader.GsoNone) return (int)SegmentError.Unsupported;
        return Split(superPacket, h, mss, output, prefix, lengths, copyPayload: false);
    }

    private static int Split(ReadOnlySpan<byte> superPacket, in VirtioNetHeader h, int mss, Span<byte> output, int prefix, Span<int> lengths, bool copyPayload)
    {

        int r = Parse(superPacket, h, out bool v6, out int ipHeader, out int l4Header, out int ipLength, out byte protocol);
        if (r < 0) return r;
        int headers = ipHeader + l4Header;
        int payload = ipLength - headers;
        int count = payload == 0 ? 1 : (int)(((long)payload + mss - 1) / mss);
        if (count > lengths.Length) return (int)SegmentError.TooManySegments;
        long stride = (long)prefix + headers + (copyPayload ? mss : 0);
        int lastPayload = payload - (count - 1) * mss;
        if ((count - 1) * stride + prefix + headers + (copyPayload ? lastPayload : 0) > output.Length) return (int)SegmentError.OutputTooSmall;

        ReadOnlySpan<byte> headerBytes = superPacket.Slice(0, headers);
        ulong addresses = v6
            ? InetChecksum.Sum(superPacket.Slice(8, 32))
            : InetChecksum.Sum(superPacket.Slice(12, 8));
        ushort firstId = v6 ? (ushort)0 : BinaryPrimitives.ReadUInt16BigEndian(superPacket.Slice(4));
        bool tcp = protocol == ProtoTcp;
        uint firstSeq = tcp ? BinaryPrimitives.ReadUInt32BigEndian(superPacket.Slice(ipHeader + 4)) : 0;
        byte tcpFlags = tcp ? superPacket[ipHeader + 13] : (byte)0;

        for (int k = 0; k < count; k++)
        {
            int segmentPayload = k == count - 1 ? lastPayload : mss;
            int segmentLength = headers + segmentPayload;
            Span<byte> segment = output.Slice((int)(k * stride + prefix), copyPayload ? segmentLength : headers);
            headerBytes.CopyTo(segment);
            ReadOnlySpan<byte> payloadBytes = superPacket.Slice(headers + k * mss, segmentPayload);
            if (copyPayload) payloadBytes.CopyTo(segment.Slice(headers));

            if (v6)
            {
                BinaryPrimitives.WriteUInt16BigEndian(segment.Slice(4), (ushort)(segmentLength - 40));
            }
            else
            {
                BinaryPrimitives.WriteUInt16BigEndian(segment.Slice(2), (ushort)segmentLength);
                BinaryPrimitives.WriteUInt16BigEndian(segment.Slice(4), (ushort)(firstId + k));
                BinaryPrimitives.WriteUInt16BigEndian(segment.Slice(10), InetChecksum.Ipv4HeaderChecksum(segment.Slice(0, ipHeader)));
            }

            Span<byte> l4 = segment.Slice(ipHeader);
            int l4Length = segmentLength - ipHeader;
            int checksumField;
            if (tcp)
            {
                BinaryPrimitives.WriteUInt32BigEndian(l4.Slice(4), firstSeq + (uint)k * (uint)mss);
                byte flags = tcpFlags;
                if (k != count - 1) flags &= unchecked((byte)~(TcpFin | TcpPsh));
                if (k != 0) flags &= unchecked((byte)~TcpCwr);
                l4[13] = flags;
                checksumField = 16;
            }
            else
            {
                BinaryPrimitives.WriteUInt16BigEndian(l4.Slice(4), (ushort)l4Length);
                checksumField = 6;
            }
            l4[checksumField] = 0;
            l4[checksumField + 1] = 0;
            // Uncopied, the payload is summed where it lies: it starts at an even offset of the transport header (TCP and
            // UDP header lengths are multiples of 4), so the two sums add up to the sum over the whole segment.
            ulong sum = InetChecksum.Sum(l4, addresses + protocol + ((uint)l4Length >> 16) + ((uint)l4Length & 0xffff));
            if (!copyPayload) sum = InetChecksum.Sum(payloadBytes, sum);
            ushort checksum = InetChecksum.Finish(sum);
            if (!tcp && checksum == 0) checksum = 0xffff;
            BinaryPrimitives.WriteUInt16BigEndian(l4.Slice(checksumField), checksum);
            lengths[k] = segmentLength;
        }
        return count;
    }

    private static int Single(ReadOnlySpan<byte> packet, in VirtioNetHeader h, Span<byte> output, int prefix, Span<int> lengths)
    {
        if (lengths.Length < 1) return (int)SegmentError.TooManySegments;
        if ((long)prefix + packet.Length > output.Length) return (int)SegmentError.OutputTooSmall;
        Span<byte> copy = output.Slice(prefix, packet.Length);
        packet.CopyTo(copy);
        if (!TryCompleteChecksum(copy, h)) return (int)SegmentError.Malformed;
        lengths[0] = packet.Length;
        return 1;
    }

    /// <summary>
    /// Parses the IP and transport header of a GSO packet and checks they agree with the gso type:
    /// TCPV4 = IPv4 + TCP, TCPV6 = IPv6 + TCP, UDP_L4 = IPv4 or IPv6 + UDP. Returns 0 or a negative SegmentError.
    /// </summary>
    private static int Parse(ReadOnlySpan<byte> p, in VirtioNetHeader h, out bool v6, out int ipHeader, out int l4Header, out int ipLength, out byte protocol)
    {
        v6 = false;
        ipHeader = l4Header = ipLength = 0;
        protocol = 0;
        byte kind = h.GsoKind;
        byte wanted;
        switch (kind)
        {
            case VirtioNetHeader.GsoTcpV4:
            case VirtioNetHeader.GsoTcpV6:
                wanted = ProtoTcp;
                break;
            case VirtioNetHeader.GsoUdpL4:
                wanted = ProtoUdp;
                break;
            default:
                return (int)SegmentError.Unsupported; // UFO needs IP fragmentation; unknown types
        }
        if (p.Length < 1) return (int)SegmentError.Malformed;
        int version = p[0] >> 4;
        if (version == 4)
        {
            if (kind == VirtioNetHeader.GsoTcpV6) return (int)SegmentError.Malformed;
            if (p.Length < 20) return (int)SegmentError.Malformed;
            ipHeader = (p[0] & 0x0f) * 4;
            ipLength = BinaryPrimitives.ReadUInt16BigEndian(p.Slice(2));
            if (ipHeader < 20 || ipLength < ipHeader || ipLength > p.Length) return (int)SegmentError.Malformed;
            if ((BinaryPrimitives.ReadUInt16BigEndian(p.Slice(6)) & 0x3fff) != 0) return (int)SegmentError.Malformed; // a fragment
            protocol = p[9];
        }
        else if (version == 6)
        {
            if (kind == VirtioNetHeader.GsoTcpV4) return (int)SegmentError.Malformed;
            if (p.Length < 40) return (int)SegmentError.Malformed;
            v6 = true;
            ipHeader = 40;
            int payloadLength = BinaryPrimitives.ReadUInt16BigEndian(p.Slice(4));
            if (payloadLength == 0) return (int)SegmentError.Unsupported; // jumbogram / BIG TCP
            ipLength = 40 + payloadLength;
            if (ipLength > p.Length) return (int)SegmentError.Malformed;
            protocol = p[6];
        }
        else
        {
            return (int)SegmentError.Malformed;
        }

        if (protocol != wanted)
        {
            // IPv6 extension headers are not walked; anything else is a mismatch with the gso type.
            return v6 && IsIpv6ExtensionHeader(protocol) ? (int)SegmentError.Unsupported : (int)SegmentError.Malformed;
        }
        if (protocol == ProtoTcp)
        {
            if (ipLength - ipHeader < 20) return (int)SegmentError.Malformed;
            l4Header = (p[ipHeader + 12] >> 4) * 4;
            if (l4Header < 20 || l4Header > ipLength - ipHeader) return (int)SegmentError.Malformed;
        }
        else
        {
            l4Header = 8;
            if (ipLength - ipHeader < 8) return (int)SegmentError.Malformed;
        }
        return 0;
    }

    private static bool IsIpv6ExtensionHeader(byte nextHeader)
        => nextHeader is 0 or 43 or 44 or 50 or 51 or 60 or 135 or 139 or 140 or 253 or 254;
}
