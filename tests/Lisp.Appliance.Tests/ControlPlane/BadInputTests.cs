using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.RegularExpressions;
using Lisp.Appliance.Tests.Support;
using Lisp.Wire;
using Xunit.Abstractions;

namespace Lisp.Appliance.Tests.ControlPlane;

/// <summary>
/// MS/MR on 127.0.22.1 with an ETR on .2; a test socket on .9 sends truncated, garbage, wrong-length and
/// unauthenticated packets, then a flood of strangers' Map-Registers (SHA-1 and SHA-256). The node counts and
/// drops them all and keeps serving.
/// </summary>
public sealed class BadInputTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(15);

    [Fact]
    public void MalformedAndUnauthenticatedPacketsAndFloodsAreDroppedAndTheNodeKeepsServing()
    {
        using var t = new Topology("127.0.22");
        var ms = t.StartNode("ms", NodeToml.MapServer("ms-22", "127.0.22.1", registrationTimeout: "6s", sites: [new("site-22", "key-22", "[0]10.22.0.0/16")]));
        var etr = t.StartNode("etr", NodeToml.Etr("etr-22", "127.0.22.2", "127.0.22.1", "key-22", [new("[0]10.22.1.0/24")]));
        ms.WaitForLine(@"registration-accepted site 'site-22' \[0\]10\.22\.1\.0/24", Wait);

        using var socket = new TestSocket(t.Address(9));
        var to = t.IpEndpoint(1);
        var bad = BadPackets(t.Address(9)).ToList();
        foreach (var p in bad)
        {
            socket.Send(p, to);
        }
        // The control queue is FIFO: once lig (sent after them) is answered, every bad packet was handled.
        var reply = t.Lig("10.22.1.5", 1);
        Assert.True(reply.IsPositive, reply.Raw);
        Assert.False(ms.HasExited, ms.Output);
        Assert.Null(socket.Receive(TimeSpan.FromMilliseconds(300))); // none of them got an answer

        // Flood: 20k strangers' Map-Registers, both algorithms, for covered and unknown EIDs, plus garbage.
        int notifiesBefore = etr.Count("map-notify-accepted");
        var rnd = new Random(22);
        var flood = Stopwatch.StartNew();
        int sent = 0;
        var templates = Enumerable.Range(0, 64).Select(i => StrangerRegister(rnd, i)).ToArray();
        while (sent < 20_000 && flood.Elapsed < TimeSpan.FromSeconds(10))
        {
            var p = templates[sent % templates.Length];
            BinaryPrimitives.WriteUInt64BigEndian(p.AsSpan(4), (ulong)sent); // fresh nonce (its HMAC is wrong anyway)
            try
            {
                socket.Send(p, to);
            }
            catch (System.Net.Sockets.SocketException)
            {
                Thread.Sleep(1); // the local send buffer filled; keep going
            }
            sent++;
        }
        var floodTime = flood.Elapsed;
        Assert.True(sent >= 1000, $"only {sent} flood datagrams went out in 10 s");
        Assert.False(ms.HasExited, ms.Output);

        // Still serving: lig resolves, and the ETR's registration keeps being refreshed and acknowledged.
        var after = t.LigUntil("10.22.1.5", 1, r => r.IsPositive, Wait);
        Assert.True(after.IsPositive, after.Raw);
        etr.WaitForCount("map-notify-accepted", notifiesBefore + 2, Wait);
        var negative = t.Lig("10.22.99.1", 1);
        Assert.True(negative.IsNegative, negative.Raw);
        Assert.False(ms.Any(@"registration-accepted .*from 127\.0\.22\.9") || ms.Any(@"registered by 127\.0\.22\.9"), "a stranger's Map-Register was accepted:\n" + ms.Output);
        Assert.False(ms.Any("handler-fault"), ms.Output);

        // Every bad packet was counted as dropped; the stop line reports the total.
        ms.Stop();
        var stopped = ms.WaitForLine(@"node-stopped ms-22: \d+ packets dropped, \d+ queue drops", TimeSpan.FromSeconds(5));
        var m = Regex.Match(stopped, @"(\d+) packets dropped, (\d+) queue drops");
        long dropped = long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
        long queueDrops = long.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture);
        output.WriteLine($"{bad.Count} bad packets, then {sent} flood datagrams in {floodTime.TotalMilliseconds:0} ms; {stopped}");
        Assert.True(dropped >= bad.Count, $"{dropped} drops counted for {bad.Count} bad packets before the flood");
        Assert.True(dropped + queueDrops >= bad.Count + 1000, $"drops {dropped} + queue drops {queueDrops} for {bad.Count} bad packets and a {sent}-datagram flood");
        Assert.Equal(0, ms.ExitCode);
    }

    /// <summary>A valid Map-Register of a covered EID, signed with a key nobody configured.</summary>
    private static byte[] StrangerRegister(Random rnd, int i)
    {
        var alg = i % 2 == 0 ? AuthAlgorithm.HmacSha1_96 : AuthAlgorithm.HmacSha256_128;
        string eid = i % 3 == 0 ? $"[0]10.22.{i}.0/24" : i % 3 == 1 ? "[0]10.22.1.0/24" : $"[0]172.22.{i}.0/24";
        var key = new byte[16];
        rnd.NextBytes(key);
        return new MapRegister
        {
            Nonce = (ulong)i, Algorithm = alg, WantMapNotify = true, ProxyReply = true,
            Records = [new MappingRecord(EidPrefix.Parse(eid), [new LocatorRecord(new IpAddress(IPAddress.Parse("127.0.22.9")))])],
        }.ToSignedBytes(key);
    }

    private static IEnumerable<byte[]> BadPackets(string self)
    {
        var rnd = new Random(2222);
        var good = new MapRegister
        {
            Nonce = 7, Algorithm = AuthAlgorithm.HmacSha256_128, WantMapNotify = true, ProxyReply = true,
            Records = [new MappingRecord(EidPrefix.Parse("[0]10.22.7.0/24"), [new LocatorRecord(new IpAddress(IPAddress.Parse(self)))])],
        }.ToSignedBytes(Encoding.UTF8.GetBytes("key-22"));

        // Truncated at every length (the correctly signed Map-Register itself is never sent whole).
        for (int n = 0; n < good.Length; n++) yield return good[..n];

        // Garbage of every size class, first byte forced to each message type.
        for (int i = 0; i < 64; i++)
        {
            var g = new byte[rnd.Next(1, 600)];
            rnd.NextBytes(g);
            g[0] = (byte)((i % 16) << 4);
            yield return g;
        }

        // Wrong lengths: record count too big, auth length too big / not matching the algorithm, locator count too big.
        var p = (byte[])good.Clone();
        p[3] = 200;
        yield return p;
        p = (byte[])good.Clone();
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(14), 0xffff);
        yield return p;
        p = (byte[])good.Clone();
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(14), 5);
        yield return p;
        p = (byte[])good.Clone();
        p[16 + 32 + 4] = 99; // locator count of the first record
        yield return p;
        // Right length, wrong HMAC (one bit of the data flipped after signing), and wrong key with each algorithm.
        p = (byte[])good.Clone();
        p[^1] ^= 1;
        yield return p;
        p = (byte[])good.Clone();
        p[20] ^= 0x80;
        yield return p;
        foreach (var alg in new[] { AuthAlgorithm.HmacSha1_96, AuthAlgorithm.HmacSha256_128 })
        {
            yield return new MapRegister
            {
                Nonce = 8, Algorithm = alg, WantMapNotify = true,
                Records = [new MappingRecord(EidPrefix.Parse("[0]10.22.8.0/24"), [new LocatorRecord(new IpAddress(IPAddress.Parse(self)))])],
            }.ToSignedBytes(Encoding.UTF8.GetBytes("wrong-key"));
        }
        // No authentication at all.
        yield return new MapRegister
        {
            Nonce = 9, Algorithm = AuthAlgorithm.None, WantMapNotify = true,
            Records = [new MappingRecord(EidPrefix.Parse("[0]10.22.9.0/24"), [new LocatorRecord(new IpAddress(IPAddress.Parse(self)))])],
        }.ToBytes();
        // An ECM whose inner message is cut short, and an empty datagram.
        var ecm = new byte[] { 0x80, 0, 0, 0, 0x45, 0, 0, 0x4e };
        yield return ecm;
        yield return [];
    }
}
