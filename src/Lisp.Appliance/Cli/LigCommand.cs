using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Lisp.Appliance.Config;
using Lisp.ControlPlane.Transport;
using Lisp.Wire;

namespace Lisp.Appliance.Cli;

/// <summary>
/// `lisp-decent lig`: the LISP Internet Groper. Sends an ECM Map-Request for one EID to a map-resolver and
/// prints the Map-Reply (RLOCs, priorities, weights, TTL, round-trip time).
/// </summary>
public static class LigCommand
{
    public const string Help = """
        Usage: lisp-decent lig EID --map-resolver ADDR[:PORT] [options]

        Sends a Map-Request for EID (inside an Encapsulated Control Message) to a map-resolver and prints
        the Map-Reply: each EID-record with its TTL and action, and each RLOC with priority, weight and
        reachability, plus the round-trip time.

        Arguments:
          EID                    in printed form: [0]10.1.1.1/32, 10.1.1.1, [0]2001::1/128, [0]'dino',
                                 [0](1.1.1.1/32, 224.1.1.1/32), [0]+1223344556677880/64,
                                 [0]0000-1111-2222/48, [0]48-51-12-N-2-20-55-E/100 ([iid] defaults to [0])

        Options:
          --map-resolver ADDR[:PORT]   where to send (port 4342 when omitted; [v6]:port for IPv6)
          --source ADDR          local address to send from and to name as ITR-RLOC (default: chosen by routing)
          --count N              tries before giving up (default 3)
          --timeout DURATION     wait per try, e.g. 2s or 500ms (default 2s)
          --json                 print the reply as JSON
          -h, --help             show this help

        Exit status: 0 a Map-Reply arrived (positive or negative), 1 no reply, 2 usage error.
        """;

