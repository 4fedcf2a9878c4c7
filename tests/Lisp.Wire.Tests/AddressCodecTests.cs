using Lisp.Wire;
using Xunit;
using static Lisp.Wire.Tests.TestData;

namespace Lisp.Wire.Tests;

/// <summary>
/// Every address kind against bytes laid out by hand from RFC 9300 (AFIs), RFC 9735 (AFI 17) and RFC 8060
/// (LCAF: AFI 16387 | Rsvd1 | Flags | Type | Rsvd2 | Length, then the type's body). Each case checks
/// decode(golden) == the expected value, encode(value) == golden, and decode -> encode is byte-exact.
/// </summary>
public class AddressCodecTests
{
    public static TheoryData<string, string, LispAddress> Cases => new()
    {
        { "IPv4", "0001 c0000201", Addr("192.0.2.1") },
        { "IPv6", "0002 20010db8 00000000 00000000 00000001", Addr("2001:db8::1") },
        { "DN", "0011 64696e6f 00", new DistinguishedName("dino") },
        { "DN empty", "0011 00", new DistinguishedName("") },
        { "MAC AFI 16389", "4005 0000 1111 2222", new MacAddress(0x0000_1111_2222) },
        { "MAC AFI 6", "0006 a0b1 c2d3 e4f5", new MacAddress(0xa0b1_c2d3_e4f5, Afi.Ieee802Legacy) },
        { "E.164", "0008 12233445 56677880", new E164Address(0x1223344556677880) },
        { "no address", "0000", NoAddress.Instance },
        // Instance-ID: Rsvd2 = IID mask-len (0 here), Length 10 = IID(4) + AFI-encoded IPv4(6).
        { "Instance-ID", "4003 00 00 02 00 000a | 000003e8 | 0001 01010101", new InstanceIdAddress(1000, Addr("1.1.1.1")) },
        { "Instance-ID mask-len 24", "4003 00 00 02 18 0016 | 00ffffff | 0002 fe000000 00000000 00000000 00000001",
            new InstanceIdAddress(0xffffff, Addr("fe00::1"), 24) },
        // AFI-List: Length 24 = 6 + 18.
        { "AFI-List", "4003 00 00 01 00 0018 | 0001 01010101 | 0002 20010000 00000000 00000000 00000001",
            new AfiListAddress([Addr("1.1.1.1"), Addr("2001::1")]) },
        // Geo: N|lat-deg 48 = 0x8030, 51', 12"; E|lon-deg 2 = 0x8002, 20', 55"; altitude 0; radius 100; AFI 0. Length 16.
        { "Geo", "4003 00 00 05 00 0010 | 8030 33 0c | 8002 14 37 | 00000000 | 0064 | 0000",
            new GeoCoordinates(true, 48, 51, 12, true, 2, 20, 55, 0, 100, NoAddress.Instance) },
        // South/West (bits clear), altitude -5 (two's complement), radius 0, with an IPv4 address. Length 20.
        { "Geo S/W with address", "4003 00 00 05 00 0014 | 0021 00 3b | 00b3 3b 00 | fffffffb | 0000 | 0001 0a000001",
            new GeoCoordinates(false, 33, 0, 59, false, 179, 59, 0, -5, 0, Addr("10.0.0.1")) },
        // Multicast-Info (RFC 8060 layout): Rsvd2 = R/L/J flags (J here), IID, reserved(16), src-ml, grp-ml, src, grp. Length 20.
        { "Multicast-Info", "4003 00 00 09 01 0014 | 00000007 | 0000 | 20 20 | 0001 01010101 | 0001 e0010101",
            new MulticastInfoAddress(7, 32, 32, Addr("1.1.1.1"), Addr("224.1.1.1"), RljFlags: 1) },
        // Source/Dest: reserved(16), src-ml 8, dst-ml 16. Length 16.
        { "Source-Dest", "4003 00 00 0c 00 0010 | 0000 | 08 10 | 0001 0a000000 | 0001 14000000",
            new SourceDestAddress(8, 16, Addr("10.0.0.0"), Addr("20.0.0.0")) },
        // RLE: per entry 3 reserved bytes, level, AFI + address. Length 20.
        { "RLE", "4003 00 00 0d 00 0014 | 000000 01 | 0001 0a000001 | 000000 02 | 0001 0a000002",
            new ReplicationListAddress([new RleEntry(1, Addr("10.0.0.1")), new RleEntry(2, Addr("10.0.0.2"))]) },
        // Unknown LCAF type 200 with non-zero Rsvd1/Flags/Rsvd2: carried as bytes.
        { "unknown LCAF", "4003 01 02 c8 03 0005 | 0102030405", new UnknownLcafAddress(200, 1, 2, 3, [1, 2, 3, 4, 5]) },
        // JSON (type 14) is not interpreted either: kept whole.
        { "JSON LCAF kept", "4003 00 00 0e 00 0006 | 0002 7b7d | 0000", new UnknownLcafAddress(14, 0, 0, 0, [0, 2, 0x7b, 0x7d, 0, 0]) },
        // Nesting: Instance-ID 5 around a Source-Dest of IPv6 prefixes. Inner length 4 + 18 + 18 = 40 (0x28); outer 4 + 8 + 40 = 52 (0x34).
        { "Instance-ID(Source-Dest)", "4003 00 00 02 00 0034 | 00000005 | 4003 00 00 0c 00 0028 | 0000 | 40 30 | " +
            "0002 20010db8 00000000 00000000 00000000 | 0002 20010db9 00000000 00000000 00000000",
            new InstanceIdAddress(5, new SourceDestAddress(64, 48, Addr("2001:db8::"), Addr("2001:db9::"))) },
        // AFI-List holding a DN and a MAC (AFI 6). Length 5 + 8 = 13.
        { "AFI-List(DN, MAC)", "4003 00 00 01 00 000d | 0011 6e3100 | 0006 000011112222",
            new AfiListAddress([new DistinguishedName("n1"), new MacAddress(0x0000_1111_2222, Afi.Ieee802Legacy)]) },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Decodes_encodes_and_round_trips(string kind, string goldenHex, LispAddress expected)
    {
        var golden = Hex(goldenHex);
        var st = LispAddress.TryDecode(golden, out var decoded);
        Assert.True(st.IsOk, $"{kind}: {st}");
        Assert.Equal(expected, decoded);
        Assert.Equal(golden.Length, expected.EncodedLength);
        Assert.Equal(ToHex(golden), ToHex(expected.ToBytes()));
        Assert.Equal(ToHex(golden), ToHex(decoded!.ToBytes()));
    }

    [Fact]
    public void Mac_keeps_the_afi_it_arrived_with()
    {
        LispAddress.TryDecode(Hex("0006 000011112222"), out var a6);
        LispAddress.TryDecode(Hex("4005 000011112222"), out var a16389);
        Assert.Equal(Afi.Ieee802Legacy, a6!.Afi);
        Assert.Equal(Afi.Mac48, a16389!.Afi);
        Assert.Equal("0000-1111-2222", a6.ToText());
        Assert.Equal("0000-1111-2222", a16389.ToText());
    }

    [Theory]
    [InlineData("0001 0102", WireError.Truncated)]                              // IPv4 cut short
    [InlineData("0011 6162", WireError.Truncated)]                              // DN without its zero byte
    [InlineData("0011 61 07 00", WireError.BadValue)]                           // DN with a control byte
    [InlineData("1e00 0a010164", WireError.UnsupportedAfi)]                     // AFI 7680
    [InlineData("4003 00 00 02 00 000b 000003e8 0001 01010101", WireError.Truncated)]  // Length 1 too long
    [InlineData("4003 00 00 02 00 000c 000003e8 0001 01010101 ff 00", WireError.BadLength)] // Length covers 2 stray bytes
    [InlineData("0001 01020304 00", WireError.BadLength)]                       // bytes after the address
    public void Bad_addresses_are_refused_with_a_reason(string hex, WireError error)
    {
        var st = LispAddress.TryDecode(Hex(hex), out var a);
        Assert.False(st.IsOk);
        Assert.Null(a);
        Assert.Equal(error, st.Error);
        Assert.False(string.IsNullOrWhiteSpace(st.Detail));
    }

    [Fact]
    public void Lcaf_nesting_is_bounded()
    {
        // 12 Instance-ID LCAFs inside each other: refused as too deep rather than recursing without limit.
        LispAddress a = Addr("1.1.1.1");
        for (int i = 0; i < 12; i++) a = new InstanceIdAddress((uint)i, a);
        var st = LispAddress.TryDecode(a.ToBytes(), out var decoded);
        Assert.Equal(WireError.TooDeep, st.Error);
        Assert.Null(decoded);
    }
}
