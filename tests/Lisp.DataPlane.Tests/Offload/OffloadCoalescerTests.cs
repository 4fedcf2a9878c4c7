using Lisp.DataPlane.Offload;
using Xunit;
using static Lisp.DataPlane.Tests.Offload.OffloadReference;

namespace Lisp.DataPlane.Tests.Offload;

/// <summary>TcpCoalescer join and refusal rules, on segments cut by the reference-checked Segmenter.</summary>
public sealed class OffloadCoalescerTests
{
    private const byte Fin = 0x01, Syn = 0x02, Rst = 0x04, Psh = 0x08, Ack = 0x10, Urg = 0x20;

    private static byte[][] Cut(byte[] super, bool v6, int mss)
    {
        int ip = v6 ? 40 : (super[0] & 15) * 4;
        var h = new VirtioNetHeader { GsoType = v6 ? VirtioNetHeader.GsoTcpV6 : VirtioNetHeader.GsoTcpV4, GsoSize = (ushort)mss };
        int headers = Segmenter.HeaderLength(super, h);
        int count = Segmenter.SegmentCount(super, h, mss);
        var output = new byte[count * (headers + mss)];
        var lengths = new int[count];
        Assert.Equal(count, Segmenter.Segment(super, h, mss, output, 0, lengths));
        var segments = new byte[count][];
        for (int k = 0; k < count; k++) segments[k] = output.AsSpan(k * (headers + mss), lengths[k]).ToArray();
        return segments;
    }

    /// <summary>A complete (wire) single TCP segment with the given flags and payload.</summary>
    private static byte[] Single(Random rng, bool v6, byte flags, int payload)
    {
        var p = Build(rng, v6, 6, payload, tcpFlags: flags);
        CompleteL4(p, v6, 6);
        return p;
    }

    private static byte[] Plain(byte[] packet) => [.. new byte[10], .. packet];

    [Fact]
    public void Corrupt_segment_is_not_taken_and_splits_the_flow()
    {
        var rng = new Random(1);
        var super = Build(rng, false, 6, 4 * 1000);
        var seg = Cut(super, false, 1000);
        seg[2][100] ^= 0x40; // payload bit flip: TCP checksum no longer verifies
        var c = new TcpCoalescer(16);
        Assert.True(c.TryAdd(seg[0], 0));
        Assert.True(c.TryAdd(seg[1], 1));
        Assert.False(c.TryAdd(seg[2], 2));
        Assert.True(c.TryAdd(seg[3], 3));
        Assert.Equal(2, c.GroupCount);
        Assert.Equal(2, c.Members(0));
        Assert.Equal(1, c.Members(1));
        Assert.Equal(3, c.FirstId(1));
        Assert.Equal(Plain(seg[3]), c.Group(1).ToArray());

        // The joined pair carries exactly segments 0 and 1.
        var pair = c.Group(0).ToArray();
        Assert.True(VirtioNetHeader.TryRead(pair, out var h));
        Assert.Equal(1000, h.GsoSize);
        Assert.Equal(10 + 40 + 2000, pair.Length);
        Assert.Equal(super.AsSpan(40, 2000).ToArray(), pair[50..]);
    }

    [Fact]
    public void Corrupt_ipv4_header_checksum_is_not_taken()
    {
        var rng = new Random(2);
        var seg = Cut(Build(rng, false, 6, 2000), false, 1000);
        seg[1][8] ^= 1; // TTL changed, header checksum stale
        var c = new TcpCoalescer(16);
        Assert.True(c.TryAdd(seg[0], 0));
        Assert.False(c.TryAdd(seg[1], 1));
        Assert.Equal(1, c.GroupCount);
    }

