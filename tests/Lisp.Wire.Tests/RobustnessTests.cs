using Lisp.TestSupport;
using Lisp.Wire;
using Xunit;
using static Lisp.Wire.Tests.TestData;

namespace Lisp.Wire.Tests;

/// <summary>
/// Every reader against damaged input: truncation at every byte offset and seeded random bit flips / byte
/// overwrites of real packets (seed vectors, third-party captures, hand-assembled goldens). Bounded (a few
/// thousand mutations per test, fixed seeds) so the suite stays fast and any failure is reproducible.
/// </summary>
public class RobustnessTests
{
    public static IEnumerable<(string Name, byte[] Bytes)> Corpus()
    {
        foreach (var s in SeedRequests) yield return ("seed " + s.Eid, s.Bytes);
        foreach (var s in SeedRequests) yield return ("seed inner " + s.Eid, s.Bytes.AsSpan(4 + (s.Eid.Contains('.') ? 28 : 48)).ToArray());
        foreach (var f in CaptureNames)
        {
            foreach (var g in Capture(f)) yield return ($"{f} frame {g.FrameNumber}", g.Payload);
        }
        yield return ("full map-request", Hex(MessageCodecTests.FullMapRequest));
        yield return ("map-register sha1", Hex(MessageCodecTests.MapRegisterSha1));
        yield return ("lispers ecm without inner header", LispersQuirkTests.BareEcm);
        yield return ("lispers ecm with udp header only", LispersQuirkTests.UdpOnlyEcm);
        yield return ("lispers map-notify trailer without I bit", LispersQuirkTests.NotifyWithTrailer());
    }

    public static IEnumerable<object[]> CorpusNames() => Corpus().Select(c => new object[] { c.Name });

    private static byte[] Get(string name) => Corpus().First(c => c.Name == name).Bytes;

    [Theory]
    [MemberData(nameof(CorpusNames))]
    public void Truncation_at_every_offset_is_refused_without_throwing(string name)
    {
        var bytes = Get(name);
        bool wholeOk = Robustness.CheckDecode(bytes);
        for (int cut = 0; cut < bytes.Length; cut++)
        {
            var st = ControlMessage.TryDecode(bytes.AsSpan(0, cut), out var m);
            // Every LISP message is self-delimiting (counts and lengths), so a strict prefix of a good one is never good.
            if (wholeOk)
            {
                // The lispers.net Map-Notify trailer (I bit clear) is not self-delimiting: without its 24 bytes
                // what is left is a complete Map-Notify.
                if (name.Contains("without I bit", StringComparison.Ordinal) && cut == bytes.Length - 24)
                {
                    Assert.True(st.IsOk, $"{name}: the message without its trailer: {st}");
                    continue;
                }
                Assert.False(st.IsOk, $"{name}: prefix of {cut} bytes accepted");
                Assert.Null(m);
                // One exception: the lispers.net padded (S,G) LCAF cut inside its last 2 bytes (which the LCAF Length does not count) no longer looks
                // padded, so it is read as RFC layout and refused for the AFI that the shift produces.
                bool paddedCut = name.Contains("ff02", StringComparison.Ordinal) && cut >= bytes.Length - 2;
                Assert.True(st.Error is WireError.Truncated or WireError.BadLength || paddedCut, $"{name} cut at {cut}: {st}");
            }
            else
            {
                Robustness.CheckDecode(bytes.AsSpan(0, cut));
            }
        }
    }

    [Theory]
    [MemberData(nameof(CorpusNames))]
    public void Random_bit_flips_and_byte_overwrites_never_throw(string name)
    {
        var bytes = Get(name);
        var rng = new Random(name.Length * 7919 + bytes.Length);
        int accepted = 0;
        for (int i = 0; i < 400; i++)
        {
            var m = (byte[])bytes.Clone();
            int changes = 1 + rng.Next(3);
            for (int c = 0; c < changes; c++)
            {
                int at = rng.Next(m.Length);
                switch (rng.Next(3))
                {
                    case 0: m[at] ^= (byte)(1 << rng.Next(8)); break;
                    case 1: m[at] = (byte)rng.Next(256); break;
                    default: m[at] = rng.Next(2) == 0 ? (byte)0 : (byte)0xff; break;
                }
            }
            if (Robustness.CheckDecode(m)) accepted++;
        }
        // Sanity: many single-bit changes land in nonces, addresses and TTLs and must still decode.
        if (Robustness.CheckDecode(bytes)) Assert.True(accepted > 0, $"{name}: no mutation was accepted");
    }

