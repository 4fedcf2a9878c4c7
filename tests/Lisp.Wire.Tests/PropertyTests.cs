using CsCheck;
using Lisp.Wire;
using Xunit;
using static Lisp.Wire.Tests.TestData;

namespace Lisp.Wire.Tests;

/// <summary>Randomized round trips (CsCheck; a failure prints the seed and the shrunk input).</summary>
public class PropertyTests
{
    private static string Describe(ControlMessage m)
    {
        var w = new StringWriter();
        MessageDescriber.Describe(m).WriteText(w);
        return w.ToString();
    }

    [Fact]
    public void Any_address_decodes_to_an_equal_value_and_the_same_bytes()
    {
        Generators.AnyAddress.Sample(a =>
        {
            var bytes = a.ToBytes();
            Assert.Equal(a.EncodedLength, bytes.Length);
            var st = LispAddress.TryDecode(bytes, out var back);
            Assert.True(st.IsOk, st.ToString());
            Assert.Equal(a, back);
            Assert.Equal(ToHex(bytes), ToHex(back!.ToBytes()));
            Assert.Equal(a.ToText(), back.ToText());
        }, iter: 2000);
    }

    [Fact]
    public void Any_mapping_record_round_trips()
    {
        Generators.Record.Sample(r =>
        {
            var buf = new byte[r.EncodedLength];
            var w = new SpanWriter(buf);
            r.Write(ref w);
            Assert.True(w.Ok);
            Assert.Equal(buf.Length, w.Position);
            var rd = new SpanReader(buf);
            var back = MappingRecord.Read(ref rd);
            Assert.True(rd.Ok, rd.Status.ToString());
            Assert.Equal(0, rd.Remaining);
            Assert.Equal(r, back);
        }, iter: 1000);
    }

    [Fact]
    public void Any_message_round_trips_byte_for_byte()
    {
        Generators.Message.Sample(m =>
        {
            var bytes = m.ToBytes();
            var st = ControlMessage.TryDecode(bytes, out var back);
            Assert.True(st.IsOk, st.ToString());
            Assert.Equal(m.Type, back!.Type);
            Assert.Equal(ToHex(bytes), ToHex(back.ToBytes()));
            Assert.Equal(Describe(m), Describe(back));
        }, iter: 1000);
    }

    [Fact]
    public void Any_generated_message_survives_truncation_and_bit_flips()
    {
        Gen.Select(Generators.Message, Gen.Int, Gen.Int).Sample((m, cutSeed, flipSeed) =>
        {
            var bytes = m.ToBytes();
            int cut = (int)((uint)cutSeed % (uint)bytes.Length);
            Assert.False(ControlMessage.TryDecode(bytes.AsSpan(0, cut), out var none).IsOk);
            Assert.Null(none);
            var flipped = (byte[])bytes.Clone();
            int bit = (int)((uint)flipSeed % (uint)(bytes.Length * 8));
            flipped[bit / 8] ^= (byte)(0x80 >> (bit % 8));
            Robustness.CheckDecode(flipped);
        }, iter: 1000);
    }

    [Fact]
    public void Data_header_round_trips()
    {
        Generators.Data.Sample(h =>
        {
            var b = new byte[8];
            h.Write(b);
            Assert.True(DataHeader.TryRead(b, out var back).IsOk);
            Assert.Equal(h, back);
        }, iter: 1000);
    }

    [Fact]
    public void Eid_text_round_trips_for_plain_kinds()
    {
        var inner = Gen.Frequency(
            (3, Gen.Select(Generators.Ipv4, Gen.Int[0, 32], (a, ml) => (a, ml))),
            (3, Gen.Select(Generators.Ipv6, Gen.Int[0, 128], (a, ml) => (a, ml))),
            (2, Gen.Select(Gen.ULong[0, 0xffff_ffff_ffffUL], Gen.Int[0, 48], (v, ml) => ((LispAddress)new MacAddress(v), ml))),
            (1, Gen.Select(Gen.ULong, Gen.Int[0, 64], (v, ml) => ((LispAddress)new E164Address(v), ml))),
            (2, Gen.Char[' ', '~'].Array[1, 20].Select(c => { var dn = new DistinguishedName(new string(c)); return ((LispAddress)dn, dn.HostMaskLength); })));
        Gen.Select(inner, Gen.UInt[0, 0xffffff]).Sample((x, iid) =>
        {
            var p = EidPrefix.Create(iid, x.Item1, x.Item2);
            var text = p.ToString();
            Assert.True(EidPrefix.TryParse(text, out var back, out var err), $"{text}: {err}");
            Assert.Equal(text, back!.ToString());
            Assert.Equal(p.Address, back.Address);
            Assert.Equal(p.MaskLength, back.MaskLength);
        }, iter: 2000);
    }
}
