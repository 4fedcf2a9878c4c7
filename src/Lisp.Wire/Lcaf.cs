using System.Globalization;
using System.Text;

namespace Lisp.Wire;

/// <summary>
/// LISP Canonical Address Format (RFC 8060). Every LCAF starts with this 8-byte header:
/// <code>
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |           AFI = 16387         |     Rsvd1     |     Flags     |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |     Type      |     Rsvd2     |            Length             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// </code>
/// Length counts the bytes after the header. Each subtype writes its body after the header.
/// </summary>
public abstract record LcafAddress : LispAddress
{
    public sealed override ushort Afi => Wire.Afi.Lcaf;
    public abstract byte LcafType { get; }
    /// <summary>The byte after Type; its meaning depends on the type (IID mask-len, multicast R/L/J flags).</summary>
    public virtual byte Rsvd2 => 0;
    public virtual byte Flags => 0;
    public virtual byte Rsvd1 => 0;
    protected abstract int BodyLength { get; }
    protected abstract void WriteBody(ref SpanWriter w);

    public sealed override int EncodedLength => 8 + BodyLength;

    public sealed override void Write(ref SpanWriter w)
    {
        w.U16(Wire.Afi.Lcaf);
        w.U8(Rsvd1);
        w.U8(Flags);
        w.U8(LcafType);
        w.U8(Rsvd2);
        w.U16((ushort)BodyLength);
        WriteBody(ref w);
    }

    internal static LispAddress? ReadLcaf(ref SpanReader r, int depth)
    {
        byte rsvd1 = r.U8("LCAF Rsvd1");
        byte flags = r.U8("LCAF Flags");
        byte type = r.U8("LCAF Type");
        byte rsvd2 = r.U8("LCAF Rsvd2");
        ushort length = r.U16("LCAF Length");
        if (!r.Ok) return null;

        if (type == Wire.LcafType.MulticastInfo && MulticastInfoAddress.LooksLispersPadded(r.PeekRest(), length))
        {
            // lispers.net's packer puts 2 zero bytes after the Length field that the Length does not count.
            r.Bytes(2, "lispers.net multicast-info padding");
            var padded = r.Sub(length, "LCAF multicast-info body");
            var mi = MulticastInfoAddress.ReadBody(ref padded, rsvd2, depth);
            Finish(ref r, ref padded, "multicast-info");
            return mi is null || !r.Ok ? null : mi with { ReceivedLispersPadding = true };
        }

        var body = r.Sub(length, $"LCAF type {type} body");
        if (!r.Ok) return null;
        LispAddress? result = type switch
        {
            Wire.LcafType.AfiList => AfiListAddress.ReadBody(ref body, depth),
            Wire.LcafType.InstanceId => InstanceIdAddress.ReadBody(ref body, rsvd2, depth),
            Wire.LcafType.GeoCoordinates => GeoCoordinates.ReadBody(ref body, depth),
            Wire.LcafType.MulticastInfo => MulticastInfoAddress.ReadBody(ref body, rsvd2, depth),
            Wire.LcafType.SourceDest => SourceDestAddress.ReadBody(ref body, depth),
            Wire.LcafType.ReplicationList => ReplicationListAddress.ReadBody(ref body, depth),
            _ => new UnknownLcafAddress(type, rsvd1, flags, rsvd2, body.Bytes(length, "LCAF body").ToArray()),
        };
        Finish(ref r, ref body, $"LCAF type {type}");
        return r.Ok ? result : null;
    }

    private static void Finish(ref SpanReader outer, ref SpanReader body, string what)
    {
        if (!body.Ok)
        {
            outer.Fail(body.Status);
        }
        else if (body.Remaining != 0)
        {
            outer.Fail(WireError.BadLength, $"{what} LCAF Length leaves {body.Remaining} unread bytes");
        }
    }
}

