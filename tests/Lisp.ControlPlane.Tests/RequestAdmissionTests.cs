using System.Net;
using System.Text;
using Lisp.ControlPlane;
using Lisp.Wire;
using static Lisp.ControlPlane.Tests.H;

namespace Lisp.ControlPlane.Tests;

/// <summary>
/// Issue 12, finding 4: reflection and amplification. Map-Request admission at the node: refused ITR-RLOC kinds,
/// token buckets per source and per reply address in a bounded table, and the amplification bound.
/// </summary>
public class RequestAdmissionTests
{
    private const string Key = "adm-key";
    private static readonly IPEndPoint Self = Ep("10.0.0.1:4342");

    private static ControlNode Node(RequestAdmissionOptions? admission = null) => new(new ControlNodeOptions
    {
        Name = "msmr",
        LocalEndpoints = [Self],
        MapServer = new MapServerOptions
        {
            Sites = [new SiteConfig("s", Key, [E("[0]10.0.0.0/8")]) { AcceptMoreSpecifics = true }],
        },
        MapResolver = new MapResolverOptions(),
        Admission = admission ?? new RequestAdmissionOptions(),
    }, new StaticMappingSystem([Self], [Self]), new Random(3));

    /// <summary>An ECM Map-Request from <paramref name="from"/> (outer source) naming <paramref name="itrRlocs"/>.</summary>
    private static IReadOnlyList<ControlAction> Ask(ControlNode node, string from, DateTimeOffset now, ulong nonce = 7, string eid = "[0]10.1.2.3/32", params string[] itrRlocs)
    {
        var src = IPEndPoint.Parse(from);
        var request = Request(nonce, eid, itrRlocs.Length > 0 ? itrRlocs : [src.Address.ToString()]);
        return node.Handle(new ReceivedPacket(Ecm(request, src.Address.ToString()), src, Self), now);
    }

    [Theory]
    [InlineData("224.0.0.1", ControlEvent.ItrRlocRefusedMulticast)]
    [InlineData("239.255.255.250", ControlEvent.ItrRlocRefusedMulticast)]
    [InlineData("ff02::1", ControlEvent.ItrRlocRefusedMulticast)]
    [InlineData("255.255.255.255", ControlEvent.ItrRlocRefusedBroadcast)]
    [InlineData("0.0.0.0", ControlEvent.ItrRlocRefusedUnspecified)]
    [InlineData("::", ControlEvent.ItrRlocRefusedUnspecified)]
    [InlineData("127.0.0.1", ControlEvent.ItrRlocRefusedLoopback)]
    [InlineData("::1", ControlEvent.ItrRlocRefusedLoopback)]
    public void A_request_whose_only_itr_rloc_is_refused_is_dropped_and_counted(string itrRloc, ControlEvent counted)
    {
        var node = Node();
        var actions = Ask(node, "192.0.2.9:4342", T0, itrRlocs: itrRloc);
        Assert.Empty(Sends(actions));
        Assert.Equal(1, node.Counters.Events(counted));
        Assert.Equal(1, node.Counters.Drops(DropReason.ItrRlocRefused));
        Assert.Contains(Logs(actions), l => l.Event == "itr-rloc-refused" && l.Level == LogLevel.Warning);
        Assert.Equal(0, node.Counters.Events(ControlEvent.NegativeMapReplySent));
    }

    [Fact]
    public void Refused_itr_rlocs_are_skipped_and_the_rest_answered()
    {
        var node = Node();
        var actions = Ask(node, "192.0.2.9:4342", T0, itrRlocs: ["224.0.0.5", "255.255.255.255", "192.0.2.9"]);
        var send = Assert.Single(Sends(actions));
        Assert.Equal(Ep("192.0.2.9:4342"), send.To);
        Assert.Equal(1, node.Counters.Events(ControlEvent.ItrRlocRefusedMulticast));
        Assert.Equal(1, node.Counters.Events(ControlEvent.ItrRlocRefusedBroadcast));
        Assert.Equal(0, node.Counters.Drops(DropReason.ItrRlocRefused));
        Assert.Equal("event.itr-rloc-refused-multicast", node.Counters.Snapshot().Select(kv => kv.Key).Single(k => k.Contains("multicast")));
    }

    [Fact]
    public void A_loopback_itr_rloc_is_answered_when_the_request_came_from_loopback()
    {
        var node = Node();
        var actions = Ask(node, "127.0.0.1:4342", T0, itrRlocs: "127.0.0.1");
        Assert.Equal(Ep("127.0.0.1:4342"), Assert.Single(Sends(actions)).To);
        Assert.Equal(0, node.Counters.Events(ControlEvent.ItrRlocRefusedLoopback));
    }

