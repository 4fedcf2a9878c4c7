using System.Buffers.Binary;
using System.Net;
using Lisp.DataPlane;
using Lisp.Wire;

namespace Lisp.DataPlane.Tests;

/// <summary>Hand-built inner packets for the pipeline tests.</summary>
internal static class Packets
{
    public static byte[] UdpV4(string src, string dst, ushort sport, ushort dport, int totalLength = 64, bool df = true, byte fill = 0xab)
    {
        var p = new byte[totalLength];
        p[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(2), (ushort)totalLength);
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(4), 0x1234);
        if (df) p[6] = 0x40;
        p[8] = 64;
        p[9] = 17;
        IPAddress.Parse(src).TryWriteBytes(p.AsSpan(12), out _);
        IPAddress.Parse(dst).TryWriteBytes(p.AsSpan(16), out _);
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(10), InternetChecksum.Compute(p.AsSpan(0, 20)));
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(20), sport);
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(22), dport);
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(24), (ushort)(totalLength - 20));
        p.AsSpan(28).Fill(fill);
        return p;
    }

    public static byte[] UdpV6(string src, string dst, ushort sport, ushort dport, int totalLength = 80)
    {
        var p = new byte[totalLength];
        p[0] = 0x60;
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(4), (ushort)(totalLength - 40));
        p[6] = 17;
        p[7] = 64;
        IPAddress.Parse(src).TryWriteBytes(p.AsSpan(8), out _);
        IPAddress.Parse(dst).TryWriteBytes(p.AsSpan(24), out _);
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(40), sport);
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(42), dport);
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(44), (ushort)(totalLength - 40));
        p.AsSpan(48).Fill(0xcd);
        return p;
    }
}
