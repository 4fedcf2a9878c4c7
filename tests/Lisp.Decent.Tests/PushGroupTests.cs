using System.Net;
using Lisp.ControlPlane;
using Lisp.Decent.Push;
using Lisp.Wire;
using Xunit;

namespace Lisp.Decent.Tests;

/// <summary>Push-based LISP-Decent (RFC 9962 section 4) with real control-plane state machines in memory.</summary>
public class PushGroupTests
{
    private static readonly string[][] DemoEids =
    [
        ["[0]1.1.1.1/32", "[0]'nexus-n1'"],
        ["[0]2.2.2.2/32", "[0]'nexus-n2'"],
        ["[0]3.3.3.3/32", "[0]'nexus-n3'"],
    ];

    private static readonly string[] AllSix = ["[0]1.1.1.1/32", "[0]'nexus-n1'", "[0]2.2.2.2/32", "[0]'nexus-n2'", "[0]3.3.3.3/32", "[0]'nexus-n3'"];
    private const string PeerGroup = "[0](0.0.0.0/0, 224.1.1.1/32)";

    private static PushTestNetwork Demo(PushDelivery delivery, bool wantMapNotify = false)
    {
        var net = new PushTestNetwork(delivery) { WantMapNotify = wantMapNotify };
        for (int i = 1; i <= 3; i++) net.Add(i, 3, DemoEids[i - 1]);
        return net;
    }

    [Theory]
    [InlineData(PushDelivery.Replicate)]
    [InlineData(PushDelivery.ReplicateEncapsulated)]
    [InlineData(PushDelivery.Multicast)]
    public void Seed_demo_every_member_holds_all_six_and_the_peer_group(PushDelivery delivery)
    {
        var net = Demo(delivery, wantMapNotify: true);
        net.Converge();
        foreach (var m in net.Members)
        {
            var eids = m.Eids(net.Now);
            foreach (var e in AllSix) Assert.Contains(e, eids);
            Assert.Contains(PeerGroup, eids);
            Assert.Equal(7, eids.Count);
            var rows = m.Ms.SiteTable(net.Now);
            Assert.Contains(rows, r => r.Eid.ToString() == "[0](0.0.0.0/0, 224.0.0.0/4)" && r.Configured);
            var peer = rows.Single(r => r.Eid.ToString() == PeerGroup);
            Assert.Equal(3, peer.Registrants);
            var rle = Assert.IsType<ReplicationListAddress>(peer.Rlocs[0].Locator);
            Assert.Equal(3, rle.Entries.Count);
            // The registerer of n2's EIDs is n2's control endpoint in every delivery form (inner source when encapsulated).
            Assert.Equal(PushTestNetwork.ControlOf(2), m.Ms.Registrations(net.Now).Single(r => r.Eid.ToString() == "[0]2.2.2.2/32").Registerer);
            Assert.Contains("P-", m.Ms.Registrations(net.Now).First().FlagsText, StringComparison.Ordinal);
        }
        Assert.Equal(0, net.DecapsulationDrops);
        switch (delivery)
        {
            case PushDelivery.ReplicateEncapsulated:
                Assert.Equal(3 * 2, net.ByChannel[PushChannel.Data]); // one round: each member encapsulates to the 2 others
                break;
            case PushDelivery.Multicast:
                Assert.Equal(3, net.ByChannel[PushChannel.Multicast]);
                Assert.Equal(0, net.ByChannel[PushChannel.Data]);
                break;
            default:
                Assert.Equal(0, net.ByChannel[PushChannel.Data] + net.ByChannel[PushChannel.Multicast]);
                break;
        }
        // Every Map-Register was acknowledged by a Map-Notify from every member.
        foreach (var m in net.Members)
        {
            // One Map-Register per member (multicast) or per (member, member) pair; each member answers a Map-Notify,
            // which is the acknowledgement (RFC 9301 5.7): no Map-Notify-Ack goes back.
            Assert.Equal(delivery == PushDelivery.Multicast ? 1 : 3, m.Node.Counters.Events(ControlEvent.MapNotifyAccepted));
            Assert.Equal(0, m.Node.Counters.Events(ControlEvent.MapNotifyAckSent));
        }
    }

