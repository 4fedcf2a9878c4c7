using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Lisp.DataPlane;
using Lisp.MapCache;
using Xunit;

namespace Lisp.DataPlane.Tests;

/// <summary>The real sendmmsg/recvmmsg sockets on loopback (127.0.0.1 / ::1 only).</summary>
public sealed class SocketTests
{
    [Fact]
    public void Udp_batch_send_and_receive_on_loopback()
    {
        using var rx = UdpBatchSocket.OpenUdp(new IPEndPoint(IPAddress.Loopback, 0), reusePort: false);
        using var tx = UdpBatchSocket.OpenUdp(new IPEndPoint(IPAddress.Loopback, 0), reusePort: false);
        int port = rx.LocalPort;
        Assert.NotEqual(0, port);
        using var batch = new PacketBatch(32, 1500);
        var idx = new int[32];
        for (int i = 0; i < 32; i++)
        {
            batch.Set(i, Enumerable.Repeat((byte)i, 10 + i).ToArray());
            batch.SetV4Address(i, 0x7f000001, (ushort)port);
            idx[i] = i;
        }
        Assert.Equal(32, tx.Send(batch, idx));
        using var rb = new PacketBatch(64, 1500);
        int got = 0;
        var lengths = new List<int>();
        for (int t = 0; t < 50 && got < 32; t++)
        {
            int n = rx.Receive(rb, 100);
            for (int i = 0; i < n; i++)
            {
                lengths.Add(rb.Length[i]);
                Assert.Equal((byte)(rb.Length[i] - 10), rb.Packet(i)[0]);
                Assert.Equal(IPAddress.Loopback, rb.Address(i)!.Address);
                Assert.Equal(tx.LocalPort, rb.Address(i)!.Port);
            }
            got += n;
        }
        Assert.Equal(Enumerable.Range(10, 32), lengths);
    }

    /// <summary>
    /// A receive buffer too small for a burst: the kernel drops the rest, the socket's own count (SO_MEMINFO) says how many,
    /// the same number /proc/net/udp shows in its drops column for the socket, and the ETR reports it as kernel-receive-drop.
    /// </summary>
    [Fact]
    public void Datagrams_the_kernel_dropped_for_a_full_receive_buffer_are_counted()
    {
        using var rx = UdpBatchSocket.OpenUdp(new IPEndPoint(IPAddress.Loopback, 0), reusePort: false, bufferBytes: 64 << 10);
        using var tx = UdpBatchSocket.OpenUdp(new IPEndPoint(IPAddress.Loopback, 0), reusePort: false);
        Assert.Equal(0, rx.KernelDrops);
        using var batch = new PacketBatch(64, 1500);
        var idx = Enumerable.Range(0, 64).ToArray();
        for (int i = 0; i < 64; i++)
        {
            batch.Set(i, new byte[1000]);
            batch.SetV4Address(i, 0x7f000001, (ushort)rx.LocalPort);
        }
        int sent = 0;
        for (int round = 0; round < 20; round++) sent += tx.Send(batch, idx); // 1,280 datagrams, 1.28 MB: far over 128 KiB
        Assert.Equal(1280, sent);
        long drops = rx.KernelDrops;
        Assert.InRange(drops, 1, 1279);
        Assert.Equal(drops, ProcNetUdpDrops(rx.LocalPort));

        // The ETR reads the count between batches: everything queued is decapsulated or dropped, and the rest is the kernel's.
        var tun = new InMemoryTun("k");
        var o = new DataPlaneOptions { InstanceId = 0, LocalRlocV4 = IPAddress.Loopback, BatchSize = 64, MaxPacket = 1600 };
        var etr = new EtrWorker(rx, new Dictionary<uint, ITun> { [0] = tun }, o);
        while (etr.RunOnce(50) > 0) { }
        Assert.Equal(drops, etr.Counters[DropReason.KernelReceiveDrop]);
        // The zero-filled datagrams are not LISP (inner packet malformed): every one the kernel queued was read and counted.
        Assert.Equal(1280 - drops, etr.Counters.TotalDrops - drops);
    }