    [Fact]
    public void Interleaved_flows_make_two_groups_each_byte_exact()
    {
        var rng = new Random(3);
        var a = Build(rng, false, 6, 3 * 1200 - 7);
        var b = Build(rng, true, 6, 3 * 1200);
        var sa = Cut(a, false, 1200);
        var sb = Cut(b, true, 1200);
        var c = new TcpCoalescer(16);
        for (int k = 0; k < 3; k++)
        {
            Assert.True(c.TryAdd(sa[k], 2 * k));
            Assert.True(c.TryAdd(sb[k], 2 * k + 1));
        }
        Assert.Equal(2, c.GroupCount);
        Assert.Equal(0, c.FirstId(0));
        Assert.Equal(1, c.FirstId(1));
        Assert.Equal(3, c.Members(0));
        Assert.Equal(3, c.Members(1));
        Assert.Equal(a, c.Group(0)[10..].ToArray());
        Assert.Equal(b, c.Group(1)[10..].ToArray());
    }

    [Fact]
    public void Same_addresses_other_port_is_another_flow()
    {
        var rng = new Random(4);
        var a = Build(rng, false, 6, 2000);
        var b = (byte[])a.Clone();
        b[21] ^= 1; // source port
        Write16(b, 36, 0);
        Write16(b, 36, FoldedSum([], 0, 0, PseudoSum(b, false, 6, b.Length - 20)));
        var sa = Cut(a, false, 1000);
        var sb = Cut(b, false, 1000);
        var c = new TcpCoalescer(16);
        Assert.True(c.TryAdd(sa[0], 0));
        Assert.True(c.TryAdd(sb[0], 1));
        Assert.True(c.TryAdd(sa[1], 2));
        Assert.True(c.TryAdd(sb[1], 3));
        Assert.Equal(2, c.GroupCount);
        Assert.Equal(a, c.Group(0)[10..].ToArray());
        Assert.Equal(b, c.Group(1)[10..].ToArray());
    }

    [Fact]
    public void Gap_in_seq_gives_separate_groups()
    {
        var rng = new Random(5);
        var seg = Cut(Build(rng, true, 6, 3000), true, 1000);
        var c = new TcpCoalescer(16);
        Assert.True(c.TryAdd(seg[0], 0));
        Assert.True(c.TryAdd(seg[2], 1)); // segment 1 lost
        Assert.Equal(2, c.GroupCount);
        Assert.Equal(Plain(seg[0]), c.Group(0).ToArray());
        Assert.Equal(Plain(seg[2]), c.Group(1).ToArray());
    }

    [Fact]
    public void Retransmission_with_same_ip_id_is_another_group()
    {
        var rng = new Random(6);
        var seg = Cut(Build(rng, false, 6, 2000), false, 1000);
        var c = new TcpCoalescer(16);
        Assert.True(c.TryAdd(seg[0], 0));
        Assert.True(c.TryAdd(seg[0], 1));
        Assert.Equal(2, c.GroupCount);
    }

    [Fact]
    public void Short_member_and_psh_close_the_group()
    {
        var rng = new Random(7);
        // 1000 + 1000 + 500 (short), then a further segment of the same flow must start a new group.
        var super = Build(rng, false, 6, 3500, tcpFlags: Ack);
        var seg = Cut(super, false, 1000); // 1000, 1000, 1000, 500
        var c = new TcpCoalescer(16);
        foreach (var (s, i) in seg.Select((s, i) => (s, i))) Assert.True(c.TryAdd(s, i));
        Assert.Equal(1, c.GroupCount);
        Assert.Equal(super, c.Group(0)[10..].ToArray());

        // A longer segment after a shorter first one cannot join (gso_size is the first's length).
        c.Reset();
        var other = Cut(Build(rng, false, 6, 1500), false, 1000); // 1000, 500
        var small = Cut(Build(rng, false, 6, 1500), false, 500);  // 500, 500, 500
        Assert.True(c.TryAdd(small[0], 0));
        Assert.True(c.TryAdd(small[1], 1));
        Assert.True(c.TryAdd(other[0], 2));
        Assert.Equal(2, c.GroupCount);

        // PSH on a middle segment ends the group; the next starts a new one.
        c.Reset();
        var pshSuper = Build(rng, true, 6, 2000, tcpFlags: Ack | Psh);
        var firstHalf = Cut(pshSuper, true, 1000);  // segment 1 carries PSH
        var next = Cut(Build(rng, true, 6, 1000), true, 1000);
        // Make `next` continue the flow: same header as segment 1 with seq + 1000 and IPv6 fields identical.
        var cont = (byte[])firstHalf[1].Clone();
        cont[40 + 13] = Ack;
        uint seq = Read32(cont, 44) + 1000;
        cont[44] = (byte)(seq >> 24); cont[45] = (byte)(seq >> 16); cont[46] = (byte)(seq >> 8); cont[47] = (byte)seq;
        next[0].AsSpan(60).CopyTo(cont.AsSpan(60));
        CompleteL4(cont, true, 6);
        Assert.True(c.TryAdd(firstHalf[0], 0));
        Assert.True(c.TryAdd(firstHalf[1], 1));
        Assert.True(c.TryAdd(cont, 2));
        Assert.Equal(2, c.GroupCount);
        Assert.Equal(2, c.Members(0));
        Assert.Equal(pshSuper, c.Group(0)[10..].ToArray());
        Assert.Equal(Plain(cont), c.Group(1).ToArray());
    }

