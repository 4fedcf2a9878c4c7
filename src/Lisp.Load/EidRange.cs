using System.Globalization;
using System.Net;
using System.Numerics;
using Lisp.Wire;

namespace Lisp.Load;

/// <summary>
/// The EIDs of a run, counted up from a base: IP prefixes step by their own size ([5]10.0.0.0/24 -> 10.0.1.0/24
/// -> ...), distinguished names get "-i" appended ('load' -> 'load-0', 'load-1', ...). Pure.
/// </summary>
public static class EidRange
{
    public static EidPrefix At(EidPrefix baseEid, long index)
    {
        uint iid = baseEid.InstanceId;
        switch (baseEid.Inner)
        {
            case IpAddress ip:
            {
                int bits = ip.IsV4 ? 32 : 128;
                Span<byte> b = stackalloc byte[16];
                ip.Address.TryWriteBytes(b, out int n);
                var value = new BigInteger(b.Slice(0, n), isUnsigned: true, isBigEndian: true);
                int shift = bits - baseEid.MaskLength;
                value += new BigInteger(index) << shift;
                var max = BigInteger.One << bits;
                if (value >= max) throw new ArgumentOutOfRangeException(nameof(index), $"EID {index} past the end of the address space from {baseEid}");
                var bytes = value.ToByteArray(isUnsigned: true, isBigEndian: true);
                var full = new byte[n];
                bytes.CopyTo(full, n - bytes.Length);
                return EidPrefix.Create(iid, new IpAddress(new IPAddress(full)), baseEid.MaskLength);
            }
            case DistinguishedName dn:
            {
                var name = new DistinguishedName(dn.Name + "-" + index.ToString(CultureInfo.InvariantCulture));
                return EidPrefix.Create(iid, name, name.HostMaskLength);
            }
            default:
                throw new ArgumentException($"EID ranges count up IPv4, IPv6 and name EIDs, not {baseEid}");
        }
    }

    /// <summary>Null when <paramref name="count"/> EIDs from <paramref name="baseEid"/> fit, else why not.</summary>
    public static string? Check(EidPrefix baseEid, long count)
    {
        if (baseEid.Inner is not (IpAddress or DistinguishedName)) return $"an EID range needs an IPv4, IPv6 or name base, not {baseEid}";
        try
        {
            At(baseEid, count - 1);
            return null;
        }
        catch (ArgumentOutOfRangeException e)
        {
            return e.Message;
        }
    }

    public static List<EidPrefix> Build(EidPrefix baseEid, int count)
    {
        var list = new List<EidPrefix>(count);
        for (int i = 0; i < count; i++) list.Add(At(baseEid, i));
        return list;
    }
}
