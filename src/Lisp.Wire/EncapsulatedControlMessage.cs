using System.Net;

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
/// <remarks>
/// lispers.net also sends (for distinguished-name EIDs) an ECM whose payload is the LISP control message itself,
/// with no inner IP/UDP header. We accept that layout when the first nibble after the 4-byte ECM header is a
/// LISP control type that cannot be read as an IP version (not 4 or 6), and mark it with
/// <see cref="HasInnerHeader"/> false: <see cref="Inner"/> then holds <see cref="NoInnerHeader"/> (unspecified
/// addresses, port 0), which is never written, and <see cref="InnerHeader"/> is null. Re-encoding keeps the
/// layout the message was decoded in.
/// </remarks>
public sealed record EncapsulatedControlMessage(IpUdpHeader Inner, ControlMessage Message) : ControlMessage
{
    /// <summary>Placeholder held in <see cref="Inner"/> by an ECM without an inner IP/UDP header; never encoded.</summary>
    public static readonly IpUdpHeader NoInnerHeader = new(IPAddress.Any, IPAddress.Any, 0, 0, TtlOrHopLimit: 0, UdpChecksum: 0);

    /// <summary>An ECM whose payload is <paramref name="message"/> alone, without an inner IP/UDP header (lispers.net layout).</summary>
    public static EncapsulatedControlMessage WithoutInnerHeader(ControlMessage message) => new(NoInnerHeader, message) { HasInnerHeader = false };

    public override MessageType Type => MessageType.EncapsulatedControl;
    public bool Security { get; init; }
    public bool DdtOriginated { get; init; }
    public bool ForEtr { get; init; }
    public bool ForMapServer { get; init; }

    /// <summary>
    /// True (the RFC layout) when an IPv4/IPv6 + UDP header precedes the inner message; false for the
    /// lispers.net layout where the control message follows the ECM header directly.
    /// </summary>
    public bool HasInnerHeader { get; init; } = true;

    /// <summary>The inner IP/UDP header, or null when the ECM carried none.</summary>
    public IpUdpHeader? InnerHeader => HasInnerHeader ? Inner : null;

    public override int EncodedLength => 4 + (HasInnerHeader ? Inner.Length : 0) + Message.EncodedLength;

    public override void Write(ref SpanWriter w)
    {
        w.U8((byte)(0x80 | (Security ? 8 : 0) | (DdtOriginated ? 4 : 0) | (ForEtr ? 2 : 0) | (ForMapServer ? 1 : 0)));
        w.U8(0);
        w.U16(0);
        var inner = Message.ToBytes();
        if (HasInnerHeader)
        {
            Span<byte> header = stackalloc byte[48];
            Inner.Write(header, inner);
            w.Bytes(header.Slice(0, Inner.Length));
        }
        w.Bytes(inner);
    }

    /// <summary>
    /// True for a first nibble that starts a LISP control message and cannot be an IP version: 4 (Map-Notify)
    /// and 6 (Map-Referral) collide with IPv4/IPv6 and are always read as an inner IP header.
    /// </summary>
    private static bool StartsControlMessage(int nibble) => nibble is
        (int)MessageType.MapRequest or (int)MessageType.MapReply or (int)MessageType.MapRegister or
        (int)MessageType.MapNotifyAck or (int)MessageType.InfoRequest or (int)MessageType.EncapsulatedControl;

    internal static EncapsulatedControlMessage? Read(ref SpanReader r, int depth)
    {
        byte b0 = r.U8("flags");
        r.U8("reserved");
        r.U16("reserved");
        if (!r.Ok) return null;
        IpUdpHeader? ip = null;
        int payloadLength;
        int nibble = r.Peek(0) >> 4;
        if (r.Remaining > 0 && StartsControlMessage(nibble))
        {
            // lispers.net layout: no inner IP/UDP header, the control message runs to the end of the datagram.
            payloadLength = r.Remaining;
        }
        else if (r.Remaining > 0 && nibble is not (4 or 6))
        {
            r.Fail(WireError.BadValue, $"inner packet starts with nibble {nibble}: neither IPv4/IPv6 (4 or 6) nor a LISP control message");
            return null;
        }
        else
        {
            ip = IpUdpHeader.Read(ref r, out payloadLength);
            if (ip is null) return null;
        }
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
        return new EncapsulatedControlMessage(ip ?? NoInnerHeader, inner)
        {
            HasInnerHeader = ip is not null,
            Security = (b0 & 8) != 0, DdtOriginated = (b0 & 4) != 0, ForEtr = (b0 & 2) != 0, ForMapServer = (b0 & 1) != 0,
        };
    }
}
