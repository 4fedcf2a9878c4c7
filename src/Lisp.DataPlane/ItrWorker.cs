using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using Lisp.DataPlane.Offload;
using Lisp.MapCache;
using Lisp.Wire;

namespace Lisp.DataPlane;

/// <summary>
/// ITR pipeline of one worker thread. Data flow and ownership, per batch:
/// <code>
///   TUN queue --ReadBatch--> PacketBatch (packets at Headroom)
///     for each packet: parse inner destination, FlowHash, snapshot.TryLookupV4/V6 (lock-free, one snapshot per batch)
///       Forward   -> outer IP + UDP (source port from the flow hash) + LISP written in the headroom, in place
///       too big   -> outer IPv4 fragments into the fragment batch, or ICMP too-big written back into the TUN
///       miss      -> MissQueue.TryPost (bounded, rate-limited, never blocks) + drop or hold per MissPolicy
///       negative / no usable RLOC / no local RLOC -> drop, counted by reason
///   --> one sendmmsg per address family (raw socket: outer headers ours; UDP socket: the kernel's)
/// </code>
/// Everything here belongs to the worker thread: the batch buffers, the counters it writes, the hold queue and
/// the miss suppressor. The only shared state is the map-cache snapshot (immutable, read through a volatile
/// reference once per batch) and the miss queue (lock-free, bounded). The worker never waits on the control plane.
/// </summary>
public sealed class ItrWorker : IDisposable
{
    private readonly ITun _tun;
    private readonly MapCacheReader _reader;
    private readonly IBatchSender? _v4;
    private readonly IBatchSender? _v6;
    private readonly MissQueue _misses;
    private readonly DataPlaneOptions _o;
    private readonly PacketBatch _batch;
    private readonly PacketBatch _frags;
    private readonly PacketBatch _hold;
    private readonly long[] _holdSince;
    private readonly bool[] _holdUsed;
    private int _holdCount;
    private long _holdGeneration = -1;
    private readonly int[] _send4;
    private readonly int[] _send6;
    private readonly int[] _fragIdx;
    private int _n4, _n6, _nFrag;
    private readonly byte[] _localV6 = new byte[16];
    private readonly uint _localV4;
    private readonly MissSuppressor _suppressor;
    private readonly byte[] _icmp = new byte[1400];
    private readonly long _holdTicks;
    private uint _rng;
    private ushort _ipId;

    private readonly EchoNonceTable? _echo;

    // Segmentation offload (the TUN speaks virtio-net headers): a super-packet is split here, after one lookup for
    // the whole run, either into one contiguous buffer sent with UDP_SEGMENT (each segment behind its own LISP
    // header) or into the slots of _segments, encapsulated like any packet and sent with sendmmsg.
    private readonly bool _vnet;
    private readonly byte[]? _gso;
    private readonly int[] _segmentLengths = new int[MaxSegments];
    private readonly PacketBatch? _segments;
    private readonly byte[] _gsoAddress = new byte[PacketBatch.AddressSize];
    private VirtioNetHeader _super;
    private bool _isSuper;

    // IPv4 lookups of a read batch done up front with the prefetching LookupV4Batch (2.2-2.6x faster than lookups one
    // by one once the table is out of cache, about even when it is hot: perf/RESULTS.md): _batchResult[i] is valid for
    // slot i when _batchLookup[i] is set.
    private readonly uint[] _batchDestinations, _batchFlows;
    private readonly int[] _batchSlots;
    private readonly LookupResult[] _batchResults;
    private readonly int[] _batchLookup;
    /// <summary>Below this many IPv4 packets a read batch is looked up one by one (the pipeline needs a few to fill).</summary>
    public const int BatchLookupMinimum = 16;
    /// <summary>Segments one super-packet may become (a 64 KiB TCP super-packet at an MSS of 256 or more).</summary>
    public const int MaxSegments = 256;
    /// <summary>Datagrams per UDP_SEGMENT sendmsg: the kernel's limit was 64 until Linux 6.x raised it; 64 works everywhere.</summary>
    public const int MaxGsoSegments = 64;
    /// <summary>Bytes per UDP_SEGMENT sendmsg: one UDP datagram's worth, under the 65,507-byte IPv4 payload limit.</summary>
    public const int MaxGsoBytes = 65000;

