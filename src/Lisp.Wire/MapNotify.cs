namespace Lisp.Wire;

/// <summary>
/// Map-Notify (type 4) or, with <see cref="IsAck"/>, Map-Notify-Ack (type 5). I = xTR-ID present, R = built by a
/// map-server for a merged registration. See <see cref="XtrIdTrailerWithoutIBit"/> for the lispers.net layout.
/// </summary>
public sealed record MapNotify : AuthenticatedMessage
{
    public bool IsAck { get; init; }
    public bool Rebuilt { get; init; }
    /// <summary>The 18 reserved bits of word 0 (after I and R), kept as received so decode -> encode is exact.</summary>
    public uint ReservedBits { get; init; }
    /// <summary>
    /// The xTR-ID and site-ID follow the records while the I bit is clear: how lispers.net answers a Map-Register
    /// that had the I bit. Decoded from a Map-Notify (type 4) with exactly 24 bytes after its records; encoding
    /// keeps the I bit clear so the bytes (and the HMAC over them) come out as received.
    /// </summary>
    public bool XtrIdTrailerWithoutIBit { get; init; }

    public override MessageType Type => IsAck ? MessageType.MapNotifyAck : MessageType.MapNotify;

    protected override void WriteWord0(ref SpanWriter w)
    {
        w.U8((byte)(((byte)Type << 4) | (XtrIdPresent && !XtrIdTrailerWithoutIBit ? 8 : 0) | (Rebuilt ? 4 : 0) | (int)((ReservedBits >> 16) & 3)));
        w.U16((ushort)ReservedBits);
        w.U8((byte)Records.Count);
    }

    internal static MapNotify? Read(ref SpanReader r)
    {
        byte b0 = r.U8("flags");
        ushort reserved = r.U16("reserved");
        byte count = r.U8("record count");
        bool isAck = (b0 >> 4) == (int)MessageType.MapNotifyAck;
        var c = ReadCommon(ref r, count, (b0 & 8) != 0, trailerWithoutIBit: !isAck);
        if (c is not { } x) return null;
        return new MapNotify
        {
            XtrIdTrailerWithoutIBit = x.TrailerWithoutIBit,
            IsAck = isAck, Rebuilt = (b0 & 4) != 0,
            ReservedBits = (uint)((b0 & 3) << 16 | reserved),
            Nonce = x.Nonce, KeyId = x.KeyId, Algorithm = x.Algorithm, AuthData = x.AuthData,
            Records = x.Records, XtrId = x.XtrId, SiteId = x.SiteId,
        };
    }
}
