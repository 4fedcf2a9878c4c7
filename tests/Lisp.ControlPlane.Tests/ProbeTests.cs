using System.Net;
using Lisp.ControlPlane;
using Lisp.Wire;
using static Lisp.ControlPlane.Tests.H;

namespace Lisp.ControlPlane.Tests;

/// <summary>ITR RLOC-probing (RFC 9301 section 7.1) on an injected clock: probes, replies, timeouts, recovery.</summary>
public class ProbeTests
{
    private static readonly IPEndPoint Mr = Ep("1.1.1.1:4342");
    private static readonly IPAddress Own = Ip("192.0.2.10");

    private static Itr Make(ItrOptions? options = null) =>
        new(options ?? new ItrOptions { Rlocs = [Own], ProbeJitter = 0 }, new StaticMappingSystem([], [Mr]), new Random(11));

    /// <summary>Resolves <paramref name="eid"/> and installs <paramref name="record"/> as the map-resolver's answer.</summary>
    private static IReadOnlyList<ControlAction> Install(Itr itr, string eid, MappingRecord record, DateTimeOffset now)
    {
        var ecm = Decode<EncapsulatedControlMessage>(Assert.Single(Sends(itr.Request(E(eid), now))).Payload);
        var bytes = new MapReply { Nonce = ((MapRequest)ecm.Message).Nonce, Records = [record] }.ToBytes();
        return itr.HandleMapReply(Decode<MapReply>(bytes), Packet(bytes, "1.1.1.1:4342", "192.0.2.10:4342"), now);
    }

    private static MappingRecord Record(string eid, params LocatorRecord[] locators) => new(E(eid), locators, 60);

    /// <summary>The RLOC-probes among <paramref name="actions"/>, by destination address.</summary>
    private static Dictionary<string, (SendAction Send, MapRequest Request)> Probes(IEnumerable<ControlAction> actions)
    {
        var result = new Dictionary<string, (SendAction, MapRequest)>();
        foreach (var s in Sends(actions))
        {
            var req = Decode<MapRequest>(s.Payload);
            Assert.True(req.Probe);
            result.Add(s.To.Address.ToString(), (s, req));
        }
        return result;
    }

    private static IReadOnlyList<ControlAction> ProbeReply(Itr itr, ulong nonce, string from, DateTimeOffset now, params MappingRecord[] records)
    {
        var bytes = new MapReply { Probe = true, Nonce = nonce, Records = records.Length > 0 ? records : [Record("[0]10.1.0.0/16", Loc(from))] }.ToBytes();
        return itr.HandleMapReply(Decode<MapReply>(bytes), Packet(bytes, from + ":4342", "192.0.2.10:4342"), now);
    }

    private static Dictionary<string, bool> Flags(MapCacheEntry entry) => entry.Locators.ToDictionary(l => l.Locator.ToText(), l => l.Reachable);

    private static IReadOnlyList<string> Best(Itr itr, string address, DateTimeOffset now)
    {
        Assert.True(itr.TryLookup(Ip(address), 0, now, out var entry));
        return entry!.BestLocators().Select(l => l.Locator.ToText()).ToList();
    }

