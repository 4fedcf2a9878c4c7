using System.Buffers.Binary;
using System.Globalization;
using System.Net;

namespace Lisp.Wire;

/// <summary>The kind of file <see cref="CaptureReader.Detect"/> saw from its first four bytes.</summary>
public enum CaptureFormat
{
    NotACapture,
    Pcap,
    PcapNg,
}

/// <summary>
/// A frame's capture time: whole seconds since 1970 (UTC) and nanoseconds. Not <see cref="Known"/> for pcapng
/// Simple Packet Blocks (they carry none) or a time that does not fit.
/// </summary>
public readonly record struct CaptureTime(long Seconds, uint Nanoseconds, bool Known)
{
    public static readonly CaptureTime Unknown = new(0, 0, false);

    /// <summary>ISO 8601 UTC with nanoseconds (2023-11-14T22:13:20.123456789Z); seconds.nanoseconds when out of calendar range.</summary>
    public override string ToString()
    {
        if (!Known) return "no timestamp";
        if (Seconds is >= 0 and <= 253_402_300_799)
        {
            var t = DateTimeOffset.FromUnixTimeSeconds(Seconds).UtcDateTime;
            return t.ToString("yyyy-MM-dd'T'HH:mm:ss", CultureInfo.InvariantCulture) + "." + Nanoseconds.ToString("D9", CultureInfo.InvariantCulture) + "Z";
        }
        return Seconds.ToString(CultureInfo.InvariantCulture) + "." + Nanoseconds.ToString("D9", CultureInfo.InvariantCulture);
    }
}

/// <summary>
/// One UDP datagram of a capture. <see cref="FrameNumber"/> counts every packet of the file from 1, as tshark
/// does; <see cref="Interface"/> is the pcapng interface (0 for pcap). <see cref="Truncated"/>: the capture holds
/// fewer bytes than the IP/UDP lengths claim, <see cref="Payload"/> is what was captured.
/// </summary>
public sealed record CaptureDatagram(int FrameNumber, int Interface, uint LinkType, CaptureTime Time, IPAddress Source, IPAddress Destination,
    ushort SourcePort, ushort DestinationPort, byte[] Payload, bool Truncated);

/// <summary>One interface of a capture: pcap has one, pcapng one per Interface Description Block.</summary>
public sealed record CaptureInterface(int Index, uint LinkType, uint SnapLength, string Resolution);

/// <summary>What a capture held: the datagrams kept, and how many frames were skipped for which reason.</summary>
public sealed class CaptureContents
{
    public CaptureFormat Format { get; internal set; }
    public List<CaptureDatagram> Datagrams { get; } = [];
    public List<CaptureInterface> Interfaces { get; } = [];
    /// <summary>Packets in the file (every packet block / record, whatever it held).</summary>
    public int Frames { get; internal set; }
    /// <summary>IPv4 fragments (first or later) and IPv6 packets with a Fragment header: not reassembled.</summary>
    public int Fragments { get; internal set; }
    public int NotIp { get; internal set; }
    public int NotUdp { get; internal set; }
    /// <summary>UDP datagrams the caller's filter did not keep (other ports).</summary>
    public int OtherUdp { get; internal set; }
    /// <summary>Frames whose link or IP/UDP headers are cut short or inconsistent.</summary>
    public int Malformed { get; internal set; }
    /// <summary>pcapng blocks of other types (name resolution, statistics, custom ...), skipped.</summary>
    public int SkippedBlocks { get; internal set; }
    /// <summary>Frames on pcapng interfaces of a link type this reader does not know, by link type.</summary>
    public SortedDictionary<uint, int> UnsupportedLinkTypeFrames { get; } = [];
}

/// <summary>
/// Reads the UDP datagrams out of a libpcap or pcapng capture held in memory (no I/O here).
/// <list type="bullet">
/// <item>pcap: both byte orders, microsecond (0xa1b2c3d4) and nanosecond (0xa1b23c4d) magic.</item>
/// <item>pcapng: Section Header Blocks in either byte order (a file may hold several sections), Interface
/// Description Blocks (link type, snap length, if_tsresol, if_tsoffset), Enhanced, Simple and (obsolete) Packet
/// Blocks; every other block type is skipped and counted.</item>
/// <item>link types: <see cref="LinkLayer.SupportedText"/>.</item>
/// </list>
/// The input is untrusted: every length is checked against what is left before it is used, a damaged file
/// yields a status naming the byte offset (the datagrams read before the damage are kept), never an exception.
/// </summary>
public static class CaptureReader
{
    /// <summary>
    /// The largest frame accepted (256 KiB, libpcap's and Wireshark's limit for ordinary link types); a record
    /// claiming more is refused as damage rather than trusted.
    /// </summary>
    public const int MaxFrameBytes = 262_144;

