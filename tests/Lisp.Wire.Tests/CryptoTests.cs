using System.Security.Cryptography;
using System.Text;
using Lisp.Wire.Crypto;
using Xunit;

namespace Lisp.Wire.Tests;

/// <summary>
/// Lisp.Wire.Crypto against the published vectors (FIPS 180 examples, RFC 4231, RFC 2202) and, for random inputs,
/// against System.Security.Cryptography as an independent oracle (the tests may use it; the appliance does not).
/// </summary>
public class CryptoTests
{
    private static byte[] Ascii(string s) => Encoding.ASCII.GetBytes(s);
    private static byte[] Fill(byte b, int n) => Enumerable.Repeat(b, n).ToArray();
    private static byte[] Range(int from, int to) => Enumerable.Range(from, to - from + 1).Select(i => (byte)i).ToArray();

    private const string Msg448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    private const string Msg896 = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";

    private static string Sha256Hex(ReadOnlySpan<byte> data)
    {
        Span<byte> d = stackalloc byte[32];
        Assert.Equal(32, Lisp.Wire.Crypto.Sha256.HashData(data, d));
        return Convert.ToHexStringLower(d);
    }

    private static string Sha1Hex(ReadOnlySpan<byte> data)
    {
        Span<byte> d = stackalloc byte[20];
        Assert.Equal(20, Lisp.Wire.Crypto.Sha1.HashData(data, d));
        return Convert.ToHexStringLower(d);
    }