    [Fact]
    public void A_forwarded_request_carries_only_the_admitted_itr_rlocs()
    {
        // No local map-server knows 10.9.0.0: the resolver forwards to another map-server.
        var other = Ep("10.0.0.2:4342");
        var node = new ControlNode(new ControlNodeOptions { LocalEndpoints = [Self], MapResolver = new MapResolverOptions() },
            new StaticMappingSystem([other], [Self]), new Random(3));
        var actions = Ask(node, "192.0.2.9:4342", T0, eid: "[0]10.9.0.1/32", itrRlocs: ["ff0e::1", "192.0.2.9"]);
        var forward = Assert.Single(Sends(actions));
        Assert.Equal(other, forward.To);
        var inner = (MapRequest)Decode<EncapsulatedControlMessage>(forward.Payload).Message;
        Assert.Equal([IpAddress.Parse("192.0.2.9")], inner.ItrRlocs.Cast<IpAddress>().ToList());
    }

    [Fact]
    public void A_flood_from_one_source_is_held_to_its_bucket_while_another_source_is_answered()
    {
        var node = Node(new RequestAdmissionOptions { RatePerSource = 10, BurstPerSource = 20 });
        int answered = 0;
        for (int i = 0; i < 100; i++) answered += Sends(Ask(node, "192.0.2.9:4342", T0.AddMilliseconds(i), (ulong)i + 1)).Count;
        // 20 at once, plus 10/s over the 99 ms the flood lasted (not a whole token).
        Assert.Equal(20, answered);
        Assert.Equal(80, node.Counters.Drops(DropReason.RateLimited));
        Assert.Single(Sends(Ask(node, "198.51.100.4:4342", T0.AddMilliseconds(100))));
        // Almost a second later the flooding source has 10 more (0.99 + 9.91 tokens).
        answered = 0;
        for (int i = 0; i < 50; i++) answered += Sends(Ask(node, "192.0.2.9:4342", T0.AddSeconds(1.09), (ulong)i + 1000)).Count;
        Assert.Equal(10, answered);
    }

    [Fact]
    public void Many_sources_naming_one_victim_are_held_to_the_victims_bucket()
    {
        var node = Node(new RequestAdmissionOptions { RatePerSource = 10, BurstPerSource = 20 });
        int toVictim = 0;
        for (int i = 0; i < 200; i++)
        {
            var actions = Ask(node, $"192.0.2.{i + 1 & 255}:4342", T0, (ulong)i + 1, itrRlocs: "203.0.113.66");
            toVictim += Sends(actions).Count(s => s.To.Address.Equals(Ip("203.0.113.66")));
        }
        Assert.Equal(20, toVictim);
        Assert.Equal(180, node.Counters.Drops(DropReason.RateLimited));
    }

    [Fact]
    public void The_bucket_table_stays_bounded_under_100k_sources_and_keeps_the_busy_victim()
    {
        var counters = new ControlCounters();
        var adm = new RequestAdmission(new RequestAdmissionOptions { RatePerSource = 10, BurstPerSource = 20, MaxTracked = 65536 }, counters);
        var request = Request(1, "[0]10.1.2.3/32", "203.0.113.66");
        var ecm = Decode<EncapsulatedControlMessage>(Ecm(request, "203.0.113.66"));
        int admitted = 0;
        for (int i = 0; i < 100_000; i++)
        {
            var from = new IPEndPoint(new IPAddress(new byte[] { 100, (byte)(i >> 16), (byte)(i >> 8), (byte)i }), 4342);
            var now = T0.AddTicks(i * 10);   // 100k requests within 0.1 s
            if (adm.TryAdmit((MapRequest)ecm.Message, ecm, new ReceivedPacket([], from, Self), now, out _, out _, out _)) admitted++;
            Assert.True(adm.Tracked <= 65536);
        }
        Assert.Equal(65536, adm.Tracked);
        // The victim's bucket was never evicted (so never refilled): 20 at once, plus 10/s x 0.1 s.
        Assert.InRange(admitted, 20, 21);
        Assert.Equal(100_000 - admitted, counters.Drops(DropReason.RateLimited));
    }

    [Fact]
    public void Rate_zero_turns_the_buckets_off()
    {
        var node = Node(new RequestAdmissionOptions { RatePerSource = 0 });
        int answered = 0;
        for (int i = 0; i < 5000; i++) answered += Sends(Ask(node, "192.0.2.9:4342", T0, (ulong)i + 1)).Count;
        Assert.Equal(5000, answered);
        Assert.Equal(0, node.Admission!.Tracked);
    }

