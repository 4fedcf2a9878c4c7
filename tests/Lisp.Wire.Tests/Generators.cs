using System.Net;
using CsCheck;
using Lisp.Wire;

namespace Lisp.Wire.Tests;

/// <summary>CsCheck generators for every address kind (LCAF nested to a bounded depth), records and messages.</summary>
public static class Generators
{
    public static readonly Gen<LispAddress> Ipv4 = Gen.Byte.Array[4].Select(b => (LispAddress)new IpAddress(new IPAddress(b)));
    public static readonly Gen<LispAddress> Ipv6 = Gen.Byte.Array[16].Select(b => (LispAddress)new IpAddress(new IPAddress(b)));
    public static readonly Gen<LispAddress> Ip = Gen.OneOf(Ipv4, Ipv6);
    public static readonly Gen<string> PrintableAscii = Gen.Char[' ', '~'].Array[0, 24].Select(a => new string(a));
    public static readonly Gen<LispAddress> Dn = PrintableAscii.Select(s => (LispAddress)new DistinguishedName(s));
    public static readonly Gen<LispAddress> Mac = Gen.Select(Gen.ULong[0, 0xffff_ffff_ffffUL], Gen.OneOf(Gen.Const(Afi.Mac48), Gen.Const(Afi.Ieee802Legacy)),
        (v, afi) => (LispAddress)new MacAddress(v, afi));
    public static readonly Gen<LispAddress> E164 = Gen.ULong.Select(v => (LispAddress)new E164Address(v));
    public static readonly Gen<LispAddress> None = Gen.Const((LispAddress)NoAddress.Instance);

    public static readonly Gen<LispAddress> Plain = Gen.Frequency((3, Ipv4), (3, Ipv6), (2, Dn), (2, Mac), (1, E164), (1, None));

    private static readonly byte[] HandledLcafTypes = [LcafType.AfiList, LcafType.InstanceId, LcafType.GeoCoordinates, LcafType.MulticastInfo, LcafType.SourceDest, LcafType.ReplicationList];

    /// <summary>An address of any kind; LCAFs hold addresses from one level down, so depth bounds the nesting.</summary>
    public static Gen<LispAddress> Address(int depth)
    {
        if (depth == 0) return Plain;
        var inner = Address(depth - 1);
        var iid = Gen.Select(Gen.UInt, inner, Gen.Byte, (i, a, ml) => (LispAddress)new InstanceIdAddress(i, a, (byte)(ml % 33)));
        var afiList = inner.List[0, 3].Select(l => (LispAddress)new AfiListAddress(l));
        var geo = Gen.Select(Gen.Bool, Gen.UShort[0, 0x7fff], Gen.Byte, Gen.Byte, Gen.Bool, Gen.UShort[0, 0x7fff], Gen.Byte, Gen.Byte)
            .Select(Gen.Int, Gen.UShort, inner, (t, alt, radius, a) =>
                (LispAddress)new GeoCoordinates(t.Item1, t.Item2, t.Item3, t.Item4, t.Item5, t.Item6, t.Item7, t.Rest.Item1, alt, radius, a));
        var mcast = Gen.Select(Gen.UInt, Gen.Byte, Gen.Byte, inner, inner, Gen.Byte,
            (i, sml, gml, s, g, f) => (LispAddress)new MulticastInfoAddress(i, Fit(s, sml), Fit(g, gml), s, g, f));
        var sd = Gen.Select(Gen.Byte, Gen.Byte, inner, inner, (sml, dml, s, d) => (LispAddress)new SourceDestAddress(Fit(s, sml), Fit(d, dml), s, d));
        var rle = Gen.Select(Gen.Byte, inner, (l, a) => new RleEntry(l, a)).List[0, 3].Select(l => (LispAddress)new ReplicationListAddress(l));
        var unknown = Gen.Select(Gen.Byte.Where(t => !HandledLcafTypes.Contains(t)), Gen.Byte, Gen.Byte, Gen.Byte, Gen.Byte.Array[0, 20],
            (t, r1, f, r2, body) => (LispAddress)new UnknownLcafAddress(t, r1, f, r2, body));
        return Gen.Frequency((6, Plain), (2, iid), (1, afiList), (1, geo), (1, mcast), (1, sd), (1, rle), (1, unknown));
    }