    [Fact]
    public void Syn_fin_rst_urg_and_pure_acks_are_not_taken_and_close_the_flow()
    {
        var rng = new Random(8);
        var c = new TcpCoalescer(16);
        foreach (bool v6 in new[] { false, true })
        {
            Assert.False(c.TryAdd(Single(rng, v6, Syn, 10), 0));
            Assert.False(c.TryAdd(Single(rng, v6, Syn | Ack, 10), 0));
            Assert.False(c.TryAdd(Single(rng, v6, Fin | Ack, 10), 0));
            Assert.False(c.TryAdd(Single(rng, v6, Rst | Ack, 10), 0));
            Assert.False(c.TryAdd(Single(rng, v6, Urg | Ack, 10), 0));
            Assert.False(c.TryAdd(Single(rng, v6, Ack, 0), 0)); // no payload
            Assert.True(c.TryAdd(Single(rng, v6, Ack, 10), 0));
        }
        Assert.False(c.TryAdd(Packets.UdpV4("10.0.0.1", "10.0.0.2", 1, 2, 100), 0));
        Assert.False(c.TryAdd(Build(rng, false, 6, 100, ipOptionBytes: 4), 0)); // IPv4 options

        // A FIN of an open flow closes its group: the next data segment starts a new group.
        c.Reset();
        var seg = Cut(Build(rng, false, 6, 3000), false, 1000);
        var fin = (byte[])seg[1].Clone();
        fin[20 + 13] = Ack | Fin;
        CompleteL4(fin, false, 6);
        Assert.True(c.TryAdd(seg[0], 0));
        Assert.False(c.TryAdd(fin, 1));
        Assert.True(c.TryAdd(seg[1], 2));
        Assert.Equal(2, c.GroupCount);
    }

    [Fact]
    public void Ip_fields_must_match_to_join()
    {
        var rng = new Random(9);
        var seg4 = Cut(Build(rng, false, 6, 2000), false, 1000);
        var seg6 = Cut(Build(rng, true, 6, 2000), true, 1000);
        (bool v6, int offset)[] fields = [(false, 1), (false, 8), (true, 1), (true, 3), (true, 7), (false, 20 + 9) /* ack */, (false, 20 + 15) /* window */];
        foreach (var (v6, offset) in fields)
        {
            var second = (byte[])(v6 ? seg6 : seg4)[1].Clone();
            second[offset] ^= 0x04;
            if (!v6)
            {
                Write16(second, 10, 0);
                Write16(second, 10, Checksum(second, 0, 20));
            }
            CompleteL4(second, v6, 6);
            var c = new TcpCoalescer(16);
            Assert.True(c.TryAdd((v6 ? seg6 : seg4)[0], 0));
            Assert.True(c.TryAdd(second, 1));
            Assert.Equal(2, c.GroupCount);
        }
    }

