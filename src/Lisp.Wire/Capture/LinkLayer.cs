using System.Buffers.Binary;
using System.Net;

namespace Lisp.Wire;

/// <summary>What a frame held, as far as the UDP datagrams of a capture are concerned.</summary>
public enum FrameKind
{
    /// <summary>An IPv4 or IPv6 UDP datagram (possibly cut short by the capture's snap length).</summary>
    Udp,
    /// <summary>The link layer carries something other than IPv4/IPv6 (ARP, LLC, an unknown address family).</summary>
    NotIp,
    /// <summary>IP, but not UDP (TCP, ICMP ...).</summary>
    NotUdp,
    /// <summary>An IPv4 fragment (first or later) or an IPv6 packet with a Fragment header: not reassembled.</summary>
    Fragment,
    /// <summary>The link or IP header is cut short or inconsistent (bad IHL, version mismatch ...).</summary>
    Malformed,
    /// <summary>The interface's link type is not one this reader knows.</summary>
    UnsupportedLinkType,
}

/// <summary>A UDP datagram's addressing and payload view inside a frame (no copy yet).</summary>
public readonly ref struct UdpView
{
    public UdpView(IPAddress source, IPAddress destination, ushort sourcePort, ushort destinationPort, ReadOnlySpan<byte> payload, bool truncated)
    {
        Source = source;
        Destination = destination;
        SourcePort = sourcePort;
        DestinationPort = destinationPort;
        Payload = payload;
        Truncated = truncated;
    }

    public IPAddress Source { get; }
    public IPAddress Destination { get; }
    public ushort SourcePort { get; }
    public ushort DestinationPort { get; }
    public ReadOnlySpan<byte> Payload { get; }
    /// <summary>The IP/UDP lengths claim more bytes than the frame holds (snap length or a damaged file).</summary>
    public bool Truncated { get; }
}

/// <summary>
/// Link-layer and IP/UDP parsing of captured frames. Every method takes untrusted bytes, checks each length
/// before it reads, and answers with a <see cref="FrameKind"/>; none throws.
/// </summary>
public static class LinkLayer
{
    /// <summary>The link types <see cref="TryGetIp"/> understands, with their tcpdump.org names, for messages.</summary>
    public const string SupportedText =
        "0 NULL (BSD loopback), 1 EN10MB (Ethernet, 802.1Q/802.1ad tags), 12 and 101 RAW (raw IP), 108 LOOP, " +
        "113 LINUX_SLL, 228 IPV4, 229 IPV6, 276 LINUX_SLL2";

    public static bool IsSupported(uint linkType) => linkType is 0 or 1 or 12 or 101 or 108 or 113 or 228 or 229 or 276;

    /// <summary>The tcpdump.org name of a link type, or null when this reader does not know it.</summary>
    public static string? Name(uint linkType) => linkType switch
    {
        0 => "NULL",
        1 => "EN10MB",
        12 or 101 => "RAW",
        108 => "LOOP",
        113 => "LINUX_SLL",
        228 => "IPV4",
        229 => "IPV6",
        276 => "LINUX_SLL2",
        _ => null,
    };

