using System.Net;
using System.Net.Sockets;
using Lisp.DataPlane.Offload;
using Lisp.DataPlane.Tests.Offload;
using Lisp.MapCache;
using Lisp.Wire;
using Xunit;

namespace Lisp.DataPlane.Tests;

/// <summary>
/// The ITR and ETR with segmentation offload (issue 13): super-packets read with a virtio-net header are split at
/// encapsulation to fit the underlay, and joined again before the far TUN; checked against the independent reference
/// checksums of <see cref="OffloadReference"/>, byte for byte. In memory (TUNs and underlay), plus one run over real
/// loopback sockets with UDP GSO and GRO.
/// </summary>
public sealed class OffloadPipelineTests : IDisposable
{
    private static readonly IPAddress Rloc1 = IPAddress.Parse("192.0.2.1");
    private static readonly IPAddress Rloc2 = IPAddress.Parse("192.0.2.2");
    private const uint Iid = 7;

    private readonly InMemoryUnderlay _underlay = new();
    private readonly InMemoryTun _tunA = new("a") { VnetHeader = true };
    private readonly MapCacheWriter _cache = new();
    private readonly MissQueue _misses = new(capacity: 64, ratePerSecond: 1000, burst: 100);
    private readonly List<IDisposable> _dispose = [];

    private static DataPlaneOptions Options(ushort port = DataHeader.Port) =>
        new() { InstanceId = Iid, LocalRlocV4 = Rloc1, BatchSize = 16, MaxPacket = 1600, UnderlayMtu = 1500, DataPort = port };

    private void Map(string eid, IPAddress rloc)
    {
        _cache.AddOrReplace(EidPrefix.Parse($"[{Iid}]{eid}"), [new RlocSpec(rloc, 1, 50)], 60, long.MaxValue);
        _cache.Publish();
    }

    private T Own<T>(T d) where T : IDisposable
    {
        _dispose.Add(d);
        return d;
    }

    /// <summary>
    /// A TCP super-packet as the host hands it to a TUN with TSO: vnet header (GSO TCPV4/TCPV6, NEEDS_CSUM, the host's
    /// MSS) + one IP packet of <paramref name="payload"/> bytes from EID 10.1.0.1 / fd00:1::1 to 10.2.0.9 / fd00:2::9.
    /// </summary>
    private static (byte[] WithHeader, byte[] Packet) TcpSuper(Random rng, bool v6, int payload, int gsoSize, uint seq)
    {
        var p = OffloadReference.Build(rng, v6, 6, payload, tcpFlags: 0x18, seq: seq);
        if (v6)
        {
            IPAddress.Parse("fd00:1::1").GetAddressBytes().CopyTo(p, 8);
            IPAddress.Parse("fd00:2::9").GetAddressBytes().CopyTo(p, 24);
        }
        else
        {
            p[1] = 0; // ToS 0, so nothing in the path cares about ECN bits
            IPAddress.Parse("10.1.0.1").GetAddressBytes().CopyTo(p, 12);
            IPAddress.Parse("10.2.0.9").GetAddressBytes().CopyTo(p, 16);
            OffloadReference.Write16(p, 10, 0);
            OffloadReference.Write16(p, 10, OffloadReference.Checksum(p, 0, 20));
        }
        int ip = v6 ? 40 : 20;
        OffloadReference.Write16(p, ip + 16, OffloadReference.FoldedSum([], 0, 0, OffloadReference.PseudoSum(p, v6, 6, p.Length - ip)));
        var h = new VirtioNetHeader
        {
            Flags = VirtioNetHeader.FlagNeedsCsum,
            GsoType = v6 ? VirtioNetHeader.GsoTcpV6 : VirtioNetHeader.GsoTcpV4,
            HeaderLength = (ushort)(ip + 20),
            GsoSize = (ushort)gsoSize,
            CsumStart = (ushort)ip,
            CsumOffset = 16,
        };
        var all = new byte[VirtioNetHeader.Size + p.Length];
        h.Write(all);
        p.CopyTo(all, VirtioNetHeader.Size);
        return (all, p);
    }

