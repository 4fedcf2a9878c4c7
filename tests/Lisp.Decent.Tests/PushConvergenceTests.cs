using System.Diagnostics;
using System.Globalization;
using System.Text;
using Lisp.ControlPlane;
using Lisp.Decent.Push;
using Lisp.Wire;
using Xunit;
using Xunit.Abstractions;

namespace Lisp.Decent.Tests;

/// <summary>
/// Convergence of a push group in one process (in-memory underlay, real state machines): wall time from a new
/// registration until every member holds it, and datagrams sent per registration, for 3, 10 and 50 members.
/// Set LISP_PUSH_PERF_OUT=FILE to also write the table (the push section of perf/RESULTS.md is made from it).
/// </summary>
public class PushConvergenceTests(ITestOutputHelper output)
{
    private const int Rounds = 25;

    [Fact]
    public void Convergence_for_3_10_and_50_members()
    {
        var table = new StringBuilder();
        table.AppendLine("| members | delivery | Map-Notify | datagrams / registration | median µs to all | p90 µs to all | hops |");
        table.AppendLine("|---:|---|---|---:|---:|---:|---:|");
        foreach (int n in new[] { 3, 10, 50 })
        {
            foreach (var delivery in new[] { PushDelivery.Replicate, PushDelivery.ReplicateEncapsulated, PushDelivery.Multicast })
            {
                foreach (bool notify in new[] { false, true })
                {
                    var (datagrams, median, p90) = Measure(n, delivery, notify);
                    // Map-Registers (one per member, or one multicast) plus, with the M bit, one Map-Notify per member;
                    // no Map-Notify-Ack for it (RFC 9301 5.7).
                    int expected = (delivery == PushDelivery.Multicast ? 1 : n) + (notify ? n : 0);
                    Assert.Equal(expected, datagrams);
                    table.AppendLine(CultureInfo.InvariantCulture,
                        $"| {n} | {Text(delivery)} | {(notify ? "yes" : "no")} | {datagrams} | {median:0} | {p90:0} | 1 |");
                }
            }
        }
        output.WriteLine(table.ToString());
        if (Environment.GetEnvironmentVariable("LISP_PUSH_PERF_OUT") is { Length: > 0 } path) File.WriteAllText(path, table.ToString());
    }

    private static string Text(PushDelivery d) => d switch
    {
        PushDelivery.Multicast => "multicast",
        PushDelivery.ReplicateEncapsulated => "replicate-encapsulated",
        _ => "replicate",
    };

    /// <returns>datagrams per registration, median and 90th percentile microseconds until every member holds it</returns>
    private static (long Datagrams, double Median, double P90) Measure(int n, PushDelivery delivery, bool notify)
    {
        var net = new PushTestNetwork(delivery) { WantMapNotify = notify };
        for (int i = 1; i <= n; i++) net.Add(i, n, [$"[0]172.16.{i}.0/24"]);
        net.Converge();
        foreach (var m in net.Members) Assert.Equal(n + 1, m.Eids(net.Now).Count); // every member's prefix + the peer group

        var registrant = net.Members[n / 2];
        var times = new List<double>();
        long datagrams = -1;
        for (int round = 0; round < Rounds; round++)
        {
            net.Now += TimeSpan.FromMilliseconds(10);
            var eid = EidPrefix.Parse($"[0]'round-{round}'");
            var mapping = new DatabaseMapping(eid, [new LocatorRecord(new IpAddress(registrant.Rloc))]);
            // Only the new mapping is registered (a real ETR sends its whole database; that is one Map-Register too here).
            var etr = registrant.Node.Etr!;
            long before = net.Datagrams;
            var sw = Stopwatch.StartNew();
            var actions = etr.UpdateDatabase([mapping], net.Now);
            net.Emit(registrant, actions);
            net.Run();
            sw.Stop();
            foreach (var m in net.Members) Assert.True(m.Holds(eid.ToString(), net.Now), m.Name);
            long sent = net.Datagrams - before;
            if (datagrams >= 0) Assert.Equal(datagrams, sent);
            datagrams = sent;
            if (round >= 3) times.Add(sw.Elapsed.TotalMicroseconds); // first rounds warm up the JIT
        }
        times.Sort();
        return (datagrams, times[times.Count / 2], times[(int)(times.Count * 0.9)]);
    }
}
