using System.Net;
using Lisp.DataPlane;
using Lisp.MapCache;
using Lisp.Wire;
using Xunit;

namespace Lisp.DataPlane.Tests;

/// <summary>
/// RFC 9302 map-versioning in the data plane, one batch at a time over the in-memory underlay: the ITR sends the
/// V bit with our version and the destination mapping's, the ETR counts destination versions that differ from
/// ours and asks for a Map-Request (through the miss queue) when a source version is newer than the map-cache's.
/// </summary>
public sealed class MapVersioningTests : IDisposable
{
    private static readonly IPAddress Rloc1 = IPAddress.Parse("192.0.2.1");
    private static readonly IPAddress Rloc2 = IPAddress.Parse("192.0.2.2");
    private static readonly IPEndPoint Peer = new(Rloc1, 50000);
    private const uint Iid = 7;

    private readonly InMemoryUnderlay _underlay = new();
    private readonly InMemoryTun _tunA = new("a");
    private readonly InMemoryTun _tunB = new("b");
    private readonly MapCacheWriter _cache = new();
    private readonly MissQueue _misses = new(capacity: 64, ratePerSecond: 1000, burst: 100);
    private readonly List<IDisposable> _dispose = [];

    private static DataPlaneOptions Options(ushort version) => new() { InstanceId = Iid, LocalRlocV4 = Rloc1, BatchSize = 16, MaxPacket = 2000, MapVersion = version };

    private ItrWorker Itr(ushort version)
    {
        var w = new ItrWorker(_tunA, () => _cache.Current, _underlay.Sender(Rloc1), null, _misses, Options(version));
        _dispose.Add(w);
        return w;
    }

    private EtrWorker Etr(ushort version)
    {
        var w = new EtrWorker(_underlay.Bind(Rloc2), new Dictionary<uint, ITun> { [Iid] = _tunB }, Options(version), snapshot: () => _cache.Current, misses: _misses);
        _dispose.Add(w);
        return w;
    }

    /// <summary>A LISP data datagram with the V bit: hand-assembled header + an inner IPv4/UDP packet from <paramref name="source"/>.</summary>
    private static byte[] Versioned(ushort sourceVersion, ushort destVersion, string source = "10.1.0.5")
    {
        var inner = Packets.UdpV4(source, "10.2.0.9", 1000, 80, 60);
        var d = new byte[8 + inner.Length];
        d[0] = 0x18;                                                   // V (0x10) + I (0x08); no N: the nonce field holds the versions
        d[1] = (byte)(sourceVersion >> 4);                             // source version, high 8 of 12 bits
        d[2] = (byte)((sourceVersion & 0xf) << 4 | destVersion >> 8);  // source version low 4 | destination version high 4
        d[3] = (byte)destVersion;                                      // destination version, low 8 bits
        d[4] = 0; d[5] = 0; d[6] = (byte)Iid; d[7] = 0;                 // instance-id 7, LSBs 0
        inner.CopyTo(d, 8);
        return d;
    }

    [Fact]
    public void The_itr_sends_the_v_bit_with_our_version_and_the_destination_mappings()
    {
        _cache.AddOrReplace(EidPrefix.Parse($"[{Iid}]10.2.0.0/24"), [new RlocSpec(Rloc2, 1, 50)], 60, long.MaxValue, mapVersion: 0x123);
        _cache.AddOrReplace(EidPrefix.Parse($"[{Iid}]10.3.0.0/24"), [new RlocSpec(Rloc2, 1, 50)], 60, long.MaxValue); // no version known
        _cache.Publish();
        var itr = Itr(version: 0xabc);
        Assert.True(_tunA.Inject(Packets.UdpV4("10.1.0.1", "10.2.0.9", 1000, 80, 60)));
        Assert.True(_tunA.Inject(Packets.UdpV4("10.1.0.1", "10.3.0.9", 1000, 80, 60)));
        Assert.Equal(2, itr.RunOnce(0));
        var sent = _underlay.Sent.ToArray();
        Assert.True(InMemoryUnderlay.TryStrip(sent[0].Packet, out var first, out _, out _, out _));
        // 0x18 = V + I; then 12 bits source version 0xabc and 12 bits destination version 0x123; iid 7, LSBs 0.
        Assert.Equal("18ABC12300000700", Convert.ToHexString(first[..8]));
        Assert.True(InMemoryUnderlay.TryStrip(sent[1].Packet, out var second, out _, out _, out _));
        Assert.Equal("18ABC00000000700", Convert.ToHexString(second[..8])); // destination version null (0)
        Assert.True(DataHeader.TryRead(first, out var h).IsOk);
        Assert.True(h.MapVersionPresent && !h.NoncePresent);
        Assert.Equal((0xabc, 0x123), (h.SourceMapVersion, h.DestMapVersion));
        Assert.Equal(2, itr.Counters.VersionedSent);
    }