/// <summary>
/// Instance-ID LCAF (type 2). Rsvd2 carries the IID mask-length.
/// <code>
/// |                         Instance ID (32)                      |
/// |              AFI = x          |         Address  ...          |
/// </code>
/// </summary>
public sealed record InstanceIdAddress(uint InstanceId, LispAddress Address, byte IidMaskLength = 0) : LcafAddress
{
    public override byte LcafType => Wire.LcafType.InstanceId;
    public override byte Rsvd2 => IidMaskLength;
    protected override int BodyLength => 4 + Address.EncodedLength;
    public override int HostMaskLength => Address.HostMaskLength;

    protected override void WriteBody(ref SpanWriter w)
    {
        w.U32(InstanceId);
        Address.Write(ref w);
    }

    public override string ToText() => $"[{InstanceId}]{Address.ToText()}";

    internal static InstanceIdAddress? ReadBody(ref SpanReader r, byte rsvd2, int depth)
    {
        uint iid = r.U32("Instance ID");
        if (rsvd2 > 32)
        {
            r.Fail(WireError.BadValue, $"Instance-ID mask-len {rsvd2} is longer than the 32-bit Instance ID");
            return null;
        }
        var inner = Read(ref r, depth + 1);
        return inner is null ? null : new InstanceIdAddress(iid, inner, rsvd2);
    }
}

/// <summary>AFI-List LCAF (type 1): a sequence of AFI-encoded addresses filling the LCAF length.</summary>
public sealed record AfiListAddress(IReadOnlyList<LispAddress> Addresses) : LcafAddress
{
    public override byte LcafType => Wire.LcafType.AfiList;
    protected override int BodyLength => Addresses.Sum(a => a.EncodedLength);

    protected override void WriteBody(ref SpanWriter w)
    {
        foreach (var a in Addresses) a.Write(ref w);
    }

    public override string ToText() => "{" + string.Join(", ", Addresses.Select(a => a.ToText())) + "}";

    public bool Equals(AfiListAddress? other) => other is not null && Addresses.SequenceEqual(other.Addresses);
    public override int GetHashCode() => Addresses.Count;

    internal static AfiListAddress? ReadBody(ref SpanReader r, int depth)
    {
        var list = new List<LispAddress>();
        while (r.Ok && r.Remaining > 0)
        {
            var a = Read(ref r, depth + 1);
            if (a is null) return null;
            list.Add(a);
        }
        return r.Ok ? new AfiListAddress(list) : null;
    }
}

