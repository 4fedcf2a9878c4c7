using Lisp.DataPlane.Offload;
using Xunit;
using static Lisp.DataPlane.Tests.Offload.OffloadReference;

namespace Lisp.DataPlane.Tests.Offload;

/// <summary>
/// UdpCoalescer against the independent reference: USO super-packets built by the reference are cut by Segmenter,
/// every segment is verified by the reference, and the coalescer must join them back into the super-packet byte for
/// byte (the reference builds it in NEEDS_CSUM form, which is what the coalescer emits); segmenting that again gives
/// the same segments. Then the join and refusal rules one by one, and garbage (the allocation-free hot path is in OffloadAllocationTests).
/// </summary>
public sealed class OffloadUdpCoalescerTests
{
    private static VirtioNetHeader Uso(int mss) => new() { Flags = VirtioNetHeader.FlagNeedsCsum, GsoType = VirtioNetHeader.GsoUdpL4, GsoSize = (ushort)mss };

    /// <summary>Cuts a USO super-packet (no vnet header) into its wire segments.</summary>
    private static byte[][] Cut(ReadOnlySpan<byte> super, int mss)
    {
        var h = Uso(mss);
        int headers = Segmenter.HeaderLength(super, h);
        Assert.True(headers > 0);
        int count = Segmenter.SegmentCount(super, h, mss);
        var output = new byte[count * (headers + mss)];
        var lengths = new int[count];
        Assert.Equal(count, Segmenter.Segment(super, h, mss, output, 0, lengths));
        var segments = new byte[count][];
        for (int k = 0; k < count; k++) segments[k] = output.AsSpan(k * (headers + mss), lengths[k]).ToArray();
        return segments;
    }

    private static byte[] Plain(byte[] packet) => [.. new byte[10], .. packet];

    private static bool IsV6(byte[] p) => p[0] >> 4 == 6;

    /// <summary>Re-seals a hand-edited wire datagram: IPv4 header checksum, then the full UDP checksum.</summary>
    private static byte[] Reseal(byte[] p)
    {
        bool v6 = IsV6(p);
        if (!v6)
        {
            Write16(p, 10, 0);
            Write16(p, 10, Checksum(p, 0, (p[0] & 15) * 4));
        }
        CompleteL4(p, v6, 17);
        return p;
    }

    /// <summary>The same datagram with its payload cut to <paramref name="payload"/> bytes, lengths and checksums fixed.</summary>
    private static byte[] Shortened(byte[] segment, int payload)
    {
        bool v6 = IsV6(segment);
        int ip = v6 ? 40 : 20;
        var p = segment.AsSpan(0, ip + 8 + payload).ToArray();
        if (v6) Write16(p, 4, 8 + payload);
        else Write16(p, 2, p.Length);
        Write16(p, ip + 4, 8 + payload);
        return Reseal(p);
    }

    private static void AssertUsoHeader(ReadOnlySpan<byte> group, int ipHeader, int gsoSize)
    {
        Assert.True(VirtioNetHeader.TryRead(group, out var h));
        Assert.Equal(VirtioNetHeader.FlagNeedsCsum, h.Flags);
        Assert.Equal(VirtioNetHeader.GsoUdpL4, h.GsoType);
        Assert.Equal(ipHeader + 8, h.HeaderLength);
        Assert.Equal(gsoSize, h.GsoSize);
        Assert.Equal(ipHeader, h.CsumStart);
        Assert.Equal(6, h.CsumOffset);
    }

