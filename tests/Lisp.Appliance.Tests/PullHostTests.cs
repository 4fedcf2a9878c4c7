using System.Net;
using System.Text;
using Lisp.Appliance.Config;
using Lisp.Appliance.Hosting;
using Lisp.ControlPlane;
using Lisp.Decent;
using Lisp.Wire;

namespace Lisp.Appliance.Tests;

/// <summary>
/// In-process checks of how a pull-mode host keeps map-server sets apart (<see cref="ControlNodeSet"/>) and of
/// the ITR waiting for the mapping system instead of giving up. The process-level demo is PullDemoTests.
/// </summary>
public sealed class PullHostTests
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private const string Key = "decent-demo-key";

    /// <summary>i.ms.test -> 127.0.(i+1).1 and .2, answered at once.</summary>
    private sealed class SeedDns : IDnsAddressSource
    {
        public Task<DnsAnswer> QueryAsync(string name, CancellationToken cancellationToken)
        {
            int i = int.Parse(name.Split('.')[0], System.Globalization.CultureInfo.InvariantCulture);
            return Task.FromResult(new DnsAnswer(DnsOutcome.Ok, [IPAddress.Parse($"127.0.{i + 1}.1"), IPAddress.Parse($"127.0.{i + 1}.2")], TimeSpan.FromMinutes(5)));
        }
    }

    private static IPEndPoint Ep(string a) => new(IPAddress.Parse(a), 4342);

    private static readonly string[] Listen = ["127.0.1.1", "127.0.1.2", "127.0.2.1", "127.0.2.2", "127.0.3.1", "127.0.3.2", "127.0.4.1", "127.0.4.2"];

    private static async Task<(ControlNodeSet Nodes, PullMappingSystem Pull)> Split(bool withXtr = false)
    {
        var config = ConfigLoader.Parse($"""
            [node]
            roles = ["map-server", "map-resolver"{(withXtr ? ", \"itr\", \"etr\"" : "")}]
            listen = [{string.Join(", ", Listen.Select(a => $"\"{a}\""))}]
            {(withXtr ? "rlocs = [\"127.0.9.1\"]" : "")}
            [decent.pull]
            dns_suffix = "ms.test"
            modulus = 4
            dns_servers = ["127.0.0.1:53"]
            key = "{Key}"
            [[site]]
            key = "{Key}"
            eid_prefixes = ["[0]0.0.0.0/0", "[0]'dino'"]
            accept_more_specifics = true
            {(withXtr ? "[[database]]\neid = \"[0]10.0.0.0/8\"" : "")}
            """);
        var pull = new PullMappingSystem(new DecentPullOptions
        {
            DnsSuffix = "ms.test",
            Hash = new DecentHashOptions { Modulus = 4 },
            Dns = new DnsResolverOptions { Servers = [Ep("127.0.0.1")] },
        }, new SeedDns());
        await pull.WarmUpAllAsync();
        return (ControlNodeSet.ForPull(config, pull, Listen.Select(Ep).ToList()), pull);
    }

    private static byte[] Register(string eid, string rloc = "127.0.9.1") => new MapRegister
    {
        ProxyReply = true,
        WantMapNotify = true,
        Nonce = 0x1234,
        Algorithm = AuthAlgorithm.HmacSha256_128,
        Records = [new MappingRecord(EidPrefix.Parse(eid), [new LocatorRecord(new IpAddress(IPAddress.Parse(rloc)))], 3, MapReplyAction.NoAction, Authoritative: true)],
    }.ToSignedBytes(Encoding.UTF8.GetBytes(Key));

    private static byte[] Request(string eid) => new EncapsulatedControlMessage(
        new IpUdpHeader(IPAddress.Parse("127.0.9.2"), IPAddress.Any, 4342, 4342, 64),
        new MapRequest { Nonce = 0x77, SourceEid = NoAddress.Instance, ItrRlocs = [new IpAddress(IPAddress.Parse("127.0.9.2"))], Records = [EidPrefix.Parse(eid)] }).ToBytes();

    private static IReadOnlyList<ControlAction> Deliver(ControlNodeSet nodes, byte[] payload, string local, string from = "127.0.9.1")
    {
        var packet = new ReceivedPacket(payload, Ep(from), Ep(local));
        return nodes.Route(packet).Handle(packet, T0);
    }

    [Fact]
    public async Task Each_listen_address_is_a_map_server_of_its_own_sets_only()
    {
        var (nodes, pull) = await Split();
        using var _ = pull;
        Assert.True(nodes.IsSplit);
        Assert.Equal(8, nodes.Servers.Count);
        Assert.Equal(1, PullLab.IndexOf("[0]1.1.1.1/32"));

        // Set 1 is 127.0.2.1 and 127.0.2.2: registrations arriving there are kept; anywhere else refused.
        var refused = Deliver(nodes, Register("[0]1.1.1.1/32"), "127.0.1.1");
        Assert.Contains(refused, a => a is LogAction { Event: "registration-rejected" } l && l.Message.Contains("not-served-here", StringComparison.Ordinal) && l.Message.Contains("index 1", StringComparison.Ordinal));
        Assert.Equal(1, nodes.Servers[Ep("127.0.1.1")].Counters.Drops(DropReason.NotServedHere));
        Assert.DoesNotContain(refused, a => a is SendAction);

        var accepted = Deliver(nodes, Register("[0]1.1.1.1/32"), "127.0.2.1");
        Assert.Contains(accepted, a => a is LogAction { Event: "registration-accepted" });
        Assert.Contains(accepted, a => a is SendAction s && s.To.Equals(Ep("127.0.9.1")) && s.From!.Equals(Ep("127.0.2.1"))); // Map-Notify

        // Tables are apart: only 127.0.2.1 holds it (the ETR registers with 127.0.2.2 separately).
        foreach (var (ep, node) in nodes.Servers)
        {
            Assert.Equal(ep.Equals(Ep("127.0.2.1")) ? 1 : 0, node.MapServer!.Registrations(T0).Count);
        }

        // A Map-Request at the right set is answered from its table; at another set it is forwarded to set 1.
        var answered = Deliver(nodes, Request("[0]1.1.1.1/32"), "127.0.2.1", from: "127.0.9.2");
        var reply = Assert.Single(answered.OfType<SendAction>());
        Assert.Equal(Ep("127.0.9.2"), reply.To);
        Assert.True(ControlMessage.TryDecode(reply.Payload, out var m).IsOk);
        Assert.Single(Assert.IsType<MapReply>(m).Records[0].Locators);

        var forwarded = Assert.Single(Deliver(nodes, Request("[0]1.1.1.1/32"), "127.0.3.1", from: "127.0.9.2").OfType<SendAction>());
        Assert.Contains(forwarded.To, new[] { Ep("127.0.2.1"), Ep("127.0.2.2") });
        Assert.True(ControlMessage.TryDecode(forwarded.Payload, out var f).IsOk);
        Assert.True(Assert.IsType<EncapsulatedControlMessage>(f).ForMapServer);
    }

    [Fact]
    public async Task Xtr_roles_live_in_their_own_node_and_get_the_xtr_messages()
    {
        var (nodes, pull) = await Split(withXtr: true);
        using var _ = pull;
        Assert.NotNull(nodes.ItrNode);
        Assert.Same(nodes.ItrNode, nodes.Primary);
        Assert.Null(nodes.Primary.MapServer);
        Assert.All(nodes.Servers.Values, n => Assert.True(n.Etr is null && n.Itr is null && n.MapServer is not null));

        var reply = new MapReply { Nonce = 1, Records = [] }.ToBytes();
        var notify = new MapNotify { Nonce = 1, Algorithm = AuthAlgorithm.HmacSha256_128, Records = [] }.ToSignedBytes(Encoding.UTF8.GetBytes(Key));
        var ack = new MapNotify { IsAck = true, Nonce = 1, Algorithm = AuthAlgorithm.HmacSha256_128, Records = [] }.ToSignedBytes(Encoding.UTF8.GetBytes(Key));
        var local = Ep("127.0.3.2");
        ControlNode To(byte[] b) => nodes.Route(new ReceivedPacket(b, Ep("127.0.9.9"), local));
        Assert.Same(nodes.Primary, To(reply));
        Assert.Same(nodes.Primary, To(notify));
        Assert.Same(nodes.Servers[local], To(ack));
        Assert.Same(nodes.Servers[local], To(Register("[0]1.1.1.1/32")));
        Assert.Same(nodes.Servers[local], To(Request("[0]1.1.1.1/32")));
        var forEtr = new EncapsulatedControlMessage(new IpUdpHeader(IPAddress.Loopback, IPAddress.Loopback, 4342, 4342, 64),
            new MapRequest { Nonce = 2, SourceEid = NoAddress.Instance, ItrRlocs = [new IpAddress(IPAddress.Loopback)], Records = [EidPrefix.Parse("[0]10.1.1.1/32")] }) { ForEtr = true };
        Assert.Same(nodes.Primary, To(forEtr.ToBytes()));
        Assert.Same(nodes.Primary, To([]));
        Assert.Same(nodes.Primary, To([0xff, 0, 1]));
    }

    /// <summary>A mapping system that knows nothing until told.</summary>
    private sealed class LateMappingSystem : IMappingSystem
    {
        public IReadOnlyList<IPEndPoint> Resolvers { get; set; } = [];
        public string Name => "late";
        public IReadOnlyList<IPEndPoint> MapServersFor(EidPrefix eid) => Resolvers;
        public IReadOnlyList<IPEndPoint> MapResolversFor(EidPrefix eid) => Resolvers;
    }

    [Fact]
    public void Itr_waits_for_the_mapping_system_then_sends()
    {
        var ms = new LateMappingSystem();
        var itr = new Itr(new ItrOptions { Rlocs = [IPAddress.Parse("127.0.9.2")] }, ms);
        var first = itr.Request(EidPrefix.Parse("[0]1.1.1.1/32"), T0);
        Assert.DoesNotContain(first, a => a is SendAction);
        Assert.Contains(first, a => a is LogAction { Event: "map-request-waiting" });
        Assert.Equal(T0.AddSeconds(1), itr.NextDeadline);
        Assert.Empty(itr.Tick(T0.AddSeconds(1)).OfType<SendAction>());   // still nothing known: keeps waiting
        Assert.Empty(itr.Request(EidPrefix.Parse("[0]1.1.1.1/32"), T0.AddSeconds(1.5)));
        ms.Resolvers = [Ep("127.0.2.1"), Ep("127.0.2.2")];
        var sent = Assert.Single(itr.Tick(T0.AddSeconds(2.5)).OfType<SendAction>());
        Assert.Equal(Ep("127.0.2.1"), sent.To);
        Assert.Single(itr.Outstanding);
    }

    [Fact]
    public void Itr_gives_up_waiting_after_the_limit()
    {
        var itr = new Itr(new ItrOptions { Rlocs = [IPAddress.Parse("127.0.9.2")], NoResolverGiveUp = TimeSpan.FromSeconds(5) }, new LateMappingSystem());
        itr.Request(EidPrefix.Parse("[0]1.1.1.1/32"), T0);
        for (int s = 1; s < 5; s++) Assert.DoesNotContain(itr.Tick(T0.AddSeconds(s)), a => a is LogAction { Event: "map-request-dropped" });
        Assert.Contains(itr.Tick(T0.AddSeconds(5)), a => a is LogAction { Event: "map-request-dropped" });
        Assert.Null(itr.NextDeadline);
        Assert.Equal(1, itr.Counters.Drops(DropReason.NoResolver));
    }
}
