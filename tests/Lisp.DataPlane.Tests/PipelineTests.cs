using System.Buffers.Binary;
using System.Net;
using Lisp.DataPlane;
using Lisp.MapCache;
using Lisp.Wire;
using Xunit;

namespace Lisp.DataPlane.Tests;

/// <summary>
/// Two xTRs over in-memory TUNs and an in-memory underlay: encapsulation -> decapsulation round trips, miss
/// handling, drops by reason and the MTU path, driven one batch at a time (no threads, no sleeps).
/// </summary>
public sealed class PipelineTests : IDisposable
{
    private static readonly IPAddress Rloc1 = IPAddress.Parse("192.0.2.1");
    private static readonly IPAddress Rloc2 = IPAddress.Parse("192.0.2.2");
    private static readonly IPAddress Rloc1V6 = IPAddress.Parse("2001:db8::1");
    private static readonly IPAddress Rloc2V6 = IPAddress.Parse("2001:db8::2");
    private const uint Iid = 7;

    private readonly InMemoryUnderlay _underlay = new();
    private readonly InMemoryTun _tunA = new("a");
    private readonly InMemoryTun _tunB = new("b");
    private readonly MapCacheWriter _cache = new();
    private readonly MissQueue _misses = new(capacity: 64, ratePerSecond: 1000, burst: 100);
    private readonly List<IDisposable> _dispose = [];

    private ItrWorker Itr(DataPlaneOptions? o = null, bool raw = true, bool v6 = true)
    {
        o ??= Options();
        var w = new ItrWorker(_tunA, () => _cache.Current, _underlay.Sender(Rloc1, raw), v6 ? _underlay.Sender(Rloc1V6, raw) : null, _misses, o);
        _dispose.Add(w);
        return w;
    }

    private EtrWorker Etr(IPAddress local, InMemoryTun? tun = null)
    {
        var w = new EtrWorker(_underlay.Bind(local), new Dictionary<uint, ITun> { [Iid] = tun ?? _tunB }, Options());
        _dispose.Add(w);
        return w;
    }

    private static DataPlaneOptions Options() => new() { InstanceId = Iid, LocalRlocV4 = Rloc1, LocalRlocV6 = Rloc1V6, BatchSize = 16, MaxPacket = 2000 };

    private void Map(string eid, params IPAddress[] rlocs)
    {
        _cache.AddOrReplace(EidPrefix.Parse($"[{Iid}]{eid}"), rlocs.Select(r => new RlocSpec(r, 1, 50)).ToArray(), 60, long.MaxValue);
        _cache.Publish();
    }

    /// <summary>
    /// A read batch of 16 or more IPv4 packets is looked up with the prefetching LookupV4Batch: the verdicts, the RLOC and
    /// the per-flow source port must be those of lookups one by one (forward, miss, in any interleaving).
    /// </summary>
    [Fact]
    public void A_large_batch_is_looked_up_in_one_prefetching_batch_with_the_same_verdicts()
    {
        Map("10.2.0.0/24", Rloc2);
        var itr = Itr(Options() with { BatchSize = 64 });
        var forward = new List<byte[]>();
        for (int i = 0; i < 48; i++)
        {
            bool hit = i % 3 != 0;
            var p = Packets.UdpV4("10.1.0.1", hit ? $"10.2.0.{i}" : $"10.9.0.{i}", (ushort)(2000 + i), 53, 80);
            if (hit) forward.Add(p);
            Assert.True(_tunA.Inject(p));
        }
        Assert.Equal(48, itr.RunOnce(0));
        Assert.Equal(32, itr.Counters.EncapPackets);
        Assert.Equal(16, itr.Counters[DropReason.Miss]);
        var outer = _underlay.Sent.ToArray();
        Assert.Equal(32, outer.Length);
        for (int k = 0; k < 32; k++)
        {
            Assert.Equal(Rloc2, outer[k].To.Address);
            Assert.True(InMemoryUnderlay.TryStrip(outer[k].Packet, out var payload, out var src, out _, out _));
            Assert.Equal(forward[k], payload[DataHeader.Length..].ToArray());
            Assert.Equal(FlowHash.SourcePort(FlowHash.FromPacket(forward[k])), src.Port);
        }
    }

