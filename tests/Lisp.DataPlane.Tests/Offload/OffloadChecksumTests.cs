using Lisp.DataPlane.Offload;
using Xunit;
using static Lisp.DataPlane.Tests.Offload.OffloadReference;

namespace Lisp.DataPlane.Tests.Offload;

/// <summary>VirtioNetHeader layout and InetChecksum against hand-computed vectors and the byte-by-byte reference.</summary>
public sealed class OffloadChecksumTests
{
    [Fact]
    public void Virtio_header_is_ten_little_endian_bytes_in_the_legacy_layout()
    {
        // flags NEEDS_CSUM, gso TCPV4, hdr_len 54 (0x0036), gso_size 1448 (0x05a8), csum_start 20, csum_offset 16
        byte[] wire = [0x01, 0x01, 0x36, 0x00, 0xa8, 0x05, 0x14, 0x00, 0x10, 0x00];
        Assert.True(VirtioNetHeader.TryRead(wire, out var h));
        Assert.Equal(1, h.Flags);
        Assert.Equal(VirtioNetHeader.GsoTcpV4, h.GsoType);
        Assert.Equal(54, h.HeaderLength);
        Assert.Equal(1448, h.GsoSize);
        Assert.Equal(20, h.CsumStart);
        Assert.Equal(16, h.CsumOffset);
        Assert.True(h.NeedsChecksum);

        var back = new byte[12];
        back.AsSpan().Fill(0xee);
        h.Write(back);
        Assert.Equal(wire, back[..10]);
        Assert.Equal(0xee, back[10]); // nothing written past the 10 bytes

        var ecn = new VirtioNetHeader { GsoType = VirtioNetHeader.GsoTcpV6 | VirtioNetHeader.GsoEcn };
        Assert.Equal(VirtioNetHeader.GsoTcpV6, ecn.GsoKind);
        Assert.Equal(10, VirtioNetHeader.Size);
    }

    [Fact]
    public void Virtio_header_short_input_is_refused()
    {
        Assert.False(VirtioNetHeader.TryRead(new byte[9], out var h));
        Assert.Equal(default, h);
        Assert.False(new VirtioNetHeader { Flags = 1 }.TryWrite(new byte[9]));
    }

    [Fact]
    public void Rfc1071_example_sums_to_ddf2()
    {
        // RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 -> sum 0x2ddf0, folded 0xddf2, checksum 0x220d.
        byte[] data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        Assert.Equal(0xddf2, InetChecksum.Fold(InetChecksum.Sum(data)));
        Assert.Equal(0x220d, InetChecksum.Finish(InetChecksum.Sum(data)));
    }

    [Fact]
    public void Known_ipv4_header_checksum_b861()
    {
        // 192.168.0.1 -> 192.168.0.199, UDP, total length 0x73, DF, TTL 64: checksum 0xb861 (field ignored when computing).
        byte[] header = [0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x12, 0x34, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7];
        Assert.Equal(0xb861, InetChecksum.Ipv4HeaderChecksum(header));
        header[10] = 0xb8;
        header[11] = 0x61;
        Assert.True(InetChecksum.Verifies(header));
    }

    [Fact]
    public void Odd_length_pads_the_last_byte_as_a_high_byte()
    {
        Assert.Equal(0xab00, InetChecksum.Fold(InetChecksum.Sum([0xab])));
        Assert.Equal(0x0102 + 0x0300, InetChecksum.Fold(InetChecksum.Sum([0x01, 0x02, 0x03])));
        Assert.Equal(0, InetChecksum.Fold(InetChecksum.Sum([])));
    }

    [Fact]
    public void Sum_matches_byte_by_byte_reference_on_random_data_and_chains()
    {
        var rng = new Random(1071);
        for (int round = 0; round < 2000; round++)
        {
            int length = round < 300 ? round : rng.Next(0, 70000);
            var data = new byte[length + 3];
            rng.NextBytes(data);
            if (round % 7 == 0) data.AsSpan().Fill(0xff); // worst case for carries
            int offset = rng.Next(0, 4); // unaligned starts
            ulong initial = (ulong)rng.Next(0, 0x20000);
            int expected = FoldedSum(data, offset, length, (long)initial);
            Assert.Equal(expected, InetChecksum.Fold(InetChecksum.Sum(data.AsSpan(offset, length), initial)));

            // Two regions split at an even point sum to the same.
            int split = rng.Next(0, length / 2 + 1) * 2;
            ulong chained = InetChecksum.Sum(data.AsSpan(offset + split, length - split), InetChecksum.Sum(data.AsSpan(offset, split), initial));
            Assert.Equal(expected, InetChecksum.Fold(chained));
        }
    }

    [Fact]
    public void Pseudo_headers_match_reference()
    {
        var rng = new Random(8200);
        for (int round = 0; round < 500; round++)
        {
            var v4 = Build(rng, v6: false, protocol: 6, payloadLength: 0);
            var v6 = Build(rng, v6: true, protocol: 17, payloadLength: 0);
            int length = rng.Next(0, 65536);
            int v6Length = round % 2 == 0 ? length : rng.Next(); // 32-bit upper-layer length in IPv6
            Assert.Equal(FoldedSum([], 0, 0, PseudoSum(v4, false, 6, length)),
                InetChecksum.Fold(InetChecksum.PseudoHeaderV4(v4.AsSpan(12, 4), v4.AsSpan(16, 4), 6, length)));
            Assert.Equal(FoldedSum([], 0, 0, PseudoSum(v6, true, 17, v6Length)),
                InetChecksum.Fold(InetChecksum.PseudoHeaderV6(v6.AsSpan(8, 16), v6.AsSpan(24, 16), 17, v6Length)));
        }
    }
}
