using System.Net;
using CsCheck;
using Lisp.TestSupport;
using Lisp.Wire;
using Xunit;
using Xunit.Abstractions;

namespace Lisp.Decent.Tests;

public sealed class HashTests(ITestOutputHelper output)
{
    private static DecentHasher Hmac(int modulus = 4, SourceGroupHashing sg = SourceGroupHashing.Group, int width = 6) =>
        new(new DecentHashOptions { Modulus = modulus, Algorithm = DecentHashAlgorithm.HmacSha256, SourceGroup = sg, DigestBytes = width });

    [Theory]
    [InlineData("[0]1.1.1.1/32")]
    [InlineData("[0]2001::1/128")]
    [InlineData("[0]'dino'")]
    [InlineData("[0]+000140871820010/64")]
    [InlineData("[0]48-51-12-N-2-20-55-E/100")]
    [InlineData("[0]0000-1111-2222/48")]
    [InlineData("[5]10.1.0.0/16")]
    public void Hmac_variant_matches_an_independent_computation(string text)
    {
        var eid = EidPrefix.Parse(text);
        foreach (int m in new[] { 2, 3, 4, 7, 16, 1000, 65521 })
        {
            Assert.Equal(Oracle.Hmac(text, m), Hmac(m).IndexOf(eid));
            foreach (int w in new[] { 1, 4, 6, 8, 16, 32 }) Assert.Equal(Oracle.Hmac(text, m, w), Hmac(m, width: w).IndexOf(eid));
        }
        // Other key.
        var keyed = new DecentHasher(new DecentHashOptions { Modulus = 1000, Algorithm = DecentHashAlgorithm.HmacSha256, HmacKey = "other" });
        Assert.Equal(Oracle.Hmac(text, 1000, 6, "other"), keyed.IndexOf(eid));
    }

    [Fact]
    public void Hmac_known_values_for_the_seed_eids()
    {
        // Hand-checked with Python's hmac/hashlib: int(hmac.new(b"lisp-decent", text, sha256).hexdigest()[:12], 16) % 4.
        var expected = new (string Text, int Index)[]
        {
            ("[0]240.1.1.1/32", 1), ("[0]1.1.1.1/32", 1), ("[0]2.2.2.2/32", 0), ("[0]2001::1/128", 1),
            ("[0]2001::2/128", 2), ("[0]'dino'", 3), ("[0]48-51-12-N-2-20-55-E/100", 1),
            ("[0]+1223344556677880/64", 1), ("[0]+000140871820010/64", 0), ("[0]+000000000000000/8", 2),
            ("[0]3.3.3.3/32", 1), ("[0]4.4.4.4/32", 3), ("[0]44.44.44.44/32", 0), ("[0]128.1.1.1/32", 3),
            ("[0]ff02::1:ff00:2/128", 2), ("[0]dfdf::2/128", 1),
        };
        var h = Hmac();
        foreach (var (text, index) in expected)
        {
            Assert.Equal(index, Oracle.Hmac(text, 4));
            Assert.Equal(index, h.IndexOf(EidPrefix.Parse(text)));
        }
    }

    /// <summary>
    /// All 20 EIDs of the seed's logs: the ETR's 11 (the (S,G) one hashed by source, as that ETR did) and the
    /// ITR's 9 Map-Request EIDs (decoded from the packets; ff02::1:ff00:2 hashed by group, as that ITR did).
    /// </summary>
    [Fact]
    public void Fourteen_of_the_seeds_twenty_eids_change_sets_between_the_variants()
    {
        var items = new List<(EidPrefix Eid, HashPurpose Purpose)>();
        foreach (var line in File.ReadLines(TestFiles.Vector("decent-index.tsv")))
        {
            if (line.StartsWith('#') || line.Trim().Length == 0) continue;
            items.Add((EidPrefix.Parse(line.Split('\t')[3]), HashPurpose.Register));
        }
        items.Add((EidPrefix.Parse("[0](1.1.1.1/32, 224.1.1.1/32)"), HashPurpose.Register));
        foreach (var line in File.ReadLines(TestFiles.Vector("seed-map-requests.txt")))
        {
            if (line.StartsWith('#') || line.Trim().Length == 0) continue;
            Assert.True(ControlMessage.TryDecode(Convert.FromHexString(line.Split('\t')[4]), out var msg).IsOk);
            var req = (MapRequest)((EncapsulatedControlMessage)msg!).Message;
            items.Add((req.Records[0], HashPurpose.Lookup));
        }
        Assert.Equal(20, items.Count);

        var sha = new DecentHasher(new DecentHashOptions { Modulus = 4, SourceGroup = SourceGroupHashing.Source });
        var hmac = Hmac(4, SourceGroupHashing.Source);
        int differ = 0;
        foreach (var (eid, purpose) in items)
        {
            string text = sha.HashText(eid, purpose);
            Assert.Equal(text, hmac.HashText(eid, purpose));
            int a = sha.IndexOf(eid, purpose), b = hmac.IndexOf(eid, purpose);
            Assert.Equal(Oracle.Sha256(text, 4), a);
            Assert.Equal(Oracle.Hmac(text, 4), b);
            output.WriteLine($"{text,-32} sha256 {a}  hmac {b}{(a != b ? "  *" : "")}");
            if (a != b) differ++;
        }
        Assert.Equal(14, differ);
    }

