using System.Net;
using System.Net.Sockets;

namespace Lisp.TestSupport;

/// <summary>Free loopback ports for tests (tests only ever send to 127.0.0.0/8 and ::1).</summary>
public static class Loopback
{
    /// <summary>A UDP port that was free on <paramref name="address"/> a moment ago.</summary>
    public static int FreeUdpPort(string address = "127.0.0.1")
    {
        using var s = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        s.Bind(new IPEndPoint(IPAddress.Parse(address), 0));
        return ((IPEndPoint)s.LocalEndPoint!).Port;
    }

    public static int FreeTcpPort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int p = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return p;
    }
}
