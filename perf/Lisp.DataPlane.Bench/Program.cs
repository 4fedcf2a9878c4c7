using System.Diagnostics;
using System.Net;
using Lisp.DataPlane;
using Lisp.MapCache;
using Lisp.Wire;

// Usage (each runs for --seconds, bounded):
//   blast --dst IP --port P --size INNER_IP_BYTES [--seconds S] [--src IP]
//         sendmmsg UDP blaster (64-packet batches). IP may be IPv4 or IPv6. The UDP payload is always
//         INNER_IP_BYTES - 28 (the size of an IPv4 packet of INNER_IP_BYTES), for an IPv6 destination too, so that
//         rows of both families carry the same payload (the IPv6 packet is then 20 bytes longer). --src binds the
//         sending socket (default: any address, chosen by the route).
//   sink  --bind IP --port P [--seconds S]                           recvmmsg sink; prints pps and Gbit/s of IP bytes
//         (UDP payload + 28 for IPv4, + 48 for IPv6)
//   xtr   --tun NAME --local IP --remote IP --eid PREFIX --addr A/L [--seconds S] [--workers N] [--io auto|io_uring|syscalls]
//         static-mapping xTR: EID PREFIX -> remote RLOC; TUN gets address A/L and a route for PREFIX
//   copies [--rounds N]
//         user-space cost of one 44-segment TCP super-packet (IPv4, MSS 1412: what the TUN hands the ITR at gso_max_segs
//         44) on each side, copying against copy-free, interleaved round by round; best and median ns per super-packet.
//         ITR: Segmenter.Segment (payload copied behind each header) vs SegmentHeaders (payload left for a gather send).
//         ETR: Coalescer TryAdd + Group (two copies) vs TryAddInPlace + Gather (none); both verify every checksum.
var a = args.Skip(1).Select((x, i) => (x, i)).Where(p => p.i % 2 == 0).ToDictionary(p => p.x.TrimStart('-'), p => args[p.i + 2]);
double seconds = a.TryGetValue("seconds", out var s) ? double.Parse(s) : 5;
switch (args[0])
{
    case "blast":
    {
        var dst = IPAddress.Parse(a["dst"]);
        int port = int.Parse(a["port"]);
        bool v6 = dst.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6;
        int payload = int.Parse(a["size"]) - 28; // IPv4 inner packet size -> UDP payload (same payload for IPv6)
        var src = a.TryGetValue("src", out var b) ? IPAddress.Parse(b) : v6 ? IPAddress.IPv6Any : IPAddress.Any;
        if (src.AddressFamily != dst.AddressFamily) throw new ArgumentException("--src and --dst must be of one family");
        using var sock = UdpBatchSocket.OpenUdp(new IPEndPoint(src, 0), reusePort: false);
        using var batch = new PacketBatch(64, 1500);
        var idx = Enumerable.Range(0, 64).ToArray();
        for (int i = 0; i < 64; i++)
        {
            batch.Set(i, new byte[payload]);
            if (v6) batch.SetV6Address(i, dst.GetAddressBytes(), (ushort)port);
            else batch.SetV4Address(i, System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(dst.GetAddressBytes()), (ushort)port);
        }
        long sent = 0;
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed.TotalSeconds < seconds) sent += sock.Send(batch, idx);
        string family = v6 ? $", IPv6, UDP payload {payload} B" : "";
        Console.WriteLine($"blast: {sent} packets in {sw.Elapsed.TotalSeconds:0.00} s = {sent / sw.Elapsed.TotalSeconds / 1e6:0.000} Mpps offered ({sock.SendErrors} send errors{family})");
        break;
    }
    case "sink":
    {
        var bind = IPAddress.Parse(a["bind"]);
        int ipAndUdpHeaders = bind.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? 48 : 28;
        using var sock = UdpBatchSocket.OpenUdp(new IPEndPoint(bind, int.Parse(a["port"])), reusePort: false, bufferBytes: 32 << 20);
        using var batch = new PacketBatch(64, 2000);
        long packets = 0, bytes = 0;
        var sw = Stopwatch.StartNew();
        double first = -1, last = 0;
        while (sw.Elapsed.TotalSeconds < seconds)
        {
            int n = sock.Receive(batch, 100);
            if (n == 0) continue;
            if (first < 0) first = sw.Elapsed.TotalSeconds;
            last = sw.Elapsed.TotalSeconds;
            packets += n;
            for (int i = 0; i < n; i++) bytes += batch.Length[i] + ipAndUdpHeaders;
        }
        double t = Math.Max(1e-3, last - first);
        Console.WriteLine($"sink: {packets} packets over {t:0.00} s = {packets / t / 1e6:0.000} Mpps, {bytes * 8 / t / 1e9:0.000} Gbit/s ({(ipAndUdpHeaders == 48 ? "IPv6" : "inner IP")} bytes)");
        break;
    }
    case "xtr":
    {
        var cache = new MapCacheWriter();
        cache.AddOrReplace(EidPrefix.Parse("[0]" + a["eid"]), [new RlocSpec(IPAddress.Parse(a["remote"]), 1, 100)], 3600, long.MaxValue);
        cache.Publish();
        var o = new DataPlaneOptions { LocalRlocV4 = IPAddress.Parse(a["local"]), MaxPacket = 1600, UnderlayMtu = 1500 };
        var io = (a.TryGetValue("io", out var m) ? m : "auto") switch { "io_uring" => IoMode.IoUring, "syscalls" => IoMode.Syscalls, _ => IoMode.Auto };
        using var engine = DataPlaneEngine.Open(o, a["tun"], a.TryGetValue("workers", out var w) ? int.Parse(w) : 1, SendMode.Auto, cache.RegisterReader, new MissQueue(), io: io);
        foreach (var n in engine.Notes) Console.WriteLine("xtr: " + n);
        Process.Start("ip", ["link", "set", "dev", a["tun"], "mtu", "1500", "up"])!.WaitForExit();
        Process.Start("ip", ["addr", "add", a["addr"], "dev", a["tun"]])!.WaitForExit();
        Process.Start("ip", ["route", "replace", a["eid"], "dev", a["tun"]])!.WaitForExit();
        engine.Start();
        Console.WriteLine("xtr: ready");
        Thread.Sleep(TimeSpan.FromSeconds(seconds));
        Console.WriteLine($"xtr {a["tun"]} io={(engine.UsesIoUring ? "io_uring" : "syscalls")}: {engine.Counters}");
        var itr = engine.Itrs[0].Counters;
        var etr = engine.Etrs[0].Counters;
        Console.WriteLine($"xtr {a["tun"]} batches: itr {itr.Batches} (avg {(itr.Batches > 0 ? (double)itr.EncapPackets / itr.Batches : 0):0.0} pkts), " +
            $"etr {etr.Batches} (avg {(etr.Batches > 0 ? (double)etr.DecapPackets / etr.Batches : 0):0.0} pkts)");
        break;
    }
    case "copies":
        return CopiesBench.Run(a.TryGetValue("rounds", out var r) ? int.Parse(r) : 11);
    default:
        Console.Error.WriteLine("blast | sink | xtr | copies");
        return 2;
}
return 0;