/// <summary>
/// Geo-Coordinates LCAF (type 5).
/// <code>
/// |N|     Latitude Degrees        |    Minutes    |    Seconds    |
/// |E|     Longitude Degrees       |    Minutes    |    Seconds    |
/// |                            Altitude                           |
/// |            Radius             |              AFI = x          |
/// |                         ...  Address  ...                     |
/// </code>
/// Text as lispers.net prints it: 48-51-12-N-2-20-55-E/100 (radius after the slash; altitude, when not
/// zero, as a fifth dash-separated field before the slash).
/// </summary>
public sealed record GeoCoordinates(
    bool North, ushort LatDegrees, byte LatMinutes, byte LatSeconds,
    bool East, ushort LonDegrees, byte LonMinutes, byte LonSeconds,
    int Altitude, ushort Radius, LispAddress Address) : LcafAddress
{
    public override byte LcafType => Wire.LcafType.GeoCoordinates;
    protected override int BodyLength => 14 + Address.EncodedLength;

    protected override void WriteBody(ref SpanWriter w)
    {
        w.U16((ushort)((North ? 0x8000 : 0) | (LatDegrees & 0x7fff)));
        w.U8(LatMinutes);
        w.U8(LatSeconds);
        w.U16((ushort)((East ? 0x8000 : 0) | (LonDegrees & 0x7fff)));
        w.U8(LonMinutes);
        w.U8(LonSeconds);
        w.U32((uint)Altitude);
        w.U16(Radius);
        Address.Write(ref w);
    }

    public override string ToText()
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"{LatDegrees}-{LatMinutes}-{LatSeconds}-{(North ? 'N' : 'S')}-");
        sb.Append(CultureInfo.InvariantCulture, $"{LonDegrees}-{LonMinutes}-{LonSeconds}-{(East ? 'E' : 'W')}");
        if (Altitude != 0) sb.Append(CultureInfo.InvariantCulture, $"-{Altitude}");
        sb.Append(CultureInfo.InvariantCulture, $"/{Radius}");
        if (Address is not NoAddress) sb.Append(CultureInfo.InvariantCulture, $"@{Address.ToText()}");
        return sb.ToString();
    }

    internal static GeoCoordinates? ReadBody(ref SpanReader r, int depth)
    {
        ushort lat = r.U16("latitude degrees");
        byte latM = r.U8("latitude minutes");
        byte latS = r.U8("latitude seconds");
        ushort lon = r.U16("longitude degrees");
        byte lonM = r.U8("longitude minutes");
        byte lonS = r.U8("longitude seconds");
        int alt = (int)r.U32("altitude");
        ushort radius = r.U16("radius");
        if (!r.Ok) return null;
        var addr = Read(ref r, depth + 1);
        if (addr is null) return null;
        return new GeoCoordinates((lat & 0x8000) != 0, (ushort)(lat & 0x7fff), latM, latS,
            (lon & 0x8000) != 0, (ushort)(lon & 0x7fff), lonM, lonS, alt, radius, addr);
    }

    /// <summary>Parses d-m-s-N|S-d-m-s-E|W[-alt]/radius[@address].</summary>
    public static bool TryParse(string text, out GeoCoordinates? geo)
    {
        geo = null;
        LispAddress addr = NoAddress.Instance;
        int at = text.IndexOf('@');
        if (at >= 0)
        {
            if (!EidText.TryParseAddress(text[(at + 1)..], out var a) || a is null) return false;
            addr = a;
            text = text[..at];
        }
        int slash = text.IndexOf('/');
        ushort radius = 0;
        if (slash >= 0)
        {
            if (!ushort.TryParse(text.AsSpan(slash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out radius)) return false;
            text = text[..slash];
        }
        var p = text.Split('-');
        if (p.Length is not (8 or 9)) return false;
        var inv = CultureInfo.InvariantCulture;
        if (!ushort.TryParse(p[0], NumberStyles.None, inv, out var latD) || latD > 90) return false;
        if (!byte.TryParse(p[1], NumberStyles.None, inv, out var latM) || latM > 59) return false;
        if (!byte.TryParse(p[2], NumberStyles.None, inv, out var latS) || latS > 59) return false;
        if (p[3] is not ("N" or "S")) return false;
        if (!ushort.TryParse(p[4], NumberStyles.None, inv, out var lonD) || lonD > 180) return false;
        if (!byte.TryParse(p[5], NumberStyles.None, inv, out var lonM) || lonM > 59) return false;
        if (!byte.TryParse(p[6], NumberStyles.None, inv, out var lonS) || lonS > 59) return false;
        if (p[7] is not ("E" or "W")) return false;
        int alt = 0;
        if (p.Length == 9 && !int.TryParse(p[8], NumberStyles.AllowLeadingSign, inv, out alt)) return false;
        geo = new GeoCoordinates(p[3] == "N", latD, latM, latS, p[7] == "E", lonD, lonM, lonS, alt, radius, addr);
        return true;
    }
}

