using System.Runtime.CompilerServices;
using System.Text;

namespace Lisp.DataPlane;

/// <summary>Why the data plane dropped a packet: each reason is a counter.</summary>
/// <remarks>
/// Deliberately apart from Lisp.ControlPlane.DropReason (control messages): the two are counted in different
/// places (per data-plane worker, plain 64-bit slots each worker owns, read without locks; versus the control
/// shards' shared Interlocked counters), exported under different metric families
/// (lisp_dataplane_drops_total, lisp_control_drops_total), and no reason belongs to both: a data packet is
/// never authenticated, a control message never encapsulated toward an RLOC. Lisp.DataPlane does not reference
/// Lisp.ControlPlane, so one enum would have to move into the codec layer, which knows neither.
/// </remarks>
public enum DropReason
{
    /// <summary>ITR: the packet from the TUN is not a complete IPv4/IPv6 packet.</summary>
    Malformed,
    /// <summary>ITR: no map-cache entry and the miss policy is "drop" (a Map-Request was still asked for).</summary>
    Miss,
    /// <summary>ITR: miss policy "queue", but the per-worker hold queue was full or the entry did not arrive in time.</summary>
    MissHoldExpired,
    /// <summary>ITR: negative map-cache entry (action drop / send-map-request / no-action).</summary>
    Negative,
    /// <summary>ITR: negative entry says natively-forward; this appliance has no native path from the TUN.</summary>
    NativelyForward,
    /// <summary>ITR: entry exists but no RLOC is reachable with priority below 255.</summary>
    NoUsableRloc,
    /// <summary>ITR: the chosen RLOC's address family has no local RLOC to send from.</summary>
    NoLocalRloc,
    /// <summary>ITR: would exceed the underlay MTU and may not be fragmented; an ICMP too-big went back instead.</summary>
    TooBig,
    /// <summary>ITR: the kernel refused the send.</summary>
    SendError,
    /// <summary>ETR: datagram shorter than the LISP header, or N and V both set.</summary>
    BadHeader,
    /// <summary>ETR: instance-id with no TUN configured for it.</summary>
    UnknownInstance,
    /// <summary>ETR: the inner packet is not IPv4/IPv6 or its length field disagrees.</summary>
    InnerMalformed,
    /// <summary>ETR: datagram larger than a buffer slot.</summary>
    Truncated,
    /// <summary>ETR: the TUN refused the write.</summary>
    TunWriteError,
    /// <summary>ETR: instance-id 0xffffff (a LISP-Decent control packet) but no control plane takes them here.</summary>
    ControlUnclaimed,
    /// <summary>ETR: instance-id 0xffffff, but the hand-off queue to the control plane was full.</summary>
    ControlQueueFull,
    /// <summary>ETR: accept_from = "known" and the outer source is not a known RLOC (map-cache, peers, accept_prefixes).</summary>
    UnknownSource,
    /// <summary>
    /// ETR: datagrams the kernel dropped at the underlay socket before the ETR read them (receive buffer full, or a bad
    /// UDP checksum): the socket's own count (SO_MEMINFO), read between batches.
    /// </summary>
    KernelReceiveDrop,
}

/// <summary>
/// One worker's counters. Only the owning worker thread writes them (plain increments, no atomics on the
/// hot path); anyone may read them (64-bit reads are atomic on the 64-bit targets this runs on), so a
/// reader sees each value at most one batch behind.
/// </summary>
public sealed class DataPlaneCounters
{
    public static readonly int ReasonCount = Enum.GetValues<DropReason>().Length;

