using System.Net;
using Lisp.ControlPlane;
using Lisp.Wire;
using static Lisp.ControlPlane.Tests.H;

namespace Lisp.ControlPlane.Tests;

/// <summary>
/// Issue 12 finding 3 (RLOC-probe budget, per-record cap, spreading) and finding 6 (TTL ceiling), on an injected
/// clock: the ITR is driven deadline by deadline, as the control loop drives it.
/// </summary>
public class ProbeBudgetTests
{
    private static readonly IPEndPoint Mr = Ep("1.1.1.1:4342");
    private static readonly IPAddress Own = Ip("192.0.2.10");

    private static Itr Make(int budget = 100, int cap = 8, TimeSpan? maxTtl = null) =>
        new(new ItrOptions { Rlocs = [Own], ProbeBudgetPerSecond = budget, MaxProbedLocatorsPerRecord = cap, MaxTtl = maxTtl ?? TimeSpan.FromDays(1) },
            new StaticMappingSystem([], [Mr]), new Random(11));

    private static IReadOnlyList<ControlAction> Install(Itr itr, string eid, MappingRecord record, DateTimeOffset now)
    {
        var ecm = Decode<EncapsulatedControlMessage>(Assert.Single(Sends(itr.Request(E(eid), now))).Payload);
        var bytes = new MapReply { Nonce = ((MapRequest)ecm.Message).Nonce, Records = [record] }.ToBytes();
        return itr.HandleMapReply(Decode<MapReply>(bytes), Packet(bytes, "1.1.1.1:4342", "192.0.2.10:4342"), now);
    }

    /// <summary>Record r of the flood: 255 locators 100.(64+r).0.(k+1); k 250..254 have priority 1, the rest priority 2 with weight k.</summary>
    private static MappingRecord Wide(int r) => new(E($"[0]10.{r}.0.0/16"),
        Enumerable.Range(0, 255).Select(k => new LocatorRecord(IpAddress.Parse($"100.{64 + r}.0.{k + 1}"), (byte)(k >= 250 ? 1 : 2), (byte)k)).ToList(), 60);

    /// <summary>40 Map-Replies of 255 RLOCs each, installed at T0.</summary>
    private static Itr Flood(int budget, int cap)
    {
        var itr = Make(budget, cap);
        for (int r = 0; r < 40; r++) Install(itr, $"[0]10.{r}.1.1/32", Wide(r), T0);
        return itr;
    }

    /// <summary>Runs the ITR deadline by deadline until <paramref name="until"/>; returns the send time of every probe and the largest count of one turn.</summary>
    private static (List<DateTimeOffset> Times, HashSet<string> Targets, int MaxPerTick) Drive(Itr itr, DateTimeOffset until)
    {
        var times = new List<DateTimeOffset>();
        var targets = new HashSet<string>();
        int maxPerTick = 0;
        var now = T0;
        while (itr.NextDeadline is { } d && d <= until)
        {
            now = d > now ? d : now;
            var sends = Sends(itr.Tick(now));
            foreach (var s in sends)
            {
                Assert.True(Decode<MapRequest>(s.Payload).Probe);
                times.Add(now);
                targets.Add(s.To.Address.ToString());
            }
            maxPerTick = Math.Max(maxPerTick, sends.Count);
        }
        return (times, targets, maxPerTick);
    }

    /// <summary>The most sends in any half-open window of <paramref name="window"/>.</summary>
    private static int MaxInWindow(List<DateTimeOffset> times, TimeSpan window)
    {
        int max = 0, lo = 0;
        for (int hi = 0; hi < times.Count; hi++)
        {
            while (times[hi] - times[lo] >= window) lo++;
            max = Math.Max(max, hi - lo + 1);
        }
        return max;
    }

    [Fact]
    public void Forty_replies_of_255_rlocs_stay_within_the_probe_budget()
    {
        var itr = Flood(budget: 100, cap: 255);
        Assert.Equal(40 * 255, itr.RlocProbes.Count);
        Assert.Equal(0, itr.ProbeCounters.LocatorsNotProbed);

        var (times, targets, maxPerTick) = Drive(itr, T0.AddSeconds(60));
        Assert.True(MaxInWindow(times, TimeSpan.FromSeconds(1)) <= 100, $"{MaxInWindow(times, TimeSpan.FromSeconds(1))} probes in one second");
        Assert.True(maxPerTick <= 10, $"{maxPerTick} probes in one turn");              // bursts of a tenth of the budget at most
        Assert.True(MaxInWindow(times, TimeSpan.FromMilliseconds(100)) <= 20);          // paced: about 10 per 100 ms
        // The budget is used (paced near 100/s), and what it holds back is deferred, not lost: every RLOC gets its turn.
        Assert.InRange(times.Count, 5_500, 6_001);
        Assert.Equal(times.Count, itr.ProbeCounters.Sent);
        Assert.True(itr.ProbeCounters.Deferred >= 40 * 255 - 100);
        Assert.Equal(itr.ProbeCounters.Deferred, itr.Counters.Events(ControlEvent.RlocProbeDeferred));
        Assert.Equal(times.Count, targets.Count); // no RLOC probed twice while others wait
        var (later, laterTargets, _) = Drive(itr, T0.AddSeconds(110));
        Assert.True(MaxInWindow(times.Concat(later).ToList(), TimeSpan.FromSeconds(1)) <= 100);
        Assert.Equal(40 * 255, targets.Union(laterTargets).Count()); // all 10,200 probed once within ~102 s
    }