/// <summary>
/// Multicast-Info LCAF (type 9), how lispers.net carries an (S,G) EID. Rsvd2 holds flags R (0x04), L (0x02), J (0x01).
/// <code>
/// |                         Instance-ID                           |
/// |            Reserved           | Source MaskLen| Group MaskLen |
/// |              AFI = x          |   Source/Subnet Address  ...  |
/// |              AFI = x          |       Group Address  ...      |
/// </code>
/// lispers.net inserts 2 zero bytes between the LCAF Length and the Instance-ID that Length does not count;
/// we read that form (see <see cref="ReceivedLispersPadding"/>) and always write the RFC 8060 layout.
/// </summary>
public sealed record MulticastInfoAddress(uint InstanceId, byte SourceMaskLength, byte GroupMaskLength,
    LispAddress Source, LispAddress Group, byte RljFlags = 0) : LcafAddress
{
    public override byte LcafType => Wire.LcafType.MulticastInfo;
    public override byte Rsvd2 => RljFlags;
    /// <summary>True when this value was decoded from lispers.net's padded (non-RFC) layout.</summary>
    public bool ReceivedLispersPadding { get; init; }
    protected override int BodyLength => 8 + Source.EncodedLength + Group.EncodedLength;

    protected override void WriteBody(ref SpanWriter w)
    {
        w.U32(InstanceId);
        w.U16(0);
        w.U8(SourceMaskLength);
        w.U8(GroupMaskLength);
        Source.Write(ref w);
        Group.Write(ref w);
    }

    public override string ToText() => $"({Source.ToText()}/{SourceMaskLength}, {Group.ToText()}/{GroupMaskLength})";

    public bool Equals(MulticastInfoAddress? o) => o is not null && InstanceId == o.InstanceId &&
        SourceMaskLength == o.SourceMaskLength && GroupMaskLength == o.GroupMaskLength &&
        Source.Equals(o.Source) && Group.Equals(o.Group) && RljFlags == o.RljFlags;
    public override int GetHashCode() => HashCode.Combine(InstanceId, Source, Group, GroupMaskLength);

    internal static MulticastInfoAddress? ReadBody(ref SpanReader r, byte rsvd2, int depth)
    {
        uint iid = r.U32("multicast-info Instance-ID");
        r.U16("multicast-info reserved");
        byte sml = r.U8("source mask-len");
        byte gml = r.U8("group mask-len");
        if (!r.Ok) return null;
        var s = Read(ref r, depth + 1);
        if (s is null) return null;
        var g = Read(ref r, depth + 1);
        if (g is null || !EidPrefix.CheckMask(ref r, s, sml, "source mask-len") || !EidPrefix.CheckMask(ref r, g, gml, "group mask-len")) return null;
        return new MulticastInfoAddress(iid, sml, gml, s, g, rsvd2);
    }

    /// <summary>
    /// lispers.net's padded form: the 2 bytes after Length are zero and the body only parses when they are
    /// skipped, because Length is 2 short of what the source and group addresses need.
    /// </summary>
    internal static bool LooksLispersPadded(ReadOnlySpan<byte> rest, int length)
    {
        if (rest.Length < length + 2 || rest.Length < 12 || rest[0] != 0 || rest[1] != 0) return false;
        return NeededLength(rest.Slice(2)) == length && NeededLength(rest) != length;
    }

    /// <summary>Body bytes the Instance-ID, reserved, mask-lens and two addresses occupy, or -1.</summary>
    private static int NeededLength(ReadOnlySpan<byte> body)
    {
        var r = new SpanReader(body);
        r.Bytes(8, "fixed");
        var s = Read(ref r, MaxNesting - 1);
        var g = s is null ? null : Read(ref r, MaxNesting - 1);
        return g is null || !r.Ok ? -1 : r.Position;
    }
}

/// <summary>
/// Source/Dest LCAF (type 12), the RFC form of an (S,G) or source-specific EID.
/// <code>
/// |            Reserved           |   Source-ML   |    Dest-ML    |
/// |              AFI = x          |         Source-Prefix ...     |
/// |              AFI = x          |     Destination-Prefix ...    |
/// </code>
/// </summary>
public sealed record SourceDestAddress(byte SourceMaskLength, byte DestMaskLength, LispAddress Source, LispAddress Dest) : LcafAddress
{
    public override byte LcafType => Wire.LcafType.SourceDest;
    protected override int BodyLength => 4 + Source.EncodedLength + Dest.EncodedLength;

