using System.Net;
using System.Security.Cryptography;
using System.Text;
using Lisp.Wire;
using Xunit;
using static Lisp.Wire.Tests.TestData;

namespace Lisp.Wire.Tests;

/// <summary>
/// Two layouts lispers.net sends (issue 11 items 1 and 2), hand-assembled byte by byte: an ECM whose inner
/// packet has no IP header (a UDP header alone, or the Map-Request straight after the ECM header), and a
/// Map-Notify that carries the xTR-ID/site-ID trailer with its I bit clear.
/// </summary>
public class LispersQuirkTests
{
    /// <summary>A Map-Request for the name EID 'dino' from an ITR at 192.0.2.99 (29 bytes).</summary>
    private static readonly byte[] NameMapRequest =
    [
        0x10, 0x00, 0x00, 0x01,                         // type 1, no flags, IRC 0 (one ITR-RLOC), 1 record
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, // nonce
        0x00, 0x00,                                     // source EID: AFI 0 (none)
        0x00, 0x01, 192, 0, 2, 99,                      // ITR-RLOC: AFI 1, 192.0.2.99
        0x00, 0x20,                                     // record: reserved, EID mask-len 32
        0x00, 0x11, (byte)'d', (byte)'i', (byte)'n', (byte)'o', 0x00, // AFI 17 (name) "dino" NUL
    ];

    private static byte[] Cat(params byte[][] parts) => parts.SelectMany(p => p).ToArray();

    /// <summary>ECM header (type 8, no flags) then the Map-Request: no IP header, no UDP header.</summary>
    public static readonly byte[] BareEcm = Cat([0x80, 0x00, 0x00, 0x00], NameMapRequest);

    /// <summary>ECM header (type 8, E bit: to an ETR) then the Map-Request.</summary>
    public static readonly byte[] BareEcmForEtr = Cat([0x82, 0x00, 0x00, 0x00], NameMapRequest);

    /// <summary>ECM header, then a UDP header without an IP header, then the Map-Request.</summary>
    public static readonly byte[] UdpOnlyEcm = Cat(
        [0x80, 0x00, 0x00, 0x00], // type 8, no flags, reserved
        [0xc3, 0x50,              // UDP source port 50000
         0x10, 0xf6,              // UDP destination port 4342
         0x00, 0x25,              // UDP length 37 = 8 + 29
         0xab, 0xcd],             // UDP checksum, kept as received
        NameMapRequest);

    private static readonly byte[] XtrId = [0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf];
    private static readonly byte[] NotifyKey = Encoding.UTF8.GetBytes("lispers-key");

    /// <summary>
    /// A Map-Notify (type 4, I bit clear) for 'dino' -> 192.0.2.1, HMAC-SHA-256 (zeros until <see cref="Sign"/>),
    /// followed by the xTR-ID and site-ID: 101 bytes; <paramref name="trailer"/> bytes of the 24-byte trailer
    /// are kept (or the trailer is extended with 0x5a bytes).
    /// </summary>
    public static byte[] NotifyWithTrailer(int trailer = 24, byte type = 0x40)
    {
        byte[] body =
        [
            type, 0x00, 0x00, 0x01,                         // type 4, I=0 R=0, reserved, 1 record
            0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, // nonce
            0x00, 0x02, 0x00, 0x20,                         // key id 0, algorithm 2 (HMAC-SHA-256), auth length 32
            .. new byte[32],                                // authentication data
            0x00, 0x00, 0x00, 0x03,                         // record TTL 3 minutes
            0x01, 0x20, 0x10, 0x00,                         // 1 locator, mask-len 32, ACT 0, A bit
            0x00, 0x00, 0x00, 0x11,                         // map-version 0, EID AFI 17
            (byte)'d', (byte)'i', (byte)'n', (byte)'o', 0x00, // "dino" NUL
            0x01, 0x64, 0xff, 0x00,                         // priority 1, weight 100, M priority 255, M weight 0
            0x00, 0x01, 0x00, 0x01,                         // flags: R; locator AFI 1
            192, 0, 2, 1,                                   // 192.0.2.1
        ];
        byte[] fullTrailer =
        [
            .. XtrId,                                       // xTR-ID (128 bits)
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a, // site-ID 42
        ];
        var tail = trailer <= 24 ? fullTrailer[..trailer] : [.. fullTrailer, .. Enumerable.Repeat((byte)0x5a, trailer - 24)];
        return [.. body, .. tail];
    }

