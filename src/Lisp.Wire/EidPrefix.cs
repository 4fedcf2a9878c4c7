using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Lisp.Wire;

/// <summary>
/// An EID-prefix: the address as it travels in a record (possibly wrapped in an Instance-ID LCAF) and the
/// record's EID mask-len. Text form as lispers.net prints it (and as LISP-Decent hashes it):
/// <c>[iid]1.1.1.1/32</c>, <c>[iid]2001::1/128</c>, <c>[iid]'dino'</c>, <c>[iid](1.1.1.1/32, 224.1.1.1/32)</c>,
/// <c>[iid]+1223344556677880/64</c>, <c>[iid]0000-1111-2222/48</c>, <c>[iid]48-51-12-N-2-20-55-E/100</c>.
/// </summary>
public sealed record EidPrefix(LispAddress Address, byte MaskLength)
{
    /// <summary>The instance-id: from an Instance-ID LCAF wrapper or a Multicast-Info LCAF, else 0.</summary>
    public uint InstanceId => Address switch
    {
        InstanceIdAddress i => i.InstanceId,
        MulticastInfoAddress m => m.InstanceId,
        _ => 0,
    };

    /// <summary>The address inside any Instance-ID wrapper.</summary>
    public LispAddress Inner => Address is InstanceIdAddress i ? i.Address : Address;

    public bool IsIp => Inner is IpAddress;
    public bool IsSourceGroup => Inner is MulticastInfoAddress or SourceDestAddress;

    /// <summary>Bytes this EID takes in a record after the mask-len byte (AFI + address).</summary>
    public int EncodedLength => Address.EncodedLength;

    public override string ToString() => "[" + InstanceId.ToString(CultureInfo.InvariantCulture) + "]" + BodyText();

    /// <summary>The text after "[iid]".</summary>
    public string BodyText() => Inner switch
    {
        DistinguishedName dn => dn.ToText(),
        GeoCoordinates g => g.ToText(),
        MulticastInfoAddress or SourceDestAddress => Inner.ToText(),
        _ => Inner.ToText() + "/" + MaskLength.ToString(CultureInfo.InvariantCulture),
    };

    /// <summary>Builds the wire form for an instance-id: plain when 0, Instance-ID LCAF otherwise.</summary>
    public static EidPrefix Create(uint instanceId, LispAddress inner, int maskLength)
    {
        LispAddress wire = inner is MulticastInfoAddress mi ? mi with { InstanceId = instanceId }
            : instanceId == 0 ? inner : new InstanceIdAddress(instanceId, inner);
        return new EidPrefix(wire, (byte)maskLength);
    }

    /// <summary>An IP prefix with the host bits below the mask cleared; other kinds are returned as they are.</summary>
    public EidPrefix Canonical()
    {
        if (Inner is not IpAddress ip) return this;
        var masked = new IpAddress(MaskAddress(ip.Address, MaskLength));
        return masked.Equals(ip) ? this : Create(InstanceId, masked, MaskLength);
    }

    /// <summary>True when <paramref name="other"/> lies inside this prefix (same kind and instance-id).</summary>
    public bool Covers(EidPrefix other)
    {
        if (InstanceId != other.InstanceId) return false;
        if (Inner is IpAddress a && other.Inner is IpAddress b)
        {
            if (a.IsV4 != b.IsV4 || other.MaskLength < MaskLength) return false;
            return MaskAddress(a.Address, MaskLength).Equals(MaskAddress(b.Address, MaskLength));
        }
        if (Inner is MacAddress ma && other.Inner is MacAddress mb)
        {
            if (other.MaskLength < MaskLength) return false;
            ulong mask = MaskLength >= 48 ? 0xffff_ffff_ffffUL : MaskLength == 0 ? 0 : (0xffff_ffff_ffffUL << (48 - MaskLength)) & 0xffff_ffff_ffffUL;
            return (ma.Value & mask) == (mb.Value & mask);
        }
        if (Inner is E164Address ea && other.Inner is E164Address eb)
        {
            if (other.MaskLength < MaskLength) return false;
            ulong mask = MaskLength >= 64 ? ulong.MaxValue : MaskLength == 0 ? 0 : ulong.MaxValue << (64 - MaskLength);
            return (ea.Value & mask) == (eb.Value & mask);
        }
        if (Inner is MulticastInfoAddress or SourceDestAddress && other.Inner is MulticastInfoAddress or SourceDestAddress)
        {
            var (s1, g1) = SourceGroup()!.Value;
            var (s2, g2) = other.SourceGroup()!.Value;
            return g1.Covers(g2) && s1.Covers(s2);
        }
        return SameKey(other);
    }

