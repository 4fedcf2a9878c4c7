using System.Net;
using System.Net.Sockets;
using Lisp.TestSupport;
using Lisp.Wire;

namespace Lisp.Appliance.Tests;

/// <summary>
/// Issue 11 item 7: lispers.net answers an encapsulated push Map-Register with a plain Map-Notify sent to the data
/// port. A member takes a plain, well-formed control message on its data port from a known member (the role then
/// authenticates it) and counts it; from anyone else it stays a dropped, counted non-LISP datagram.
/// </summary>
public sealed class PushDataPortTests
{
    [Fact]
    public void A_plain_control_message_from_a_member_on_the_data_port_is_taken_and_one_from_a_stranger_is_not()
    {
        using var c = new PushCluster { ControlPort = Loopback.FreeUdpPort(), DataPort = Loopback.FreeUdpPort(), Subnet = "127.0.36", Delivery = "replicate-encapsulated" };
        // Member 1 runs; member 2 (127.0.36.2) is configured but played by this test's socket.
        var n1 = c.Start(1, 2, PushCluster.DemoEids[0]);
        n1.WaitForLine("push-started", TimeSpan.FromSeconds(20));
        // A Map-Notify as a peer would send it (its HMAC is not the group's: the ETR refuses it after taking it).
        var notify = new MapNotify
        {
            Nonce = 0x1122334455667788, Algorithm = AuthAlgorithm.HmacSha256_128,
            Records = [new MappingRecord(EidPrefix.Parse("[0]2.2.2.2/32"), [new LocatorRecord(IpAddress.Parse("127.0.36.2"))], 3)],
        }.ToSignedBytes("not-the-group-key"u8.ToArray());
        var target = new IPEndPoint(IPAddress.Parse(c.Address(1)), c.DataPort);
        using (var member = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp))
        {
            member.Bind(new IPEndPoint(IPAddress.Parse(c.Address(2)), 0));
            member.SendTo(notify, target);
        }
        n1.WaitForLine(@"push-plain-control plain MapNotify from push member 127\.0\.36\.2:\d+ on the data port", TimeSpan.FromSeconds(10));

        using (var stranger = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp))
        {
            stranger.Bind(new IPEndPoint(IPAddress.Parse(c.Address(9)), 0));
            stranger.SendTo(notify, target);
        }
        n1.WaitForLine(@"push-decap-drop \d+ bytes from 127\.0\.36\.9:\d+", TimeSpan.FromSeconds(10));
        Assert.DoesNotContain(n1.Lines, l => l.Contains("push-plain-control", StringComparison.Ordinal) && l.Contains("127.0.36.9", StringComparison.Ordinal));
    }
}