    [Fact]
    public void Random_garbage_never_throws()
    {
        var rng = new Random(4342);
        for (int i = 0; i < 3000; i++)
        {
            var b = new byte[rng.Next(0, 200)];
            rng.NextBytes(b);
            if (b.Length > 0) b[0] = (byte)((rng.Next(1, 9) << 4) | (b[0] & 0x0f)); // mostly known types
            Robustness.CheckDecode(b);
            DataHeader.TryRead(b, out _);
            LispAddress.TryDecode(b, out _);
        }
    }

    [Fact]
    public void Ecm_inside_ecm_is_refused()
    {
        var seed = SeedRequests[0].Bytes;
        var ecm = Decode<EncapsulatedControlMessage>(seed);
        var outer = new EncapsulatedControlMessage(ecm.Inner with { UdpChecksum = 0 }, ecm);
        var st = ControlMessage.TryDecode(outer.ToBytes(), out var m);
        Assert.Null(m);
        Assert.Equal(WireError.TooDeep, st.Error);
    }

    [Fact]
    public void Address_reader_survives_mutations_of_every_address_kind()
    {
        var rng = new Random(16387);
        foreach (var row in AddressCodecTests.Cases)
        {
            var golden = Hex((string)row[1]);
            for (int cut = 0; cut < golden.Length; cut++)
            {
                Assert.False(LispAddress.TryDecode(golden.AsSpan(0, cut), out var a).IsOk);
                Assert.Null(a);
            }
            for (int i = 0; i < 200; i++)
            {
                var m = (byte[])golden.Clone();
                m[rng.Next(m.Length)] ^= (byte)(1 << rng.Next(8));
                if (LispAddress.TryDecode(m, out var a).IsOk)
                {
                    var again = a!.ToBytes();
                    Assert.True(LispAddress.TryDecode(again, out var b).IsOk);
                    Assert.Equal(a, b);
                    _ = a.ToText();
                }
            }
        }
    }

    [Fact]
    public void Pcap_reader_survives_truncation_and_mutation()
    {
        var rng = new Random(101);
        foreach (var f in CaptureNames)
        {
            var file = File.ReadAllBytes(TestFiles.Vector("captures", f));
            for (int cut = 0; cut < file.Length; cut++)
            {
                var st = PcapFile.TryReadUdp(file.AsSpan(0, cut), out var grams);
                Assert.NotNull(grams);
                if (cut < 24) Assert.False(st.IsOk);
                foreach (var g in grams) Robustness.CheckDecode(g.Payload);
            }
            for (int i = 0; i < 300; i++)
            {
                var m = (byte[])file.Clone();
                m[rng.Next(m.Length)] = (byte)rng.Next(256);
                PcapFile.TryReadUdp(m, out var grams);
                foreach (var g in grams) Robustness.CheckDecode(g.Payload);
            }
        }
        Assert.Equal(WireError.BadValue, PcapFile.TryReadUdp(new byte[24], out _).Error);
    }

    [Fact]
    public void Eid_text_parser_never_throws_on_mangled_text()
    {
        string[] samples =
        [
            "[1000]1.1.1.1/32", "[0]2001::1/128", "[7]'dino'", "[0](1.1.1.1/32, 224.1.1.1/32)", "[0]+1223344556677880/64",
            "[0]0000-1111-2222/48", "[0]48-51-12-N-2-20-55-E/100", "fe80::1%eth0/128", "48-51-12-N-2-20-55-E/100@1.1.1.1",
        ];
        const string alphabet = "[]()/',.:-+%@ 0123456789abcdefNSEW";
        var rng = new Random(9300);
        foreach (var s in samples)
        {
            for (int i = 0; i < 300; i++)
            {
                var c = s.ToCharArray();
                int edits = 1 + rng.Next(3);
                for (int e = 0; e < edits; e++) c[rng.Next(c.Length)] = alphabet[rng.Next(alphabet.Length)];
                var text = new string(c);
                var cut = text[..rng.Next(text.Length + 1)];
                foreach (var t in new[] { text, cut })
                {
                    if (EidPrefix.TryParse(t, out var p, out var err))
                    {
                        _ = p!.Address.ToBytes();
                        _ = p.ToString();
                    }
                    else
                    {
                        Assert.False(string.IsNullOrEmpty(err), t);
                    }
                }
            }
        }
    }
}
