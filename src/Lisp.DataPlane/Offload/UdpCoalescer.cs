using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace Lisp.DataPlane.Offload;

/// <summary>
/// Software UDP GRO for the ETR: joins consecutive equal-sized UDP datagrams of one flow from a batch of decapsulated
/// inner packets into one USO (gso UDP_L4) super-packet to write to a vnet-header TUN, so the kernel takes one skb
/// (and, for a UDP_GRO socket, hands it up whole) instead of many. The UDP twin of <see cref="TcpCoalescer"/>.
/// All buffers are allocated in the constructor; a batch allocates nothing.
/// </summary>
/// <remarks>
/// Use: <see cref="Reset"/>; <see cref="TryAdd"/> every packet in arrival order (ids are the caller's, e.g. its batch
/// index); the packets it refuses are written alone. Then for g in 0..<see cref="GroupCount"/> write
/// <see cref="Group"/>(g). Groups are numbered in order of their first member's arrival and
/// <see cref="FirstId"/>(g) gives that member's id: writing each group at its first member's place in the batch and
/// every refused packet at its own place keeps each flow's order, because a refused UDP packet of a flow closes that
/// flow's open group (later datagrams start a new group).
///
/// A packet is taken only when it is coalescable:
/// <list type="bullet">
/// <item>IPv4 without options, not a fragment (MF = 0, offset 0, reserved bit 0), header checksum verifies; or IPv6
///   whose next header is UDP (no extension headers: the USO segments the kernel makes copy a bare 40-byte header);</item>
/// <item>UDP length field = IP length - IP header (a mismatch means trailing bytes or a lie: not ours to join);</item>
/// <item>at least one payload byte (gso_size 0 is meaningless);</item>
/// <item>the UDP checksum verifies, so a corrupt datagram is never hidden behind NEEDS_CSUM (it is refused and the
///   kernel drops it). IPv4 checksum 0 means "no checksum" (RFC 768) and is taken as is: the re-created segments get
///   a computed checksum, which changes no meaning. IPv6 checksum 0 is invalid (RFC 8200 8.1) and is refused;</item>
/// <item>the IP packet fits <c>maxPacketSize</c> and the batch still has room.</item>
/// </list>
///
/// A taken packet joins the flow's open group when all hold:
/// <list type="bullet">
/// <item>same IP version, addresses and ports (the flow key);</item>
/// <item>IPv4: same TOS, TTL and DF. The IPv4 ID may be anything: UDP senders do not promise consecutive IDs (unlike
///   TCP GRO, no ID rule is needed to rebuild the same bytes), and the segments the kernel re-creates from the
///   super-packet get consecutive IDs starting at the first member's;</item>
/// <item>IPv6: same traffic class, flow label and hop limit;</item>
/// <item>payload length = the first member's (gso_size), except the last member, which may be shorter and then closes
///   the group (a USO super-packet only has a short tail segment);</item>
/// <item>the joined IP packet stays &lt;= 65535 bytes and the group has at most 64 members (the kernel's
///   UDP_MAX_SEGMENTS; a 64th member closes the group).</item>
/// </list>
/// Otherwise the open group is closed and the packet starts a new one. A group of one member is emitted as its
/// original bytes behind an all-zero vnet header (gso NONE; the kernel verifies its checksum itself).
///
/// A group of two or more is emitted as: vnet header (NEEDS_CSUM, gso UDP_L4, hdr_len = IP header + 8,
/// gso_size = first member's payload length, csum_start = IP header length, csum_offset = 6) followed by the first
/// member's IP + UDP header with IPv4 total length / IPv6 payload length set, IPv4 ID = first member's, IPv4 header
/// checksum recomputed, UDP length = 8 + all payloads, the UDP checksum field holding the folded pseudo-header sum
/// over that length (not complemented: CHECKSUM_PARTIAL as Linux expects it), then all members' payloads in order.
/// </remarks>
public sealed class UdpCoalescer
{
    /// <summary>Linux UDP_MAX_SEGMENTS: a USO skb with more segments is refused by the stack.</summary>
    public const int MaxMembers = 64;

    // The batch machinery is shared with TcpCoalescer; UdpRules is the UDP part, specialized at compile time.
    private readonly Coalescer<UdpRules> _batch;

    /// <param name="maxPackets">most packets taken per batch (between two <see cref="Reset"/>s).</param>
    /// <param name="maxFlowsPerBatch">most groups open at once; a new flow beyond that closes the least recently used one.</param>
    /// <param name="maxPacketSize">largest inner IP packet taken; larger ones are refused.</param>
    public UdpCoalescer(int maxPackets, int maxFlowsPerBatch = 64, int maxPacketSize = 9216)
        => _batch = new Coalescer<UdpRules>(maxPackets, maxFlowsPerBatch, maxPacketSize);

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

/// <summary>The UDP rules of <see cref="UdpCoalescer"/> (see its remarks) for the shared <see cref="Coalescer{TProtocol}"/>.</summary>
internal struct UdpRules : ICoalescingProtocol
{
    private const int UdpHeader = 8;

    public static byte IpProtocol => 17;
    public static int MinTransportHeader => UdpHeader;
    public static ushort ChecksumOffset => 6;
    public static byte GsoType(bool v6) => VirtioNetHeader.GsoUdpL4;

    /// <summary>UDP: ports (0-3), length (4-5), checksum (6-7).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static CandidateVerdict ParseTransport(ReadOnlySpan<byte> p, ref Candidate candidate)
    {
        int udpRoom = candidate.IpLength - candidate.IpHeader;
        ReadOnlySpan<byte> udp = p.Slice(candidate.IpHeader, udpRoom);
        int udpLength = BinaryPrimitives.ReadUInt16BigEndian(udp.Slice(4));
        if (udpLength != udpRoom) return CandidateVerdict.Refused;
        candidate.TransportHeader = UdpHeader;
        candidate.Payload = udpRoom - UdpHeader;
        if (candidate.Payload == 0) return CandidateVerdict.Refused;

        // Verify before hiding the datagram behind NEEDS_CSUM.
        if (!Coalescer<UdpRules>.IpHeaderVerifies(p, candidate)) return CandidateVerdict.Refused;
        ushort checksum = BinaryPrimitives.ReadUInt16BigEndian(udp.Slice(6));
        if (checksum == 0) return candidate.V6 ? CandidateVerdict.Refused : CandidateVerdict.Taken; // IPv4: "no checksum"; IPv6: forbidden
        return Coalescer<UdpRules>.TransportVerifies(p, candidate) ? CandidateVerdict.Taken : CandidateVerdict.Refused;
    }

    /// <summary>No IPv4 ID rule (see the remarks); at most <see cref="UdpCoalescer.MaxMembers"/> members.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool CanJoin(in CoalescedGroup g, ReadOnlySpan<byte> first, ReadOnlySpan<byte> p, in Candidate candidate)
        => g.Count < UdpCoalescer.MaxMembers;

    public static void Joined(ref CoalescedGroup g, in Candidate candidate) { }

    /// <summary>A USO super-packet holds at most 64 segments: the 64th member closes the group.</summary>
    public static bool EndsGroup(in CoalescedGroup g, in Candidate candidate) => g.Count == UdpCoalescer.MaxMembers;

    /// <summary>UDP length = 8 + all payloads.</summary>
    public static void CompleteHeader(in CoalescedGroup g, Span<byte> udp, int udpLength)
        => BinaryPrimitives.WriteUInt16BigEndian(udp.Slice(4), (ushort)udpLength);
}
