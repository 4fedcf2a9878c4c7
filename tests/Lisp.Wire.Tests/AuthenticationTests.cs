using System.Security.Cryptography;
using System.Text;
using Lisp.Wire;
using Xunit;
using static Lisp.Wire.Tests.TestData;

namespace Lisp.Wire.Tests;

/// <summary>
/// Map-Register / Map-Notify authentication and the interop choices of spec/wire.md: Key ID 0 then Algorithm ID
/// 1 or 2 (bytes 12 and 13), full-length HMAC (20 / 32 bytes) over the whole message with the field zeroed.
/// Expected HMACs are computed here with System.Security.Cryptography over hand-assembled bytes.
/// </summary>
public class AuthenticationTests
{
    private static readonly byte[] Key = Encoding.ASCII.GetBytes("password");

    // Map-Register, M set, 1 record: [0]1.1.1.1/32 TTL 3 min, A, locator 192.0.2.1 prio 1 weight 100 R.
    private const string Records = "00000003 01 20 1000 0000 0001 01010101 | 01 64 ff 00 0001 0001 c0000201";

    private static byte[] HandAssembled(string word0, int alg, int authLen) =>
        Hex(word0 + " | 0000000000abcdef | 00 " + alg.ToString("x2", System.Globalization.CultureInfo.InvariantCulture) + " " +
            authLen.ToString("x4", System.Globalization.CultureInfo.InvariantCulture) + new string('0', authLen * 2) + " | " + Records);

    private static byte[] HandSigned(string word0, int alg, int authLen)
    {
        var bytes = HandAssembled(word0, alg, authLen);
        byte[] mac = alg == 1 ? HMACSHA1.HashData(Key, bytes) : HMACSHA256.HashData(Key, bytes);
        mac.AsSpan(0, authLen).CopyTo(bytes.AsSpan(16));
        return bytes;
    }

    private static MapRegister Register(AuthAlgorithm alg) => new()
    {
        WantMapNotify = true, Nonce = 0xabcdef, KeyId = 0, Algorithm = alg,
        Records = [new MappingRecord(EidPrefix.Parse("1.1.1.1/32"), [new LocatorRecord(Addr("192.0.2.1"))], 3)],
    };

    [Theory]
    [InlineData(AuthAlgorithm.HmacSha1_96, 20)]
    [InlineData(AuthAlgorithm.HmacSha256_128, 32)]
    public void We_emit_key_id_0_then_the_algorithm_and_the_full_hmac(AuthAlgorithm alg, int length)
    {
        var signed = Register(alg).ToSignedBytes(Key);
        Assert.Equal(0, signed[12]);
        Assert.Equal((byte)alg, signed[13]);
        Assert.Equal(length, signed[14] << 8 | signed[15]);
        // Byte for byte what an independent HMAC over the hand-assembled message gives.
        Assert.Equal(ToHex(HandSigned("30 00 01 01", (int)alg, length)), ToHex(signed));
        Assert.True(MessageAuthentication.Verify(signed, Key));
    }

    [Theory]
    [InlineData(1, 20)]
    [InlineData(2, 32)]
    [InlineData(1, 12)] // HMAC-SHA-1-96 truncated form, accepted on receive
    [InlineData(2, 16)] // HMAC-SHA-256-128 truncated form
    public void Verify_accepts_a_hand_signed_message_and_rejects_a_wrong_key_or_a_changed_byte(int alg, int length)
    {
        var signed = HandSigned("30 00 01 01", alg, length);
        Assert.True(MessageAuthentication.Verify(signed, Key));
        Assert.False(MessageAuthentication.Verify(signed, Encoding.ASCII.GetBytes("passwore")));
        Assert.False(MessageAuthentication.Verify(signed, []));
        var changed = (byte[])signed.Clone();
        changed[^1] ^= 1; // the locator address
        Assert.False(MessageAuthentication.Verify(changed, Key));
        var changedAuth = (byte[])signed.Clone();
        changedAuth[16] ^= 0x80;
        Assert.False(MessageAuthentication.Verify(changedAuth, Key));
        // The decoded message keeps the auth data it came with and re-encodes to the same signed bytes.
        var m = Decode<MapRegister>(signed);
        Assert.Equal(ToHex(signed.AsSpan(16, length)), ToHex(m.AuthData));
        Assert.Equal(ToHex(signed), ToHex(m.ToBytes()));
    }