    public static readonly Gen<LispAddress> AnyAddress = Address(3);
    public static readonly Gen<EidPrefix> Eid = Gen.Select(Address(2), Gen.Byte, (a, ml) => new EidPrefix(a, Fit(a, ml)));

    /// <summary>A mask-len the address can carry (the decoder refuses longer ones: issue 12, item 6).</summary>
    private static byte Fit(LispAddress a, byte ml) => EidPrefix.MaxMaskLength(a) is var max and >= 0 ? (byte)(ml % (max + 1)) : ml;

    public static readonly Gen<LocatorRecord> Locator = Gen.Select(Gen.Frequency((5, Ip), (1, Address(1))), Gen.Byte, Gen.Byte, Gen.Byte, Gen.Byte,
        Gen.Bool, Gen.Bool, Gen.Bool).Select(Gen.UShort[0, 0x1fff],
        (t, unused) => new LocatorRecord(t.Item1, t.Item2, t.Item3, t.Item4, t.Item5, t.Item6, t.Item7, t.Rest.Item1, unused));

    public static readonly Gen<MappingRecord> Record = Gen.Select(Eid, Locator.List[0, 3], Gen.UInt, Gen.Byte[0, 7], Gen.Bool,
        Gen.UShort[0, 0xfff], Gen.UShort[0, 0xfff],
        (eid, locs, ttl, act, auth, ver, res) => new MappingRecord(eid, locs, ttl, (MapReplyAction)act, auth, ver, res));

    private static readonly Gen<byte[]?> XtrId = Gen.Frequency((1, Gen.Byte.Array[16].Select(b => (byte[]?)b)), (1, Gen.Const((byte[]?)null)));

    public static readonly Gen<ControlMessage> MapRequest =
        Gen.Select(Gen.Bool, Gen.Bool, Gen.Bool, Gen.Bool, Gen.Bool, Gen.Bool, Gen.Bool, Gen.Bool)
        .Select(Gen.Bool, Gen.Byte[0, 15], Gen.Bool, Gen.ULong, Gen.Frequency((3, Ip), (1, None), (1, Address(1))),
            (f, dontReply, resLow, resHigh, nonce, src) => (f, dontReply, (byte)(resLow | (resHigh ? 0x80 : 0)), nonce, src))
        .Select(Gen.Frequency((5, Ip), (1, Address(1))).List[1, 32], Eid.List[0, 4], Gen.Frequency((1, Record.Select(r => (MappingRecord?)r)), (2, Gen.Const((MappingRecord?)null))), XtrId,
            (h, rlocs, records, mapReply, xtr) => (ControlMessage)new MapRequest
            {
                Authoritative = h.f.Item1, Probe = h.f.Item2, Smr = h.f.Item3, Pitr = h.f.Item4, SmrInvoked = h.f.Item5,
                MobileNode = h.f.Item6, LocalXtr = h.f.Item7, DontReply = h.dontReply, ReservedBits = h.Item3,
                Nonce = h.nonce, SourceEid = h.src, ItrRlocs = rlocs, Records = records, MapReplyRecord = mapReply, XtrId = xtr,
            });

    public static readonly Gen<ControlMessage> MapReply = Gen.Select(Gen.Bool, Gen.Bool, Gen.Bool, Gen.UInt[0, 0x1ffff], Gen.ULong, Record.List[0, 3],
        (p, e, s, res, nonce, recs) => (ControlMessage)new MapReply { Probe = p, EchoNonceCapable = e, Security = s, ReservedBits = res, Nonce = nonce, Records = recs });

    /// <summary>Algorithm with an auth data length the decoder accepts for it (unknown algorithms: any length).</summary>
    private static readonly Gen<(AuthAlgorithm, byte[])> Auth = Gen.OneOf(
        Gen.Const((AuthAlgorithm.None, Array.Empty<byte>())),
        Gen.Byte.Array[20].Select(b => (AuthAlgorithm.HmacSha1_96, b)),
        Gen.Byte.Array[12].Select(b => (AuthAlgorithm.HmacSha1_96, b)),
        Gen.Byte.Array[32].Select(b => (AuthAlgorithm.HmacSha256_128, b)),
        Gen.Byte.Array[16].Select(b => (AuthAlgorithm.HmacSha256_128, b)),
        Gen.Select(Gen.Byte[3, 255], Gen.Byte.Array[0, 40], (a, b) => ((AuthAlgorithm)a, b)));

