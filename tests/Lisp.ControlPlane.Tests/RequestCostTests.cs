using System.Net;
using System.Text;
using Lisp.ControlPlane;
using Lisp.Wire;
using static Lisp.ControlPlane.Tests.H;

namespace Lisp.ControlPlane.Tests;

/// <summary>
/// Issue 10: no per-request work that grows with the table. Measured as bytes allocated per Map-Request (decode,
/// lookup, reply), which a walk over the table (the old LINQ scan allocated per registration) would grow; not a
/// wall-clock assertion.
/// </summary>
public class RequestCostTests
{
    private static MapServer Loaded(int n)
    {
        const string key = "k";
        var ms = new MapServer(new MapServerOptions
        {
            Sites = [new SiteConfig("s", key, [E("[0]10.0.0.0/8")]) { AcceptMoreSpecifics = true }],
            LogLevel = LogLevel.Info,
        });
        var keyBytes = Encoding.UTF8.GetBytes(key);
        var from = Ep("192.0.2.1:4342");
        for (int i = 0; i < n; i += 50)
        {
            // 50 records per Map-Register: loading 100k takes 2,000 HMACs, not 100,000.
            var records = Enumerable.Range(i, Math.Min(50, n - i)).Select(j => Rec($"[0]10.{j >> 16}.{(j >> 8) & 255}.{j & 255}/32", "192.0.2.1")).ToArray();
            var reg = Register((ulong)i + 1, AuthAlgorithm.HmacSha256_128, records) with { ProxyReply = true, WantMapNotify = false };
            var bytes = reg.ToSignedBytes(keyBytes);
            ms.HandleMapRegister(Decode<MapRegister>(bytes), new ReceivedPacket(bytes, from, Ep("10.0.0.1:4342")), T0);
        }
        Assert.Equal(n, ms.RegistrationCount);
        return ms;
    }

    private static double BytesPerRequest(MapServer ms, int n, bool negative)
    {
        var rnd = new Random(5);
        var ecms = Enumerable.Range(0, 256).Select(j =>
        {
            int i = rnd.Next(n);
            string eid = negative ? $"[0]10.200.{i & 255}.7/32" : $"[0]10.{i >> 16}.{(i >> 8) & 255}.{i & 255}/32";
            return Ecm(Request((ulong)j + 1, eid, "192.0.2.9"), "192.0.2.9");
        }).ToArray();
        void Run(int count)
        {
            for (int k = 0; k < count; k++)
            {
                var bytes = ecms[k & 255];
                var ecm = Decode<EncapsulatedControlMessage>(bytes);
                var actions = ms.HandleMapRequest(ecm, (MapRequest)ecm.Message, new ReceivedPacket(bytes, Ep("192.0.2.9:4342"), Ep("10.0.0.1:4342")), T0);
                Assert.Single(Sends(actions));
            }
        }
        Run(512); // warm up (tiered JIT, lazily built statics)
        long before = GC.GetAllocatedBytesForCurrentThread();
        Run(4096);
        return (GC.GetAllocatedBytesForCurrentThread() - before) / 4096.0;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Allocation_per_map_request_is_the_same_at_1k_and_100k_registrations(bool negative)
    {
        double small = BytesPerRequest(Loaded(1_000), 1_000, negative);
        double large = BytesPerRequest(Loaded(100_000), 100_000, negative);
        // Same messages, same answers' shapes: the only difference allowed is noise of a few bytes (an address that
        // prints one digit longer). A scan of the table would add bytes per registration, i.e. tens of kilobytes.
        Assert.True(large <= small + 64, $"{(negative ? "negative" : "positive")} reply: {small:F0} B per request at 1k, {large:F0} B at 100k");
    }
}
