using System.Net;
using Lisp.DataPlane;
using Lisp.MapCache;
using Lisp.Wire;
using Xunit;

namespace Lisp.DataPlane.Tests;

/// <summary>
/// Echo-nonce (RFC 9300 section 10.1) as a state machine on a fake clock (1 tick = 1 ms): two tables play the two
/// xTRs, each packet is one OnSend on the sender and one OnReceive on the receiver, and Tick gives the verdicts.
/// </summary>
public sealed class EchoNonceTests
{
    private static readonly RlocKey A = RlocKey.From(IPAddress.Parse("192.0.2.1"));
    private static readonly RlocKey B = RlocKey.From(IPAddress.Parse("192.0.2.2"));
    private static readonly EchoNonceOptions Timings = new() { RequestInterval = TimeSpan.FromSeconds(10), Timeout = TimeSpan.FromSeconds(3), Retry = TimeSpan.FromSeconds(30) };

    private static EchoNonceTable Table(int seed) => new(Timings, ticksPerSecond: 1000, seed: seed);

    /// <summary>One packet from <paramref name="from"/> (at RLOC <paramref name="fromKey"/>) to the RLOC <paramref name="toKey"/>; returns (N set, E set, nonce).</summary>
    private static (bool N, bool E, uint Nonce) Packet(EchoNonceTable from, RlocKey fromKey, RlocKey toKey, EchoNonceTable? to, long now)
    {
        bool n = from.OnSend(toKey, now, out uint nonce, out bool e);
        if (n) to?.OnReceive(fromKey, e, nonce, now);
        return (n, e, nonce);
    }

    private static List<EchoNonceChange> Tick(EchoNonceTable t, long now)
    {
        var changes = new List<EchoNonceChange>();
        t.Tick(now, changes);
        return changes;
    }

    [Fact]
    public void Bidirectional_traffic_echoes_the_request_and_the_rloc_stays_up()
    {
        var a = Table(1);
        var b = Table(2);
        var first = Packet(a, A, B, b, 0);
        Assert.True(first.N && first.E); // the first packet to B asks for an echo
        Assert.NotEqual(0u, first.Nonce);
        Assert.Equal(1, a.Requests);

        // B's packet back: B requests too, but it owes A's nonce and echoes it first (E clear).
        var back = Packet(b, B, A, a, 100);
        Assert.True(back.N && !back.E);
        Assert.Equal(first.Nonce, back.Nonce);
        Assert.Equal(1, a.EchoesReceived);
        Assert.Equal("up", Assert.Single(a.Snapshot(100)).State);

        // B's next packet carries its own request (alternating), A echoes it, B is satisfied too.
        var bRequest = Packet(b, B, A, a, 200);
        Assert.True(bRequest.E);
        var aEcho = Packet(a, A, B, b, 300);
        Assert.False(aEcho.E);
        Assert.Equal(bRequest.Nonce, aEcho.Nonce);
        Assert.Equal(1, b.EchoesReceived);

        // Traffic on both sides for a minute: a request every interval, always echoed; nothing is marked down.
        for (long t = 400; t < 60_000; t += 200)
        {
            Packet(a, A, B, b, t);
            Packet(b, B, A, a, t + 100);
            Assert.Empty(Tick(a, t + 150));
            Assert.Empty(Tick(b, t + 150));
        }
        Assert.InRange(a.Requests, 6, 8);          // about one per 10 s
        Assert.Equal(a.Requests, a.EchoesReceived);
        Assert.Equal(0, a.Downs + b.Downs);
    }

    [Fact]
    public void No_echo_while_traffic_flows_marks_the_rloc_down_and_it_is_retried_after_the_hold()
    {
        var a = Table(1);
        var b = Table(2);
        Packet(a, A, B, b, 0);
        Packet(b, B, A, a, 0);
        Assert.Equal(1, a.EchoesReceived);

        // At 10 s the next request is due; B has stopped answering (its packets never come back).
        for (long t = 10_000; t <= 13_000; t += 200)
        {
            Packet(a, A, B, to: null, t);
            if (t < 13_000) Assert.Empty(Tick(a, t));
        }
        var down = Assert.Single(Tick(a, 13_000));
        Assert.Equal((B, false), (down.Rloc, down.Reachable));
        Assert.Contains("no echo", down.Reason, StringComparison.Ordinal);
        Assert.True(a.IsDown(B));
        Assert.Equal(1, a.Downs);
        Assert.Equal("down", Assert.Single(a.Snapshot(13_000)).State);
        // While down no request goes out (the map-cache stops using the RLOC; a stray packet is plain).
        Assert.False(a.OnSend(B, 14_000, out _, out _));

        // After the retry hold it is marked reachable again and the next packet asks anew.
        Assert.Empty(Tick(a, 42_999));
        var retry = Assert.Single(Tick(a, 43_000));
        Assert.True(retry.Reachable);
        Assert.False(a.IsDown(B));
        Assert.Equal(1, a.Retries);
        Assert.True(a.OnSend(B, 43_100, out _, out bool request) && request);
    }

