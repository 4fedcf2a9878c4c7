using System.Net;
using Lisp.DataPlane;
using Lisp.Wire;
using Xunit;

namespace Lisp.DataPlane.Tests;

/// <summary>
/// `accept_from = "known"` (issue 13): the ETR decapsulates only from known RLOCs (the published set or a configured
/// prefix); other sources are dropped and counted as unknown-source; instance-id 0xffffff control packets are not
/// filtered; without a filter every source is accepted. Driven one batch at a time over the in-memory underlay.
/// </summary>
public sealed class DecapFilterTests : IDisposable
{
    private static readonly IPAddress Rloc = IPAddress.Parse("192.0.2.2");
    private const uint Iid = 7;
    private readonly InMemoryUnderlay _underlay = new();
    private readonly InMemoryTun _tun = new("t");
    private readonly List<IDisposable> _dispose = [];

    private EtrWorker Etr(DecapFilter? filter, ControlHandoff? control = null)
    {
        var o = new DataPlaneOptions { InstanceId = Iid, LocalRlocV4 = Rloc, BatchSize = 16, MaxPacket = 2000, AcceptFrom = filter };
        var w = new EtrWorker(_underlay.Bind(Rloc), new Dictionary<uint, ITun> { [Iid] = _tun }, o, control: control);
        _dispose.Add(w);
        return w;
    }

    private static byte[] Datagram(uint iid)
    {
        var inner = Packets.UdpV4("10.1.0.1", "10.2.0.9", 1000, 80, 60);
        var d = new byte[DataHeader.Length + inner.Length];
        DataHeader.ForInstance(iid, 0x123456).Write(d);
        inner.CopyTo(d.AsSpan(DataHeader.Length));
        return d;
    }

    private void From(string source, uint iid = Iid) => _underlay.Bind(Rloc).Enqueue(Datagram(iid), new IPEndPoint(IPAddress.Parse(source), 4341));

    [Fact]
    public void Only_known_rlocs_and_configured_prefixes_are_decapsulated_the_rest_counted()
    {
        var filter = new DecapFilter([(IPAddress.Parse("198.51.100.0"), 24)]);
        filter.Publish([RlocKey.From(IPAddress.Parse("192.0.2.9")), RlocKey.From(IPAddress.Parse("192.0.2.10"))]);
        var etr = Etr(filter);
        From("192.0.2.9");       // in the set
        From("192.0.2.9");       // again (the per-batch last-accepted shortcut)
        From("192.0.2.11");      // not
        From("198.51.100.77");   // inside the configured /24
        From("198.51.101.1");    // just outside it
        From("192.0.2.10");      // in the set
        Assert.Equal(6, etr.RunOnce(0));
        Assert.Equal(4, etr.Counters.DecapPackets);
        Assert.Equal(4, _tun.Written.Count);
        Assert.Equal(2, etr.Counters[DropReason.UnknownSource]);

        // A new set is used from the next batch: 192.0.2.11 becomes known, 192.0.2.9 is forgotten.
        filter.Publish([RlocKey.From(IPAddress.Parse("192.0.2.11"))]);
        From("192.0.2.11");
        From("192.0.2.9");
        Assert.Equal(2, etr.RunOnce(0));
        Assert.Equal(5, etr.Counters.DecapPackets);
        Assert.Equal(3, etr.Counters[DropReason.UnknownSource]);
    }

    [Fact]
    public void Control_packets_pass_and_no_filter_accepts_every_source()
    {
        var got = new List<ControlPacket>();
        var control = new ControlHandoff(got.Add, capacity: 8);
        var filter = new DecapFilter([]);
        var etr = Etr(filter, control);
        From("203.0.113.5", DataHeader.DecentControlInstanceId);   // a push Map-Register from an unknown member
        From("203.0.113.5");                                       // data from it: refused
        Assert.Equal(2, etr.RunOnce(0));
        Assert.Equal(1, etr.Counters.ControlPackets);
        Assert.Equal(0, etr.Counters.DecapPackets);
        Assert.Equal(1, etr.Counters[DropReason.UnknownSource]);

        var open = Etr(null);
        From("203.0.113.5");
        Assert.Equal(1, open.RunOnce(0));
        Assert.Equal(1, open.Counters.DecapPackets);
        Assert.Equal(0, open.Counters.TotalDrops);
    }

    [Fact]
    public void The_set_answers_like_a_hash_set_for_many_v4_and_v6_rlocs()
    {
        var rng = new Random(3);
        var members = new HashSet<UInt128>();
        var keys = new List<RlocKey>();
        for (int i = 0; i < 5000; i++)
        {
            var b = new byte[i % 2 == 0 ? 4 : 16];
            rng.NextBytes(b);
            var k = RlocKey.From(new IPAddress(b));
            keys.Add(k);
            members.Add(k.Value);
        }
        var filter = new DecapFilter([(IPAddress.Parse("2001:db8::"), 32)]);
        filter.Publish(keys);
        Assert.Equal(members.Count, filter.Count);
        var set = filter.Current;
        foreach (var k in keys) Assert.True(set.Contains(k));
        for (int i = 0; i < 20000; i++)
        {
            var b = new byte[i % 2 == 0 ? 4 : 16];
            rng.NextBytes(b);
            var k = RlocKey.From(new IPAddress(b));
            bool inPrefix = b.Length == 16 && b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8;
            Assert.Equal(members.Contains(k.Value) || inPrefix, set.Contains(k));
        }
        Assert.True(set.Contains(RlocKey.From(IPAddress.Parse("2001:db8:ffff::1"))));
    }

    [Fact]
    public void A_packet_from_an_unknown_rloc_asks_once_for_its_inner_source_and_passes_once_the_rloc_is_known()
    {
        var cache = new Lisp.MapCache.MapCacheWriter();
        var misses = new MissQueue(capacity: 64, ratePerSecond: 1000, burst: 100);
        var filter = new DecapFilter([]);
        var o = new DataPlaneOptions { InstanceId = Iid, LocalRlocV4 = Rloc, BatchSize = 16, MaxPacket = 2000, AcceptFrom = filter };
        var etr = new EtrWorker(_underlay.Bind(Rloc), new Dictionary<uint, ITun> { [Iid] = _tun }, o, snapshot: () => cache.Current, misses: misses);
        _dispose.Add(etr);
        From("192.0.2.50");
        From("192.0.2.50");
        Assert.Equal(2, etr.RunOnce(0));
        Assert.Equal(2, etr.Counters[DropReason.UnknownSource]);
        Assert.Equal(1, etr.Counters.UnknownSourceLookups);   // suppressed for the second packet
        var asked = new List<Miss>();
        misses.Drain(asked);
        var miss = Assert.Single(asked);
        Assert.Equal(Iid, miss.InstanceId);
        Assert.Equal(IPAddress.Parse("10.1.0.1"), miss.Address);   // the inner source EID, not the outer RLOC

        // The mapping system answered with that RLOC: the control thread publishes it and the next packet passes.
        filter.Publish([RlocKey.From(IPAddress.Parse("192.0.2.50"))]);
        From("192.0.2.50");
        Assert.Equal(1, etr.RunOnce(0));
        Assert.Equal(1, etr.Counters.DecapPackets);
        Assert.Equal(1, etr.Counters.UnknownSourceLookups);
    }

    public void Dispose()
    {
        foreach (var d in _dispose) d.Dispose();
    }
}
