using System.Runtime.InteropServices;
using Lisp.DataPlane.Offload;

namespace Lisp.DataPlane;

/// <summary>
/// The ETR's writes into one TUN that speaks virtio-net headers: decapsulated packets are offered one by one; runs of
/// one TCP flow are joined into super-packets (<see cref="TcpCoalescer"/>), and so are runs of equal-sized datagrams of
/// one UDP flow when the device takes UDP segmentation (<see cref="UdpCoalescer"/>, USO); everything else stays a plain packet behind
/// an all-zero header. <see cref="Flush"/> writes them in arrival order, each joined packet at the place of its first
/// member: a coalescer closes a flow's group when it refuses one of the flow's packets, so no flow is reordered.
/// One write per super-packet instead of one per segment is what lets the far host's TCP keep up (issue 13).
/// Owned by one ETR worker. Every packet, joined or plain, is read where it lies in the worker's receive batch (a
/// joined one goes out as one writev of its rewritten headers and its members' payloads), so <see cref="Flush"/> must
/// run before that batch is reused.
/// </summary>
internal sealed unsafe class VnetTunWriter : IDisposable
{
    /// <summary>Packets gathered before a flush (also the coalescer's capacity).</summary>
    public const int Limit = 256;

    private enum Kind : byte { Tcp, Udp, Plain }

    private readonly ITun _tun;
    private readonly Coalescer<TcpRules> _tcp;
    private readonly Coalescer<UdpRules>? _udp;
    // One group's gather list: its header block, then one entry per member (a group has at most Limit members).
    private Native.IoVec* _iov = (Native.IoVec*)NativeMemory.Alloc(Limit + 1, (nuint)sizeof(Native.IoVec));
    private readonly Kind[] _kind = new Kind[Limit];
    private readonly int[] _index = new int[Limit];
    private readonly int[] _plainSlot = new int[Limit], _plainOffset = new int[Limit], _plainLength = new int[Limit];
    private int _entries, _plains, _offered;

    /// <param name="udp">join UDP runs too (the device accepted USO: Linux 6.2+ takes GSO_UDP_L4 packets from us)</param>
    public VnetTunWriter(ITun tun, int maxPacket, bool udp)
    {
        _tun = tun;
        _tcp = new Coalescer<TcpRules>(Limit, 64, Math.Max(maxPacket, 1600));
        _udp = udp ? new Coalescer<UdpRules>(Limit, 64, Math.Max(maxPacket, 1600)) : null;
    }

    public bool Full => _offered == Limit;
    public bool Empty => _offered == 0;

    /// <summary>Takes the decapsulated packet at <paramref name="offset"/> of <paramref name="batch"/>'s slot <paramref name="slot"/>.</summary>
    public void Offer(PacketBatch batch, int slot, int offset, int length)
    {
        _offered++;
        // Taken in place: the batch is not reused before Flush, and Flush hands the kernel the members where they lie.
        byte* packet = batch.SlotPointer(slot) + offset;
        int before = _tcp.GroupCount;
        if (_tcp.TryAddInPlace(packet, length, slot))
        {
            if (_tcp.GroupCount > before) Add(Kind.Tcp, before);
            return;
        }
        if (_udp is not null)
        {
            before = _udp.GroupCount;
            if (_udp.TryAddInPlace(packet, length, slot))
            {
                if (_udp.GroupCount > before) Add(Kind.Udp, before);
                return;
            }
        }
        _plainSlot[_plains] = slot;
        _plainOffset[_plains] = offset;
        _plainLength[_plains] = length;
        Add(Kind.Plain, _plains++);
    }

    private void Add(Kind kind, int index)
    {
        _kind[_entries] = kind;
        _index[_entries++] = index;
    }

    /// <summary>Writes everything offered since the last flush, in order; counts packets written and refused.</summary>
    public void Flush(PacketBatch batch, DataPlaneCounters counters)
    {
        for (int e = 0; e < _entries; e++)
        {
            int i = _index[e];
            if (_kind[e] == Kind.Plain)
            {
                if (_tun.Write(batch.Slot(_plainSlot[i]).Slice(_plainOffset[i], _plainLength[i]))) counters.DecapPackets++;
                else counters.Drop(DropReason.TunWriteError);
                continue;
            }
            bool tcp = _kind[e] == Kind.Tcp;
            int members = tcp ? _tcp.Members(i) : _udp!.Members(i);
            var iov = new Span<Native.IoVec>(_iov, Limit + 1);
            int entries = tcp ? _tcp.Gather(i, iov, out int bytes) : _udp!.Gather(i, iov, out bytes);
            if (_tun.WriteGather(iov.Slice(0, entries), bytes))
            {
                counters.DecapPackets += members;
                if (members > 1)
                {
                    counters.CoalescedWrites++;
                    counters.CoalescedSegments += members;
                }
            }
            else counters.Drop(DropReason.TunWriteError, members);
        }
        _tcp.Reset();
        _udp?.Reset();
        _entries = _plains = _offered = 0;
    }

    public void Dispose()
    {
        NativeMemory.Free(_iov);
        _iov = null;
    }
}
