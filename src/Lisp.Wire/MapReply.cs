namespace Lisp.Wire;

/// <summary>
/// Map-Reply (type 2), RFC 9301 section 5.4.
/// <code>
/// |Type=2 |P|E|S|          Reserved               | Record Count  |
/// |                         Nonce . . .                           |
/// |                         . . . Nonce                           |
/// |                     Record Count x mapping record             |
/// </code>
/// P = RLOC-probe reply, E = echo-nonce capable, S = LISP-SEC data follows.
/// </summary>
public sealed record MapReply : ControlMessage
{
    public override MessageType Type => MessageType.MapReply;
    public bool Probe { get; init; }
    public bool EchoNonceCapable { get; init; }
    public bool Security { get; init; }
    /// <summary>The 17 reserved bits of word 0 (after P, E, S), kept as received so decode -> encode is exact.</summary>
    public uint ReservedBits { get; init; }
    public ulong Nonce { get; init; }
    public IReadOnlyList<MappingRecord> Records { get; init; } = [];

    public override int EncodedLength => 12 + Records.Sum(r => r.EncodedLength);

    public override void Write(ref SpanWriter w)
    {
        w.U8((byte)(0x20 | (Probe ? 8 : 0) | (EchoNonceCapable ? 4 : 0) | (Security ? 2 : 0) | (int)((ReservedBits >> 16) & 1)));
        w.U16((ushort)ReservedBits);
        w.U8((byte)Records.Count);
        w.U64(Nonce);
        foreach (var r in Records) r.Write(ref w);
    }

    internal static MapReply? Read(ref SpanReader r)
    {
        byte b0 = r.U8("flags");
        ushort reserved = r.U16("reserved");
        byte count = r.U8("record count");
        ulong nonce = r.U64("nonce");
        CheckCount(ref r, count, 12, "mapping record");
        var records = new List<MappingRecord>(count);
        for (int i = 0; i < count && r.Ok; i++)
        {
            var rec = MappingRecord.Read(ref r);
            if (rec is null) return null;
            records.Add(rec);
        }
        if (!r.Ok) return null;
        return new MapReply
        {
            Probe = (b0 & 8) != 0, EchoNonceCapable = (b0 & 4) != 0, Security = (b0 & 2) != 0,
            ReservedBits = (uint)((b0 & 1) << 16 | reserved), Nonce = nonce, Records = records,
        };
    }
}
