using System.Net;
using System.Net.Sockets;

namespace Lisp.ControlPlane.Transport;

/// <summary>
/// UDP 4342 sockets for the control plane, kept apart from the role state machines: one socket per listen
/// address, each with its own receive thread (the control plane runs on its own threads, never on the
/// data-plane workers). Received datagrams go to a callback; sending picks the socket bound to the wanted
/// source address, else one of the right family. Socket errors are counted and reported, never thrown
/// into the receive loop, so a hostile peer cannot stop it.
/// </summary>
public sealed class UdpControlTransport : IDisposable
{
    public const int MaxDatagram = 65535;

    private readonly List<(Socket Socket, IPEndPoint Local)> _sockets = [];
    private readonly List<Thread> _threads = [];
    private readonly Action<string>? _log;
    private Socket? _anyV4;
    private Socket? _anyV6;
    private volatile bool _stopping;
    private long _sendErrors;
    private long _receiveErrors;

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
    /// The listening sockets' descriptors, for hosts that drive them with batched system calls (recvmmsg/sendmmsg)
    /// from their own threads instead of <see cref="Start"/>. They stay owned (and are closed) by this transport.
    /// </summary>
    public IReadOnlyList<(int Fd, IPEndPoint Local)> Descriptors => _sockets.Select(s => ((int)s.Socket.Handle, s.Local)).ToList();
    public long SendErrors => Interlocked.Read(ref _sendErrors);
    public long ReceiveErrors => Interlocked.Read(ref _receiveErrors);

    /// <summary>Starts one receive thread per socket; <paramref name="onPacket"/> gets (payload, from, local).</summary>
    public void Start(Action<byte[], IPEndPoint, IPEndPoint> onPacket)
    {
        foreach (var (socket, local) in _sockets)
        {
            var t = new Thread(() => ReceiveLoop(socket, local, onPacket))
            {
                IsBackground = true,
                Name = $"lisp-ctl-rx {local}",
            };
            _threads.Add(t);
            t.Start();
        }
    }

    private void ReceiveLoop(Socket socket, IPEndPoint local, Action<byte[], IPEndPoint, IPEndPoint> onPacket)
    {
        var buffer = new byte[MaxDatagram];
        EndPoint any = socket.AddressFamily == AddressFamily.InterNetwork ? new IPEndPoint(IPAddress.Any, 0) : new IPEndPoint(IPAddress.IPv6Any, 0);
        while (!_stopping)
        {
            int n;
            EndPoint from = any;
            try
            {
                n = socket.ReceiveFrom(buffer, ref from);
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            catch (SocketException e)
            {
                if (_stopping) return;
                // ICMP port-unreachable from an earlier send shows up here on Linux as ConnectionRefused: not fatal.
                Interlocked.Increment(ref _receiveErrors);
                if (e.SocketErrorCode != SocketError.ConnectionRefused && e.SocketErrorCode != SocketError.ConnectionReset)
                {
                    _log?.Invoke($"receive on {local} failed: {e.SocketErrorCode}");
                    Thread.Sleep(10);
                }
                continue;
            }
            try
            {
                onPacket(buffer.AsSpan(0, n).ToArray(), (IPEndPoint)from, local);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // The handler is the node's queue; it should never throw. If it does, keep serving and say so.
                Interlocked.Increment(ref _receiveErrors);
                _log?.Invoke($"packet handler failed on {local}: {e.GetType().Name}: {e.Message}");
            }
        }
    }

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
        _stopping = true;
        foreach (var (s, _) in _sockets) s.Dispose();
        _anyV4?.Dispose();
        _anyV6?.Dispose();
        foreach (var t in _threads) t.Join(TimeSpan.FromSeconds(2));
    }
}
