using System.Net;
using Lisp.DataPlane;
using Lisp.Wire;
using Xunit;

namespace Lisp.DataPlane.Tests;

/// <summary>
/// The data plane as the one owner of the data port: ETR datagrams with instance-id 0xffffff (RFC 9962 push
/// Map-Registers) go to the control hand-off, never to a TUN; the hand-off is bounded and counts what it refuses.
/// Driven one batch at a time over the in-memory underlay (no threads except where the engine is the subject).
/// </summary>
public sealed class ControlHandoffTests : IDisposable
{
    private static readonly IPAddress Rloc = IPAddress.Parse("192.0.2.2");
    private static readonly IPEndPoint Member = new(IPAddress.Parse("192.0.2.9"), 40000);
    private const uint Iid = 7;

    private readonly InMemoryUnderlay _underlay = new();
    private readonly InMemoryTun _tun = new("t");
    private readonly List<IDisposable> _dispose = [];

    private static DataPlaneOptions Options() => new() { InstanceId = Iid, LocalRlocV4 = Rloc, BatchSize = 16, MaxPacket = 2000 };

    private EtrWorker Etr(ControlHandoff? control)
    {
        var w = new EtrWorker(_underlay.Bind(Rloc), new Dictionary<uint, ITun> { [Iid] = _tun }, Options(), control: control);
        _dispose.Add(w);
        return w;
    }

    /// <summary>LISP header with <paramref name="iid"/> + an inner IPv4/UDP packet (to the group on 4342 for the control form).</summary>
    private static byte[] Datagram(uint iid, byte fill = 0xab)
    {
        var inner = iid == DataHeader.DecentControlInstanceId
            ? Packets.UdpV4("192.0.2.9", "224.1.1.1", 4342, 4342, 100, fill: fill)
            : Packets.UdpV4("10.1.0.1", "10.2.0.9", 1000, 80, 100, fill: fill);
        var d = new byte[DataHeader.Length + inner.Length];
        DataHeader.ForInstance(iid, 0x123456).Write(d);
        inner.CopyTo(d.AsSpan(DataHeader.Length));
        return d;
    }

    private void Arrive(byte[] datagram) => _underlay.Bind(Rloc).Enqueue(datagram, Member);

