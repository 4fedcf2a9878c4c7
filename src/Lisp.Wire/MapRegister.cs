using Lisp.Wire.Crypto;

namespace Lisp.Wire;

/// <summary>Authentication algorithms of Map-Register/Map-Notify (RFC 9301 section 5.6).</summary>
public enum AuthAlgorithm : byte
{
    None = 0,
    HmacSha1_96 = 1,
    HmacSha256_128 = 2,
}

/// <summary>
/// A registration key made ready for both Map-Register algorithms (<see cref="HmacKey"/>: the HMAC key blocks are
/// hashed once here, not per message). Whoever owns a site's or an xTR's key keeps one of these beside it.
/// </summary>
public sealed class AuthenticationKey
{
    private readonly HmacKey _sha1, _sha256;

    public AuthenticationKey(ReadOnlySpan<byte> key)
    {
        _sha1 = HmacKey.Sha1(key);
        _sha256 = HmacKey.Sha256(key);
    }

    internal bool TryGet(AuthAlgorithm algorithm, out HmacKey key)
    {
        switch (algorithm)
        {
            case AuthAlgorithm.HmacSha1_96: key = _sha1; return true;
            case AuthAlgorithm.HmacSha256_128: key = _sha256; return true;
            default: key = default; return false;
        }
    }
}

/// <summary>
/// HMAC over a whole Map-Register/Map-Notify with its Authentication Data field zeroed (RFC 9301 5.6).
/// We emit the full HMAC output (20 bytes SHA-1, 32 bytes SHA-256) as lispers.net and tshark expect, and
/// accept the truncated 12/16-byte forms the algorithm names suggest. The HMAC is Lisp.Wire.Crypto's (no OpenSSL);
/// the <see cref="AuthenticationKey"/> overloads skip the per-message key set-up.
/// </summary>
public static class MessageAuthentication
{
    /// <summary>Offset of the Authentication Data inside a Map-Register/Map-Notify: word 0, nonce, key/alg/len.</summary>
    public const int AuthDataOffset = 16;

    public static int FullLength(AuthAlgorithm a) => a switch
    {
        AuthAlgorithm.HmacSha1_96 => 20,
        AuthAlgorithm.HmacSha256_128 => 32,
        _ => 0,
    };

    public static bool IsAcceptedLength(AuthAlgorithm a, int length) => a switch
    {
        AuthAlgorithm.HmacSha1_96 => length is 20 or 12,
        AuthAlgorithm.HmacSha256_128 => length is 32 or 16,
        AuthAlgorithm.None => true,
        _ => false,
    };

    /// <summary>Fills the Authentication Data of an encoded message in place with its HMAC.</summary>
    public static void Sign(Span<byte> message, AuthAlgorithm algorithm, ReadOnlySpan<byte> key)
    {
        if (TryPrepare(algorithm, key, out var k)) Sign(message, k);
        else Field(message).Clear();   // no MAC for None or an unknown algorithm: the field stays zero
    }

    /// <summary>Fills the Authentication Data of an encoded message in place with its HMAC.</summary>
    public static void Sign(Span<byte> message, AuthAlgorithm algorithm, AuthenticationKey key)
    {
        if (key.TryGet(algorithm, out var k)) Sign(message, k);
        else Field(message).Clear();
    }

    private static Span<byte> Field(Span<byte> message) => message.Slice(AuthDataOffset, (message[14] << 8) | message[15]);

    private static void Sign(Span<byte> message, in HmacKey key)
    {
        var field = Field(message);
        int len = field.Length;
        field.Clear();
        Span<byte> mac = stackalloc byte[32];
        int n = key.Compute(message, mac);
        mac.Slice(0, Math.Min(n, len)).CopyTo(field);
    }

    /// <summary>
    /// Verifies the HMAC of a received message (fixed-time compare). False for a wrong key, an unknown
    /// algorithm, a length that does not fit the algorithm, or a message too short to hold the field.
    /// </summary>
    public static bool Verify(ReadOnlySpan<byte> message, ReadOnlySpan<byte> key)
    {
        if (message.Length < AuthDataOffset) return false;
        return TryPrepare((AuthAlgorithm)message[13], key, out var k) && Verify(message, k);
    }

    /// <inheritdoc cref="Verify(ReadOnlySpan{byte}, ReadOnlySpan{byte})"/>
    public static bool Verify(ReadOnlySpan<byte> message, AuthenticationKey key)
    {
        if (message.Length < AuthDataOffset) return false;
        return key.TryGet((AuthAlgorithm)message[13], out var k) && Verify(message, k);
    }

