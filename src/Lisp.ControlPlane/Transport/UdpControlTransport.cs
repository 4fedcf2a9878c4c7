using System.Net;
using System.Net.Sockets;

namespace Lisp.ControlPlane.Transport;

/// <summary>
/// UDP 4342 sockets for the control plane, kept apart from the role state machines: one socket per listen
/// address. The control shards receive on them with batched system calls (<see cref="Descriptors"/>; the
/// node host); this class binds and closes them, and sends what does not go out in a shard's batch: sending
/// picks the socket bound to the wanted source address, else one of the right family. Send errors are counted
/// and reported, never thrown.
/// </summary>
public sealed class UdpControlTransport : IDisposable
{
    public const int MaxDatagram = 65535;

    private readonly List<(Socket Socket, IPEndPoint Local)> _sockets = [];
    private readonly Action<string>? _log;
    private Socket? _anyV4;
    private Socket? _anyV6;
    private long _sendErrors;

    public UdpControlTransport(IEnumerable<IPEndPoint> listen, Action<string>? log = null)
    {
        _log = log;
        foreach (var ep in listen)
        {
            var s = new Socket(ep.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            try
            {
                if (ep.AddressFamily == AddressFamily.InterNetworkV6) s.DualMode = false;
                // A burst of Map-Registers or Map-Requests must wait in the kernel, not be dropped there, while the
                // control shards work through their batches (the kernel caps this at net.core.rmem_max).
                s.ReceiveBufferSize = 4 << 20;
                s.SendBufferSize = 4 << 20;
                s.Bind(ep);
            }
            catch (SocketException e)
            {
                s.Dispose();
                Dispose();
                throw new InvalidOperationException($"cannot listen on {ep} (UDP): {e.Message}", e);
            }
            _sockets.Add((s, (IPEndPoint)s.LocalEndPoint!));
        }
    }

    public IReadOnlyList<IPEndPoint> LocalEndpoints => _sockets.Select(s => s.Local).ToList();

    /// <summary>
    /// The listening sockets' descriptors, for the host that drives them with batched system calls (recvmmsg/sendmmsg)
    /// from its control shards. They stay owned (and are closed) by this transport.
    /// </summary>
    public IReadOnlyList<(int Fd, IPEndPoint Local)> Descriptors => _sockets.Select(s => ((int)s.Socket.Handle, s.Local)).ToList();
    public long SendErrors => Interlocked.Read(ref _sendErrors);

    /// <summary>Sends one datagram; returns false (and counts) on failure instead of throwing.</summary>
    public bool Send(IPEndPoint to, ReadOnlySpan<byte> payload, IPEndPoint? from = null)
    {
        var socket = Pick(to, from);
        if (socket is null)
        {
            Interlocked.Increment(ref _sendErrors);
            _log?.Invoke($"no socket can send to {to}");
            return false;
        }
        try
        {
            socket.SendTo(payload, SocketFlags.None, to);
            return true;
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            Interlocked.Increment(ref _sendErrors);
            _log?.Invoke($"send to {to} failed: {(e is SocketException se ? se.SocketErrorCode.ToString() : "closed")}");
            return false;
        }
    }

    private Socket? Pick(IPEndPoint to, IPEndPoint? from)
    {
        if (from is not null)
        {
            foreach (var (s, l) in _sockets)
            {
                if (l.Address.Equals(from.Address) && (from.Port == 0 || from.Port == l.Port)) return s;
            }
        }
        // Prefer a listening socket whose address can reach the destination (loopback to loopback).
        Socket? sameFamily = null;
        foreach (var (s, l) in _sockets)
        {
            if (l.AddressFamily != to.AddressFamily) continue;
            if (IPAddress.IsLoopback(l.Address) == IPAddress.IsLoopback(to.Address)) return s;
            sameFamily ??= s;
        }
        if (sameFamily is not null) return sameFamily;
        lock (_sockets)
        {
            if (to.AddressFamily == AddressFamily.InterNetwork)
            {
                return _anyV4 ??= Ephemeral(AddressFamily.InterNetwork);
            }
            return _anyV6 ??= Ephemeral(AddressFamily.InterNetworkV6);
        }
    }

    private static Socket Ephemeral(AddressFamily af)
    {
        var s = new Socket(af, SocketType.Dgram, ProtocolType.Udp);
        s.Bind(new IPEndPoint(af == AddressFamily.InterNetwork ? IPAddress.Any : IPAddress.IPv6Any, 0));
        return s;
    }

    public void Dispose()
    {
        foreach (var (s, _) in _sockets) s.Dispose();
        _anyV4?.Dispose();
        _anyV6?.Dispose();
    }
}