    [Fact]
    public void Uso_super_packets_split_verify_and_coalesce_back_byte_exact()
    {
        var rng = new Random(20261207);
        var coalescer = new UdpCoalescer(maxPackets: 160, maxFlowsPerBatch: 8, maxPacketSize: 9216);
        int joined = 0, singles = 0, fullGroups = 0;
        for (int round = 0; round < 300; round++)
        {
            // Two flows per batch, interleaved at random (each flow's own order kept).
            var supers = new byte[2][];
            var cuts = new byte[2][][];
            var mssOf = new int[2];
            for (int f = 0; f < 2; f++)
            {
                bool v6 = rng.Next(2) == 0;
                int headers = (v6 ? 40 : 20) + 8;
                int mss = rng.Next(4) == 0 ? rng.Next(1, 200) : rng.Next(200, 9216 - headers + 1);
                int payload = rng.Next(1, Math.Min(64 * mss, 65535 - headers) + 1);
                if (round % 10 == 0) payload = Math.Min(rng.Next(1, 65) * mss, 65535 - headers); // last segment full
                if (round % 25 == 0)
                {
                    mss = rng.Next(1, 1000);
                    payload = 64 * mss; // exactly 64 members
                }
                supers[f] = Build(rng, v6, 17, payload);
                mssOf[f] = mss;
                cuts[f] = Cut(supers[f], mss);
                Assert.Equal((payload + mss - 1) / mss, cuts[f].Length);
                foreach (var s in cuts[f])
                {
                    Assert.True(L4ChecksumOk(s, v6, 17), $"round {round}: segment UDP checksum");
                    Assert.True(v6 || Ipv4HeaderOk(s), $"round {round}: segment IPv4 header checksum");
                }
            }

            coalescer.Reset();
            int[] next = [0, 0];
            var firstIdOf = new int[2];
            for (int id = 0; next[0] < cuts[0].Length || next[1] < cuts[1].Length; id++)
            {
                int f = next[0] == cuts[0].Length ? 1 : next[1] == cuts[1].Length ? 0 : rng.Next(2);
                if (next[f] == 0) firstIdOf[f] = id;
                Assert.True(coalescer.TryAdd(cuts[f][next[f]++], id), $"round {round}: segment refused");
            }

            Assert.Equal(2, coalescer.GroupCount);
            for (int g = 0; g < 2; g++)
            {
                int f = coalescer.FirstId(g) == firstIdOf[0] ? 0 : 1;
                Assert.Equal(firstIdOf[f], coalescer.FirstId(g));
                Assert.Equal(cuts[f].Length, coalescer.Members(g));
                var group = coalescer.Group(g).ToArray();
                var super = supers[f];
                bool v6 = IsV6(super);
                int ip = v6 ? 40 : 20;
                if (cuts[f].Length == 1)
                {
                    Assert.Equal(Plain(cuts[f][0]), group); // a single datagram goes out as it came
                    singles++;
                    continue;
                }
                joined++;
                if (cuts[f].Length == 64) fullGroups++;
                AssertUsoHeader(group, ip, mssOf[f]);
                var packet = group[10..];
                // The fields the coalescer computes, checked against the reference on their own...
                Assert.Equal(super.Length - ip, Read16(packet, ip + 4));
                Assert.Equal(FoldedSum([], 0, 0, PseudoSum(packet, v6, 17, packet.Length - ip)), Read16(packet, ip + 6));
                if (!v6)
                {
                    Assert.Equal(Read16(cuts[f][0], 4), Read16(packet, 4)); // ID of the first member
                    Assert.True(Ipv4HeaderOk(packet));
                }
                // ...and the whole: the reference's super-packet, byte for byte.
                Assert.Equal(super, packet);

                // Segmenting the coalesced packet with its own vnet header gives the original segments again.
                Assert.True(VirtioNetHeader.TryRead(group, out var h));
                Assert.Equal(cuts[f], Cut(packet, h.GsoSize));
            }
        }
        Assert.True(joined > 400, $"only {joined} joined groups");
        Assert.True(singles > 5, $"only {singles} single-datagram groups");
        Assert.True(fullGroups >= 5, $"only {fullGroups} groups of 64");
    }

