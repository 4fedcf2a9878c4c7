using Lisp.DataPlane.Offload;
using Xunit;
using static Lisp.DataPlane.Tests.Offload.OffloadReference;

namespace Lisp.DataPlane.Tests.Offload;

/// <summary>
/// Segmenter (software TSO/USO) against the independent reference: every segment is checked on its own (IP header
/// checksum, transport checksum, lengths, IDs, seq, flags, payload), then TCP segments are joined again by
/// TcpCoalescer, which must give back the super-packet byte for byte, and segmenting that gives the same segments.
/// </summary>
public sealed class OffloadSegmenterTests
{
    private const byte Fin = 0x01, Syn = 0x02, Psh = 0x08, Ack = 0x10, Cwr = 0x80, Ece = 0x40;
    private const byte Sentinel = 0x5a;

    private static VirtioNetHeader GsoHeader(bool v6, int protocol, int ipHeader, int l4Header, int gsoSize) => new()
    {
        Flags = VirtioNetHeader.FlagNeedsCsum,
        GsoType = protocol == 17 ? VirtioNetHeader.GsoUdpL4 : v6 ? VirtioNetHeader.GsoTcpV6 : VirtioNetHeader.GsoTcpV4,
        HeaderLength = (ushort)(ipHeader + l4Header),
        GsoSize = (ushort)gsoSize,
        CsumStart = (ushort)ipHeader,
        CsumOffset = (ushort)(protocol == 17 ? 6 : 16),
    };

    private static byte[] SegmentAt(byte[] output, int k, int stride, int prefix, int length) => output.AsSpan(k * stride + prefix, length).ToArray();