    [Fact]
    public void Probes_each_rloc_once_per_interval_however_many_entries_share_it()
    {
        var itr = Make();
        Install(itr, "[0]10.1.2.3/32", Record("[0]10.1.0.0/16", Loc("192.0.2.1", 1), Loc("192.0.2.2", 2)), T0);
        Install(itr, "[0]10.2.2.3/32", Record("[0]10.2.0.0/16", Loc("192.0.2.1", 1)), T0);
        Assert.Equal(T0, itr.NextDeadline); // new RLOCs are probed at once

        var probes = Probes(itr.Tick(T0));
        Assert.Equal(["192.0.2.1", "192.0.2.2"], probes.Keys.Order(StringComparer.Ordinal));
        foreach (var (send, req) in probes.Values)
        {
            Assert.Equal(4342, send.To.Port);
            Assert.Equal(Ep("192.0.2.10:4342"), send.From);
            Assert.NotEqual(0ul, req.Nonce);
            Assert.False(req.Smr);
            Assert.Equal(["192.0.2.10"], req.ItrRlocs.Select(a => a.ToText()));
        }
        Assert.Equal("[0]10.1.0.0/16", Assert.Single(probes["192.0.2.1"].Request.Records).ToString());
        Assert.Equal("[0]10.1.0.0/16", Assert.Single(probes["192.0.2.2"].Request.Records).ToString());
        Assert.NotEqual(probes["192.0.2.1"].Request.Nonce, probes["192.0.2.2"].Request.Nonce);

        Assert.Equal(T0.AddSeconds(10), itr.NextDeadline);
        Assert.Empty(Sends(itr.Tick(T0.AddSeconds(5))));
        Assert.Empty(Sends(itr.Tick(T0.AddSeconds(9.999))));
        var again = Probes(itr.Tick(T0.AddSeconds(10)));
        Assert.Equal(["192.0.2.1", "192.0.2.2"], again.Keys.Order(StringComparer.Ordinal));
        Assert.NotEqual(probes["192.0.2.1"].Request.Nonce, again["192.0.2.1"].Request.Nonce);
        Assert.Equal(4, itr.ProbeCounters.Sent);
        Assert.All(itr.RlocProbes, p => Assert.Equal(T0.AddSeconds(20), p.NextProbe));
        Assert.Equal(2, itr.RlocProbes.Single(p => p.Rloc.Equals(Ip("192.0.2.1"))).Entries);
    }

    [Fact]
    public void Probe_interval_is_jittered_within_bounds()
    {
        var itr = Make(new ItrOptions { Rlocs = [Own], ProbeJitter = 0.1 });
        Install(itr, "[0]10.1.2.3/32", Record("[0]10.1.0.0/16", Loc("192.0.2.1")), T0);
        var now = T0;
        var gaps = new List<double>();
        for (int i = 0; i < 20; i++)
        {
            var probe = Assert.Single(Probes(itr.Tick(now)).Values);
            ProbeReply(itr, probe.Request.Nonce, "192.0.2.1", now);
            var next = itr.RlocProbes[0].NextProbe;
            gaps.Add((next - now).TotalSeconds);
            Assert.Equal(next, itr.NextDeadline);
            now = next;
        }
        Assert.All(gaps, g => Assert.InRange(g, 9, 11));
        Assert.True(gaps.Distinct().Count() > 1, "no jitter");
    }

    [Fact]
    public void Reply_marks_the_rloc_up_and_records_the_rtt()
    {
        var itr = Make();
        Install(itr, "[0]10.1.2.3/32", Record("[0]10.1.0.0/16", Loc("192.0.2.1")), T0);
        var probe = Probes(itr.Tick(T0))["192.0.2.1"];
        Assert.Equal(RlocReachability.Unknown, itr.ReachabilityOf(Ip("192.0.2.1")));

        var actions = ProbeReply(itr, probe.Request.Nonce, "192.0.2.1", T0.AddMilliseconds(25));
        Assert.Empty(actions.OfType<MapCacheChanged>()); // the Map-Reply already said reachable
        var up = Assert.Single(Logs(actions), l => l.Event == "rloc-up");
        Assert.Equal(LogLevel.Info, up.Level);
        Assert.Contains("192.0.2.1", up.Message);
        Assert.Contains("RTT 25 ms", up.Message);
        Assert.Equal(RlocReachability.Up, itr.ReachabilityOf(Ip("192.0.2.1")));
        var status = Assert.Single(itr.RlocProbes);
        Assert.Equal(TimeSpan.FromMilliseconds(25), status.LastRtt);
        Assert.Equal(T0.AddMilliseconds(25), status.LastReply);
        Assert.Equal(1, itr.ProbeCounters.RepliesAccepted);
        Assert.Equal(1, itr.ProbeCounters.RlocUp);
        Assert.Equal(1, itr.CacheCount); // a probe reply's records do not touch the map-cache

        // The same nonce again: already answered.
        ProbeReply(itr, probe.Request.Nonce, "192.0.2.1", T0.AddMilliseconds(30));
        Assert.Equal(1, itr.ProbeCounters.RepliesUnexpected);

        // Later replies while up only refresh the RTT (no log at Info).
        var next = Probes(itr.Tick(T0.AddSeconds(10)))["192.0.2.1"];
        var quiet = ProbeReply(itr, next.Request.Nonce, "192.0.2.1", T0.AddSeconds(10).AddMilliseconds(4));
        Assert.DoesNotContain(Logs(quiet), l => l.Level >= LogLevel.Info);
        Assert.Equal(TimeSpan.FromMilliseconds(4), itr.RlocProbes[0].LastRtt);
    }

