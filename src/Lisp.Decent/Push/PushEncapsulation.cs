using System.Net;
using Lisp.Wire;

namespace Lisp.Decent.Push;

/// <summary>
/// The RFC 9962 / lispers.net form of a replicated Map-Register: the UDP payload sent to a member's data port
/// (4341) is a LISP data header with instance-id 0xffffff, then an inner IP + UDP header from this member's
/// RLOC (control port) to the group (port 4342), then the Map-Register. The kernel adds the outer IP + UDP.
/// </summary>
public static class PushEncapsulation
{
    /// <summary>Builds the data-port payload carrying <paramref name="controlMessage"/> to the group.</summary>
    public static byte[] Encapsulate(ReadOnlySpan<byte> controlMessage, IPEndPoint innerSource, IPAddress group, uint nonce = 0)
    {
        if (innerSource.AddressFamily != group.AddressFamily) throw new ArgumentException("inner source and group must be the same address family");
        var ip = new IpUdpHeader(innerSource.Address, group, (ushort)innerSource.Port, DataHeader.ControlPort, TtlOrHopLimit: 64);
        var buffer = new byte[DataHeader.Length + ip.Length + controlMessage.Length];
        DataHeader.ForInstance(DataHeader.DecentControlInstanceId, nonce).Write(buffer);
        ip.Write(buffer.AsSpan(DataHeader.Length), controlMessage);
        controlMessage.CopyTo(buffer.AsSpan(DataHeader.Length + ip.Length));
        return buffer;
    }

    /// <summary>
    /// Unwraps a data-port payload. Accepts only instance-id 0xffffff, a UDP inner packet to control port 4342,
    /// and an inner destination equal to <paramref name="group"/>; <paramref name="error"/> says why not.
    /// </summary>
    public static bool TryDecapsulate(ReadOnlySpan<byte> payload, IPAddress group, out byte[] inner, out IPEndPoint innerSource, out string? error)
    {
        inner = [];
        innerSource = new IPEndPoint(IPAddress.None, 0);
        var st = DataHeader.TryRead(payload, out var h);
        if (!st.IsOk)
        {
            error = "LISP header: " + st;
            return false;
        }
        if (!h.InstanceIdPresent || h.InstanceId != DataHeader.DecentControlInstanceId)
        {
            error = h.InstanceIdPresent ? $"instance-id {h.InstanceId} is not 0xffffff (not a push control packet)" : "no instance-id (not a push control packet)";
            return false;
        }
        var r = new SpanReader(payload.Slice(DataHeader.Length));
        var ip = IpUdpHeader.Read(ref r, out int length);
        if (ip is null || !r.Ok)
        {
            error = "inner IP/UDP header: " + r.Status;
            return false;
        }
        if (!ip.Destination.Equals(group))
        {
            error = $"inner destination {ip.Destination} is not the group {group}";
            return false;
        }
        if (ip.DestinationPort != DataHeader.ControlPort)
        {
            error = $"inner UDP destination port {ip.DestinationPort} is not 4342";
            return false;
        }
        var rest = r.PeekRest();
        if (length < 0 || length > rest.Length)
        {
            error = $"inner UDP length says {length} payload bytes, {rest.Length} present";
            return false;
        }
        inner = rest.Slice(0, length).ToArray();
        innerSource = new IPEndPoint(ip.Source, ip.SourcePort);
        error = null;
        return true;
    }
}