    private const uint ShbType = 0x0A0D0D0A;
    private const uint ByteOrderMagic = 0x1A2B3C4D;

    public static CaptureFormat Detect(ReadOnlySpan<byte> file)
    {
        if (file.Length < 4) return CaptureFormat.NotACapture;
        return BinaryPrimitives.ReadUInt32LittleEndian(file) switch
        {
            0xa1b2c3d4 or 0xd4c3b2a1 or 0xa1b23c4d or 0x4d3cb2a1 => CaptureFormat.Pcap,
            ShbType => CaptureFormat.PcapNg,
            _ => CaptureFormat.NotACapture,
        };
    }

    /// <summary>
    /// Reads every frame; UDP datagrams for which <paramref name="keep"/>(source port, destination port) is true
    /// (all when null) go into <see cref="CaptureContents.Datagrams"/>, the rest are counted.
    /// </summary>
    public static WireStatus TryRead(ReadOnlySpan<byte> file, Func<ushort, ushort, bool>? keep, out CaptureContents contents)
    {
        contents = new CaptureContents { Format = Detect(file) };
        return contents.Format switch
        {
            CaptureFormat.Pcap => ReadPcap(file, keep, contents),
            CaptureFormat.PcapNg => ReadPcapNg(file, keep, contents),
            _ => new WireStatus(WireError.BadValue, "not a pcap or pcapng capture (unknown magic number)", 0),
        };
    }

    private static uint U32(ReadOnlySpan<byte> b, bool le) => le ? BinaryPrimitives.ReadUInt32LittleEndian(b) : BinaryPrimitives.ReadUInt32BigEndian(b);

    private static ushort U16(ReadOnlySpan<byte> b, bool le) => le ? BinaryPrimitives.ReadUInt16LittleEndian(b) : BinaryPrimitives.ReadUInt16BigEndian(b);

    private static string Unsupported(uint linkType) =>
        $"link type {linkType} is not supported (supported: {LinkLayer.SupportedText})";

    private static WireStatus ReadPcap(ReadOnlySpan<byte> file, Func<ushort, ushort, bool>? keep, CaptureContents c)
    {
        if (file.Length < 24)
        {
            return new WireStatus(WireError.Truncated, $"pcap file header needs 24 bytes, the file has {file.Length}", 0);
        }
        uint magic = BinaryPrimitives.ReadUInt32LittleEndian(file);
        bool le = magic is 0xa1b2c3d4 or 0xa1b23c4d;
        bool nano = magic is 0xa1b23c4d or 0x4d3cb2a1;
        uint snap = U32(file.Slice(16), le);
        // The low 16 bits are the link type; the top bits may carry the FCS length (trailing bytes we never read).
        uint linkType = U32(file.Slice(20), le) & 0xffff;
        c.Interfaces.Add(new CaptureInterface(0, linkType, snap, nano ? "1 ns" : "1 us"));
        if (!LinkLayer.IsSupported(linkType))
        {
            return new WireStatus(WireError.BadType, Unsupported(linkType), 20);
        }
        int at = 24;
        while (at < file.Length)
        {
            int n = c.Frames + 1;
            if (file.Length - at < 16)
            {
                return new WireStatus(WireError.Truncated, $"frame {n}: record header cut short ({file.Length - at} of 16 bytes)", at);
            }
            uint sec = U32(file.Slice(at), le);
            uint frac = U32(file.Slice(at + 4), le);
            uint incl = U32(file.Slice(at + 8), le);
            if (incl > MaxFrameBytes)
            {
                return new WireStatus(WireError.BadLength, $"frame {n}: record claims {incl} bytes, more than the {MaxFrameBytes}-byte frame limit", at + 8);
            }
            if (incl > file.Length - at - 16)
            {
                return new WireStatus(WireError.Truncated, $"frame {n}: record claims {incl} bytes, {file.Length - at - 16} left", at + 8);
            }
            var time = new CaptureTime(sec + (long)(nano ? frac / 1_000_000_000 : frac / 1_000_000),
                nano ? frac % 1_000_000_000 : frac % 1_000_000 * 1000, true);
            Frame(c, keep, 0, linkType, time, file.Slice(at + 16, (int)incl));
            at += 16 + (int)incl;
        }
        return WireStatus.Ok;
    }

    private sealed class Interface(uint linkType, uint snap, bool pow2, int exponent, long offset)
    {
        public uint LinkType { get; } = linkType;
        public uint Snap { get; } = snap;
        public bool Pow2 { get; } = pow2;
        public int Exponent { get; } = exponent;
        public long Offset { get; } = offset;
    }

