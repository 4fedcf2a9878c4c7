using System.Net;
using Lisp.ControlPlane;
using Lisp.Wire;

namespace Lisp.Decent.Push;

/// <summary>Which socket a datagram leaves on.</summary>
public enum PushChannel
{
    /// <summary>The control socket (UDP 4342), unicast.</summary>
    Control,
    /// <summary>The data socket (UDP 4341): an encapsulated Map-Register.</summary>
    Data,
    /// <summary>The multicast socket, to the group.</summary>
    Multicast,
}

/// <summary>One datagram to send: channel, destination, UDP payload, preferred local endpoint.</summary>
public sealed record PushDatagram(PushChannel Channel, IPEndPoint To, byte[] Payload, IPEndPoint? From);

/// <summary>
/// The sending half of the group's data plane: turns the control plane's <see cref="SendAction"/>s into what
/// goes on the wire. Map-Registers to the group endpoint leave on the multicast socket; in
/// replicate-encapsulated mode each Map-Register to another member is LISP-encapsulated to that member's data
/// port (this node's own copy stays a plain control message, as lispers.net sends its first copy to its own
/// map-server); everything else is sent unchanged. Pure, thread-safe.
/// </summary>
public sealed class PushReplicator(PushMappingSystem push)
{
    private long _encapsulated, _multicast;

    public long EncapsulatedSent => Interlocked.Read(ref _encapsulated);
    public long MulticastSent => Interlocked.Read(ref _multicast);

    public PushDatagram Expand(SendAction a)
    {
        bool register = a.Payload.Length > 0 && a.Payload[0] >> 4 == (int)MessageType.MapRegister;
        if (push.Delivery == PushDelivery.Multicast && a.To.Equals(push.GroupEndPoint))
        {
            Interlocked.Increment(ref _multicast);
            return new PushDatagram(PushChannel.Multicast, a.To, a.Payload, a.From);
        }
        if (push.Delivery == PushDelivery.ReplicateEncapsulated && register && !push.IsSelf(a.To) && push.Members.Contains(a.To))
        {
            var self = push.Options.Self.FirstOrDefault(s => s.AddressFamily == a.To.AddressFamily && s.AddressFamily == push.Group.AddressFamily);
            if (self is not null)
            {
                Interlocked.Increment(ref _encapsulated);
                var payload = PushEncapsulation.Encapsulate(a.Payload, self, push.Group, (uint)Random.Shared.Next(1, 0xffffff));
                return new PushDatagram(PushChannel.Data, new IPEndPoint(a.To.Address, push.Options.DataPort), payload,
                    new IPEndPoint(self.Address, push.Options.DataPort));
            }
        }
        return new PushDatagram(PushChannel.Control, a.To, a.Payload, a.From);
    }
}