    [Fact]
    public void Silence_marks_the_rloc_down_moves_traffic_to_the_next_priority_and_a_reply_brings_it_back()
    {
        var itr = Make();
        Install(itr, "[0]10.1.2.3/32", Record("[0]10.1.0.0/16", Loc("192.0.2.1", 1), Loc("192.0.2.2", 2)), T0);
        Assert.Equal(["192.0.2.1"], Best(itr, "10.1.2.3", T0));

        // .1 answers the first probe, then goes silent; .2 answers every probe.
        var p0 = Probes(itr.Tick(T0));
        ProbeReply(itr, p0["192.0.2.1"].Request.Nonce, "192.0.2.1", T0.AddMilliseconds(10));
        ProbeReply(itr, p0["192.0.2.2"].Request.Nonce, "192.0.2.2", T0.AddMilliseconds(10));
        var p10 = Probes(itr.Tick(T0.AddSeconds(10)));
        ProbeReply(itr, p10["192.0.2.2"].Request.Nonce, "192.0.2.2", T0.AddSeconds(10.01));
        // Down 15 s after the first unanswered probe (sent at 10 s).
        Assert.Equal(T0.AddSeconds(20), itr.NextDeadline);
        var p20 = Probes(itr.Tick(T0.AddSeconds(20)));
        ProbeReply(itr, p20["192.0.2.2"].Request.Nonce, "192.0.2.2", T0.AddSeconds(20.01));
        Assert.Equal(T0.AddSeconds(25), itr.NextDeadline);
        Assert.Empty(itr.Tick(T0.AddSeconds(24.999)));

        var down = itr.Tick(T0.AddSeconds(25));
        var change = Assert.Single(down.OfType<MapCacheChanged>());
        Assert.Equal("[0]10.1.0.0/16", change.Eid.ToString());
        Assert.Equal(new Dictionary<string, bool> { ["192.0.2.1"] = false, ["192.0.2.2"] = true }, Flags(change.Entry!));
        var log = Assert.Single(Logs(down), l => l.Event == "rloc-down");
        Assert.Equal(LogLevel.Warning, log.Level);
        Assert.Contains("192.0.2.1", log.Message);
        Assert.Contains("15 s", log.Message);
        Assert.Contains("last RTT 10 ms", log.Message);
        Assert.Equal(RlocReachability.Down, itr.ReachabilityOf(Ip("192.0.2.1")));
        Assert.Equal(1, itr.ProbeCounters.RlocDown);
        Assert.Equal(["192.0.2.2"], Best(itr, "10.1.2.3", T0.AddSeconds(25)));
        Assert.Empty(Sends(down)); // the next probe is due at 30 s
        Assert.Empty(itr.Tick(T0.AddSeconds(29)).OfType<MapCacheChanged>()); // no repeated down

        // Still probed while down; the first reply brings it back.
        var p30 = Probes(itr.Tick(T0.AddSeconds(30)));
        Assert.Equal(["192.0.2.1", "192.0.2.2"], p30.Keys.Order(StringComparer.Ordinal));
        var up = ProbeReply(itr, p30["192.0.2.1"].Request.Nonce, "192.0.2.1", T0.AddSeconds(30.05));
        var back = Assert.Single(up.OfType<MapCacheChanged>());
        Assert.Equal(new Dictionary<string, bool> { ["192.0.2.1"] = true, ["192.0.2.2"] = true }, Flags(back.Entry!));
        var upLog = Assert.Single(Logs(up), l => l.Event == "rloc-up");
        Assert.Contains("again", upLog.Message);
        Assert.Contains("RTT 50 ms", upLog.Message);
        Assert.Equal(["192.0.2.1"], Best(itr, "10.1.2.3", T0.AddSeconds(31)));
        Assert.Equal(3, itr.ProbeCounters.RlocUp); // .1 and .2 at first, .1 again now
    }

