using System.Net;
using System.Text;
using CsCheck;
using Lisp.ControlPlane;
using Lisp.Wire;
using static Lisp.ControlPlane.Tests.H;

namespace Lisp.ControlPlane.Tests;

public class ControlNodeTests
{
    private const string Key = "node-key";
    private static readonly IPEndPoint Self = Ep("10.0.0.1:4342");

    private static ControlNode MsMr(IMappingSystem? system = null, params string[] prefixes) => new(new ControlNodeOptions
    {
        Name = "msmr",
        LocalEndpoints = [Self],
        MapServer = new MapServerOptions
        {
            Sites = [new SiteConfig("s", Key, (prefixes.Length > 0 ? prefixes : ["[0]10.0.0.0/8"]).Select(E).ToList()) { AcceptMoreSpecifics = true }],
        },
        MapResolver = new MapResolverOptions(),
    }, system ?? new StaticMappingSystem([Self], [Self]), new Random(3));

    private static byte[] ValidRegister(AuthAlgorithm alg = AuthAlgorithm.HmacSha256_128, string key = Key, string eid = "[0]10.1.0.0/16") =>
        Register(0x1234, alg, Rec(eid, "192.0.2.1")).ToSignedBytes(Encoding.UTF8.GetBytes(key));

    [Fact]
    public void Routes_register_and_notify_ack_to_the_map_server()
    {
        var node = MsMr();
        var actions = node.Handle(Packet(ValidRegister(), "10.0.0.2:4342"), T0);
        var notify = Decode<MapNotify>(Assert.Single(Sends(actions)).Payload);
        Assert.Single(node.MapServer!.Registrations(T0));
        var ack = new MapNotify { IsAck = true, Nonce = notify.Nonce, Records = notify.Records }.ToSignedBytes(Encoding.UTF8.GetBytes(Key));
        node.Handle(Packet(ack, "10.0.0.2:4342"), T0.AddSeconds(1));
        Assert.Equal(1, node.Counters.Drops(DropReason.StaleNonce));   // reached the map-server, which awaits no Ack for a solicited Map-Notify
        Assert.Equal(2, node.Counters.Events(ControlEvent.Received));
    }

    [Theory]
    [InlineData(new byte[0], WireError.Truncated)]
    [InlineData(new byte[] { 0x30 }, WireError.Truncated)]
    [InlineData(new byte[] { 0x30, 0, 0, 1 }, WireError.Truncated)]
    [InlineData(new byte[] { 0x60, 0, 0, 0 }, WireError.BadType)]
    [InlineData(new byte[] { 0xf0, 0, 0, 0, 1, 2, 3 }, WireError.BadType)]
    public void Malformed_packets_are_counted_by_kind(byte[] payload, WireError kind)
    {
        var node = MsMr();
        var actions = node.Handle(Packet(payload, "198.51.100.1:4342"), T0);
        Assert.Empty(Sends(actions));
        Assert.Equal(1, node.Counters.Malformed(kind));
        Assert.Equal(1, node.Counters.Drops(DropReason.Malformed));
    }

    [Fact]
    public void Every_truncation_and_bit_flip_of_valid_messages_never_throws_or_answers_unauthenticated()
    {
        var node = MsMr();
        var req = H.Request(9, "[0]10.1.2.3/32", "192.0.2.99");
        var samples = new[] { ValidRegister(), ValidRegister(AuthAlgorithm.HmacSha1_96), H.Ecm(req, "192.0.2.99"), req.ToBytes(),
            new MapReply { Nonce = 1, Records = [Rec("[0]10.1.0.0/16", "192.0.2.1")] }.ToBytes() };
        foreach (var valid in samples)
        {
            for (int n = 0; n < valid.Length; n++)
            {
                node.Handle(Packet(valid[..n], "198.51.100.1:4342"), T0);
            }
        }
        var reg = ValidRegister();
        int notifies = 0;
        for (int bit = 0; bit < reg.Length * 8; bit++)
        {
            var b = (byte[])reg.Clone();
            b[bit / 8] ^= (byte)(1 << (bit % 8));
            foreach (var s in Sends(node.Handle(Packet(b, "198.51.100.1:4342"), T0)))
            {
                // The HMAC covers every bit of the message, so no flipped copy may be answered.
                Assert.True(MessageAuthentication.Verify(b, Encoding.UTF8.GetBytes(Key)));
                notifies++;
            }
        }
        Assert.Equal(0, node.Counters.Drops(DropReason.HandlerFault));
        Assert.True(node.Counters.Drops(DropReason.Malformed) > 0);
        Assert.True(node.Counters.Drops(DropReason.AuthFailure) > 0);
        // Flips that still decode (flags, reserved bits, addresses) no longer verify: no Map-Notify for any of them.
        Assert.Equal(0, notifies);
    }