    [Theory]
    [InlineData(PushDelivery.Replicate)]
    [InlineData(PushDelivery.ReplicateEncapsulated)]
    [InlineData(PushDelivery.Multicast)]
    public void Lookups_are_answered_locally_for_every_eid(PushDelivery delivery)
    {
        var net = Demo(delivery);
        net.Converge();
        long before = net.Datagrams;
        var n1 = net["n1"];
        foreach (var e in new[] { "[0]3.3.3.3/32", "[0]'nexus-n2'", PeerGroup })
        {
            net.Emit(n1, n1.Node.Request(EidPrefix.Parse(e), net.Now));
        }
        net.Run();
        var cache = n1.Node.Itr!.Entries(net.Now);
        Assert.Equal("10.0.0.3", Assert.IsType<IpAddress>(cache.Single(c => c.Eid.ToString() == "[0]3.3.3.3/32").Locators[0].Locator).Address.ToString());
        Assert.Equal("10.0.0.2", Assert.IsType<IpAddress>(cache.Single(c => c.Eid.ToString() == "[0]'nexus-n2'").Locators[0].Locator).Address.ToString());
        Assert.IsType<ReplicationListAddress>(cache.Single(c => c.Eid.ToString() == PeerGroup).Locators[0].Locator);
        // Each lookup is one Map-Request to itself and one Map-Reply to itself: nothing went to another member.
        Assert.Equal(6, net.Datagrams - before);
    }

    [Theory]
    [InlineData(PushDelivery.Replicate)]
    [InlineData(PushDelivery.ReplicateEncapsulated)]
    public void A_late_joiner_learns_every_mapping_within_one_register_interval(PushDelivery delivery)
    {
        var net = new PushTestNetwork(delivery);
        for (int i = 1; i <= 3; i++) net.Add(i, 4, DemoEids[i - 1]); // n4 is configured everywhere but not running yet
        net.Converge();
        net.Advance(TimeSpan.FromSeconds(20));
        var n4 = net.Add(4, 4, ["[0]4.4.4.4/32", "[0]'nexus-n4'"]);
        net.Converge(); // n4's first registration reaches everybody at once
        foreach (var m in net.Members) Assert.True(m.Holds("[0]4.4.4.4/32", net.Now), m.Name);
        Assert.False(n4.Holds("[0]1.1.1.1/32", net.Now));
        net.Advance(net.RegisterInterval * 1.1); // one interval, jitter included
        foreach (var e in AllSix) Assert.True(n4.Holds(e, net.Now), e);
        Assert.Equal(9, n4.Eids(net.Now).Count);
    }

    [Fact]
    public void A_member_that_stops_refreshing_ages_out_everywhere_and_one_that_leaves_is_withdrawn_at_once()
    {
        var net = Demo(PushDelivery.Replicate);
        net.Converge();
        net["n3"].Up = false; // crashed: no more Map-Registers
        net.Advance(net.RegisterInterval * 2);
        Assert.True(net["n1"].Holds("[0]3.3.3.3/32", net.Now));
        net.Advance(net.RegisterInterval * 1.5);
        foreach (var m in net.Members.Where(m => m.Up))
        {
            Assert.False(m.Holds("[0]3.3.3.3/32", net.Now), m.Name);
            Assert.False(m.Holds("[0]'nexus-n3'", net.Now), m.Name);
            Assert.True(m.Holds("[0]2.2.2.2/32", net.Now), m.Name);
            Assert.Equal(2, m.Ms.SiteTable(net.Now).Single(r => r.Eid.ToString() == PeerGroup).Registrants);
            Assert.True(m.Node.Counters.Events(ControlEvent.RegistrationExpired) >= 3);
        }

        // Leaving on purpose: Map-Registers with TTL 0 remove n2 everywhere now.
        var n2 = net["n2"];
        net.Emit(n2, n2.Node.Etr!.Withdraw(net.Now));
        net.Run();
        Assert.False(net["n1"].Holds("[0]2.2.2.2/32", net.Now));
        Assert.False(n2.Holds("[0]'nexus-n2'", net.Now));
        Assert.True(net["n1"].Holds("[0]1.1.1.1/32", net.Now));
    }

