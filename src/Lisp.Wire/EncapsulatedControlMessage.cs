using System.Buffers.Binary;
using System.Net;

namespace Lisp.Wire;

/// <summary>What an ECM carries between its 4-byte header and the inner LISP control message.</summary>
public enum EcmInnerLayout : byte
{
    /// <summary>An IPv4 or IPv6 header and a UDP header (RFC 9301 5.8).</summary>
    IpUdp = 0,
    /// <summary>A UDP header alone, no IP header (lispers.net, for inner destinations that are not IP, e.g. name EIDs).</summary>
    UdpOnly = 1,
    /// <summary>Nothing: the control message follows the ECM header directly.</summary>
    Bare = 2,
}

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
/// Two more layouts are accepted because lispers.net sends them for distinguished-name EIDs (see
/// <see cref="EcmInnerLayout"/>). After the ECM header, in this order:
/// <list type="bullet">
/// <item>a first nibble of 4 or 6 is an IP header (the RFC layout), unless the next 8 bytes only make sense as
/// a UDP header (below) and not as the IPv4/IPv6 header;</item>
/// <item>destination port 4342 in bytes 2-3 starts a UDP header without an IP header (its length must then be
/// exactly what is left; no real control message has 0x10f6 there);</item>
/// <item>a first nibble that is a LISP control type and not an IP version (1, 2, 3, 5, 7 or 8) starts the
/// control message itself;</item>
/// <item>anything else is refused.</item>
/// </list>
/// Without an IP header, <see cref="Inner"/> holds unspecified addresses (and port 0 when there is no UDP header
/// either) and is never written as an IP header; <see cref="InnerHeader"/> is null. Re-encoding keeps the layout
/// the message was decoded in; a UDP-only header keeps its checksum as received (no addresses to compute it over).
/// </remarks>
public sealed record EncapsulatedControlMessage(IpUdpHeader Inner, ControlMessage Message) : ControlMessage
{
    /// <summary>Placeholder held in <see cref="Inner"/> by an ECM without any inner header; never encoded.</summary>
    public static readonly IpUdpHeader NoInnerHeader = new(IPAddress.Any, IPAddress.Any, 0, 0, TtlOrHopLimit: 0, UdpChecksum: 0);

    /// <summary>An ECM whose payload is <paramref name="message"/> alone, with no inner IP or UDP header.</summary>
    public static EncapsulatedControlMessage WithoutInnerHeader(ControlMessage message) =>
        new(NoInnerHeader, message) { InnerLayout = EcmInnerLayout.Bare };

    /// <summary>An ECM with a UDP header but no IP header in front of <paramref name="message"/>.</summary>
    public static EncapsulatedControlMessage WithUdpHeaderOnly(ControlMessage message, ushort sourcePort,
        ushort destinationPort = DataHeader.ControlPort, ushort udpChecksum = 0) =>
        new(new IpUdpHeader(IPAddress.Any, IPAddress.Any, sourcePort, destinationPort, TtlOrHopLimit: 0, UdpChecksum: udpChecksum), message)
        {
            InnerLayout = EcmInnerLayout.UdpOnly,
        };

    public override MessageType Type => MessageType.EncapsulatedControl;
    public bool Security { get; init; }
    public bool DdtOriginated { get; init; }
    public bool ForEtr { get; init; }
    public bool ForMapServer { get; init; }

    /// <summary>What precedes the inner message: <see cref="EcmInnerLayout.IpUdp"/> unless decoded (or built) otherwise.</summary>
    public EcmInnerLayout InnerLayout { get; init; } = EcmInnerLayout.IpUdp;

    /// <summary>True for the RFC layout: an inner IPv4/IPv6 header (and UDP header) precedes the inner message.</summary>
    public bool HasInnerHeader => InnerLayout == EcmInnerLayout.IpUdp;

    /// <summary>The inner IP/UDP header, or null when the ECM carried no IP header.</summary>
    public IpUdpHeader? InnerHeader => HasInnerHeader ? Inner : null;

    /// <summary>The inner UDP source port, or null when the ECM carried no UDP header.</summary>
    public ushort? InnerSourcePort => InnerLayout == EcmInnerLayout.Bare ? null : Inner.SourcePort;

    private int InnerHeaderLength => InnerLayout switch
    {
        EcmInnerLayout.IpUdp => Inner.Length,
        EcmInnerLayout.UdpOnly => 8,
        _ => 0,
    };

    public override int EncodedLength => 4 + InnerHeaderLength + Message.EncodedLength;

