using System.Buffers.Binary;
using Lisp.Wire;

namespace Lisp.DataPlane;

/// <summary>
/// What the ITR does when an encapsulated packet would exceed the underlay MTU (RFC 9300 section 7):
/// an inner IPv4 packet without DF, going over an IPv4 underlay from a raw socket, is sent as outer IPv4
/// fragments that the ETR's kernel reassembles (the stateless solution, 7.1); anything else — inner IPv4
/// with DF, inner IPv6, or an IPv6 underlay — gets an ICMP "fragmentation needed" / ICMPv6 "packet too big"
/// written back into the TUN with MTU = underlay MTU - encapsulation overhead, so the sending host's path-MTU
/// discovery shrinks its packets (the approach of 7.2). The ICMP message comes from the inner destination
/// address: it arrives on the TUN, where a source inside the remote EID-prefix passes reverse-path filtering.
/// </summary>
public static class Mtu
{
    /// <summary>Writes an ICMP too-big for <paramref name="inner"/> into <paramref name="output"/>; returns its length (0 if the inner packet is unsuitable).</summary>
    public static int WriteTooBig(ReadOnlySpan<byte> inner, int mtu, Span<byte> output)
    {
        if (inner.Length >= 20 && inner[0] >> 4 == 4) return WriteIcmpV4(inner, mtu, output);
        if (inner.Length >= 40 && inner[0] >> 4 == 6) return WriteIcmpV6(inner, mtu, output);
        return 0;
    }

    private static int WriteIcmpV4(ReadOnlySpan<byte> inner, int mtu, Span<byte> o)
    {
        int ihl = (inner[0] & 15) * 4;
        if (inner[9] == 1 && inner.Length > ihl && IsIcmpError(inner[ihl])) return 0; // never answer an ICMP error
        int quoted = Math.Min(inner.Length, 548); // RFC 1812: as much as fits in 576 bytes
        int total = 20 + 8 + quoted;
        if (o.Length < total) return 0;
        o.Slice(0, total).Clear();
        o[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(o.Slice(2), (ushort)total);
        o[8] = 64;
        o[9] = 1;
        inner.Slice(16, 4).CopyTo(o.Slice(12)); // from the inner destination
        inner.Slice(12, 4).CopyTo(o.Slice(16)); // to the inner source
        BinaryPrimitives.WriteUInt16BigEndian(o.Slice(10), InternetChecksum.Compute(o.Slice(0, 20)));
        var icmp = o.Slice(20, 8 + quoted);
        icmp[0] = 3; // destination unreachable
        icmp[1] = 4; // fragmentation needed and DF set
        BinaryPrimitives.WriteUInt16BigEndian(icmp.Slice(6), (ushort)Math.Clamp(mtu, 68, 65535));
        inner.Slice(0, quoted).CopyTo(icmp.Slice(8));
        BinaryPrimitives.WriteUInt16BigEndian(icmp.Slice(2), InternetChecksum.Compute(icmp));
        return total;
    }

    private static bool IsIcmpError(byte type) => type is 3 or 4 or 5 or 11 or 12;

    private static int WriteIcmpV6(ReadOnlySpan<byte> inner, int mtu, Span<byte> o)
    {
        if (inner[6] == 58 && inner.Length > 40 && inner[40] < 128) return 0; // never answer an ICMPv6 error
        int quoted = Math.Min(inner.Length, 1280 - 48);
        int total = 48 + quoted;
        if (o.Length < total) return 0;
        o.Slice(0, total).Clear();
        o[0] = 0x60;
        BinaryPrimitives.WriteUInt16BigEndian(o.Slice(4), (ushort)(8 + quoted));
        o[6] = 58;
        o[7] = 64;
        inner.Slice(24, 16).CopyTo(o.Slice(8));
        inner.Slice(8, 16).CopyTo(o.Slice(24));
        var icmp = o.Slice(40, 8 + quoted);
        icmp[0] = 2; // packet too big
        BinaryPrimitives.WriteUInt32BigEndian(icmp.Slice(4), (uint)Math.Max(1280, mtu));
        inner.Slice(0, quoted).CopyTo(icmp.Slice(8));
        // Pseudo-header: source, destination, upper-layer length, next header.
        uint sum = InternetChecksum.Add(0, o.Slice(8, 32)) + (uint)icmp.Length + 58u;
        BinaryPrimitives.WriteUInt16BigEndian(icmp.Slice(2), InternetChecksum.Compute(icmp, sum));
        return total;
    }

    /// <summary>
    /// Splits an outer IPv4 packet (20-byte header, as written by the encapsulation) into fragments of at most
    /// <paramref name="mtu"/> bytes, written at the headroom of slots <paramref name="firstSlot"/>, +1, ... of
    /// <paramref name="into"/> (Offset and Length set); returns the fragment count, or 0 when the batch has too
    /// few slots left or a fragment does not fit a slot.
    /// </summary>
    public static int FragmentV4(ReadOnlySpan<byte> packet, int mtu, ushort id, PacketBatch into, int firstSlot)
    {
        int payload = packet.Length - 20;
        int per = (mtu - 20) & ~7;
        if (per < 8 || packet.Length < 20) return 0;
        int count = (payload + per - 1) / per;
        for (int k = 0; k < count; k++)
        {
            int off = k * per;
            int len = Math.Min(per, payload - off);
            int s = firstSlot + k;
            if (s >= into.Capacity || 20 + len > into.MaxPacket) return 0;
            into.Offset[s] = PacketBatch.Headroom;
            into.Length[s] = 20 + len;
            var f = into.Packet(s);
            packet.Slice(0, 20).CopyTo(f);
            BinaryPrimitives.WriteUInt16BigEndian(f.Slice(2), (ushort)(20 + len));
            BinaryPrimitives.WriteUInt16BigEndian(f.Slice(4), id);
            BinaryPrimitives.WriteUInt16BigEndian(f.Slice(6), (ushort)((k < count - 1 ? 0x2000 : 0) | (off >> 3)));
            f[10] = 0;
            f[11] = 0;
            BinaryPrimitives.WriteUInt16BigEndian(f.Slice(10), InternetChecksum.Compute(f.Slice(0, 20)));
            packet.Slice(20 + off, len).CopyTo(f.Slice(20));
        }
        return count;
    }
}
