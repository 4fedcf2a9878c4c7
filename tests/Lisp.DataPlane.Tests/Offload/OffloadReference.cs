using System.Buffers.Binary;

namespace Lisp.DataPlane.Tests.Offload;

/// <summary>
/// Independent, deliberately simple reference code for the offload tests: a byte-by-byte RFC 1071 checksum and
/// builders of TCP/UDP super-packets. Shares nothing with Lisp.DataPlane.Offload.
/// </summary>
internal static class OffloadReference
{
    /// <summary>Sum of big-endian 16-bit words, odd byte padded with zero, folded to 16 bits (not complemented).</summary>
    public static int FoldedSum(byte[] data, int offset, int length, long initial = 0)
    {
        long sum = initial;
        for (int i = 0; i < length; i += 2)
        {
            int hi = data[offset + i];
            int lo = i + 1 < length ? data[offset + i + 1] : 0;
            sum += (hi << 8) | lo;
        }
        while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
        return (int)sum;
    }

    public static int Checksum(byte[] data, int offset, int length, long initial = 0) => ~FoldedSum(data, offset, length, initial) & 0xffff;

    public static long PseudoSum(byte[] packet, bool v6, int protocol, int l4Length)
    {
        long sum = 0;
        int start = v6 ? 8 : 12, count = v6 ? 32 : 8;
        for (int i = 0; i < count; i += 2) sum += (packet[start + i] << 8) | packet[start + i + 1];
        return sum + protocol + (l4Length >> 16) + (l4Length & 0xffff);
    }

    /// <summary>True when the IPv4 header checksum verifies (sum of the header incl. its checksum folds to 0xffff).</summary>
    public static bool Ipv4HeaderOk(byte[] p) => FoldedSum(p, 0, (p[0] & 15) * 4) == 0xffff;

    public static bool L4ChecksumOk(byte[] p, bool v6, int protocol)
    {
        int ip = v6 ? 40 : (p[0] & 15) * 4;
        int l4Length = p.Length - ip;
        return FoldedSum(p, ip, l4Length, PseudoSum(p, v6, protocol, l4Length)) == 0xffff;
    }

    /// <summary>
    /// Bytes this thread allocates for <paramref name="perWindow"/> calls of <paramref name="batch"/>, the fewest over up to
    /// <paramref name="windows"/> windows (0 ends early). A per-call allocation shows in every window; the runtime's own
    /// one-off work while methods move between JIT tiers (seen once in a clean-clone run: 2,496 bytes in one window) does not.
    /// </summary>
    public static long SteadyAllocation(Action batch, int perWindow = 50, int windows = 5)
    {
        long fewest = long.MaxValue;
        for (int w = 0; w < windows && fewest > 0; w++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < perWindow; i++) batch();
            fewest = Math.Min(fewest, GC.GetAllocatedBytesForCurrentThread() - before);
        }
        return fewest;
    }

    public static int Read16(byte[] p, int at) => (p[at] << 8) | p[at + 1];
    public static uint Read32(byte[] p, int at) => ((uint)p[at] << 24) | ((uint)p[at + 1] << 16) | ((uint)p[at + 2] << 8) | p[at + 3];

    public static void Write16(byte[] p, int at, int v) { p[at] = (byte)(v >> 8); p[at + 1] = (byte)v; }

    /// <summary>
    /// A TCP (protocol 6) or UDP (17) super-packet in NEEDS_CSUM form: transport checksum field = folded pseudo-header
    /// sum (not complemented), valid IPv4 header checksum, random addresses / ports / ToS / TTL / ID.
    /// </summary>
    public static byte[] Build(Random rng, bool v6, int protocol, int payloadLength, int ipOptionBytes = 0, int tcpOptionBytes = 0,
        byte tcpFlags = 0x10, uint? seq = null)
    {
        int ip = v6 ? 40 : 20 + ipOptionBytes;
        int l4 = protocol == 6 ? 20 + tcpOptionBytes : 8;
        var p = new byte[ip + l4 + payloadLength];
        rng.NextBytes(p);
        if (v6)
        {
            p[0] = (byte)(0x60 | (p[0] & 0x0f));
            Write16(p, 4, l4 + payloadLength);
            p[6] = (byte)protocol;
        }
        else
        {
            p[0] = (byte)(0x40 | (ip / 4));
            Write16(p, 2, p.Length);
            p[6] = 0x40; // DF
            p[7] = 0;
            p[8] = (byte)rng.Next(1, 256);
            p[9] = (byte)protocol;
            Write16(p, 10, 0);
            Write16(p, 10, Checksum(p, 0, ip));
        }
        if (protocol == 6)
        {
            if (seq is uint s) { p[ip + 4] = (byte)(s >> 24); p[ip + 5] = (byte)(s >> 16); p[ip + 6] = (byte)(s >> 8); p[ip + 7] = (byte)s; }
            p[ip + 12] = (byte)((l4 / 4) << 4);
            p[ip + 13] = tcpFlags;
            Write16(p, ip + 18, 0); // urgent pointer
            Write16(p, ip + 16, FoldedSum([], 0, 0, PseudoSum(p, v6, 6, l4 + payloadLength)));
        }
        else
        {
            Write16(p, ip + 4, l4 + payloadLength);
            Write16(p, ip + 6, FoldedSum([], 0, 0, PseudoSum(p, v6, 17, l4 + payloadLength)));
        }
        return p;
    }

    /// <summary>Fills in the full (complemented) transport checksum, turning a NEEDS_CSUM packet into a wire packet.</summary>
    public static void CompleteL4(byte[] p, bool v6, int protocol)
    {
        int ip = v6 ? 40 : (p[0] & 15) * 4;
        int field = ip + (protocol == 6 ? 16 : 6);
        Write16(p, field, 0);
        int c = Checksum(p, ip, p.Length - ip, PseudoSum(p, v6, protocol, p.Length - ip));
        Write16(p, field, protocol == 17 && c == 0 ? 0xffff : c);
    }
}