    [Theory]
    [InlineData(PushDelivery.Replicate)]
    [InlineData(PushDelivery.ReplicateEncapsulated)]
    [InlineData(PushDelivery.Multicast)]
    public void An_rloc_change_reaches_every_member_and_smrs_the_itrs_that_cached_the_old_mapping(PushDelivery delivery)
    {
        var net = Demo(delivery);
        net.Converge();
        var n1 = net["n1"];
        var n2 = net["n2"];
        var n3 = net["n3"];
        net.Emit(n1, n1.Node.Request(EidPrefix.Parse("[0]3.3.3.3/32"), net.Now));
        net.Emit(n2, n2.Node.Request(EidPrefix.Parse("[0]3.3.3.3/32"), net.Now));
        net.Run();
        net.Now += TimeSpan.FromSeconds(2);

        // n3 roams / multi-homes: 3.3.3.3 is now reached at 10.9.9.9 (priority 1) and its old RLOC (priority 2).
        var db = n3.Node.Etr!.Database.Select(d => d.Eid.ToString() == "[0]3.3.3.3/32"
            ? d with { Rlocs = [new LocatorRecord(IpAddress.Parse("10.9.9.9")), new LocatorRecord(new IpAddress(n3.Rloc), Priority: 2)] }
            : d).ToList();
        net.Emit(n3, n3.Node.Etr.UpdateDatabase(db, net.Now));
        net.Run();

        foreach (var m in net.Members)
        {
            var reg = m.Ms.Registrations(net.Now).Where(r => r.Eid.ToString() == "[0]3.3.3.3/32").ToList();
            Assert.Single(reg); // same registerer (xTR-ID), replaced rather than merged
            Assert.Equal(2, reg[0].Rlocs.Count);
        }
        foreach (var itrNode in new[] { n1, n2 })
        {
            Assert.Equal(1, itrNode.Node.Counters.Events(ControlEvent.SmrSent));
            Assert.Equal(1, itrNode.Node.Counters.Events(ControlEvent.SmrHonoured));
            var entry = itrNode.Node.Itr!.Entries(net.Now).Single(e => e.Eid.ToString() == "[0]3.3.3.3/32");
            Assert.Equal("10.9.9.9", entry.BestLocators().Single().Locator.ToText());
        }
        Assert.Equal(0, n3.Node.Counters.Events(ControlEvent.SmrSent)); // n3's ITR never cached it
    }

    [Theory]
    [InlineData(PushDelivery.Replicate, false)]
    [InlineData(PushDelivery.Replicate, true)]
    [InlineData(PushDelivery.ReplicateEncapsulated, false)]
    [InlineData(PushDelivery.Multicast, false)]
    public void A_register_from_a_non_member_with_a_wrong_key_or_none_changes_nothing_and_is_counted(PushDelivery delivery, bool unauthenticated)
    {
        var net = Demo(delivery);
        net.Converge();
        var stranger = new IPEndPoint(IPAddress.Parse("10.66.0.1"), 4342);
        var records = new[]
        {
            new MappingRecord(EidPrefix.Parse("[0]1.1.1.1/32"), [new LocatorRecord(IpAddress.Parse("10.66.0.1"))], 3, MapReplyAction.NoAction, true),
            new MappingRecord(EidPrefix.Parse("[0]'evil'"), [new LocatorRecord(IpAddress.Parse("10.66.0.1"))], 3, MapReplyAction.NoAction, true),
        };
        var reg = new MapRegister
        {
            Nonce = 7, Algorithm = unauthenticated ? AuthAlgorithm.None : AuthAlgorithm.HmacSha256_128, Records = records, WantMapNotify = true,
        };
        var bytes = unauthenticated ? reg.ToBytes() : reg.ToSignedBytes("not-the-group-key"u8.ToArray());
        var before = net.Members.Select(m => (m.Ms.Registrations(net.Now).Count, m.Node.Counters.Drops(DropReason.AuthFailure))).ToList();
        foreach (var m in net.Members)
        {
            switch (delivery)
            {
                case PushDelivery.ReplicateEncapsulated:
                    net.Inject(PushChannel.Data, new IPEndPoint(m.Rloc, 4341), PushEncapsulation.Encapsulate(bytes, stranger, net.Group), stranger);
                    break;
                case PushDelivery.Multicast when m == net.Members[0]:
                    net.Inject(PushChannel.Multicast, new IPEndPoint(net.Group, 4342), bytes, stranger);
                    break;
                case PushDelivery.Multicast:
                    break;
                default:
                    net.Inject(PushChannel.Control, m.Control, bytes, stranger);
                    break;
            }
        }
        net.Run();
        for (int i = 0; i < net.Members.Count; i++)
        {
            var m = net.Members[i];
            Assert.Equal(before[i].Item1, m.Ms.Registrations(net.Now).Count);
            Assert.DoesNotContain(m.Ms.Registrations(net.Now), r => r.Eid.ToString() == "[0]'evil'" || r.Registerer.Equals(stranger));
            Assert.Equal(before[i].Item2 + 1, m.Node.Counters.Drops(DropReason.AuthFailure));
            Assert.Equal("10.0.0.1", m.Ms.Registrations(net.Now).Single(r => r.Eid.ToString() == "[0]1.1.1.1/32").Rlocs[0].Locator.ToText());
        }
        Assert.DoesNotContain(net.Log, l => l.Contains("registration-accepted", StringComparison.Ordinal) && l.Contains("evil", StringComparison.Ordinal));
    }