    public override void Write(ref SpanWriter w)
    {
        w.U8((byte)(0x80 | (Security ? 8 : 0) | (DdtOriginated ? 4 : 0) | (ForEtr ? 2 : 0) | (ForMapServer ? 1 : 0)));
        w.U8(0);
        w.U16(0);
        var inner = Message.ToBytes();
        switch (InnerLayout)
        {
            case EcmInnerLayout.IpUdp:
                Span<byte> header = stackalloc byte[48];
                Inner.Write(header, inner);
                w.Bytes(header.Slice(0, Inner.Length));
                break;
            case EcmInnerLayout.UdpOnly:
                w.U16(Inner.SourcePort);
                w.U16(Inner.DestinationPort);
                w.U16((ushort)(8 + inner.Length));
                w.U16(Inner.UdpChecksum ?? 0);
                break;
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

    /// <summary>Which layout the bytes after the ECM header have (see the remarks of the type); null when none fits.</summary>
    private static EcmInnerLayout? Classify(ReadOnlySpan<byte> rest)
    {
        if (rest.Length == 0) return EcmInnerLayout.IpUdp; // the IP reader reports the missing header
        int nibble = rest[0] >> 4;
        bool udpDestination = rest.Length >= 4 && BinaryPrimitives.ReadUInt16BigEndian(rest.Slice(2)) == DataHeader.ControlPort;
        if (nibble is 4 or 6)
        {
            // A UDP source port of 0x4xxx/0x6xxx: only when the bytes cannot be the IP header's lengths.
            if (udpDestination && rest.Length >= 8 && BinaryPrimitives.ReadUInt16BigEndian(rest.Slice(4)) == rest.Length)
            {
                bool ipLengthFits = nibble == 4
                    ? BinaryPrimitives.ReadUInt16BigEndian(rest.Slice(2)) == rest.Length
                    : rest.Length >= 6 && BinaryPrimitives.ReadUInt16BigEndian(rest.Slice(4)) == rest.Length - 40;
                if (!ipLengthFits) return EcmInnerLayout.UdpOnly;
            }
            return EcmInnerLayout.IpUdp;
        }
        if (udpDestination) return EcmInnerLayout.UdpOnly;
        if (StartsControlMessage(nibble)) return EcmInnerLayout.Bare;
        return null;
    }

    internal static EncapsulatedControlMessage? Read(ref SpanReader r, int depth)
    {
        byte b0 = r.U8("flags");
        r.U8("reserved");
        r.U16("reserved");
        if (!r.Ok) return null;
        if (r.Remaining is > 0 and < 4)
        {
            r.Fail(WireError.Truncated, $"{r.Remaining} bytes after the ECM header: shorter than any inner header or control message");
            return null;
        }
        var layout = Classify(r.PeekRest());
        IpUdpHeader? ip;
        int payloadLength;
        switch (layout)
        {
            case EcmInnerLayout.IpUdp:
                ip = IpUdpHeader.Read(ref r, out payloadLength);
                if (ip is null) return null;
                break;
            case EcmInnerLayout.UdpOnly:
                ushort sport = r.U16("inner UDP source port (no IP header)");
                ushort dport = r.U16("inner UDP destination port (no IP header)");
                ushort ulen = r.U16("inner UDP length (no IP header)");
                ushort csum = r.U16("inner UDP checksum (no IP header)");
                if (!r.Ok) return null;
                if (ulen != 8 + r.Remaining)
                {
                    r.Fail(WireError.BadLength, $"inner UDP length {ulen} (no IP header) does not match the {8 + r.Remaining} bytes left");
                    return null;
                }
                ip = new IpUdpHeader(IPAddress.Any, IPAddress.Any, sport, dport, TtlOrHopLimit: 0, UdpChecksum: csum);
                payloadLength = r.Remaining;
                break;
            case EcmInnerLayout.Bare:
                ip = NoInnerHeader;
                payloadLength = r.Remaining;
                break;
            default:
                r.Fail(WireError.BadValue, $"inner packet starts with nibble {r.Peek(0) >> 4}: neither IPv4/IPv6 (4 or 6), a UDP header to port {DataHeader.ControlPort}, nor a LISP control message");
                return null;
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
        return new EncapsulatedControlMessage(ip, inner)
        {
            InnerLayout = layout.Value,
            Security = (b0 & 8) != 0, DdtOriginated = (b0 & 4) != 0, ForEtr = (b0 & 2) != 0, ForMapServer = (b0 & 1) != 0,
        };
    }
}
