using System.Buffers.Binary;

namespace Lisp.DataPlane.Offload;

/// <summary>
/// The legacy <c>struct virtio_net_hdr</c> that a TUN opened with IFF_VNET_HDR (and the default vnet header size of 10)
/// puts in front of every packet read from it and expects in front of every packet written to it.
/// Fields are in host byte order; this appliance runs on little-endian hosts only (x86-64, arm64), so they are
/// read and written little-endian.
/// <code>
///  offset size field
///   0     1    flags        NEEDS_CSUM = 1 (checksum is partial: sum from csum_start to the end, store at csum_start+csum_offset)
///                           DATA_VALID = 2 (checksum already verified, only meaningful on reads)
///   1     1    gso_type     NONE = 0, TCPV4 = 1, UDP (UFO) = 3, TCPV6 = 4, UDP_L4 (USO) = 5; | ECN = 0x80
///   2     2    hdr_len      length of the headers copied into each segment (IP + TCP/UDP); a hint only
///   4     2    gso_size     payload bytes per segment (MSS)
///   6     2    csum_start   offset of the first byte to sum (the transport header)
///   8     2    csum_offset  offset of the checksum field from csum_start (16 for TCP, 6 for UDP)
/// </code>
/// </summary>
public struct VirtioNetHeader
{
    public const int Size = 10;

    public const byte FlagNeedsCsum = 1;
    public const byte FlagDataValid = 2;

    public const byte GsoNone = 0;
    public const byte GsoTcpV4 = 1;
    public const byte GsoUdp = 3;
    public const byte GsoTcpV6 = 4;
    public const byte GsoUdpL4 = 5;
    public const byte GsoEcn = 0x80;

    public byte Flags;
    public byte GsoType;
    public ushort HeaderLength;
    public ushort GsoSize;
    public ushort CsumStart;
    public ushort CsumOffset;

    /// <summary>The gso type without the ECN bit.</summary>
    public readonly byte GsoKind => (byte)(GsoType & ~GsoEcn);

    public readonly bool NeedsChecksum => (Flags & FlagNeedsCsum) != 0;

    /// <summary>Reads the first <see cref="Size"/> bytes; false when fewer are given.</summary>
    public static bool TryRead(ReadOnlySpan<byte> source, out VirtioNetHeader header)
    {
        if (source.Length < Size)
        {
            header = default;
            return false;
        }
        header = new VirtioNetHeader
        {
            Flags = source[0],
            GsoType = source[1],
            HeaderLength = BinaryPrimitives.ReadUInt16LittleEndian(source.Slice(2)),
            GsoSize = BinaryPrimitives.ReadUInt16LittleEndian(source.Slice(4)),
            CsumStart = BinaryPrimitives.ReadUInt16LittleEndian(source.Slice(6)),
            CsumOffset = BinaryPrimitives.ReadUInt16LittleEndian(source.Slice(8)),
        };
        return true;
    }

    /// <summary>Writes the 10 bytes; false (nothing written) when the destination is shorter.</summary>
    public readonly bool TryWrite(Span<byte> destination)
    {
        if (destination.Length < Size) return false;
        destination[0] = Flags;
        destination[1] = GsoType;
        BinaryPrimitives.WriteUInt16LittleEndian(destination.Slice(2), HeaderLength);
        BinaryPrimitives.WriteUInt16LittleEndian(destination.Slice(4), GsoSize);
        BinaryPrimitives.WriteUInt16LittleEndian(destination.Slice(6), CsumStart);
        BinaryPrimitives.WriteUInt16LittleEndian(destination.Slice(8), CsumOffset);
        return true;
    }

    /// <summary>Writes the 10 bytes; the destination must hold them (the caller owns the buffer).</summary>
    public readonly void Write(Span<byte> destination)
    {
        if (!TryWrite(destination)) throw new ArgumentException("destination shorter than a virtio_net_hdr", nameof(destination));
    }
}