    /// <summary>
    /// The longest mask-len <paramref name="address"/> can carry (issue 12, item 6): IPv4 32, IPv6 128, MAC 48,
    /// E.164 64 (its 8-byte field), through an Instance-ID wrapper; an (S,G) record's mask-len is its group's (or
    /// destination's). -1 when the kind has no bit width to hold a mask against (names, geo, AFI 0, other LCAFs).
    /// </summary>
    public static int MaxMaskLength(LispAddress address) => address switch
    {
        IpAddress ip => ip.HostMaskLength,
        MacAddress or E164Address => address.HostMaskLength,
        InstanceIdAddress i => MaxMaskLength(i.Address),
        MulticastInfoAddress m => MaxMaskLength(m.Group),
        SourceDestAddress sd => MaxMaskLength(sd.Dest),
        _ => -1,
    };

    /// <summary>
    /// Fails <paramref name="r"/> (BadValue) when <paramref name="maskLength"/> is longer than <paramref name="address"/>
    /// allows (<see cref="MaxMaskLength"/>); the decoders of EID records and Map-Request records call it, so such a
    /// message is malformed and never reaches a table.
    /// </summary>
    internal static bool CheckMask(ref SpanReader r, LispAddress address, int maskLength, string field)
    {
        int max = MaxMaskLength(address);
        if (max < 0 || maskLength <= max) return true;
        r.Fail(WireError.BadValue, $"{field} {maskLength} is longer than the {KindText(address)} address ({max} bits)");
        return false;
    }

    private static string KindText(LispAddress a) => a switch
    {
        IpAddress ip => ip.IsV4 ? "IPv4" : "IPv6",
        MacAddress => "MAC",
        E164Address => "E.164",
        InstanceIdAddress i => KindText(i.Address),
        MulticastInfoAddress m => "(S,G) group " + KindText(m.Group),
        SourceDestAddress sd => "source-dest destination " + KindText(sd.Dest),
        _ => a.GetType().Name,
    };

    /// <summary>For an (S,G) EID, its source and group as prefixes (same instance-id); null otherwise.</summary>
    public (EidPrefix Source, EidPrefix Group)? SourceGroup() => Inner switch
    {
        MulticastInfoAddress m => (Create(m.InstanceId, m.Source, m.SourceMaskLength), Create(m.InstanceId, m.Group, m.GroupMaskLength)),
        SourceDestAddress sd => (Create(InstanceId, sd.Source, sd.SourceMaskLength), Create(InstanceId, sd.Dest, sd.DestMaskLength)),
        _ => null,
    };

    /// <summary>Same EID by meaning: the text form identifies it (instance-id, kind, address, mask).</summary>
    public bool SameKey(EidPrefix other) => ToString() == other.ToString();

    public static IPAddress MaskAddress(IPAddress address, int maskLength)
    {
        Span<byte> b = stackalloc byte[16];
        address.TryWriteBytes(b, out int n);
        var bytes = b.Slice(0, n);
        int bits = Math.Clamp(maskLength, 0, n * 8);
        for (int i = 0; i < n; i++)
        {
            int keep = Math.Clamp(bits - i * 8, 0, 8);
            bytes[i] &= (byte)(0xff << (8 - keep));
        }
        return new IPAddress(bytes);
    }

    public static EidPrefix Parse(string text) =>
        TryParse(text, out var p, out var err) ? p! : throw new FormatException(err);

