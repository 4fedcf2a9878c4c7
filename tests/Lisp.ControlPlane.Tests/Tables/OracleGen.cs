using System.Net;
using Lisp.Wire;

namespace Lisp.ControlPlane.Tests.Tables;

/// <summary>
/// Random EIDs for the oracle tests: address bits clustered around a few bases (so prefixes nest and share
/// long runs of bits), every EID kind, several instance-ids. Bit arithmetic is written here, independently of
/// the tables under test.
/// </summary>
internal sealed class OracleGen(Random rng)
{
    public Random Rng { get; } = rng;

    public static UInt128 MaskOf(int length) =>
        length <= 0 ? UInt128.Zero : length >= 128 ? UInt128.MaxValue : ~(UInt128.MaxValue >> length);

    /// <summary>Leading bits two left-aligned values share (0..128), counted a byte and then a bit at a time.</summary>
    public static int Common(UInt128 a, UInt128 b)
    {
        int n = 0;
        while (n + 8 <= 128 && (byte)(a >> (120 - n)) == (byte)(b >> (120 - n))) n += 8;
        while (n < 128 && ((a >> (127 - n)) & UInt128.One) == ((b >> (127 - n)) & UInt128.One)) n++;
        return n;
    }

    public UInt128 Random128()
    {
        var hi = (ulong)Rng.NextInt64() ^ ((ulong)Rng.Next() << 40);
        var lo = (ulong)Rng.NextInt64() ^ ((ulong)Rng.Next() << 40);
        return ((UInt128)hi << 64) | lo;
    }

    /// <summary>A left-aligned <paramref name="width"/>-bit value near one of <paramref name="bases"/>.</summary>
    public UInt128 Near(int width, params UInt128[] bases)
    {
        var space = MaskOf(width);
        if (Rng.Next(12) == 0) return Random128() & space;
        var b = bases[Rng.Next(bases.Length)];
        int keep = Rng.Next(width + 1);
        UInt128 noise;
        if (Rng.Next(2) == 0) noise = Random128();
        else
        {
            noise = UInt128.Zero;
            for (int i = Rng.Next(1, 3); i > 0; i--) noise |= UInt128.One << (127 - Rng.Next(width));
        }
        return ((b & MaskOf(keep)) | (noise & ~MaskOf(keep))) & space;
    }

    /// <summary>A prefix length for a <paramref name="width"/>-bit kind: short, long, host or anything.</summary>
    public int Length(int width) => Rng.Next(6) switch
    {
        0 => Rng.Next(0, Math.Min(9, width + 1)),
        1 => width,
        2 => width - Rng.Next(0, 4),
        _ => Rng.Next(width + 1),
    };

    // ------------------------------------------------------------ conversions (left-aligned bits <-> addresses)

    public static UInt128 V4(string text) => Bits(IPAddress.Parse(text));
    public static UInt128 V6(string text) => Bits(IPAddress.Parse(text));

    public static UInt128 Bits(IPAddress a)
    {
        var bytes = a.GetAddressBytes();
        UInt128 v = 0;
        for (int i = 0; i < 16; i++) v = (v << 8) | (i < bytes.Length ? bytes[i] : 0u);
        return v;
    }

    public static IPAddress Ip(UInt128 bits, bool v4)
    {
        var bytes = new byte[v4 ? 4 : 16];
        for (int i = 0; i < bytes.Length; i++) bytes[i] = (byte)(bits >> (120 - 8 * i));
        return new IPAddress(bytes);
    }

    /// <summary>The left-aligned address bits of an address-kind EID (IPv4, IPv6, MAC, E.164), or null.</summary>
    public static (int Width, UInt128 Bits)? AddressBits(EidPrefix p) => p.Inner switch
    {
        IpAddress ip => (ip.IsV4 ? 32 : 128, Bits(ip.Address)),
        MacAddress m => (48, (UInt128)(m.Value & 0xffff_ffff_ffffUL) << 80),
        E164Address e => (64, (UInt128)e.Value << 64),
        _ => null,
    };

    /// <summary>A name for the kind and instance-id an address-kind EID lives in ("v4/0", "mac/7", ...).</summary>
    public static string Space(EidPrefix p) => p.Inner switch
    {
        IpAddress ip => (ip.IsV4 ? "v4/" : "v6/") + p.InstanceId,
        MacAddress => "mac/" + p.InstanceId,
        E164Address => "e164/" + p.InstanceId,
        _ => "other",
    };

    // ------------------------------------------------------------ EIDs of each kind

    public static readonly uint[] InstanceIds = [0, 1, 7000];

    public uint Iid() => Rng.Next(4) == 0 ? InstanceIds[Rng.Next(1, InstanceIds.Length)] : 0;