    protected override void WriteBody(ref SpanWriter w)
    {
        w.U16(0);
        w.U8(SourceMaskLength);
        w.U8(DestMaskLength);
        Source.Write(ref w);
        Dest.Write(ref w);
    }

    public override string ToText() => $"({Source.ToText()}/{SourceMaskLength}, {Dest.ToText()}/{DestMaskLength})";

    internal static SourceDestAddress? ReadBody(ref SpanReader r, int depth)
    {
        r.U16("source-dest reserved");
        byte sml = r.U8("source mask-len");
        byte dml = r.U8("dest mask-len");
        if (!r.Ok) return null;
        var s = Read(ref r, depth + 1);
        if (s is null) return null;
        var d = Read(ref r, depth + 1);
        if (d is null || !EidPrefix.CheckMask(ref r, s, sml, "source mask-len") || !EidPrefix.CheckMask(ref r, d, dml, "dest mask-len")) return null;
        return new SourceDestAddress(sml, dml, s, d);
    }
}

/// <summary>One replication target of an RLE: its level and address.</summary>
public readonly record struct RleEntry(byte Level, LispAddress Address);

/// <summary>
/// Replication List LCAF (type 13): the member list of a push group.
/// <code>
/// |     Rsvd1     |     Rsvd2     |     Rsvd3     |     Level     |
/// |              AFI = x          |           RTR/ETR #1 ...      |
/// </code>
/// repeated to fill the LCAF length.
/// </summary>
public sealed record ReplicationListAddress(IReadOnlyList<RleEntry> Entries) : LcafAddress
{
    public override byte LcafType => Wire.LcafType.ReplicationList;
    protected override int BodyLength => Entries.Sum(e => 4 + e.Address.EncodedLength);

    protected override void WriteBody(ref SpanWriter w)
    {
        foreach (var e in Entries)
        {
            w.U16(0);
            w.U8(0);
            w.U8(e.Level);
            e.Address.Write(ref w);
        }
    }

    public override string ToText() => "rle(" + string.Join(", ", Entries.Select(e => $"{e.Address.ToText()}(L{e.Level})")) + ")";

    public bool Equals(ReplicationListAddress? other) => other is not null && Entries.SequenceEqual(other.Entries);
    public override int GetHashCode() => Entries.Count;

    internal static ReplicationListAddress? ReadBody(ref SpanReader r, int depth)
    {
        var list = new List<RleEntry>();
        while (r.Ok && r.Remaining > 0)
        {
            r.Bytes(3, "RLE reserved");
            byte level = r.U8("RLE level");
            if (!r.Ok) return null;
            var a = Read(ref r, depth + 1);
            if (a is null) return null;
            list.Add(new RleEntry(level, a));
        }
        return r.Ok ? new ReplicationListAddress(list) : null;
    }
}

/// <summary>An LCAF type we do not interpret: kept whole so it is forwarded and re-encoded byte for byte.</summary>
public sealed record UnknownLcafAddress(byte Type, byte Reserved1, byte FlagBits, byte Reserved2, byte[] Body) : LcafAddress
{
    public override byte LcafType => Type;
    public override byte Rsvd1 => Reserved1;
    public override byte Flags => FlagBits;
    public override byte Rsvd2 => Reserved2;
    protected override int BodyLength => Body.Length;
    protected override void WriteBody(ref SpanWriter w) => w.Bytes(Body);
    public override string ToText() => $"lcaf-type-{Type}:{Convert.ToHexString(Body).ToLowerInvariant()}";

    public bool Equals(UnknownLcafAddress? o) => o is not null && Type == o.Type && Reserved1 == o.Reserved1 &&
        FlagBits == o.FlagBits && Reserved2 == o.Reserved2 && Body.AsSpan().SequenceEqual(o.Body);
    public override int GetHashCode() => HashCode.Combine(Type, Body.Length);
}
