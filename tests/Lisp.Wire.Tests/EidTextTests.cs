using Lisp.Wire;
using Xunit;
using static Lisp.Wire.Tests.TestData;

namespace Lisp.Wire.Tests;

/// <summary>EID text form (as lispers.net prints it): parse -> print returns the text; the parsed value has the right wire form.</summary>
public class EidTextTests
{
    [Theory]
    [InlineData("[0]1.1.1.1/32")]
    [InlineData("[1000]1.1.1.1/32")]
    [InlineData("[0]10.0.0.0/8")]
    [InlineData("[0]2001::1/128")]
    [InlineData("[77]2001:db8::/32")]
    [InlineData("[0]'dino'")]
    [InlineData("[5]'nexus-n1'")]
    [InlineData("[0](1.1.1.1/32, 224.1.1.1/32)")]
    [InlineData("[9](0.0.0.0/0, 224.0.0.0/4)")]
    [InlineData("[0]+1223344556677880/64")]
    [InlineData("[3]+000140871820010/64")]
    [InlineData("[0]0000-1111-2222/48")]
    [InlineData("[16777215]0000-1111-2222/48")]
    [InlineData("[0]48-51-12-N-2-20-55-E/100")]
    [InlineData("[8]33-52-0-S-151-12-30-W/5")]
    public void Parse_then_print_is_the_same_text(string text)
    {
        Assert.True(EidPrefix.TryParse(text, out var p, out var err), err);
        Assert.Equal(text, p!.ToString());
        // And the wire form decodes back to the same EID text.
        var st = LispAddress.TryDecode(p.Address.ToBytes(), out var a);
        Assert.True(st.IsOk, st.ToString());
        Assert.Equal(text, new EidPrefix(a!, p.MaskLength).ToString());
    }

    [Fact]
    public void Parsed_values_have_the_expected_wire_form()
    {
        // Instance-id 0 travels as a plain AFI; a non-zero one inside an Instance-ID LCAF.
        Assert.Equal("000101010101", ToHex(EidPrefix.Parse("[0]1.1.1.1/32").Address.ToBytes()));
        Assert.Equal("40030000020000 0a 000003e8 000101010101".Replace(" ", ""), ToHex(EidPrefix.Parse("[1000]1.1.1.1/32").Address.ToBytes()));

        var dn = EidPrefix.Parse("[0]'dino'");
        Assert.Equal(new DistinguishedName("dino"), dn.Address);
        Assert.Equal(32, dn.MaskLength); // a name's mask is its length in bits

        var sg = EidPrefix.Parse("[0](1.1.1.1/32, 224.1.1.1/32)");
        var mi = Assert.IsType<MulticastInfoAddress>(sg.Address);
        Assert.Equal((32, 32), ((int)mi.SourceMaskLength, (int)mi.GroupMaskLength));
        Assert.Equal(Addr("224.1.1.1"), mi.Group);

        var e164 = EidPrefix.Parse("[0]+1223344556677880/64");
        Assert.Equal("00081223344556677880", ToHex(e164.Address.ToBytes()));
        Assert.Equal(64, e164.MaskLength);

        var mac = EidPrefix.Parse("[0]0000-1111-2222/48");
        Assert.Equal(new MacAddress(0x0000_1111_2222), mac.Address);
        Assert.Equal(48, mac.MaskLength);

        var geo = EidPrefix.Parse("[0]48-51-12-N-2-20-55-E/100");
        Assert.Equal("4003 0000 0500 0010 8030330c 80021437 00000000 0064 0000".Replace(" ", ""), ToHex(geo.Address.ToBytes()));

        var iid = EidPrefix.Parse("[1000]2001::1/128");
        Assert.Equal(1000u, iid.InstanceId);
        Assert.Equal(Addr("2001::1"), iid.Inner);
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData("[abc]1.1.1.1/32", "instance-id")]
    [InlineData("[99999999]1.1.1.1/32", "instance-id")]
    [InlineData("[5", "instance-id")]
    [InlineData("1.1.1.1/33", "mask length")]
    [InlineData("2001::1/129", "mask length")]
    [InlineData("1.1.1.1/x", "mask length")]
    [InlineData("1.1.1/32", "not an IPv4")]
    [InlineData("'dino", "single quotes")]
    [InlineData("(1.1.1.1/32)", "(S,G)")]
    [InlineData("(1.1.1.1/32, 224.1.1.1/32", "(S,G)")]
    [InlineData("(bogus, 224.1.1.1/32)", "not an IPv4")]
    [InlineData("0000-1111/48", "not an IPv4")]
    [InlineData("+12ab3g/64", "not an IPv4")]
    [InlineData("91-0-0-N-2-20-55-E/100", "not an IPv4")]
    [InlineData("hello", "not an IPv4")]
    public void Bad_text_is_refused_with_a_message(string text, string mentions)
    {
        Assert.False(EidPrefix.TryParse(text, out var p, out var err));
        Assert.Null(p);
        Assert.NotNull(err);
        Assert.Contains(mentions, err, StringComparison.OrdinalIgnoreCase);
        Assert.Throws<FormatException>(() => EidPrefix.Parse(text));
    }
}