    [Fact]
    public void Character_hash_mask_puts_the_spec_example_in_one_set()
    {
        var reg = EidPrefix.Parse("[0]240.0.1.0/24");
        var look = EidPrefix.Parse("[0]240.0.1.1/32");
        // Find moduli where the unmasked texts land apart, so the mask visibly matters.
        var apart = Enumerable.Range(2, 200).Where(m => Oracle.Sha256("[0]240.0.1.0/24", m) != Oracle.Sha256("[0]240.0.1.1/32", m)).ToList();
        Assert.NotEmpty(apart);
        foreach (int m in apart.Take(20))
        {
            var plain = new DecentHasher(new DecentHashOptions { Modulus = m });
            Assert.NotEqual(plain.IndexOf(reg), plain.IndexOf(look, HashPurpose.Lookup));
            var masked = new DecentHasher(new DecentHashOptions { Modulus = m, HashMask = 8 });
            Assert.Equal("[0]240.0", masked.HashText(reg));
            Assert.Equal("[0]240.0", masked.HashText(look, HashPurpose.Lookup));
            Assert.Equal(Oracle.Sha256("[0]240.0", m), masked.IndexOf(reg));
            Assert.Equal(masked.IndexOf(reg), masked.IndexOf(look, HashPurpose.Lookup));
        }
        // A mask longer than the text hashes the whole text.
        var longMask = new DecentHasher(new DecentHashOptions { Modulus = 4, HashMask = 100 });
        Assert.Equal("[0]1.1.1.1/32", longMask.HashText(EidPrefix.Parse("[0]1.1.1.1/32")));
        Assert.Equal(1, longMask.IndexOf(EidPrefix.Parse("[0]1.1.1.1/32")));
    }

    [Fact]
    public void Address_bit_lookup_length_masks_before_printing()
    {
        var rule24 = new DecentHasher(new DecentHashOptions { Modulus = 97, LookupLengths = [new LookupLengthRule(24)] });
        Assert.Equal("[0]240.0.1.0/24", rule24.HashText(EidPrefix.Parse("[0]240.0.1.1/32")));
        Assert.Equal("[0]240.0.1.0/24", rule24.HashText(EidPrefix.Parse("[0]240.0.1.0/24")));
        Assert.Equal("[0]240.0.1.0/24", rule24.HashText(EidPrefix.Parse("[0]240.0.1.128/25")));
        Assert.Equal("[0]240.0.0.0/16", rule24.HashText(EidPrefix.Parse("[0]240.0.0.0/16"))); // shorter: unchanged
        Assert.Equal(Oracle.Sha256("[0]240.0.1.0/24", 97), rule24.IndexOf(EidPrefix.Parse("[0]240.0.1.77/32")));
        // Non-IP EIDs are untouched.
        Assert.Equal("[0]'dino'", rule24.HashText(EidPrefix.Parse("[0]'dino'")));

        // 24 for IPv4 and 64 for IPv6 together.
        var both = new DecentHasher(new DecentHashOptions { Modulus = 4, LookupLengths = [new LookupLengthRule(24), new LookupLengthRule(64)] });
        Assert.Equal("[0]10.1.2.0/24", both.HashText(EidPrefix.Parse("[0]10.1.2.3/32")));
        Assert.Equal("[0]2001:db8:0:1::/64", both.HashText(EidPrefix.Parse("[0]2001:db8:0:1::5/128")));

        // Scoped to a prefix: only EIDs inside it are masked.
        var scoped = new DecentHasher(new DecentHashOptions
        {
            Modulus = 4,
            LookupLengths = [new LookupLengthRule(16, EidPrefix.Parse("[0]10.0.0.0/8")), new LookupLengthRule(28)],
        });
        Assert.Equal("[0]10.1.0.0/16", scoped.HashText(EidPrefix.Parse("[0]10.1.2.3/32")));
        Assert.Equal("[0]11.1.2.0/28", scoped.HashText(EidPrefix.Parse("[0]11.1.2.3/32")));
        Assert.Equal("[1]10.1.2.0/28", scoped.HashText(EidPrefix.Parse("[1]10.1.2.3/32"))); // other instance-id

        // Both masks: bits first, then characters.
        var combo = new DecentHasher(new DecentHashOptions { Modulus = 4, HashMask = 11, LookupLengths = [new LookupLengthRule(24)] });
        Assert.Equal("[0]240.0.1.", combo.HashText(EidPrefix.Parse("[0]240.0.1.9/32")));

        // (S,G) group mode: the group is masked too.
        var sg = new DecentHasher(new DecentHashOptions { Modulus = 4, LookupLengths = [new LookupLengthRule(24)] });
        Assert.Equal("[0]224.1.1.0/24", sg.HashText(EidPrefix.Parse("[0](1.1.1.1/32, 224.1.1.1/32)")));
    }

