using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace Lisp.DataPlane;

/// <summary>
/// In-memory socket doubles: senders hand packets to the underlay, which checks the outer IP + UDP header
/// (raw mode) the way a receiving kernel would and queues the UDP payload for the receiver bound to the
/// destination address on the data port. Outer fragments are recorded in <see cref="Sent"/> but not
/// delivered (tests reassemble them). Thread-safe.
/// </summary>
public sealed class InMemoryUnderlay(ushort dataPort = Lisp.Wire.DataHeader.Port)
{
    private readonly ConcurrentDictionary<IPAddress, InMemoryReceiver> _receivers = new();

    /// <summary>Every packet any sender emitted, as sent (outer IP packet in raw mode, UDP payload otherwise), with its destination.</summary>
    public ConcurrentQueue<(byte[] Packet, IPEndPoint To)> Sent { get; } = new();
    public long Undeliverable;

    public InMemoryReceiver Bind(IPAddress local) => _receivers.GetOrAdd(local, a => new InMemoryReceiver(a));
    public InMemorySender Sender(IPAddress local, bool writesOuterIp = true) => new(this, local, writesOuterIp);

    internal void Deliver(byte[] packet, IPEndPoint to, IPAddress from, bool outer)
    {
        Sent.Enqueue((packet, to));
        ReadOnlySpan<byte> payload = packet;
        IPEndPoint source = new(from, 0);
        if (outer)
        {
            if (!TryStrip(packet, out payload, out source, out var dst, out ushort dport) || dport != dataPort || !dst.Equals(to.Address))
            {
                Interlocked.Increment(ref Undeliverable);
                return;
            }
        }
        else if (to.Port != dataPort)
        {
            Interlocked.Increment(ref Undeliverable);
            return;
        }
        if (_receivers.TryGetValue(to.Address, out var r)) r.Enqueue(payload.ToArray(), source);
        else Interlocked.Increment(ref Undeliverable);
    }

    /// <summary>Parses outer IPv4/IPv6 + UDP; false for fragments, bad lengths or non-UDP.</summary>
    public static bool TryStrip(ReadOnlySpan<byte> p, out ReadOnlySpan<byte> payload, out IPEndPoint source, out IPAddress destination, out ushort dport)
    {
        payload = default;
        source = new IPEndPoint(IPAddress.None, 0);
        destination = IPAddress.None;
        dport = 0;
        int ip;
        if (p.Length >= 20 && p[0] >> 4 == 4)
        {
            ip = (p[0] & 15) * 4;
            if (p[9] != 17 || BinaryPrimitives.ReadUInt16BigEndian(p.Slice(2)) != p.Length) return false;
            if ((BinaryPrimitives.ReadUInt16BigEndian(p.Slice(6)) & 0x3fff) != 0) return false; // fragment
            source = new IPEndPoint(new IPAddress(p.Slice(12, 4)), 0);
            destination = new IPAddress(p.Slice(16, 4));
        }
        else if (p.Length >= 40 && p[0] >> 4 == 6)
        {
            ip = 40;
            if (p[6] != 17 || BinaryPrimitives.ReadUInt16BigEndian(p.Slice(4)) + 40 != p.Length) return false;
            source = new IPEndPoint(new IPAddress(p.Slice(8, 16)), 0);
            destination = new IPAddress(p.Slice(24, 16));
        }
        else return false;
        if (p.Length < ip + 8 || BinaryPrimitives.ReadUInt16BigEndian(p.Slice(ip + 4)) != p.Length - ip) return false;
        source.Port = BinaryPrimitives.ReadUInt16BigEndian(p.Slice(ip));
        dport = BinaryPrimitives.ReadUInt16BigEndian(p.Slice(ip + 2));
        payload = p.Slice(ip + 8);
        return true;
    }
}

/// <summary>Sender double: copies each packet out of the batch into the underlay.</summary>
public sealed class InMemorySender(InMemoryUnderlay underlay, IPAddress local, bool writesOuterIp) : IBatchSender
{
    public bool WritesOuterIp { get; } = writesOuterIp;
    /// <summary>When set, sends fail (to test the send-error counter).</summary>
    public bool Fail { get; set; }

    public int Send(PacketBatch batch, ReadOnlySpan<int> indices)
    {
        if (Fail) return 0;
        foreach (int i in indices)
        {
            var to = batch.Address(i) ?? new IPEndPoint(IPAddress.None, 0);
            underlay.Deliver(batch.Packet(i).ToArray(), to, local, WritesOuterIp);
        }
        return indices.Length;
    }

    public void Dispose()
    {
    }
}

/// <summary>Receiver double bound to one underlay address.</summary>
public sealed class InMemoryReceiver(IPAddress local) : IBatchReceiver
{
    private readonly ConcurrentQueue<(byte[], IPEndPoint)> _queue = new();
    private readonly SemaphoreSlim _arrived = new(0);

    public IPAddress Local { get; } = local;

    /// <summary>Queues a datagram as if it arrived from <paramref name="from"/> (tests feed garbage this way).</summary>
    public void Enqueue(byte[] payload, IPEndPoint from)
    {
        _queue.Enqueue((payload, from));
        _arrived.Release();
    }

    public int Receive(PacketBatch batch, int timeoutMs)
    {
        batch.Count = 0;
        if (!_arrived.Wait(Math.Max(0, timeoutMs))) return 0;
        int n = 0;
        while (_queue.TryDequeue(out var item))
        {
            var (payload, from) = item;
            if (payload.Length > batch.MaxPacket)
            {
                batch.Offset[n] = PacketBatch.Headroom;
                batch.Length[n] = -1;
            }
            else batch.Set(n, payload);
            if (from.AddressFamily == AddressFamily.InterNetwork)
            {
                batch.SetV4Address(n, BinaryPrimitives.ReadUInt32BigEndian(from.Address.GetAddressBytes()), (ushort)from.Port);
            }
            else
            {
                batch.SetV6Address(n, from.Address.GetAddressBytes(), (ushort)from.Port);
            }
            n++;
            if (n == batch.Capacity || !_arrived.Wait(0)) break;
        }
        batch.Count = n;
        return n;
    }

    public void Dispose() => _arrived.Dispose();
}