    /// <summary>
    /// The most segments a TCP super-packet from the TUN may have so that its encapsulated segments leave in one
    /// UDP_SEGMENT sendmsg: the largest segment that fits an underlay of <paramref name="underlayMtu"/> bytes is
    /// mtu - 28 bytes of UDP payload (IPv4 outer header, the smaller one, so the bound holds for both families).
    /// With the kernel's default of 64 KiB super-packets (46 segments at MSS 1412, 64,768 bytes with LISP headers
    /// more than one datagram holds), every super-packet cost a second, 2-segment sendmsg: the ETR's receive buffers
    /// held 23 datagrams on average instead of 44, and four TCP streams through the overlay gained 7-16 % when the
    /// TUN's gso_max_segs was lowered to this (3 paired runs, 2 cores; perf/RESULTS.md, issue 13).
    /// </summary>
    public static int SegmentsPerGsoSend(int underlayMtu) =>
        Math.Clamp(MaxGsoBytes / Math.Max(1, underlayMtu - 28), 1, MaxGsoSegments);

    /// <param name="echo">echo-nonce on: the shared per-RLOC state (requests and echoes go into the nonce field)</param>
    public ItrWorker(ITun tun, Func<MapCacheSnapshot> snapshot, IBatchSender? v4, IBatchSender? v6, MissQueue misses,
        DataPlaneOptions options, DataPlaneCounters? counters = null, EchoNonceTable? echo = null)
        : this(tun, MapCacheReader.From(snapshot), v4, v6, misses, options, counters, echo)
    {
    }

    /// <param name="snapshot">This worker's own reader (<see cref="MapCacheWriter.RegisterReader"/>).</param>
    /// <param name="echo">echo-nonce on: the shared per-RLOC state (requests and echoes go into the nonce field)</param>
    public ItrWorker(ITun tun, MapCacheReader snapshot, IBatchSender? v4, IBatchSender? v6, MissQueue misses,
        DataPlaneOptions options, DataPlaneCounters? counters = null, EchoNonceTable? echo = null)
    {
        _echo = echo;
        _tun = tun;
        _reader = snapshot;
        _v4 = v4;
        _v6 = v6;
        _misses = misses;
        _o = options;
        Counters = counters ?? new DataPlaneCounters();
        _vnet = tun.VnetHeader;
        // With offloads a read may be a 64 KiB super-packet: fewer, larger slots (memory is only touched as used).
        _batch = _vnet ? new PacketBatch(Math.Min(options.BatchSize, 32), 65535) : new PacketBatch(options.BatchSize, options.MaxPacket);
        if (_vnet)
        {
            _gso = GC.AllocateUninitializedArray<byte>(128 * 1024, pinned: true);
            _segments = new PacketBatch(MaxSegments, Math.Max(576, options.UnderlayMtu));
        }
        // Fragments of one batch: a 9000-byte packet over a 1280 underlay is 8 fragments; larger batches fall back to ICMP.
        _frags = new PacketBatch(Math.Min(1024, options.BatchSize * 2), Math.Max(128, options.UnderlayMtu));
        _hold = new PacketBatch(Math.Max(1, options.HoldPackets), options.MaxPacket);
        _holdSince = new long[_hold.Capacity];
        _holdUsed = new bool[_hold.Capacity];
        _send4 = new int[Math.Max(Math.Max(_batch.Capacity, _hold.Capacity), MaxSegments)];
        _batchDestinations = new uint[_batch.Capacity];
        _batchFlows = new uint[_batch.Capacity];
        _batchSlots = new int[_batch.Capacity];
        _batchResults = new LookupResult[_batch.Capacity];
        _batchLookup = new int[_batch.Capacity];
        _send6 = new int[_send4.Length];
        _fragIdx = new int[_frags.Capacity];
        _localV4 = options.LocalV4Value;
        options.LocalRlocV6?.TryWriteBytes(_localV6, out _);
        _suppressor = new MissSuppressor(1024, options.MissRepeatInterval.TotalSeconds);
        _holdTicks = (long)(options.HoldTime.TotalSeconds * Stopwatch.Frequency);
        _rng = (uint)Random.Shared.Next() | 1;
        _ipId = (ushort)Random.Shared.Next();
    }

    public DataPlaneCounters Counters { get; }
    public int HeldPackets => _holdCount;