    [Fact]
    public void V4_round_trip_through_encap_and_decap()
    {
        Map("10.2.0.0/24", Rloc2);
        var itr = Itr();
        var etr = Etr(Rloc2);
        var sent = Enumerable.Range(0, 10).Select(i => Packets.UdpV4("10.1.0.1", "10.2.0.9", (ushort)(1000 + i), 80, 64 + i)).ToList();
        foreach (var p in sent) Assert.True(_tunA.Inject(p));
        Assert.Equal(10, itr.RunOnce(0));
        Assert.Equal(10, itr.Counters.EncapPackets);

        var outer = _underlay.Sent.ToArray();
        Assert.Equal(10, outer.Length);
        foreach (var (pkt, to) in outer)
        {
            Assert.Equal(Rloc2, to.Address);
            Assert.True(InMemoryUnderlay.TryStrip(pkt, out var payload, out var src, out var dst, out var dport));
            Assert.Equal(Rloc1, src.Address);
            Assert.Equal(4341, dport);
            Assert.InRange(src.Port, 49152, 65535);
            Assert.Equal(0, InternetChecksum.Compute(pkt.AsSpan(0, 20))); // outer IPv4 header checksum valid
            Assert.True(DataHeader.TryRead(payload, out var h).IsOk);
            Assert.True(h.InstanceIdPresent && h.NoncePresent);
            Assert.Equal(Iid, h.InstanceId);
        }
        Assert.Equal(10, etr.RunOnce(0));
        Assert.Equal(sent.Select(Convert.ToHexString), _tunB.Written.Select(Convert.ToHexString));
        Assert.Equal(10, etr.Counters.DecapPackets);
        Assert.Equal(0, itr.Counters.TotalDrops + etr.Counters.TotalDrops);
    }

    [Fact]
    public void V6_eids_over_v6_and_v4_rlocs()
    {
        Map("fd00:2::/48", Rloc2V6);
        Map("fd00:3::/48", Rloc2);
        var itr = Itr();
        var etr6 = Etr(Rloc2V6);
        var etr4 = Etr(Rloc2, new InMemoryTun("b4"));
        var p6 = Packets.UdpV6("fd00:1::1", "fd00:2::5", 5000, 53, 120);
        var p4 = Packets.UdpV6("fd00:1::1", "fd00:3::5", 5000, 53, 100);
        _tunA.Inject(p6);
        _tunA.Inject(p4);
        Assert.Equal(2, itr.RunOnce(0));
        var outer = _underlay.Sent.ToArray();
        Assert.Equal(2, outer.Length);
        var v6Outer = outer.Single(o => o.To.Address.Equals(Rloc2V6)).Packet;
        Assert.Equal(6, v6Outer[0] >> 4);
        Assert.Equal(120 + 56, v6Outer.Length);
        Assert.Equal(0, BinaryPrimitives.ReadUInt16BigEndian(v6Outer.AsSpan(46))); // zero UDP checksum over IPv6
        Assert.Equal(100 + 36, outer.Single(o => o.To.Address.Equals(Rloc2)).Packet.Length);
        Assert.Equal(1, etr6.RunOnce(0));
        Assert.Equal(Convert.ToHexString(p6), Convert.ToHexString(_tunB.Written.Single()));
        Assert.Equal(1, etr4.RunOnce(0));
    }