    /// <summary>HMAC-SHA-256 (the BCL's, not ours) over the message with its 32-byte auth field zeroed, written into it.</summary>
    public static byte[] Sign(byte[] message, byte[] key)
    {
        var copy = (byte[])message.Clone();
        Array.Clear(copy, 16, 32);
        HMACSHA256.HashData(key, copy).CopyTo(copy, 16);
        return copy;
    }

    private static void CheckNameRequest(ControlMessage inner)
    {
        var rq = Assert.IsType<MapRequest>(inner);
        Assert.Equal(0x0102030405060708ul, rq.Nonce);
        Assert.Same(NoAddress.Instance, rq.SourceEid);
        Assert.Equal(IpAddress.Parse("192.0.2.99"), Assert.Single(rq.ItrRlocs));
        var eid = Assert.Single(rq.Records);
        Assert.Equal(new DistinguishedName("dino"), eid.Address);
        Assert.Equal(32, eid.MaskLength);
        Assert.False(rq.Authoritative || rq.Probe || rq.Smr || rq.Pitr || rq.SmrInvoked || rq.MobileNode || rq.LocalXtr || rq.DontReply);
        Assert.Null(rq.XtrId);
        Assert.Null(rq.MapReplyRecord);
    }

    [Fact]
    public void Ecm_without_any_inner_header_decodes_and_re_encodes_exactly()
    {
        var ecm = Decode<EncapsulatedControlMessage>(BareEcm);
        Assert.Equal(EcmInnerLayout.Bare, ecm.InnerLayout);
        Assert.False(ecm.HasInnerHeader);
        Assert.Null(ecm.InnerHeader);
        Assert.Null(ecm.InnerSourcePort);
        Assert.False(ecm.Security || ecm.DdtOriginated || ecm.ForEtr || ecm.ForMapServer);
        CheckNameRequest(ecm.Message);
        Assert.Equal(33, ecm.EncodedLength);
        Assert.Equal(ToHex(BareEcm), ToHex(ecm.ToBytes()));

        var forEtr = Decode<EncapsulatedControlMessage>(BareEcmForEtr);
        Assert.True(forEtr.ForEtr);
        Assert.False(forEtr.ForMapServer);
        Assert.Equal(ToHex(BareEcmForEtr), ToHex(forEtr.ToBytes()));
        // Setting a flag keeps the layout: what a resolver or map-server forwards.
        Assert.Equal(ToHex(BareEcmForEtr), ToHex((ecm with { ForEtr = true }).ToBytes()));
    }

    [Fact]
    public void Ecm_without_inner_header_is_built_byte_exact()
    {
        var rq = Decode<MapRequest>(NameMapRequest);
        Assert.Equal(ToHex(BareEcm), ToHex(EncapsulatedControlMessage.WithoutInnerHeader(rq).ToBytes()));
        Assert.Equal(ToHex(UdpOnlyEcm), ToHex(EncapsulatedControlMessage.WithUdpHeaderOnly(rq, 50000, 4342, 0xabcd).ToBytes()));
    }

    [Fact]
    public void Ecm_with_udp_header_but_no_ip_header_decodes_and_re_encodes_exactly()
    {
        var ecm = Decode<EncapsulatedControlMessage>(UdpOnlyEcm);
        Assert.Equal(EcmInnerLayout.UdpOnly, ecm.InnerLayout);
        Assert.False(ecm.HasInnerHeader);
        Assert.Null(ecm.InnerHeader);
        Assert.Equal((ushort)50000, ecm.InnerSourcePort);
        Assert.Equal(4342, ecm.Inner.DestinationPort);
        Assert.Equal((ushort)0xabcd, ecm.Inner.UdpChecksum);
        CheckNameRequest(ecm.Message);
        Assert.Equal(ToHex(UdpOnlyEcm), ToHex(ecm.ToBytes()));
        Assert.Equal(ToHex(UdpOnlyEcm).Replace("80000000", "81000000", StringComparison.Ordinal)[..8],
            ToHex((ecm with { ForMapServer = true }).ToBytes())[..8]);
        Assert.Equal(ToHex(UdpOnlyEcm)[8..], ToHex((ecm with { ForMapServer = true }).ToBytes())[8..]);
    }

