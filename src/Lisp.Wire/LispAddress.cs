using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Lisp.Wire;

/// <summary>
/// A LISP address as it travels: an AFI-encoded value or an LCAF tree. Immutable; value equality.
/// Every address is written as AFI (16 bits) followed by its body; <see cref="EncodedLength"/> counts both.
/// </summary>
public abstract record LispAddress
{
    /// <summary>Deepest LCAF nesting we accept; a crafted packet cannot recurse us off the stack.</summary>
    public const int MaxNesting = 8;

    public abstract ushort Afi { get; }
    public abstract int EncodedLength { get; }
    public abstract void Write(ref SpanWriter w);

    /// <summary>Address text without mask, as lispers.net prints it (1.1.1.1, 2001::1, 'dino', 0000-1111-2222 ...).</summary>
    public abstract string ToText();

    /// <summary>Natural full-length mask in bits (32 for IPv4, 128 for IPv6, 48 for MAC ...).</summary>
    public virtual int HostMaskLength => 0;

    public override string ToString() => ToText();

    public byte[] ToBytes()
    {
        var buf = new byte[EncodedLength];
        var w = new SpanWriter(buf);
        Write(ref w);
        return buf;
    }

    /// <summary>Reads AFI + address. Returns null and fails the reader on bad input.</summary>
    public static LispAddress? Read(ref SpanReader r, int depth = 0)
    {
        if (depth > MaxNesting)
        {
            r.Fail(WireError.TooDeep, $"LCAF nesting deeper than {MaxNesting}");
            return null;
        }
        ushort afi = r.U16("AFI");
        if (!r.Ok) return null;
        switch (afi)
        {
            case Wire.Afi.None:
                return NoAddress.Instance;
            case Wire.Afi.IPv4:
            {
                var b = r.Bytes(4, "IPv4 address");
                return r.Ok ? new IpAddress(new IPAddress(b)) : null;
            }
            case Wire.Afi.IPv6:
            {
                var b = r.Bytes(16, "IPv6 address");
                return r.Ok ? new IpAddress(new IPAddress(b)) : null;
            }
            case Wire.Afi.Mac48:
            case Wire.Afi.Ieee802Legacy:
            {
                var b = r.Bytes(6, "MAC address");
                if (!r.Ok) return null;
                ulong v = 0;
                foreach (var x in b) v = (v << 8) | x;
                return new MacAddress(v, afi);
            }
            case Wire.Afi.E164:
            {
                ulong v = r.U64("E.164 address");
                return r.Ok ? new E164Address(v) : null;
            }
            case Wire.Afi.DistinguishedName:
                return DistinguishedName.ReadBody(ref r);
            case Wire.Afi.Lcaf:
                return LcafAddress.ReadLcaf(ref r, depth);
            default:
                r.Fail(WireError.UnsupportedAfi, $"AFI {afi} is not one LISP uses here (1, 2, 6, 8, 17, 16387, 16389)");
                return null;
        }
    }

    public static WireStatus TryDecode(ReadOnlySpan<byte> bytes, out LispAddress? address)
    {
        var r = new SpanReader(bytes);
        address = Read(ref r);
        if (r.Ok && r.Remaining != 0)
        {
            r.Fail(WireError.BadLength, $"{r.Remaining} bytes after the address");
        }
        if (!r.Ok) address = null;
        return r.Status;
    }
}

/// <summary>AFI 0: no address (an absent source EID, or a geo-coordinate with no address).</summary>
public sealed record NoAddress : LispAddress
{
    public static readonly NoAddress Instance = new();
    public override ushort Afi => Wire.Afi.None;
    public override int EncodedLength => 2;
    public override void Write(ref SpanWriter w) => w.U16(Wire.Afi.None);
    public override string ToText() => "no-address";
}

/// <summary>AFI 1 (4 bytes) or AFI 2 (16 bytes).</summary>
public sealed record IpAddress(IPAddress Address) : LispAddress
{
    public bool IsV4 => Address.AddressFamily == AddressFamily.InterNetwork;
    public override ushort Afi => IsV4 ? Wire.Afi.IPv4 : Wire.Afi.IPv6;
    public override int EncodedLength => IsV4 ? 6 : 18;
    public override int HostMaskLength => IsV4 ? 32 : 128;

