using System.Diagnostics;
using System.Net;
using System.Text;
using Lisp.ControlPlane;
using Lisp.Wire;

namespace Lisp.Perf;

/// <summary>
/// `dotnet run -c Release -- control-table [sizes...]`: the map-server's table in one process, no sockets.
/// Registers N IPv4 /32s (HMAC-SHA-256 signed, one record each, from one ETR) through MapServer.HandleMapRegister,
/// then prints live heap bytes per registration (GC.GetTotalMemory after a full collection, so garbage does not
/// count, unlike RSS) and the cost of one Map-Request (decode + lookup + reply encode) and the bytes it allocates,
/// so the growth from 1k to 1M is visible. A Stopwatch sweep, not BenchmarkDotNet: the table takes seconds to load.
/// </summary>
public static class ControlTableMeasure
{
    public static void Run(int[] sizes)
    {
        var key = "load-key";
        var site = new SiteConfig("load", key, [EidPrefix.Parse("[0]10.0.0.0/8")]) { AcceptMoreSpecifics = true };
        var etr = IPEndPoint.Parse("127.0.43.2:24342");
        var local = IPEndPoint.Parse("127.0.43.1:4342");
        var itr = IPAddress.Parse("127.0.43.3");
        var now = new DateTimeOffset(2026, 12, 7, 0, 0, 0, TimeSpan.Zero);
        var rloc = new List<LocatorRecord> { new(new IpAddress(IPAddress.Parse("127.0.43.2"))) };
        foreach (int n in sizes)
        {
            GC.Collect(2, GCCollectionMode.Forced, true, true);
            long before = GC.GetTotalMemory(true);
            var ms = new MapServer(new MapServerOptions { Sites = [site], RegistrationTimeout = TimeSpan.FromHours(1), LogLevel = LogLevel.Warning });
            var sw = Stopwatch.StartNew();
            for (int i = 0; i < n; i++)
            {
                var eid = EidPrefix.Create(0, new IpAddress(Address(i)), 32);
                var reg = new MapRegister
                {
                    Nonce = (ulong)i + 1, Algorithm = AuthAlgorithm.HmacSha256_128, WantMapNotify = false, ProxyReply = true,   // no Map-Notify: an unacknowledged one is held (and retransmitted) until acked or given up
                    Records = [new MappingRecord(eid, [new LocatorRecord(new IpAddress(IPAddress.Parse("127.0.43.2")))], 1440)],
                };
                var bytes = reg.ToSignedBytes(Encoding.UTF8.GetBytes(key));
                ControlMessage.TryDecode(bytes, out var m);
                ms.HandleMapRegister((MapRegister)m!, new ReceivedPacket(bytes, new IPEndPoint(etr.Address, etr.Port), local), now);
            }
            var load = sw.Elapsed;
            var info = GC.GetGCMemoryInfo();
            long rssLoaded = Environment.WorkingSet;
            GC.Collect(2, GCCollectionMode.Forced, true, true);
            Thread.Sleep(500);
            long rssCompacted = Environment.WorkingSet;
            Console.WriteLine($"  after load: heap {info.HeapSizeBytes >> 20} MiB, fragmented {info.FragmentedBytes >> 20} MiB, RSS {rssLoaded >> 20} MiB; after a compacting gen2: RSS {rssCompacted >> 20} MiB");
            long after = GC.GetTotalMemory(true);
            // Requests: pre-encoded ECMs for EIDs spread over the table, decoded and answered as the node does.
            var rnd = new Random(7);
            var ecms = Enumerable.Range(0, 4096).Select(j =>
            {
                var req = new MapRequest { Nonce = (ulong)j + 1, ItrRlocs = [new IpAddress(itr)], Records = [EidPrefix.Create(0, new IpAddress(Address(rnd.Next(n))), 32)] };
                return new EncapsulatedControlMessage(new IpUdpHeader(itr, Address(0), 4342, 4342), req).ToBytes();
            }).ToArray();
            int rounds = 200_000;
            long alloc0 = GC.GetAllocatedBytesForCurrentThread();
            int gen2 = GC.CollectionCount(2);
            sw.Restart();
            int sent = 0;
            for (int k = 0; k < rounds; k++)
            {
                var bytes = ecms[k & 4095];
                ControlMessage.TryDecode(bytes, out var m);
                var ecm = (EncapsulatedControlMessage)m!;
                var actions = ms.HandleMapRequest(ecm, (MapRequest)ecm.Message, new ReceivedPacket(bytes, new IPEndPoint(itr, 4342), local), now);
                sent += actions.Count;
            }
            var reqTime = sw.Elapsed;
            long alloc = GC.GetAllocatedBytesForCurrentThread() - alloc0;
            Console.WriteLine($"{n,9:N0} registrations: load {load.TotalSeconds:F2} s ({n / load.TotalSeconds:N0}/s incl. signing); live heap {(after - before) / (double)n:F0} B/registration; " +
                              $"Map-Request {reqTime.TotalMilliseconds * 1e6 / rounds:F0} ns, {alloc / (double)rounds:F0} B allocated each, {ms.RegistrationCount} in table, gen2 {GC.CollectionCount(2) - gen2}, actions {sent / rounds}");
            GC.KeepAlive(ms);
        }
    }

    private static IPAddress Address(int i) => new IPAddress(new byte[] { 10, (byte)(i >> 16), (byte)(i >> 8), (byte)i });
}