    [Fact]
    public void Udp_fallback_mode_writes_only_the_lisp_header()
    {
        Map("10.2.0.0/24", Rloc2);
        var itr = Itr(raw: false);
        var etr = Etr(Rloc2);
        var p = Packets.UdpV4("10.1.0.1", "10.2.0.9", 1, 2, 100);
        _tunA.Inject(p);
        itr.RunOnce(0);
        var (pkt, to) = _underlay.Sent.Single();
        Assert.Equal(108, pkt.Length);
        Assert.Equal(new IPEndPoint(Rloc2, 4341), to);
        Assert.Equal(1, etr.RunOnce(0));
        Assert.Equal(Convert.ToHexString(p), Convert.ToHexString(_tunB.Written.Single()));
    }

    [Fact]
    public void Source_port_is_stable_per_flow_and_spread_across_flows()
    {
        Map("10.2.0.0/24", Rloc2);
        var itr = Itr();
        for (int round = 0; round < 2; round++)
            for (int f = 0; f < 32; f++) _tunA.Inject(Packets.UdpV4("10.1.0.1", "10.2.0.9", (ushort)(2000 + f), 80));
        while (itr.RunOnce(0) > 0) { }
        var ports = _underlay.Sent.Select(s => BinaryPrimitives.ReadUInt16BigEndian(s.Packet.AsSpan(20))).ToArray();
        Assert.Equal(64, ports.Length);
        Assert.Equal(ports.Take(32), ports.Skip(32));
        Assert.True(ports.Take(32).Distinct().Count() > 20, "32 flows should get mostly distinct source ports");
    }

    [Fact]
    public void Miss_posts_one_request_per_destination_and_drops()
    {
        var itr = Itr();
        for (int i = 0; i < 5; i++) _tunA.Inject(Packets.UdpV4("10.1.0.1", "10.9.0.1", 1, 2));
        _tunA.Inject(Packets.UdpV6("fd00:1::1", "fd00:9::1", 1, 2));
        itr.RunOnce(0);
        Assert.Equal(6, itr.Counters[DropReason.Miss]);
        var drained = new List<Miss>();
        _misses.Drain(drained);
        Assert.Equal(["[7]10.9.0.1", "[7]fd00:9::1"], drained.Select(m => m.ToString()));
        Assert.Equal(2, itr.Counters.MissesPosted);
        Assert.Empty(_underlay.Sent);
    }

    [Fact]
    public void Miss_queue_is_bounded_and_rate_limited()
    {
        var q = new MissQueue(capacity: 3, ratePerSecond: 1, burst: 2);
        long t = System.Diagnostics.Stopwatch.GetTimestamp();
        Assert.True(q.TryPost(new Miss(0, IPAddress.Parse("10.0.0.1")), t));
        Assert.True(q.TryPost(new Miss(0, IPAddress.Parse("10.0.0.2")), t));
        Assert.False(q.TryPost(new Miss(0, IPAddress.Parse("10.0.0.3")), t)); // over the burst
        Assert.Equal(1, q.RefusedRate);
        var big = new MissQueue(capacity: 2, ratePerSecond: 1e6, burst: 1000);
        Assert.True(big.TryPost(new Miss(0, IPAddress.Loopback)));
        Assert.True(big.TryPost(new Miss(0, IPAddress.Loopback)));
        Assert.False(big.TryPost(new Miss(0, IPAddress.Loopback)));
        Assert.Equal(1, big.RefusedFull);
        var drained = new List<Miss>();
        Assert.Equal(2, big.Drain(drained));
        Assert.True(big.TryPost(new Miss(0, IPAddress.Loopback)));
    }

