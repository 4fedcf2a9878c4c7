namespace Lisp.Wire;

/// <summary>
/// Map-Version numbers (RFC 9302): 12 bits, carried in mapping records and, with the V bit, in the LISP data
/// header (source and destination version instead of the nonce). 0 is the null version: "no version known",
/// never compared. The space wraps (4095 is followed by 1), so "newer" is decided on the circle: a is newer
/// than b when it is ahead of b by at most half the space (2048 steps), counting only non-null values.
/// </summary>
public static class MapVersion
{
    public const ushort Null = 0;
    public const ushort Max = 0xfff;

    /// <summary>Whether <paramref name="v"/> fits 12 bits.</summary>
    public static bool IsValid(int v) => v is >= 0 and <= Max;

    /// <summary>True when <paramref name="a"/> is a newer version than <paramref name="b"/>; false when either is null or they are equal.</summary>
    public static bool IsNewer(ushort a, ushort b)
    {
        a &= Max;
        b &= Max;
        if (a == Null || b == Null || a == b) return false;
        // Distance from b forward to a on the circle 1..4095 (4095 values; 0 is skipped).
        int ahead = a > b ? a - b : a + Max - b;
        return ahead <= 2048;
    }

    /// <summary>Source and destination versions of a data header's 24-bit nonce/version field (V bit set): 12 bits each.</summary>
    public static (ushort Source, ushort Destination) FromDataHeader(ReadOnlySpan<byte> header) =>
        ((ushort)(header[1] << 4 | header[2] >> 4), (ushort)((header[2] & 0xf) << 8 | header[3]));
}