    [Fact]
    public void A_request_without_continuing_traffic_is_abandoned_without_a_verdict()
    {
        var a = Table(1);
        Packet(a, A, B, to: null, 0);                // one packet, then silence
        Assert.Empty(Tick(a, 3_000));
        Assert.Equal(1, a.Abandoned);
        Assert.Equal(0, a.Downs);
        Assert.False(a.IsDown(B));
        Assert.True(a.OnSend(B, 3_100, out _, out bool request) && request); // traffic again: asks again
    }

    [Fact]
    public void A_peers_request_carrying_our_nonce_is_not_taken_as_the_echo()
    {
        var a = Table(1);
        Assert.True(a.OnSend(B, 0, out uint nonce, out _));
        a.OnReceive(B, echoRequest: true, nonce, 100); // E set: a request, whatever its nonce
        Assert.Equal(0, a.EchoesReceived);
        a.OnReceive(B, echoRequest: false, nonce ^ 1, 150); // another nonce: not ours
        Assert.Equal(0, a.EchoesReceived);
        a.OnReceive(B, echoRequest: false, nonce, 200);
        Assert.Equal(1, a.EchoesReceived);
    }

    [Fact]
    public void An_owed_echo_stops_after_the_timeout_since_the_peers_last_request()
    {
        var a = Table(1);
        a.OnReceive(B, echoRequest: true, 0x123456, 0);
        Assert.True(a.OnSend(B, 100, out uint n1, out bool e1));
        Assert.Equal((0x123456u, false), (n1, e1));      // echo first
        Assert.True(a.OnSend(B, 200, out _, out bool e2) && e2); // then our own request
        Assert.True(a.OnSend(B, 300, out uint n3, out _) && n3 == 0x123456); // alternating while we request
        Assert.Equal(2, a.EchoesSent);
        a.OnReceive(B, echoRequest: false, 0xabcdef, 400); // not our nonce: still requesting
        Assert.True(a.OnSend(B, 3_100, out uint n4, out bool e4));
        Assert.True(e4);                                   // owed echo expired at 3 s: only our request now
        Assert.NotEqual(0x123456u, n4);
    }

    [Fact]
    public void The_table_is_bounded_and_counts_what_it_cannot_track()
    {
        var t = new EchoNonceTable(Timings with { MaxRlocs = 2 }, ticksPerSecond: 1000, seed: 3);
        Assert.True(t.OnSend(RlocKey.From(IPAddress.Parse("192.0.2.10")), 0, out _, out _));
        Assert.True(t.OnSend(RlocKey.From(IPAddress.Parse("2001:db8::10")), 0, out _, out _));
        Assert.False(t.OnSend(RlocKey.From(IPAddress.Parse("192.0.2.12")), 0, out _, out _));
        Assert.Equal(1, t.TableFull);
        Assert.Equal(["192.0.2.10", "2001:db8::10"], t.Snapshot(0).Select(r => r.Rloc.ToString()).OrderBy(s => s, StringComparer.Ordinal));
    }

    [Fact]
    public void Rloc_keys_round_trip_both_families()
    {
        foreach (var s in new[] { "192.0.2.1", "2001:db8::1", "::1" })
        {
            var k = RlocKey.From(IPAddress.Parse(s));
            Assert.Equal(IPAddress.Parse(s), k.ToAddress());
        }
        // An IPv4-mapped IPv6 RLOC is the IPv4 RLOC (the key space is the IPv4-mapped form).
        Assert.Equal(RlocKey.From(IPAddress.Parse("192.0.2.1")), RlocKey.From(IPAddress.Parse("::ffff:192.0.2.1")));
        Assert.Equal(RlocKey.FromV4(0xc0000201), RlocKey.From(IPAddress.Parse("192.0.2.1")));
    }
}

/// <summary>Echo-nonce through the real workers over the in-memory underlay: the bits on the wire and the round trip.</summary>
public sealed class EchoNonceWorkerTests : IDisposable
{
    private static readonly IPAddress Rloc1 = IPAddress.Parse("192.0.2.1");
    private static readonly IPAddress Rloc2 = IPAddress.Parse("192.0.2.2");
    private const uint Iid = 7;