    private static WireStatus ReadPcapNg(ReadOnlySpan<byte> file, Func<ushort, ushort, bool>? keep, CaptureContents c)
    {
        var ifaces = new List<Interface>();
        bool le = true;
        int at = 0;
        int globalIf = 0; // interface numbers across sections, for messages and CaptureInterface.Index
        int sectionBase = 0;
        while (at < file.Length)
        {
            int left = file.Length - at;
            if (left < 12)
            {
                return new WireStatus(WireError.Truncated, $"block header cut short ({left} of 12 bytes)", at);
            }
            uint type = U32(file.Slice(at), le);
            if (type == ShbType)
            {
                uint bom = BinaryPrimitives.ReadUInt32LittleEndian(file.Slice(at + 8));
                if (bom == ByteOrderMagic) le = true;
                else if (bom == 0x4D3C2B1A) le = false;
                else return new WireStatus(WireError.BadValue, $"section header block: byte-order magic 0x{bom:x8} is neither 0x1a2b3c4d nor 0x4d3c2b1a", at + 8);
                ifaces.Clear();
                sectionBase = globalIf;
            }
            uint total = U32(file.Slice(at + 4), le);
            if (total < 12 || total % 4 != 0)
            {
                return new WireStatus(WireError.BadLength, $"block of type 0x{type:x8} has length {total} (at least 12, a multiple of 4)", at + 4);
            }
            if (total > left)
            {
                return new WireStatus(WireError.Truncated, $"block of type 0x{type:x8} claims {total} bytes, {left} left", at + 4);
            }
            if (U32(file.Slice(at + (int)total - 4), le) != total)
            {
                return new WireStatus(WireError.BadLength, $"block of type 0x{type:x8}: trailing length {U32(file.Slice(at + (int)total - 4), le)} differs from the leading {total}", at + (int)total - 4);
            }
            var body = file.Slice(at + 8, (int)total - 12);
            int bodyAt = at + 8;
            switch (type)
            {
                case ShbType:
                {
                    if (body.Length < 16) return new WireStatus(WireError.Truncated, "section header block shorter than 28 bytes", at);
                    ushort major = U16(body.Slice(4), le), minor = U16(body.Slice(6), le);
                    if (major != 1) return new WireStatus(WireError.BadValue, $"pcapng version {major}.{minor} is not supported (1.x is)", bodyAt + 4);
                    break;
                }
                case 1: // Interface Description Block
                {
                    if (body.Length < 8) return new WireStatus(WireError.Truncated, $"interface description block {globalIf} shorter than 20 bytes", at);
                    uint linkType = U16(body, le);
                    uint snap = U32(body.Slice(4), le);
                    bool pow2 = false;
                    int exp = 6;
                    long offset = 0;
                    var opts = body.Slice(8);
                    int o = 0;
                    while (opts.Length - o >= 4)
                    {
                        int code = U16(opts.Slice(o), le), len = U16(opts.Slice(o + 2), le);
                        if (code == 0) break;
                        if (len > opts.Length - o - 4)
                        {
                            return new WireStatus(WireError.Truncated, $"interface {globalIf}: option {code} claims {len} bytes, {opts.Length - o - 4} left", bodyAt + 8 + o);
                        }
                        var v = opts.Slice(o + 4, len);
                        if (code == 9 && len >= 1) // if_tsresol: 10^-n, or 2^-n when the top bit is set
                        {
                            pow2 = (v[0] & 0x80) != 0;
                            exp = v[0] & 0x7f;
                            if (pow2 ? exp > 63 : exp > 19)
                            {
                                return new WireStatus(WireError.BadValue, $"interface {globalIf}: if_tsresol 0x{v[0]:x2} is out of range", bodyAt + 8 + o + 4);
                            }
                        }
                        else if (code == 14 && len >= 8) // if_tsoffset: seconds added to every timestamp
                        {
                            offset = le ? BinaryPrimitives.ReadInt64LittleEndian(v) : BinaryPrimitives.ReadInt64BigEndian(v);
                        }
                        o += 4 + (len + 3 & ~3);
                    }
                    ifaces.Add(new Interface(linkType, snap, pow2, exp, offset));
                    c.Interfaces.Add(new CaptureInterface(globalIf, linkType, snap, pow2 ? $"2^-{exp} s" : $"10^-{exp} s"));
                    globalIf++;
                    break;
                }
                case 6: // Enhanced Packet Block
                case 2: // Packet Block (obsolete; 16-bit interface id and drop count)
                {
                    int n = c.Frames + 1;
                    if (body.Length < 20) return new WireStatus(WireError.Truncated, $"frame {n}: packet block shorter than 32 bytes", at);
                    uint ifId = type == 6 ? U32(body, le) : U16(body, le);
                    if (ifId >= ifaces.Count)
                    {
                        return new WireStatus(WireError.BadValue, $"frame {n}: packet names interface {ifId}, the section describes {ifaces.Count}", bodyAt);
                    }
                    ulong units = (ulong)U32(body.Slice(4), le) << 32 | U32(body.Slice(8), le);
                    uint cap = U32(body.Slice(12), le);
                    if (cap > MaxFrameBytes)
                    {
                        return new WireStatus(WireError.BadLength, $"frame {n}: captured length {cap} is more than the {MaxFrameBytes}-byte frame limit", bodyAt + 12);
                    }
                    if (cap > body.Length - 20)
                    {
                        return new WireStatus(WireError.Truncated, $"frame {n}: captured length {cap} runs past its block ({body.Length - 20} bytes of packet data)", bodyAt + 12);
                    }
                    var iface = ifaces[(int)ifId];
                    Frame(c, keep, sectionBase + (int)ifId, iface.LinkType, Time(units, iface), body.Slice(20, (int)cap));
                    break;
                }
                case 3: // Simple Packet Block: interface 0, no timestamp, captured length = min(original, snap length)
                {
                    int n = c.Frames + 1;
                    if (body.Length < 4) return new WireStatus(WireError.Truncated, $"frame {n}: simple packet block shorter than 16 bytes", at);
                    if (ifaces.Count == 0)
                    {
                        return new WireStatus(WireError.BadValue, $"frame {n}: simple packet block before any interface description block", at);
                    }
                    uint orig = U32(body, le);
                    long cap = Math.Min(orig, body.Length - 4);
                    if (ifaces[0].Snap != 0) cap = Math.Min(cap, ifaces[0].Snap);
                    if (cap > MaxFrameBytes)
                    {
                        return new WireStatus(WireError.BadLength, $"frame {n}: packet of {cap} bytes is more than the {MaxFrameBytes}-byte frame limit", bodyAt);
                    }
                    Frame(c, keep, sectionBase, ifaces[0].LinkType, CaptureTime.Unknown, body.Slice(4, (int)cap));
                    break;
                }
                default:
                    c.SkippedBlocks++;
                    break;
            }
            at += (int)total;
        }
        return WireStatus.Ok;
    }

