using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Lisp.Load;

/// <summary>
/// The `drops` column of /proc/net/udp and /proc/net/udp6: datagrams the kernel threw away because a socket's
/// receive queue was full. Visible only for sockets of this host (the target when it is local, and ours).
/// </summary>
public static class KernelDrops
{
    /// <summary>The hex form /proc/net/udp uses for an address and port: each 32-bit word in host (little-endian) order.</summary>
    public static string ProcAddress(IPAddress address, int port)
    {
        var b = address.GetAddressBytes();
        var sb = new System.Text.StringBuilder();
        for (int w = 0; w < b.Length; w += 4)
        {
            for (int i = 3; i >= 0; i--) sb.Append(b[w + i].ToString("X2", CultureInfo.InvariantCulture));
        }
        sb.Append(':').Append(port.ToString("X4", CultureInfo.InvariantCulture));
        return sb.ToString();
    }

    /// <summary>
    /// Sum of drops of the sockets bound to <paramref name="endpoint"/> (or to the wildcard address on its port),
    /// from the text of /proc/net/udp(6); null when no such socket is listed.
    /// </summary>
    public static long? Parse(string procText, IPEndPoint endpoint)
    {
        string exact = ProcAddress(endpoint.Address, endpoint.Port);
        var any = endpoint.AddressFamily == AddressFamily.InterNetwork ? IPAddress.Any : IPAddress.IPv6Any;
        string wildcard = ProcAddress(any, endpoint.Port);
        long sum = 0;
        bool found = false;
        foreach (var line in procText.Split('\n'))
        {
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (f.Length < 13 || !f[0].EndsWith(':')) continue;
            if (f[1] != exact && f[1] != wildcard) continue;
            if (long.TryParse(f[^1], NumberStyles.None, CultureInfo.InvariantCulture, out long d))
            {
                sum += d;
                found = true;
            }
        }
        return found ? sum : null;
    }

    /// <summary>
    /// True when <paramref name="address"/> belongs to this machine (loopback, or an address of one of its
    /// interfaces): only then is a socket in /proc/net/udp the target's own, not a local wildcard socket that
    /// happens to share the port with a remote target.
    /// </summary>
    public static bool IsLocal(IPAddress address)
    {
        if (IPAddress.IsLoopback(address)) return true;
        try
        {
            return System.Net.NetworkInformation.NetworkInterface.GetAllNetworkInterfaces()
                .Any(i => i.GetIPProperties().UnicastAddresses.Any(u => u.Address.Equals(address)));
        }
        catch (System.Net.NetworkInformation.NetworkInformationException)
        {
            return false;
        }
    }

    /// <summary>Reads the live counter; null when the file or the socket is not there.</summary>
    public static long? Read(IPEndPoint endpoint)
    {
        string path = endpoint.AddressFamily == AddressFamily.InterNetwork ? "/proc/net/udp" : "/proc/net/udp6";
        try
        {
            return Parse(File.ReadAllText(path), endpoint);
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }
}