    private static byte[] Payload(byte[] packet, bool v6)
    {
        int ip = v6 ? 40 : (packet[0] & 15) * 4;
        int tcp = (packet[ip + 12] >> 4) * 4;
        return packet[(ip + tcp)..];
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_super_packet_is_split_to_fit_the_underlay_and_joined_again_before_the_far_tun(bool innerV6)
    {
        Map(innerV6 ? "fd00:2::/64" : "10.2.0.0/24", Rloc2);
        var itr = Own(new ItrWorker(_tunA, () => _cache.Current, _underlay.Sender(Rloc1, writesOuterIp: true), null, _misses, Options()));
        var tunB = new InMemoryTun("b") { VnetHeader = true };
        var etr = Own(new EtrWorker(_underlay.Bind(Rloc2), new Dictionary<uint, ITun> { [Iid] = tunB }, Options()));
        var (withHeader, original) = TcpSuper(new Random(5), innerV6, payload: 20000, gsoSize: 1460, seq: 1_000_000);
        Assert.True(_tunA.Inject(withHeader));
        Assert.Equal(1, itr.RunOnce(0));

        // The host's MSS (1460) does not fit 1500 after 36 bytes of IPv4 + UDP + LISP: the ITR lowers it, so no segment
        // needs an ICMP too-big or a fragment.
        int innerHeaders = (innerV6 ? 40 : 20) + 20;
        int mss = 1500 - 36 - innerHeaders;
        int expected = (20000 + mss - 1) / mss;
        var outer = _underlay.Sent.ToArray();
        Assert.Equal(expected, outer.Length);
        var joined = new List<byte>();
        uint seq = 1_000_000;
        for (int k = 0; k < outer.Length; k++)
        {
            var (pkt, to) = outer[k];
            Assert.Equal(Rloc2, to.Address);
            Assert.True(pkt.Length <= 1500, $"segment {k}: {pkt.Length} bytes on a 1500-byte underlay");
            Assert.Equal(0, InternetChecksum.Compute(pkt.AsSpan(0, 20)));
            Assert.True(InMemoryUnderlay.TryStrip(pkt, out var payload, out _, out _, out var dport));
            Assert.Equal(4341, dport);
            Assert.True(DataHeader.TryRead(payload, out var lisp).IsOk);
            Assert.Equal(Iid, lisp.InstanceId);
            var inner = payload[DataHeader.Length..].ToArray();
            if (!innerV6) Assert.True(OffloadReference.Ipv4HeaderOk(inner), $"segment {k}: IPv4 header checksum");
            Assert.True(OffloadReference.L4ChecksumOk(inner, innerV6, 6), $"segment {k}: TCP checksum");
            Assert.Equal(seq, OffloadReference.Read32(inner, innerV6 ? 44 : 24));
            var data = Payload(inner, innerV6);
            Assert.Equal(k < outer.Length - 1 ? mss : 20000 - mss * (expected - 1), data.Length);
            seq += (uint)data.Length;
            joined.AddRange(data);
        }
        Assert.Equal(Payload(original, innerV6), joined.ToArray());
        Assert.Equal(1, itr.Counters.SuperPackets);
        Assert.Equal(expected, itr.Counters.SuperSegments);
        Assert.Equal(expected, itr.Counters.EncapPackets);
        Assert.Equal(0, itr.Counters.TotalDrops);

        // The ETR joins the segments into one super-packet for its TUN: same headers, same payload, GSO at the new MSS.
        Assert.Equal(expected, etr.RunOnce(0));
        var written = Assert.Single(tunB.Written);
        Assert.True(VirtioNetHeader.TryRead(written, out var vh));
        Assert.Equal(innerV6 ? VirtioNetHeader.GsoTcpV6 : VirtioNetHeader.GsoTcpV4, vh.GsoType);
        Assert.Equal(mss, vh.GsoSize);
        Assert.Equal(VirtioNetHeader.FlagNeedsCsum, vh.Flags);
        var super = written[VirtioNetHeader.Size..];
        Assert.Equal(original.Length, super.Length);
        Assert.Equal(Payload(original, innerV6), Payload(super, innerV6));
        // Headers as the host sent them, but for the TCP checksum field (the pseudo-header sum either way: NEEDS_CSUM).
        Assert.Equal(original.AsSpan(0, innerHeaders).ToArray(), super.AsSpan(0, innerHeaders).ToArray());
        Assert.Equal(1, etr.Counters.CoalescedWrites);
        Assert.Equal(expected, etr.Counters.CoalescedSegments);
        Assert.Equal(expected, etr.Counters.DecapPackets);
    }

    [Fact]
    public void Into_a_plain_tun_the_etr_writes_each_segment_with_a_valid_checksum()
    {
        Map("10.2.0.0/24", Rloc2);
        var itr = Own(new ItrWorker(_tunA, () => _cache.Current, _underlay.Sender(Rloc1, writesOuterIp: true), null, _misses, Options()));
        var tunB = new InMemoryTun("b");
        var etr = Own(new EtrWorker(_underlay.Bind(Rloc2), new Dictionary<uint, ITun> { [Iid] = tunB }, Options()));
        var (withHeader, original) = TcpSuper(new Random(9), false, payload: 5000, gsoSize: 1000, seq: 7);
        Assert.True(_tunA.Inject(withHeader));
        itr.RunOnce(0);
        Assert.Equal(5, etr.RunOnce(0));
        var segments = tunB.Written.ToArray();
        Assert.Equal(5, segments.Length);
        Assert.All(segments, s => Assert.True(OffloadReference.L4ChecksumOk(s, false, 6) && OffloadReference.Ipv4HeaderOk(s)));
        Assert.Equal(Payload(original, false), segments.SelectMany(s => Payload(s, false)).ToArray());
    }

    [Fact]
    public void A_packet_whose_checksum_the_host_left_to_us_is_completed_before_it_leaves()
    {
        Map("10.2.0.0/24", Rloc2);
        var itr = Own(new ItrWorker(_tunA, () => _cache.Current, _underlay.Sender(Rloc1, writesOuterIp: true), null, _misses, Options()));
        var p = OffloadReference.Build(new Random(3), false, 17, 300);
        IPAddress.Parse("10.2.0.9").GetAddressBytes().CopyTo(p, 16);
        OffloadReference.Write16(p, 10, 0);
        OffloadReference.Write16(p, 10, OffloadReference.Checksum(p, 0, 20));
        OffloadReference.Write16(p, 26, OffloadReference.FoldedSum([], 0, 0, OffloadReference.PseudoSum(p, false, 17, p.Length - 20)));
        Assert.False(OffloadReference.L4ChecksumOk(p, false, 17)); // partial: only the pseudo-header sum is in the field
        var h = new VirtioNetHeader { Flags = VirtioNetHeader.FlagNeedsCsum, CsumStart = 20, CsumOffset = 6 };
        var all = new byte[VirtioNetHeader.Size + p.Length];
        h.Write(all);
        p.CopyTo(all, VirtioNetHeader.Size);
        Assert.True(_tunA.Inject(all));
        Assert.Equal(1, itr.RunOnce(0));
        var (outer, _) = Assert.Single(_underlay.Sent);
        var inner = outer[(36)..];
        Assert.True(OffloadReference.L4ChecksumOk(inner, false, 17));
        Assert.Equal(p.AsSpan(28).ToArray(), inner.AsSpan(28).ToArray()); // the payload itself untouched
        Assert.Equal(1, itr.Counters.ChecksumsCompleted);
    }

    [Fact]
    public void A_super_packet_without_a_mapping_asks_for_one_and_is_counted_as_a_miss()
    {
        var itr = Own(new ItrWorker(_tunA, () => _cache.Current, _underlay.Sender(Rloc1, writesOuterIp: true), null, _misses,
            Options() with { MissPolicy = MissPolicy.Queue }));
        Assert.True(_tunA.Inject(TcpSuper(new Random(1), false, 9000, 1400, 1).WithHeader));
        itr.RunOnce(0);
        Assert.Empty(_underlay.Sent);
        Assert.Equal(1, itr.Counters[DropReason.Miss]);
        Assert.Equal(1, itr.Counters.MissesPosted);
        Assert.Equal(0, itr.HeldPackets); // 64 KiB super-packets are not held
    }

    [Fact]
    public void Garbage_behind_a_gso_header_is_dropped_as_malformed()
    {
        Map("10.2.0.0/24", Rloc2);
        var itr = Own(new ItrWorker(_tunA, () => _cache.Current, _underlay.Sender(Rloc1, writesOuterIp: true), null, _misses, Options()));
        var (withHeader, _) = TcpSuper(new Random(2), false, 3000, 1000, 1);
        withHeader[VirtioNetHeader.Size + 32] = 0x10; // TCP data offset 4 words: shorter than a TCP header
        Assert.True(_tunA.Inject(withHeader));
        itr.RunOnce(0);
        Assert.Empty(_underlay.Sent);
        Assert.Equal(1, itr.Counters[DropReason.Malformed]);
    }

    /// <summary>
    /// Real sockets on loopback, 10.2.0.0/24 mapped to 127.0.0.1: the ITR (reading the vnet TUN A) sends through a UDP
    /// source-port pool of <paramref name="ports"/> sockets with UDP_SEGMENT to an ETR socket (UDP_GRO on when
    /// <paramref name="gro"/>) that writes into <paramref name="tunB"/>. Skips where the kernel lacks GSO or GRO.
    /// </summary>
    private (ItrWorker Itr, EtrWorker Etr) OverLoopback(InMemoryTun tunB, int ports, bool gro = true, int underlayMtu = 1500)
    {
        using var probe = UdpBatchSocket.OpenUdp(new IPEndPoint(IPAddress.Loopback, 0), reusePort: false);
        Skip.IfNot(probe.TryEnableGso(out var why), $"UDP GSO unavailable here: {why}");
        if (gro) Skip.IfNot(probe.TryEnableGro(out why), $"UDP GRO unavailable here: {why}");
        var receiver = Own(UdpBatchSocket.OpenUdp(new IPEndPoint(IPAddress.Loopback, 0), reusePort: false));
        if (gro) Assert.True(receiver.TryEnableGro(out _));
        var o = Options((ushort)receiver.LocalPort) with { LocalRlocV4 = IPAddress.Loopback, BatchSize = 32, UnderlayMtu = underlayMtu };
        Map("10.2.0.0/24", IPAddress.Loopback);
        var pool = Own(UdpSourcePortPool.Open(IPAddress.Loopback, ports, 32, gso: true, out var refused));
        Assert.Null(refused);
        var itr = Own(new ItrWorker(_tunA, () => _cache.Current, pool, null, _misses, o));
        var etr = Own(new EtrWorker(receiver, new Dictionary<uint, ITun> { [Iid] = tunB }, o));
        return (itr, etr);
    }

    /// <summary>
    /// Real sockets on loopback: the ITR's UDP source-port pool sends each super-packet's segments with UDP_SEGMENT, the
    /// ETR's socket with UDP_GRO receives them as runs, and the far TUN gets the joined super-packets.
    /// </summary>
    [SkippableFact]
    public void Over_loopback_udp_gso_and_gro_carry_super_packets_end_to_end()
    {
        var tunB = new InMemoryTun("b") { VnetHeader = true };
        var (itr, etr) = OverLoopback(tunB, ports: 4);

        var rng = new Random(11);
        var originals = new List<byte[]>();
        uint seq = 500;
        for (int i = 0; i < 3; i++)
        {
            var (withHeader, packet) = TcpSuper(rng, false, 12000, 1400, seq);
            // One flow: the IPv4 ID continues where the previous super-packet's segments ended.
            originals.Add(packet);
            Assert.True(_tunA.Inject(withHeader));
            seq += 12000;
        }
        int read = 0;
        for (int tries = 0; tries < 20 && read < 3; tries++) read += itr.RunOnce(100);
        Assert.Equal(3, read);
        int mss = 1500 - 36 - 40;
        int perSuper = (12000 + mss - 1) / mss;
        Assert.Equal(3 * perSuper, itr.Counters.EncapPackets);
        Assert.Equal(3, itr.Counters.GsoSends);
        int received = 0;
        for (int tries = 0; tries < 50 && received < 3 * perSuper; tries++)
        {
            etr.RunOnce(100);
            received = (int)(etr.Counters.DecapPackets + etr.Counters.TotalDrops);
        }
        Assert.Equal(3 * perSuper, etr.Counters.DecapPackets);
        Assert.True(etr.Counters.GroBuffers >= 1, $"no UDP GRO run arrived ({etr.Counters})");
        // Every payload byte arrived once, in order per super-packet (each may have been joined on its own).
        var arrived = tunB.Written.SelectMany(w => Payload(w[VirtioNetHeader.Size..], false)).ToArray();
        Assert.Equal(originals.SelectMany(p => Payload(p, false)).ToArray(), arrived);
        Assert.True(etr.Counters.CoalescedWrites >= 3, $"coalesced writes {etr.Counters.CoalescedWrites}");
    }

    /// <summary>
    /// The TUN's gso_max_segs the node sets (<see cref="ItrWorker.SegmentsPerGsoSend"/>) is the most full-MSS segments
    /// that still leave in one UDP_SEGMENT sendmsg: at underlay MTU 1500 the largest segment is 1,472 bytes of UDP payload
    /// (8 LISP + 20 IP + 20 TCP + MSS 1424), and 65,000 / 1,472 = 44.2. A 44-segment super-packet is one send, 45 are two.
    /// </summary>
    [SkippableFact]
    public void Over_loopback_a_super_packet_of_gso_max_segs_full_segments_is_one_send()
    {
        Assert.Equal(44, ItrWorker.SegmentsPerGsoSend(1500));
        Assert.Equal(7, ItrWorker.SegmentsPerGsoSend(9000));   // 65,000 / 8,972
        Assert.Equal(64, ItrWorker.SegmentsPerGsoSend(576));   // 65,000 / 548 = 118, held to the 64 every kernel takes
        var tunB = new InMemoryTun("b") { VnetHeader = true };
        var (itr, etr) = OverLoopback(tunB, ports: 2);
        const int mss = 1500 - 36 - 40;
        var rng = new Random(5);
        var (fits, fitsPacket) = TcpSuper(rng, false, 44 * mss, mss, 1000);
        var (over, overPacket) = TcpSuper(rng, false, 45 * mss, mss, 1000 + 44 * mss);
        Assert.True(_tunA.Inject(fits));
        Assert.Equal(1, itr.RunOnce(100));
        Assert.Equal(44, itr.Counters.EncapPackets);
        Assert.Equal(1, itr.Counters.GsoSends);
        Assert.True(_tunA.Inject(over));
        Assert.Equal(1, itr.RunOnce(100));
        Assert.Equal(44 + 45, itr.Counters.EncapPackets);
        Assert.Equal(3, itr.Counters.GsoSends);
        for (int tries = 0; tries < 50 && etr.Counters.DecapPackets + etr.Counters.TotalDrops < 89; tries++) etr.RunOnce(100);
        Assert.Equal(89, etr.Counters.DecapPackets);
        var arrived = tunB.Written.SelectMany(w => Payload(w[VirtioNetHeader.Size..], false)).ToArray();
        Assert.Equal(Payload(fitsPacket, false).Concat(Payload(overPacket, false)).ToArray(), arrived);
    }

    /// <summary>
    /// Small packets of one flow (a UDP flood) leave the ITR as one UDP_SEGMENT sendmsg per run and reach the ETR as one
    /// UDP_GRO buffer; every packet arrives once, in order, unchanged.
    /// </summary>
    [SkippableFact]
    public void Over_loopback_a_run_of_small_packets_of_one_flow_is_one_gso_send_and_one_gro_buffer()
    {
        var tunB = new InMemoryTun("b") { VnetHeader = true };
        var (itr, etr) = OverLoopback(tunB, ports: 4);
        var sent = new List<byte[]>();
        for (int i = 0; i < 20; i++)
        {
            var p = Packets.UdpV4("10.1.0.1", "10.2.0.9", 4000, 9, 64, fill: (byte)i);
            sent.Add(p);
            Assert.True(_tunA.Inject([.. new byte[VirtioNetHeader.Size], .. p]));
        }
        int read = 0;
        for (int tries = 0; tries < 20 && read < 20; tries++) read += itr.RunOnce(100);
        Assert.Equal(20, itr.Counters.EncapPackets);
        Assert.InRange(itr.Counters.GsoSends, 1, 2); // the batch may be cut in two by the reads
        for (int tries = 0; tries < 50 && etr.Counters.DecapPackets < 20; tries++) etr.RunOnce(100);
        Assert.Equal(20, etr.Counters.DecapPackets);
        Assert.True(etr.Counters.GroBuffers >= 1, etr.Counters.ToString());
        // The far TUN gets the run joined again: one USO super-packet (GSO UDP_L4, 36-byte segments) with the first
        // packet's headers and every payload in order.
        var written = Assert.Single(tunB.Written);
        Assert.True(VirtioNetHeader.TryRead(written, out var vh));
        Assert.Equal(VirtioNetHeader.GsoUdpL4, vh.GsoType);
        Assert.Equal(36, vh.GsoSize);
        var super = written[VirtioNetHeader.Size..];
        Assert.Equal(sent[0].AsSpan(12, 8).ToArray(), super.AsSpan(12, 8).ToArray()); // addresses
        Assert.Equal(sent[0].AsSpan(20, 4).ToArray(), super.AsSpan(20, 4).ToArray()); // ports
        Assert.Equal(8 + 20 * 36, OffloadReference.Read16(super, 24));               // UDP length of the whole run
        Assert.Equal(sent.SelectMany(p => p[28..]).ToArray(), super[28..]);
        Assert.Equal(1, etr.Counters.CoalescedWrites);
        Assert.Equal(20, etr.Counters.CoalescedSegments);
    }

    /// <summary>A UDP_GRO run into a plain TUN (no virtio-net header): every datagram of the run is written on its own, unchanged.</summary>
    [SkippableFact]
    public void Over_loopback_a_gro_run_into_a_plain_tun_is_written_datagram_by_datagram()
    {
        var tunB = new InMemoryTun("b");
        var (itr, etr) = OverLoopback(tunB, ports: 2);
        var sent = Enumerable.Range(0, 12).Select(i => Packets.UdpV4("10.1.0.1", "10.2.0.9", 4000, 9, 100, fill: (byte)i)).ToList();
        foreach (var p in sent) Assert.True(_tunA.Inject([.. new byte[VirtioNetHeader.Size], .. p]));
        for (int tries = 0; tries < 20 && itr.Counters.EncapPackets < 12; tries++) itr.RunOnce(100);
        for (int tries = 0; tries < 50 && etr.Counters.DecapPackets < 12; tries++) etr.RunOnce(100);
        Assert.True(etr.Counters.GroBuffers >= 1, etr.Counters.ToString());
        Assert.Equal(sent.Select(Convert.ToHexString), tunB.Written.Select(Convert.ToHexString));
    }

    /// <summary>
    /// Packets too big for the underlay MTU (inner IPv4 without DF: the kernel fragments them in UDP mode) are never sent
    /// as a UDP_SEGMENT run, which the kernel would refuse for a segment size over the MTU: they go by sendmmsg and arrive.
    /// </summary>
    [SkippableFact]
    public void Packets_over_the_underlay_mtu_are_not_sent_as_a_gso_run()
    {
        var tunB = new InMemoryTun("b");
        var (itr, etr) = OverLoopback(tunB, ports: 2, gro: false, underlayMtu: 1000);
        var sent = Enumerable.Range(0, 10).Select(i => Packets.UdpV4("10.1.0.1", "10.2.0.9", 4000, 9, 1100, df: false, fill: (byte)i)).ToList();
        foreach (var p in sent) Assert.True(_tunA.Inject([.. new byte[VirtioNetHeader.Size], .. p]));
        for (int tries = 0; tries < 20 && itr.Counters.EncapPackets < 10; tries++) itr.RunOnce(100);
        Assert.Equal(10, itr.Counters.EncapPackets);
        Assert.Equal(0, itr.Counters.GsoSends);
        Assert.Equal(0, itr.Counters.TotalDrops);
        for (int tries = 0; tries < 50 && etr.Counters.DecapPackets < 10; tries++) etr.RunOnce(100);
        Assert.Equal(sent.Select(Convert.ToHexString), tunB.Written.Select(Convert.ToHexString));
    }

    public void Dispose()
    {
        foreach (var d in _dispose) d.Dispose();
    }
}