    [Fact]
    public void Queue_policy_holds_a_missed_packet_until_the_entry_arrives()
    {
        var itr = Itr(Options() with { MissPolicy = MissPolicy.Queue, HoldTime = TimeSpan.FromSeconds(30) });
        var etr = Etr(Rloc2);
        var p = Packets.UdpV4("10.1.0.1", "10.2.0.9", 1, 2);
        _tunA.Inject(p);
        itr.RunOnce(0);
        Assert.Equal(1, itr.HeldPackets);
        Assert.Empty(_underlay.Sent);
        Assert.Equal(0, itr.Counters.TotalDrops);
        Map("10.2.0.0/24", Rloc2);
        itr.RunOnce(0);
        Assert.Equal(0, itr.HeldPackets);
        Assert.Equal(1, itr.Counters.HeldThenSent);
        Assert.Single(_underlay.Sent);
        etr.RunOnce(0);
        Assert.Equal(Convert.ToHexString(p), Convert.ToHexString(_tunB.Written.Single()));
    }

    [Fact]
    public void Held_packets_expire_and_the_hold_queue_is_bounded()
    {
        var itr = Itr(Options() with { MissPolicy = MissPolicy.Queue, HoldPackets = 2, HoldTime = TimeSpan.Zero });
        for (int i = 0; i < 3; i++) _tunA.Inject(Packets.UdpV4("10.1.0.1", "10.2.0.9", (ushort)i, 2));
        itr.RunOnce(0);
        Assert.Equal(2, itr.HeldPackets);
        Assert.Equal(1, itr.Counters[DropReason.MissHoldExpired]); // third did not fit
        itr.RunOnce(0);
        Assert.Equal(0, itr.HeldPackets);
        Assert.Equal(3, itr.Counters[DropReason.MissHoldExpired]);
    }

    [Fact]
    public void Drops_are_counted_by_reason()
    {
        _cache.AddOrReplaceNegative(EidPrefix.Parse($"[{Iid}]10.3.0.0/16"), MapReplyAction.Drop, 60, long.MaxValue);
        _cache.AddOrReplaceNegative(EidPrefix.Parse($"[{Iid}]10.4.0.0/16"), MapReplyAction.NativelyForward, 60, long.MaxValue);
        _cache.AddOrReplaceNegative(EidPrefix.Parse($"[{Iid}]10.5.0.0/16"), MapReplyAction.SendMapRequest, 60, long.MaxValue);
        _cache.AddOrReplace(EidPrefix.Parse($"[{Iid}]10.6.0.0/16"), [new RlocSpec(Rloc2, 1, 50, Reachable: false)], 60, long.MaxValue);
        _cache.AddOrReplace(EidPrefix.Parse($"[{Iid}]10.7.0.0/16"), [new RlocSpec(Rloc2V6, 1, 50)], 60, long.MaxValue);
        _cache.Publish();
        var itr = Itr(v6: false);
        _tunA.Inject([0x45, 0, 0]);                                   // malformed
        _tunA.Inject(Packets.UdpV4("10.1.0.1", "10.3.0.1", 1, 2));    // negative drop
        _tunA.Inject(Packets.UdpV4("10.1.0.1", "10.4.0.1", 1, 2));    // natively forward
        _tunA.Inject(Packets.UdpV4("10.1.0.1", "10.5.0.1", 1, 2));    // negative send-map-request: posts a miss
        _tunA.Inject(Packets.UdpV4("10.1.0.1", "10.6.0.1", 1, 2));    // no usable RLOC
        _tunA.Inject(Packets.UdpV4("10.1.0.1", "10.7.0.1", 1, 2));    // IPv6 RLOC, no IPv6 sender
        itr.RunOnce(0);
        var c = itr.Counters;
        Assert.Equal(1, c[DropReason.Malformed]);
        Assert.Equal(2, c[DropReason.Negative]);
        Assert.Equal(1, c[DropReason.NativelyForward]);
        Assert.Equal(1, c[DropReason.NoUsableRloc]);
        Assert.Equal(1, c[DropReason.NoLocalRloc]);
        Assert.Equal(1, c.MissesPosted);
        Assert.Contains("natively-forward=1", c.ToString());

        var etr = Etr(Rloc2);
        var rx = _underlay.Bind(Rloc2);
        var from = new IPEndPoint(Rloc1, 50000);
        rx.Enqueue([0x88, 0, 0], from);                                                        // short header
        rx.Enqueue([0x98, 0, 0, 0, 0, 0, 7, 0, .. Packets.UdpV4("10.1.0.1", "10.2.0.1", 1, 2)], from); // N and V both set
        rx.Enqueue([0x88, 0, 0, 0, 0, 0, 9, 0, .. Packets.UdpV4("10.1.0.1", "10.2.0.1", 1, 2)], from); // iid 9 unknown
        rx.Enqueue([0x88, 0, 0, 0, 0, 0, 7, 0, 0x45, 0, 0, 0], from);                          // inner too short
        rx.Enqueue([0x88, 0, 0, 0, 0, 0, 7, 0, .. Packets.UdpV4("10.1.0.1", "10.2.0.1", 1, 2)[..40]], from); // inner length lies
        rx.Enqueue(new byte[5000], from);                                                      // bigger than a slot
        Assert.Equal(6, etr.RunOnce(0));
        Assert.Equal(2, etr.Counters[DropReason.BadHeader]);
        Assert.Equal(1, etr.Counters[DropReason.UnknownInstance]);
        Assert.Equal(2, etr.Counters[DropReason.InnerMalformed]);
        Assert.Equal(1, etr.Counters[DropReason.Truncated]);
        _tunB.RefuseWrites = true;
        rx.Enqueue([0x88, 0, 0, 0, 0, 0, 7, 0, .. Packets.UdpV4("10.1.0.1", "10.2.0.1", 1, 2)], from);
        etr.RunOnce(0);
        Assert.Equal(1, etr.Counters[DropReason.TunWriteError]);
    }