    public override void Write(ref SpanWriter w)
    {
        w.U16(Afi);
        Span<byte> b = stackalloc byte[16];
        Address.TryWriteBytes(b, out int n);
        w.Bytes(b.Slice(0, n));
    }

    public override string ToText() => Address.ToString();

    public static IpAddress Parse(string text) => new(IPAddress.Parse(text));
}

/// <summary>48-bit MAC, AFI 16389 (IANA) or 6 (how lispers.net sends it); we keep the AFI we were given.</summary>
public sealed record MacAddress(ulong Value, ushort WireAfi = Wire.Afi.Mac48) : LispAddress
{
    public override ushort Afi => WireAfi;
    public override int EncodedLength => 8;
    public override int HostMaskLength => 48;

    public override void Write(ref SpanWriter w)
    {
        w.U16(WireAfi);
        w.U16((ushort)(Value >> 32));
        w.U32((uint)Value);
    }

    /// <summary>lispers.net form: three groups of four hex digits, 0000-1111-2222.</summary>
    public override string ToText() =>
        string.Create(CultureInfo.InvariantCulture, $"{(Value >> 32) & 0xffff:x4}-{(Value >> 16) & 0xffff:x4}-{Value & 0xffff:x4}");

    public static bool TryParse(string text, out MacAddress? mac)
    {
        mac = null;
        var parts = text.Split('-');
        if (parts.Length != 3) return false;
        ulong v = 0;
        foreach (var p in parts)
        {
            if (p.Length != 4 || !ushort.TryParse(p, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var g)) return false;
            v = (v << 16) | g;
        }
        mac = new MacAddress(v);
        return true;
    }
}

/// <summary>AFI 8: E.164 number, 8 bytes, one digit per nibble. Printed "+" and hex digits zero-filled to 15.</summary>
public sealed record E164Address(ulong Value) : LispAddress
{
    public override ushort Afi => Wire.Afi.E164;
    public override int EncodedLength => 10;
    public override int HostMaskLength => 64;

    public override void Write(ref SpanWriter w)
    {
        w.U16(Wire.Afi.E164);
        w.U64(Value);
    }

    public override string ToText() => "+" + Value.ToString("x", CultureInfo.InvariantCulture).PadLeft(15, '0');

    public static bool TryParse(string text, out E164Address? e164)
    {
        e164 = null;
        if (text.Length < 2 || text.Length > 17 || text[0] != '+') return false;
        if (!ulong.TryParse(text.AsSpan(1), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var v)) return false;
        e164 = new E164Address(v);
        return true;
    }
}

/// <summary>AFI 17 (RFC 9735): ASCII name, terminated on the wire by one zero byte. Printed in single quotes.</summary>
public sealed record DistinguishedName(string Name) : LispAddress
{
    /// <summary>Longest name we accept; keeps a missing terminator from swallowing a whole packet silently.</summary>
    public const int MaxLength = 1024;

    public override ushort Afi => Wire.Afi.DistinguishedName;
    public override int EncodedLength => 2 + Encoding.ASCII.GetByteCount(Name) + 1;

    /// <summary>A name's natural mask is its length in bits (the whole string is significant).</summary>
    public override int HostMaskLength => Math.Min(255, Encoding.ASCII.GetByteCount(Name) * 8);

    public override void Write(ref SpanWriter w)
    {
        w.U16(Wire.Afi.DistinguishedName);
        w.Bytes(Encoding.ASCII.GetBytes(Name));
        w.U8(0);
    }

    public override string ToText() => "'" + Name + "'";

    internal static DistinguishedName? ReadBody(ref SpanReader r)
    {
        var rest = r.PeekRest();
        int end = rest.IndexOf((byte)0);
        if (end < 0)
        {
            r.Fail(WireError.Truncated, "distinguished name has no terminating zero byte");
            return null;
        }
        if (end > MaxLength)
        {
            r.Fail(WireError.BadLength, $"distinguished name longer than {MaxLength} bytes");
            return null;
        }
        var bytes = r.Bytes(end + 1, "distinguished name");
        foreach (var b in bytes.Slice(0, end))
        {
            if (b < 0x20 || b > 0x7e)
            {
                r.Fail(WireError.BadValue, $"distinguished name holds non-printable byte 0x{b:x2}");
                return null;
            }
        }
        return new DistinguishedName(Encoding.ASCII.GetString(bytes.Slice(0, end)));
    }
}