    [Fact]
    public void Tcp_super_packets_split_verify_and_coalesce_back_byte_exact()
    {
        var rng = new Random(20261207);
        var coalescer = new TcpCoalescer(maxPackets: 2100, maxFlowsPerBatch: 8, maxPacketSize: 9216);
        int roundTrips = 0, multiSegment = 0;
        for (int round = 0; round < 300; round++)
        {
            bool v6 = rng.Next(2) == 0;
            int ipOptions = !v6 && rng.Next(4) == 0 ? rng.Next(1, 11) * 4 : 0;
            int tcpOptions = rng.Next(0, 11) * 4;
            int ipHeader = v6 ? 40 : 20 + ipOptions, tcpHeader = 20 + tcpOptions, headers = ipHeader + tcpHeader;
            bool small = rng.Next(5) == 0;
            int mss = small ? rng.Next(1, 65) : rng.Next(500, 9001);
            int maxPayload = (v6 ? 65535 - tcpHeader : 65535 - headers);
            int payload = small ? rng.Next(0, 2001) : rng.Next(0, maxPayload + 1);
            if (round % 10 == 0) payload = rng.Next(1, 5) * mss; // exact multiple: last segment full
            payload = Math.Min(payload, maxPayload);
            byte flags = rng.Next(3) switch
            {
                0 => Ack,
                1 => Ack | Psh,
                _ => (byte)(Ack | (rng.Next(2) == 0 ? Psh : 0) | (rng.Next(2) == 0 ? Fin : 0) | (rng.Next(2) == 0 ? Cwr | Ece : 0)),
            };
            var super = Build(rng, v6, 6, payload, ipOptions, tcpOptions, flags);
            var h = GsoHeader(v6, 6, ipHeader, tcpHeader, mss);
            if (rng.Next(4) == 0) h.GsoType |= VirtioNetHeader.GsoEcn;
            if (rng.Next(4) == 0) h.HeaderLength = (ushort)rng.Next(); // a hint only, never trusted

            int prefix = rng.Next(0, 17);
            Assert.Equal(headers, Segmenter.HeaderLength(super, h));
            int expectedCount = payload == 0 ? 1 : (payload + mss - 1) / mss;
            Assert.Equal(expectedCount, Segmenter.SegmentCount(super, h, mss));
            int stride = prefix + headers + mss;
            var output = new byte[(expectedCount - 1) * stride + prefix + headers + (payload - (expectedCount - 1) * mss)];
            output.AsSpan().Fill(Sentinel);
            var lengths = new int[expectedCount + 1];
            int count = Segmenter.Segment(super, h, mss, output, prefix, lengths);
            Assert.Equal(expectedCount, count);

            var segments = new byte[count][];
            int id0 = v6 ? 0 : Read16(super, 4);
            uint seq0 = Read32(super, ipHeader + 4);
            for (int k = 0; k < count; k++)
            {
                int segPayload = Math.Min(mss, payload - k * mss);
                if (payload == 0) segPayload = 0;
                Assert.Equal(headers + segPayload, lengths[k]);
                for (int b = 0; b < prefix; b++) Assert.Equal(Sentinel, output[k * stride + b]);
                var s = segments[k] = SegmentAt(output, k, stride, prefix, lengths[k]);

                if (v6)
                {
                    Assert.Equal(s.Length - 40, Read16(s, 4));
                    Assert.Equal(super.AsSpan(0, 4).ToArray(), s[..4]);
                    Assert.Equal(super.AsSpan(6, 34).ToArray(), s[6..40]);
                }
                else
                {
                    Assert.True(Ipv4HeaderOk(s), $"round {round} segment {k}: IPv4 header checksum");
                    Assert.Equal(s.Length, Read16(s, 2));
                    Assert.Equal((id0 + k) & 0xffff, Read16(s, 4));
                    Assert.Equal(super.AsSpan(0, 2).ToArray(), s[..2]);
                    Assert.Equal(super.AsSpan(6, 4).ToArray(), s[6..10]);
                    Assert.Equal(super.AsSpan(12, ipHeader - 12).ToArray(), s[12..ipHeader]); // addresses and options
                }
                Assert.True(L4ChecksumOk(s, v6, 6), $"round {round} segment {k}: TCP checksum");
                Assert.Equal(unchecked(seq0 + (uint)(k * mss)), Read32(s, ipHeader + 4));
                byte expectedFlags = flags;
                if (k != count - 1) expectedFlags &= unchecked((byte)~(Fin | Psh));
                if (k != 0) expectedFlags &= unchecked((byte)~Cwr);
                Assert.Equal(expectedFlags, s[ipHeader + 13]);
                Assert.Equal(super.AsSpan(ipHeader, 4).ToArray(), s[ipHeader..(ipHeader + 4)]);              // ports
                Assert.Equal(super.AsSpan(ipHeader + 8, 5).ToArray(), s[(ipHeader + 8)..(ipHeader + 13)]);   // ack, offset
                Assert.Equal(super.AsSpan(ipHeader + 14, 2).ToArray(), s[(ipHeader + 14)..(ipHeader + 16)]); // window
                Assert.Equal(super.AsSpan(ipHeader + 18, tcpHeader - 18).ToArray(), s[(ipHeader + 18)..headers]); // urg, options
                Assert.Equal(super.AsSpan(headers + k * mss, segPayload).ToArray(), s[headers..]);
            }
            if (count > 1) multiSegment++;

            // Coalesce back (only plain ACK/PSH data without IPv4 options is coalescable).
            if (payload == 0 || ipOptions != 0 || (flags & ~Psh) != Ack) continue;
            coalescer.Reset();
            for (int k = 0; k < count; k++) Assert.True(coalescer.TryAdd(segments[k], 100 + k), $"round {round} segment {k} refused");
            Assert.Equal(1, coalescer.GroupCount);
            Assert.Equal(count, coalescer.Members(0));
            Assert.Equal(100, coalescer.FirstId(0));
            var joined = coalescer.Group(0).ToArray();
            if (count == 1)
            {
                Assert.Equal(new byte[10], joined[..10]);
                Assert.Equal(segments[0], joined[10..]);
                roundTrips++;
                continue;
            }
            Assert.True(VirtioNetHeader.TryRead(joined, out var vh));
            Assert.Equal(VirtioNetHeader.FlagNeedsCsum, vh.Flags);
            Assert.Equal(v6 ? VirtioNetHeader.GsoTcpV6 : VirtioNetHeader.GsoTcpV4, vh.GsoType);
            Assert.Equal(headers, vh.HeaderLength);
            Assert.Equal(mss, vh.GsoSize);
            Assert.Equal(ipHeader, vh.CsumStart);
            Assert.Equal(16, vh.CsumOffset);
            // The reference super-packet is already in CHECKSUM_PARTIAL form (TCP field = folded pseudo-header sum).
            Assert.Equal(super, joined[10..]);

            var again = new byte[output.Length];
            again.AsSpan().Fill(Sentinel);
            var againLengths = new int[count];
            Assert.Equal(count, Segmenter.Segment(joined.AsSpan(10), vh, vh.GsoSize, again, prefix, againLengths));
            Assert.Equal(lengths[..count], againLengths);
            Assert.Equal(output, again);
            roundTrips++;
        }
        Assert.True(roundTrips > 100, $"only {roundTrips} round trips");
        Assert.True(multiSegment > 200, $"only {multiSegment} multi-segment cases");
    }

