using System.Net;
using Lisp.DataPlane;
using Lisp.MapCache;
using Lisp.Wire;
using Xunit;

namespace Lisp.DataPlane.Tests;

/// <summary>
/// The ETR half of gleaning: a decapsulated packet whose inner source EID the map-cache does not cover is posted
/// with its outer source (the RLOC that encapsulated it) to the glean queue, once per EID per second, bounded and
/// counted; covered sources (a mapping or an earlier glean) are not; the packet itself is delivered either way.
/// </summary>
public sealed class GleaningEtrTests : IDisposable
{
    private static readonly IPAddress Rloc2 = IPAddress.Parse("192.0.2.2");
    private static readonly IPEndPoint Peer = new(IPAddress.Parse("192.0.2.77"), 61000);
    private const uint Iid = 7;

    private readonly InMemoryUnderlay _underlay = new();
    private readonly InMemoryTun _tun = new("b");
    private readonly MapCacheWriter _cache = new();
    private readonly List<IDisposable> _dispose = [];

    private EtrWorker Etr(GleanQueue? gleans)
    {
        var o = new DataPlaneOptions { InstanceId = Iid, LocalRlocV4 = Rloc2, BatchSize = 16, MaxPacket = 2000 };
        var w = new EtrWorker(_underlay.Bind(Rloc2), new Dictionary<uint, ITun> { [Iid] = _tun }, o, snapshot: () => _cache.Current, gleans: gleans);
        _dispose.Add(w);
        return w;
    }

    private void Arrive(string source, string destination = "10.2.0.9")
    {
        var inner = Packets.UdpV4(source, destination, 1000, 80, 60);
        var d = new byte[DataHeader.Length + inner.Length];
        DataHeader.ForInstance(Iid, 0x010203).Write(d);
        inner.CopyTo(d, DataHeader.Length);
        _underlay.Bind(Rloc2).Enqueue(d, Peer);
    }

    [Fact]
    public void Uncovered_sources_are_posted_with_their_rloc_once_and_covered_ones_are_not()
    {
        _cache.AddOrReplace(EidPrefix.Parse($"[{Iid}]10.1.0.0/16"), [new RlocSpec(IPAddress.Parse("192.0.2.1"), 1, 50)], 60, long.MaxValue);
        _cache.Publish();
        var gleans = new GleanQueue(capacity: 8, ratePerSecond: 1000, burst: 100);
        var etr = Etr(gleans);
        Arrive("10.9.0.5");   // not covered: posted
        Arrive("10.9.0.5");   // same EID within a second: suppressed
        Arrive("10.1.2.3");   // covered by the mapping system's 10.1.0.0/16: never gleaned
        Arrive("10.9.0.6");   // another uncovered one
        Assert.Equal(4, etr.RunOnce(0));
        Assert.Equal(4, etr.Counters.DecapPackets);
        Assert.Equal(2, etr.Counters.GleansPosted);
        var got = new List<Glean>();
        gleans.Drain(got);
        Assert.Equal([new Glean(Iid, IPAddress.Parse("10.9.0.5"), Peer), new Glean(Iid, IPAddress.Parse("10.9.0.6"), Peer)], got);
        Assert.Contains("gleaned 2 (+0 refused)", etr.Counters.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void A_full_glean_queue_refuses_and_counts()
    {
        var gleans = new GleanQueue(capacity: 1, ratePerSecond: 1000, burst: 100);
        var etr = Etr(gleans);
        Arrive("10.9.0.1");
        Arrive("10.9.0.2");
        Assert.Equal(2, etr.RunOnce(0));
        Assert.Equal(1, etr.Counters.GleansPosted);
        Assert.Equal(1, etr.Counters.GleansRefused);
        Assert.Equal(2, etr.Counters.DecapPackets);
    }

    [Fact]
    public void Gleaning_off_posts_nothing()
    {
        var etr = Etr(gleans: null);
        Arrive("10.9.0.1");
        Assert.Equal(1, etr.RunOnce(0));
        Assert.Equal(0, etr.Counters.GleansPosted + etr.Counters.GleansRefused);
        Assert.Equal(1, etr.Counters.DecapPackets);
    }

    public void Dispose()
    {
        foreach (var d in _dispose) d.Dispose();
    }
}