    [Fact]
    public void Describer_names_the_layouts()
    {
        var w = new StringWriter();
        MessageDescriber.Describe(Decode<EncapsulatedControlMessage>(BareEcm)).WriteText(w);
        MessageDescriber.Describe(Decode<EncapsulatedControlMessage>(UdpOnlyEcm)).WriteText(w);
        MessageDescriber.Describe(Decode<MapNotify>(NotifyWithTrailer())).WriteText(w);
        var text = w.ToString();
        Assert.Contains("inner header: none", text, StringComparison.Ordinal);
        Assert.Contains("UDP only", text, StringComparison.Ordinal);
        Assert.Contains("50000 -> 4342", text, StringComparison.Ordinal);
        Assert.Contains("xtr-id-trailer", text, StringComparison.Ordinal);
    }

    public static IEnumerable<object[]> MalformedEcms()
    {
        // Truncated inner message: the Map-Request cut inside the name, inside the ITR-RLOC, after its first word.
        yield return ["cut in name", BareEcm[..^2], WireError.Truncated];
        yield return ["cut in ITR-RLOC", BareEcm[..20], WireError.Truncated];
        yield return ["first word only", BareEcm[..8], WireError.Truncated];
        yield return ["two bytes after the ECM header", BareEcm[..6], WireError.Truncated];
        yield return ["nothing after the ECM header", BareEcm[..4], WireError.Truncated];
        yield return ["udp-only cut in its header", UdpOnlyEcm[..10], WireError.Truncated];
        yield return ["udp-only cut in the request", UdpOnlyEcm[..^3], WireError.BadLength];
        // Inner nibbles that are neither 4, 6 nor a control type.
        yield return ["nibble 0", Cat([0x80, 0, 0, 0, 0x00], NameMapRequest[1..]), WireError.BadValue];
        yield return ["nibble 9", Cat([0x80, 0, 0, 0, 0x90], NameMapRequest[1..]), WireError.BadValue];
        yield return ["nibble 15", Cat([0x80, 0, 0, 0, 0xf0], NameMapRequest[1..]), WireError.BadValue];
        // Nibble 4 is IPv4, never a bare Map-Notify: the rest is not an IPv4 header.
        yield return ["nibble 4", Cat([0x80, 0, 0, 0, 0x40], NameMapRequest[1..]), WireError.BadValue];
        // A bare ECM inside a bare ECM.
        yield return ["ecm in ecm", Cat([0x80, 0, 0, 0], BareEcm), WireError.TooDeep];
        // UDP length that disagrees with what is left.
        yield return ["udp-only long length", Cat(UdpOnlyEcm[..8], [0x00, 0x26], UdpOnlyEcm[10..]), WireError.BadLength];
        // Bytes left after the bare Map-Request.
        yield return ["bare with trailing byte", Cat(BareEcm, [0x00]), WireError.BadLength];
    }

    [Theory]
    [MemberData(nameof(MalformedEcms))]
    public void Malformed_quirk_ecms_are_refused_with_a_status(string what, byte[] bytes, WireError expected)
    {
        var st = ControlMessage.TryDecode(bytes, out var m);
        Assert.Null(m);
        Assert.Equal(expected, st.Error);
        Assert.False(string.IsNullOrEmpty(st.Detail), what);
        Assert.False(Robustness.CheckDecode(bytes));
    }

