using System.Buffers.Binary;

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
    private const byte ProtoUdp = 17;
    private const int UdpHeader = 8;
    private const int MaxIpLength = 65535;
    /// <summary>Linux UDP_MAX_SEGMENTS: a USO skb with more segments is refused by the stack.</summary>
    public const int MaxMembers = 64;

    private struct Member
    {
        public int Offset;   // in _input
        public int Length;   // IP length
        public int Id;
        public int Next;     // next member of the same group, -1 at the end
    }

    private struct GroupState
    {
        public int First, Last, Count;
        public int IpHeader;
        public bool V6, Closed;
        public int GsoSize;          // first member's payload length
        public int PayloadTotal;
        public int OutOffset, OutLength; // valid once materialized
    }

    private struct FlowSlot
    {
        public int Group;   // -1 when free
        public uint Hash;
        public long LastUse;
    }

    private readonly int _maxPacketSize;
    private readonly byte[] _input;
    private readonly byte[] _output;
    private readonly Member[] _members;
    private readonly GroupState[] _groups;
    private readonly FlowSlot[] _flows;
    private int _inputUsed;
    private int _memberCount;
    private int _groupCount;
    private int _materialized;
    private int _outputUsed;
    private long _clock;

    /// <param name="maxPackets">most packets taken per batch (between two <see cref="Reset"/>s).</param>
    /// <param name="maxFlowsPerBatch">most groups open at once; a new flow beyond that closes the least recently used one.</param>
    /// <param name="maxPacketSize">largest inner IP packet taken; larger ones are refused.</param>
    public UdpCoalescer(int maxPackets, int maxFlowsPerBatch = 64, int maxPacketSize = 9216)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxPackets, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxFlowsPerBatch, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxPacketSize, 60);
        _maxPacketSize = maxPacketSize;
        _input = new byte[checked(maxPackets * maxPacketSize)];
        // Every group's output is at most its members' bytes plus one vnet header.
        _output = new byte[checked(maxPackets * (maxPacketSize + VirtioNetHeader.Size))];
        _members = new Member[maxPackets];
        _groups = new GroupState[maxPackets];
        _flows = new FlowSlot[maxFlowsPerBatch];
        Reset();
    }

    /// <summary>Forgets the batch (every group and copied byte).</summary>
    public void Reset()
    {
        _inputUsed = _memberCount = _groupCount = _materialized = _outputUsed = 0;
        _clock = 0;
        for (int i = 0; i < _flows.Length; i++) _flows[i].Group = -1;
    }

    /// <summary>Groups formed so far (each holds at least one member).</summary>
    public int GroupCount => _groupCount;

    /// <summary>Number of packets joined in group g.</summary>
    public int Members(int g) => _groups[CheckGroup(g)].Count;

    /// <summary>The id passed to <see cref="TryAdd"/> with group g's first member.</summary>
    public int FirstId(int g) => _members[_groups[CheckGroup(g)].First].Id;

    /// <summary>
    /// Group g ready to write to a vnet-header TUN: 10-byte vnet header + IP packet. The first call after adds closes
    /// every open group and builds all groups formed so far; spans stay valid until <see cref="Reset"/>. Packets
    /// added after that start new groups.
    /// </summary>
    public ReadOnlySpan<byte> Group(int g)
    {
        CheckGroup(g);
        if (g >= _materialized) MaterializePending();
        ref GroupState s = ref _groups[g];
        return _output.AsSpan(s.OutOffset, s.OutLength);
    }

    /// <summary>
    /// Offers packet <paramref name="id"/> (an inner IP packet). True: it was copied into a group and the caller must
    /// not write it itself. False: not coalescable (see the class remarks), or out of room; the caller writes it alone.
    /// Never throws on malformed bytes.
    /// </summary>
    public bool TryAdd(ReadOnlySpan<byte> packet, int id)
    {
        _clock++;
        int parsed = Parse(packet, out Info info);
        if (parsed == ParseNotUdp) return false;
        int slot = FindFlow(packet, info, out uint hash);
        if (parsed == ParseRefused)
        {
            if (slot >= 0) CloseFlow(slot); // keep the flow's order: later datagrams go into a new group
            return false;
        }
        if (_memberCount == _members.Length || info.IpLength > _maxPacketSize || _inputUsed + info.IpLength > _input.Length)
        {
            if (slot >= 0) CloseFlow(slot);
            return false;
        }

        if (slot >= 0)
        {
            ref GroupState open = ref _groups[_flows[slot].Group];
            if (CanJoin(ref open, packet, info))
            {
                int m = AddMember(packet, info, id);
                _members[open.Last].Next = m;
                open.Last = m;
                open.Count++;
                open.PayloadTotal += info.Payload;
                _flows[slot].LastUse = _clock;
                // A short tail ends a USO super-packet; 64 members is all one may hold.
                if (info.Payload < open.GsoSize || open.Count == MaxMembers) CloseFlow(slot);
                return true;
            }
            CloseFlow(slot); // the slot is free now and is reused below
        }
        else
        {
            slot = FreeSlot();
        }

        int member = AddMember(packet, info, id);
        int g = _groupCount++;
        _groups[g] = new GroupState
        {
            First = member, Last = member, Count = 1,
            IpHeader = info.IpHeader, V6 = info.V6,
            GsoSize = info.Payload, PayloadTotal = info.Payload,
        };
        _flows[slot] = new FlowSlot { Group = g, Hash = hash, LastUse = _clock };
        return true;
    }

    private int CheckGroup(int g)
    {
        if ((uint)g >= (uint)_groupCount) throw new ArgumentOutOfRangeException(nameof(g));
        return g;
    }

    private int AddMember(ReadOnlySpan<byte> packet, in Info info, int id)
    {
        int m = _memberCount++;
        packet.Slice(0, info.IpLength).CopyTo(_input.AsSpan(_inputUsed));
        _members[m] = new Member { Offset = _inputUsed, Length = info.IpLength, Id = id, Next = -1 };
        _inputUsed += info.IpLength;
        return m;
    }

    private void CloseFlow(int slot)
    {
        int g = _flows[slot].Group;
        if (g >= 0) _groups[g].Closed = true;
        _flows[slot].Group = -1;
    }

    private int FreeSlot()
    {
        int oldest = 0;
        for (int i = 0; i < _flows.Length; i++)
        {
            if (_flows[i].Group < 0) return i;
            if (_flows[i].LastUse < _flows[oldest].LastUse) oldest = i;
        }
        CloseFlow(oldest);
        return oldest;
    }

    private int FindFlow(ReadOnlySpan<byte> packet, in Info info, out uint hash)
    {
        hash = FlowHash(packet, info);
        for (int i = 0; i < _flows.Length; i++)
        {
            if (_flows[i].Group < 0 || _flows[i].Hash != hash) continue;
            ref GroupState g = ref _groups[_flows[i].Group];
            if (g.V6 != info.V6) continue;
            if (SameKey(FirstBytes(g), g.IpHeader, packet, info)) return i;
        }
        return -1;
    }

    private ReadOnlySpan<byte> FirstBytes(in GroupState g)
    {
        ref Member m = ref _members[g.First];
        return _input.AsSpan(m.Offset, m.Length);
    }

    /// <summary>Same addresses (IPv4 12-19 / IPv6 8-39) and same source and destination ports (UDP 0-3).</summary>
    private static bool SameKey(ReadOnlySpan<byte> a, int aIpHeader, ReadOnlySpan<byte> b, in Info info)
    {
        bool addresses = info.V6
            ? a.Slice(8, 32).SequenceEqual(b.Slice(8, 32))
            : a.Slice(12, 8).SequenceEqual(b.Slice(12, 8));
        return addresses && a.Slice(aIpHeader, 4).SequenceEqual(b.Slice(info.IpHeader, 4));
    }

    private static uint FlowHash(ReadOnlySpan<byte> p, in Info info)
    {
        uint h = info.V6 ? 6u : 4u;
        ReadOnlySpan<byte> addresses = info.V6 ? p.Slice(8, 32) : p.Slice(12, 8);
        for (int i = 0; i + 4 <= addresses.Length; i += 4)
            h = (h ^ BinaryPrimitives.ReadUInt32LittleEndian(addresses.Slice(i))) * 0x9e3779b1u;
        h = (h ^ BinaryPrimitives.ReadUInt32LittleEndian(p.Slice(info.IpHeader))) * 0x9e3779b1u;
        return h ^ (h >> 15);
    }

    private bool CanJoin(ref GroupState g, ReadOnlySpan<byte> p, in Info info)
    {
        if (g.Closed || g.IpHeader != info.IpHeader || g.Count >= MaxMembers) return false;
        ReadOnlySpan<byte> first = FirstBytes(g);
        if (info.V6)
        {
            // version, traffic class, flow label (bytes 0-3), hop limit (byte 7)
            if (!first.Slice(0, 4).SequenceEqual(p.Slice(0, 4)) || first[7] != p[7]) return false;
        }
        else
        {
            // TOS (1), flags byte (6: only DF can be set here, fragments and the reserved bit are refused earlier),
            // TTL (8). The ID (4-5) is not compared: see the class remarks.
            if (first[1] != p[1] || first[6] != p[6] || first[8] != p[8]) return false;
        }
        if (info.Payload > g.GsoSize) return false;
        if (g.IpHeader + UdpHeader + g.PayloadTotal + info.Payload > MaxIpLength) return false;
        return true;
    }

    private void MaterializePending()
    {
        for (int i = 0; i < _flows.Length; i++) CloseFlow(i);
        for (int g = _materialized; g < _groupCount; g++)
        {
            ref GroupState s = ref _groups[g];
            s.Closed = true;
            Span<byte> output = _output.AsSpan(_outputUsed);
            if (s.Count == 1)
            {
                ReadOnlySpan<byte> only = FirstBytes(s);
                output.Slice(0, VirtioNetHeader.Size).Clear();
                only.CopyTo(output.Slice(VirtioNetHeader.Size));
                s.OutLength = VirtioNetHeader.Size + only.Length;
            }
            else
            {
                s.OutLength = Build(ref s, output);
            }
            s.OutOffset = _outputUsed;
            _outputUsed += s.OutLength;
        }
        _materialized = _groupCount;
    }

    private int Build(ref GroupState s, Span<byte> output)
    {
        int headers = s.IpHeader + UdpHeader;
        int ipLength = headers + s.PayloadTotal;
        new VirtioNetHeader
        {
            Flags = VirtioNetHeader.FlagNeedsCsum,
            GsoType = VirtioNetHeader.GsoUdpL4,
            HeaderLength = (ushort)headers,
            GsoSize = (ushort)s.GsoSize,
            CsumStart = (ushort)s.IpHeader,
            CsumOffset = 6,
        }.Write(output);
        Span<byte> ip = output.Slice(VirtioNetHeader.Size, ipLength);
        FirstBytes(s).Slice(0, headers).CopyTo(ip);
        int position = headers;
        for (int m = s.First; m >= 0; m = _members[m].Next)
        {
            ReadOnlySpan<byte> payload = _input.AsSpan(_members[m].Offset + headers, _members[m].Length - headers);
            payload.CopyTo(ip.Slice(position));
            position += payload.Length;
        }
        int udpLength = ipLength - s.IpHeader;
        ulong pseudo;
        if (s.V6)
        {
            BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(4), (ushort)udpLength);
            pseudo = InetChecksum.PseudoHeaderV6(ip.Slice(8, 16), ip.Slice(24, 16), ProtoUdp, udpLength);
        }
        else
        {
            BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(2), (ushort)ipLength);
            BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(10), InetChecksum.Ipv4HeaderChecksum(ip.Slice(0, s.IpHeader)));
            pseudo = InetChecksum.PseudoHeaderV4(ip.Slice(12, 4), ip.Slice(16, 4), ProtoUdp, udpLength);
        }
        Span<byte> udp = ip.Slice(s.IpHeader);
        BinaryPrimitives.WriteUInt16BigEndian(udp.Slice(4), (ushort)udpLength);
        BinaryPrimitives.WriteUInt16BigEndian(udp.Slice(6), InetChecksum.Fold(pseudo));
        return VirtioNetHeader.Size + ipLength;
    }

    private struct Info
    {
        public bool V6;
        public int IpHeader, IpLength, Payload;
    }

    private const int ParseNotUdp = 0;   // not a UDP packet whose flow can be told: refused, no flow touched
    private const int ParseRefused = 1;  // a UDP packet (flow key readable) that must be written alone
    private const int ParseOk = 2;

    /// <summary>
    /// Parses and validates one inner packet; every read is bounds-checked against the span.
    /// IPv4: version/IHL (0), TOS (1), total length (2-3), ID (4-5), flags + fragment offset (6-7), TTL (8),
    /// protocol (9), header checksum (10-11), addresses (12-19). IPv6: version/class/flow label (0-3), payload
    /// length (4-5), next header (6), hop limit (7), addresses (8-39). UDP: ports (0-3), length (4-5), checksum (6-7).
    /// </summary>
    private static int Parse(ReadOnlySpan<byte> p, out Info info)
    {
        info = default;
        if (p.Length < 1) return ParseNotUdp;
        int version = p[0] >> 4;
        bool optionsOrFragment = false;
        if (version == 4)
        {
            if (p.Length < 20) return ParseNotUdp;
            int ihl = (p[0] & 0x0f) * 4;
            int total = BinaryPrimitives.ReadUInt16BigEndian(p.Slice(2));
            if (ihl < 20 || total < ihl || total > p.Length || p[9] != ProtoUdp) return ParseNotUdp;
            ushort fragment = BinaryPrimitives.ReadUInt16BigEndian(p.Slice(6));
            if ((fragment & 0x1fff) != 0) return ParseNotUdp; // a later fragment carries no UDP header
            // MF set (a first fragment) or the reserved bit set: leave alone, but the ports are readable.
            optionsOrFragment = ihl != 20 || (fragment & 0xa000) != 0;
            info.IpHeader = ihl;
            info.IpLength = total;
        }
        else if (version == 6)
        {
            if (p.Length < 40 || p[6] != ProtoUdp) return ParseNotUdp;
            int total = 40 + BinaryPrimitives.ReadUInt16BigEndian(p.Slice(4));
            if (total > p.Length) return ParseNotUdp;
            info.V6 = true;
            info.IpHeader = 40;
            info.IpLength = total;
        }
        else
        {
            return ParseNotUdp;
        }
        int udpRoom = info.IpLength - info.IpHeader;
        if (udpRoom < UdpHeader) return ParseNotUdp;
        // From here the flow key (addresses, ports) is readable.
        ReadOnlySpan<byte> udp = p.Slice(info.IpHeader, udpRoom);
        int udpLength = BinaryPrimitives.ReadUInt16BigEndian(udp.Slice(4));
        if (udpLength != udpRoom) return ParseRefused;
        info.Payload = udpRoom - UdpHeader;
        if (optionsOrFragment || info.Payload == 0) return ParseRefused;

        // Verify before hiding the datagram behind NEEDS_CSUM.
        if (!info.V6 && !InetChecksum.Verifies(p.Slice(0, info.IpHeader))) return ParseRefused;
        ushort checksum = BinaryPrimitives.ReadUInt16BigEndian(udp.Slice(6));
        if (checksum == 0) return info.V6 ? ParseRefused : ParseOk; // IPv4: "no checksum"; IPv6: forbidden
        ulong pseudo = info.V6
            ? InetChecksum.PseudoHeaderV6(p.Slice(8, 16), p.Slice(24, 16), ProtoUdp, udpRoom)
            : InetChecksum.PseudoHeaderV4(p.Slice(12, 4), p.Slice(16, 4), ProtoUdp, udpRoom);
        if (!InetChecksum.Verifies(udp, pseudo)) return ParseRefused;
        return ParseOk;
    }
}
