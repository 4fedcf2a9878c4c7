using System.Globalization;
using System.Net;
using Lisp.Wire;

namespace Lisp.Appliance.Cli;

/// <summary>
/// The operator view of a LISP data packet (a UDP 4341 payload): the 8-byte LISP header (RFC 9300 section 5.1)
/// and a summary of the inner IP packet; an inner UDP datagram to or from 4342 (LISP-Decent push replication)
/// is decoded as the control message it carries. Untrusted bytes: a status, never an exception.
/// </summary>
public static class DataPacketDescriber
{
    /// <summary>
    /// Whether a payload that arrived on the data port alone (4341, not 4342) is LISP data: an 8-byte header
    /// followed by an IPv4/IPv6 packet. Otherwise a payload whose first byte names a control type is a plain
    /// control message sent to the data port (lispers.net answers push Map-Registers that way) and is decoded as one.
    /// </summary>
    public static bool LooksLikeData(ReadOnlySpan<byte> payload) =>
        payload.Length > DataHeader.Length && payload[DataHeader.Length] >> 4 is 4 or 6 || payload.Length < 1 || payload[0] >> 4 is not (>= 1 and <= 8);

    public static WireStatus TryDescribe(ReadOnlySpan<byte> payload, out DescriptionNode? node)
    {
        node = null;
        var st = DataHeader.TryRead(payload, out var h);
        if (!st.IsOk) return st;
        var n = new DescriptionNode("LISP data packet");
        n.Add("flags", MessageDescriber.Flags(('n', h.NoncePresent), ('l', h.LsbValid), ('e', h.EchoNonce), ('v', h.MapVersionPresent), ('i', h.InstanceIdPresent)));
        if (h.NoncePresent) n.Add("nonce", $"0x{h.Nonce:x6}");
        if (h.MapVersionPresent)
        {
            n.Add("source map-version", h.SourceMapVersion);
            n.Add("destination map-version", h.DestMapVersion);
        }
        if (h.InstanceIdPresent)
        {
            n.Add("instance-id", h.InstanceId == DataHeader.DecentControlInstanceId ? $"{h.InstanceId} (LISP-Decent push control)" : h.InstanceId.ToString(CultureInfo.InvariantCulture));
        }
        if (h.LsbValid) n.Add("locator-status-bits", $"0x{h.Lsbs:x}");
        var inner = payload.Slice(DataHeader.Length);
        if (inner.Length == 0)
        {
            n.Add("inner packet", "none (header only)");
            node = n;
            return WireStatus.Ok;
        }
        var ip = n.Add("inner packet", $"{inner.Length} bytes");
        int v = inner[0] >> 4;
        if (v == 4 && inner.Length >= 20)
        {
            ip.Add("version", 4);
            ip.Add("source", new IPAddress(inner.Slice(12, 4)).ToString());
            ip.Add("destination", new IPAddress(inner.Slice(16, 4)).ToString());
            ip.Add("protocol", Protocol(inner[9]));
            ip.Add("ttl", inner[8]);
            ip.Add("total length", inner[2] << 8 | inner[3]);
        }
        else if (v == 6 && inner.Length >= 40)
        {
            ip.Add("version", 6);
            ip.Add("source", new IPAddress(inner.Slice(8, 16)).ToString());
            ip.Add("destination", new IPAddress(inner.Slice(24, 16)).ToString());
            ip.Add("next header", Protocol(inner[6]));
            ip.Add("hop limit", inner[7]);
            ip.Add("payload length", inner[4] << 8 | inner[5]);
        }
        else
        {
            return new WireStatus(WireError.Truncated, $"inner packet: {inner.Length} bytes is no IPv4 or IPv6 header (first byte 0x{inner[0]:x2})", DataHeader.Length);
        }
        if (LinkLayer.ParseIp(inner, out var udp) == FrameKind.Udp)
        {
            ip.Add("udp", $"{udp.SourcePort} -> {udp.DestinationPort}, {udp.Payload.Length} bytes");
            if (udp.SourcePort == DataHeader.ControlPort || udp.DestinationPort == DataHeader.ControlPort)
            {
                var cst = ControlMessage.TryDecode(udp.Payload, out var msg);
                if (cst.IsOk && msg is not null) ip.Children.Add(MessageDescriber.Describe(msg));
                else ip.Add("control message", $"malformed: {cst}");
            }
        }
        node = n;
        return WireStatus.Ok;
    }

    private static string Protocol(byte p) => p switch
    {
        1 => "1 (ICMP)",
        6 => "6 (TCP)",
        17 => "17 (UDP)",
        58 => "58 (ICMPv6)",
        _ => p.ToString(CultureInfo.InvariantCulture),
    };
}