    [Fact]
    public void Encapsulated_form_round_trips_and_foreign_data_packets_are_refused()
    {
        var group = IPAddress.Parse("224.1.1.1");
        var src = new IPEndPoint(IPAddress.Parse("172.17.0.5"), 4342);
        var reg = new MapRegister { Nonce = 1, Records = [] }.ToBytes();
        var pkt = PushEncapsulation.Encapsulate(reg, src, group, 0x123456);
        Assert.Equal(8 + 20 + 8 + reg.Length, pkt.Length);
        Assert.True(DataHeader.TryRead(pkt, out var h).IsOk);
        Assert.True(h.InstanceIdPresent);
        Assert.Equal(0xffffffu, h.InstanceId);
        Assert.True(PushEncapsulation.TryDecapsulate(pkt, group, out var inner, out var innerSource, out _));
        Assert.Equal(reg, inner);
        Assert.Equal(src, innerSource);

        Assert.False(PushEncapsulation.TryDecapsulate(pkt, IPAddress.Parse("224.2.2.2"), out _, out _, out var e1));
        Assert.Contains("not the group", e1, StringComparison.Ordinal);
        var other = (byte[])pkt.Clone();
        DataHeader.ForInstance(1000, 5).Write(other);
        Assert.False(PushEncapsulation.TryDecapsulate(other, group, out _, out _, out var e2));
        Assert.Contains("0xffffff", e2, StringComparison.Ordinal);
        Assert.False(PushEncapsulation.TryDecapsulate(pkt.AsSpan(0, 20), group, out _, out _, out _));
        Assert.False(PushEncapsulation.TryDecapsulate(pkt.AsSpan(0, 3), group, out _, out _, out _));

        var v6 = PushEncapsulation.Encapsulate(reg, new IPEndPoint(IPAddress.Parse("2001:db8::5"), 4342), IPAddress.Parse("ff0e::1:1"));
        Assert.True(PushEncapsulation.TryDecapsulate(v6, IPAddress.Parse("ff0e::1:1"), out var inner6, out var src6, out _));
        Assert.Equal(reg, inner6);
        Assert.Equal("2001:db8::5", src6.Address.ToString());
    }