    [Fact]
    public void Every_entry_holding_a_down_rloc_changes_and_new_or_refreshed_entries_take_its_state()
    {
        var itr = Make();
        Install(itr, "[0]10.1.2.3/32", Record("[0]10.1.0.0/16", Loc("192.0.2.1", 1), Loc("192.0.2.2", 2)), T0);
        Install(itr, "[0]10.2.2.3/32", Record("[0]10.2.0.0/16", Loc("192.0.2.1", 1)), T0);
        ProbeReply(itr, Probes(itr.Tick(T0))["192.0.2.2"].Request.Nonce, "192.0.2.2", T0); // .2 answers, .1 does not
        var down = itr.Tick(T0.AddSeconds(15));
        Assert.Equal(["[0]10.1.0.0/16", "[0]10.2.0.0/16"], down.OfType<MapCacheChanged>().Select(c => c.Eid.ToString()));
        Assert.Single(Logs(down), l => l.Event == "rloc-down");
        Assert.Empty(Best(itr, "10.2.2.3", T0.AddSeconds(15)));

        // A new entry with a known-down RLOC is installed with it unreachable.
        var added = Install(itr, "[0]10.3.2.3/32", Record("[0]10.3.0.0/16", Loc("192.0.2.1", 1), Loc("192.0.2.3", 2)), T0.AddSeconds(16));
        var change = Assert.Single(added.OfType<MapCacheChanged>());
        Assert.Equal(new Dictionary<string, bool> { ["192.0.2.1"] = false, ["192.0.2.3"] = true }, Flags(change.Entry!));
        Assert.Equal(["192.0.2.3"], Best(itr, "10.3.2.3", T0.AddSeconds(16)));
        // Refreshing an entry keeps its RLOCs' state and their probe schedule.
        var refreshed = Install(itr, "[0]10.1.2.3/32", Record("[0]10.1.0.0/16", Loc("192.0.2.1", 1), Loc("192.0.2.2", 2)), T0.AddSeconds(17));
        Assert.Equal(new Dictionary<string, bool> { ["192.0.2.1"] = false, ["192.0.2.2"] = true }, Flags(Assert.Single(refreshed.OfType<MapCacheChanged>()).Entry!));
        Assert.Equal(T0.AddSeconds(25), itr.RlocProbes.Single(p => p.Rloc.Equals(Ip("192.0.2.1"))).NextProbe);
        // Only the new RLOC is probed at once.
        Assert.Equal(["192.0.2.3"], Probes(itr.Tick(T0.AddSeconds(17))).Keys);
    }

    [Fact]
    public void Unexpected_probe_replies_are_counted_and_dropped()
    {
        var itr = Make();
        Install(itr, "[0]10.1.2.3/32", Record("[0]10.1.0.0/16", Loc("192.0.2.1")), T0);
        var probe = Probes(itr.Tick(T0))["192.0.2.1"];

        var wrongNonce = ProbeReply(itr, probe.Request.Nonce ^ 0x5555, "192.0.2.1", T0.AddMilliseconds(5));
        Assert.Contains(Logs(wrongNonce), l => l.Event == "rloc-probe-reply-dropped");
        var wrongSource = ProbeReply(itr, probe.Request.Nonce, "192.0.2.99", T0.AddMilliseconds(6));
        Assert.Contains(Logs(wrongSource), l => l.Event == "rloc-probe-reply-dropped" && l.Message.Contains("192.0.2.1"));
        Assert.Equal(2, itr.ProbeCounters.RepliesUnexpected);
        Assert.Equal(2, itr.Counters.Drops(DropReason.StaleNonce));
        Assert.Equal(RlocReachability.Unknown, itr.ReachabilityOf(Ip("192.0.2.1")));
        Assert.Empty(wrongNonce.OfType<MapCacheChanged>().Concat(wrongSource.OfType<MapCacheChanged>()));

        // The real reply still counts.
        ProbeReply(itr, probe.Request.Nonce, "192.0.2.1", T0.AddMilliseconds(7));
        Assert.Equal(RlocReachability.Up, itr.ReachabilityOf(Ip("192.0.2.1")));
        Assert.Equal(1, itr.ProbeCounters.RepliesAccepted);

        // A Map-Reply with the P bit never matches an ordinary Map-Request in flight.
        var ecm = Decode<EncapsulatedControlMessage>(Assert.Single(Sends(itr.Request(E("[0]10.9.9.9/32"), T0.AddSeconds(1)))).Payload);
        ProbeReply(itr, ((MapRequest)ecm.Message).Nonce, "1.1.1.1", T0.AddSeconds(1.1), Record("[0]10.9.0.0/16", Loc("192.0.2.9")));
        Assert.Equal(3, itr.ProbeCounters.RepliesUnexpected);
        Assert.Single(itr.Outstanding);
        Assert.Equal(1, itr.CacheCount);
    }