    [Fact]
    public void Udp_super_packets_split_with_valid_checksums_and_the_same_payload()
    {
        var rng = new Random(768);
        for (int round = 0; round < 300; round++)
        {
            bool v6 = rng.Next(2) == 0;
            int ipOptions = !v6 && rng.Next(4) == 0 ? rng.Next(1, 11) * 4 : 0;
            int ipHeader = v6 ? 40 : 20 + ipOptions, headers = ipHeader + 8;
            int mss = rng.Next(4) == 0 ? rng.Next(1, 100) : rng.Next(500, 9001);
            int payload = Math.Min(rng.Next(0, 65536 - headers), mss * 700);
            var super = Build(rng, v6, 17, payload, ipOptions);
            var h = GsoHeader(v6, 17, ipHeader, 8, mss);
            int prefix = rng.Next(0, 9);
            int count = Segmenter.SegmentCount(super, h, mss);
            Assert.Equal(payload == 0 ? 1 : (payload + mss - 1) / mss, count);
            int stride = prefix + headers + mss;
            var output = new byte[count * stride];
            var lengths = new int[count];
            Assert.Equal(count, Segmenter.Segment(super, h, mss, output, prefix, lengths));

            var joinedPayload = new List<byte>(payload);
            int id0 = v6 ? 0 : Read16(super, 4);
            for (int k = 0; k < count; k++)
            {
                var s = SegmentAt(output, k, stride, prefix, lengths[k]);
                Assert.True(L4ChecksumOk(s, v6, 17), $"round {round} segment {k}: UDP checksum");
                Assert.NotEqual(0, Read16(s, ipHeader + 6)); // 0 would mean "no checksum"
                Assert.Equal(s.Length - ipHeader, Read16(s, ipHeader + 4));
                Assert.Equal(super.AsSpan(ipHeader, 4).ToArray(), s[ipHeader..(ipHeader + 4)]);
                if (v6) Assert.Equal(s.Length - 40, Read16(s, 4));
                else
                {
                    Assert.True(Ipv4HeaderOk(s));
                    Assert.Equal(s.Length, Read16(s, 2));
                    Assert.Equal((id0 + k) & 0xffff, Read16(s, 4));
                }
                if (k < count - 1) Assert.Equal(headers + mss, s.Length);
                joinedPayload.AddRange(s[headers..]);
            }
            Assert.Equal(super[headers..], joinedPayload.ToArray());
        }
    }

