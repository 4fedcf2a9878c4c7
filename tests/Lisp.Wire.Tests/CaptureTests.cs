using Lisp.TestSupport;
using Lisp.Wire;
using Xunit;
using static Lisp.Wire.Tests.TestData;

namespace Lisp.Wire.Tests;

/// <summary>
/// Third-party captures (tcpdump's LISP regression data). Expected values are what `tshark -r FILE -V
/// -d udp.port==4342,lisp` shows for them (tshark 4.0); tshark's "Key ID: 0x0001" is our Key ID 0 +
/// Algorithm 1 (HMAC-SHA-1) read as one 16-bit field.
/// </summary>
public class CaptureTests
{
    private const string Nonce = "c4218228892d20a4";
    private const string AuthData = "4bbb9614a67a86040407799545371906836cd1d6";
    private const string XtrId = "9787ad753caf58a713fa6920e6d27a8f";

    private static void AssertRecord(MappingRecord r, string eid, params string[] rlocs)
    {
        Assert.Equal(eid, r.Eid.ToString());
        Assert.Equal(1440u, r.TtlRaw);
        Assert.Equal(MapReplyAction.NoAction, r.Action);
        Assert.True(r.Authoritative);
        Assert.Equal(0, r.MapVersion);
        Assert.Equal(rlocs, r.Locators.Select(l => l.Locator.ToText()));
        Assert.All(r.Locators, l =>
        {
            Assert.Equal((1, 100, 1, 100), (l.Priority, l.Weight, l.MulticastPriority, l.MulticastWeight));
            Assert.False(l.Reachable || l.Local || l.Probed); // tshark: "Unreachable", flags 0x0000
        });
    }

    private static void AssertAuth(AuthenticatedMessage m)
    {
        Assert.Equal(ulong.Parse(Nonce, System.Globalization.NumberStyles.HexNumber, null), m.Nonce);
        Assert.Equal(0, m.KeyId);
        Assert.Equal(AuthAlgorithm.HmacSha1_96, m.Algorithm);
        Assert.Equal(AuthData, ToHex(m.AuthData));
    }

    [Fact]
    public void Eid_register_capture_has_two_full_map_registers()
    {
        var grams = Capture("lisp_eid_register.pcap");
        Assert.Equal(2, grams.Count);
        Assert.All(grams, g => Assert.Equal((Ip("192.168.0.105"), Ip("127.0.0.1"), (ushort)4342, (ushort)4342, false),
            (g.Source, g.Destination, g.SourcePort, g.DestinationPort, g.Truncated)));

        var r1 = Decode<MapRegister>(grams[0].Payload);
        AssertAuth(r1);
        Assert.True(r1.XtrIdPresent && r1.WantMapNotify);
        Assert.False(r1.ProxyReply || r1.LispSec);
        Assert.Equal(2, r1.Records.Count);
        AssertRecord(r1.Records[0], "[0]10.30.1.100/32", "20.20.8.253");
        AssertRecord(r1.Records[1], "[0]10.30.1.96/32", "20.20.8.252");
        Assert.Equal(XtrId, ToHex(r1.XtrId));
        Assert.Equal(0UL, r1.SiteId);

        var r2 = Decode<MapRegister>(grams[1].Payload);
        AssertAuth(r2);
        AssertRecord(r2.Records[0], "[0]10.30.1.100/32", "20.20.8.253");
        AssertRecord(r2.Records[1], "[0]10.30.1.96/32", "20.20.8.251", "20.20.8.252");
        Assert.Equal(XtrId, ToHex(r2.XtrId));
    }

    [Fact]
    public void Ipv6_capture_has_a_map_register_and_a_map_notify()
    {
        var grams = Capture("lisp_ipv6.pcap");
        Assert.Equal(2, grams.Count);
        var reg = Decode<MapRegister>(grams[0].Payload);
        AssertAuth(reg);
        Assert.True(reg.XtrIdPresent && reg.WantMapNotify);
        Assert.Equal(2, reg.Records.Count);
        AssertRecord(reg.Records[0], "[0]2001:db8:85a3::8a2e:370:7334/80", "20.20.8.253");
        AssertRecord(reg.Records[1], "[0]2001:db8:95a3::8a2e:370:7334/80", "20.20.8.251");
        Assert.Equal(XtrId, ToHex(reg.XtrId));

        var notify = Decode<MapNotify>(grams[1].Payload);
        Assert.Equal(MessageType.MapNotify, notify.Type);
        AssertAuth(notify);
        Assert.False(notify.XtrIdPresent);
        Assert.Equal(2, notify.Records.Count);
        AssertRecord(notify.Records[0], "[0]2001:db8:85a3::8a2e:370:7334/80", "20.20.8.253");
        AssertRecord(notify.Records[1], "[0]2001:db8:95a3::8a2e:370:7334/80", "20.20.8.251");
    }