    [Fact]
    public void Host_bits_are_cleared_before_hashing()
    {
        var h = new DecentHasher(new DecentHashOptions { Modulus = 4 });
        Assert.Equal("[0]10.1.0.0/16", h.HashText(EidPrefix.Parse("[0]10.1.2.3/16")));
    }

    [Fact]
    public void Options_are_validated()
    {
        Assert.NotNull(new DecentHashOptions { Modulus = 0 }.Validate());
        Assert.NotNull(new DecentHashOptions { Modulus = 4, DigestBytes = 0 }.Validate());
        Assert.NotNull(new DecentHashOptions { Modulus = 4, DigestBytes = 33 }.Validate());
        Assert.NotNull(new DecentHashOptions { Modulus = 4, HashMask = -1 }.Validate());
        Assert.Null(new DecentHashOptions { Modulus = 4, DigestBytes = 32 }.Validate());
        Assert.Throws<ArgumentException>(() => new DecentHasher(new DecentHashOptions { Modulus = 0 }));
        Assert.True(DecentHashOptions.TryParseAlgorithm("HMAC-SHA256-LISP-DECENT", out var a) && a == DecentHashAlgorithm.HmacSha256);
        Assert.False(DecentHashOptions.TryParseAlgorithm("md5", out _));
        Assert.True(DecentHashOptions.TryParseSourceGroup("draft", out var d) && d == SourceGroupHashing.Draft);
        Assert.False(DecentHashOptions.TryParseSourceGroup("both", out _));
        Assert.Equal("3.ms.test", DecentIndex.NameFor(3, ".MS.test."));
    }

    [Fact]
    public void Index_equals_the_bigint_oracle_and_is_stable_for_random_text()
    {
        var gen = Gen.Select(Gen.String[Gen.Char.AlphaNumeric, 0, 80], Gen.Int[1, 100_000], Gen.Int[1, 32]);
        gen.Sample((text, m, w) =>
        {
            var sha = new DecentHasher(new DecentHashOptions { Modulus = m });
            var hmac = new DecentHasher(new DecentHashOptions { Modulus = m, Algorithm = DecentHashAlgorithm.HmacSha256, DigestBytes = w });
            int a = sha.IndexOfText(text);
            Assert.Equal(Oracle.Sha256(text, m), a);
            Assert.Equal(a, new DecentHasher(new DecentHashOptions { Modulus = m }).IndexOfText(text));
            Assert.InRange(a, 0, m - 1);
            Assert.Equal(Oracle.Hmac(text, m, w), hmac.IndexOfText(text));
        }, iter: 2000);
    }

    [Fact]
    public void Long_text_uses_the_pooled_buffer_path()
    {
        var text = "[0]'" + new string('x', 2000) + "'";
        var h = new DecentHasher(new DecentHashOptions { Modulus = 12345 });
        Assert.Equal(Oracle.Sha256(text, 12345), h.IndexOfText(text));
        Assert.Equal(Oracle.Sha256(text, 12345), h.IndexOf(EidPrefix.Parse(text)));
    }

    [Fact]
    public void Big_endian_mod_against_bigint()
    {
        Gen.Select(Gen.Byte.Array[0, 40], Gen.UInt[1, uint.MaxValue]).Sample((bytes, m) =>
        {
            var expected = new System.Numerics.BigInteger(bytes, isUnsigned: true, isBigEndian: true) % m;
            Assert.Equal((uint)expected, DecentHasher.BigEndianMod(bytes, m));
        }, iter: 5000);
    }

    [Theory]
    [InlineData(DecentHashAlgorithm.Sha256, 4)]
    [InlineData(DecentHashAlgorithm.Sha256, 16)]
    [InlineData(DecentHashAlgorithm.HmacSha256, 4)]
    [InlineData(DecentHashAlgorithm.HmacSha256, 16)]
    public void Distribution_of_100k_random_ipv4_eids(DecentHashAlgorithm algorithm, int modulus)
    {
        const int n = 100_000;
        var h = new DecentHasher(new DecentHashOptions { Modulus = modulus, Algorithm = algorithm });
        var rnd = new Random(9962);
        var buckets = new int[modulus];
        Span<byte> a = stackalloc byte[4];
        for (int i = 0; i < n; i++)
        {
            rnd.NextBytes(a);
            var eid = EidPrefix.Create(0, new IpAddress(new IPAddress(a)), 32);
            buckets[h.IndexOf(eid)]++;
        }
        double mean = (double)n / modulus;
        double worst = buckets.Max(b => Math.Abs(b - mean)) / mean * 100;
        output.WriteLine($"{DecentHashOptions.AlgorithmToName(algorithm)} mod {modulus}, {n} random [0]a.b.c.d/32: " +
            string.Join(" ", buckets.Select((b, i) => $"{i}:{b}")) + $"  (mean {mean:0}, worst {worst:0.00}% off)");
        foreach (var b in buckets) Assert.InRange(b, mean * 0.95, mean * 1.05);
    }
}