    /// <summary>Parses the printed form. Never throws; <paramref name="error"/> says what is wrong.</summary>
    public static bool TryParse(string text, out EidPrefix? prefix, out string? error)
    {
        prefix = null;
        error = null;
        text = text.Trim();
        uint iid = 0;
        if (text.StartsWith('['))
        {
            int close = text.IndexOf(']');
            if (close < 0 || !uint.TryParse(text.AsSpan(1, close - 1), NumberStyles.None, CultureInfo.InvariantCulture, out iid) || iid > 0xffffff && iid != uint.MaxValue)
            {
                error = $"'{text}': instance-id must be [0..16777215]";
                return false;
            }
            text = text[(close + 1)..];
        }
        if (text.Length == 0)
        {
            error = "empty EID";
            return false;
        }

        if (text[0] == '\'')
        {
            if (text.Length < 3 || text[^1] != '\'')
            {
                error = $"'{text}': a distinguished name is written in single quotes, e.g. 'dino'";
                return false;
            }
            var dn = new DistinguishedName(text[1..^1]);
            prefix = Create(iid, dn, dn.HostMaskLength);
            return true;
        }

        if (text[0] == '(')
        {
            if (text[^1] != ')' || text.IndexOf(',') < 0)
            {
                error = $"'{text}': an (S,G) EID is written (source/len, group/len)";
                return false;
            }
            var parts = text[1..^1].Split(',', StringSplitOptions.TrimEntries);
            if (parts.Length != 2 || !TryParseAddressAndMask(parts[0], out var s, out var sml, out error) ||
                !TryParseAddressAndMask(parts[1], out var g, out var gml, out error))
            {
                error ??= $"'{text}': an (S,G) EID is written (source/len, group/len)";
                return false;
            }
            var mi = new MulticastInfoAddress(iid, (byte)sml, (byte)gml, s!, g!);
            prefix = new EidPrefix(mi, (byte)gml);
            return true;
        }

        if (GeoCoordinates.TryParse(text, out var geo))
        {
            prefix = Create(iid, geo!, 0);
            return true;
        }

        if (!TryParseAddressAndMask(text, out var addr, out var ml, out error)) return false;
        prefix = Create(iid, addr!, ml);
        return true;
    }

    private static bool TryParseAddressAndMask(string text, out LispAddress? address, out int maskLength, out string? error)
    {
        address = null;
        maskLength = 0;
        error = null;
        string addrText = text;
        int slash = text.LastIndexOf('/');
        bool hasMask = slash >= 0;
        if (hasMask)
        {
            addrText = text[..slash];
            if (!int.TryParse(text.AsSpan(slash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out maskLength))
            {
                error = $"'{text}': mask length after '/' must be a number";
                return false;
            }
        }
        if (!EidText.TryParseAddress(addrText, out address) || address is null)
        {
            error = $"'{text}': not an IPv4, IPv6, MAC (0000-1111-2222), E.164 (+digits), name ('x'), (S,G) or geo EID";
            return false;
        }
        if (!hasMask) maskLength = address.HostMaskLength;
        if (maskLength < 0 || maskLength > address.HostMaskLength && address is not DistinguishedName)
        {
            error = $"'{text}': mask length {maskLength} is longer than the address ({address.HostMaskLength} bits)";
            return false;
        }
        return true;
    }
}

/// <summary>Text parsing of plain addresses shared by EID and RLOC parsing.</summary>
public static class EidText
{
    public static bool TryParseAddress(string text, out LispAddress? address)
    {
        address = null;
        if (text.Length == 0) return false;
        if (text[0] == '+') { var ok = E164Address.TryParse(text, out var e); address = e; return ok; }
        if (text[0] == '\'' && text.Length >= 3 && text[^1] == '\'') { address = new DistinguishedName(text[1..^1]); return true; }
        if (MacAddress.TryParse(text, out var mac)) { address = mac; return true; }
        if ((text.Contains(':') || text.Count(c => c == '.') == 3) && IPAddress.TryParse(text, out var ip) &&
            (ip.AddressFamily == AddressFamily.InterNetwork || ip.AddressFamily == AddressFamily.InterNetworkV6 && ip.ScopeId == 0))
        {
            address = new IpAddress(ip);
            return true;
        }
        return false;
    }
}