    [Fact]
    public void Random_bytes_never_throw()
    {
        var node = MsMr();
        var itrNode = new ControlNode(new ControlNodeOptions
        {
            Itr = new ItrOptions { Rlocs = [Ip("10.0.0.3")] },
            Etr = new EtrOptions { Key = Key, Database = [new DatabaseMapping(E("[0]10.1.0.0/16"), [Loc("10.0.0.3")])] },
        }, new StaticMappingSystem([Self], [Self]), new Random(5));
        Gen.Byte.Array[0, 200].Select(Gen.Byte[0, 8], (bytes, type) =>
        {
            if (bytes.Length > 0) bytes[0] = (byte)((type << 4) | (bytes[0] & 0x0f));
            return bytes;
        }).Sample(bytes =>
        {
            node.Handle(Packet(bytes, "198.51.100.1:4342"), T0);
            itrNode.Handle(Packet(bytes, "198.51.100.1:4342"), T0);
        }, iter: 5000);
        Assert.Equal(0, node.Counters.Drops(DropReason.HandlerFault));
        Assert.Equal(0, itrNode.Counters.Drops(DropReason.HandlerFault));
        Assert.Empty(node.MapServer!.Registrations(T0));
    }

    [Theory]
    [InlineData(AuthAlgorithm.HmacSha1_96)]
    [InlineData(AuthAlgorithm.HmacSha256_128)]
    public void Flood_of_strangers_registers_is_counted_dropped_and_log_throttled(AuthAlgorithm alg)
    {
        var node = MsMr();
        var rnd = new Random(11);
        var all = new List<ControlAction>();
        for (int i = 0; i < 2000; i++)
        {
            var eid = i % 2 == 0 ? $"[0]10.{rnd.Next(256)}.0.0/16" : $"[0]172.{rnd.Next(16, 32)}.0.0/16";
            var bytes = Register((ulong)i, alg, Rec(eid, "203.0.113.1")).ToSignedBytes(Encoding.UTF8.GetBytes("stranger-" + rnd.Next()));
            all.AddRange(node.Handle(Packet(bytes, $"203.0.113.{i % 250}:4342"), T0.AddMilliseconds(i)));
        }
        Assert.Empty(Sends(all));
        Assert.Empty(node.MapServer!.Registrations(T0));
        Assert.Equal(1000, node.Counters.Drops(DropReason.AuthFailure));
        Assert.Equal(1000, node.Counters.Drops(DropReason.UnknownSite));
        // 2 s of flood in one 10 s log window: at most the burst of 20 lines per event.
        Assert.True(Logs(all).Count(l => l.Event == "registration-rejected") <= 20);
        var later = node.Handle(Packet(ValidRegister(alg, "wrong"), "203.0.113.1:4342"), T0.AddSeconds(30));
        Assert.Contains(Logs(later), l => l.Event == "log-suppressed");
        // The real site still registers in the middle of it.
        Assert.Single(Sends(node.Handle(Packet(ValidRegister(alg), "10.0.0.2:4342"), T0.AddSeconds(31))));
    }

