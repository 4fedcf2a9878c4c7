using System.Net;
using Lisp.ControlPlane;
using Lisp.Wire;
using static Lisp.ControlPlane.Tests.H;

namespace Lisp.ControlPlane.Tests;

/// <summary>
/// The ITR's timers (issue 10: min-heaps, a turn costs O(due timers)) on a fake clock: with many requests, waits
/// and probed RLOCs at once, retries, no-resolver retries and give-ups, probes and down-marking fire at the times
/// the options give and in the order they always did; and with nothing due a Tick does nothing and
/// <see cref="Itr.NextDeadline"/> is the minimum over every pending deadline (checked against a brute force).
/// </summary>
public class ItrTimerTests
{
    private static readonly IPEndPoint Mr1 = Ep("1.1.1.1:4342"), Mr2 = Ep("2.2.2.2:4342");
    private static readonly IPAddress Own = Ip("192.0.2.10");

    private static ItrOptions Options(bool probing) => new()
    {
        Rlocs = [Own], GlobalRequestsPerSecond = 1_000_000, MaxOutstanding = 100_000,
        ProbeInterval = probing ? TimeSpan.FromSeconds(10) : TimeSpan.Zero, ProbeJitter = 0,
        ProbeBudgetPerSecond = 0, // timer order and timing here; the budget has ProbeBudgetTests
    };

    private static IReadOnlyList<ControlAction> Reply(Itr itr, ulong nonce, DateTimeOffset now, params MappingRecord[] records)
    {
        var bytes = new MapReply { Nonce = nonce, Records = records }.ToBytes();
        return itr.HandleMapReply(Decode<MapReply>(bytes), Packet(bytes, "1.1.1.1:4342", "192.0.2.10:4342"), now);
    }

    private static IReadOnlyList<ControlAction> ProbeReply(Itr itr, ulong nonce, IPAddress from, DateTimeOffset now)
    {
        var bytes = new MapReply { Probe = true, Nonce = nonce, Records = [new MappingRecord(E("[0]10.0.0.0/8"), [new LocatorRecord(new IpAddress(from), 1, 100)], 1)] }.ToBytes();
        return itr.HandleMapReply(Decode<MapReply>(bytes), Packet(bytes, from + ":4342", "192.0.2.10:4342"), now);
    }

    private static MapRequest Ecm(SendAction s) => (MapRequest)Decode<EncapsulatedControlMessage>(s.Payload).Message;

    private static string HostEid(int i) => $"[0]10.{1 + i / 65536}.{i / 256 % 256}.{i % 256}/32";

    [Fact]
    public void Retries_and_timeouts_fire_on_time_and_in_request_order_with_many_requests_in_flight()
    {
        var itr = new Itr(Options(probing: false), new StaticMappingSystem([], [Mr1, Mr2]), new Random(3));
        // 3 batches of 200 requests, 0.5 s apart: each batch's retries share a deadline.
        var requested = new Dictionary<string, DateTimeOffset>();
        var order = new List<string>();
        for (int b = 0; b < 3; b++)
        {
            var at = T0.AddSeconds(0.5 * b);
            for (int i = 0; i < 200; i++)
            {
                // Not in address order: the order of service is the order of the requests.
                string eid = HostEid(b * 1000 + (i * 37 % 200));
                Assert.Single(Sends(itr.Request(E(eid), at)));
                requested[eid] = at;
                order.Add(eid);
            }
        }
        var sends = new Dictionary<string, List<(DateTimeOffset At, IPEndPoint To)>>();
        var timeouts = new Dictionary<string, DateTimeOffset>();
        int ticks = 0;
        while (itr.NextDeadline is { } t)
        {
            Assert.True(++ticks < 100);
            Assert.Empty(itr.Tick(t - TimeSpan.FromTicks(1))); // nothing before the deadline
            var actions = itr.Tick(t);
            var sentNow = Sends(actions).Select(s => (Eid: Ecm(s).Records[0].ToString(), s.To)).ToList();
            foreach (var (eid, to) in sentNow) (sends.TryGetValue(eid, out var l) ? l : sends[eid] = []).Add((t, to));
            // Served in the order they were requested.
            Assert.Equal(order.Where(e => sentNow.Any(s => s.Eid == e)), sentNow.Select(s => s.Eid));
            var timedOut = Logs(actions).Where(l => l.Event == "map-request-timeout").Select(l => l.Message.Split(' ')[2].TrimEnd(':')).ToList();
            Assert.Equal(order.Where(timedOut.Contains), timedOut);
            foreach (var eid in timedOut) timeouts[eid] = t;
        }
        Assert.Equal(600, sends.Count);
        foreach (var (eid, at) in requested)
        {
            // 1 s then 2 s back-off, moving to the next resolver; given up 4 s after the third send.
            Assert.Equal([(at.AddSeconds(1), Mr2), (at.AddSeconds(3), Mr1)], sends[eid]);
            Assert.Equal(at.AddSeconds(7), timeouts[eid]);
        }
        Assert.Empty(itr.Outstanding);
        Assert.Equal(1200, itr.Counters.Events(ControlEvent.MapRequestRetransmitted));
        Assert.Equal(600, itr.Counters.Events(ControlEvent.MapRequestTimedOut));
    }