    [Fact]
    public void Per_record_cap_probes_the_best_locators_and_counts_the_rest()
    {
        var itr = Flood(budget: 100, cap: 8);
        Assert.Equal(40 * 8, itr.RlocProbes.Count);
        Assert.Equal(40 * 247, itr.ProbeCounters.LocatorsNotProbed);
        Assert.Equal(40 * 247, itr.Counters.Events(ControlEvent.RlocProbeLocatorNotProbed));
        // Record 0: the five priority-1 locators (k 250..254), then the three heaviest priority-2 ones (k 249, 248, 247).
        var record0 = itr.RlocProbes.Select(p => p.Rloc.ToString()).Where(a => a.StartsWith("100.64.", StringComparison.Ordinal)).Order().ToList();
        Assert.Equal(Enumerable.Range(247, 8).Select(k => $"100.64.0.{k + 1}").Order().ToList(), record0);

        // 320 RLOCs at 10 s: 32/s, within the budget; spread (bursts of at most 10), each RLOC about once per interval.
        var (times, _, maxPerTick) = Drive(itr, T0.AddSeconds(60));
        Assert.True(maxPerTick <= 10);
        Assert.True(MaxInWindow(times, TimeSpan.FromSeconds(1)) <= 100);
        Assert.InRange(times.Count, 320 * 5, 320 * 7);
        // An unprobed locator keeps the Map-Reply's R bit and takes no probe state.
        Assert.True(itr.TryLookup(Ip("10.0.1.1"), 0, T0, out var entry));
        Assert.Equal(255, entry!.Locators.Count);
        Assert.Equal(RlocReachability.Unknown, itr.ReachabilityOf(Ip("100.64.0.1")));
    }

    [Fact]
    public void After_the_initial_burst_probes_are_paced_across_the_interval()
    {
        var itr = Flood(budget: 50, cap: 8); // 320 RLOCs at 10 s = 32/s under a budget of 50/s
        var (times, _, maxPerTick) = Drive(itr, T0.AddSeconds(40));
        Assert.True(maxPerTick <= 5);
        Assert.True(MaxInWindow(times, TimeSpan.FromSeconds(1)) <= 50);
        // From the second interval on, the re-probes follow the paced first round: no second holds more than 50, and none is empty.
        var perSecond = Enumerable.Range(10, 30).Select(s => times.Count(t => t >= T0.AddSeconds(s) && t < T0.AddSeconds(s + 1))).ToList();
        Assert.All(perSecond, n => Assert.InRange(n, 1, 50));
    }

    [Fact]
    public void No_budget_probes_everything_at_once()
    {
        var itr = Flood(budget: 0, cap: 8);
        Assert.Equal(320, Sends(itr.Tick(T0)).Count);
        Assert.Equal(0, itr.ProbeCounters.Deferred);
    }

    [Fact]
    public void Map_cache_ttl_is_capped_and_counted()
    {
        var itr = Make(maxTtl: TimeSpan.FromHours(2));
        var logs = Logs(Install(itr, "[0]10.1.1.1/32", new MappingRecord(E("[0]10.1.0.0/16"), [Loc("192.0.2.1")], 0xffffffff), T0));
        Assert.True(itr.TryLookup(Ip("10.1.1.1"), 0, T0, out var capped));
        Assert.Equal(TimeSpan.FromHours(2), capped!.Ttl);
        Assert.Equal(1, itr.Counters.Events(ControlEvent.TtlCapped));
        Assert.Contains(logs, l => l.Event == "map-cache-install" && l.Message.Contains("TTL 120 min (capped from", StringComparison.Ordinal));
        Assert.False(itr.TryLookup(Ip("10.1.1.1"), 0, T0.AddHours(2), out _));

        Install(itr, "[0]10.2.1.1/32", new MappingRecord(E("[0]10.2.0.0/16"), [Loc("192.0.2.1")], 60), T0);
        Assert.True(itr.TryLookup(Ip("10.2.1.1"), 0, T0, out var normal));
        Assert.Equal(TimeSpan.FromMinutes(60), normal!.Ttl);
        Assert.Equal(1, itr.Counters.Events(ControlEvent.TtlCapped));
    }

    [Fact]
    public void Ttl_zero_in_either_unit_removes_and_installs_nothing()
    {
        var itr = Make();
        Install(itr, "[0]10.1.1.1/32", new MappingRecord(E("[0]10.1.0.0/16"), [Loc("192.0.2.1")], 60), T0);
        Install(itr, "[0]10.1.1.1/32", new MappingRecord(E("[0]10.1.0.0/16"), [Loc("192.0.2.1")], 0x8000_0000), T0.AddSeconds(1)); // 0 seconds
        Assert.False(itr.TryLookup(Ip("10.1.1.1"), 0, T0.AddSeconds(1), out _));
        Install(itr, "[0]10.3.1.1/32", new MappingRecord(E("[0]10.3.0.0/16"), [Loc("192.0.2.1")], 0), T0.AddSeconds(2));
        Assert.Equal(0, itr.CacheCount);
    }
}