    /// <summary>
    /// The copy-free form the ITR sends with (SegmentHeaders: headers written, payload left where it lies): header block
    /// k followed by payload slice k is, byte for byte, segment k of Segment (checked above against the reference), for
    /// TCP and UDP, IPv4 with options and IPv6, odd sizes and exact multiples; and it refuses what Segment refuses.
    /// </summary>
    [Fact]
    public void Headers_only_segments_joined_with_their_payload_equal_the_copied_segments()
    {
        var rng = new Random(1207);
        int segmentsChecked = 0;
        for (int round = 0; round < 200; round++)
        {
            bool v6 = rng.Next(2) == 0;
            int protocol = rng.Next(2) == 0 ? 6 : 17;
            int ipOptions = !v6 && rng.Next(4) == 0 ? rng.Next(1, 11) * 4 : 0;
            int l4Options = protocol == 6 ? rng.Next(0, 11) * 4 : 0;
            int ipHeader = v6 ? 40 : 20 + ipOptions, l4Header = protocol == 6 ? 20 + l4Options : 8, headers = ipHeader + l4Header;
            int mss = rng.Next(3) == 0 ? rng.Next(1, 100) : rng.Next(500, 1500);
            int payload = Math.Min(rng.Next(0, 40000), mss * 200);
            if (round % 7 == 0) payload = rng.Next(1, 6) * mss;
            var super = Build(rng, v6, protocol, payload, ipOptions, l4Options, Ack | Psh);
            var h = GsoHeader(v6, protocol, ipHeader, l4Header, mss);
            int prefix = rng.Next(0, 17);
            int count = Segmenter.SegmentCount(super, h, mss);
            var copied = new byte[count * (prefix + headers + mss)];
            var copiedLengths = new int[count];
            Assert.Equal(count, Segmenter.Segment(super, h, mss, copied, prefix, copiedLengths));
            var blocks = new byte[count * (prefix + headers)];
            var lengths = new int[count];
            Assert.Equal(count, Segmenter.SegmentHeaders(super, h, mss, blocks, prefix, lengths));
            Assert.Equal(copiedLengths, lengths);
            for (int k = 0; k < count; k++)
            {
                var joined = blocks.AsSpan(k * (prefix + headers) + prefix, headers).ToArray()
                    .Concat(super.AsSpan(headers + k * mss, lengths[k] - headers).ToArray()).ToArray();
                Assert.Equal(SegmentAt(copied, k, prefix + headers + mss, prefix, copiedLengths[k]), joined);
                segmentsChecked++;
            }
            // One byte too small for the last header block: refused, as Segment refuses a short output.
            Assert.Equal((int)SegmentError.OutputTooSmall,
                Segmenter.SegmentHeaders(super, h, mss, new byte[count * (prefix + headers) - 1], prefix, lengths));
        }
        Assert.True(segmentsChecked > 2000, $"{segmentsChecked} segments");
        var plain = Build(rng, false, 6, 100);
        Assert.Equal((int)SegmentError.Unsupported, Segmenter.SegmentHeaders(plain, new VirtioNetHeader(), 1000, new byte[200], 0, new int[4]));
    }

    [Fact]
    public void Udp_checksum_that_computes_to_zero_is_sent_as_ffff()
    {
        // Search a payload word that makes the segment's UDP checksum exactly 0.
        var rng = new Random(5);
        var super = Build(rng, v6: false, protocol: 17, payloadLength: 2);
        var h = GsoHeader(false, 17, 20, 8, 2);
        var output = new byte[30];
        var lengths = new int[1];
        Write16(super, 28, 0);
        Assert.Equal(1, Segmenter.Segment(super, h, 2, output, 0, lengths));
        // With payload word w the complemented checksum is c0 - w (one's complement); choose w = c0 so it becomes 0.
        int c0 = Read16(output, 26);
        Write16(super, 28, c0);
        Assert.Equal(1, Segmenter.Segment(super, h, 2, output, 0, lengths));
        Assert.Equal(0xffff, Read16(output, 26));
        Assert.True(L4ChecksumOk(output, false, 17));
    }

    [Fact]
    public void Gso_none_is_one_copy_with_its_partial_checksum_completed()
    {
        var rng = new Random(11);
        foreach (bool v6 in new[] { false, true })
        foreach (int protocol in new[] { 6, 17 })
        {
            var packet = Build(rng, v6, protocol, 333);
            int ip = v6 ? 40 : 20;
            var h = new VirtioNetHeader { Flags = VirtioNetHeader.FlagNeedsCsum, CsumStart = (ushort)ip, CsumOffset = (ushort)(protocol == 6 ? 16 : 6) };
            var output = new byte[4 + packet.Length];
            var lengths = new int[1];
            Assert.Equal(0, Segmenter.HeaderLength(packet, h));
            Assert.Equal(1, Segmenter.Segment(packet, h, 1, output, 4, lengths));
            Assert.Equal(packet.Length, lengths[0]);
            var segment = output[4..];
            Assert.True(L4ChecksumOk(segment, v6, protocol));
            var expected = (byte[])packet.Clone();
            CompleteL4(expected, v6, protocol);
            Assert.Equal(expected, segment);

            // In place too.
            var inPlace = (byte[])packet.Clone();
            Assert.True(Segmenter.TryCompleteChecksum(inPlace, h));
            Assert.Equal(expected, inPlace);

            // Without NEEDS_CSUM nothing changes.
            var untouched = (byte[])packet.Clone();
            Assert.True(Segmenter.TryCompleteChecksum(untouched, default));
            Assert.Equal(packet, untouched);
        }
    }