    private static bool Verify(ReadOnlySpan<byte> message, in HmacKey key)
    {
        var algorithm = (AuthAlgorithm)message[13];
        int len = (message[14] << 8) | message[15];
        if (!IsAcceptedLength(algorithm, len) || message.Length < AuthDataOffset + len) return false;
        // The HMAC covers the message with its Authentication Data zeroed: the field is fed as zeros, so the
        // received bytes need no copy.
        var h = key.Start();
        h.Append(message.Slice(0, AuthDataOffset));
        h.AppendZeros(len);
        h.Append(message.Slice(AuthDataOffset + len));
        Span<byte> mac = stackalloc byte[32];
        int n = h.Finish(mac);
        return n >= len && FixedTime.AreEqual(mac.Slice(0, len), message.Slice(AuthDataOffset, len));
    }

    /// <summary>A one-off key for <paramref name="algorithm"/> (the key blocks hashed for this message only).</summary>
    private static bool TryPrepare(AuthAlgorithm algorithm, ReadOnlySpan<byte> key, out HmacKey k)
    {
        switch (algorithm)
        {
            case AuthAlgorithm.HmacSha1_96: k = HmacKey.Sha1(key); return true;
            case AuthAlgorithm.HmacSha256_128: k = HmacKey.Sha256(key); return true;
            default: k = default; return false;
        }
    }
}

/// <summary>
/// Shared body of Map-Register (type 3), Map-Notify (type 4) and Map-Notify-Ack (type 5), RFC 9301 5.6-5.7:
/// <code>
/// |Type=3 |P|S|I|        Reserved           |R|T|a|m|M| Record Count  |   (Map-Register)
/// |Type=4 |I|R|          Reserved                     | Record Count  |   (Map-Notify / -Ack)
/// |                         Nonce . . .                           |
/// |                         . . . Nonce                           |
/// |    Key ID     | Algorithm ID  |  Authentication Data Length   |
/// |                     Authentication Data ...                   |
/// |                Record Count x mapping record                  |
/// |            xTR-ID (128) and Site-ID (64), when I              |
/// </code>
/// Key ID and Algorithm ID are two bytes: we always emit Key ID 0 so parsers that read the pair as one
/// 16-bit key-id (RFC 6830 layout) see the algorithm number as the key-id and still agree with us.
/// </summary>
public abstract record AuthenticatedMessage : ControlMessage
{
    public ulong Nonce { get; init; }
    public byte KeyId { get; init; }
    public AuthAlgorithm Algorithm { get; init; } = AuthAlgorithm.HmacSha256_128;
    /// <summary>As received, or zeros of the algorithm's full length until <see cref="ToSignedBytes"/> fills it.</summary>
    public byte[]? AuthData { get; init; }
    public IReadOnlyList<MappingRecord> Records { get; init; } = [];
    public byte[]? XtrId { get; init; }
    public ulong SiteId { get; init; }
    public bool XtrIdPresent => XtrId is not null;

    protected int AuthLength => AuthData?.Length ?? MessageAuthentication.FullLength(Algorithm);

    public override int EncodedLength => 16 + AuthLength + Records.Sum(r => r.EncodedLength) + (XtrIdPresent ? 24 : 0);

    protected abstract void WriteWord0(ref SpanWriter w);

    public override void Write(ref SpanWriter w)
    {
        WriteWord0(ref w);
        w.U64(Nonce);
        w.U8(KeyId);
        w.U8((byte)Algorithm);
        w.U16((ushort)AuthLength);
        if (AuthData is not null) w.Bytes(AuthData); else w.Zeros(AuthLength);
        foreach (var r in Records) r.Write(ref w);
        if (XtrId is not null)
        {
            w.Bytes(XtrId);
            w.U64(SiteId);
        }
    }

    /// <summary>Encodes and signs with <paramref name="key"/> (no-op signature for algorithm None).</summary>
    public byte[] ToSignedBytes(ReadOnlySpan<byte> key)
    {
        var bytes = (this with { AuthData = null }).ToBytes();
        if (Algorithm != AuthAlgorithm.None) MessageAuthentication.Sign(bytes, Algorithm, key);
        return bytes;
    }

    /// <summary>Encodes and signs with a prepared <paramref name="key"/> (no-op signature for algorithm None).</summary>
    public byte[] ToSignedBytes(AuthenticationKey key)
    {
        var bytes = (this with { AuthData = null }).ToBytes();
        if (Algorithm != AuthAlgorithm.None) MessageAuthentication.Sign(bytes, Algorithm, key);
        return bytes;
    }

    protected record struct Common(ulong Nonce, byte KeyId, AuthAlgorithm Algorithm, byte[] AuthData, List<MappingRecord> Records, byte[]? XtrId, ulong SiteId,
        bool TrailerWithoutIBit = false);