    private static readonly UInt128[] V4Bases = [V4("10.0.0.0"), V4("10.1.2.0"), V4("10.128.0.0"), V4("192.168.1.0")];
    private static readonly UInt128[] V6Bases = [V6("2001:db8::"), V6("2001:db8:1:2::"), V6("2001:db8:8000::"), V6("fd00::")];
    private static readonly UInt128[] MacBases = [(UInt128)0x0000_1111_2222UL << 80, (UInt128)0x0000_1111_0000UL << 80, (UInt128)0xaaaa_bbbb_ccccUL << 80];
    private static readonly UInt128[] E164Bases = [(UInt128)0x0001_2233_4455_6677UL << 64, (UInt128)0x0001_2233_0000_0000UL << 64, (UInt128)0x0049_6221_0000_0000UL << 64];
    private static readonly UInt128[] GroupV4Bases = [V4("224.1.1.0"), V4("239.255.0.0")];
    private static readonly UInt128[] GroupV6Bases = [V6("ff0e::1:0"), V6("ff05::")];
    private static readonly string[] Names = ["dino", "dino1", "d", "farinacci", "a.example", "b.example"];
    private static readonly string[] Geos =
    [
        "48-51-12-N-2-20-55-E/100", "48-51-12-N-2-20-55-E/200", "37-24-0-N-122-5-0-W/10", "37-24-0-N-122-5-0-W-15/10",
        "0-0-0-S-0-0-0-W/0",
    ];

    /// <summary>An IPv4 or IPv6 address (left-aligned bits) near the unicast clusters.</summary>
    public (UInt128 Bits, bool V4) UnicastBits(bool v4) => v4 ? (Near(32, V4Bases), true) : (Near(128, V6Bases), false);

    public static EidPrefix IpPrefix(uint iid, UInt128 bits, bool v4, int length, bool masked = true)
    {
        int width = v4 ? 32 : 128;
        var b = masked ? bits & MaskOf(length) : bits;
        return EidPrefix.Create(iid, new IpAddress(Ip(b, v4)), Math.Min(length, width));
    }

    public static EidPrefix MacPrefix(uint iid, UInt128 bits, int length, bool masked = true)
    {
        var b = masked ? bits & MaskOf(length) : bits;
        return EidPrefix.Create(iid, new MacAddress((ulong)(b >> 80) & 0xffff_ffff_ffffUL), length);
    }

    public static EidPrefix E164Prefix(uint iid, UInt128 bits, int length, bool masked = true)
    {
        var b = masked ? bits & MaskOf(length) : bits;
        return EidPrefix.Create(iid, new E164Address((ulong)(b >> 64)), length);
    }

    public static EidPrefix SourceGroup(uint iid, UInt128 s, bool sV4, int sl, UInt128 g, bool gV4, int gl, bool masked = true)
    {
        var sb = masked ? s & MaskOf(sl) : s;
        var gb = masked ? g & MaskOf(gl) : g;
        var mi = new MulticastInfoAddress(iid, (byte)sl, (byte)gl, new IpAddress(Ip(sb, sV4)), new IpAddress(Ip(gb, gV4)));
        return EidPrefix.Create(iid, mi, gl);
    }

    public static EidPrefix Name(uint iid, string name) => EidPrefix.Create(iid, new DistinguishedName(name), Math.Min(255, name.Length * 8));

    public static EidPrefix Geo(uint iid, string text)
    {
        Assert.True(GeoCoordinates.TryParse(text, out var g), text);
        return EidPrefix.Create(iid, g!, 0);
    }

    /// <summary>A masked (canonical) EID-prefix of a random kind.</summary>
    public EidPrefix Prefix(bool sourceGroups = true)
    {
        uint iid = Iid();
        switch (Rng.Next(sourceGroups ? 8 : 7))
        {
            case 0:
            case 1:
            {
                var (b, _) = UnicastBits(true);
                return IpPrefix(iid, b, true, Length(32));
            }
            case 2:
            case 3:
            {
                var (b, _) = UnicastBits(false);
                return IpPrefix(iid, b, false, Length(128));
            }
            case 4: return MacPrefix(iid, Near(48, MacBases), Length(48));
            case 5: return E164Prefix(iid, Near(64, E164Bases), Length(64));
            case 6: return Rng.Next(2) == 0 ? Name(iid, Names[Rng.Next(Names.Length)]) : Geo(iid, Geos[Rng.Next(Geos.Length)]);
            default: return SourceGroupPrefix(iid, host: false);
        }
    }

    public EidPrefix SourceGroupPrefix(uint iid, bool host)
    {
        bool gV4 = Rng.Next(3) != 0, sV4 = Rng.Next(3) != 0;
        var g = gV4 ? Near(32, GroupV4Bases) : Near(128, GroupV6Bases);
        var (s, _) = UnicastBits(sV4);
        int gw = gV4 ? 32 : 128, sw = sV4 ? 32 : 128;
        int gl = host && Rng.Next(4) != 0 ? gw : Length(gw);
        int sl = host && Rng.Next(4) != 0 ? sw : Rng.Next(3) == 0 ? 0 : Length(sw);
        return SourceGroup(iid, s, sV4, sl, g, gV4, gl);
    }

