using System.Net;
using System.Security.Cryptography;
using System.Text;
using Lisp.ControlPlane;
using Lisp.Wire;
using static Lisp.ControlPlane.Tests.H;

namespace Lisp.ControlPlane.Tests;

/// <summary>
/// The roles with lispers.net's layouts (issue 11 items 1 and 2), fed hand-assembled bytes: an ECM Map-Request
/// with no inner IP header for a name EID, and a signed Map-Notify whose xTR-ID trailer has the I bit clear.
/// </summary>
public class LispersQuirkRoleTests
{
    private const string Key = "node-key";
    private static readonly byte[] KeyBytes = Encoding.UTF8.GetBytes(Key);
    private static readonly IPEndPoint Self = Ep("10.0.0.1:4342");
    private static readonly IPEndPoint RemoteMs = Ep("10.0.0.9:4342");

    /// <summary>A Map-Request for 'dino' with nonce 0x0102030405060708 from an ITR at 192.0.2.99.</summary>
    private static readonly byte[] NameMapRequest =
    [
        0x10, 0x00, 0x00, 0x01,                         // type 1, no flags, IRC 0 (one ITR-RLOC), 1 record
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, // nonce
        0x00, 0x00,                                     // source EID: AFI 0
        0x00, 0x01, 192, 0, 2, 99,                      // ITR-RLOC: AFI 1, 192.0.2.99
        0x00, 0x20,                                     // reserved, EID mask-len 32
        0x00, 0x11, (byte)'d', (byte)'i', (byte)'n', (byte)'o', 0x00, // AFI 17 "dino" NUL
    ];

    private static byte[] Cat(params byte[][] parts) => parts.SelectMany(p => p).ToArray();

    private static byte[] Bare(byte flags) => Cat([flags, 0x00, 0x00, 0x00], NameMapRequest);

    private static byte[] UdpOnly(byte flags) => Cat(
        [flags, 0x00, 0x00, 0x00],
        [0xc3, 0x50, 0x10, 0xf6, 0x00, 0x25, 0x00, 0x00], // UDP 50000 -> 4342, length 37, checksum 0
        NameMapRequest);

    private static ControlNode MsMr(IMappingSystem? system = null, bool resolverOnly = false) => new(new ControlNodeOptions
    {
        Name = "msmr",
        LocalEndpoints = [Self],
        MapServer = resolverOnly ? null : new MapServerOptions { Sites = [new SiteConfig("s", Key, [E("[0]'dino'")])] },
        MapResolver = new MapResolverOptions(),
    }, system ?? new StaticMappingSystem([Self], [Self]), new Random(3));

    private static void RegisterDino(ControlNode node, bool proxy)
    {
        var reg = Register(0x55, AuthAlgorithm.HmacSha256_128, Rec("[0]'dino'", "192.0.2.1")) with { ProxyReply = proxy };
        node.Handle(Packet(reg.ToSignedBytes(KeyBytes), "192.0.2.1:4342"), T0);
        Assert.Single(node.MapServer!.Registrations(T0));
    }

    [Theory]
    [InlineData(false, "192.0.2.99:4342")]  // no UDP header: the ITR-RLOC on 4342
    [InlineData(true, "192.0.2.99:50000")]  // a UDP header without IP header: the ITR-RLOC at its source port
    public void Map_server_answers_a_header_less_ecm_for_a_name_eid_to_the_itr_rloc(bool udpOnly, string expectedTo)
    {
        var node = MsMr();
        RegisterDino(node, proxy: true);
        var actions = node.Handle(Packet(udpOnly ? UdpOnly(0x80) : Bare(0x80), "198.51.100.7:61000"), T0.AddSeconds(1));
        var send = Assert.Single(Sends(actions));
        Assert.Equal(Ep(expectedTo), send.To);
        var reply = Decode<MapReply>(send.Payload);
        Assert.Equal(0x0102030405060708ul, reply.Nonce);
        var rec = Assert.Single(reply.Records);
        Assert.Equal(E("[0]'dino'"), rec.Eid);
        Assert.Equal(IpAddress.Parse("192.0.2.1"), Assert.Single(rec.Locators).Locator);
        Assert.Equal(1, node.Counters.Events(ControlEvent.EcmWithoutInnerHeader));
        Assert.Equal(1, node.Counters.Events(ControlEvent.ProxyMapReplySent));
        Assert.Equal(0, node.Counters.Drops(DropReason.Malformed));
    }