    [Fact]
    public void Bad_offsets_and_arguments_are_errors()
    {
        var rng = new Random(12);
        var packet = Build(rng, false, 6, 100);
        var needs = new VirtioNetHeader { Flags = VirtioNetHeader.FlagNeedsCsum, CsumStart = 20, CsumOffset = 16 };
        Assert.False(Segmenter.TryCompleteChecksum(packet.AsSpan(0, 37), needs)); // field 36..37 needs 38 bytes
        Assert.True(Segmenter.TryCompleteChecksum(packet.AsSpan(0, 38), needs));
        Assert.False(Segmenter.TryCompleteChecksum(packet, needs with { CsumStart = 200, CsumOffset = 0 }));
        Assert.False(Segmenter.TryCompleteChecksum(packet, needs with { CsumStart = 0xffff, CsumOffset = 0xffff }));

        var lengths = new int[100];
        var output = new byte[10000];
        var tcp4 = GsoHeader(false, 6, 20, 20, 10);
        Assert.Equal(10, Segmenter.Segment(packet, tcp4, 10, output, 0, lengths));
        Assert.Equal((int)SegmentError.TooManySegments, Segmenter.Segment(packet, tcp4, 10, output, 0, lengths.AsSpan(0, 9)));
        Assert.Equal((int)SegmentError.OutputTooSmall, Segmenter.Segment(packet, tcp4, 10, output.AsSpan(0, 9 * 50 + 49), 0, lengths));
        Assert.Equal(10, Segmenter.Segment(packet, tcp4, 10, output.AsSpan(0, 9 * 50 + 50), 0, lengths));
        Assert.Equal((int)SegmentError.InvalidArgument, Segmenter.Segment(packet, tcp4, 0, output, 0, lengths));
        Assert.Equal((int)SegmentError.InvalidArgument, Segmenter.Segment(packet, tcp4, 10, output, -1, lengths));
        Assert.Equal((int)SegmentError.Malformed, Segmenter.Segment(packet, tcp4 with { GsoType = VirtioNetHeader.GsoTcpV6 }, 10, output, 0, lengths));
        Assert.Equal((int)SegmentError.Malformed, Segmenter.Segment(packet, tcp4 with { GsoType = VirtioNetHeader.GsoUdpL4 }, 10, output, 0, lengths));
        Assert.Equal((int)SegmentError.Unsupported, Segmenter.Segment(packet, tcp4 with { GsoType = VirtioNetHeader.GsoUdp }, 10, output, 0, lengths));
        Assert.Equal((int)SegmentError.Unsupported, Segmenter.Segment(packet, tcp4 with { GsoType = 2 }, 10, output, 0, lengths));
        Assert.Equal((int)SegmentError.Malformed, Segmenter.Segment(packet.AsSpan(0, 139), tcp4, 10, output, 0, lengths)); // total length 140

        var fragment = (byte[])packet.Clone();
        fragment[6] |= 0x20; // MF
        Assert.Equal((int)SegmentError.Malformed, Segmenter.Segment(fragment, tcp4, 10, output, 0, lengths));

        var v6 = Build(rng, true, 6, 100);
        v6[6] = 0; // hop-by-hop options header
        Assert.Equal((int)SegmentError.Unsupported, Segmenter.Segment(v6, GsoHeader(true, 6, 40, 20, 10), 10, output, 0, lengths));
        Assert.Equal((int)SegmentError.Unsupported, Segmenter.HeaderLength(v6, GsoHeader(true, 6, 40, 20, 10)));
    }

