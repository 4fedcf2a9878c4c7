using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace Lisp.DataPlane.Offload;

/// <summary>
/// Software TCP GRO for the ETR: joins consecutive TCP segments of one flow from a batch of decapsulated inner
/// packets into one super-packet to write to a vnet-header TUN, so the kernel sees one large skb instead of many.
/// All buffers are allocated in the constructor; a batch allocates nothing.
/// </summary>
/// <remarks>
/// Use: <see cref="Reset"/>; <see cref="TryAdd"/> every packet in arrival order (ids are the caller's, e.g. its batch
/// index); the packets it refuses are written alone. Then for g in 0..<see cref="GroupCount"/> write
/// <see cref="Group"/>(g). Groups are numbered in order of their first member's arrival and
/// <see cref="FirstId"/>(g) gives that member's id: writing each group at its first member's place in the batch and
/// every refused packet at its own place keeps each flow's order, because a refused TCP packet of a flow closes that
/// flow's open group (later segments start a new group).
///
/// A packet is taken only when it is coalescable: IPv4 without options and not a fragment, or IPv6 whose next header
/// is TCP (no extension headers); lengths consistent; IPv4 header checksum and TCP checksum verify (a corrupt segment
/// must not be hidden behind NEEDS_CSUM, so it is refused and the kernel drops it); TCP flags ACK or ACK+PSH only
/// (no SYN/FIN/RST/URG/ECE/CWR); at least one payload byte.
///
/// A taken packet joins the flow's open group when all hold:
/// <list type="bullet">
/// <item>same IP version, addresses and ports (the flow key);</item>
/// <item>IPv4: same TOS, TTL and DF, ID = previous member's ID + 1 (mod 2^16); IPv6: same traffic class, flow label, hop limit;</item>
/// <item>TCP header identical to the first member's except seq, checksum and PSH (same ack, window, urgent pointer,
///   header length, option bytes);</item>
/// <item>seq = previous member's seq + its payload length;</item>
/// <item>payload length &lt;= the first member's (gso_size); a shorter member is the last one (the group closes);</item>
/// <item>PSH makes it the last member (the group closes);</item>
/// <item>the joined IP packet stays &lt;= 65535 bytes.</item>
/// </list>
/// Otherwise the open group is closed and the packet starts a new one. A group of one member is emitted as a plain
/// packet behind an all-zero vnet header (gso NONE; the kernel verifies its checksum itself).
///
/// A group of two or more is emitted as: vnet header (NEEDS_CSUM, gso TCPV4/TCPV6, hdr_len = IP + TCP header,
/// gso_size = first member's payload length, csum_start = IP header length, csum_offset = 16) followed by the first
/// member's IP + TCP header with IPv4 total length / IPv6 payload length set, IPv4 ID = first member's, IPv4 header
/// checksum recomputed, PSH set if the last member had it, the TCP checksum field holding the folded pseudo-header
/// sum (not complemented: CHECKSUM_PARTIAL as Linux expects it), then all members' payloads in order.
/// </remarks>
public sealed class TcpCoalescer
{
    // The batch machinery is shared with UdpCoalescer; TcpRules is the TCP part, specialized at compile time.
    private readonly Coalescer<TcpRules> _batch;

    /// <param name="maxPackets">most packets taken per batch (between two <see cref="Reset"/>s).</param>
    /// <param name="maxFlowsPerBatch">most groups open at once; a new flow beyond that closes the least recently used one.</param>
    /// <param name="maxPacketSize">largest inner IP packet taken; larger ones are refused.</param>
    public TcpCoalescer(int maxPackets, int maxFlowsPerBatch = 64, int maxPacketSize = 9216)
        => _batch = new Coalescer<TcpRules>(maxPackets, maxFlowsPerBatch, maxPacketSize);

    /// <inheritdoc cref="Coalescer{TProtocol}.Reset"/>
    public void Reset() => _batch.Reset();

    /// <inheritdoc cref="Coalescer{TProtocol}.GroupCount"/>
    public int GroupCount => _batch.GroupCount;

    /// <inheritdoc cref="Coalescer{TProtocol}.Members"/>
    public int Members(int g) => _batch.Members(g);

    /// <inheritdoc cref="Coalescer{TProtocol}.FirstId"/>
    public int FirstId(int g) => _batch.FirstId(g);

    /// <inheritdoc cref="Coalescer{TProtocol}.Group"/>
    public ReadOnlySpan<byte> Group(int g) => _batch.Group(g);