    private readonly InMemoryUnderlay _underlay = new();
    private readonly MapCacheWriter _cache1 = new(), _cache2 = new();
    private readonly MissQueue _misses = new(capacity: 64, ratePerSecond: 1000, burst: 100);
    private readonly List<IDisposable> _dispose = [];

    private (ItrWorker Itr, EtrWorker Etr, InMemoryTun Tun, EchoNonceTable Echo) Xtr(IPAddress rloc, MapCacheWriter cache, ushort mapVersion = 0)
    {
        var tun = new InMemoryTun(rloc.ToString());
        var echo = new EchoNonceTable(new EchoNonceOptions(), seed: 5);
        var o = new DataPlaneOptions { InstanceId = Iid, LocalRlocV4 = rloc, BatchSize = 16, MaxPacket = 2000, MapVersion = mapVersion };
        var itr = new ItrWorker(tun, () => cache.Current, _underlay.Sender(rloc), null, _misses, o, echo: echo);
        var etr = new EtrWorker(_underlay.Bind(rloc), new Dictionary<uint, ITun> { [Iid] = tun }, o, echo: echo);
        _dispose.Add(itr);
        _dispose.Add(etr);
        return (itr, etr, tun, echo);
    }

    [Fact]
    public void The_request_and_the_echo_cross_the_wire_in_the_nonce_field()
    {
        _cache1.AddOrReplace(EidPrefix.Parse($"[{Iid}]10.2.0.0/24"), [new RlocSpec(Rloc2, 1, 50)], 60, long.MaxValue);
        _cache1.Publish();
        _cache2.AddOrReplace(EidPrefix.Parse($"[{Iid}]10.1.0.0/24"), [new RlocSpec(Rloc1, 1, 50)], 60, long.MaxValue);
        _cache2.Publish();
        var x1 = Xtr(Rloc1, _cache1, mapVersion: 9); // map-versioning on too: echo-nonce packets take the field first
        var x2 = Xtr(Rloc2, _cache2);

        Assert.True(x1.Tun.Inject(Packets.UdpV4("10.1.0.1", "10.2.0.1", 1000, 80, 60)));
        Assert.Equal(1, x1.Itr.RunOnce(0));
        Assert.True(_underlay.Sent.TryDequeue(out var request));
        Assert.True(InMemoryUnderlay.TryStrip(request.Packet, out var h1, out _, out _, out _));
        Assert.Equal(0xa8, h1[0]); // N (0x80) + E (0x20) + I (0x08): an echo request, no V bit
        uint nonce = (uint)(h1[1] << 16 | h1[2] << 8 | h1[3]);
        Assert.Equal(1, x2.Etr.RunOnce(0));
        Assert.Single(x2.Tun.Written);

        Assert.True(x2.Tun.Inject(Packets.UdpV4("10.2.0.1", "10.1.0.1", 80, 1000, 60)));
        Assert.Equal(1, x2.Itr.RunOnce(0));
        Assert.True(_underlay.Sent.TryDequeue(out var echo));
        Assert.True(InMemoryUnderlay.TryStrip(echo.Packet, out var h2, out _, out _, out _));
        Assert.Equal(0x88, h2[0]); // N + I, E clear: the echo
        Assert.Equal(nonce, (uint)(h2[1] << 16 | h2[2] << 8 | h2[3]));
        Assert.Equal(1, x1.Etr.RunOnce(0));
        Assert.Equal(1, x1.Echo.EchoesReceived);
        Assert.Equal(1, x2.Echo.EchoesSent);
        Assert.Equal("up", Assert.Single(x1.Echo.Snapshot(0)).State);

        // With no request due and nothing owed (x2's packet was its echo; its own request waits for its next packet),
        // x1's next packet carries the map-versions instead (V + I).
        Assert.True(x1.Tun.Inject(Packets.UdpV4("10.1.0.1", "10.2.0.1", 1000, 80, 60)));
        Assert.Equal(1, x1.Itr.RunOnce(0));
        Assert.True(_underlay.Sent.TryDequeue(out var plain));
        Assert.True(InMemoryUnderlay.TryStrip(plain.Packet, out var h3, out _, out _, out _));
        Assert.Equal("18009000", Convert.ToHexString(h3[..4])); // V + I, source version 0x009, destination version 0x000
    }

    public void Dispose()
    {
        foreach (var d in _dispose) d.Dispose();
    }
}