    public readonly long[] Drops = new long[ReasonCount];
    /// <summary>Inner packets encapsulated and handed to the kernel.</summary>
    public long EncapPackets;
    public long EncapBytes;
    /// <summary>Inner packets decapsulated and written to the TUN.</summary>
    public long DecapPackets;
    public long DecapBytes;
    /// <summary>Misses posted to the miss queue (after per-destination suppression).</summary>
    public long MissesPosted;
    /// <summary>Misses the queue refused (full or over its rate).</summary>
    public long MissesRefused;
    /// <summary>ICMP/ICMPv6 too-big messages written back into the TUN.</summary>
    public long IcmpTooBig;
    /// <summary>Encapsulated packets sent as outer IPv4 fragments (RFC 9300 section 7.1).</summary>
    public long Fragmented;
    /// <summary>Packets held on a miss and sent once the entry arrived.</summary>
    public long HeldThenSent;
    /// <summary>ETR: instance-id 0xffffff datagrams handed to the control plane (not written to a TUN).</summary>
    public long ControlPackets;
    /// <summary>ETR: plain (not LISP-encapsulated) control messages on the data port handed to the control plane (issue 11 item 7).</summary>
    public long PlainControlPackets;
    /// <summary>ITR: packets sent with the V bit (RFC 9302 map-versioning: source and destination versions, no nonce).</summary>
    public long VersionedSent;
    /// <summary>ETR: decapsulated packets with the V bit (RFC 9302 map-versioning).</summary>
    public long VersionedPackets;
    /// <summary>ETR: V-bit packets whose source version is newer than the map-cache's for the source EID: a Map-Request was asked for.</summary>
    public long VersionRefreshes;
    /// <summary>ETR: V-bit packets whose destination version is older than ours (the sending ITR caches a stale mapping of ours).</summary>
    public long DestVersionStale;
    /// <summary>ETR: V-bit packets whose destination version is newer than ours (a version we never registered).</summary>
    public long DestVersionNewer;
    /// <summary>ETR (gleaning on): source EIDs the map-cache did not cover, posted with their RLOC to the control plane.</summary>
    public long GleansPosted;
    /// <summary>ETR (gleaning on): gleaning candidates the glean queue refused (full or over its rate).</summary>
    public long GleansRefused;
    /// <summary>ETR (accept_from = "known"): Map-Requests asked for the inner source EID of a packet from an unknown RLOC.</summary>
    public long UnknownSourceLookups;
    public long Batches;
    /// <summary>ITR: segmentation-offload super-packets read from the TUN, and the segments they were split into.</summary>
    public long SuperPackets, SuperSegments;
    /// <summary>ITR: UDP_SEGMENT sendmsg calls (each carries several encapsulated segments).</summary>
    public long GsoSends;
    /// <summary>ITR: packets whose transport checksum the host left to us (virtio NEEDS_CSUM) and we completed.</summary>
    public long ChecksumsCompleted;
    /// <summary>ETR: UDP_GRO buffers received that held more than one datagram, and the datagrams in them.</summary>
    public long GroBuffers, GroDatagrams;
    /// <summary>ETR: TUN writes of coalesced TCP super-packets, and the segments they carried.</summary>
    public long CoalescedWrites, CoalescedSegments;

    // Per-packet on the worker threads: forced inline so a drop is one indexed increment, not a call.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Drop(DropReason r) => Drops[(int)r]++;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Drop(DropReason r, int n) => Drops[(int)r] += n;
    public long this[DropReason r] => Volatile.Read(ref Drops[(int)r]);
    public long TotalDrops => Drops.Sum();