    /// <summary>
    /// A query: mostly a host EID near the clusters (of any kind), sometimes a shorter prefix, sometimes a stored
    /// prefix or something inside one.
    /// </summary>
    public EidPrefix Query(IReadOnlyList<EidPrefix> stored, bool sourceGroups = true)
    {
        if (stored.Count > 0 && Rng.Next(3) == 0)
        {
            var p = stored[Rng.Next(stored.Count)];
            if (Rng.Next(3) == 0) return p;
            return Inside(p);
        }
        uint iid = Iid();
        switch (Rng.Next(sourceGroups ? 8 : 7))
        {
            case 0:
            case 1:
            {
                var (b, _) = UnicastBits(true);
                return IpPrefix(iid, b, true, Rng.Next(4) == 0 ? Length(32) : 32);
            }
            case 2:
            case 3:
            {
                var (b, _) = UnicastBits(false);
                return IpPrefix(iid, b, false, Rng.Next(4) == 0 ? Length(128) : 128);
            }
            case 4: return MacPrefix(iid, Near(48, MacBases), Rng.Next(4) == 0 ? Length(48) : 48);
            case 5: return E164Prefix(iid, Near(64, E164Bases), Rng.Next(4) == 0 ? Length(64) : 64);
            case 6: return Rng.Next(2) == 0 ? Name(iid, Names[Rng.Next(Names.Length)]) : Geo(iid, Geos[Rng.Next(Geos.Length)]);
            default: return SourceGroupPrefix(iid, host: true);
        }
    }

    /// <summary>A random EID inside <paramref name="p"/> (itself for exact kinds): random bits after its mask, a longer length.</summary>
    public EidPrefix Inside(EidPrefix p)
    {
        UInt128 Extend(UInt128 bits, int length, int width, out int newLength)
        {
            newLength = Rng.Next(2) == 0 ? width : Rng.Next(length, width + 1);
            return (bits & MaskOf(length)) | (Random128() & ~MaskOf(length) & MaskOf(width));
        }
        switch (p.Inner)
        {
            case IpAddress ip:
            {
                int w = ip.IsV4 ? 32 : 128;
                var b = Extend(Bits(ip.Address), p.MaskLength, w, out int l);
                return IpPrefix(p.InstanceId, b, ip.IsV4, l);
            }
            case MacAddress:
            {
                var b = Extend(AddressBits(p)!.Value.Bits, p.MaskLength, 48, out int l);
                return MacPrefix(p.InstanceId, b, l);
            }
            case E164Address:
            {
                var b = Extend(AddressBits(p)!.Value.Bits, p.MaskLength, 64, out int l);
                return E164Prefix(p.InstanceId, b, l);
            }
            case MulticastInfoAddress mi:
            {
                var s = (IpAddress)mi.Source;
                var g = (IpAddress)mi.Group;
                var sb = Extend(Bits(s.Address), mi.SourceMaskLength, s.IsV4 ? 32 : 128, out int sl);
                var gb = Extend(Bits(g.Address), mi.GroupMaskLength, g.IsV4 ? 32 : 128, out int gl);
                return SourceGroup(p.InstanceId, sb, s.IsV4, sl, gb, g.IsV4, gl);
            }
            default:
                return p;
        }
    }

    /// <summary>The same EID-prefix with host bits set past its mask (the table must clear them).</summary>
    public EidPrefix Dirty(EidPrefix p)
    {
        UInt128 Noise(int length) => Random128() & ~MaskOf(length);
        return p.Inner switch
        {
            IpAddress ip => IpPrefix(p.InstanceId, Bits(ip.Address) | Noise(p.MaskLength), ip.IsV4, p.MaskLength, masked: false),
            MacAddress => MacPrefix(p.InstanceId, AddressBits(p)!.Value.Bits | Noise(p.MaskLength), p.MaskLength, masked: false),
            E164Address => E164Prefix(p.InstanceId, AddressBits(p)!.Value.Bits | Noise(p.MaskLength), p.MaskLength, masked: false),
            MulticastInfoAddress mi => SourceGroup(p.InstanceId,
                Bits(((IpAddress)mi.Source).Address) | Noise(mi.SourceMaskLength), ((IpAddress)mi.Source).IsV4, mi.SourceMaskLength,
                Bits(((IpAddress)mi.Group).Address) | Noise(mi.GroupMaskLength), ((IpAddress)mi.Group).IsV4, mi.GroupMaskLength, masked: false),
            _ => p,
        };
    }
}