    [Fact]
    public void Map_notify_and_ack_are_signed_the_same_way()
    {
        var notify = new MapNotify { Nonce = 0xabcdef, Algorithm = AuthAlgorithm.HmacSha256_128, Records = Register(AuthAlgorithm.None).Records };
        Assert.Equal(ToHex(HandSigned("40 00 00 01", 2, 32)), ToHex(notify.ToSignedBytes(Key)));
        var ack = notify with { IsAck = true, Algorithm = AuthAlgorithm.HmacSha1_96 };
        var signedAck = ack.ToSignedBytes(Key);
        Assert.Equal(ToHex(HandSigned("50 00 00 01", 1, 20)), ToHex(signedAck));
        Assert.True(MessageAuthentication.Verify(signedAck, Key));
    }

    [Fact]
    public void Truncated_auth_field_fails_verify_and_decode()
    {
        var signed = HandSigned("30 00 01 01", 2, 32);
        foreach (int cut in new[] { 15, 16, 20, 47 })
        {
            var shortMsg = signed.AsSpan(0, cut).ToArray();
            Assert.False(MessageAuthentication.Verify(shortMsg, Key));
            var st = ControlMessage.TryDecode(shortMsg, out var m);
            Assert.Null(m);
            Assert.Equal(WireError.Truncated, st.Error);
        }
        // A length that fits neither the full nor the truncated HMAC size of the algorithm.
        var odd = HandAssembled("30 00 01 01", 1, 19);
        Assert.False(MessageAuthentication.Verify(odd, Key));
        var st2 = ControlMessage.TryDecode(odd, out _);
        Assert.Equal(WireError.BadLength, st2.Error);
        Assert.Contains("authentication data length 19", st2.Detail, StringComparison.Ordinal);
        // Algorithm 0 (none) never verifies.
        Assert.False(MessageAuthentication.Verify(HandAssembled("30 00 01 01", 0, 0), Key));
    }

    [Fact]
    public void Sign_then_verify_over_the_whole_message_including_xtr_id()
    {
        var reg = Register(AuthAlgorithm.HmacSha256_128) with { XtrId = new byte[16], SiteId = 7 };
        var signed = reg.ToSignedBytes(Key);
        Assert.True(MessageAuthentication.Verify(signed, Key));
        signed[^1] ^= 1; // site-ID is covered too
        Assert.False(MessageAuthentication.Verify(signed, Key));
    }

    [Theory]
    [InlineData("0006")]
    [InlineData("4005")]
    public void Mac_eids_are_accepted_as_afi_6_or_16389(string afi)
    {
        // A Map-Register for MAC EID 0000-1111-2222/48 as lispers.net (AFI 6) or IANA (AFI 16389) writes it.
        var bytes = Hex("30 00 01 01 | 0000000000000001 | 00 01 0014 " + new string('0', 40) + " | 00000003 01 30 1000 0000 " +
                        afi + " 000011112222 | 01 64 ff 00 0001 0001 c0000201");
        MessageAuthentication.Sign(bytes, AuthAlgorithm.HmacSha1_96, Key);
        Assert.True(MessageAuthentication.Verify(bytes, Key));
        var m = Decode<MapRegister>(bytes);
        var eid = Assert.Single(m.Records).Eid;
        Assert.Equal("[0]0000-1111-2222/48", eid.ToString());
        Assert.Equal(Convert.ToUInt16(afi, 16), eid.Address.Afi);
        Assert.True(EidPrefix.Parse("0000-1111-2222/48").SameKey(eid)); // same EID whichever AFI it came with
        Assert.Equal(ToHex(bytes), ToHex(m.ToBytes()));
    }

    [Theory]
    [InlineData(AuthAlgorithm.HmacSha1_96, 20)]
    [InlineData(AuthAlgorithm.HmacSha256_128, 32)]
    [InlineData(AuthAlgorithm.HmacSha1_96, 12)]
    [InlineData(AuthAlgorithm.HmacSha256_128, 16)]
    public void A_prepared_AuthenticationKey_signs_and_verifies_exactly_as_the_raw_key(AuthAlgorithm alg, int length)
    {
        var prepared = new AuthenticationKey(Key);
        Assert.Equal(ToHex(Register(alg).ToSignedBytes(Key)), ToHex(Register(alg).ToSignedBytes(prepared)));
        var signed = HandSigned("30 00 01 01", (int)alg, length);
        Assert.True(MessageAuthentication.Verify(signed, prepared));
        Assert.False(MessageAuthentication.Verify(signed, new AuthenticationKey(Encoding.ASCII.GetBytes("passwore"))));
        var resigned = (byte[])signed.Clone();
        MessageAuthentication.Sign(resigned, alg, prepared);
        Assert.Equal(ToHex(signed), ToHex(resigned));
        signed[^1] ^= 1;
        Assert.False(MessageAuthentication.Verify(signed, prepared));
    }
}