    /// <summary>Runs until <paramref name="stop"/> is cancelled (each wait bounded by PollMs).</summary>
    public void Run(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested) RunOnce(_o.PollMs);
    }

    /// <summary>One batch: read, look up, encapsulate, send. Returns the packets read.</summary>
    public int RunOnce(int timeoutMs)
    {
        int n = _tun.ReadBatch(_batch, _holdCount > 0 ? Math.Min(timeoutMs, 10) : timeoutMs);
        if (n == 0 && _holdCount == 0) return 0;
        // One snapshot per batch, released before the next wait: with chunk recycling the writer reuses what
        // no reader holds, so nothing of it may be kept past Release.
        var snap = _reader.Acquire();
        try
        {
            long now = Stopwatch.GetTimestamp();
            if (_holdCount > 0) ServiceHeld(snap, now);
            if (n == 0) return 0;
            Counters.Batches++;
            _n4 = _n6 = _nFrag = 0;
            LookUpV4Batch(snap, n);
            for (int i = 0; i < n; i++)
            {
                if (_vnet) ProcessWithHeader(i, snap, now);
                else Process(_batch, i, snap, now, hold: true);
            }
        }
        finally
        {
            _reader.Release();
        }
        Flush(_batch);
        return n;
    }

    private void Flush(PacketBatch batch)
    {
        if (_n4 > 0) Send(_v4!, batch, _send4.AsSpan(0, _n4), _o.UnderlayMtu - 28);
        if (_n6 > 0) Send(_v6!, batch, _send6.AsSpan(0, _n6), _o.UnderlayMtu - 48);
        if (_nFrag > 0)
        {
            int s = _v4!.Send(_frags, _fragIdx.AsSpan(0, _nFrag));
            if (s < _nFrag) Counters.Drop(DropReason.SendError, _nFrag - s);
        }
        _n4 = _n6 = _nFrag = 0;
    }

    /// <summary>
    /// One family's queued packets. Through a UDP_SEGMENT sender, each run of packets of one flow to one RLOC with equal
    /// lengths (the last of a run may be shorter) is copied back to back and sent in one sendmsg: the kernel then carries
    /// the run as one buffer down its stack and the far ETR's UDP_GRO socket takes it as one (a 64-byte flood is 64
    /// packets per system call and per trip through the stack instead of one). Everything else goes by sendmmsg, in order.
    /// </summary>
    /// <param name="largestDatagram">UDP payload that fits the underlay MTU unfragmented: a larger packet is never part of a
    /// run (the kernel refuses a segment size over the MTU, where a single send of it would have been fragmented)</param>
    private void Send(IBatchSender sender, PacketBatch batch, Span<int> queued, int largestDatagram)
    {
        if (sender is not ISegmentSender { GsoEnabled: true } gso || _gso is null || queued.Length < 2)
        {
            Sent(sender.Send(batch, queued), queued.Length);
            return;
        }
        int singlesFrom = 0, k = 0;
        while (k < queued.Length)
        {
            int first = queued[k], size = batch.Length[first];
            int limit = size > largestDatagram ? 1 : Math.Min(MaxGsoSegments, MaxGsoBytes / Math.Max(1, size));
            int end = k + 1;
            while (end < queued.Length && end - k < limit)
            {
                int j = queued[end];
                if (batch.Flow[j] != batch.Flow[first] || batch.Length[j] > size || !batch.AddressBytes(j).SequenceEqual(batch.AddressBytes(first))) break;
                end++;
                if (batch.Length[j] < size) break; // a shorter packet ends the run
            }
            if (end - k < 2)
            {
                k = end;
                continue;
            }
            // The packets before this run leave first, so a flow's packets keep their order.
            if (singlesFrom < k) Sent(sender.Send(batch, queued[singlesFrom..k]), k - singlesFrom);
            int at = 0;
            for (int m = k; m < end; m++)
            {
                int j = queued[m];
                batch.Packet(j).CopyTo(_gso.AsSpan(at));
                at += batch.Length[j];
            }
            int sent;
            unsafe
            {
                sent = gso.SendSegments(_gso.AsSpan(0, at), size, batch.AddressPointer(first), batch.Flow[first]);
            }
            Counters.GsoSends++;
            Sent(sent, end - k);
            k = singlesFrom = end;
        }
        if (singlesFrom < queued.Length) Sent(sender.Send(batch, queued[singlesFrom..]), queued.Length - singlesFrom);
    }

    private void Sent(int sent, int tried)
    {
        if (sent < tried)
        {
            // Byte counts were added per packet; take the failed ones back out of the packet count.
            Counters.Drop(DropReason.SendError, tried - sent);
            Counters.EncapPackets -= tried - sent;
        }
    }

    private enum Outcome { Queued, Dropped, Missed }

    /// <summary>An IPv4 packet whose total-length field is the length read (the only IPv4 the ITR forwards).</summary>
    private static bool IsWholeIpv4(ReadOnlySpan<byte> pkt) =>
        pkt.Length >= 20 && pkt[0] >> 4 == 4 && BinaryPrimitives.ReadUInt16BigEndian(pkt.Slice(2)) == pkt.Length;

    /// <summary>
    /// Looks the batch's well-formed IPv4 packets up before they are processed: in one <see cref="MapCacheSnapshot.LookupV4Batch"/>
    /// call when there are enough of them, one by one otherwise (the flow hash is computed once either way).
    /// </summary>
    private void LookUpV4Batch(MapCacheSnapshot snap, int n)
    {
        int m = 0;
        for (int i = 0; i < n; i++)
        {
            _batchLookup[i] = -1;
            var pkt = _batch.Packet(i);
            if (!IsWholeIpv4(pkt)) continue;
            _batchDestinations[m] = BinaryPrimitives.ReadUInt32BigEndian(pkt.Slice(16));
            _batchFlows[m] = FlowHash.FromPacket(pkt);
            _batchSlots[m++] = i;
        }
        if (m >= BatchLookupMinimum) snap.LookupV4Batch(_o.InstanceId, _batchDestinations.AsSpan(0, m), _batchFlows.AsSpan(0, m), _batchResults.AsSpan(0, m));
        else for (int k = 0; k < m; k++) snap.TryLookupV4(_o.InstanceId, _batchDestinations[k], _batchFlows[k], out _batchResults[k]);
        for (int k = 0; k < m; k++) _batchLookup[_batchSlots[k]] = k;
    }

    /// <summary>
    /// A packet read with its virtio-net header (10 bytes just before it): a plain packet whose checksum the host left
    /// to us is completed first (we told the device we accept that, TUN_F_CSUM); a super-packet (TSO/USO) is looked up
    /// once and split at encapsulation (<see cref="EncapsulateSuper"/>). A super-packet that misses is not held (it is
    /// up to 64 KiB; the sender's TCP retransmits): it asks for the mapping and is counted as a miss drop.
    /// </summary>
    private Outcome ProcessWithHeader(int i, MapCacheSnapshot snap, long now)
    {
        int off = _batch.Offset[i];
        if (!VirtioNetHeader.TryRead(_batch.Slot(i).Slice(off - VirtioNetHeader.Size, VirtioNetHeader.Size), out var h))
        {
            Counters.Drop(DropReason.Malformed);
            return Outcome.Dropped;
        }
        if (h.GsoKind == VirtioNetHeader.GsoNone)
        {
            if ((h.Flags & VirtioNetHeader.FlagNeedsCsum) != 0)
            {
                if (!Segmenter.TryCompleteChecksum(_batch.Packet(i), h))
                {
                    Counters.Drop(DropReason.Malformed);
                    return Outcome.Dropped;
                }
                Counters.ChecksumsCompleted++;
            }
            return Process(_batch, i, snap, now, hold: true);
        }
        _super = h;
        _isSuper = true;
        try
        {
            return Process(_batch, i, snap, now, hold: false);
        }
        finally
        {
            _isSuper = false;
        }
    }

    /// <summary>
    /// Splits the super-packet in slot <paramref name="i"/> into segments that fit the underlay after encapsulation
    /// (the MSS is lowered when the host's is too big for it, so no ICMP too-big is needed) and sends them to one RLOC:
    /// what was queued before it in this batch goes first, so a flow's packets keep their order.
    /// </summary>
    private Outcome EncapsulateSuper(PacketBatch b, int i, RlocTable rlocs, int rloc, uint flow, ushort destVersion, long now)
    {
        var pkt = b.Packet(i);
        if (SenderFor(rlocs, rloc, out bool v4) is not { } sender) return Outcome.Dropped;
        int overhead = v4 ? Encapsulation.Ipv4Overhead : Encapsulation.Ipv6Overhead;
        int headers = Segmenter.HeaderLength(pkt, _super);
        if (headers < 0)
        {
            Counters.Drop(DropReason.Malformed);
            return Outcome.Dropped;
        }
        int mss = Math.Min(_super.GsoSize == 0 ? int.MaxValue : _super.GsoSize, _o.UnderlayMtu - overhead - headers);
        if (mss < 8)
        {
            Counters.Drop(DropReason.TooBig);
            return Outcome.Dropped;
        }
        Counters.SuperPackets++;
        Flush(b);
        return sender is ISegmentSender { GsoEnabled: true } gso
            ? SendSuperWithGso(gso, pkt, headers, mss, rlocs, rloc, flow, destVersion, now)
            : SendSuperAsBatch(pkt, headers, mss, rlocs, rloc, flow, destVersion, now);
    }

    /// <summary>
    /// UDP mode with UDP_SEGMENT: each segment is [LISP header][inner headers] written into <see cref="_gso"/> and its
    /// payload where it lies in the read slot, one gather list per sendmsg of up to <see cref="SegmentsPerGsoSend"/>
    /// segments (64 or 65,000 bytes); the kernel cuts the datagrams every stride bytes of the joined list. The payload
    /// is read once, for its checksum, and copied only by the kernel (it was copied into <see cref="_gso"/> as well before).
    /// </summary>
    private unsafe Outcome SendSuperWithGso(ISegmentSender socket, ReadOnlySpan<byte> pkt, int headers, int mss, RlocTable rlocs, int rloc, uint flow, ushort destVersion, long now)
    {
        int headerStride = DataHeader.Length + headers;
        int n = Segmenter.SegmentHeaders(pkt, _super, mss, _gso, DataHeader.Length, _segmentLengths);
        if (n <= 0)
        {
            Counters.Drop(DropReason.Malformed);
            return Outcome.Dropped;
        }
        long bytes = 0;
        for (int k = 0; k < n; k++)
        {
            var lisp = _gso.AsSpan(k * headerStride, DataHeader.Length);
            FastEncapsulation.WriteLispHeader(lisp, _o.InstanceId, NextNonce());
            Stamp(lisp, rlocs, rloc, destVersion, now);
            bytes += _segmentLengths[k];
        }
        if (rlocs.IsV4(rloc)) PacketBatch.WriteV4Address(_gsoAddress, rlocs.V4(rloc), _o.DataPort);
        else PacketBatch.WriteV6Address(_gsoAddress, rlocs.Bytes(rloc), _o.DataPort);
        int stride = headerStride + mss;
        int perSend = Math.Max(1, Math.Min(MaxGsoSegments, MaxGsoBytes / stride));
        var iov = stackalloc Native.IoVec[2 * MaxGsoSegments];
        int sent = 0;
        fixed (byte* headerBlocks = _gso)
        fixed (byte* packet = pkt)
        fixed (byte* address = _gsoAddress)
        {
            for (int k = 0; k < n; k += perSend)
            {
                int m = Math.Min(perSend, n - k), length = 0;
                for (int j = 0; j < m; j++)
                {
                    int s = k + j, payload = _segmentLengths[s] - headers;
                    iov[2 * j] = new Native.IoVec { Base = headerBlocks + s * headerStride, Length = (nuint)headerStride };
                    iov[2 * j + 1] = new Native.IoVec { Base = packet + headers + (long)s * mss, Length = (nuint)payload };
                    length += headerStride + payload;
                }
                sent += socket.SendSegments(new ReadOnlySpan<Native.IoVec>(iov, 2 * m), length, stride, address, flow);
                Counters.GsoSends++;
            }
        }
        Counters.SuperSegments += n;
        Counters.EncapPackets += sent;
        Counters.EncapBytes += sent == n ? bytes : bytes * sent / n;
        if (sent < n) Counters.Drop(DropReason.SendError, n - sent);
        return sent > 0 ? Outcome.Queued : Outcome.Dropped;
    }

    /// <summary>
    /// Raw socket (or UDP without GSO): the segments land in the slots of <see cref="_segments"/>, each at the offset that
    /// makes the splitter's stride equal the slot size (so it writes straight into the slots), and each is then
    /// encapsulated as a packet of its own: per-flow source port, one sendmmsg for the run.
    /// </summary>
    private unsafe Outcome SendSuperAsBatch(ReadOnlySpan<byte> pkt, int headers, int mss, RlocTable rlocs, int rloc, uint flow, ushort destVersion, long now)
    {
        var batch = _segments!;
        int prefix = batch.SlotSize - headers - mss;
        int n = prefix < PacketBatch.Headroom ? -1
            : Segmenter.Segment(pkt, _super, mss, new Span<byte>(batch.SlotPointer(0), batch.SlotSize * batch.Capacity), prefix, _segmentLengths.AsSpan(0, batch.Capacity));
        if (n <= 0)
        {
            Counters.Drop(DropReason.Malformed);
            return Outcome.Dropped;
        }
        int queued = 0;
        for (int k = 0; k < n; k++)
        {
            batch.Offset[k] = prefix;
            batch.Length[k] = _segmentLengths[k];
            if (Encapsulate(batch, k, rlocs, rloc, flow, destVersion, now) == Outcome.Queued) queued++;
        }
        Counters.SuperSegments += n;
        Flush(batch);
        return queued > 0 ? Outcome.Queued : Outcome.Dropped;
    }

    private Outcome Process(PacketBatch b, int i, MapCacheSnapshot snap, long now, bool hold)
    {
        var pkt = b.Packet(i);
        int len = pkt.Length;
        uint flow;
        LookupResult r;
        bool found;
        int version = len > 0 ? pkt[0] >> 4 : 0;
        if (b == _batch && _batchLookup[i] >= 0)
        {
            int k = _batchLookup[i];
            flow = _batchFlows[k];
            r = _batchResults[k];
            found = r.Status != LookupStatus.Miss;
        }
        else if (IsWholeIpv4(pkt))
        {
            flow = FlowHash.FromPacket(pkt);
            found = snap.TryLookupV4(_o.InstanceId, BinaryPrimitives.ReadUInt32BigEndian(pkt.Slice(16)), flow, out r);
        }
        else if (version == 6 && len >= 40 && BinaryPrimitives.ReadUInt16BigEndian(pkt.Slice(4)) + 40 == len)
        {
            flow = FlowHash.FromPacket(pkt);
            found = snap.TryLookupV6(_o.InstanceId, V6Key.FromBytes(pkt.Slice(24)), flow, out r);
        }
        else
        {
            Counters.Drop(DropReason.Malformed);
            return Outcome.Dropped;
        }
        if (!found)
        {
            PostMiss(pkt, now);
            if (hold && _o.MissPolicy == MissPolicy.Queue && Hold(pkt, now)) return Outcome.Missed;
            Counters.Drop(hold && _o.MissPolicy == MissPolicy.Queue ? DropReason.MissHoldExpired : DropReason.Miss);
            return Outcome.Dropped;
        }
        switch (r.Status)
        {
            case LookupStatus.Forward:
                return _isSuper
                    ? EncapsulateSuper(b, i, snap.Rlocs, r.RlocIndex, flow, r.MapVersion, now)
                    : Encapsulate(b, i, snap.Rlocs, r.RlocIndex, flow, r.MapVersion, now);
            case LookupStatus.Negative:
                if (r.Action == MapReplyAction.NativelyForward)
                {
                    Counters.Drop(DropReason.NativelyForward);
                    return Outcome.Dropped;
                }
                if (r.Action == MapReplyAction.SendMapRequest) PostMiss(pkt, now);
                Counters.Drop(DropReason.Negative);
                return Outcome.Dropped;
            default:
                Counters.Drop(DropReason.NoUsableRloc);
                return Outcome.Dropped;
        }
    }

    /// <summary>The sender of the RLOC's address family; null (counted as no-local-rloc) when this node has no RLOC of that family.</summary>
    private IBatchSender? SenderFor(RlocTable rlocs, int rloc, out bool v4)
    {
        v4 = rlocs.IsV4(rloc);
        var sender = v4 ? _v4 : _v6;
        if (sender is null) Counters.Drop(DropReason.NoLocalRloc);
        return sender;
    }

    private Outcome Encapsulate(PacketBatch b, int i, RlocTable rlocs, int rloc, uint flow, ushort destVersion, long now)
    {
        int off = b.Offset[i], len = b.Length[i];
        var slot = b.Slot(i);
        if (SenderFor(rlocs, rloc, out bool v4) is not { } sender) return Outcome.Dropped;
        // The same bytes on the wire whether we write IP + UDP (raw) or the kernel does (UDP fallback).
        int overhead = v4 ? Encapsulation.Ipv4Overhead : Encapsulation.Ipv6Overhead;
        uint nonce = NextNonce();
        ushort sport = FlowHash.SourcePort(flow);
        bool tooBig = len + overhead > _o.UnderlayMtu;
        var inner = slot.Slice(off, len);
        b.Flow[i] = flow;
        bool innerV4Df = inner[0] >> 4 == 4 && (inner[6] & 0x40) != 0;
        bool innerV6 = inner[0] >> 4 == 6;
        if (tooBig && (innerV4Df || innerV6 || !v4))
        {
            // RFC 9300 7.2-style: tell the source the usable MTU and drop.
            int n = Mtu.WriteTooBig(inner, _o.UnderlayMtu - overhead, _icmp);
            if (n > 0 && _tun.Write(_icmp.AsSpan(0, n))) Counters.IcmpTooBig++;
            Counters.Drop(DropReason.TooBig);
            return Outcome.Dropped;
        }
        if (!sender.WritesOuterIp)
        {
            // UDP fallback: only the LISP header is ours; the kernel adds IP + UDP (and fragments if it must).
            FastEncapsulation.WriteLispHeader(slot.Slice(off - DataHeader.Length, DataHeader.Length), _o.InstanceId, nonce);
            Stamp(slot.Slice(off - DataHeader.Length, DataHeader.Length), rlocs, rloc, destVersion, now);
            b.Offset[i] = off - DataHeader.Length;
            b.Length[i] = len + DataHeader.Length;
            if (v4) b.SetV4Address(i, rlocs.V4(rloc), _o.DataPort);
            else b.SetV6Address(i, rlocs.Bytes(rloc), _o.DataPort);
        }
        else if (v4)
        {
            int start = FastEncapsulation.WriteV4(slot, off, len, _localV4, rlocs.V4(rloc), sport, _o.InstanceId, nonce, destinationPort: _o.DataPort);
            Stamp(slot.Slice(start + 28, DataHeader.Length), rlocs, rloc, destVersion, now);
            b.Offset[i] = start;
            b.Length[i] = len + Encapsulation.Ipv4Overhead;
            b.SetV4Address(i, rlocs.V4(rloc), 0);
            if (tooBig)
            {
                // Inner IPv4 without DF: send the encapsulated packet as outer fragments (RFC 9300 7.1).
                var whole = b.Packet(i);
                whole[6] &= 0xbf; // clear DF on the outer header before splitting
                int first = _nFrag;
                int count = Mtu.FragmentV4(whole, _o.UnderlayMtu, ++_ipId, _frags, first);
                if (count == 0)
                {
                    Counters.Drop(DropReason.TooBig);
                    return Outcome.Dropped;
                }
                for (int k = 0; k < count; k++)
                {
                    _frags.SetV4Address(first + k, rlocs.V4(rloc), 0);
                    _fragIdx[_nFrag++] = first + k;
                }
                Counters.Fragmented++;
                Counters.EncapPackets++;
                Counters.EncapBytes += len;
                return Outcome.Queued;
            }
        }
        else
        {
            int start = FastEncapsulation.WriteV6ZeroChecksum(slot, off, len, _localV6, rlocs.Bytes(rloc), sport, _o.InstanceId, nonce, destinationPort: _o.DataPort);
            Stamp(slot.Slice(start + 48, DataHeader.Length), rlocs, rloc, destVersion, now);
            b.Offset[i] = start;
            b.Length[i] = len + Encapsulation.Ipv6Overhead;
            b.SetV6Address(i, rlocs.Bytes(rloc), 0);
        }
        if (v4) _send4[_n4++] = i;
        else _send6[_n6++] = i;
        Counters.EncapPackets++;
        Counters.EncapBytes += len;
        return Outcome.Queued;
    }

    /// <summary>
    /// Rewrites the first word of the LISP header <see cref="FastEncapsulation"/> wrote (N + I, random nonce) when
    /// this packet carries more. Echo-nonce first (RFC 9300 section 10.1; <see cref="EchoNonceTable.OnSend"/>): N + I
    /// with a peer's nonce echoed (E clear) or our request (E set). Otherwise, with map-versioning on
    /// (<see cref="DataPlaneOptions.MapVersion"/>), V + I with our source version and the destination mapping's
    /// version (RFC 9302; the field then holds the versions, so an echo-nonce packet cannot carry them and a
    /// versioned packet has no nonce). Outer checksums are unaffected (IPv4 and IPv6 UDP checksums are zero).
    /// </summary>
    private void Stamp(Span<byte> lisp, RlocTable rlocs, int rloc, ushort destVersion, long now)
    {
        if (_echo is not null)
        {
            var key = rlocs.IsV4(rloc) ? RlocKey.FromV4(rlocs.V4(rloc)) : RlocKey.FromV6(rlocs.Bytes(rloc));
            if (_echo.OnSend(key, now, out uint nonce, out bool request))
            {
                BinaryPrimitives.WriteUInt32BigEndian(lisp, (request ? 0xa800_0000u : 0x8800_0000u) | (nonce & 0xffffff));
                return;
            }
        }
        if (_o.MapVersion == 0) return;
        uint versions = ((uint)(_o.MapVersion & 0xfff) << 12) | (uint)(destVersion & 0xfff);
        BinaryPrimitives.WriteUInt32BigEndian(lisp, 0x1800_0000u | versions);
        Counters.VersionedSent++;
    }

    private uint NextNonce()
    {
        // xorshift32: the nonce only needs to be unpredictable enough for echo-nonce, not cryptographic.
        uint x = _rng;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        _rng = x;
        return x & 0xffffff;
    }

    private void PostMiss(ReadOnlySpan<byte> pkt, long now)
    {
        ulong key;
        IPAddress address;
        if (pkt[0] >> 4 == 4)
        {
            uint d = BinaryPrimitives.ReadUInt32BigEndian(pkt.Slice(16));
            key = ((ulong)_o.InstanceId << 32) | d;
            if (!_suppressor.ShouldPost(key, now)) return;
            address = new IPAddress(pkt.Slice(16, 4));
        }
        else
        {
            key = BinaryPrimitives.ReadUInt64BigEndian(pkt.Slice(24)) * 31 ^ BinaryPrimitives.ReadUInt64BigEndian(pkt.Slice(32)) ^ ((ulong)_o.InstanceId << 40);
            if (!_suppressor.ShouldPost(key, now)) return;
            address = new IPAddress(pkt.Slice(24, 16));
        }
        if (_misses.TryPost(new Miss(_o.InstanceId, address), now)) Counters.MissesPosted++;
        else Counters.MissesRefused++;
    }

    private bool Hold(ReadOnlySpan<byte> pkt, long now)
    {
        if (_holdCount == _hold.Capacity) return false;
        for (int s = 0; s < _hold.Capacity; s++)
        {
            if (_holdUsed[s]) continue;
            _hold.Set(s, pkt);
            _holdUsed[s] = true;
            _holdSince[s] = now;
            _holdCount++;
            return true;
        }
        return false;
    }

    /// <summary>Retries held packets when a new snapshot was published; drops those held too long.</summary>
    private void ServiceHeld(MapCacheSnapshot snap, long now)
    {
        bool retry = snap.Generation != _holdGeneration;
        _holdGeneration = snap.Generation;
        _n4 = _n6 = _nFrag = 0;
        for (int s = 0; s < _hold.Capacity; s++)
        {
            if (!_holdUsed[s]) continue;
            bool expired = now - _holdSince[s] >= _holdTicks;
            if (retry && !StillMiss(snap, s))
            {
                // The entry arrived: forward (or drop by the entry's verdict, counted by Process).
                if (Process(_hold, s, snap, now, hold: false) == Outcome.Queued) Counters.HeldThenSent++;
                Release(s);
            }
            else if (expired)
            {
                Counters.Drop(DropReason.MissHoldExpired);
                Release(s);
            }
        }
        Flush(_hold);
    }

    private bool StillMiss(MapCacheSnapshot snap, int s)
    {
        var p = _hold.Packet(s);
        if (p[0] >> 4 == 4) return !snap.TryLookupV4(_o.InstanceId, BinaryPrimitives.ReadUInt32BigEndian(p.Slice(16)), 0, out _);
        return !snap.TryLookupV6(_o.InstanceId, V6Key.FromBytes(p.Slice(24)), 0, out _);
    }

    private void Release(int s)
    {
        _holdUsed[s] = false;
        _holdCount--;
    }

    public void Dispose()
    {
        _batch.Dispose();
        _frags.Dispose();
        _hold.Dispose();
        _segments?.Dispose();
    }
}
