using System.Buffers.Binary;
using System.Net;
using Lisp.Wire;

namespace Lisp.ControlPlane;

/// <summary>Small shared helpers of the roles.</summary>
internal static class Util
{
    /// <summary>A non-zero random 64-bit nonce.</summary>
    public static ulong Nonce(Random random)
    {
        Span<byte> b = stackalloc byte[8];
        ulong n;
        do
        {
            random.NextBytes(b);
            n = BinaryPrimitives.ReadUInt64BigEndian(b);
        }
        while (n == 0);
        return n;
    }

    public static string Hex(ulong nonce) => "0x" + nonce.ToString("x16", System.Globalization.CultureInfo.InvariantCulture);

    public static IPAddress? Ip(LispAddress a) => a switch
    {
        IpAddress ip => ip.Address,
        InstanceIdAddress { Address: IpAddress ip } => ip.Address,
        _ => null,
    };

    /// <summary>
    /// Where a Map-Reply to <paramref name="request"/> goes: the first ITR-RLOC of the family of the local
    /// endpoint the request arrived on, else the first IP ITR-RLOC, else <paramref name="fallback"/>.
    /// </summary>
    public static IPAddress? ReplyAddress(MapRequest request, IPEndPoint? local, IPAddress? fallback)
    {
        IPAddress? first = null;
        foreach (var r in request.ItrRlocs)
        {
            if (Ip(r) is not { } a || IsUnspecified(a)) continue;
            if (local is not null && a.AddressFamily == local.AddressFamily) return a;
            first ??= a;
        }
        return first ?? fallback;
    }

    /// <summary>The local endpoint to send from: the one a request arrived on when its family fits.</summary>
    public static IPEndPoint? FromFor(IPEndPoint? local, IPEndPoint to) =>
        local is not null && local.AddressFamily == to.AddressFamily && !IsUnspecified(local.Address) ? local : null;

    /// <summary>An ECM around <paramref name="inner"/> with an inner IP/UDP header from source to destination.</summary>
    public static byte[] Ecm(ControlMessage inner, IPAddress innerSource, IPAddress innerDest, ushort sourcePort, bool forMapServer = false, bool forEtr = false)
    {
        if (innerSource.AddressFamily != innerDest.AddressFamily) innerDest = innerSource;
        var header = new IpUdpHeader(innerSource, innerDest, sourcePort, DataHeader.ControlPort, TtlOrHopLimit: 64);
        return new EncapsulatedControlMessage(header, inner) { ForMapServer = forMapServer, ForEtr = forEtr }.ToBytes();
    }

    public static bool IsUnspecified(IPAddress a) => a.Equals(IPAddress.Any) || a.Equals(IPAddress.IPv6Any);

    public static string Records(IReadOnlyList<MappingRecord> records) => string.Join(", ", records.Select(r => r.Eid.ToString()));
}