    [Fact]
    public void Different_size_in_the_middle_ends_or_splits_the_group()
    {
        var rng = new Random(1);
        var seg = Cut(Build(rng, false, 17, 4000), 1000); // 1000 x 4
        var shortOne = Shortened(seg[1], 700);

        // A shorter member joins as the last one; the next equal-sized datagram starts a new group.
        var c = new UdpCoalescer(16);
        Assert.True(c.TryAdd(seg[0], 0));
        Assert.True(c.TryAdd(shortOne, 1));
        Assert.True(c.TryAdd(seg[2], 2));
        Assert.True(c.TryAdd(seg[3], 3));
        Assert.Equal(2, c.GroupCount);
        Assert.Equal(2, c.Members(0));
        Assert.Equal(2, c.Members(1));
        Assert.Equal(2, c.FirstId(1));
        var first = c.Group(0).ToArray();
        AssertUsoHeader(first, 20, 1000);
        Assert.Equal(10 + 28 + 1700, first.Length);
        Assert.Equal([.. seg[0][28..], .. shortOne[28..]], first[38..]);
        Assert.Equal(8 + 1700, Read16(first, 10 + 24));

        // A longer datagram after a shorter first one cannot join: gso_size is the first's length.
        c.Reset();
        Assert.True(c.TryAdd(shortOne, 0));
        Assert.True(c.TryAdd(seg[2], 1));
        Assert.Equal(2, c.GroupCount);
        Assert.Equal(Plain(shortOne), c.Group(0).ToArray());
        Assert.Equal(Plain(seg[2]), c.Group(1).ToArray());
    }

    [Fact]
    public void Corrupt_checksums_are_not_taken_and_split_the_flow()
    {
        var rng = new Random(2);
        foreach (bool v6 in new[] { false, true })
        {
            var seg = Cut(Build(rng, v6, 17, 4000), 1000);
            int ip = v6 ? 40 : 20;
            var corrupt = (byte[])seg[2].Clone();
            corrupt[ip + 8 + 100] ^= 0x40; // payload bit flip: UDP checksum no longer verifies
            var c = new UdpCoalescer(16);
            Assert.True(c.TryAdd(seg[0], 0));
            Assert.True(c.TryAdd(seg[1], 1));
            Assert.False(c.TryAdd(corrupt, 2));
            Assert.True(c.TryAdd(seg[3], 3));
            Assert.Equal(2, c.GroupCount);
            Assert.Equal(2, c.Members(0));
            Assert.Equal(3, c.FirstId(1));
            Assert.Equal(Plain(seg[3]), c.Group(1).ToArray());
        }

        // IPv4 header checksum stale (TTL changed, UDP checksum still right: TTL is not in the pseudo-header).
        var seg4 = Cut(Build(rng, false, 17, 2000), 1000);
        var staleHeader = (byte[])seg4[1].Clone();
        staleHeader[8] ^= 1;
        var c4 = new UdpCoalescer(16);
        Assert.True(c4.TryAdd(seg4[0], 0));
        Assert.False(c4.TryAdd(staleHeader, 1));
        Assert.Equal(1, c4.GroupCount);
    }

    [Fact]
    public void Ipv4_zero_checksum_is_taken_ipv6_zero_checksum_is_not()
    {
        var rng = new Random(3);
        var super4 = Build(rng, false, 17, 3000);
        var seg4 = Cut(super4, 1000);
        var none = (byte[])seg4[1].Clone();
        Write16(none, 26, 0); // RFC 768: no checksum
        var c = new UdpCoalescer(16);
        Assert.True(c.TryAdd(seg4[0], 0));
        Assert.True(c.TryAdd(none, 1));
        Assert.True(c.TryAdd(seg4[2], 2));
        Assert.Equal(1, c.GroupCount);
        Assert.Equal(super4, c.Group(0)[10..].ToArray());

        var seg6 = Cut(Build(rng, true, 17, 3000), 1000);
        var zero6 = (byte[])seg6[1].Clone();
        Write16(zero6, 46, 0); // forbidden for IPv6 (RFC 8200 8.1)
        c.Reset();
        Assert.True(c.TryAdd(seg6[0], 0));
        Assert.False(c.TryAdd(zero6, 1));
        Assert.True(c.TryAdd(seg6[2], 2));
        Assert.Equal(2, c.GroupCount);
        Assert.Equal(Plain(seg6[0]), c.Group(0).ToArray());
        Assert.Equal(Plain(seg6[2]), c.Group(1).ToArray());
    }

