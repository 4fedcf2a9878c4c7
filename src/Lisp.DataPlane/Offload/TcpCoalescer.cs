using System.Buffers.Binary;

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
    private const byte ProtoTcp = 6;
    private const byte TcpAck = 0x10;
    private const byte TcpPsh = 0x08;
    private const int MaxIpLength = 65535;

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
        public int IpHeader, TcpHeader;
        public bool V6, Psh, Closed;
        public int GsoSize;          // first member's payload length
        public int PayloadTotal;
        public uint NextSeq;
        public ushort LastIpId;
        public int FlowSlot;         // -1 once closed
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
    public TcpCoalescer(int maxPackets, int maxFlowsPerBatch = 64, int maxPacketSize = 9216)
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
        if (parsed == ParseNotTcp) return false;
        int slot = FindFlow(packet, info, out uint hash);
        if (parsed == ParseRefused)
        {
            if (slot >= 0) CloseFlow(slot); // keep the flow's order: later segments go into a new group
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
                open.NextSeq = info.Seq + (uint)info.Payload;
                open.LastIpId = info.IpId;
                if (info.Psh) open.Psh = true;
                _flows[slot].LastUse = _clock;
                if (info.Psh || info.Payload < open.GsoSize) CloseFlow(slot);
                return true;
            }
            CloseFlow(slot); // the slot is free now and is reused below
        }
        else if (!info.Psh)
        {
            slot = FreeSlot(); // a PSH packet is a finished group of one: it takes no slot
        }

        int member = AddMember(packet, info, id);
        int g = _groupCount++;
        _groups[g] = new GroupState
        {
            First = member, Last = member, Count = 1,
            IpHeader = info.IpHeader, TcpHeader = info.TcpHeader, V6 = info.V6, Psh = info.Psh,
            GsoSize = info.Payload, PayloadTotal = info.Payload,
            NextSeq = info.Seq + (uint)info.Payload, LastIpId = info.IpId,
            FlowSlot = -1,
        };
        if (!info.Psh)
        {
            _groups[g].FlowSlot = slot;
            _flows[slot] = new FlowSlot { Group = g, Hash = hash, LastUse = _clock };
        }
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
        if (g >= 0) _groups[g].FlowSlot = -1;
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
            ReadOnlySpan<byte> first = FirstBytes(g);
            if (SameKey(first, g.IpHeader, packet, info)) return i;
        }
        return -1;
    }

    private ReadOnlySpan<byte> FirstBytes(in GroupState g)
    {
        ref Member m = ref _members[g.First];
        return _input.AsSpan(m.Offset, m.Length);
    }

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
        if (g.Closed || g.TcpHeader != info.TcpHeader || g.IpHeader != info.IpHeader) return false;
        ReadOnlySpan<byte> first = FirstBytes(g);
        if (info.V6)
        {
            // version, traffic class, flow label (bytes 0-3), hop limit (byte 7)
            if (!first.Slice(0, 4).SequenceEqual(p.Slice(0, 4)) || first[7] != p[7]) return false;
        }
        else
        {
            // TOS, DF (flags byte; fragments are refused earlier, so the rest is zero), TTL; ID + 1
            if (first[1] != p[1] || first[6] != p[6] || first[8] != p[8]) return false;
            if (info.IpId != (ushort)(g.LastIpId + 1)) return false;
        }
        if (info.Seq != g.NextSeq) return false;
        if (info.Payload > g.GsoSize) return false;
        if (g.IpHeader + g.TcpHeader + g.PayloadTotal + info.Payload > MaxIpLength) return false;
        // TCP header equal except seq (4-7), flags PSH (13), checksum (16-17).
        ReadOnlySpan<byte> a = first.Slice(g.IpHeader, g.TcpHeader);
        ReadOnlySpan<byte> b = p.Slice(info.IpHeader, info.TcpHeader);
        if (!a.Slice(0, 4).SequenceEqual(b.Slice(0, 4))) return false;          // ports
        if (!a.Slice(8, 5).SequenceEqual(b.Slice(8, 5))) return false;          // ack, data offset
        if ((a[13] & ~TcpPsh) != (b[13] & ~TcpPsh)) return false;              // flags (both ACK only, by Parse)
        if (!a.Slice(14, 2).SequenceEqual(b.Slice(14, 2))) return false;        // window
        if (!a.Slice(18).SequenceEqual(b.Slice(18))) return false;              // urgent pointer, options
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
        int headers = s.IpHeader + s.TcpHeader;
        int ipLength = headers + s.PayloadTotal;
        new VirtioNetHeader
        {
            Flags = VirtioNetHeader.FlagNeedsCsum,
            GsoType = s.V6 ? VirtioNetHeader.GsoTcpV6 : VirtioNetHeader.GsoTcpV4,
            HeaderLength = (ushort)headers,
            GsoSize = (ushort)s.GsoSize,
            CsumStart = (ushort)s.IpHeader,
            CsumOffset = 16,
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
        int tcpLength = ipLength - s.IpHeader;
        ulong pseudo;
        if (s.V6)
        {
            BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(4), (ushort)tcpLength);
            pseudo = InetChecksum.PseudoHeaderV6(ip.Slice(8, 16), ip.Slice(24, 16), ProtoTcp, tcpLength);
        }
        else
        {
            BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(2), (ushort)ipLength);
            BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(10), InetChecksum.Ipv4HeaderChecksum(ip.Slice(0, s.IpHeader)));
            pseudo = InetChecksum.PseudoHeaderV4(ip.Slice(12, 4), ip.Slice(16, 4), ProtoTcp, tcpLength);
        }
        Span<byte> tcp = ip.Slice(s.IpHeader);
        if (s.Psh) tcp[13] |= TcpPsh;
        BinaryPrimitives.WriteUInt16BigEndian(tcp.Slice(16), InetChecksum.Fold(pseudo));
        return VirtioNetHeader.Size + ipLength;
    }

    private struct Info
    {
        public bool V6;
        public int IpHeader, TcpHeader, IpLength, Payload;
        public uint Seq;
        public ushort IpId;
        public bool Psh;
    }

    private const int ParseNotTcp = 0;   // not a TCP packet whose flow can be told: refused, no flow touched
    private const int ParseRefused = 1;  // a TCP packet (flow key readable) that must be written alone
    private const int ParseOk = 2;

    /// <summary>Parses and validates one inner packet; every read is bounds-checked against the span.</summary>
    private static int Parse(ReadOnlySpan<byte> p, out Info info)
    {
        info = default;
        if (p.Length < 1) return ParseNotTcp;
        int version = p[0] >> 4;
        bool optionsOrFragment = false;
        if (version == 4)
        {
            if (p.Length < 20) return ParseNotTcp;
            int ihl = (p[0] & 0x0f) * 4;
            int total = BinaryPrimitives.ReadUInt16BigEndian(p.Slice(2));
            if (ihl < 20 || total < ihl || total > p.Length || p[9] != ProtoTcp) return ParseNotTcp;
            ushort fragment = BinaryPrimitives.ReadUInt16BigEndian(p.Slice(6));
            bool isFragment = (fragment & 0x3fff) != 0;
            if ((fragment & 0x1fff) != 0) return ParseNotTcp; // a later fragment carries no TCP header
            optionsOrFragment = ihl != 20 || isFragment || (fragment & 0x8000) != 0; // reserved bit set: leave alone
            info.IpHeader = ihl;
            info.IpLength = total;
            info.IpId = BinaryPrimitives.ReadUInt16BigEndian(p.Slice(4));
        }
        else if (version == 6)
        {
            if (p.Length < 40 || p[6] != ProtoTcp) return ParseNotTcp;
            int total = 40 + BinaryPrimitives.ReadUInt16BigEndian(p.Slice(4));
            if (total > p.Length) return ParseNotTcp;
            info.V6 = true;
            info.IpHeader = 40;
            info.IpLength = total;
        }
        else
        {
            return ParseNotTcp;
        }
        int tcpRoom = info.IpLength - info.IpHeader;
        if (tcpRoom < 20) return ParseNotTcp;
        // From here the flow key (addresses, ports) is readable.
        ReadOnlySpan<byte> tcp = p.Slice(info.IpHeader, tcpRoom);
        int tcpHeader = (tcp[12] >> 4) * 4;
        if (tcpHeader < 20 || tcpHeader > tcpRoom) return ParseRefused;
        info.TcpHeader = tcpHeader;
        info.Payload = tcpRoom - tcpHeader;
        if (optionsOrFragment || info.Payload == 0) return ParseRefused;
        byte flags = tcp[13];
        if ((flags & ~TcpPsh) != TcpAck) return ParseRefused; // only ACK or ACK+PSH
        if ((tcp[12] & 0x0f) != 0) return ParseRefused;       // reserved / AE bit
        info.Psh = (flags & TcpPsh) != 0;
        info.Seq = BinaryPrimitives.ReadUInt32BigEndian(tcp.Slice(4));

        // Verify before hiding the packet behind NEEDS_CSUM.
        if (!info.V6 && !InetChecksum.Verifies(p.Slice(0, info.IpHeader))) return ParseRefused;
        ulong pseudo = info.V6
            ? InetChecksum.PseudoHeaderV6(p.Slice(8, 16), p.Slice(24, 16), ProtoTcp, tcpRoom)
            : InetChecksum.PseudoHeaderV4(p.Slice(12, 4), p.Slice(16, 4), ProtoTcp, tcpRoom);
        if (!InetChecksum.Verifies(tcp, pseudo)) return ParseRefused;
        return ParseOk;
    }
}
