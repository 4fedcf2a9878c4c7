using System.Buffers.Binary;
using Lisp.Wire;
using Xunit;
using static Lisp.Wire.Tests.TestData;

namespace Lisp.Wire.Tests;

/// <summary>
/// The 9 Map-Requests from the seed's ITR log (lispers.net, vectors/seed-map-requests.txt): each is an ECM around an
/// inner IP + UDP 59893 -> 4342 + Map-Request with 2 ITR-RLOCs (172.17.0.7, fe00::2:2:2) and the listed EID.
/// </summary>
public class SeedVectorTests
{
    [Fact]
    public void All_nine_vectors_are_present()
    {
        Assert.Equal(9, SeedRequests.Count);
        Assert.All(SeedRequests, s => Assert.Equal(s.Length, s.Bytes.Length));
    }

    [Theory]
    [MemberData(nameof(TestData.SeedEids), MemberType = typeof(TestData))]
    public void Decodes_as_ecm_map_request_with_the_listed_eid(string eid)
    {
        var seed = Seed(eid);
        var st = ControlMessage.TryDecode(seed.Bytes, out var msg);
        Assert.True(st.IsOk, st.ToString());
        var ecm = Assert.IsType<EncapsulatedControlMessage>(msg);
        Assert.Equal(seed.Length, ecm.EncodedLength + (IsPadded(eid) ? 2 : 0));
        Assert.False(ecm.Security || ecm.DdtOriginated || ecm.ForEtr || ecm.ForMapServer);

        // Inner IP + UDP, as spec/wire.md says of the seed: TTL/hop limit 128, 59893 -> 4342.
        var ip = ecm.Inner;
        Assert.Equal((ushort)59893, ip.SourcePort);
        Assert.Equal((ushort)4342, ip.DestinationPort);
        Assert.Equal(128, ip.TtlOrHopLimit);
        bool v4 = eid.Contains('.');
        Assert.Equal(v4, ip.IsV4);
        Assert.Equal(v4 ? Ip("240.2.2.2") : Ip("fe00::2:2:2"), ip.Source);
        Assert.Equal(Ip(eid.Split('/')[0]), ip.Destination);
        Assert.Equal((ushort)0, ip.UdpChecksum);

        var mr = Assert.IsType<MapRequest>(ecm.Message);
        Assert.False(mr.Authoritative || mr.MapDataPresent || mr.Probe || mr.Smr || mr.Pitr || mr.SmrInvoked);
        Assert.NotEqual(0UL, mr.Nonce);
        Assert.Equal([Addr("172.17.0.7"), Addr("fe00::2:2:2")], mr.ItrRlocs);
        var record = Assert.Single(mr.Records);
        if (IsPadded(eid))
        {
            // The (S,G) request has no source EID (AFI 0); fe00::2:2:2 is the (S,G) source inside the LCAF.
            Assert.Same(NoAddress.Instance, mr.SourceEid);
            var mi = Assert.IsType<MulticastInfoAddress>(record.Address);
            Assert.Equal(Addr("fe00::2:2:2"), mi.Source);
            Assert.Equal(Addr("ff02::1:ff00:2"), mi.Group);
            Assert.Equal((128, 128, 0u), ((int)mi.SourceMaskLength, (int)mi.GroupMaskLength, mi.InstanceId));
            Assert.Equal(128, record.MaskLength);
            Assert.Equal("[0](fe00::2:2:2/128, ff02::1:ff00:2/128)", record.ToString());
        }
        else
        {
            Assert.Equal(v4 ? Addr("240.2.2.2") : Addr("fe00::2:2:2"), mr.SourceEid);
            Assert.Equal("[0]" + eid, record.ToString());
        }
    }

    [Fact]
    public void Lispers_padded_multicast_info_decodes_via_compatibility_path_and_re_encodes_in_rfc_layout()
    {
        var seed = Seed("ff02::1:ff00:2/128");
        // The padded LCAF as it sits in the seed: AFI 16387, type 9, Length 44 (0x2c), then 2 uncounted zero bytes.
        const int lcafAt = 4 + 40 + 8 + 12 + 2 + 6 + 18 + 2; // ECM, IPv6, UDP, Map-Request header, src AFI 0, ITR-RLOCs, reserved + mask-len
        Assert.Equal("4003 0000 0900 002c 0000 00000000".Replace(" ", ""), ToHex(seed.Bytes.AsSpan(lcafAt, 14)));
        Assert.Equal(lcafAt + 8 + 44 + 2, seed.Bytes.Length);

        var ecm = Decode<EncapsulatedControlMessage>(seed.Bytes);
        var mr = (MapRequest)ecm.Message;
        var mi = (MulticastInfoAddress)mr.Records[0].Address;
        Assert.True(mi.ReceivedLispersPadding);

        var again = ecm.ToBytes();
        Assert.Equal(seed.Bytes.Length - 2, again.Length);
        int innerOld = BinaryPrimitives.ReadUInt16BigEndian(seed.Bytes.AsSpan(4 + 4));       // IPv6 payload length
        int innerNew = BinaryPrimitives.ReadUInt16BigEndian(again.AsSpan(4 + 4));
        Assert.Equal(innerOld - 2, innerNew);
        Assert.Equal(innerNew, BinaryPrimitives.ReadUInt16BigEndian(again.AsSpan(4 + 40 + 4))); // UDP length
        Assert.Equal(mr.EncodedLength + 8, innerNew);

        // RFC 8060 layout: Length right before the Instance-ID and covering the body to the last byte.
        Assert.Equal("4003 0000 0900 002c 00000000 0000 80 80".Replace(" ", ""), ToHex(again.AsSpan(lcafAt, 16)));
        int length = BinaryPrimitives.ReadUInt16BigEndian(again.AsSpan(lcafAt + 6));
        Assert.Equal(again.Length, lcafAt + 8 + length);
        Assert.Equal(8 + 18 + 18, length);

        // The RFC form decodes through the normal path, to the same EID, and is stable.
        var back = Decode<EncapsulatedControlMessage>(again);
        var mi2 = (MulticastInfoAddress)((MapRequest)back.Message).Records[0].Address;
        Assert.False(mi2.ReceivedLispersPadding);
        Assert.Equal(mi, mi2);
        Assert.Equal(ToHex(again), ToHex(back.ToBytes()));
    }

    [Fact]
    public void Padded_form_needs_zero_padding_and_a_two_byte_short_length()
    {
        // The same LCAF with non-zero "padding" is not lispers.net's form: refused, not mis-read.
        var seed = Seed("ff02::1:ff00:2/128");
        var mr = seed.Bytes.AsSpan(4 + 40 + 8).ToArray();
        int lcafAt = 12 + 2 + 6 + 18 + 2;
        mr[lcafAt + 8] = 0x01;
        Assert.False(ControlMessage.TryDecode(mr, out _).IsOk);
    }

    [Theory]
    [MemberData(nameof(TestData.SeedEids), MemberType = typeof(TestData))]
    public void Operator_description_names_the_eid(string eid)
    {
        var ecm = Decode<EncapsulatedControlMessage>(Seed(eid).Bytes);
        var w = new StringWriter();
        MessageDescriber.Describe(ecm).WriteText(w);
        var text = w.ToString();
        Assert.Contains("Map-Request", text, StringComparison.Ordinal);
        Assert.Contains(eid.Split('/')[0], text, StringComparison.Ordinal);
        if (IsPadded(eid)) Assert.Contains("lispers.net padded form", text, StringComparison.Ordinal);
    }

    private static bool IsPadded(string eid) => eid.StartsWith("ff02", StringComparison.Ordinal);
}
