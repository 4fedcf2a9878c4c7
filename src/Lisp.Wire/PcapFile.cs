using System.Buffers.Binary;
using System.Net;

namespace Lisp.Wire;

/// <summary>
/// One UDP datagram found in a capture. <see cref="Truncated"/>: the capture holds fewer bytes than the IP/UDP
/// lengths claim (snap length or a damaged file); <see cref="Payload"/> is then the part that was captured, so a
/// decoder can say what is missing instead of the frame silently disappearing.
/// </summary>
public sealed record CapturedDatagram(int FrameNumber, IPAddress Source, IPAddress Destination, ushort SourcePort, ushort DestinationPort, byte[] Payload,
    bool Truncated = false);

/// <summary>
/// Reads UDP datagrams out of a classic libpcap file held in memory (no I/O here). Supports the link types
/// captures of LISP come in: Ethernet (1, with 802.1Q tags), BSD loopback (0), raw IP (101), Linux SLL (113).
/// Frames that are not IPv4/IPv6 UDP are skipped; a frame cut short by the capture is returned with what was
/// captured and marked <see cref="CapturedDatagram.Truncated"/>; a malformed file yields a status, not an exception.
/// </summary>
public static class PcapFile
{
    public static WireStatus TryReadUdp(ReadOnlySpan<byte> file, out List<CapturedDatagram> datagrams)
    {
        datagrams = [];
        if (file.Length < 24)
        {
            return new WireStatus(WireError.Truncated, "pcap global header needs 24 bytes", 0);
        }
        uint magic = BinaryPrimitives.ReadUInt32LittleEndian(file);
        bool le;
        if (magic is 0xa1b2c3d4 or 0xa1b23c4d) le = true;
        else if (magic is 0xd4c3b2a1 or 0x4d3cb2a1) le = false;
        else return new WireStatus(WireError.BadValue, $"not a pcap file (magic 0x{magic:x8}); pcapng is not supported", 0);
        uint linkType = U32(file.Slice(20), le) & 0xffff;
        int at = 24;
        int frame = 0;
        while (at < file.Length)
        {
            if (file.Length - at < 16)
            {
                return new WireStatus(WireError.Truncated, $"frame {frame + 1} record header cut short", at);
            }
            uint incl = U32(file.Slice(at + 8), le);
            at += 16;
            if (incl > file.Length - at)
            {
                return new WireStatus(WireError.Truncated, $"frame {frame + 1} claims {incl} bytes, {file.Length - at} left", at);
            }
            frame++;
            var data = file.Slice(at, (int)incl);
            at += (int)incl;
            var d = ParseFrame(data, linkType, frame);
            if (d is not null) datagrams.Add(d);
        }
        return WireStatus.Ok;
    }

    private static uint U32(ReadOnlySpan<byte> b, bool le) => le ? BinaryPrimitives.ReadUInt32LittleEndian(b) : BinaryPrimitives.ReadUInt32BigEndian(b);

    private static CapturedDatagram? ParseFrame(ReadOnlySpan<byte> f, uint linkType, int frame)
    {
        int ethertype;
        ReadOnlySpan<byte> ip;
        switch (linkType)
        {
            case 1:
                if (f.Length < 14) return null;
                ethertype = f[12] << 8 | f[13];
                int off = 14;
                while (ethertype is 0x8100 or 0x88a8 && f.Length >= off + 4)
                {
                    ethertype = f[off + 2] << 8 | f[off + 3];
                    off += 4;
                }
                ip = f.Slice(off);
                break;
            case 0:
                if (f.Length < 4) return null;
                ip = f.Slice(4);
                ethertype = ip.Length > 0 && ip[0] >> 4 == 6 ? 0x86dd : 0x0800;
                break;
            case 101:
                ip = f;
                ethertype = ip.Length > 0 && ip[0] >> 4 == 6 ? 0x86dd : 0x0800;
                break;
            case 113:
                if (f.Length < 16) return null;
                ethertype = f[14] << 8 | f[15];
                ip = f.Slice(16);
                break;
            default:
                return null;
        }
        IPAddress src, dst;
        ReadOnlySpan<byte> udp;
        bool cut;
        if (ethertype == 0x0800 && ip.Length >= 20 && ip[0] >> 4 == 4)
        {
            int ihl = (ip[0] & 0x0f) * 4;
            int total = ip[2] << 8 | ip[3];
            if (ip[9] != 17 || ihl < 20 || total < ihl || ihl > ip.Length) return null;
            cut = total > ip.Length;
            src = new IPAddress(ip.Slice(12, 4));
            dst = new IPAddress(ip.Slice(16, 4));
            udp = ip.Slice(ihl, Math.Min(total, ip.Length) - ihl);
        }
        else if (ethertype == 0x86dd && ip.Length >= 40 && ip[0] >> 4 == 6)
        {
            int plen = ip[4] << 8 | ip[5];
            if (ip[6] != 17) return null;
            cut = 40 + plen > ip.Length;
            src = new IPAddress(ip.Slice(8, 16));
            dst = new IPAddress(ip.Slice(24, 16));
            udp = ip.Slice(40, Math.Min(plen, ip.Length - 40));
        }
        else
        {
            return null;
        }
        if (udp.Length < 8) return null;
        int ulen = udp[4] << 8 | udp[5];
        if (ulen < 8 || ulen > udp.Length && !cut) return null;
        cut |= ulen > udp.Length;
        return new CapturedDatagram(frame, src, dst, (ushort)(udp[0] << 8 | udp[1]), (ushort)(udp[2] << 8 | udp[3]),
            udp.Slice(8, Math.Min(ulen, udp.Length) - 8).ToArray(), cut);
    }
}