    /// <summary>Sum over workers (a consistent-enough view for logs and tests).</summary>
    public static DataPlaneCounters Sum(IEnumerable<DataPlaneCounters> all)
    {
        var s = new DataPlaneCounters();
        foreach (var c in all)
        {
            for (int i = 0; i < ReasonCount; i++) s.Drops[i] += Volatile.Read(ref c.Drops[i]);
            s.EncapPackets += Volatile.Read(ref c.EncapPackets);
            s.EncapBytes += Volatile.Read(ref c.EncapBytes);
            s.DecapPackets += Volatile.Read(ref c.DecapPackets);
            s.DecapBytes += Volatile.Read(ref c.DecapBytes);
            s.MissesPosted += Volatile.Read(ref c.MissesPosted);
            s.MissesRefused += Volatile.Read(ref c.MissesRefused);
            s.IcmpTooBig += Volatile.Read(ref c.IcmpTooBig);
            s.Fragmented += Volatile.Read(ref c.Fragmented);
            s.HeldThenSent += Volatile.Read(ref c.HeldThenSent);
            s.ControlPackets += Volatile.Read(ref c.ControlPackets);
            s.PlainControlPackets += Volatile.Read(ref c.PlainControlPackets);
            s.VersionedPackets += Volatile.Read(ref c.VersionedPackets);
            s.VersionedSent += Volatile.Read(ref c.VersionedSent);
            s.VersionRefreshes += Volatile.Read(ref c.VersionRefreshes);
            s.DestVersionStale += Volatile.Read(ref c.DestVersionStale);
            s.DestVersionNewer += Volatile.Read(ref c.DestVersionNewer);
            s.GleansPosted += Volatile.Read(ref c.GleansPosted);
            s.GleansRefused += Volatile.Read(ref c.GleansRefused);
            s.UnknownSourceLookups += Volatile.Read(ref c.UnknownSourceLookups);
            s.Batches += Volatile.Read(ref c.Batches);
            s.SuperPackets += Volatile.Read(ref c.SuperPackets);
            s.SuperSegments += Volatile.Read(ref c.SuperSegments);
            s.GsoSends += Volatile.Read(ref c.GsoSends);
            s.ChecksumsCompleted += Volatile.Read(ref c.ChecksumsCompleted);
            s.GroBuffers += Volatile.Read(ref c.GroBuffers);
            s.GroDatagrams += Volatile.Read(ref c.GroDatagrams);
            s.CoalescedWrites += Volatile.Read(ref c.CoalescedWrites);
            s.CoalescedSegments += Volatile.Read(ref c.CoalescedSegments);
        }
        return s;
    }

    public override string ToString()
    {
        var sb = new StringBuilder();
        sb.Append($"encap {EncapPackets} pkts {EncapBytes} B, decap {DecapPackets} pkts {DecapBytes} B, misses {MissesPosted} (+{MissesRefused} refused), icmp-too-big {IcmpTooBig}, fragmented {Fragmented}, held-then-sent {HeldThenSent}, control {ControlPackets}, plain-control {PlainControlPackets}, drops");
        if (GleansPosted + GleansRefused > 0) sb.Insert(sb.Length - ", drops".Length, $", gleaned {GleansPosted} (+{GleansRefused} refused)");
        if (SuperPackets + GroBuffers + CoalescedWrites + ChecksumsCompleted > 0)
            sb.Insert(sb.Length - ", drops".Length, $", offload super-packets {SuperPackets} -> {SuperSegments} segments ({GsoSends} gso sends, {ChecksumsCompleted} checksums completed), gro {GroBuffers} buffers of {GroDatagrams} datagrams, coalesced {CoalescedWrites} writes of {CoalescedSegments} segments");
        if (VersionedPackets + VersionedSent > 0) sb.Insert(sb.Length - ", drops".Length, $", versioned sent {VersionedSent} received {VersionedPackets} (refreshes {VersionRefreshes}, dest stale {DestVersionStale}, dest newer {DestVersionNewer})");
        bool any = false;
        for (int i = 0; i < ReasonCount; i++)
        {
            if (Drops[i] == 0) continue;
            sb.Append(any ? ", " : " ").Append(Kebab(((DropReason)i).ToString())).Append('=').Append(Drops[i]);
            any = true;
        }
        if (!any) sb.Append(" none");
        return sb.ToString();
    }

    private static string Kebab(string s)
    {
        var sb = new StringBuilder();
        foreach (char c in s)
        {
            if (char.IsUpper(c) && sb.Length > 0) sb.Append('-');
            sb.Append(char.ToLowerInvariant(c));
        }
        return sb.ToString();
    }
}