    private static ControlNode WithLargeRegistration()
    {
        var node = Node();
        var rlocs = Enumerable.Range(1, 255).Select(i => $"2001:db8::{i:x}").ToArray();
        var reg = Register(0x55, AuthAlgorithm.HmacSha256_128, Rec("[0]10.1.0.0/16", rlocs)) with { ProxyReply = true };
        node.Handle(Packet(reg.ToSignedBytes(Encoding.UTF8.GetBytes(Key)), "192.0.2.1:4342"), T0);
        Assert.Single(node.MapServer!.Registrations(T0));
        return node;
    }

    [Fact]
    public void A_255_rloc_reply_to_a_third_party_itr_rloc_is_withheld_but_answered_to_the_source()
    {
        var node = WithLargeRegistration();
        var third = Ask(node, "192.0.2.9:4342", T0, 1, "[0]10.1.2.3/32", "198.51.100.77");
        Assert.Empty(Sends(third));
        Assert.Equal(1, node.Counters.Drops(DropReason.AmplificationBound));
        Assert.Contains(Logs(third), l => l.Event == "amplification-bound");

        var own = Ask(node, "192.0.2.9:4342", T0, 2, "[0]10.1.2.3/32", "192.0.2.9");
        var reply = Assert.Single(Sends(own));
        Assert.Equal(Ep("192.0.2.9:4342"), reply.To);
        Assert.Equal(255, Decode<MapReply>(reply.Payload).Records[0].Locators.Count);
        Assert.True(reply.Payload.Length > 50 * Ecm(Request(2, "[0]10.1.2.3/32", "192.0.2.9"), "192.0.2.9").Length);
        Assert.Equal(1, node.Counters.Drops(DropReason.AmplificationBound));
    }

    [Fact]
    public void A_small_reply_to_a_third_party_itr_rloc_is_sent()
    {
        var node = Node();
        // A negative Map-Reply is smaller than the request: within the bound wherever it goes.
        var actions = Ask(node, "192.0.2.9:4342", T0, 1, "[0]10.1.2.3/32", "198.51.100.77");
        Assert.Equal(Ep("198.51.100.77:4342"), Assert.Single(Sends(actions)).To);
        Assert.Equal(0, node.Counters.Drops(DropReason.AmplificationBound));
    }

    [Fact]
    public void Amplification_limit_zero_sends_the_large_reply_anywhere()
    {
        var node = new ControlNode(new ControlNodeOptions
        {
            LocalEndpoints = [Self],
            MapServer = new MapServerOptions { Sites = [new SiteConfig("s", Key, [E("[0]10.0.0.0/8")]) { AcceptMoreSpecifics = true }] },
            Admission = new RequestAdmissionOptions { AmplificationFactor = 0 },
        }, new StaticMappingSystem([Self], [Self]), new Random(3));
        var reg = Register(0x55, AuthAlgorithm.HmacSha256_128, Rec("[0]10.1.0.0/16", Enumerable.Range(1, 255).Select(i => $"2001:db8::{i:x}").ToArray())) with { ProxyReply = true };
        node.Handle(Packet(reg.ToSignedBytes(Encoding.UTF8.GetBytes(Key)), "192.0.2.1:4342"), T0);
        var actions = Ask(node, "192.0.2.9:4342", T0, 1, "[0]10.1.2.3/32", "198.51.100.77");
        Assert.Equal(Ep("198.51.100.77:4342"), Assert.Single(Sends(actions)).To);
    }

    [Fact]
    public void An_etr_refuses_a_multicast_itr_rloc_in_a_plain_request()
    {
        var etr = new ControlNode(new ControlNodeOptions
        {
            LocalEndpoints = [Self],
            Etr = new EtrOptions { Database = [new DatabaseMapping(E("[0]10.5.0.0/16"), [Loc("10.0.0.1")])], Key = Key },
        }, new StaticMappingSystem([Ep("10.0.0.9:4342")], []), new Random(3));
        var probe = Request(9, "[0]10.5.0.0/16", "224.0.0.9") with { Probe = true };
        var actions = etr.Handle(Packet(probe.ToBytes(), "198.51.100.3:4342"), T0);
        Assert.Empty(Sends(actions));
        Assert.Equal(1, etr.Counters.Drops(DropReason.ItrRlocRefused));
        var ok = Request(10, "[0]10.5.0.0/16", "198.51.100.3") with { Probe = true };
        Assert.Single(Sends(etr.Handle(Packet(ok.ToBytes(), "198.51.100.3:4342"), T0)));
    }
}
