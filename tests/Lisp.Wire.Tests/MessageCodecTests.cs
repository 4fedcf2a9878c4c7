using Lisp.Wire;
using Xunit;
using static Lisp.Wire.Tests.TestData;

namespace Lisp.Wire.Tests;

/// <summary>
/// Control messages against bytes assembled by hand from the RFC 9301 layouts (comments name each field):
/// decode the golden bytes, check every field, re-encode and compare byte for byte, and check that the
/// value built in code encodes to the same golden bytes.
/// </summary>
public class MessageCodecTests
{
    // Map-Request with every flag: byte0 = type 1 | A M P S (0x1f); byte1 = p s m I (0xf0); byte2 = L D | IRC 2 (0x62); 2 records.
    public const string FullMapRequest =
        "1f f0 62 02 | 0102030405060708 |" +
        "0001 0a000001 |" +                                               // source EID 10.0.0.1
        "0001 c0000201 | 0002 20010db8000000000000000000000001 | 0001 c6336401 |" + // 3 ITR-RLOCs
        "00 20 0001 0a000001 |" +                                         // record 1: 10.0.0.1/32
        "00 18 4003 0000 0200 000a 00000005 0001 0a000100 |" +            // record 2: [5]10.0.1.0/24
        // Map-Reply record: TTL 60, 1 locator, mask 32, ACT 0 + A, version 7, EID 10.0.0.1,
        // locator prio 1 weight 100 mprio 255 mweight 0, flags L+R (0x0005), 192.0.2.1
        "0000003c 01 20 1000 0007 0001 0a000001 | 01 64 ff 00 0005 0001 c0000201 |" +
        "00112233445566778899aabbccddeeff";                               // xTR-ID (I bit)

    [Fact]
    public void Map_request_with_all_flags_rlocs_records_map_reply_record_and_xtr_id()
    {
        var golden = Hex(FullMapRequest);
        var m = Decode<MapRequest>(golden);
        Assert.True(m.Authoritative && m.MapDataPresent && m.Probe && m.Smr && m.Pitr && m.SmrInvoked && m.MobileNode && m.LocalXtr && m.DontReply);
        Assert.Equal(0x0102030405060708UL, m.Nonce);
        Assert.Equal(Addr("10.0.0.1"), m.SourceEid);
        Assert.Equal([Addr("192.0.2.1"), Addr("2001:db8::1"), Addr("198.51.100.1")], m.ItrRlocs);
        Assert.Equal(["[0]10.0.0.1/32", "[5]10.0.1.0/24"], m.Records.Select(r => r.ToString()));
        var rec = m.MapReplyRecord!;
        Assert.Equal(60u, rec.TtlRaw);
        Assert.Equal(TimeSpan.FromMinutes(60), rec.Ttl);
        Assert.True(rec.Authoritative);
        Assert.Equal(7, rec.MapVersion);
        var loc = Assert.Single(rec.Locators);
        Assert.Equal(new LocatorRecord(Addr("192.0.2.1"), 1, 100, 255, 0, Local: true, Probed: false, Reachable: true), loc);
        Assert.Equal("00112233445566778899aabbccddeeff", ToHex(m.XtrId));
        Assert.Equal(ToHex(golden), ToHex(m.ToBytes()));

        var built = new MapRequest
        {
            Authoritative = true, Probe = true, Smr = true, Pitr = true, SmrInvoked = true, MobileNode = true, LocalXtr = true, DontReply = true,
            Nonce = 0x0102030405060708, SourceEid = Addr("10.0.0.1"),
            ItrRlocs = [Addr("192.0.2.1"), Addr("2001:db8::1"), Addr("198.51.100.1")],
            Records = [EidPrefix.Parse("[0]10.0.0.1/32"), EidPrefix.Parse("[5]10.0.1.0/24")],
            MapReplyRecord = new MappingRecord(EidPrefix.Parse("10.0.0.1/32"), [new LocatorRecord(Addr("192.0.2.1"), Local: true)], 60, MapVersion: 7),
            XtrId = Hex("00112233445566778899aabbccddeeff"),
        };
        Assert.Equal(ToHex(golden), ToHex(built.ToBytes()));
    }

