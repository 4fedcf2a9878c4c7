namespace Lisp.Wire;

/// <summary>
/// Encapsulated Control Message (type 8), RFC 9301 section 5.8: how an ITR's Map-Request reaches a
/// Map-Resolver and how a Map-Resolver forwards it to a Map-Server.
/// <code>
/// |Type=8 |S|D|E|M|            Reserved                           |
/// |                       IPv4 or IPv6 Header                     |
/// |                       UDP Header (dst 4342)                   |
/// |                       LISP Control Message                    |
/// </code>
/// S = LISP-SEC, D = DDT-originated, E = to be forwarded to an ETR, M = to a Map-Server.
/// </summary>
public sealed record EncapsulatedControlMessage(IpUdpHeader Inner, ControlMessage Message) : ControlMessage
{
    public override MessageType Type => MessageType.EncapsulatedControl;
    public bool Security { get; init; }
    public bool DdtOriginated { get; init; }
    public bool ForEtr { get; init; }
    public bool ForMapServer { get; init; }

    public override int EncodedLength => 4 + Inner.Length + Message.EncodedLength;

    public override void Write(ref SpanWriter w)
    {
        w.U8((byte)(0x80 | (Security ? 8 : 0) | (DdtOriginated ? 4 : 0) | (ForEtr ? 2 : 0) | (ForMapServer ? 1 : 0)));
        w.U8(0);
        w.U16(0);
        var inner = Message.ToBytes();
        Span<byte> header = stackalloc byte[48];
        Inner.Write(header, inner);
        w.Bytes(header.Slice(0, Inner.Length));
        w.Bytes(inner);
    }

    internal static EncapsulatedControlMessage? Read(ref SpanReader r, int depth)
    {
        byte b0 = r.U8("flags");
        r.U8("reserved");
        r.U16("reserved");
        var ip = IpUdpHeader.Read(ref r, out int payloadLength);
        if (ip is null) return null;
        int at = r.BaseOffset + r.Position;
        var payload = r.Bytes(payloadLength, "inner LISP message");
        if (!r.Ok) return null;
        if (depth > 0)
        {
            r.Fail(WireError.TooDeep, "an ECM inside an ECM is not accepted");
            return null;
        }
        var status = TryDecode(payload, depth + 1, out var inner);
        if (!status.IsOk || inner is null)
        {
            r.Fail(status with { Offset = at + status.Offset, Detail = "inner message: " + status.Detail });
            return null;
        }
        return new EncapsulatedControlMessage(ip, inner)
        {
            Security = (b0 & 8) != 0, DdtOriginated = (b0 & 4) != 0, ForEtr = (b0 & 2) != 0, ForMapServer = (b0 & 1) != 0,
        };
    }
}