    [Fact]
    public void Interleaved_flows_and_other_ports_make_separate_groups()
    {
        var rng = new Random(4);
        var a = Build(rng, false, 17, 3 * 1200 - 7);
        var b = Build(rng, true, 17, 3 * 1200);
        var sa = Cut(a, 1200);
        var sb = Cut(b, 1200);
        // Same addresses as a, other source port.
        var d = (byte[])a.Clone();
        d[21] ^= 1;
        Write16(d, 26, 0);
        Write16(d, 26, FoldedSum([], 0, 0, PseudoSum(d, false, 17, d.Length - 20)));
        var sd = Cut(d, 1200);
        var c = new UdpCoalescer(16);
        for (int k = 0; k < 3; k++)
        {
            Assert.True(c.TryAdd(sa[k], 3 * k));
            Assert.True(c.TryAdd(sb[k], 3 * k + 1));
            Assert.True(c.TryAdd(sd[k], 3 * k + 2));
        }
        Assert.Equal(3, c.GroupCount);
        Assert.Equal([0, 1, 2], Enumerable.Range(0, 3).Select(c.FirstId).ToArray());
        Assert.Equal(a, c.Group(0)[10..].ToArray());
        Assert.Equal(b, c.Group(1)[10..].ToArray());
        Assert.Equal(d, c.Group(2)[10..].ToArray());
    }

    [Fact]
    public void Fragments_options_and_bad_lengths_are_not_taken()
    {
        var rng = new Random(5);
        var seg = Cut(Build(rng, false, 17, 3000), 1000);

        // First fragment (MF set, offset 0): ports readable, refused, closes the flow.
        var firstFragment = (byte[])seg[1].Clone();
        firstFragment[6] = 0x20;
        Reseal(firstFragment);
        var c = new UdpCoalescer(16);
        Assert.True(c.TryAdd(seg[0], 0));
        Assert.False(c.TryAdd(firstFragment, 1));
        Assert.True(c.TryAdd(seg[2], 2));
        Assert.Equal(2, c.GroupCount);

        // A later fragment (offset != 0) has no UDP header at all.
        var laterFragment = (byte[])seg[1].Clone();
        laterFragment[6] = 0x00;
        laterFragment[7] = 0x10;
        Write16(laterFragment, 10, 0);
        Write16(laterFragment, 10, Checksum(laterFragment, 0, 20));
        Assert.False(c.TryAdd(laterFragment, 3));

        // Reserved flag bit.
        var evil = (byte[])seg[1].Clone();
        evil[6] |= 0x80;
        Assert.False(c.TryAdd(Reseal(evil), 4));

        // IPv4 options.
        Assert.False(c.TryAdd(Reseal(Build(rng, false, 17, 100, ipOptionBytes: 4)), 5));

        // UDP length field not matching the IP length (checksum computed over the IP length, so only the field is off).
        var lying = (byte[])seg[1].Clone();
        Write16(lying, 24, 1000 + 8 - 1);
        Assert.False(c.TryAdd(Reseal(lying), 6));

        // No payload.
        Assert.False(c.TryAdd(Reseal(Build(rng, true, 17, 0)), 7));

        // IPv6 extension header in front of UDP (next header = destination options).
        var ext = Reseal(Build(rng, true, 17, 100));
        ext[6] = 60;
        Assert.False(c.TryAdd(ext, 8));

        // TCP is not ours.
        var tcp = Build(rng, false, 6, 100);
        CompleteL4(tcp, false, 6);
        Assert.False(c.TryAdd(tcp, 9));
        Assert.Equal(2, c.GroupCount);
    }