    [Theory]
    [InlineData("lisp_eid_register.pcap")]
    [InlineData("lisp_ipv6.pcap")]
    public void Good_captures_re_encode_byte_for_byte(string file)
    {
        // Another implementation's bytes, reserved bits included, must survive decode -> encode unchanged
        // (a map-server forwarding or re-signing a message must not alter what it did not mean to).
        foreach (var g in Capture(file))
        {
            var st = ControlMessage.TryDecode(g.Payload, out var m);
            Assert.True(st.IsOk, st.ToString());
            Assert.Equal(ToHex(g.Payload), ToHex(m!.ToBytes()));
        }
    }

    [SkippableTheory]
    [InlineData("lisp_eid_register.pcap")]
    [InlineData("lisp_ipv6.pcap")]
    public void Our_decode_of_the_good_captures_agrees_with_tshark_field_by_field(string file)
    {
        Tshark.SkipIfMissing();
        var theirs = Tshark.DecodeFile(TestFiles.Vector("captures", file));
        var ours = Capture(file);
        Assert.Equal(theirs.Count, ours.Count);
        for (int i = 0; i < ours.Count; i++)
        {
            var t = theirs[i];
            t.AssertClean();
            var m = Decode<AuthenticatedMessage>(ours[i].Payload);
            Assert.Equal((long)m.Type, t.Number("lisp.type"));
            Assert.Equal(m.Records.Count, t.Number("lisp.records"));
            Assert.Equal("0x" + m.Nonce.ToString("x16", System.Globalization.CultureInfo.InvariantCulture), t.One("lisp.nonce"));
            Assert.Equal(m.KeyId << 8 | (int)m.Algorithm, t.Number("lisp.keyid")); // tshark's 16-bit Key ID = our Key ID + Algorithm ID
            Assert.Equal(m.AuthData!.Length, t.Number("lisp.authlen"));
            Assert.Equal(ToHex(m.AuthData), t.Raw("lisp.auth"));
            Assert.Equal(m.Records.Select(r => r.TtlRaw.ToString(System.Globalization.CultureInfo.InvariantCulture)), t.All("lisp.mapping.ttl"));
            Assert.Equal(m.Records.Select(r => r.Eid.MaskLength.ToString(System.Globalization.CultureInfo.InvariantCulture)), t.All("lisp.mapping.eid.masklen"));
            Assert.Equal(m.Records.Select(r => r.Eid.Inner.ToText()), t.All("lisp.mapping.eid.ipv4").Concat(t.All("lisp.mapping.eid.ipv6")));
            Assert.Equal(m.Records.SelectMany(r => r.Locators).Select(l => l.Locator.ToText()), t.All("lisp.loc.locator"));
            Assert.Equal(m.Records.SelectMany(r => r.Locators).Select(l => l.Reachable ? "1" : "0"), t.All("lisp.loc.flags.reach"));
            if (m.XtrIdPresent)
            {
                Assert.Equal(ToHex(m.XtrId), t.Raw("lisp.xtrid"));
                Assert.Equal(m.SiteId.ToString("x16", System.Globalization.CultureInfo.InvariantCulture), t.Raw("lisp.siteid"));
            }
        }
    }

    [SkippableFact]
    public void Tshark_also_rejects_both_invalid_frames()
    {
        Tshark.SkipIfMissing();
        var t = Tshark.DecodeFile(TestFiles.Vector("captures", "lisp_invalid.pcap"));
        Assert.Contains(t[0].Problems(), p => p.Contains("AFI (7680)", StringComparison.Ordinal));
        Assert.Contains("Malformed Packet", t[1].Problems());
    }

    [Fact]
    public void Invalid_capture_frame_1_is_refused_for_its_eid_afi()
    {
        var grams = Capture("lisp_invalid.pcap");
        Assert.Equal(2, grams.Count);
        var st = ControlMessage.TryDecode(grams[0].Payload, out var m);
        Assert.Null(m);
        Assert.Equal(WireError.UnsupportedAfi, st.Error);
        Assert.Contains("AFI 7680", st.Detail, StringComparison.Ordinal);
        // The first record's EID AFI sits after word 0, nonce, key/alg/len, 20 auth bytes and 10 record bytes.
        Assert.Equal(4 + 8 + 4 + 20 + 10 + 2, st.Offset);
        Assert.Contains("UnsupportedAfi at byte 48", st.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Invalid_capture_frame_2_is_truncated_and_refused()
    {
        var grams = Capture("lisp_invalid.pcap");
        var g = grams[1];
        Assert.Equal(2, g.FrameNumber);
        Assert.True(g.Truncated);            // 83 of 170 bytes captured
        Assert.Equal(41, g.Payload.Length);  // what tshark shows as the LISP part
        var st = ControlMessage.TryDecode(g.Payload, out var m);
        Assert.Null(m);
        Assert.Equal(WireError.Truncated, st.Error);
        // tshark reads Authentication Data Length 35117 here; so do we, and say so.
        Assert.Contains("authentication data needs 35117 bytes", st.Detail, StringComparison.Ordinal);
        Assert.Equal(16, st.Offset);
    }
}