    [Fact]
    public void Mapping_system_names_every_member_or_the_group_and_always_resolves_locally()
    {
        var self = new IPEndPoint(IPAddress.Parse("10.0.0.1"), 4342);
        var others = new[] { new IPEndPoint(IPAddress.Parse("10.0.0.2"), 4342), self, new IPEndPoint(IPAddress.Parse("::ffff:10.0.0.3"), 4342) };
        var rep = new PushMappingSystem(new PushOptions { Group = IPAddress.Parse("224.1.1.1"), Self = [self], Members = others, Key = "k" });
        var eid = EidPrefix.Parse("[0]9.9.9.9/32");
        Assert.Equal(["10.0.0.1:4342", "10.0.0.2:4342", "10.0.0.3:4342"], rep.MapServersFor(eid).Select(e => e.ToString()));
        Assert.Equal([self], rep.MapResolversFor(eid));
        rep.SetMembers([new IPEndPoint(IPAddress.Parse("10.0.0.7"), 4342)]);
        Assert.Equal(2, rep.Members.Count);
        Assert.Contains("2 members", rep.Name, StringComparison.Ordinal);

        var mc = new PushMappingSystem(new PushOptions { Group = IPAddress.Parse("224.1.1.1"), Self = [self], Key = "k", Delivery = PushDelivery.Multicast });
        Assert.Equal(["224.1.1.1:4342"], mc.MapServersFor(eid).Select(e => e.ToString()));
        Assert.Throws<ArgumentException>(() => new PushMappingSystem(new PushOptions { Group = IPAddress.Parse("10.1.1.1"), Self = [self], Key = "k" }));
        Assert.Throws<ArgumentException>(() => new PushMappingSystem(new PushOptions { Group = IPAddress.Parse("224.1.1.1"), Self = [self], Key = "" }));
        Assert.Equal("[0](0.0.0.0/0, 224.1.1.1/32)", PushGroup.PeerGroupEid(IPAddress.Parse("224.1.1.1")).ToString());
        Assert.Equal("[0](::/0, ff00::/8)", PushGroup.AllGroupsEid(IPAddress.Parse("ff0e::1")).ToString());
    }

    [Fact]
    public void Core_seed_group_a_new_member_finds_its_layer_by_looking_its_group_up_in_the_seed_group()
    {
        // Seed group 224.1.1.1: A, B, C (members 1..3).
        var seed = new PushTestNetwork(PushDelivery.Replicate);
        for (int i = 1; i <= 3; i++) seed.Add(i, 3, [$"[0]192.168.{i}.0/24"]);
        seed.Converge();

        // Layer 224.2.2.2 (I, J, K = 10.0.0.9..11) registers its group and member RLE into the seed group (through member A's group key).
        var layerMembers = new[] { "10.0.0.9", "10.0.0.10", "10.0.0.11" }.Select(IPAddress.Parse).ToList();
        var layerGroup = IPAddress.Parse("224.2.2.2");
        var registrar = new Etr(new EtrOptions
        {
            Database = [PushGroup.PeerGroupMapping(layerGroup, layerMembers)],
            Key = PushTestNetwork.Key, ProxyReply = true, WantMapNotify = false,
        }, seed.Members[0].Push);
        seed.Emit(seed.Members[0], registrar.Tick(seed.Now));
        seed.Run();
        foreach (var m in seed.Members) Assert.True(m.Holds("[0](0.0.0.0/0, 224.2.2.2/32)", seed.Now), m.Name);

        // A new xTR L (10.0.0.12) asks seed member B for its layer's group.
        var l = new IPEndPoint(IPAddress.Parse("10.0.0.12"), 4342);
        const ulong nonce = 0x5eed;
        var b = seed.Members[1];
        var actions = b.Node.Handle(new ReceivedPacket(PushSeedGroup.LookupRequest(layerGroup, l, nonce), l, b.Control), seed.Now);
        var reply = actions.OfType<SendAction>().Single();
        Assert.Equal(l, reply.To);
        var found = PushSeedGroup.MembersFromReply(reply.Payload, nonce);
        Assert.Equal(layerMembers, found);
        Assert.Null(PushSeedGroup.MembersFromReply(reply.Payload, nonce + 1));

        // L joins the layer with what it found; its Map-Registers go to I, J, K and itself.
        var layer = new PushMappingSystem(new PushOptions { Group = layerGroup, Self = [l], Key = "layer-key" });
        layer.SetMembers(found!.Select(a => new IPEndPoint(a, 4342)));
        Assert.Equal(4, layer.MapServersFor(EidPrefix.Parse("[0]5.5.5.5/32")).Count);

        // An unknown layer: the seed answers negatively, so no members.
        var none = b.Node.Handle(new ReceivedPacket(PushSeedGroup.LookupRequest(IPAddress.Parse("224.9.9.9"), l, nonce), l, b.Control), seed.Now);
        Assert.Empty(PushSeedGroup.MembersFromReply(none.OfType<SendAction>().Single().Payload, nonce)!);
    }
}