    [Fact]
    public void Ip_fields_must_match_to_join_but_the_ipv4_id_may_be_anything()
    {
        var rng = new Random(6);
        var seg4 = Cut(Build(rng, false, 17, 2000), 1000);
        var seg6 = Cut(Build(rng, true, 17, 2000), 1000);
        // IPv4: TOS, DF, TTL. IPv6: traffic class, flow label, hop limit.
        (bool v6, int offset, byte mask)[] fields = [(false, 1, 0x04), (false, 6, 0x40), (false, 8, 0x04), (true, 1, 0x40), (true, 3, 0x04), (true, 7, 0x04)];
        foreach (var (v6, offset, mask) in fields)
        {
            var second = (byte[])(v6 ? seg6 : seg4)[1].Clone();
            second[offset] ^= mask;
            var c = new UdpCoalescer(16);
            Assert.True(c.TryAdd((v6 ? seg6 : seg4)[0], 0));
            Assert.True(c.TryAdd(Reseal(second), 1), $"offset {offset} v6 {v6}");
            Assert.Equal(2, c.GroupCount);
        }

        // IPv4 ID unrelated to the first's: still joined, the output carries the first's ID.
        var super = Build(rng, false, 17, 3000);
        var seg = Cut(super, 1000);
        var odd = (byte[])seg[1].Clone();
        Write16(odd, 4, Read16(seg[0], 4) ^ 0x5a5a);
        var joined = new UdpCoalescer(16);
        Assert.True(joined.TryAdd(seg[0], 0));
        Assert.True(joined.TryAdd(Reseal(odd), 1));
        Assert.True(joined.TryAdd(seg[2], 2));
        Assert.Equal(1, joined.GroupCount);
        Assert.Equal(super, joined.Group(0)[10..].ToArray());
    }

    [Fact]
    public void At_most_64_members_and_65535_bytes()
    {
        var rng = new Random(7);
        // 65 datagrams of 100 bytes: 64 in one group, the 65th starts the next.
        var seg = Cut(Build(rng, true, 17, 6500), 100);
        Assert.Equal(65, seg.Length);
        var c = new UdpCoalescer(128);
        for (int k = 0; k < seg.Length; k++) Assert.True(c.TryAdd(seg[k], k));
        Assert.Equal(2, c.GroupCount);
        Assert.Equal(64, c.Members(0));
        Assert.Equal(1, c.Members(1));
        Assert.Equal(64, c.FirstId(1));
        Assert.Equal(10 + 48 + 6400, c.Group(0).Length);
        Assert.Equal(Plain(seg[64]), c.Group(1).ToArray());

        // 50 datagrams of 1400 bytes of one flow: 20 + 8 + 46 * 1400 = 64428 fits, 47 would be 65828.
        var a = Build(rng, false, 17, 40 * 1400);
        var b = (byte[])a.AsSpan(0, 28 + 10 * 1400).ToArray();
        Write16(b, 2, b.Length);
        Write16(b, 24, b.Length - 20);
        Write16(b, 10, 0);
        Write16(b, 10, Checksum(b, 0, 20));
        Write16(b, 26, FoldedSum([], 0, 0, PseudoSum(b, false, 17, b.Length - 20)));
        var all = Cut(a, 1400).Concat(Cut(b, 1400)).ToArray();
        Assert.Equal(50, all.Length);
        c.Reset();
        for (int k = 0; k < all.Length; k++) Assert.True(c.TryAdd(all[k], k));
        Assert.Equal(2, c.GroupCount);
        Assert.Equal(46, c.Members(0));
        Assert.Equal(4, c.Members(1));
        Assert.Equal(10 + 28 + 46 * 1400, c.Group(0).Length);
        Assert.Equal(28 + 46 * 1400, Read16(c.Group(0).ToArray(), 10 + 2));
    }

    [Fact]
    public void Too_many_packets_or_too_large_are_refused_and_flows_beyond_the_slots_still_join()
    {
        var rng = new Random(8);
        var seg = Cut(Build(rng, false, 17, 4000), 1000);
        var c = new UdpCoalescer(maxPackets: 2, maxFlowsPerBatch: 4, maxPacketSize: 1100);
        Assert.True(c.TryAdd(seg[0], 0));
        Assert.True(c.TryAdd(seg[1], 1));
        Assert.False(c.TryAdd(seg[2], 2));
        c.Reset();
        Assert.False(c.TryAdd(Reseal(Build(rng, false, 17, 1200)), 0));
        Assert.Equal(0, c.GroupCount);

        var flows = Enumerable.Range(0, 5).Select(_ => Cut(Build(rng, false, 17, 2000), 1000)).ToArray();
        var few = new UdpCoalescer(32, maxFlowsPerBatch: 2);
        int id = 0;
        foreach (var f in flows) { Assert.True(few.TryAdd(f[0], id++)); Assert.True(few.TryAdd(f[1], id++)); }
        Assert.Equal(5, few.GroupCount);
        for (int g = 0; g < 5; g++) Assert.Equal(2, few.Members(g));
    }