    [Fact]
    public void Garbage_never_throws_and_results_stay_in_bounds()
    {
        var rng = new Random(404);
        var output = new byte[4096];
        var lengths = new int[64];
        var coalescer = new TcpCoalescer(maxPackets: 64, maxFlowsPerBatch: 4, maxPacketSize: 2048);
        byte[] kinds = [0, 1, 3, 4, 5, 0x81, 0x84, 0x85, 2, 0xff];
        int segmented = 0, taken = 0, batchTaken = 0;
        for (int round = 0; round < 20000; round++)
        {
            byte[] packet;
            if (round % 2 == 0)
            {
                packet = new byte[rng.Next(0, 200)];
                rng.NextBytes(packet);
                if (packet.Length > 0 && rng.Next(2) == 0) packet[0] = (byte)(rng.Next(2) == 0 ? 0x45 : 0x60);
            }
            else
            {
                // A valid packet, mutated: flipped bytes and/or truncated or extended.
                bool v6 = rng.Next(2) == 0;
                int protocol = rng.Next(2) == 0 ? 6 : 17;
                packet = Build(rng, v6, protocol, rng.Next(0, 1500), !v6 && rng.Next(3) == 0 ? 8 : 0, protocol == 6 ? rng.Next(0, 11) * 4 : 0);
                if (rng.Next(2) == 0) CompleteL4(packet, v6, protocol); // a wire packet the coalescer may take
                int flips = rng.Next(0, 4);
                for (int f = 0; f < flips; f++) packet[rng.Next(packet.Length)] ^= (byte)rng.Next(1, 256);
                if (rng.Next(3) == 0) packet = packet[..rng.Next(0, packet.Length + 1)];
            }
            var vnet = new byte[10];
            rng.NextBytes(vnet);
            vnet[1] = kinds[rng.Next(kinds.Length)];
            Assert.True(VirtioNetHeader.TryRead(vnet, out var h));
            Assert.False(VirtioNetHeader.TryRead(vnet.AsSpan(0, rng.Next(0, 10)), out _));
            if (rng.Next(2) == 0) h.CsumStart = (ushort)rng.Next(0, packet.Length + 4);

            int mss = rng.Next(-2, 1600);
            int prefix = rng.Next(-1, 16);
            var outSpan = output.AsSpan(0, rng.Next(0, output.Length + 1));
            var lenSpan = lengths.AsSpan(0, rng.Next(0, lengths.Length + 1));
            int r = Segmenter.Segment(packet, h, mss, outSpan, prefix, lenSpan);
            if (r >= 0)
            {
                segmented++;
                Assert.InRange(r, 1, lenSpan.Length);
                int stride = h.GsoKind == 0 ? 0 : prefix + Segmenter.HeaderLength(packet, h) + mss;
                for (int k = 0; k < r; k++)
                {
                    Assert.InRange(lenSpan[k], 0, packet.Length);
                    Assert.True((long)k * stride + prefix + lenSpan[k] <= outSpan.Length);
                }
            }
            else
            {
                Assert.True(Enum.IsDefined((SegmentError)r), $"unexpected result {r}");
            }
            Segmenter.HeaderLength(packet, h);
            Segmenter.SegmentCount(packet, h, mss);
            var copy = (byte[])packet.Clone();
            bool completed = Segmenter.TryCompleteChecksum(copy, h);
            if (!h.NeedsChecksum) Assert.Equal(packet, copy);
            else if (!completed) Assert.Equal(packet, copy);

            if (round % 64 == 0) { coalescer.Reset(); batchTaken = 0; }
            if (coalescer.TryAdd(packet, round)) { taken++; batchTaken++; }
            int members = 0;
            for (int g = 0; g < coalescer.GroupCount; g++)
            {
                members += coalescer.Members(g);
                if (round % 64 == 63) Assert.True(coalescer.Group(g).Length >= 10 + 40);
            }
            Assert.Equal(batchTaken, members);
        }
        Assert.True(segmented > 100, $"only {segmented} inputs segmented");
        Assert.True(taken > 10, $"only {taken} packets taken");
    }
}