    [Fact]
    public void Probing_stops_when_no_live_entry_holds_the_rloc()
    {
        var itr = Make();
        Install(itr, "[0]10.1.2.3/32", Record("[0]10.1.0.0/16", Loc("192.0.2.1"), Loc("192.0.2.2")) with { TtlRaw = MappingRecord.TtlSecondsFlag | 30 }, T0);
        Install(itr, "[0]10.2.2.3/32", Record("[0]10.2.0.0/16", Loc("192.0.2.2")), T0);
        void AnswerAll(IReadOnlyList<ControlAction> actions, DateTimeOffset at)
        {
            foreach (var (to, probe) in Probes(actions)) ProbeReply(itr, probe.Request.Nonce, to, at);
        }
        AnswerAll(itr.Tick(T0), T0);
        AnswerAll(itr.Tick(T0.AddSeconds(10)), T0.AddSeconds(10));
        var p20 = Probes(itr.Tick(T0.AddSeconds(20)));
        Assert.Equal(2, p20.Count);
        ProbeReply(itr, p20["192.0.2.2"].Request.Nonce, "192.0.2.2", T0.AddSeconds(20));

        var expiry = itr.Tick(T0.AddSeconds(30));
        Assert.Contains(expiry.OfType<MapCacheChanged>(), c => c.Entry is null && c.Eid.ToString() == "[0]10.1.0.0/16");
        // .1 is no longer probed; .2 still is, for the other entry.
        Assert.Equal(["192.0.2.2"], Probes(expiry).Keys);
        Assert.Equal([Ip("192.0.2.2")], itr.RlocProbes.Select(p => p.Rloc));
        // .1 went silent at 20 s but is not marked down at 35 s: nothing holds it any more.
        Assert.DoesNotContain(Logs(itr.Tick(T0.AddSeconds(36))), l => l.Event == "rloc-down");
        // A late reply to .1's last probe is unexpected now.
        ProbeReply(itr, p20["192.0.2.1"].Request.Nonce, "192.0.2.1", T0.AddSeconds(36.5));
        Assert.Equal(1, itr.ProbeCounters.RepliesUnexpected);

        // TTL 0 removes the other entry: nothing is probed any more.
        Install(itr, "[0]10.2.2.3/32", Record("[0]10.2.0.0/16", Loc("192.0.2.2")) with { TtlRaw = 0 }, T0.AddSeconds(37));
        Assert.Empty(itr.RlocProbes);
        Assert.Empty(Sends(itr.Tick(T0.AddSeconds(60))));
        Assert.Null(itr.NextDeadline);

        // `clear map-cache` forgets them too.
        Install(itr, "[0]10.4.2.3/32", Record("[0]10.4.0.0/16", Loc("192.0.2.4")), T0.AddSeconds(61));
        Assert.Single(itr.RlocProbes);
        itr.Clear();
        Assert.Empty(itr.RlocProbes);
    }

    [Fact]
    public void Negative_entries_and_rlocs_of_a_family_we_lack_are_not_probed()
    {
        var itr = Make();
        Install(itr, "[0]10.5.2.3/32", new MappingRecord(E("[0]10.5.0.0/16"), [], 15, MapReplyAction.NativelyForward), T0);
        Install(itr, "[0]10.6.2.3/32", Record("[0]10.6.0.0/16", Loc("2001:db8::1"), Loc("192.0.2.6")), T0);
        Assert.Equal(["192.0.2.6"], Probes(itr.Tick(T0)).Keys);
    }