    /// <param name="trailerWithoutIBit">
    /// With the I bit clear, read exactly 24 bytes left after the records as xTR-ID + site-ID (the lispers.net
    /// Map-Notify layout) instead of refusing them; any other number of left-over bytes stays an error.
    /// </param>
    protected static Common? ReadCommon(ref SpanReader r, int recordCount, bool xtrIdPresent, bool trailerWithoutIBit = false)
    {
        ulong nonce = r.U64("nonce");
        byte keyId = r.U8("key id");
        byte alg = r.U8("algorithm id");
        ushort authLen = r.U16("authentication data length");
        var auth = r.Bytes(authLen, "authentication data").ToArray();
        if (!r.Ok) return null;
        if (!MessageAuthentication.IsAcceptedLength((AuthAlgorithm)alg, authLen) && alg <= 2)
        {
            r.Fail(WireError.BadLength, $"authentication data length {authLen} does not fit algorithm {alg}");
            return null;
        }
        CheckCount(ref r, recordCount, 12, "mapping record");
        var records = new List<MappingRecord>(recordCount);
        for (int i = 0; i < recordCount && r.Ok; i++)
        {
            var rec = MappingRecord.Read(ref r);
            if (rec is null) return null;
            records.Add(rec);
        }
        byte[]? xtrId = null;
        ulong siteId = 0;
        bool quirk = false;
        if (xtrIdPresent)
        {
            xtrId = r.Bytes(16, "xTR-ID (I bit set)").ToArray();
            siteId = r.U64("site-ID (I bit set)");
        }
        else if (trailerWithoutIBit && r.Ok && r.Remaining == 24)
        {
            xtrId = r.Bytes(16, "xTR-ID (I bit clear)").ToArray();
            siteId = r.U64("site-ID (I bit clear)");
            quirk = true;
        }
        if (!r.Ok) return null;
        return new Common(nonce, keyId, (AuthAlgorithm)alg, auth, records, xtrId, siteId, quirk);
    }
}

/// <summary>Map-Register (type 3). P = want proxy Map-Reply, S = LISP-SEC, I = xTR-ID/site-ID present, M = want Map-Notify.</summary>
public sealed record MapRegister : AuthenticatedMessage
{
    public override MessageType Type => MessageType.MapRegister;
    public bool ProxyReply { get; init; }
    public bool LispSec { get; init; }
    /// <summary>lispers.net: R refresh (0x10), T use record TTL as timeout (0x08), a merge (0x04), m mobile (0x02).</summary>
    public bool Refresh { get; init; }
    public bool UseTtlForTimeout { get; init; }
    public bool Merge { get; init; }
    public bool MobileNode { get; init; }
    public bool WantMapNotify { get; init; }
    /// <summary>
    /// Word-0 bits we give no meaning, kept as received so decode -> encode is exact: byte 0 bit 0x01 (in bit 16),
    /// byte 1 (bits 8-15) and byte 2 bits 0xe0.
    /// </summary>
    public uint ReservedBits { get; init; }

    protected override void WriteWord0(ref SpanWriter w)
    {
        w.U8((byte)(0x30 | (ProxyReply ? 8 : 0) | (LispSec ? 4 : 0) | (XtrIdPresent ? 2 : 0) | (int)((ReservedBits >> 16) & 1)));
        w.U8((byte)(ReservedBits >> 8));
        w.U8((byte)((int)(ReservedBits & 0xe0) | (Refresh ? 0x10 : 0) | (UseTtlForTimeout ? 8 : 0) | (Merge ? 4 : 0) | (MobileNode ? 2 : 0) | (WantMapNotify ? 1 : 0)));
        w.U8((byte)Records.Count);
    }

    internal static MapRegister? Read(ref SpanReader r)
    {
        byte b0 = r.U8("flags");
        byte b1 = r.U8("reserved");
        byte b2 = r.U8("flags");
        byte count = r.U8("record count");
        var c = ReadCommon(ref r, count, (b0 & 2) != 0);
        if (c is not { } x) return null;
        return new MapRegister
        {
            ProxyReply = (b0 & 8) != 0, LispSec = (b0 & 4) != 0,
            ReservedBits = (uint)((b0 & 1) << 16 | b1 << 8 | (b2 & 0xe0)),
            Refresh = (b2 & 0x10) != 0, UseTtlForTimeout = (b2 & 8) != 0, Merge = (b2 & 4) != 0,
            MobileNode = (b2 & 2) != 0, WantMapNotify = (b2 & 1) != 0,
            Nonce = x.Nonce, KeyId = x.KeyId, Algorithm = x.Algorithm, AuthData = x.AuthData,
            Records = x.Records, XtrId = x.XtrId, SiteId = x.SiteId,
        };
    }
}