    [Fact]
    public void Adds_after_reading_groups_start_new_groups_and_old_spans_stay()
    {
        var rng = new Random(9);
        var seg = Cut(Build(rng, true, 17, 3000), 1000);
        var c = new UdpCoalescer(16);
        Assert.True(c.TryAdd(seg[0], 0));
        Assert.True(c.TryAdd(seg[1], 1));
        var first = c.Group(0).ToArray();
        Assert.True(c.TryAdd(seg[2], 2));
        Assert.Equal(2, c.GroupCount);
        Assert.Equal(first, c.Group(0).ToArray());
        Assert.Equal(Plain(seg[2]), c.Group(1).ToArray());
        Assert.Throws<ArgumentOutOfRangeException>(() => c.Group(2));
    }

    [Fact]
    public void Garbage_never_throws_and_whatever_is_joined_segments_into_valid_datagrams()
    {
        var rng = new Random(4242);
        var c = new UdpCoalescer(maxPackets: 64, maxFlowsPerBatch: 4, maxPacketSize: 2048);
        var templates = new[] { Cut(Build(rng, false, 17, 3000), 300), Cut(Build(rng, true, 17, 3000), 300) };
        int taken = 0, checkedGroups = 0;
        for (int batch = 0; batch < 100; batch++)
        {
            c.Reset();
            int accepted = 0;
            for (int i = 0; i < 40; i++)
            {
                byte[] p;
                switch (rng.Next(4))
                {
                    case 0: // pure noise, any length
                        p = new byte[rng.Next(0, 120)];
                        rng.NextBytes(p);
                        break;
                    case 1: // noise that looks like IPv4/IPv6 UDP
                        p = new byte[rng.Next(1, 200)];
                        rng.NextBytes(p);
                        p[0] = (byte)(rng.Next(2) == 0 ? 0x45 : 0x60 | (p[0] & 15));
                        if (p.Length > 9) p[9] = 17;
                        if (p.Length > 6 && p[0] >> 4 == 6) p[6] = 17;
                        break;
                    case 2: // a real segment, a few bytes flipped, maybe truncated
                        var t = templates[rng.Next(2)];
                        p = (byte[])t[rng.Next(t.Length)].Clone();
                        for (int f = rng.Next(0, 3); f > 0; f--) p[rng.Next(p.Length)] ^= (byte)rng.Next(1, 256);
                        if (rng.Next(3) == 0) p = p[..rng.Next(p.Length)];
                        break;
                    default: // a real segment, untouched
                        var u = templates[rng.Next(2)];
                        p = u[rng.Next(u.Length)];
                        break;
                }
                if (c.TryAdd(p, i)) accepted++;
            }
            taken += accepted;
            int members = 0;
            for (int g = 0; g < c.GroupCount; g++)
            {
                members += c.Members(g);
                var group = c.Group(g).ToArray();
                Assert.True(VirtioNetHeader.TryRead(group, out var h));
                var packet = group[10..];
                bool v6 = IsV6(packet);
                if (c.Members(g) == 1)
                {
                    Assert.Equal(0, h.Flags);
                    continue;
                }
                // Every joined group is a valid USO super-packet whose segments the reference accepts.
                var segments = Cut(packet, h.GsoSize);
                Assert.Equal(c.Members(g), segments.Length);
                foreach (var s in segments)
                {
                    Assert.True(L4ChecksumOk(s, v6, 17));
                    Assert.True(v6 || Ipv4HeaderOk(s));
                }
                checkedGroups++;
            }
            Assert.Equal(accepted, members);
        }
        Assert.True(taken > 500, $"only {taken} taken");
        Assert.True(checkedGroups > 50, $"only {checkedGroups} joined groups checked");
    }
}