    [Fact]
    public void Send_errors_are_counted()
    {
        Map("10.2.0.0/24", Rloc2);
        var sender = _underlay.Sender(Rloc1) ;
        sender.Fail = true;
        using var itr = new ItrWorker(_tunA, () => _cache.Current, sender, null, _misses, Options());
        _tunA.Inject(Packets.UdpV4("10.1.0.1", "10.2.0.9", 1, 2));
        itr.RunOnce(0);
        Assert.Equal(1, itr.Counters[DropReason.SendError]);
        Assert.Equal(0, itr.Counters.EncapPackets);
    }

    [Fact]
    public void Too_big_with_df_gets_icmp_fragmentation_needed()
    {
        Map("10.2.0.0/24", Rloc2);
        var itr = Itr();
        var big = Packets.UdpV4("10.1.0.1", "10.2.0.9", 1, 2, 1480, df: true);
        _tunA.Inject(big);
        _tunA.Inject(Packets.UdpV4("10.1.0.1", "10.2.0.9", 1, 2, 1464, df: true)); // exactly fits: 1464 + 36 = 1500
        itr.RunOnce(0);
        Assert.Equal(1, itr.Counters[DropReason.TooBig]);
        Assert.Equal(1, itr.Counters.IcmpTooBig);
        Assert.Single(_underlay.Sent);
        var icmp = _tunA.Written.Single();
        Assert.Equal(1, icmp[9]);                                         // ICMP
        Assert.Equal(0, InternetChecksum.Compute(icmp.AsSpan(0, 20)));
        Assert.Equal("10.2.0.9", new IPAddress(icmp.AsSpan(12, 4)).ToString());
        Assert.Equal("10.1.0.1", new IPAddress(icmp.AsSpan(16, 4)).ToString());
        Assert.Equal((3, 4), (icmp[20], icmp[21]));
        Assert.Equal(1464, BinaryPrimitives.ReadUInt16BigEndian(icmp.AsSpan(26)));
        Assert.Equal(0, InternetChecksum.Compute(icmp.AsSpan(20)));
        Assert.Equal(Convert.ToHexString(big.AsSpan(0, 28)), Convert.ToHexString(icmp.AsSpan(28, 28)));
    }