    [Fact]
    public void Plain_map_request_has_no_optional_parts()
    {
        // No flags, IRC 0 (one ITR-RLOC), 1 record, source EID AFI 0.
        var golden = Hex("10 00 00 01 | 0000000000000001 | 0000 | 0001 c0000201 | 00 20 0001 01010101");
        var m = Decode<MapRequest>(golden);
        Assert.False(m.Authoritative || m.MapDataPresent || m.Probe || m.Smr || m.Pitr || m.SmrInvoked || m.MobileNode || m.LocalXtr || m.DontReply);
        Assert.Same(NoAddress.Instance, m.SourceEid);
        Assert.Single(m.ItrRlocs);
        Assert.Null(m.XtrId);
        Assert.Null(m.MapReplyRecord);
        Assert.Equal(ToHex(golden), ToHex(m.ToBytes()));
    }

    [Fact]
    public void Positive_map_reply()
    {
        // type 2 | P E S (0x2e), reserved, 1 record; record TTL 1440, 2 locators, mask 24, A; EID 10.0.1.0;
        // locator 1: prio 1 weight 50, flags L p R (7), 192.0.2.1; locator 2: prio 2 weight 50, R, 2001:db8::2.
        var golden = Hex("2e 0000 01 | a1a2a3a4a5a6a7a8 | 000005a0 02 18 1000 0000 0001 0a000100 |" +
                         "01 32 ff 00 0007 0001 c0000201 | 02 32 ff 00 0001 0002 20010db8000000000000000000000002");
        var m = Decode<MapReply>(golden);
        Assert.True(m.Probe && m.EchoNonceCapable && m.Security);
        Assert.Equal(0xa1a2a3a4a5a6a7a8UL, m.Nonce);
        var r = Assert.Single(m.Records);
        Assert.Equal("[0]10.0.1.0/24", r.Eid.ToString());
        Assert.Equal(TimeSpan.FromDays(1), r.Ttl);
        Assert.False(r.IsNegative);
        Assert.Equal(MapReplyAction.NoAction, r.Action);
        Assert.Equal(2, r.Locators.Count);
        Assert.True(r.Locators[0].Local && r.Locators[0].Probed && r.Locators[0].Reachable);
        Assert.Equal(Addr("2001:db8::2"), r.Locators[1].Locator);
        Assert.Equal((byte)2, r.Locators[1].Priority);
        Assert.Equal(ToHex(golden), ToHex(m.ToBytes()));
    }

    [Fact]
    public void Negative_map_reply()
    {
        // 0 locators, ACT 3 (drop) -> 0x6000 with A clear, TTL 15 minutes, EID 10.0.0.0/8.
        var golden = Hex("20 0000 01 | 0000000000000042 | 0000000f 00 08 6000 0000 0001 0a000000");
        var m = Decode<MapReply>(golden);
        var r = Assert.Single(m.Records);
        Assert.True(r.IsNegative);
        Assert.Equal(MapReplyAction.Drop, r.Action);
        Assert.False(r.Authoritative);
        Assert.Equal(TimeSpan.FromMinutes(15), r.Ttl);
        Assert.Equal(ToHex(golden), ToHex(m.ToBytes()));
        var built = new MapReply
        {
            Nonce = 0x42,
            Records = [new MappingRecord(EidPrefix.Parse("10.0.0.0/8"), [], 15, MapReplyAction.Drop, Authoritative: false)],
        };
        Assert.Equal(ToHex(golden), ToHex(built.ToBytes()));
    }

    [Fact]
    public void Negative_map_reply_with_lispers_ttl_in_seconds()
    {
        // lispers.net: top bit of the TTL means seconds. ACT 7 (not-registered-yet) = 0xe000.
        var golden = Hex("20 0000 01 | 0000000000000001 | 8000003c 00 20 e000 0000 0011 6e31 00");
        var r = Assert.Single(Decode<MapReply>(golden).Records);
        Assert.Equal(TimeSpan.FromSeconds(60), r.Ttl);
        Assert.Equal(MapReplyAction.NotRegisteredYet, r.Action);
        Assert.Equal("[0]'n1'", r.Eid.ToString());
    }