    [Fact]
    public void Without_a_configured_version_the_itr_sends_nonces_as_before()
    {
        _cache.AddOrReplace(EidPrefix.Parse($"[{Iid}]10.2.0.0/24"), [new RlocSpec(Rloc2, 1, 50)], 60, long.MaxValue, mapVersion: 9);
        _cache.Publish();
        var itr = Itr(version: 0);
        Assert.True(_tunA.Inject(Packets.UdpV4("10.1.0.1", "10.2.0.9", 1000, 80, 60)));
        Assert.Equal(1, itr.RunOnce(0));
        Assert.True(InMemoryUnderlay.TryStrip(_underlay.Sent.Single().Packet, out var payload, out _, out _, out _));
        Assert.Equal(0x88, payload[0]); // N + I
        Assert.Equal(0, itr.Counters.VersionedSent);
    }

    [Fact]
    public void A_newer_source_version_asks_for_a_map_request_once_per_interval_and_older_or_equal_does_not()
    {
        _cache.AddOrReplace(EidPrefix.Parse($"[{Iid}]10.1.0.0/24"), [new RlocSpec(Rloc1, 1, 50)], 60, long.MaxValue, mapVersion: 10);
        _cache.Publish();
        var etr = Etr(version: 0);
        foreach (var d in new[] { Versioned(9, 0), Versioned(10, 0), Versioned(11, 0), Versioned(12, 0), Versioned(11, 0, source: "10.9.9.9") })
        {
            _underlay.Bind(Rloc2).Enqueue(d, Peer);
        }
        Assert.Equal(5, etr.RunOnce(0));
        Assert.Equal(5, etr.Counters.DecapPackets); // versioning never drops: every packet still reaches the TUN
        Assert.Equal(5, etr.Counters.VersionedPackets);
        // 9 and 10 are not newer than 10; 11 is (one request); 12 is suppressed (same EID within the interval);
        // 10.9.9.9 has no map-cache entry (nothing to refresh; gleaning is a separate feature).
        Assert.Equal(1, etr.Counters.VersionRefreshes);
        var got = new List<Miss>();
        _misses.Drain(got);
        Assert.Equal([new Miss(Iid, IPAddress.Parse("10.1.0.5"))], got);
    }

    [Fact]
    public void The_source_version_wraps_around_and_null_versions_are_never_compared()
    {
        _cache.AddOrReplace(EidPrefix.Parse($"[{Iid}]10.1.0.0/24"), [new RlocSpec(Rloc1, 1, 50)], 60, long.MaxValue, mapVersion: 4090);
        _cache.AddOrReplace(EidPrefix.Parse($"[{Iid}]10.4.0.0/24"), [new RlocSpec(Rloc1, 1, 50)], 60, long.MaxValue); // version 0
        _cache.Publish();
        var etr = Etr(version: 0);
        _underlay.Bind(Rloc2).Enqueue(Versioned(3, 0), Peer);                      // 4090 -> 3 wraps: newer
        _underlay.Bind(Rloc2).Enqueue(Versioned(7, 0, source: "10.4.0.1"), Peer); // cached null: not compared
        Assert.Equal(2, etr.RunOnce(0));
        Assert.Equal(1, etr.Counters.VersionRefreshes);
        var got = new List<Miss>();
        _misses.Drain(got);
        Assert.Equal("[7]10.1.0.5", Assert.Single(got).ToString());
    }

    [Fact]
    public void Destination_versions_other_than_ours_are_counted_stale_or_newer()
    {
        var etr = Etr(version: 100);
        foreach (var dest in new ushort[] { 100, 99, 50, 101, 0 }) _underlay.Bind(Rloc2).Enqueue(Versioned(0, dest), Peer);
        Assert.Equal(5, etr.RunOnce(0));
        Assert.Equal(2, etr.Counters.DestVersionStale);  // 99, 50
        Assert.Equal(1, etr.Counters.DestVersionNewer);  // 101
        Assert.Equal(5, etr.Counters.DecapPackets);
        Assert.Equal(0, etr.Counters.VersionRefreshes);   // source version null
        Assert.Contains("versioned sent 0 received 5 (refreshes 0, dest stale 2, dest newer 1)", etr.Counters.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Round_trip_between_two_versioning_xtrs_reaches_the_tun()
    {
        _cache.AddOrReplace(EidPrefix.Parse($"[{Iid}]10.2.0.0/24"), [new RlocSpec(Rloc2, 1, 50)], 60, long.MaxValue, mapVersion: 5);
        _cache.Publish();
        var itr = Itr(version: 3);
        var etr = Etr(version: 5);
        var packet = Packets.UdpV4("10.1.0.1", "10.2.0.9", 1000, 80, 100);
        Assert.True(_tunA.Inject(packet));
        Assert.Equal(1, itr.RunOnce(0));
        Assert.Equal(1, etr.RunOnce(0));
        Assert.Equal(Convert.ToHexString(packet), Convert.ToHexString(_tunB.Written.Single()));
        Assert.Equal(0, etr.Counters.DestVersionStale + etr.Counters.DestVersionNewer); // 5 is the ETR's own version
    }

    public void Dispose()
    {
        foreach (var d in _dispose) d.Dispose();
    }
}