    [Fact]
    public void Interval_zero_disables_probing()
    {
        var itr = Make(new ItrOptions { Rlocs = [Own], ProbeInterval = TimeSpan.Zero });
        Install(itr, "[0]10.1.2.3/32", Record("[0]10.1.0.0/16", Loc("192.0.2.1")), T0);
        Assert.Equal(T0.AddMinutes(60), itr.NextDeadline); // only the entry's expiry
        Assert.Empty(Sends(itr.Tick(T0.AddSeconds(10))));
        Assert.Empty(Sends(itr.Tick(T0.AddSeconds(100))));
        Assert.Empty(itr.RlocProbes);
        ProbeReply(itr, 42, "192.0.2.1", T0.AddSeconds(101));
        Assert.Equal(1, itr.ProbeCounters.RepliesUnexpected);
        Assert.Equal(["192.0.2.1"], Best(itr, "10.1.2.3", T0.AddSeconds(101)));
    }

    [Fact]
    public void Timeout_defaults_to_one_and_a_half_intervals()
    {
        Assert.Equal(TimeSpan.FromSeconds(10), new ItrOptions().ProbeInterval);
        Assert.Equal(TimeSpan.FromSeconds(15), new ItrOptions().EffectiveProbeTimeout);
        Assert.Equal(TimeSpan.FromSeconds(1.5), new ItrOptions { ProbeInterval = TimeSpan.FromSeconds(1) }.EffectiveProbeTimeout);
        Assert.Equal(TimeSpan.FromSeconds(4), new ItrOptions { ProbeInterval = TimeSpan.FromSeconds(1), ProbeTimeout = TimeSpan.FromSeconds(4) }.EffectiveProbeTimeout);
        Assert.Throws<ArgumentException>(() => Make(new ItrOptions { Rlocs = [Own], ProbeJitter = 0.9 }));
        Assert.Throws<ArgumentException>(() => Make(new ItrOptions { Rlocs = [Own], ProbeTimeout = TimeSpan.Zero }));

        var itr = Make(new ItrOptions { Rlocs = [Own], ProbeInterval = TimeSpan.FromSeconds(1), ProbeJitter = 0 });
        Install(itr, "[0]10.1.2.3/32", Record("[0]10.1.0.0/16", Loc("192.0.2.1")), T0);
        Probes(itr.Tick(T0));
        Probes(itr.Tick(T0.AddSeconds(1)));
        Assert.DoesNotContain(Logs(itr.Tick(T0.AddSeconds(1.499))), l => l.Event == "rloc-down");
        Assert.Contains(Logs(itr.Tick(T0.AddSeconds(1.5))), l => l.Event == "rloc-down");
    }

    // ---- Two ControlNodes in memory: an ITR and an ETR with two RLOCs (the ETR answers the ITR's ECM Map-Request itself).

    private static readonly IPEndPoint ItrEp = Ep("10.0.0.3:4342"), EtrEp = Ep("10.0.0.2:4342"), EtrEp2 = Ep("10.0.0.22:4342");

    private sealed record World(InMemoryNetwork Net, ControlNode Itr, ControlNode Etr);

    private static World Build()
    {
        var system = new StaticMappingSystem([], [EtrEp]);
        var etr = new ControlNode(new ControlNodeOptions
        {
            Name = "etr", LocalEndpoints = [EtrEp, EtrEp2],
            Etr = new EtrOptions { Key = "k", Database = [new DatabaseMapping(E("[0]10.1.0.0/16"), [Loc("10.0.0.2", 1, 100), Loc("10.0.0.22", 2, 100)])] },
        }, system, new Random(2));
        var itr = new ControlNode(new ControlNodeOptions
        {
            Name = "itr", LocalEndpoints = [ItrEp],
            Itr = new ItrOptions { Rlocs = [ItrEp.Address], ProbeJitter = 0 },
        }, system, new Random(3));
        var net = new InMemoryNetwork();
        net.Add(EtrEp2, etr);
        net.Add(EtrEp, etr);
        net.Add(ItrEp, itr);
        return new World(net, itr, etr);
    }