    [Fact]
    public void Instance_id_0xffffff_goes_to_the_callback_and_not_to_the_tun()
    {
        var got = new List<ControlPacket>();
        var control = new ControlHandoff(got.Add, capacity: 8);
        var etr = Etr(control);
        var push = Datagram(DataHeader.DecentControlInstanceId);
        var data = Datagram(Iid);
        Arrive(push);
        Arrive(data);
        Assert.Equal(2, etr.RunOnce(0));

        // The ordinary packet reached the TUN; the control packet only the hand-off, copied whole (LISP header too).
        Assert.Equal(Convert.ToHexString(data.AsSpan(DataHeader.Length)), Convert.ToHexString(_tun.Written.Single()));
        Assert.Equal(1, etr.Counters.DecapPackets);
        Assert.Equal(1, etr.Counters.ControlPackets);
        Assert.Equal(0, etr.Counters.TotalDrops);
        Assert.Equal(1, control.Count);
        Assert.Empty(got); // nothing runs the handler on the worker thread

        Assert.True(control.RunOnce(0));
        var p = Assert.Single(got);
        Assert.Equal(Convert.ToHexString(push), Convert.ToHexString(p.Payload));
        Assert.Equal(Member, p.From);
        Assert.Equal(0, control.Count);
        Assert.Equal(1, control.Handled);
        Assert.False(control.RunOnce(0));
        Assert.Contains("control 1,", etr.Counters.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void A_full_hand_off_refuses_without_blocking_and_the_worker_counts_the_drops()
    {
        var got = new List<ControlPacket>();
        var control = new ControlHandoff(got.Add, capacity: 2);
        var etr = Etr(control);
        for (byte i = 0; i < 5; i++) Arrive(Datagram(DataHeader.DecentControlInstanceId, fill: i));
        Assert.Equal(5, etr.RunOnce(0));
        Assert.Equal(2, etr.Counters.ControlPackets);
        Assert.Equal(3, etr.Counters[DropReason.ControlQueueFull]);
        Assert.Empty(_tun.Written);

        // The consumer drains in order; then there is room again.
        while (control.RunOnce(0))
        {
        }
        Assert.Equal([0, 1], got.Select(p => p.Payload[^1]).ToArray());
        Arrive(Datagram(DataHeader.DecentControlInstanceId, fill: 9));
        Assert.Equal(1, etr.RunOnce(0));
        Assert.Equal(3, etr.Counters.ControlPackets);
        Assert.Contains("control-queue-full=3", etr.Counters.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Without_a_control_plane_0xffffff_is_dropped_as_unclaimed_not_written_to_the_tun()
    {
        var etr = Etr(control: null);
        Arrive(Datagram(DataHeader.DecentControlInstanceId));
        Assert.Equal(1, etr.RunOnce(0));
        Assert.Empty(_tun.Written);
        Assert.Equal(1, etr.Counters[DropReason.ControlUnclaimed]);
        Assert.Equal(0, etr.Counters.ControlPackets);
    }

    /// <summary>
    /// A Map-Notify as lispers.net sends it to the data port, hand-assembled: first byte 0x40 = type 4 in the top
    /// nibble, which a data header would read as "L bit, no I bit" (instance-id 0, no TUN here: iid 7 only).
    /// </summary>
    private static readonly byte[] PlainMapNotify =
    [
        0x40, 0x00, 0x00, 0x00,                         // type 4 (Map-Notify), flags 0, reserved, record count 0
        0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, // nonce
        0x00, 0x00,                                     // key id 0
        0x00, 0x00,                                     // authentication data length 0
    ];

    /// <summary>
    /// A Map-Register, hand-assembled: 0x38 = type 3 with the P bit, which sits where a data header's I bit is, so
    /// the ETR reads an instance-id from bytes 4..6 (0x000000 = iid 0, no TUN) and after 8 bytes finds no IP packet.
    /// </summary>
    private static readonly byte[] PlainMapRegister =
    [
        0x38, 0x00, 0x00, 0x00,                         // type 3 (Map-Register), P bit, reserved, record count 0
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, // nonce 1
        0x00, 0x00, 0x00, 0x00,                         // key id 0, authentication data length 0
    ];

    [Fact]
    public void A_plain_control_message_on_the_data_port_goes_to_the_hand_off_counted_and_data_still_reaches_the_tun()
    {
        var got = new List<ControlPacket>();
        var control = new ControlHandoff(got.Add, capacity: 8);
        var etr = Etr(control);
        var data = Datagram(Iid); // first byte 0x88: type nibble 8 too, but it is LISP data with an IPv4 packet
        Arrive(PlainMapNotify);
        Arrive(data);
        Arrive(PlainMapRegister);
        Assert.Equal(3, etr.RunOnce(0));

        Assert.Equal(Convert.ToHexString(data.AsSpan(DataHeader.Length)), Convert.ToHexString(_tun.Written.Single()));
        Assert.Equal(2, etr.Counters.PlainControlPackets);
        Assert.Equal(0, etr.Counters.ControlPackets);
        Assert.Equal(0, etr.Counters.TotalDrops);
        while (control.RunOnce(0))
        {
        }
        // Handed over whole and in order, with the outer source (the control plane checks it is a push member).
        Assert.Equal([Convert.ToHexString(PlainMapNotify), Convert.ToHexString(PlainMapRegister)], got.Select(p => Convert.ToHexString(p.Payload)).ToArray());
        Assert.All(got, p => Assert.Equal(Member, p.From));
        Assert.Contains("plain-control 2,", etr.Counters.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Not_a_control_type_or_no_control_plane_stays_a_counted_drop()
    {
        var got = new List<ControlPacket>();
        var etr = Etr(new ControlHandoff(got.Add, capacity: 8));
        // 0x00 / 0xa0: no control type (0 is reserved, 9..15 are not control messages here): dropped as before.
        var notControl = (byte[])PlainMapNotify.Clone();
        notControl[0] = 0x00;
        var high = (byte[])PlainMapNotify.Clone();
        high[0] = 0xa0; // N=1, E=1: type nibble 10
        Arrive(notControl);
        Arrive(high);
        Assert.Equal(2, etr.RunOnce(0));
        Assert.Equal(2, etr.Counters[DropReason.UnknownInstance]);
        Assert.Equal(0, etr.Counters.PlainControlPackets);

        var bare = Etr(control: null);
        _underlay.Bind(Rloc).Enqueue(PlainMapNotify, Member);
        Assert.Equal(1, bare.RunOnce(0));
        Assert.Equal(1, bare.Counters[DropReason.UnknownInstance]);
        Assert.Equal(0, bare.Counters.PlainControlPackets);
        Assert.Empty(got);
        Assert.Empty(_tun.Written);
    }

    [Fact]
    public void A_throwing_handler_is_counted_and_the_consumer_keeps_going()
    {
        int calls = 0;
        var control = new ControlHandoff(_ =>
        {
            if (++calls == 1) throw new InvalidOperationException("boom");
        });
        Assert.True(control.TryPost([1, 2, 3], null));
        Assert.True(control.TryPost([4], null));
        Assert.True(control.RunOnce(0));
        Assert.True(control.RunOnce(0));
        Assert.Equal(1, control.HandlerErrors);
        Assert.Equal(1, control.Handled);
    }

    [Fact]
    public void The_engine_runs_the_hand_off_on_its_own_thread()
    {
        using var received = new SemaphoreSlim(0);
        var got = new System.Collections.Concurrent.ConcurrentQueue<ControlPacket>();
        var control = new ControlHandoff(p =>
        {
            got.Enqueue(p);
            received.Release();
        });
        var misses = new MissQueue(capacity: 8, ratePerSecond: 10, burst: 10);
        var o = Options() with { PollMs = 20 };
        using var engine = new DataPlaneEngine(o, () => new Lisp.MapCache.MapCacheWriter().Current, misses,
            [(new InMemoryTun("i"), null, null)], [_underlay.Bind(Rloc)], control: control);
        engine.Start();
        var push = Datagram(DataHeader.DecentControlInstanceId);
        Arrive(push);
        Assert.True(received.Wait(TimeSpan.FromSeconds(10)), "the hand-off thread did not call the handler");
        Assert.Equal(Convert.ToHexString(push), Convert.ToHexString(Assert.Single(got).Payload));
        Assert.Same(control, engine.Control);
        Assert.Empty(_tun.Written);
    }

    public void Dispose()
    {
        foreach (var d in _dispose) d.Dispose();
    }
}