    private static readonly ulong[] Pow10 = BuildPow10();

    private static ulong[] BuildPow10()
    {
        var p = new ulong[20];
        p[0] = 1;
        for (int i = 1; i < p.Length; i++) p[i] = p[i - 1] * 10;
        return p;
    }

    private static CaptureTime Time(ulong units, Interface i)
    {
        ulong sec;
        uint ns;
        if (i.Pow2)
        {
            sec = units >> i.Exponent;
            ulong frac = i.Exponent == 0 ? 0 : units & ((1UL << i.Exponent) - 1);
            ns = (uint)(((UInt128)frac * 1_000_000_000) >> i.Exponent);
        }
        else
        {
            ulong div = Pow10[i.Exponent];
            sec = units / div;
            ulong rem = units % div;
            ns = (uint)(i.Exponent <= 9 ? rem * Pow10[9 - i.Exponent] : rem / Pow10[i.Exponent - 9]);
        }
        if (sec > long.MaxValue / 2 || Math.Abs(i.Offset) > long.MaxValue / 2) return CaptureTime.Unknown;
        return new CaptureTime((long)sec + i.Offset, ns, true);
    }

    private static void Frame(CaptureContents c, Func<ushort, ushort, bool>? keep, int iface, uint linkType, CaptureTime time, ReadOnlySpan<byte> data)
    {
        int n = ++c.Frames;
        var kind = LinkLayer.TryGetIp(linkType, data, out var ip);
        UdpView udp = default;
        if (kind == FrameKind.Udp) kind = LinkLayer.ParseIp(ip, out udp);
        switch (kind)
        {
            case FrameKind.Udp:
                if (keep is null || keep(udp.SourcePort, udp.DestinationPort))
                {
                    c.Datagrams.Add(new CaptureDatagram(n, iface, linkType, time, udp.Source, udp.Destination, udp.SourcePort, udp.DestinationPort,
                        udp.Payload.ToArray(), udp.Truncated));
                }
                else
                {
                    c.OtherUdp++;
                }
                break;
            case FrameKind.NotIp:
                c.NotIp++;
                break;
            case FrameKind.NotUdp:
                c.NotUdp++;
                break;
            case FrameKind.Fragment:
                c.Fragments++;
                break;
            case FrameKind.Malformed:
                c.Malformed++;
                break;
            case FrameKind.UnsupportedLinkType:
                c.UnsupportedLinkTypeFrames[linkType] = c.UnsupportedLinkTypeFrames.GetValueOrDefault(linkType) + 1;
                break;
        }
    }
}
