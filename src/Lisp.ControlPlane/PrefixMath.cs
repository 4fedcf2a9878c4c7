using System.Net;
using Lisp.Wire;

namespace Lisp.ControlPlane;

/// <summary>Prefix arithmetic the map-server needs for negative Map-Replies.</summary>
public static class PrefixMath
{
    /// <summary>Number of leading bits two addresses of one family share (0..32 or 0..128).</summary>
    public static int CommonPrefixLength(IPAddress a, IPAddress b)
    {
        Span<byte> x = stackalloc byte[16];
        Span<byte> y = stackalloc byte[16];
        a.TryWriteBytes(x, out int n);
        b.TryWriteBytes(y, out int m);
        if (n != m) return 0;
        for (int i = 0; i < n; i++)
        {
            int diff = x[i] ^ y[i];
            if (diff != 0) return i * 8 + System.Numerics.BitOperations.LeadingZeroCount((uint)diff) - 24;
        }
        return n * 8;
    }

    /// <summary>True when two prefixes share at least one address (one contains the other).</summary>
    public static bool Overlaps(EidPrefix a, EidPrefix b) => a.Covers(b) || b.Covers(a);

    /// <summary>
    /// The least-specific (shortest) prefix that contains the address of <paramref name="eid"/> and holds no
    /// address of any prefix in <paramref name="obstacles"/> that does not itself contain the EID, and is no
    /// shorter than <paramref name="minLength"/>. Obstacles of another instance-id or family are ignored;
    /// an obstacle that covers the EID is ignored too (the caller decides what covering prefixes mean).
    /// For a non-IP EID the EID itself is returned.
    /// </summary>
    /// <remarks>
    /// A prefix P of length L around address a overlaps an obstacle Q = b/M that does not contain a exactly
    /// when L &lt;= M and the first L bits of a and b agree, i.e. L &lt;= CommonPrefixLength(a, b) (which is
    /// below M because Q does not contain a). So the answer's length is one more than the largest common
    /// prefix length with any obstacle, or <paramref name="minLength"/> when that is larger.
    /// </remarks>
    public static EidPrefix LeastSpecificUncovered(EidPrefix eid, IEnumerable<EidPrefix> obstacles, int minLength = 0)
    {
        if (eid.Inner is not IpAddress ip) return eid;
        int host = ip.HostMaskLength;
        int length = Math.Clamp(minLength, 0, host);
        foreach (var q in obstacles)
        {
            if (q.InstanceId != eid.InstanceId || q.Inner is not IpAddress qip || qip.IsV4 != ip.IsV4) continue;
            int cpl = CommonPrefixLength(ip.Address, EidPrefix.MaskAddress(qip.Address, q.MaskLength));
            if (cpl >= q.MaskLength) continue; // q contains the EID
            length = Math.Max(length, cpl + 1);
        }
        return EidPrefix.Create(eid.InstanceId, new IpAddress(EidPrefix.MaskAddress(ip.Address, length)), length);
    }

    /// <summary>The EID at its full host length (an IP address as /32 or /128); other kinds unchanged.</summary>
    public static EidPrefix HostPrefix(EidPrefix eid) =>
        eid.Inner is IpAddress ip ? EidPrefix.Create(eid.InstanceId, ip, ip.HostMaskLength) : eid;
}