    public static readonly Gen<ControlMessage> MapRegister =
        Gen.Select(Gen.Bool, Gen.Bool, Gen.Bool, Gen.Bool, Gen.Bool, Gen.Bool, Gen.Bool)
        .Select(Gen.Bool, Gen.Byte, Gen.Byte[0, 7], (f, bit16, b1, b2top) => (f, (uint)((bit16 ? 0x10000 : 0) | b1 << 8 | b2top << 5)))
        .Select(Gen.ULong, Gen.Byte, Auth, Record.List[0, 3], XtrId, Gen.ULong,
            (h, nonce, keyId, auth, recs, xtr, site) => (ControlMessage)new MapRegister
            {
                ProxyReply = h.f.Item1, LispSec = h.f.Item2, Refresh = h.f.Item3, UseTtlForTimeout = h.f.Item4, Merge = h.f.Item5,
                MobileNode = h.f.Item6, WantMapNotify = h.f.Item7, ReservedBits = h.Item2,
                Nonce = nonce, KeyId = keyId, Algorithm = auth.Item1, AuthData = auth.Item2, Records = recs,
                XtrId = xtr, SiteId = xtr is null ? 0 : site,
            });

    public static readonly Gen<ControlMessage> MapNotify = Gen.Select(Gen.Bool, Gen.Bool, Gen.UInt[0, 0x3ffff], Gen.ULong, Gen.Byte, Auth, Record.List[0, 3])
        .Select(XtrId, Gen.ULong, (t, xtr, site) => (ControlMessage)new MapNotify
        {
            IsAck = t.Item1, Rebuilt = t.Item2, ReservedBits = t.Item3, Nonce = t.Item4, KeyId = t.Item5,
            Algorithm = t.Item6.Item1, AuthData = t.Item6.Item2, Records = t.Item7, XtrId = xtr, SiteId = xtr is null ? 0 : site,
        });

    public static readonly Gen<ControlMessage> Plainmessage = Gen.OneOf(MapRequest, MapReply, MapRegister, MapNotify);

    private static readonly Gen<IpUdpHeader> InnerV4 = Gen.Select(Gen.Byte.Array[4], Gen.Byte.Array[4], Gen.UShort, Gen.UShort, Gen.Byte, Gen.UShort, Gen.Byte)
        .Select(Gen.UShort, Gen.UShort, (t, id, frag) => new IpUdpHeader(new IPAddress(t.Item1), new IPAddress(t.Item2), t.Item3, t.Item4, t.Item5, t.Item6, t.Item7, id, frag));
    private static readonly Gen<IpUdpHeader> InnerV6 = Gen.Select(Gen.Byte.Array[16], Gen.Byte.Array[16], Gen.UShort, Gen.UShort, Gen.Byte, Gen.UShort, Gen.Byte, Gen.UInt[0, 0xfffff],
        (s, d, sp, dp, hl, csum, tc, flow) => new IpUdpHeader(new IPAddress(s), new IPAddress(d), sp, dp, hl, csum, tc, 0, 0, flow));

    public static readonly Gen<ControlMessage> Ecm = Gen.Select(Gen.OneOf(InnerV4, InnerV6), Plainmessage, Gen.Byte[0, 15],
        (ip, m, f) => (ControlMessage)new EncapsulatedControlMessage(ip, m)
        {
            Security = (f & 8) != 0, DdtOriginated = (f & 4) != 0, ForEtr = (f & 2) != 0, ForMapServer = (f & 1) != 0,
        });

    public static readonly Gen<ControlMessage> Message = Gen.Frequency((4, Plainmessage), (1, Ecm));

    public static readonly Gen<DataHeader> Data = Gen.Select(Gen.Bool, Gen.Bool, Gen.Bool, Gen.Bool, Gen.Bool, Gen.UInt[0, 0xffffff], Gen.UShort[0, 0xfff], Gen.UShort[0, 0xfff])
        .Select(Gen.UInt[0, 0xffffff], Gen.UInt, Gen.Byte[0, 7], (t, iid, lsbs, low) =>
        {
            bool n = t.Item1, v = t.Item4 && !n, i = t.Item5;
            return new DataHeader(n, t.Item2, t.Item3, v, i, n ? t.Item6 : 0, v ? t.Item7 : (ushort)0, v ? t.Rest.Item1 : (ushort)0,
                i ? iid : 0, i ? lsbs & 0xff : lsbs, low);
        });
}