    // Map-Register, HMAC-SHA-1: byte0 = type 3 | P | I (0x3a), byte2 = T + M (0x09), 1 record; key id 0, alg 1, len 20.
    // Record: TTL 3 min, 1 locator, mask 32 ('dino' is 4 chars), A, EID [7]'dino' in an Instance-ID LCAF (len 4+7=11).
    // Then xTR-ID (16) and site-ID (8).
    public const string MapRegisterSha1 =
        "3a 00 09 01 | 1122334455667788 | 00 01 0014 | aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa |" +
        "00000003 01 20 1000 0000 | 4003 0000 0200 000b 00000007 0011 64696e6f00 |" +
        "01 64 ff 00 0001 0001 c0000201 |" +
        "0102030405060708090a0b0c0d0e0f10 | 0000000000000063";

    [Fact]
    public void Map_register_sha1_with_xtr_id_and_site_id()
    {
        var golden = Hex(MapRegisterSha1);
        var m = Decode<MapRegister>(golden);
        Assert.True(m.ProxyReply && m.XtrIdPresent && m.UseTtlForTimeout && m.WantMapNotify);
        Assert.False(m.LispSec || m.Refresh || m.Merge || m.MobileNode);
        Assert.Equal(0x1122334455667788UL, m.Nonce);
        Assert.Equal(0, m.KeyId);
        Assert.Equal(AuthAlgorithm.HmacSha1_96, m.Algorithm);
        Assert.Equal(20, m.AuthData!.Length);
        var r = Assert.Single(m.Records);
        Assert.Equal("[7]'dino'", r.Eid.ToString());
        Assert.Equal(TimeSpan.FromMinutes(3), r.Ttl);
        Assert.Equal(Addr("192.0.2.1"), Assert.Single(r.Locators).Locator);
        Assert.Equal("0102030405060708090a0b0c0d0e0f10", ToHex(m.XtrId));
        Assert.Equal(0x63UL, m.SiteId);
        Assert.Equal(ToHex(golden), ToHex(m.ToBytes()));
    }

    [Fact]
    public void Map_register_sha256()
    {
        // type 3, M only; key id 0, alg 2, len 32; record with MAC EID (AFI 16389) mask 48 and an IPv6 locator.
        var golden = Hex("30 00 01 01 | 0000000000000009 | 00 02 0020 | " + new string('b', 64) + " |" +
                         "00000003 01 30 1000 0000 | 4005 000011112222 | 01 64 ff 00 0001 0002 fe000000000000000000000002000200");
        var m = Decode<MapRegister>(golden);
        Assert.Equal(AuthAlgorithm.HmacSha256_128, m.Algorithm);
        Assert.Equal(32, m.AuthData!.Length);
        Assert.False(m.XtrIdPresent);
        Assert.True(m.WantMapNotify);
        Assert.Equal("[0]0000-1111-2222/48", Assert.Single(m.Records).Eid.ToString());
        Assert.Equal(ToHex(golden), ToHex(m.ToBytes()));
    }

    [Fact]
    public void Map_notify_and_map_notify_ack()
    {
        // Map-Notify: type 4 with I (0x48); the same body as the SHA-1 register above.
        var body = MapRegisterSha1[MapRegisterSha1.IndexOf('|')..];
        var notify = Hex("48 00 00 01 " + body);
        var n = Decode<MapNotify>(notify);
        Assert.Equal(MessageType.MapNotify, n.Type);
        Assert.False(n.IsAck);
        Assert.True(n.XtrIdPresent);
        Assert.Equal("[7]'dino'", Assert.Single(n.Records).Eid.ToString());
        Assert.Equal(ToHex(notify), ToHex(n.ToBytes()));

        // Map-Notify-Ack: type 5, no xTR-ID, SHA-256, no records.
        var ack = Hex("50 00 00 00 | 0000000000000077 | 00 02 0020 | " + new string('c', 64));
        var a = Decode<MapNotify>(ack);
        Assert.True(a.IsAck);
        Assert.Equal(MessageType.MapNotifyAck, a.Type);
        Assert.Empty(a.Records);
        Assert.Equal(ToHex(ack), ToHex(a.ToBytes()));
    }

    [Theory]
    [InlineData("21 ffff 00 | 0000000000000001")]                                  // Map-Reply: all 17 reserved bits
    [InlineData("31 ff e0 00 | 0000000000000001 | 00 00 0000")]                    // Map-Register: bit 7, byte 1, byte 2 top bits
    [InlineData("43 ffff 00 | 0000000000000001 | 00 00 0000")]                     // Map-Notify: 18 reserved bits
    [InlineData("53 0001 00 | 0000000000000001 | 00 00 0000")]                     // Map-Notify-Ack
    [InlineData("10 0f 80 00 | 0000000000000001 | 0000 | 0001 01020304")]          // Map-Request: reserved nibble + bit
    public void Reserved_bits_survive_decode_then_encode(string hex)
    {
        var golden = Hex(hex);
        var st = ControlMessage.TryDecode(golden, out var m);
        Assert.True(st.IsOk, st.ToString());
        Assert.Equal(ToHex(golden), ToHex(m!.ToBytes()));
    }