    [Fact]
    public void Map_notify_with_xtr_id_trailer_and_i_bit_clear_decodes_verifies_and_re_encodes_exactly()
    {
        var bytes = Sign(NotifyWithTrailer(), NotifyKey);
        Assert.Equal(101, bytes.Length);
        var n = Decode<MapNotify>(bytes);
        Assert.False(n.IsAck);
        Assert.False(n.Rebuilt);
        Assert.Equal(0u, n.ReservedBits);
        Assert.True(n.XtrIdTrailerWithoutIBit);
        Assert.True(n.XtrIdPresent);
        Assert.Equal(XtrId, n.XtrId);
        Assert.Equal(42ul, n.SiteId);
        Assert.Equal(0x1112131415161718ul, n.Nonce);
        Assert.Equal(0, n.KeyId);
        Assert.Equal(AuthAlgorithm.HmacSha256_128, n.Algorithm);
        Assert.Equal(bytes[16..48], n.AuthData);
        var rec = Assert.Single(n.Records);
        Assert.Equal(new DistinguishedName("dino"), rec.Eid.Address);
        Assert.Equal(32, rec.Eid.MaskLength);
        Assert.Equal(3u, rec.TtlRaw);
        Assert.True(rec.Authoritative);
        Assert.Equal(MapReplyAction.NoAction, rec.Action);
        var loc = Assert.Single(rec.Locators);
        Assert.Equal(IpAddress.Parse("192.0.2.1"), loc.Locator);
        Assert.Equal((1, 100, 255, 0), (loc.Priority, loc.Weight, loc.MulticastPriority, loc.MulticastWeight));
        Assert.True(loc.Reachable);

        // The HMAC is over the bytes as received, trailer included and I bit clear.
        Assert.True(MessageAuthentication.Verify(bytes, NotifyKey));
        Assert.False(MessageAuthentication.Verify(bytes, Encoding.UTF8.GetBytes("other-key")));
        Assert.Equal(ToHex(bytes), ToHex(n.ToBytes()));
        Assert.Equal(ToHex(bytes), ToHex(n.ToSignedBytes(NotifyKey)));
        Assert.Equal(0x40, n.ToBytes()[0]);
    }

    [Fact]
    public void Map_notify_with_i_bit_set_still_reads_the_rfc_layout()
    {
        var bytes = NotifyWithTrailer(type: 0x48); // type 4, I bit set
        var n = Decode<MapNotify>(bytes);
        Assert.False(n.XtrIdTrailerWithoutIBit);
        Assert.Equal(XtrId, n.XtrId);
        Assert.Equal(42ul, n.SiteId);
        Assert.Equal(ToHex(bytes), ToHex(n.ToBytes()));
    }

    [Theory]
    [InlineData(23, 0x40)]
    [InlineData(25, 0x40)]
    [InlineData(1, 0x40)]
    [InlineData(48, 0x40)]
    [InlineData(24, 0x50)] // a Map-Notify-Ack: the quirk is only the Map-Notify's
    [InlineData(23, 0x48)] // I bit set with a short trailer
    [InlineData(25, 0x48)]
    public void Other_trailer_lengths_stay_an_error(int trailer, byte type)
    {
        var bytes = Sign(NotifyWithTrailer(trailer, type), NotifyKey);
        var st = ControlMessage.TryDecode(bytes, out var m);
        Assert.Null(m);
        Assert.True(st.Error is WireError.BadLength or WireError.Truncated, st.ToString());
        Assert.False(Robustness.CheckDecode(bytes));
    }

    [Fact]
    public void Map_register_with_24_trailing_bytes_and_i_bit_clear_stays_an_error()
    {
        var bytes = NotifyWithTrailer();
        bytes[0] = 0x30; // type 3 (Map-Register), I bit clear; the rest reads the same
        var st = ControlMessage.TryDecode(bytes, out var m);
        Assert.Null(m);
        Assert.Equal(WireError.BadLength, st.Error);
    }

    [Fact]
    public void Rfc_layout_ecm_is_unchanged()
    {
        var seed = SeedRequests[0].Bytes;
        var ecm = Decode<EncapsulatedControlMessage>(seed);
        Assert.Equal(EcmInnerLayout.IpUdp, ecm.InnerLayout);
        Assert.True(ecm.HasInnerHeader);
        Assert.Same(ecm.Inner, ecm.InnerHeader);
        Assert.Equal(ecm.Inner.SourcePort, ecm.InnerSourcePort);
        Assert.Equal(ToHex(seed), ToHex(ecm.ToBytes()));
    }
}
