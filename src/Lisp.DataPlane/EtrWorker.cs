using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using Lisp.MapCache;
using Lisp.Wire;

namespace Lisp.DataPlane;

/// <summary>
/// ETR pipeline of one worker thread: recvmmsg a batch of UDP 4341 payloads, check the LISP header (length,
/// N and V not both set), take the instance-id (I bit; 0 without it), strip the 8 bytes by moving the
/// offset, check that the inner packet is IPv4/IPv6 with a consistent length, and write the batch's packets to
/// the TUN of their instance-id with one <see cref="ITun.WriteBatch"/> per TUN (io_uring: one io_uring_enter). Everything but the TUN map (read-only) belongs to the worker thread.
/// Datagrams with instance-id 0xffffff (<see cref="DataHeader.DecentControlInstanceId"/>: RFC 9962 push-mode
/// Map-Registers) never reach a TUN: they are copied to the <see cref="ControlHandoff"/> (non-blocking,
/// bounded; refused ones are counted as <see cref="DropReason.ControlQueueFull"/>), or counted as
/// <see cref="DropReason.ControlUnclaimed"/> when no control plane takes them.
/// With a hand-off, a plain control message on the data port (not LISP data, first byte a control type) goes
/// there too (<see cref="DataPlaneCounters.PlainControlPackets"/>; issue 11 item 7).
/// Optional per packet, each only when configured: map-versioning checks on V-bit packets (RFC 9302), gleaning
/// candidates (RFC 9300 section 9) and echo-nonce bookkeeping (RFC 9300 section 10.1; without it the E bit is
/// ignored, as RFC 9300 allows). The map-cache snapshot they need is acquired at most once per batch.
/// </summary>
public sealed class EtrWorker : IDisposable
{
    private readonly IBatchReceiver _receiver;
    private readonly uint[] _iids;
    private readonly ITun[] _tuns;
    private readonly PacketBatch _batch;
    private readonly int _pollMs;
    private readonly ControlHandoff? _control;
    // Decapsulated packets per TUN, written with one WriteBatch per TUN at the end of the batch.
    private readonly int[][] _pending;
    private readonly int[] _pendingCount;
    private readonly DataPlaneOptions _o;
    private readonly MapCacheReader? _reader;
    private readonly MissQueue? _misses;
    private readonly MissSuppressor _refreshSuppressor;
    private readonly GleanQueue? _gleans;
    private readonly EchoNonceTable? _echo;
    private readonly MissSuppressor _gleanSuppressor = new(1024, 1.0);
    private readonly MissSuppressor _unknownSuppressor = new(1024, 1.0);
    // The map-cache snapshot of the current batch, acquired at most once per batch (null until a packet needs it)
    // and released at the end of the batch (with chunk recycling it must not outlive the batch).
    private MapCacheSnapshot? _snap;
    private long _now;
    // accept_from = "known": this batch's set, and the last source it accepted (a batch is mostly one or few senders).
    private DecapFilter.KnownRlocs? _known;
    private UInt128 _lastAccepted;

    // Offloads. A UDP_GRO receiver hands us runs of datagrams in one slot (split here by PacketBatch.SegmentSize); a TUN
    // with virtio-net headers is written through a VnetTunWriter (coalesced super-packets and plain packets, in order).
    private readonly VnetTunWriter?[] _vnetWriters;

    /// <param name="tuns">TUN per instance-id (the ETR drops other instance-ids).</param>
    /// <param name="control">where instance-id 0xffffff datagrams go (null: dropped and counted)</param>
    /// <param name="snapshot">the ITR's map-cache (map-versioning compares source versions with it) as a plain source (tests); null: no checks</param>
    /// <param name="reader">the same through this worker's own registered reader (<see cref="MapCacheWriter.RegisterReader"/>); wins over <paramref name="snapshot"/></param>
    /// <param name="misses">where a map-version refresh asks for a Map-Request (the ITR's miss queue)</param>
    /// <param name="gleans">gleaning on (needs <paramref name="snapshot"/>): source EIDs the map-cache does not cover, with their RLOC</param>
    public EtrWorker(IBatchReceiver receiver, IReadOnlyDictionary<uint, ITun> tuns, DataPlaneOptions options, DataPlaneCounters? counters = null, ControlHandoff? control = null,
        Func<MapCacheSnapshot>? snapshot = null, MissQueue? misses = null, GleanQueue? gleans = null, EchoNonceTable? echo = null, MapCacheReader? reader = null)
    {
        _reader = reader ?? (snapshot is null ? null : MapCacheReader.From(snapshot));
        _echo = echo;
        _gleans = _reader is null ? null : gleans;
        _o = options;
        _misses = misses;
        _refreshSuppressor = new MissSuppressor(1024, options.VersionRefreshInterval.TotalSeconds);
        _control = control;
        _receiver = receiver;
        _iids = tuns.Keys.ToArray();
        _tuns = _iids.Select(i => tuns[i]).ToArray();
        // A UDP_GRO buffer holds up to 64 KiB of coalesced datagrams: fewer, larger slots (touched only as used).
        bool gro = receiver is UdpBatchSocket { GroEnabled: true };
        _batch = gro ? new PacketBatch(Math.Min(options.BatchSize, 32), 65535) : new PacketBatch(options.BatchSize, options.MaxPacket + 16);
        _pollMs = options.PollMs;
        _pending = _tuns.Select(_ => new int[_batch.Capacity]).ToArray();
        _pendingCount = new int[_tuns.Length];
        _vnetWriters = _tuns.Select(t => t.VnetHeader ? new VnetTunWriter(t, options.MaxPacket, udp: t.AcceptsUdpSegmentation) : null).ToArray();
        Counters = counters ?? new DataPlaneCounters();
    }