    [Theory]
    [InlineData("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")]
    [InlineData("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")]
    [InlineData(Msg448, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")]
    [InlineData(Msg896, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1")]
    public void Sha256_fips_180_examples(string message, string digest) => Assert.Equal(digest, Sha256Hex(Ascii(message)));

    [Theory]
    [InlineData("abc", "a9993e364706816aba3e25717850c26c9cd0d89d")]
    [InlineData("", "da39a3ee5e6b4b0d3255bfef95601890afd80709")]
    [InlineData(Msg448, "84983e441c3bd26ebaae4aa1f95129e5e54670f1")]
    [InlineData(Msg896, "a49b2446a02c645bf419f995b67091253a04a259")]
    public void Sha1_fips_180_examples(string message, string digest) => Assert.Equal(digest, Sha1Hex(Ascii(message)));

    [Fact]
    public void One_million_a_one_shot_and_in_uneven_pieces()
    {
        var million = Fill((byte)'a', 1_000_000);
        Assert.Equal("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0", Sha256Hex(million));
        Assert.Equal("34aa973cd4c4daa4f61eeb2bdbad27316534016f", Sha1Hex(million));
        var h256 = new Lisp.Wire.Crypto.Sha256();
        var h1 = new Lisp.Wire.Crypto.Sha1();
        for (int at = 0, step = 1; at < million.Length; at += step, step = step * 7 % 997 + 1)
        {
            var piece = million.AsSpan(at, Math.Min(step, million.Length - at));
            h256.Append(piece);
            h1.Append(piece);
        }
        var d = new byte[32];
        h256.Finish(d);
        Assert.Equal("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0", Convert.ToHexStringLower(d));
        h1.Finish(d);
        Assert.Equal("34aa973cd4c4daa4f61eeb2bdbad27316534016f", Convert.ToHexStringLower(d.AsSpan(0, 20)));
        // Finish resets: the same instance hashes the next message from scratch.
        h256.Append(Ascii("abc"));
        h256.Finish(d);
        Assert.Equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", Convert.ToHexStringLower(d));
    }

    public static TheoryData<byte[], byte[], string> Rfc4231 => new()
    {
        { Fill(0x0b, 20), Ascii("Hi There"), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7" },
        { Ascii("Jefe"), Ascii("what do ya want for nothing?"), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843" },
        { Fill(0xaa, 20), Fill(0xdd, 50), "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe" },
        { Range(1, 25), Fill(0xcd, 50), "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b" },
        { Fill(0x0c, 20), Ascii("Test With Truncation"), "a3b6167473100ee06e0c796c2955552b" },   // test case 5: 128-bit truncation
        { Fill(0xaa, 131), Ascii("Test Using Larger Than Block-Size Key - Hash Key First"), "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54" },
        { Fill(0xaa, 131), Ascii("This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm."),
          "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2" },
    };

    [Theory]
    [MemberData(nameof(Rfc4231))]
    public void Hmac_sha256_rfc_4231_test_cases_1_to_7(byte[] key, byte[] data, string mac)
    {
        var full = new byte[32];
        Assert.Equal(32, HmacKey.Sha256(key).Compute(data, full));
        Assert.Equal(mac, Convert.ToHexStringLower(full.AsSpan(0, mac.Length / 2)));
    }

    public static TheoryData<byte[], byte[], string> Rfc2202 => new()
    {
        { Fill(0x0b, 20), Ascii("Hi There"), "b617318655057264e28bc0b6fb378c8ef146be00" },
        { Ascii("Jefe"), Ascii("what do ya want for nothing?"), "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79" },
        { Fill(0xaa, 20), Fill(0xdd, 50), "125d7342b9ac11cd91a39af48aa17b4f63f175d3" },
        { Range(1, 25), Fill(0xcd, 50), "4c9007f4026250c6bc8414f9bf50c86c2d7235da" },
        { Fill(0x0c, 20), Ascii("Test With Truncation"), "4c1a03424b55e07fe7f27be1d58bb9324a9a5a04" },
        { Fill(0xaa, 80), Ascii("Test Using Larger Than Block-Size Key - Hash Key First"), "aa4ae5e15272d00e95705637ce8a3b55ed402112" },
        { Fill(0xaa, 80), Ascii("Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data"), "e8e99d0f45237d786d6bbaa7965c7808bbff1a91" },
    };

    [Theory]
    [MemberData(nameof(Rfc2202))]
    public void Hmac_sha1_rfc_2202_test_cases(byte[] key, byte[] data, string mac)
    {
        var full = new byte[20];
        Assert.Equal(20, HmacKey.Sha1(key).Compute(data, full));
        Assert.Equal(mac, Convert.ToHexStringLower(full));
    }

    /// <summary>
    /// Every message length 0..300 (all padding cases: length field in the last block or in one more), a random key
    /// of 0..200 bytes (keys over 64 bytes are hashed first), fed whole and in pieces split at random points, with a
    /// stretch of the message also fed as AppendZeros: equal to System.Security.Cryptography's digest and HMAC.
    /// </summary>
    [Fact]
    public void Random_messages_and_keys_agree_with_system_security_cryptography()
    {
        var rng = new Random(20261207);
        Span<byte> ours = stackalloc byte[32];
        for (int len = 0; len <= 300; len++)
        {
            for (int trial = 0; trial < 4; trial++)
            {
                var msg = new byte[len];
                rng.NextBytes(msg);
                var key = new byte[rng.Next(0, 201)];
                rng.NextBytes(key);
                string ctx = $"len {len} key {key.Length}";

                Lisp.Wire.Crypto.Sha256.HashData(msg, ours);
                Assert.True(SHA256.HashData(msg).AsSpan().SequenceEqual(ours), "SHA-256 " + ctx);
                Lisp.Wire.Crypto.Sha1.HashData(msg, ours);
                Assert.True(SHA1.HashData(msg).AsSpan().SequenceEqual(ours[..20]), "SHA-1 " + ctx);

                var k256 = HmacKey.Sha256(key);
                var k1 = HmacKey.Sha1(key);
                k256.Compute(msg, ours);
                Assert.True(HMACSHA256.HashData(key, msg).AsSpan().SequenceEqual(ours), "HMAC-SHA-256 " + ctx);
                k1.Compute(msg, ours);
                Assert.True(HMACSHA1.HashData(key, msg).AsSpan().SequenceEqual(ours[..20]), "HMAC-SHA-1 " + ctx);

                // Incremental, split at random points (empty pieces included).
                var s256 = new Lisp.Wire.Crypto.Sha256();
                var h256 = k256.Start();
                var h1 = k1.Start();
                int at = 0;
                while (at < len)
                {
                    int n = rng.Next(0, Math.Min(len - at, 130) + 1);
                    var piece = msg.AsSpan(at, n);
                    s256.Append(piece);
                    h256.Append(piece);
                    h1.Append(piece);
                    at += n;
                }
                s256.Finish(ours);
                Assert.True(SHA256.HashData(msg).AsSpan().SequenceEqual(ours), "incremental SHA-256 " + ctx);
                h256.Finish(ours);
                Assert.True(HMACSHA256.HashData(key, msg).AsSpan().SequenceEqual(ours), "incremental HMAC-SHA-256 " + ctx);
                h1.Finish(ours);
                Assert.True(HMACSHA1.HashData(key, msg).AsSpan().SequenceEqual(ours[..20]), "incremental HMAC-SHA-1 " + ctx);

                // A random stretch of zeros fed as AppendZeros (how Authentication Data is covered on verify).
                int z0 = rng.Next(0, len + 1), zn = rng.Next(0, len - z0 + 1);
                msg.AsSpan(z0, zn).Clear();
                var hz = k256.Start();
                hz.Append(msg.AsSpan(0, z0));
                hz.AppendZeros(zn);
                hz.Append(msg.AsSpan(z0 + zn));
                hz.Finish(ours);
                Assert.True(HMACSHA256.HashData(key, msg).AsSpan().SequenceEqual(ours), $"AppendZeros({z0}, {zn}) " + ctx);
            }
        }
    }

    [Fact]
    public void A_mac_with_a_prepared_key_allocates_nothing()
    {
        var key = HmacKey.Sha256(Ascii("site key"));
        var key1 = HmacKey.Sha1(Ascii("site key"));
        var msg = new byte[300];
        new Random(1).NextBytes(msg);
        Span<byte> mac = stackalloc byte[32];
        Span<byte> other = stackalloc byte[32];
        key.Compute(msg, mac);   // warm up (JIT tiering, statics)
        key1.Compute(msg, mac);
        Lisp.Wire.Crypto.Sha256.HashData(msg, mac);
        FixedTime.AreEqual(mac, other);
        long before = GC.GetAllocatedBytesForCurrentThread();
        bool same = true;
        for (int i = 0; i < 1000; i++)
        {
            key.Compute(msg.AsSpan(0, i % 301), mac);
            key1.Compute(msg, other);
            var h = key.Start();
            h.Append(msg.AsSpan(0, 16));
            h.AppendZeros(32);
            h.Append(msg.AsSpan(48));
            h.Finish(other);
            Lisp.Wire.Crypto.Sha256.HashData(msg, other);
            same &= !FixedTime.AreEqual(mac, other);
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(0, allocated);
        Assert.True(same);
    }

    [Fact]
    public void Fixed_time_compare()
    {
        Assert.True(FixedTime.AreEqual([], []));
        Assert.True(FixedTime.AreEqual([1, 2, 3], [1, 2, 3]));
        Assert.False(FixedTime.AreEqual([1, 2, 3], [1, 2, 4]));
        Assert.False(FixedTime.AreEqual([0, 2, 3], [1, 2, 3]));
        Assert.False(FixedTime.AreEqual([1, 2, 3], [1, 2]));
    }

    [Fact]
    public void A_default_key_is_refused_rather_than_used()
    {
        var mac = new byte[32];
        Assert.Throws<InvalidOperationException>(() => default(HmacKey).Compute([1, 2, 3], mac));
    }
}