    [Fact]
    public void Messages_without_a_role_are_unexpected()
    {
        var ms = MsMr();
        var reply = new MapReply { Nonce = 1, Records = [Rec("[0]10.1.0.0/16", "192.0.2.1")] }.ToBytes();
        Assert.Empty(Sends(ms.Handle(Packet(reply, "198.51.100.1:4342"), T0)));
        var notify = new MapNotify { Nonce = 1 }.ToSignedBytes(Encoding.UTF8.GetBytes(Key));
        ms.Handle(Packet(notify, "198.51.100.1:4342"), T0);
        var probe = H.Request(1, "[0]10.1.2.3/32", "198.51.100.1").ToBytes();
        ms.Handle(Packet(probe, "198.51.100.1:4342"), T0);
        Assert.Equal(3, ms.Counters.Drops(DropReason.UnexpectedType));

        var itr = new ControlNode(new ControlNodeOptions { Itr = new ItrOptions { Rlocs = [Ip("10.0.0.3")] } }, new StaticMappingSystem([], [Self]));
        itr.Handle(Packet(ValidRegister(), "198.51.100.1:4342"), T0);
        itr.Handle(Packet(H.Ecm(H.Request(1, "[0]10.1.2.3/32", "198.51.100.1"), "198.51.100.1"), "198.51.100.1:4342"), T0);
        Assert.Equal(2, itr.Counters.Drops(DropReason.UnexpectedType));
        Assert.Equal("itr", itr.Roles);
        Assert.Equal("map-server, map-resolver", ms.Roles);
    }

    [Fact]
    public void Resolver_forwards_to_remote_map_server_with_M_bit_and_never_to_itself()
    {
        var remote = Ep("10.0.0.9:4342");
        var mr = new ControlNode(new ControlNodeOptions { LocalEndpoints = [Self], MapResolver = new MapResolverOptions() },
            new StaticMappingSystem([Self, remote], [Self]));
        var ecm = H.Ecm(H.Request(5, "[0]10.1.2.3/32", "192.0.2.99"), "192.0.2.99");
        var send = Assert.Single(Sends(mr.Handle(Packet(ecm, "192.0.2.99:4342"), T0)));
        Assert.Equal(remote, send.To);
        var fwd = Decode<EncapsulatedControlMessage>(send.Payload);
        Assert.True(fwd.ForMapServer);
        Assert.Equal(5ul, ((MapRequest)fwd.Message).Nonce);

        // An ECM that already came from a resolver (M bit) is not forwarded again: answered negatively at host length.
        var again = H.Ecm(H.Request(6, "[0]10.1.2.3/32", "192.0.2.99"), "192.0.2.99", forMs: true);
        var neg = Assert.Single(Sends(mr.Handle(Packet(again, "10.0.0.8:4342"), T0)));
        Assert.Equal(Ep("192.0.2.99:4342"), neg.To);
        var rec = Assert.Single(Decode<MapReply>(neg.Payload).Records);
        Assert.Equal("[0]10.1.2.3/32", rec.Eid.ToString());
        Assert.Equal(MapReplyAction.NativelyForward, rec.Action);
    }

    [Fact]
    public void Resolver_with_local_map_server_listed_answers_itself()
    {
        var node = MsMr(new StaticMappingSystem([Ep("10.0.0.9:4342"), Self], [Self]));
        var ecm = H.Ecm(H.Request(5, "[0]10.1.2.3/32", "192.0.2.99"), "192.0.2.99");
        var send = Assert.Single(Sends(node.Handle(Packet(ecm, "192.0.2.99:4342"), T0)));
        Assert.Equal(Ep("192.0.2.99:4342"), send.To);
        Assert.True(Assert.Single(Decode<MapReply>(send.Payload).Records).IsNegative);
    }

    [Fact]
    public void Next_deadline_is_the_earliest_role_timer()
    {
        var node = new ControlNode(new ControlNodeOptions
        {
            Etr = new EtrOptions { Key = Key, Database = [new DatabaseMapping(E("[0]10.1.0.0/16"), [Loc("10.0.0.2")])] },
            Itr = new ItrOptions { Rlocs = [Ip("10.0.0.2")] },
        }, new StaticMappingSystem([Self], [Self]), new Random(1));
        Assert.Equal(DateTimeOffset.MinValue, node.NextDeadline);
        node.Tick(T0);
        Assert.InRange(node.NextDeadline!.Value, T0.AddSeconds(54), T0.AddSeconds(66));
        node.Request(E("[0]10.9.0.1/32"), T0);
        Assert.Equal(T0.AddSeconds(1), node.NextDeadline);
        Assert.Contains(node.Counters.Snapshot(), kv => kv.Key == "event.map-register-sent" && kv.Value == 1);
    }
}