    /// <inheritdoc cref="Coalescer{TProtocol}.TryAdd"/>
    public bool TryAdd(ReadOnlySpan<byte> packet, int id) => _batch.TryAdd(packet, id);
}

/// <summary>The TCP rules of <see cref="TcpCoalescer"/> (see its remarks) for the shared <see cref="Coalescer{TProtocol}"/>.</summary>
internal struct TcpRules : ICoalescingProtocol
{
    private const byte TcpAck = 0x10;
    private const byte TcpPsh = 0x08;

    public static byte IpProtocol => 6;
    public static int MinTransportHeader => 20;
    public static ushort ChecksumOffset => 16;
    public static byte GsoType(bool v6) => v6 ? VirtioNetHeader.GsoTcpV6 : VirtioNetHeader.GsoTcpV4;

    /// <summary>
    /// TCP: ports (0-3), seq (4-7), ack (8-11), data offset + reserved/AE (12), flags (13), window (14-15),
    /// checksum (16-17), urgent pointer (18-19), options.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static CandidateVerdict ParseTransport(ReadOnlySpan<byte> p, ref Candidate candidate)
    {
        int tcpRoom = candidate.IpLength - candidate.IpHeader;
        ReadOnlySpan<byte> tcp = p.Slice(candidate.IpHeader, tcpRoom);
        int tcpHeader = (tcp[12] >> 4) * 4;
        if (tcpHeader < 20 || tcpHeader > tcpRoom) return CandidateVerdict.Refused;
        candidate.TransportHeader = tcpHeader;
        candidate.Payload = tcpRoom - tcpHeader;
        if (candidate.Payload == 0) return CandidateVerdict.Refused;
        byte flags = tcp[13];
        if ((flags & ~TcpPsh) != TcpAck) return CandidateVerdict.Refused; // only ACK or ACK+PSH
        if ((tcp[12] & 0x0f) != 0) return CandidateVerdict.Refused;       // reserved / AE bit
        candidate.Psh = (flags & TcpPsh) != 0;
        candidate.Seq = BinaryPrimitives.ReadUInt32BigEndian(tcp.Slice(4));

        // Verify before hiding the packet behind NEEDS_CSUM.
        return Coalescer<TcpRules>.IpHeaderVerifies(p, candidate) && Coalescer<TcpRules>.TransportVerifies(p, candidate)
            ? CandidateVerdict.Taken
            : CandidateVerdict.Refused;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool CanJoin(in CoalescedGroup g, ReadOnlySpan<byte> first, ReadOnlySpan<byte> p, in Candidate candidate)
    {
        if (!candidate.V6 && candidate.IpId != (ushort)(g.LastIpId + 1)) return false;
        if (candidate.Seq != g.NextSeq) return false;
        // TCP header equal except seq (4-7), flags PSH (13), checksum (16-17).
        ReadOnlySpan<byte> a = first.Slice(g.IpHeader, g.TransportHeader);
        ReadOnlySpan<byte> b = p.Slice(candidate.IpHeader, candidate.TransportHeader);
        if (!a.Slice(0, 4).SequenceEqual(b.Slice(0, 4))) return false;          // ports
        if (!a.Slice(8, 5).SequenceEqual(b.Slice(8, 5))) return false;          // ack, data offset
        if ((a[13] & ~TcpPsh) != (b[13] & ~TcpPsh)) return false;              // flags (both ACK only, by Parse)
        if (!a.Slice(14, 2).SequenceEqual(b.Slice(14, 2))) return false;        // window
        if (!a.Slice(18).SequenceEqual(b.Slice(18))) return false;              // urgent pointer, options
        return true;
    }

    public static void Joined(ref CoalescedGroup g, in Candidate candidate)
    {
        g.NextSeq = candidate.Seq + (uint)candidate.Payload;
        g.LastIpId = candidate.IpId;
        if (candidate.Psh) g.Psh = true;
    }

    /// <summary>PSH makes a member the last; a PSH packet that starts a group is a finished group of one.</summary>
    public static bool EndsGroup(in CoalescedGroup g, in Candidate candidate) => candidate.Psh;

    /// <summary>PSH set if the last member had it.</summary>
    public static void CompleteHeader(in CoalescedGroup g, Span<byte> tcp, int tcpLength)
    {
        if (g.Psh) tcp[13] |= TcpPsh;
    }
}