    /// <summary>The drops column (the last) of the /proc/net/udp line for 127.0.0.1:<paramref name="port"/>.</summary>
    private static long ProcNetUdpDrops(int port)
    {
        string local = $"0100007F:{port:X4}";
        var line = File.ReadAllLines("/proc/net/udp").Single(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries) is { Length: > 12 } f && f[1] == local);
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[^1]);
    }

    /// <summary>With CAP_NET_ADMIN (tests run as root) a receive buffer past net.core.rmem_max is granted in full.</summary>
    [SkippableFact]
    public void A_receive_buffer_past_rmem_max_is_granted_with_cap_net_admin()
    {
        Skip.IfNot(Environment.UserName == "root", "not root: SO_RCVBUFFORCE needs CAP_NET_ADMIN");
        long max = long.Parse(File.ReadAllText("/proc/sys/net/core/rmem_max").Trim());
        int ask = (int)Math.Min(1L << 30, Math.Max(16L << 20, max * 2));
        using var rx = UdpBatchSocket.OpenUdp(new IPEndPoint(IPAddress.Loopback, 0), reusePort: false, bufferBytes: ask);
        Assert.Equal(2L * ask, rx.ReceiveBufferBytes);
    }

    [Fact]
    public void Udp_v6_receives_zero_checksum_datagrams()
    {
        if (!Socket.OSSupportsIPv6) return;
        using var rx = UdpBatchSocket.OpenUdp(new IPEndPoint(IPAddress.IPv6Loopback, 0), reusePort: false);
        using var tx = UdpBatchSocket.OpenUdp(new IPEndPoint(IPAddress.IPv6Loopback, 0), reusePort: false); // UDP_NO_CHECK6_TX
        using var batch = new PacketBatch(1, 200);
        batch.Set(0, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
        batch.SetV6Address(0, IPAddress.IPv6Loopback.GetAddressBytes(), (ushort)rx.LocalPort);
        Assert.Equal(1, tx.Send(batch, [0]));
        using var rb = new PacketBatch(4, 200);
        Assert.Equal(1, rx.Receive(rb, 2000));
        Assert.Equal(9, rb.Length[0]);
    }

    [SkippableFact]
    public void Raw_socket_itr_reaches_a_udp_socket_with_per_flow_source_ports()
    {
        UdpBatchSocket raw;
        try
        {
            raw = UdpBatchSocket.OpenRaw(AddressFamily.InterNetwork);
        }
        catch (IOException e)
        {
            throw new SkipException($"raw sockets not permitted here: {e.Message}");
        }
        using var rawSocket = raw;
        using var rx = UdpBatchSocket.OpenUdp(new IPEndPoint(IPAddress.Loopback, 0), reusePort: false);
        var cache = new MapCacheWriter();
        cache.AddOrReplace(Lisp.Wire.EidPrefix.Parse("[0]10.2.0.0/24"), [new RlocSpec(IPAddress.Loopback, 1, 1)], 60, long.MaxValue);
        cache.Publish();
        var tun = new InMemoryTun();
        var o = new DataPlaneOptions { LocalRlocV4 = IPAddress.Loopback, DataPort = (ushort)rx.LocalPort, BatchSize = 8, MaxPacket = 1500 };
        using var itr = new ItrWorker(tun, () => cache.Current, raw, null, new MissQueue(), o);
        for (int f = 0; f < 8; f++) tun.Inject(Packets.UdpV4("10.1.0.1", "10.2.0.3", (ushort)(100 + f), 80));
        Assert.Equal(8, itr.RunOnce(0));
        Assert.Equal(0, itr.Counters.TotalDrops);
        using var rb = new PacketBatch(16, 1500);
        var ports = new HashSet<int>();
        for (int t = 0; t < 50 && ports.Count + 0 < 8; t++)
        {
            int n = rx.Receive(rb, 100);
            for (int i = 0; i < n; i++)
            {
                Assert.Equal(8 + 64, rb.Length[i]);
                Assert.Equal(0x88, rb.Packet(i)[0]);
                ports.Add(rb.Address(i)!.Port);
            }
            if (n == 0 && t > 10) break;
        }
        Assert.True(ports.Count >= 6, $"8 flows gave {ports.Count} distinct source ports");
        Assert.All(ports, p => Assert.InRange(p, 49152, 65535));
    }

    [Fact]
    public void Io_uring_probe_reports_either_way()
    {
        bool ok = IoUringProbe.Probe(out var detail);
        Assert.Contains(ok ? "succeeded" : "failed", detail);
    }
}