    public static int Run(IReadOnlyList<string> args, TextWriter stdout, TextWriter stderr)
    {
        var cl = CommandLine.Parse(args, ["map-resolver", "source", "count", "timeout"], ["json"]);
        if (cl.Has("help"))
        {
            stdout.WriteLine(Help);
            return 0;
        }
        if (cl.Error is not null || cl.Positional.Count != 1 || cl.Value("map-resolver") is null)
        {
            stderr.WriteLine($"lig: {cl.Error ?? (cl.Positional.Count != 1 ? "give exactly one EID" : "--map-resolver is required")} (see lisp-decent lig --help)");
            return 2;
        }
        if (!EidPrefix.TryParse(cl.Positional[0], out var eid, out var eidError))
        {
            stderr.WriteLine($"lig: {eidError}");
            return 2;
        }
        if (!ConfigLoader.TryEndpoint(cl.Value("map-resolver")!, DataHeader.ControlPort, out var resolver))
        {
            stderr.WriteLine($"lig: --map-resolver '{cl.Value("map-resolver")}' is not ADDR or ADDR:PORT");
            return 2;
        }
        IPAddress? source = null;
        if (cl.Value("source") is { } src && !IPAddress.TryParse(src, out source))
        {
            stderr.WriteLine($"lig: --source '{src}' is not an address");
            return 2;
        }
        int count = 3;
        if (cl.Value("count") is { } c && (!int.TryParse(c, out count) || count < 1 || count > 100))
        {
            stderr.WriteLine("lig: --count must be 1..100");
            return 2;
        }
        var timeout = TimeSpan.FromSeconds(2);
        if (cl.Value("timeout") is { } t && (!ConfigLoader.TryDuration(t, out timeout) || timeout <= TimeSpan.Zero))
        {
            stderr.WriteLine("lig: --timeout must be a duration like 2s or 500ms");
            return 2;
        }

        using var socket = new Socket(resolver.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        socket.Bind(new IPEndPoint(source ?? (resolver.AddressFamily == AddressFamily.InterNetwork ? IPAddress.Any : IPAddress.IPv6Any), 0));
        var local = LocalAddressFor(resolver, source);
        int localPort = ((IPEndPoint)socket.LocalEndPoint!).Port;
        bool json = cl.Has("json");
        var buffer = new byte[UdpControlTransport.MaxDatagram];
        var nonceBytes = new byte[8];

        for (int attempt = 1; attempt <= count; attempt++)
        {
            // The kernel's CSPRNG through getrandom(2), as the roles' nonces (RandomNumberGenerator would open OpenSSL).
            Lisp.ControlPlane.SecureRandom.Instance.NextBytes(nonceBytes);
            ulong nonce = BitConverter.ToUInt64(nonceBytes);
            var ecm = BuildRequest(eid!, nonce, local, localPort);
            if (!json) stdout.WriteLine($"Send map-request to {resolver} for {eid} (nonce 0x{nonce:x16}) ...");
            var sw = Stopwatch.StartNew();
            try
            {
                socket.SendTo(ecm.ToBytes(), resolver);
            }
            catch (SocketException e)
            {
                stderr.WriteLine($"lig: cannot send to {resolver}: {e.SocketErrorCode}");
                return 1;
            }
            while (sw.Elapsed < timeout)
            {
                var left = timeout - sw.Elapsed;
                if (!socket.Poll((int)Math.Max(1, left.TotalMicroseconds), SelectMode.SelectRead)) break;
                EndPoint from = new IPEndPoint(resolver.AddressFamily == AddressFamily.InterNetwork ? IPAddress.Any : IPAddress.IPv6Any, 0);
                int n;
                try
                {
                    n = socket.ReceiveFrom(buffer, ref from);
                }
                catch (SocketException)
                {
                    continue; // ICMP unreachable from an earlier try; keep waiting for this one
                }
                var st = ControlMessage.TryDecode(buffer.AsSpan(0, n), out var msg);
                if (!st.IsOk || msg is not MapReply reply || reply.Nonce != nonce)
                {
                    if (!json) stdout.WriteLine($"  ignored a datagram from {from}: {(st.IsOk ? "not the Map-Reply we wait for" : st.ToString())}");
                    continue;
                }
                var rtt = sw.Elapsed;
                Print(stdout, json, reply, (IPEndPoint)from, rtt, eid!);
                return 0;
            }
            if (!json) stdout.WriteLine($"  no reply within {timeout.TotalMilliseconds:0} ms");
        }
        if (json) stdout.WriteLine(JsonSerializer.Serialize(new LigResult(eid!.ToString(), false, null, 0, []), ApplianceJsonContext.Default.LigResult));
        stderr.WriteLine($"lig: no Map-Reply from {resolver} after {count} tries");
        return 1;
    }

    internal static EncapsulatedControlMessage BuildRequest(EidPrefix eid, ulong nonce, IPAddress local, int localPort)
    {
        var request = new MapRequest
        {
            Nonce = nonce,
            SourceEid = NoAddress.Instance,
            ItrRlocs = [new IpAddress(local)],
            Records = [eid],
        };
        // Inner header: from us to the EID when it is an IP address of our family, else to the unspecified address.
        IPAddress innerDst = eid.Inner is IpAddress ip && ip.Address.AddressFamily == local.AddressFamily
            ? ip.Address
            : local.AddressFamily == AddressFamily.InterNetwork ? IPAddress.Any : IPAddress.IPv6Any;
        var inner = new IpUdpHeader(local, innerDst, (ushort)localPort, DataHeader.ControlPort, 64);
        return new EncapsulatedControlMessage(inner, request);
    }

    private static IPAddress LocalAddressFor(IPEndPoint resolver, IPAddress? source)
    {
        if (source is not null) return source;
        using var probe = new Socket(resolver.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        probe.Connect(resolver); // no packet is sent: this only asks the kernel which source address it would use
        return ((IPEndPoint)probe.LocalEndPoint!).Address;
    }

    private static void Print(TextWriter stdout, bool json, MapReply reply, IPEndPoint from, TimeSpan rtt, EidPrefix asked)
    {
        if (json)
        {
            var records = reply.Records.Select(r => new LigRecord(r.Eid.ToString(), (int)r.Ttl.TotalSeconds, r.Action.ToString(), r.Authoritative,
                r.Locators.Select(l => new LigRloc(l.Locator.ToText(), l.Priority, l.Weight, l.Reachable)).ToList())).ToList();
            stdout.WriteLine(JsonSerializer.Serialize(new LigResult(asked.ToString(), true, from.ToString(), Math.Round(rtt.TotalMilliseconds, 3), records), ApplianceJsonContext.Default.LigResult));
            return;
        }
        stdout.WriteLine($"Received map-reply from {from} with rtt {rtt.TotalMilliseconds:0.000} ms");
        foreach (var r in reply.Records)
        {
            string kind = r.IsNegative ? $"negative, action {r.Action}" : $"{r.Locators.Count} RLOC(s)";
            stdout.WriteLine($"  EID {r.Eid}, ttl {FormatTtl(r.Ttl)}, {kind}{(r.Authoritative ? ", authoritative" : "")}");
            foreach (var l in r.Locators)
            {
                stdout.WriteLine($"    RLOC {l.Locator.ToText(),-40} priority {l.Priority,3} weight {l.Weight,3}  {(l.Reachable ? "up" : "down")}");
            }
        }
    }

    private static string FormatTtl(TimeSpan t) => t.TotalSeconds < 120 ? $"{t.TotalSeconds:0} seconds" : $"{t.TotalMinutes:0} minutes";
}

public sealed record LigRloc(string Address, int Priority, int Weight, bool Up);
public sealed record LigRecord(string Eid, int TtlSeconds, string Action, bool Authoritative, List<LigRloc> Rlocs);
public sealed record LigResult(string Eid, bool Replied, string? From, double RttMs, List<LigRecord> Records);