    [Theory]
    [MemberData(nameof(TestData.SeedEids), MemberType = typeof(TestData))]
    public void Ecm_from_the_seed_round_trips(string eid)
    {
        // The seed ECMs (IPv4 and IPv6 inner headers) are lispers.net's bytes; all but the padded (S,G) one
        // re-encode exactly (IP/UDP lengths and the IPv4 header checksum are recomputed and must match).
        var seed = Seed(eid);
        var ecm = Decode<EncapsulatedControlMessage>(seed.Bytes);
        var again = ecm.ToBytes();
        if (eid.StartsWith("ff02", StringComparison.Ordinal))
        {
            Assert.Equal(seed.Bytes.Length - 2, again.Length);
        }
        else
        {
            Assert.Equal(ToHex(seed.Bytes), ToHex(again));
        }
        var back = Decode<EncapsulatedControlMessage>(again);
        Assert.Equal(ToHex(again), ToHex(back.ToBytes()));
    }

    [Fact]
    public void Ecm_flags_and_hand_built_inner_ipv4()
    {
        // ECM S D E M = 0x8f; inner IPv4: TOS 0, total 20+8+20 = 48 (0x30), id 0x1234, DF, TTL 128, UDP, checksum;
        // 10.0.0.1 -> 10.0.0.2; UDP 1000 -> 4342, length 28, checksum 0; inner Map-Request with one ITR-RLOC, no records.
        var inner = "10 00 00 00 | 0000000000000005 | 0000 | 0001 c0000201";
        var ip = Hex("45 00 0030 1234 4000 80 11 0000 0a000001 0a000002");
        uint sum = 0;
        for (int i = 0; i < 20; i += 2) sum += (uint)(ip[i] << 8 | ip[i + 1]);
        while (sum >> 16 != 0) sum = (sum & 0xffff) + (sum >> 16);
        ip[10] = (byte)(~sum >> 8);
        ip[11] = (byte)~sum;
        var golden = Hex("8f 000000" + ToHex(ip) + "03e8 10f6 001c 0000" + inner);
        var ecm = Decode<EncapsulatedControlMessage>(golden);
        Assert.True(ecm.Security && ecm.DdtOriginated && ecm.ForEtr && ecm.ForMapServer);
        Assert.True(ecm.Inner.IsV4);
        Assert.Equal((Ip("10.0.0.1"), Ip("10.0.0.2"), (ushort)1000, (ushort)4342, (byte)128),
            (ecm.Inner.Source, ecm.Inner.Destination, ecm.Inner.SourcePort, ecm.Inner.DestinationPort, ecm.Inner.TtlOrHopLimit));
        Assert.Equal(5UL, Assert.IsType<MapRequest>(ecm.Message).Nonce);
        Assert.Equal(ToHex(golden), ToHex(ecm.ToBytes()));
    }

    [Fact]
    public void Ecm_inner_ipv6_udp_checksum_is_computed_when_asked()
    {
        var mr = new MapRequest { Nonce = 1, ItrRlocs = [Addr("2001:db8::1")], Records = [EidPrefix.Parse("2001:db8::5/128")] };
        var ecm = new EncapsulatedControlMessage(new IpUdpHeader(Ip("2001:db8::1"), Ip("2001:db8::5"), 50000, 4342, 64), mr);
        var bytes = ecm.ToBytes();
        // Independent check: the UDP checksum over the pseudo-header + datagram sums to 0xffff.
        var udp = bytes.AsSpan(4 + 40);
        uint sum = 0;
        void Add(ReadOnlySpan<byte> d) { for (int i = 0; i < d.Length; i += 2) sum += (uint)(d[i] << 8 | (i + 1 < d.Length ? d[i + 1] : 0)); }
        Add(bytes.AsSpan(4 + 8, 32));          // source + destination
        sum += 17 + (uint)udp.Length;          // next header + UDP length
        Add(udp);
        while (sum >> 16 != 0) sum = (sum & 0xffff) + (sum >> 16);
        Assert.Equal(0xffffu, sum);
        Assert.NotEqual(0, udp[6] << 8 | udp[7]);
        // Payload length and UDP length both count the UDP header + Map-Request.
        Assert.Equal(8 + mr.EncodedLength, bytes[4 + 4] << 8 | bytes[4 + 5]);
        Assert.Equal(8 + mr.EncodedLength, udp[4] << 8 | udp[5]);
        var back = Decode<EncapsulatedControlMessage>(bytes);
        Assert.Equal(ToHex(bytes), ToHex(back.ToBytes()));
    }