    [Fact]
    public void No_resolver_retries_and_give_ups_fire_on_time_with_many_waiting()
    {
        var resolvable = new HashSet<string>();
        var ms = new FuncMappingSystem(_ => [], e => resolvable.Contains(e.ToString()) ? [Mr1] : []);
        var itr = new Itr(Options(probing: false) with { NoResolverRetry = TimeSpan.FromSeconds(1), NoResolverGiveUp = TimeSpan.FromSeconds(5) }, ms, new Random(5));
        var since = new Dictionary<string, DateTimeOffset>();
        for (int i = 0; i < 300; i++)
        {
            string eid = HostEid(i * 7 % 300);
            var at = T0.AddMilliseconds(100 * (i % 3));
            var log = Assert.Single(Logs(itr.Request(E(eid), at)));
            Assert.Equal("map-request-waiting", log.Event);
            since[eid] = at;
        }
        Assert.Equal(T0.AddSeconds(1), itr.NextDeadline);
        var placed = new Dictionary<string, DateTimeOffset>();
        var dropped = new Dictionary<string, DateTimeOffset>();
        while (itr.NextDeadline is { } t && t < T0.AddSeconds(10))
        {
            if (t >= T0.AddSeconds(2.5) && resolvable.Count == 0)
            {
                // The mapping system learns a resolver for every third EID: placed at their next retry.
                foreach (var eid in since.Keys.Where((_, i) => i / 3 % 3 == 0)) resolvable.Add(eid);
            }
            Assert.Empty(itr.Tick(t - TimeSpan.FromTicks(1)));
            var actions = itr.Tick(t);
            foreach (var s in Sends(actions)) placed.TryAdd(Ecm(s).Records[0].ToString(), t); // then retransmitted as usual
            foreach (var l in Logs(actions).Where(l => l.Event == "map-request-dropped")) dropped.Add(l.Message.Split(' ')[2].TrimEnd(':'), t);
            if (placed.Count + dropped.Count == since.Count) break;
        }
        Assert.Equal(102, resolvable.Count); // a third of the EIDs (34 of the 100 blocks of three), from every batch
        Assert.Equal(resolvable.Order(StringComparer.Ordinal), placed.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(198, dropped.Count);
        foreach (var (eid, at) in placed) Assert.Equal(since[eid].AddSeconds(3), at); // the first retry after 2.5 s
        foreach (var (eid, at) in dropped) Assert.Equal(since[eid].AddSeconds(5), at); // retried at +1..+4 s, given up at +5 s
        Assert.Equal(102, itr.Outstanding.Count);
        Assert.Equal(300, itr.Counters.Drops(DropReason.NoResolver)); // once per request
    }

    [Fact]
    public void Probes_and_down_marking_fire_on_time_in_address_order_with_many_rlocs()
    {
        var itr = new Itr(Options(probing: true), new StaticMappingSystem([], [Mr1]), new Random(9));
        // 120 entries, one RLOC each, installed in an order unlike the address text order.
        var rlocs = new List<IPAddress>();
        for (int i = 0; i < 120; i++)
        {
            var rloc = Ip($"198.51.{i % 7}.{i * 13 % 120 + 1}");
            rlocs.Add(rloc);
            var req = Ecm(Assert.Single(Sends(itr.Request(E(HostEid(i)), T0))));
            Reply(itr, req.Nonce, T0, new MappingRecord(E(HostEid(i)), [new LocatorRecord(new IpAddress(rloc), 1, 100)], 60));
        }
        var byText = rlocs.Select(r => r.ToString()).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(T0, itr.NextDeadline);

        // Every RLOC is probed at once, in address-text order; half of them answer, every time.
        var answering = rlocs.Where((_, i) => i % 2 == 0).ToHashSet();
        for (int round = 0; round < 2; round++)
        {
            var t = T0.AddSeconds(10 * round);
            Assert.Equal(t, itr.NextDeadline);
            Assert.Empty(itr.Tick(t - TimeSpan.FromTicks(1)));
            var probes = Sends(itr.Tick(t));
            Assert.Equal(byText, probes.Select(s => s.To.Address.ToString()));
            foreach (var s in probes.Where(s => answering.Contains(s.To.Address)))
            {
                ProbeReply(itr, Decode<MapRequest>(s.Payload).Nonce, s.To.Address, t.AddMilliseconds(20));
            }
        }
        // The silent half goes down 15 s after its first unanswered probe (T0), in address-text order, nothing else.
        Assert.Equal(T0.AddSeconds(15), itr.NextDeadline);
        Assert.Empty(itr.Tick(T0.AddSeconds(15) - TimeSpan.FromTicks(1)));
        var down = itr.Tick(T0.AddSeconds(15));
        Assert.Empty(Sends(down));
        var downLogs = Logs(down).Where(l => l.Event == "rloc-down").Select(l => l.Message.Split(' ')[1]).ToList();
        Assert.Equal(byText.Where(a => !answering.Contains(Ip(a))), downLogs);
        Assert.Equal(60, down.OfType<MapCacheChanged>().Count());
        Assert.All(itr.RlocProbes, p => Assert.Equal(answering.Contains(p.Rloc) ? RlocReachability.Up : RlocReachability.Down, p.State));
        // Down RLOCs keep being probed with the rest; no second down-marking.
        Assert.Equal(T0.AddSeconds(20), itr.NextDeadline);
        var third = itr.Tick(T0.AddSeconds(20));
        Assert.Equal(byText, Sends(third).Select(s => s.To.Address.ToString()));
        Assert.DoesNotContain(Logs(third), l => l.Event == "rloc-down");
        Assert.Equal(60, itr.ProbeCounters.RlocDown);
        Assert.Equal(T0.AddSeconds(30), itr.NextDeadline);
    }

    /// <summary>
    /// Random mixes of requests (placed and waiting), replies, probe replies and turns: after every step
    /// <see cref="Itr.NextDeadline"/> equals the minimum of the deadlines a brute force finds in the public views
    /// (Outstanding, Entries, RlocProbes) and a small model of what those do not show (waiting requests, silent RLOCs),
    /// and a Tick just before it does nothing.
    /// </summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    public void Next_deadline_is_the_minimum_and_a_turn_with_nothing_due_does_nothing(int seed)
    {
        var rnd = new Random(seed);
        var retry = TimeSpan.FromSeconds(1);
        var giveUp = TimeSpan.FromSeconds(6);
        var options = Options(probing: true) with
        {
            ProbeJitter = 0.2, ProbeTimeout = TimeSpan.FromSeconds(15), NoResolverRetry = retry, NoResolverGiveUp = giveUp,
        };
        var timeout = options.EffectiveProbeTimeout;
        var ms = new FuncMappingSystem(_ => [], e => e.ToString().StartsWith("[0]10.200.", StringComparison.Ordinal) ? [] : [Mr1, Mr2]);
        var itr = new Itr(options, ms, new Random(seed));
        var waiting = new Dictionary<string, (DateTimeOffset Since, DateTimeOffset Next)>();
        var silentSince = new Dictionary<IPAddress, DateTimeOffset>();
        var probesSent = new List<(IPAddress Rloc, ulong Nonce)>();
        var now = T0;

        void Observe(IReadOnlyList<ControlAction> actions, DateTimeOffset at)
        {
            foreach (var s in Sends(actions))
            {
                if (s.From is null) continue; // ECM Map-Requests; probes carry their source
                var req = Decode<MapRequest>(s.Payload);
                Assert.True(req.Probe);
                probesSent.Add((s.To.Address, req.Nonce));
                silentSince.TryAdd(s.To.Address, at);
            }
            var probed = itr.RlocProbes.Select(p => p.Rloc).ToHashSet();
            foreach (var gone in silentSince.Keys.Where(a => !probed.Contains(a)).ToList()) silentSince.Remove(gone);
        }

        DateTimeOffset? BruteForce()
        {
            var all = new List<DateTimeOffset>();
            all.AddRange(itr.Outstanding.Select(o => o.Deadline));
            all.AddRange(itr.Entries(DateTimeOffset.MinValue).Select(e => e.ExpiresAt));
            all.AddRange(itr.RlocProbes.Select(p => p.NextProbe));
            all.AddRange(itr.RlocProbes.Where(p => p.State != RlocReachability.Down && silentSince.ContainsKey(p.Rloc)).Select(p => silentSince[p.Rloc] + timeout));
            all.AddRange(waiting.Values.Select(w => w.Next));
            return all.Count == 0 ? null : all.Min();
        }

        void Turn(DateTimeOffset at)
        {
            foreach (var (eid, w) in waiting.Where(kv => kv.Value.Next <= at).ToList())
            {
                if (at - w.Since >= giveUp) waiting.Remove(eid);
                else waiting[eid] = w with { Next = at + retry };
            }
            var actions = itr.Tick(at);
            Observe(actions, at);
        }

        int counter = 0;
        for (int step = 0; step < 400; step++)
        {
            int op = rnd.Next(10);
            if (op < 3)
            {
                // A new request: one in eight waits for a resolver.
                int n = counter++;
                bool wait = rnd.Next(8) == 0;
                string eid = wait ? $"[0]10.200.{n / 256 % 256}.{n % 256}/32" : HostEid(n);
                itr.Request(E(eid), now);
                if (wait) waiting[eid] = (now, now + retry);
            }
            else if (op < 5 && itr.Outstanding.Count > 0)
            {
                // A reply for a random request in flight, with one or two RLOCs of a small pool.
                var o = itr.Outstanding[rnd.Next(itr.Outstanding.Count)];
                var locators = Enumerable.Range(0, 1 + rnd.Next(2))
                    .Select(_ => new LocatorRecord(IpAddress.Parse($"203.0.113.{1 + rnd.Next(25)}"), 1, 100)).DistinctBy(l => l.Locator.ToText()).ToList();
                Observe(Reply(itr, o.Nonce, now, new MappingRecord(o.Eid, locators, (uint)(1 + rnd.Next(3)))), now);
            }
            else if (op < 7 && probesSent.Count > 0)
            {
                // An answer to one probe (recent or not); accepted only while the ITR still knows its nonce.
                var (rloc, nonce) = probesSent[rnd.Next(probesSent.Count)];
                var actions = ProbeReply(itr, nonce, rloc, now);
                if (Logs(actions).Any(l => l.Event is "rloc-up" or "rloc-probe-reply")) silentSince.Remove(rloc);
            }
            else if (itr.NextDeadline is { } next)
            {
                // Time moves on: a turn before the deadline does nothing; then the turn at it.
                if (next > now)
                {
                    var before = now + (next - now) * rnd.NextDouble();
                    if (before < next)
                    {
                        Assert.Empty(itr.Tick(before));
                        now = before;
                    }
                }
                now = next > now ? next : now;
                Turn(now);
            }
            Assert.Equal(BruteForce(), itr.NextDeadline);
            if (itr.NextDeadline is { } d && d > now) Assert.Empty(itr.Tick(now)); // nothing due now
        }
        Assert.True(itr.RlocProbes.Count > 5 && itr.CacheCount > 20, $"{itr.RlocProbes.Count} RLOCs, {itr.CacheCount} entries");
    }
}