    /// <summary>
    /// Finds the IP packet inside a frame of link type <paramref name="linkType"/>. Returns
    /// <see cref="FrameKind.Udp"/> (meaning "IP found": the caller goes on with <see cref="ParseIp"/>), NotIp,
    /// Malformed or UnsupportedLinkType.
    /// </summary>
    public static FrameKind TryGetIp(uint linkType, ReadOnlySpan<byte> frame, out ReadOnlySpan<byte> ip)
    {
        ip = default;
        int ethertype;
        switch (linkType)
        {
            case 0: // NULL: 4-byte address family in the capturing host's byte order (either order accepted).
            case 108: // LOOP: the same, always network byte order (OpenBSD).
            {
                if (frame.Length < 4) return FrameKind.Malformed;
                uint be = BinaryPrimitives.ReadUInt32BigEndian(frame);
                uint le = BinaryPrimitives.ReadUInt32LittleEndian(frame);
                uint af = linkType == 108 || be < 256 ? be : le;
                ethertype = af switch
                {
                    2 => 0x0800, // AF_INET everywhere
                    10 or 24 or 28 or 30 => 0x86dd, // AF_INET6: Linux, NetBSD/OpenBSD, FreeBSD, Darwin
                    _ => -1,
                };
                if (ethertype < 0) return FrameKind.NotIp;
                ip = frame.Slice(4);
                break;
            }
            case 1: // Ethernet II, with any number of 802.1Q / 802.1ad / QinQ tags.
            {
                if (frame.Length < 14) return FrameKind.Malformed;
                ethertype = frame[12] << 8 | frame[13];
                int off = 14;
                while (ethertype is 0x8100 or 0x88a8 or 0x9100)
                {
                    if (frame.Length < off + 4) return FrameKind.Malformed;
                    ethertype = frame[off + 2] << 8 | frame[off + 3];
                    off += 4;
                }
                ip = frame.Slice(off);
                break;
            }
            case 12 or 101: // raw IP: the version nibble tells IPv4 from IPv6.
            case 228: // raw IPv4
            case 229: // raw IPv6
            {
                if (frame.Length < 1) return FrameKind.Malformed;
                int v = frame[0] >> 4;
                if (linkType == 228 && v != 4 || linkType == 229 && v != 6) return FrameKind.Malformed;
                ethertype = v == 4 ? 0x0800 : v == 6 ? 0x86dd : -1;
                if (ethertype < 0) return FrameKind.NotIp;
                ip = frame;
                break;
            }
            case 113: // Linux cooked v1: packet type, ARPHRD, address length, 8-byte address, protocol (16 bytes).
                if (frame.Length < 16) return FrameKind.Malformed;
                ethertype = frame[14] << 8 | frame[15];
                ip = frame.Slice(16);
                break;
            case 276: // Linux cooked v2: protocol, reserved, ifindex, ARPHRD, packet type, address length, address (20 bytes).
                if (frame.Length < 20) return FrameKind.Malformed;
                ethertype = frame[0] << 8 | frame[1];
                ip = frame.Slice(20);
                break;
            default:
                return FrameKind.UnsupportedLinkType;
        }
        if (ethertype is not (0x0800 or 0x86dd))
        {
            ip = default;
            return FrameKind.NotIp;
        }
        if (ip.Length < 1 || ip[0] >> 4 != (ethertype == 0x0800 ? 4 : 6)) return FrameKind.Malformed;
        return FrameKind.Udp;
    }

    /// <summary>
    /// Parses an IPv4 or IPv6 packet down to its UDP datagram. IPv4 fragments (MF set or a fragment offset) and
    /// IPv6 packets with a Fragment header are <see cref="FrameKind.Fragment"/>: this reader does not reassemble.
    /// IPv6 extension headers (hop-by-hop, routing, destination options) are walked.
    /// </summary>
    public static FrameKind ParseIp(ReadOnlySpan<byte> ip, out UdpView udp)
    {
        udp = default;
        ReadOnlySpan<byte> l4;
        IPAddress src, dst;
        bool cut;
        if (ip.Length >= 1 && ip[0] >> 4 == 4)
        {
            if (ip.Length < 20) return FrameKind.Malformed;
            int ihl = (ip[0] & 0x0f) * 4;
            int total = ip[2] << 8 | ip[3];
            if (ihl < 20 || ihl > ip.Length || total < ihl) return FrameKind.Malformed;
            int frag = ip[6] << 8 | ip[7];
            if ((frag & 0x3fff) != 0) return FrameKind.Fragment; // MF or a non-zero offset
            if (ip[9] != 17) return FrameKind.NotUdp;
            cut = total > ip.Length;
            src = new IPAddress(ip.Slice(12, 4));
            dst = new IPAddress(ip.Slice(16, 4));
            l4 = ip.Slice(ihl, Math.Min(total, ip.Length) - ihl);
        }
        else if (ip.Length >= 1 && ip[0] >> 4 == 6)
        {
            if (ip.Length < 40) return FrameKind.Malformed;
            int plen = ip[4] << 8 | ip[5];
            cut = 40 + plen > ip.Length;
            var rest = ip.Slice(40, Math.Min(plen, ip.Length - 40));
            int next = ip[6];
            for (int hops = 0; ; hops++)
            {
                if (next == 17) break;
                if (next == 44) return FrameKind.Fragment;
                if (next is not (0 or 43 or 60) || hops >= 8) return FrameKind.NotUdp;
                if (rest.Length < 8) return cut ? FrameKind.NotUdp : FrameKind.Malformed;
                int len = (rest[1] + 1) * 8;
                if (len > rest.Length) return cut ? FrameKind.NotUdp : FrameKind.Malformed;
                next = rest[0];
                rest = rest.Slice(len);
            }
            src = new IPAddress(ip.Slice(8, 16));
            dst = new IPAddress(ip.Slice(24, 16));
            l4 = rest;
        }
        else
        {
            return FrameKind.NotIp;
        }
        if (l4.Length < 8) return FrameKind.Malformed;
        int ulen = l4[4] << 8 | l4[5];
        if (ulen < 8 || ulen > l4.Length && !cut) return FrameKind.Malformed;
        cut |= ulen > l4.Length;
        udp = new UdpView(src, dst, (ushort)(l4[0] << 8 | l4[1]), (ushort)(l4[2] << 8 | l4[3]),
            l4.Slice(8, Math.Min(ulen, l4.Length) - 8), cut);
        return FrameKind.Udp;
    }
}
