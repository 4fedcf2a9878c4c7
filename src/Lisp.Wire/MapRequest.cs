namespace Lisp.Wire;

/// <summary>
/// Map-Request (type 1), RFC 9301 section 5.2.
/// <code>
/// |Type=1 |A|M|P|S|p|s|m|I|  Rsvd   |L|D|   IRC   | Record Count  |
/// |                         Nonce . . .                           |
/// |                         . . . Nonce                           |
/// |         Source-EID-AFI        |   Source EID Address  ...     |
/// |         ITR-RLOC-AFI 1        |    ITR-RLOC Address 1  ...    |   (IRC + 1 times)
/// |   Reserved    | EID mask-len  |        EID-Prefix-AFI         |   (Record Count times)
/// |                       EID-Prefix  ...                         |
/// |                   Map-Reply Record  ...                       |   (when M)
/// |                  xTR-ID (128), when I (lispers.net)           |
/// </code>
/// A = authoritative, M = map-data present, P = RLOC-probe, S = SMR, p = PITR, s = SMR-invoked,
/// m = mobile node and I = xTR-ID present (lispers.net), L = local xTR, D = don't map-reply.
/// </summary>
public sealed record MapRequest : ControlMessage
{
    public override MessageType Type => MessageType.MapRequest;
    public bool Authoritative { get; init; }
    public bool MapDataPresent => MapReplyRecord is not null;
    public bool Probe { get; init; }
    public bool Smr { get; init; }
    public bool Pitr { get; init; }
    public bool SmrInvoked { get; init; }
    public bool MobileNode { get; init; }
    public bool LocalXtr { get; init; }
    public bool DontReply { get; init; }
    /// <summary>Reserved bits kept as received (byte 1 low nibble, byte 2 top bit) so re-encoding is exact.</summary>
    public byte ReservedBits { get; init; }
    public ulong Nonce { get; init; }
    public LispAddress SourceEid { get; init; } = NoAddress.Instance;
    public IReadOnlyList<LispAddress> ItrRlocs { get; init; } = [];
    public IReadOnlyList<EidPrefix> Records { get; init; } = [];
    public MappingRecord? MapReplyRecord { get; init; }
    /// <summary>lispers.net's xTR-ID (16 bytes) appended when its I bit is set.</summary>
    public byte[]? XtrId { get; init; }

    public override int EncodedLength => 12 + SourceEid.EncodedLength + ItrRlocs.Sum(a => a.EncodedLength) +
        Records.Sum(r => 2 + r.EncodedLength) + (MapReplyRecord?.EncodedLength ?? 0) + (XtrId?.Length ?? 0);

    public override void Write(ref SpanWriter w)
    {
        if (ItrRlocs.Count is < 1 or > 32) throw new InvalidOperationException("a Map-Request carries 1 to 32 ITR-RLOCs");
        w.U8((byte)(0x10 | (Authoritative ? 8 : 0) | (MapDataPresent ? 4 : 0) | (Probe ? 2 : 0) | (Smr ? 1 : 0)));
        w.U8((byte)((Pitr ? 0x80 : 0) | (SmrInvoked ? 0x40 : 0) | (MobileNode ? 0x20 : 0) | (XtrId is not null ? 0x10 : 0) | (ReservedBits & 0x0f)));
        w.U8((byte)((ReservedBits & 0x80) | (LocalXtr ? 0x40 : 0) | (DontReply ? 0x20 : 0) | (ItrRlocs.Count - 1)));
        w.U8((byte)Records.Count);
        w.U64(Nonce);
        SourceEid.Write(ref w);
        foreach (var a in ItrRlocs) a.Write(ref w);
        foreach (var r in Records)
        {
            w.U8(0);
            w.U8(r.MaskLength);
            r.Address.Write(ref w);
        }
        MapReplyRecord?.Write(ref w);
        if (XtrId is not null) w.Bytes(XtrId);
    }

    internal static MapRequest? Read(ref SpanReader r)
    {
        byte b0 = r.U8("flags"), b1 = r.U8("flags"), b2 = r.U8("IRC"), count = r.U8("record count");
        ulong nonce = r.U64("nonce");
        if (!r.Ok) return null;
        var source = LispAddress.Read(ref r);
        if (source is null) return null;
        int irc = (b2 & 0x1f) + 1;
        CheckCount(ref r, irc, 2, "ITR-RLOC");
        var rlocs = new List<LispAddress>(irc);
        for (int i = 0; i < irc && r.Ok; i++)
        {
            var a = LispAddress.Read(ref r);
            if (a is null) return null;
            rlocs.Add(a);
        }
        CheckCount(ref r, count, 4, "EID record");
        var records = new List<EidPrefix>(count);
        for (int i = 0; i < count && r.Ok; i++)
        {
            r.U8("EID record reserved");
            byte ml = r.U8("EID mask-len");
            var eid = LispAddress.Read(ref r);
            if (eid is null || !EidPrefix.CheckMask(ref r, eid, ml, "EID mask-len")) return null;
            records.Add(new EidPrefix(eid, ml));
        }
        MappingRecord? mapReply = null;
        if ((b0 & 4) != 0)
        {
            mapReply = MappingRecord.Read(ref r);
            if (mapReply is null) return null;
        }
        byte[]? xtrId = null;
        if ((b1 & 0x10) != 0)
        {
            xtrId = r.Bytes(16, "xTR-ID (I bit set)").ToArray();
        }
        if (!r.Ok) return null;
        return new MapRequest
        {
            Authoritative = (b0 & 8) != 0, Probe = (b0 & 2) != 0, Smr = (b0 & 1) != 0,
            Pitr = (b1 & 0x80) != 0, SmrInvoked = (b1 & 0x40) != 0, MobileNode = (b1 & 0x20) != 0,
            LocalXtr = (b2 & 0x40) != 0, DontReply = (b2 & 0x20) != 0,
            ReservedBits = (byte)((b1 & 0x0f) | (b2 & 0x80)),
            Nonce = nonce, SourceEid = source, ItrRlocs = rlocs, Records = records,
            MapReplyRecord = mapReply, XtrId = xtrId,
        };
    }
}