    public DataPlaneCounters Counters { get; }

    public void Run(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested) RunOnce(_pollMs);
    }

    /// <summary>One batch; returns the datagrams received.</summary>
    public int RunOnce(int timeoutMs)
    {
        int n = _receiver.Receive(_batch, timeoutMs);
        // The kernel's drop count for the socket: one getsockopt when idle and every 64th batch, so a reader is at
        // most one poll interval or 64 batches behind, at no per-datagram cost.
        if (n == 0 || (Counters.Batches & 63) == 0) Counters.Drops[(int)DropReason.KernelReceiveDrop] = _receiver.KernelDrops;
        if (n == 0) return 0;
        Counters.Batches++;
        _snap = null;
        _now = Stopwatch.GetTimestamp();
        _known = _o.AcceptFrom?.Current;
        _lastAccepted = UInt128.Zero;
        for (int i = 0; i < n; i++)
        {
            int size = _batch.SegmentSize[i], length = _batch.Length[i];
            if (size <= 0 || length <= size)
            {
                Decapsulate(i, _batch.Offset[i], length, wholeSlot: true);
                continue;
            }
            // UDP_GRO: several datagrams of `size` bytes back to back (the last may be shorter).
            Counters.GroBuffers++;
            int start = _batch.Offset[i];
            for (int at = 0; at < length; at += size)
            {
                Counters.GroDatagrams++;
                Decapsulate(i, start + at, Math.Min(size, length - at), wholeSlot: false);
            }
        }
        if (_snap is not null)
        {
            _snap = null;
            _reader!.Release(); // before the TUN writes and the next wait
        }
        for (int k = 0; k < _tuns.Length; k++)
        {
            if (_vnetWriters[k] is { Empty: false } writer) writer.Flush(_batch, Counters);
            int m = _pendingCount[k];
            if (m == 0) continue;
            _pendingCount[k] = 0;
            var idx = _pending[k].AsSpan(0, m);
            _tuns[k].WriteBatch(_batch, idx);
            foreach (int i in idx)
            {
                int l = _batch.Length[i];
                if (l >= 0)
                {
                    Counters.DecapPackets++;
                    Counters.DecapBytes += l;
                }
                else
                {
                    Counters.Drop(DropReason.TunWriteError);
                }
            }
        }
        return n;
    }

    /// <summary>One datagram: slot <paramref name="i"/>'s bytes at <paramref name="offset"/> (the whole slot, or one datagram of a UDP_GRO run).</summary>
    private void Decapsulate(int i, int offset, int len, bool wholeSlot)
    {
        if (len < 0)
        {
            Counters.Drop(DropReason.Truncated);
            return;
        }
        var p = _batch.Slot(i).Slice(offset, len);
        if (len < 8 || (p[0] & 0x90) == 0x90)
        {
            Counters.Drop(DropReason.BadHeader);
            return;
        }
        uint iid = (p[0] & 0x08) != 0 ? BinaryPrimitives.ReadUInt32BigEndian(p.Slice(4)) >> 8 : 0;
        if (iid == DataHeader.DecentControlInstanceId && (p[0] & 0x08) != 0)
        {
            if (_control is null) Counters.Drop(DropReason.ControlUnclaimed);
            else if (_control.TryPost(p, _batch.Address(i))) Counters.ControlPackets++;
            else Counters.Drop(DropReason.ControlQueueFull);
            return;
        }
        int tun = -1;
        for (int k = 0; k < _iids.Length; k++)
        {
            if (_iids[k] == iid)
            {
                tun = k;
                break;
            }
        }
        if (tun < 0)
        {
            if (!TryPlainControl(p, i)) Counters.Drop(DropReason.UnknownInstance);
            return;
        }
        var inner = p.Slice(8);
        int innerLength;
        if (inner.Length >= 20 && inner[0] >> 4 == 4 && (inner[0] & 15) >= 5) innerLength = BinaryPrimitives.ReadUInt16BigEndian(inner.Slice(2));
        else if (inner.Length >= 40 && inner[0] >> 4 == 6) innerLength = 40 + BinaryPrimitives.ReadUInt16BigEndian(inner.Slice(4));
        else innerLength = -1;
        if (innerLength < 20 || innerLength > inner.Length)
        {
            if (!TryPlainControl(p, i)) Counters.Drop(DropReason.InnerMalformed);
            return;
        }
        if (_known is not null && !FromKnownSource(i))
        {
            Counters.Drop(DropReason.UnknownSource);
            AskForUnknownSource(inner, iid);
            return;
        }
        if ((p[0] & 0x10) != 0) CheckVersions(p, inner, iid);
        if (_gleans is not null) MaybeGlean(inner, iid, i);
        if (_echo is not null && (p[0] & 0x80) != 0 && SourceKey(i) is { } rloc)
        {
            // Echo-nonce: a request (E) to echo back, or maybe the echo of ours (E clear).
            _echo.OnReceive(rloc, (p[0] & 0x20) != 0, (uint)(p[1] << 16 | p[2] << 8 | p[3]), _now);
        }
        if (_vnetWriters[tun] is { } vnet)
        {
            if (vnet.Full) vnet.Flush(_batch, Counters);
            Counters.DecapBytes += innerLength;
            vnet.Offer(_batch, i, offset + 8, innerLength);
            return;
        }
        if (!wholeSlot)
        {
            // One datagram of a UDP_GRO run into a plain TUN (not set up this way by the engine): written on its own.
            if (_tuns[tun].Write(inner.Slice(0, innerLength)))
            {
                Counters.DecapPackets++;
                Counters.DecapBytes += innerLength;
            }
            else Counters.Drop(DropReason.TunWriteError);
            return;
        }
        // Strip in place (offset moves past the LISP header) and queue for this TUN's batch write.
        _batch.Offset[i] = offset + 8;
        _batch.Length[i] = innerLength;
        _pending[tun][_pendingCount[tun]++] = i;
    }

    /// <summary>
    /// RFC 9302 map-versioning on a V-bit packet: the destination version is compared with this node's own
    /// (<see cref="DataPlaneOptions.MapVersion"/>; older = the sender caches a stale mapping of ours, newer = a
    /// version we never registered: both counted), and a source version newer than the one the ITR's map-cache
    /// holds for the inner source EID asks for a Map-Request for it (through the miss queue, at most once per
    /// <see cref="DataPlaneOptions.VersionRefreshInterval"/> per EID), so the changed mapping is fetched. A null
    /// version (0) on either side is never compared; a source EID not in the map-cache is left alone.
    /// </summary>
    private void CheckVersions(ReadOnlySpan<byte> header, ReadOnlySpan<byte> inner, uint iid)
    {
        Counters.VersionedPackets++;
        var (source, destination) = MapVersion.FromDataHeader(header);
        if (destination != MapVersion.Null && _o.MapVersion != MapVersion.Null && destination != _o.MapVersion)
        {
            if (MapVersion.IsNewer(destination, _o.MapVersion)) Counters.DestVersionNewer++;
            else Counters.DestVersionStale++;
        }
        if (source == MapVersion.Null || _reader is null || _misses is null) return;
        if (!LookupSource(inner, iid, out var r, out ulong key) || !MapVersion.IsNewer(source, r.MapVersion) || !_refreshSuppressor.ShouldPost(key, _now)) return;
        if (_misses.TryPost(new Miss(iid, SourceAddress(inner)), _now)) Counters.VersionRefreshes++;
        else Counters.MissesRefused++;
    }

    /// <summary>
    /// Gleaning (RFC 9300 section 9): a decapsulated packet whose inner source EID no map-cache entry covers (no
    /// mapping from the mapping system, no earlier glean) is posted with its outer source (the encapsulating RLOC)
    /// to the glean queue, at most once a second per EID and within the queue's rate; the control plane decides.
    /// </summary>
    private void MaybeGlean(ReadOnlySpan<byte> inner, uint iid, int i)
    {
        if (LookupSource(inner, iid, out _, out ulong key) || !_gleanSuppressor.ShouldPost(key, _now)) return;
        if (_batch.Address(i) is not { } from) return;
        if (_gleans!.TryPost(new Glean(iid, SourceAddress(inner), from), _now)) Counters.GleansPosted++;
        else Counters.GleansRefused++;
    }

    /// <summary>Looks the inner packet's source EID up in this batch's map-cache snapshot; <paramref name="key"/> identifies it for suppression.</summary>
    private bool LookupSource(ReadOnlySpan<byte> inner, uint iid, out LookupResult r, out ulong key)
    {
        _snap ??= _reader!.Acquire();
        if (inner[0] >> 4 == 4)
        {
            uint s = BinaryPrimitives.ReadUInt32BigEndian(inner.Slice(12));
            key = ((ulong)iid << 32) | s;
            return _snap.TryLookupV4(iid, s, 0, out r);
        }
        var a = inner.Slice(8, 16);
        key = BinaryPrimitives.ReadUInt64BigEndian(a) * 31 ^ BinaryPrimitives.ReadUInt64BigEndian(a.Slice(8)) ^ ((ulong)iid << 40);
        return _snap.TryLookupV6(iid, V6Key.FromBytes(a), 0, out r);
    }

    /// <summary>
    /// accept_from = "known": a packet from an unknown RLOC asks the mapping system for its inner source EID (through
    /// the miss queue, at most once per source EID per refresh interval). If the mapping names that RLOC, it enters the
    /// map-cache, the filter learns it, and the sender's next packets are decapsulated: a peer is known once the
    /// mapping system vouches for it, so a first contact is not refused for ever.
    /// </summary>
    private void AskForUnknownSource(ReadOnlySpan<byte> inner, uint iid)
    {
        if (_misses is null || _reader is null) return;
        if (LookupSource(inner, iid, out _, out ulong key) || !_unknownSuppressor.ShouldPost(key, _now)) return;
        if (_misses.TryPost(new Miss(iid, SourceAddress(inner)), _now)) Counters.UnknownSourceLookups++;
    }

    private bool FromKnownSource(int i)
    {
        if (SourceKey(i) is not { } source) return false;
        if (source.Value == _lastAccepted) return true;
        if (!_known!.Contains(source)) return false;
        _lastAccepted = source.Value;
        return true;
    }

    /// <summary>The outer source of datagram <paramref name="i"/> (the sending RLOC) from its sockaddr, without allocating.</summary>
    private RlocKey? SourceKey(int i)
    {
        var a = _batch.AddressBytes(i);
        return BinaryPrimitives.ReadUInt16LittleEndian(a) switch
        {
            Native.AF_INET => RlocKey.FromV4(BinaryPrimitives.ReadUInt32BigEndian(a.Slice(4))),
            Native.AF_INET6 => RlocKey.FromV6(a.Slice(8, 16)),
            _ => null,
        };
    }

    private static IPAddress SourceAddress(ReadOnlySpan<byte> inner) => new(inner[0] >> 4 == 4 ? inner.Slice(12, 4) : inner.Slice(8, 16));

    /// <summary>
    /// A datagram that is not LISP data (no TUN for its instance-id, or no IPv4/IPv6 packet after 8 bytes) but
    /// whose first byte names a LISP control message type (1 Map-Request .. 8 Encapsulated Control Message) may be
    /// a plain control message a peer sent to the data port (lispers.net answers an encapsulated push
    /// Map-Register with a plain Map-Notify to 4341, issue 11 item 7). With a control hand-off it goes there whole
    /// (counted as <see cref="DataPlaneCounters.PlainControlPackets"/>); the control plane decides whether it
    /// comes from a push member and authenticates it. False (the caller counts its own drop) without a hand-off
    /// or for any other first byte; a full hand-off is counted as <see cref="DropReason.ControlQueueFull"/>.
    /// </summary>
    private bool TryPlainControl(ReadOnlySpan<byte> p, int i)
    {
        if (_control is null || !IsControlType(p[0])) return false;
        if (_control.TryPost(p, _batch.Address(i))) Counters.PlainControlPackets++;
        else Counters.Drop(DropReason.ControlQueueFull);
        return true;
    }

    /// <summary>Whether <paramref name="first"/> (the datagram's first byte) carries a LISP control type, 1..8, in its top 4 bits.</summary>
    public static bool IsControlType(byte first) => first >> 4 is >= 1 and <= 8;

    public void Dispose()
    {
        foreach (var w in _vnetWriters) w?.Dispose();
        _batch.Dispose();
    }
}