    [Theory]
    [InlineData("e8 123456 00abcd 03")]   // N L E I: nonce 0x123456, IID 0xabcd, LSBs 3
    [InlineData("10 001002 00000000")]    // V: source version 1, dest version 2
    [InlineData("08 000000 ffffff 00")]   // I only: IID 0xffffff (LISP-Decent push control instance)
    [InlineData("c0 abcdef 00000001")]    // N L: 32-bit LSBs
    [InlineData("87 000001 00000000")]    // N with the 3 reserved/K bits kept
    public void Data_header_round_trips(string hex)
    {
        var golden = Hex(hex);
        var st = DataHeader.TryRead(golden, out var h);
        Assert.True(st.IsOk, st.ToString());
        var again = new byte[8];
        h.Write(again);
        Assert.Equal(ToHex(golden), ToHex(again));
    }

    [Fact]
    public void Data_header_fields()
    {
        DataHeader.TryRead(Hex("e8 123456 00abcd 03"), out var h);
        Assert.True(h.NoncePresent && h.LsbValid && h.EchoNonce && h.InstanceIdPresent && !h.MapVersionPresent);
        Assert.Equal((0x123456u, 0xabcdu, 3u), (h.Nonce, h.InstanceId, h.Lsbs));
        DataHeader.TryRead(Hex("10 001002 00000000"), out var v);
        Assert.Equal(((ushort)1, (ushort)2), (v.SourceMapVersion, v.DestMapVersion));
        Assert.Equal(WireError.BadValue, DataHeader.TryRead(Hex("90 000000 00000000"), out _).Error); // N and V
        Assert.Equal(WireError.Truncated, DataHeader.TryRead(Hex("80 0000"), out _).Error);
        Assert.Equal("88 000007 00000500".Replace(" ", ""), ToHex(Write(DataHeader.ForInstance(5, 7))));

        static byte[] Write(DataHeader d) { var b = new byte[8]; d.Write(b); return b; }
    }

    [Fact]
    public void Encapsulation_writes_outer_ipv4_udp_and_lisp_headers_into_headroom()
    {
        var buffer = new byte[100];
        var inner = Hex("45000014 00000000 4011 0000 0a000001 0a000002");
        inner.CopyTo(buffer, 50);
        int start = Encapsulation.WriteHeaders(buffer, 50, inner.Length, Ip("192.0.2.1"), Ip("192.0.2.2"), 40000,
            DataHeader.ForInstance(1000, 0xabcdef));
        Assert.Equal(50 - 36, start);
        var pkt = buffer.AsSpan(start, 36 + inner.Length).ToArray();
        // IPv4: total 36 + 20 = 56, DF, TTL 64, UDP; UDP 40000 -> 4341, length 8 + 8 + 20 = 36, checksum 0; LISP N+I.
        Assert.Equal("4500 0038 0000 4000 40 11".Replace(" ", ""), ToHex(pkt.AsSpan(0, 10)));
        Assert.Equal("c0000201 c0000202 9c40 10f5 0024 0000 | 88 abcdef 0003e8 00".Replace(" ", "").Replace("|", ""), ToHex(pkt.AsSpan(12, 24)));
        Assert.Equal(ToHex(inner), ToHex(pkt.AsSpan(36)));
        uint sum = 0;
        for (int i = 0; i < 20; i += 2) sum += (uint)(pkt[i] << 8 | pkt[i + 1]);
        while (sum >> 16 != 0) sum = (sum & 0xffff) + (sum >> 16);
        Assert.Equal(0xffffu, sum);
        Assert.Equal(-1, Encapsulation.WriteHeaders(buffer, 10, inner.Length, Ip("192.0.2.1"), Ip("192.0.2.2"), 1, default));
    }
}