    /// <summary>Runs the ITR's timers at each of its deadlines up to <paramref name="until"/> (replies are instant).</summary>
    private static void Advance(World w, DateTimeOffset until)
    {
        for (int i = 0; i < 1000 && w.Itr.NextDeadline is { } d && d <= until; i++) w.Net.Tick(w.Itr, d);
        w.Net.Tick(w.Itr, until);
    }

    [Fact]
    public void End_to_end_etr_answers_probes_until_it_goes_silent()
    {
        var w = Build();
        w.Net.Run(w.Itr, w.Itr.Request(E("[0]10.1.7.7/32"), T0), T0);
        Assert.Equal(["10.0.0.2"], Best(w.Itr.Itr!, "10.1.7.7", T0));

        // Both RLOCs probed directly (plain Map-Requests with the P bit), both answer.
        Advance(w, T0.AddSeconds(5));
        var probes = w.Net.Trace.Where(t => t.Message is MapRequest { Probe: true }).ToList();
        Assert.Equal(["10.0.0.22:4342", "10.0.0.2:4342"], probes.Select(p => p.To.ToString()).Order(StringComparer.Ordinal));
        Assert.All(probes, p => Assert.Equal(ItrEp, p.From));
        var replies = w.Net.Trace.Where(t => t.Message is MapReply { Probe: true }).ToList();
        Assert.Equal(["10.0.0.22:4342", "10.0.0.2:4342"], replies.Select(r => r.From.ToString()).Order(StringComparer.Ordinal));
        Assert.All(replies, r => Assert.Equal(ItrEp, r.To));
        Assert.Equal(2, w.Net.LogLines.Count(l => l.Event == "rloc-up"));
        Assert.Equal(0, w.Itr.Counters.TotalDrops);
        Assert.Equal(2, w.Itr.Itr!.ProbeCounters.RepliesAccepted);

        // The primary RLOC stops answering (its packets are dropped): down 15 s after the first lost probe (10 s).
        w.Net.Unreachable.Add(EtrEp);
        Advance(w, T0.AddSeconds(24.9));
        Assert.DoesNotContain(w.Net.LogLines, l => l.Event == "rloc-down");
        Advance(w, T0.AddSeconds(25));
        var down = Assert.Single(w.Net.LogLines, l => l.Event == "rloc-down");
        Assert.Contains("10.0.0.2 ", down.Message);
        var change = w.Net.CacheChanges.Last();
        Assert.Equal(new Dictionary<string, bool> { ["10.0.0.2"] = false, ["10.0.0.22"] = true }, Flags(change.Entry!));
        Assert.Equal(["10.0.0.22"], Best(w.Itr.Itr!, "10.1.7.7", T0.AddSeconds(25)));

        // The whole ETR goes silent: the second RLOC follows, nothing is left to encapsulate to.
        w.Net.Unreachable.Add(EtrEp2);
        Advance(w, T0.AddSeconds(60));
        Assert.Equal(2, w.Net.LogLines.Count(l => l.Event == "rloc-down"));
        Assert.Equal(new Dictionary<string, bool> { ["10.0.0.2"] = false, ["10.0.0.22"] = false }, Flags(w.Net.CacheChanges.Last().Entry!));
        Assert.Empty(Best(w.Itr.Itr!, "10.1.7.7", T0.AddSeconds(60)));

        // It comes back: the next probe round brings both up again.
        w.Net.Unreachable.Clear();
        Advance(w, T0.AddSeconds(71));
        Assert.Equal(4, w.Net.LogLines.Count(l => l.Event == "rloc-up"));
        Assert.Equal(["10.0.0.2"], Best(w.Itr.Itr!, "10.1.7.7", T0.AddSeconds(71)));
        Assert.Equal(new Dictionary<string, bool> { ["10.0.0.2"] = true, ["10.0.0.22"] = true }, Flags(w.Net.CacheChanges.Last().Entry!));
    }
}