    [Fact]
    public void Rfc_layout_ecm_does_not_count_the_quirk()
    {
        var node = MsMr();
        RegisterDino(node, proxy: true);
        var ecm = Ecm(Request(7, "[0]'dino'", "192.0.2.99"), "192.0.2.99", port: 40000);
        var send = Assert.Single(Sends(node.Handle(Packet(ecm, "192.0.2.99:40000"), T0)));
        Assert.Equal(Ep("192.0.2.99:40000"), send.To);
        Assert.Equal(0, node.Counters.Events(ControlEvent.EcmWithoutInnerHeader));
    }

    [Fact]
    public void Negative_reply_to_a_header_less_ecm_goes_to_the_itr_rloc_on_4342()
    {
        var node = MsMr();
        var send = Assert.Single(Sends(node.Handle(Packet(Bare(0x80), "198.51.100.7:61000"), T0)));
        Assert.Equal(Ep("192.0.2.99:4342"), send.To);
        Assert.True(Decode<MapReply>(send.Payload).Records[0].IsNegative);
        Assert.Equal(1, node.Counters.Events(ControlEvent.EcmWithoutInnerHeader));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Map_server_forwards_to_the_etr_in_the_layout_it_came_in(bool udpOnly)
    {
        var node = MsMr();
        RegisterDino(node, proxy: false);
        var received = udpOnly ? UdpOnly(0x81) : Bare(0x81); // M bit: from a resolver
        var send = Assert.Single(Sends(node.Handle(Packet(received, "198.51.100.7:4342"), T0.AddSeconds(1))));
        // Same bytes with E set and M clear (where it goes is the map-server's forwarding rule, not tested here).
        Assert.Equal(Convert.ToHexString(udpOnly ? UdpOnly(0x82) : Bare(0x82)), Convert.ToHexString(send.Payload));
        Assert.Equal(1, node.Counters.Events(ControlEvent.MapRequestForwarded));
        Assert.Equal(1, node.Counters.Events(ControlEvent.EcmWithoutInnerHeader));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Resolver_forwards_to_the_map_server_in_the_layout_it_came_in(bool udpOnly)
    {
        var node = MsMr(new StaticMappingSystem([RemoteMs], [Self]), resolverOnly: true);
        var send = Assert.Single(Sends(node.Handle(Packet(udpOnly ? UdpOnly(0x80) : Bare(0x80), "198.51.100.7:61000"), T0)));
        Assert.Equal(RemoteMs, send.To);
        Assert.Equal(Convert.ToHexString(udpOnly ? UdpOnly(0x81) : Bare(0x81)), Convert.ToHexString(send.Payload));
        Assert.Equal(1, node.Counters.Events(ControlEvent.EcmWithoutInnerHeader));
    }

    [Fact]
    public void Etr_answers_a_header_less_ecm_to_the_itr_rloc_on_4342()
    {
        var node = new ControlNode(new ControlNodeOptions
        {
            LocalEndpoints = [Ep("192.0.2.1:4342")],
            Etr = new EtrOptions { Key = Key, Database = [new DatabaseMapping(E("[0]'dino'"), [Loc("192.0.2.1")])] },
        }, new StaticMappingSystem([Self], [Self]), new Random(1));
        var send = Assert.Single(Sends(node.Handle(Packet(Bare(0x82), "10.0.0.1:4342", "192.0.2.1:4342"), T0)));
        Assert.Equal(Ep("192.0.2.99:4342"), send.To);
        var reply = Decode<MapReply>(send.Payload);
        Assert.Equal(0x0102030405060708ul, reply.Nonce);
        Assert.Equal(E("[0]'dino'"), Assert.Single(reply.Records).Eid);
        Assert.Equal(1, node.Counters.Events(ControlEvent.EcmWithoutInnerHeader));
    }

    [Fact]
    public void Every_truncation_and_bit_flip_of_the_quirk_layouts_never_throws()
    {
        var node = MsMr();
        RegisterDino(node, proxy: true);
        var etr = EtrNode();
        var notify = Notify(RegisterNonce(etr), XtrId, 42);
        foreach (var valid in new[] { Bare(0x80), Bare(0x82), UdpOnly(0x80), UdpOnly(0x81), notify })
        {
            for (int n = 0; n < valid.Length; n++)
            {
                node.Handle(Packet(valid[..n], "198.51.100.1:4342"), T0);
                etr.Handle(Packet(valid[..n], "198.51.100.1:4342"), T0);
            }
            for (int bit = 0; bit < valid.Length * 8; bit++)
            {
                var b = (byte[])valid.Clone();
                b[bit / 8] ^= (byte)(1 << (bit % 8));
                node.Handle(Packet(b, "198.51.100.1:4342"), T0);
                etr.Handle(Packet(b, "198.51.100.1:4342"), T0);
            }
        }
        Assert.Equal(0, node.Counters.Drops(DropReason.HandlerFault));
        Assert.Equal(0, etr.Counters.Drops(DropReason.HandlerFault));
        // Every flipped Map-Notify bit breaks its HMAC: none of them is accepted.
        Assert.Equal(0, etr.Counters.Events(ControlEvent.MapNotifyAccepted));
    }

    // ---------------------------------------------------------------- Map-Notify, I bit clear, xTR-ID trailer

    private static readonly byte[] XtrId = [0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf];

    private static ControlNode EtrNode(byte[]? xtrId = null) => new(new ControlNodeOptions
    {
        LocalEndpoints = [Ep("192.0.2.1:4342")],
        Etr = new EtrOptions
        {
            Key = Key, XtrId = xtrId ?? XtrId, SiteId = 42,
            Database = [new DatabaseMapping(E("[0]'dino'"), [Loc("192.0.2.1")])],
        },
    }, new StaticMappingSystem([Self], [Self]), new Random(1));

    /// <summary>The Map-Notify lispers.net answers with: type 4 with the I bit clear, yet the xTR-ID/site-ID after the record.</summary>
    private static byte[] Notify(byte[] nonce, byte[] xtrId, byte siteIdLow)
    {
        byte[] m =
        [
            0x40, 0x00, 0x00, 0x01,                     // type 4, I=0 R=0, reserved, 1 record
            .. nonce,                                   // the Map-Register's nonce
            0x00, 0x02, 0x00, 0x20,                     // key id 0, HMAC-SHA-256, 32 bytes
            .. new byte[32],                            // authentication data (filled below)
            0x00, 0x00, 0x00, 0x03,                     // record TTL 3 minutes
            0x01, 0x20, 0x10, 0x00,                     // 1 locator, mask-len 32, A bit
            0x00, 0x00, 0x00, 0x11,                     // map-version 0, EID AFI 17
            (byte)'d', (byte)'i', (byte)'n', (byte)'o', 0x00,
            0x01, 0x64, 0xff, 0x00, 0x00, 0x01,         // priority 1, weight 100, M 255/0, R bit
            0x00, 0x01, 192, 0, 2, 1,                   // AFI 1, 192.0.2.1
            .. xtrId,                                   // xTR-ID
            0, 0, 0, 0, 0, 0, 0, siteIdLow,             // site-ID
        ];
        // HMAC-SHA-256 from the BCL over the message with the auth field zeroed.
        HMACSHA256.HashData(KeyBytes, m).CopyTo(m, 16);
        return m;
    }

    private static byte[] RegisterNonce(ControlNode etr)
    {
        var reg = Decode<MapRegister>(Assert.Single(Sends(etr.Tick(T0))).Payload);
        Assert.True(reg.XtrIdPresent); // we registered with the I bit
        Assert.Equal(XtrId, reg.XtrId);
        var nonce = new byte[8];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(nonce, reg.Nonce);
        return nonce;
    }

    [Fact]
    public void Etr_accepts_a_signed_map_notify_with_the_trailer_and_the_i_bit_clear()
    {
        var etr = EtrNode();
        var notify = Notify(RegisterNonce(etr), XtrId, 42);
        Assert.True(MessageAuthentication.Verify(notify, KeyBytes));
        var actions = etr.Handle(Packet(notify, "10.0.0.1:4342", "192.0.2.1:4342"), T0.AddSeconds(1));
        Assert.Equal(1, etr.Counters.Events(ControlEvent.MapNotifyAccepted));
        Assert.Equal(1, etr.Counters.Events(ControlEvent.MapNotifyXtrIdWithoutIBit));
        Assert.Equal(0, etr.Counters.TotalDrops);
        Assert.Contains(Logs(actions), l => l.Event == "map-notify-accepted");
    }

    [Theory]
    [InlineData(0xa0, 43)] // right xTR-ID, other site-ID
    [InlineData(0x00, 42)] // other xTR-ID
    public void Etr_refuses_a_trailer_that_is_not_what_it_registered(byte firstXtrByte, byte site)
    {
        var etr = EtrNode();
        var xtr = (byte[])XtrId.Clone();
        xtr[0] = firstXtrByte;
        var actions = etr.Handle(Packet(Notify(RegisterNonce(etr), xtr, site), "10.0.0.1:4342", "192.0.2.1:4342"), T0.AddSeconds(1));
        Assert.Empty(Sends(actions));
        Assert.Equal(1, etr.Counters.Drops(DropReason.XtrIdMismatch));
        Assert.Equal(0, etr.Counters.Events(ControlEvent.MapNotifyAccepted));
        Assert.Equal(0, etr.Counters.Events(ControlEvent.MapNotifyXtrIdWithoutIBit));
    }

    [Fact]
    public void Etr_that_registered_without_xtr_id_refuses_the_trailer()
    {
        var etr = new ControlNode(new ControlNodeOptions
        {
            Etr = new EtrOptions { Key = Key, Database = [new DatabaseMapping(E("[0]'dino'"), [Loc("192.0.2.1")])] },
        }, new StaticMappingSystem([Self], [Self]), new Random(1));
        var reg = Decode<MapRegister>(Assert.Single(Sends(etr.Tick(T0))).Payload);
        var nonce = new byte[8];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(nonce, reg.Nonce);
        etr.Handle(Packet(Notify(nonce, XtrId, 42), "10.0.0.1:4342"), T0.AddSeconds(1));
        Assert.Equal(1, etr.Counters.Drops(DropReason.XtrIdMismatch));
        Assert.Equal(0, etr.Counters.Events(ControlEvent.MapNotifyAccepted));
    }

    [Fact]
    public void Etr_refuses_a_tampered_trailer_by_its_hmac()
    {
        var etr = EtrNode();
        var notify = Notify(RegisterNonce(etr), XtrId, 42);
        notify[^1] ^= 1; // the site-ID changes after signing
        etr.Handle(Packet(notify, "10.0.0.1:4342"), T0.AddSeconds(1));
        Assert.Equal(1, etr.Counters.Drops(DropReason.AuthFailure));
        Assert.Equal(0, etr.Counters.Events(ControlEvent.MapNotifyAccepted));
    }
}