    [Fact]
    public void Group_never_exceeds_65535_bytes()
    {
        var rng = new Random(10);
        // 65 segments of 1000 payload bytes fit in one group (20 + 20 + 65000 <= 65535).
        var seg = Cut(Build(rng, false, 6, 65000), false, 1000);
        var c = new TcpCoalescer(128);
        int id = 0;
        foreach (var s in seg) Assert.True(c.TryAdd(s, id++));
        Assert.Equal(1, c.GroupCount);
        Assert.Equal(65, c.Members(0));
        Assert.Equal(10 + 65040, c.Group(0).Length);
        // One more continuous 1000-byte segment would make 66040: it starts a new group.
        var last = (byte[])seg[1].Clone();
        uint seq = Read32(seg[^1], 24) + 1000;
        last[24] = (byte)(seq >> 24); last[25] = (byte)(seq >> 16); last[26] = (byte)(seq >> 8); last[27] = (byte)seq;
        Write16(last, 4, (Read16(seg[^1], 4) + 1) & 0xffff);
        Write16(last, 10, 0);
        Write16(last, 10, Checksum(last, 0, 20));
        CompleteL4(last, false, 6);
        c.Reset();
        id = 0;
        foreach (var s in seg) Assert.True(c.TryAdd(s, id++));
        Assert.True(c.TryAdd(last, id));
        Assert.Equal(2, c.GroupCount);
        Assert.Equal(65, c.Members(0));
    }

    [Fact]
    public void Adds_after_reading_groups_start_new_groups_and_old_spans_stay()
    {
        var rng = new Random(11);
        var super = Build(rng, false, 6, 3000);
        var seg = Cut(super, false, 1000);
        var c = new TcpCoalescer(16);
        Assert.True(c.TryAdd(seg[0], 0));
        Assert.True(c.TryAdd(seg[1], 1));
        var first = c.Group(0).ToArray();
        Assert.True(c.TryAdd(seg[2], 2));
        Assert.Equal(2, c.GroupCount);
        Assert.Equal(first, c.Group(0).ToArray());
        Assert.Equal(Plain(seg[2]), c.Group(1).ToArray());
    }

    [Fact]
    public void More_flows_than_slots_still_coalesce_the_recent_ones()
    {
        var rng = new Random(12);
        var flows = Enumerable.Range(0, 5).Select(_ => Cut(Build(rng, false, 6, 2000), false, 1000)).ToArray();
        var c = new TcpCoalescer(32, maxFlowsPerBatch: 2);
        int id = 0;
        foreach (var f in flows) { Assert.True(c.TryAdd(f[0], id++)); Assert.True(c.TryAdd(f[1], id++)); }
        Assert.Equal(5, c.GroupCount);
        for (int g = 0; g < 5; g++) Assert.Equal(2, c.Members(g));

        c.Reset();
        id = 0;
        foreach (var f in flows) Assert.True(c.TryAdd(f[0], id++)); // 5 open flows, 2 slots: 3 evicted
        foreach (var f in flows) Assert.True(c.TryAdd(f[1], id++));
        Assert.Equal(10, Enumerable.Range(0, c.GroupCount).Sum(c.Members));
    }

    [Fact]
    public void Too_many_packets_or_too_large_are_refused()
    {
        var rng = new Random(13);
        var seg = Cut(Build(rng, false, 6, 4000), false, 1000);
        var c = new TcpCoalescer(maxPackets: 2, maxFlowsPerBatch: 4, maxPacketSize: 1100);
        Assert.True(c.TryAdd(seg[0], 0));
        Assert.True(c.TryAdd(seg[1], 1));
        Assert.False(c.TryAdd(seg[2], 2));
        c.Reset();
        Assert.False(c.TryAdd(Single(rng, false, Ack, 1200), 0));
        Assert.Equal(0, c.GroupCount);
    }
}