    [Fact]
    public void Too_big_ipv6_gets_packet_too_big()
    {
        Map("fd00:2::/48", Rloc2V6);
        var itr = Itr();
        _tunA.Inject(Packets.UdpV6("fd00:1::1", "fd00:2::9", 1, 2, 1460));
        itr.RunOnce(0);
        var icmp = _tunA.Written.Single();
        Assert.Equal(58, icmp[6]);
        Assert.Equal(2, icmp[40]);
        Assert.Equal(1444u, BinaryPrimitives.ReadUInt32BigEndian(icmp.AsSpan(44)));
        // Checksum over pseudo-header + ICMPv6 message must verify to zero.
        uint sum = 0;
        for (int i = 8; i < 40; i += 2) sum += BinaryPrimitives.ReadUInt16BigEndian(icmp.AsSpan(i));
        sum += (uint)(icmp.Length - 40) + 58;
        Assert.Equal(0, InternetChecksum.Compute(icmp.AsSpan(40), sum));
    }

    [Fact]
    public void Too_big_without_df_is_sent_as_outer_fragments()
    {
        Map("10.2.0.0/24", Rloc2);
        var itr = Itr();
        var big = Packets.UdpV4("10.1.0.1", "10.2.0.9", 1, 2, 1480, df: false);
        _tunA.Inject(big);
        itr.RunOnce(0);
        Assert.Equal(1, itr.Counters.Fragmented);
        var frags = _underlay.Sent.Select(s => s.Packet).ToArray();
        Assert.Equal(2, frags.Length);
        Assert.All(frags, f => Assert.True(f.Length <= 1500));
        Assert.All(frags, f => Assert.Equal(0, InternetChecksum.Compute(f.AsSpan(0, 20))));
        Assert.Equal(0x2000, BinaryPrimitives.ReadUInt16BigEndian(frags[0].AsSpan(6)) & 0x2000); // MF on the first
        Assert.Equal(BinaryPrimitives.ReadUInt16BigEndian(frags[0].AsSpan(4)), BinaryPrimitives.ReadUInt16BigEndian(frags[1].AsSpan(4)));
        // Reassemble: offsets in 8-byte units.
        var whole = new byte[16 + 1480];
        foreach (var f in frags)
        {
            int off = (BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(6)) & 0x1fff) * 8;
            f.AsSpan(20).CopyTo(whole.AsSpan(off));
        }
        Assert.Equal(4341, BinaryPrimitives.ReadUInt16BigEndian(whole.AsSpan(2)));
        Assert.Equal(Convert.ToHexString(big), Convert.ToHexString(whole.AsSpan(16)));
    }

    [Fact]
    public void Engine_threads_forward_between_two_in_memory_nodes()
    {
        Map("10.2.0.0/24", Rloc2);
        var tunB = new InMemoryTun("b");
        var o = Options() with { PollMs = 20 };
        using var a = new DataPlaneEngine(o, () => _cache.Current, _misses, [(_tunA, _underlay.Sender(Rloc1), null)], [_underlay.Bind(Rloc1)]);
        using var b = new DataPlaneEngine(o with { LocalRlocV4 = Rloc2 }, () => new MapCacheWriter().Current, new MissQueue(), [(tunB, _underlay.Sender(Rloc2), null)], [_underlay.Bind(Rloc2)]);
        a.Start();
        b.Start();
        for (int i = 0; i < 100; i++) _tunA.Inject(Packets.UdpV4("10.1.0.1", "10.2.0.9", (ushort)i, 2));
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (tunB.Written.Count < 100 && DateTime.UtcNow < deadline) Thread.Sleep(10);
        Assert.Equal(100, tunB.Written.Count);
        Assert.Equal(100, a.Counters.EncapPackets);
        Assert.Equal(100, b.Counters.DecapPackets);
    }

    public void Dispose()
    {
        foreach (var d in _dispose) d.Dispose();
        _tunA.Dispose();
        _tunB.Dispose();
    }
}
