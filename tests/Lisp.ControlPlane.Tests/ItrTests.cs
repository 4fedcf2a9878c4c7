using System.Net;
using Lisp.ControlPlane;
using Lisp.Wire;
using static Lisp.ControlPlane.Tests.H;

namespace Lisp.ControlPlane.Tests;

public class ItrTests
{
    private static readonly IPEndPoint Mr1 = Ep("1.1.1.1:4342"), Mr2 = Ep("2.2.2.2:4342");

    private static Itr Make(ItrOptions? options = null, params IPEndPoint[] resolvers) =>
        // RLOC-probing off: these tests count Map-Requests (ProbeTests covers probing).
        new(options ?? new ItrOptions { Rlocs = [Ip("192.0.2.10")], ProbeInterval = TimeSpan.Zero }, new StaticMappingSystem([], resolvers.Length > 0 ? resolvers : [Mr1, Mr2]), new Random(7));

    private static (MapRequest Req, EncapsulatedControlMessage Ecm, SendAction Send) Sent(IReadOnlyList<ControlAction> actions)
    {
        var s = Assert.Single(Sends(actions));
        var ecm = Decode<EncapsulatedControlMessage>(s.Payload);
        return ((MapRequest)ecm.Message, ecm, s);
    }

    private static IReadOnlyList<ControlAction> Reply(Itr itr, ulong nonce, DateTimeOffset now, params MappingRecord[] records)
    {
        var bytes = new MapReply { Nonce = nonce, Records = records }.ToBytes();
        return itr.HandleMapReply(Decode<MapReply>(bytes), Packet(bytes, "1.1.1.1:4342", "192.0.2.10:4342"), now);
    }

    [Fact]
    public void Sends_ecm_map_request_to_first_resolver()
    {
        var itr = Make(new ItrOptions { Rlocs = [Ip("192.0.2.10"), Ip("2001:db8::10")], ControlPort = 5555 });
        var (req, ecm, send) = Sent(itr.Request(E("[0]10.1.2.3/32"), T0));
        Assert.Equal(Mr1, send.To);
        Assert.NotEqual(0ul, req.Nonce);
        Assert.Equal("[0]10.1.2.3/32", Assert.Single(req.Records).ToString());
        Assert.Equal(["192.0.2.10", "2001:db8::10"], req.ItrRlocs.Select(a => a.ToText()));
        Assert.False(req.SmrInvoked);
        Assert.Equal(Ip("192.0.2.10"), ecm.Inner.Source);
        Assert.Equal(Ip("10.1.2.3"), ecm.Inner.Destination);
        Assert.Equal(5555, ecm.Inner.SourcePort);
        Assert.Equal(4342, ecm.Inner.DestinationPort);
        Assert.Single(itr.Outstanding);
        // A second miss for the same EID while one is in flight sends nothing.
        Assert.Empty(Sends(itr.Request(E("[0]10.1.2.3/32"), T0.AddSeconds(0.1))));
    }

    [Fact]
    public void Installs_positive_reply_with_matching_nonce_and_looks_up_longest_prefix()
    {
        var itr = Make();
        var (req, _, _) = Sent(itr.Request(E("[0]10.1.2.3/32"), T0));
        var actions = Reply(itr, req.Nonce, T0.AddSeconds(0.2), Rec("[0]10.1.0.0/16", "192.0.2.1") with { TtlRaw = 10 });
        var change = Assert.Single(actions.OfType<MapCacheChanged>());
        Assert.Equal("[0]10.1.0.0/16", change.Eid.ToString());
        Assert.NotNull(change.Entry);
        Assert.Empty(itr.Outstanding);
        Assert.True(itr.TryLookup(Ip("10.1.200.1"), 0, T0.AddSeconds(1), out var entry));
        Assert.Equal("192.0.2.1", entry!.Locators[0].Locator.ToText());
        Assert.Equal(T0.AddSeconds(0.2).AddMinutes(10), entry.ExpiresAt);
        Assert.False(itr.TryLookup(Ip("10.2.0.1"), 0, T0, out _));
        Assert.False(itr.TryLookup(Ip("10.1.0.1"), 5, T0, out _)); // other instance-id

        // A more specific entry wins.
        var (req2, _, _) = Sent(itr.Request(E("[0]10.1.9.9/32"), T0.AddSeconds(1)));
        Reply(itr, req2.Nonce, T0.AddSeconds(1), Rec("[0]10.1.9.0/24", "192.0.2.9"));
        Assert.True(itr.TryLookup(Ip("10.1.9.1"), 0, T0.AddSeconds(2), out entry));
        Assert.Equal("[0]10.1.9.0/24", entry!.Eid.ToString());
        Assert.True(itr.TryLookup(Ip("10.1.8.1"), 0, T0.AddSeconds(2), out entry));
        Assert.Equal("[0]10.1.0.0/16", entry!.Eid.ToString());
    }

    [Fact]
    public void Installs_negative_reply()
    {
        var itr = Make();
        var (req, _, _) = Sent(itr.Request(E("[0]10.2.3.4/32"), T0));
        var neg = new MappingRecord(E("[0]10.2.0.0/15"), [], 15, MapReplyAction.NativelyForward);
        Reply(itr, req.Nonce, T0, neg);
        Assert.True(itr.TryLookup(Ip("10.3.0.1"), 0, T0, out var entry));
        Assert.True(entry!.IsNegative);
        Assert.Equal(MapReplyAction.NativelyForward, entry.Action);
        Assert.Empty(entry.BestLocators());
    }

    [Fact]
    public void Drops_reply_with_unknown_nonce_or_unrelated_record()
    {
        var itr = Make();
        var (req, _, _) = Sent(itr.Request(E("[0]10.1.2.3/32"), T0));
        Assert.Empty(Reply(itr, req.Nonce ^ 1, T0, Rec("[0]10.1.0.0/16", "192.0.2.1")).OfType<MapCacheChanged>());
        Assert.Equal(1, itr.Counters.Drops(DropReason.StaleNonce));
        Assert.Single(itr.Outstanding);
        Assert.Empty(Reply(itr, req.Nonce, T0, Rec("[0]172.16.0.0/12", "192.0.2.1")).OfType<MapCacheChanged>());
        Assert.Equal(1, itr.Counters.Drops(DropReason.UnrequestedRecord));
        Assert.False(itr.TryLookup(Ip("172.16.0.1"), 0, T0, out _));
        // The nonce is used up: a replay is stale.
        Reply(itr, req.Nonce, T0, Rec("[0]10.1.0.0/16", "192.0.2.1"));
        Assert.Equal(2, itr.Counters.Drops(DropReason.StaleNonce));
    }

    [Fact]
    public void Retransmits_with_backoff_moving_to_next_resolver_then_gives_up()
    {
        var itr = Make();
        var (req, _, first) = Sent(itr.Request(E("[0]10.1.2.3/32"), T0));
        Assert.Equal(Mr1, first.To);
        Assert.Equal(T0.AddSeconds(1), itr.NextDeadline);
        Assert.Empty(Sends(itr.Tick(T0.AddSeconds(0.9))));
        var (r2, _, s2) = Sent(itr.Tick(T0.AddSeconds(1)));
        Assert.Equal(Mr2, s2.To);
        Assert.Equal(req.Nonce, r2.Nonce);
        Assert.Equal(T0.AddSeconds(3), itr.NextDeadline); // 2 s back-off
        var (_, _, s3) = Sent(itr.Tick(T0.AddSeconds(3)));
        Assert.Equal(Mr1, s3.To);
        Assert.Equal(T0.AddSeconds(7), itr.NextDeadline); // 4 s back-off
        var last = itr.Tick(T0.AddSeconds(7));
        Assert.Empty(Sends(last));
        Assert.Contains(Logs(last), l => l.Event == "map-request-timeout");
        Assert.Empty(itr.Outstanding);
        Assert.Equal(2, itr.Counters.Events(ControlEvent.MapRequestRetransmitted));
        Assert.Equal(1, itr.Counters.Events(ControlEvent.MapRequestTimedOut));
    }

    [Fact]
    public void Reply_from_second_resolver_after_fallback_is_installed()
    {
        var itr = Make();
        var (req, _, _) = Sent(itr.Request(E("[0]10.1.2.3/32"), T0));
        itr.Tick(T0.AddSeconds(1));
        Reply(itr, req.Nonce, T0.AddSeconds(1.5), Rec("[0]10.1.0.0/16", "192.0.2.1"));
        Assert.True(itr.TryLookup(Ip("10.1.2.3"), 0, T0.AddSeconds(2), out _));
        Assert.Empty(Sends(itr.Tick(T0.AddSeconds(10))));
    }

    [Fact]
    public void Per_eid_rate_limit()
    {
        var itr = Make(new ItrOptions { Rlocs = [Ip("192.0.2.10")], MaxTransmissions = 1 });
        var (first, _, _) = Sent(itr.Request(E("[0]10.1.2.3/32"), T0));
        // Answered at once with TTL 0 (nothing cached): a new miss 0.4 s after the first request is held back.
        Reply(itr, first.Nonce, T0.AddSeconds(0.3), new MappingRecord(E("[0]10.1.2.3/32"), [], 0));
        Assert.Empty(itr.Outstanding);
        Assert.Empty(Sends(itr.Request(E("[0]10.1.2.3/32"), T0.AddSeconds(0.4))));
        Assert.Equal(1, itr.Counters.Drops(DropReason.RateLimited));
        Assert.Single(Sends(itr.Request(E("[0]10.1.2.3/32"), T0.AddSeconds(0.5))));
        // Other EIDs are not held back by it.
        Assert.Single(Sends(itr.Request(E("[0]10.1.2.4/32"), T0.AddSeconds(0.5))));
    }

    [Fact]
    public void Global_rate_limit()
    {
        var itr = Make(new ItrOptions { Rlocs = [Ip("192.0.2.10")], GlobalRequestsPerSecond = 3 });
        for (int i = 0; i < 3; i++) Assert.Single(Sends(itr.Request(E($"[0]10.0.0.{i}/32"), T0.AddMilliseconds(i))));
        Assert.Empty(Sends(itr.Request(E("[0]10.0.0.9/32"), T0.AddMilliseconds(10))));
        Assert.Equal(1, itr.Counters.Drops(DropReason.RateLimited));
        Assert.Single(Sends(itr.Request(E("[0]10.0.0.9/32"), T0.AddSeconds(1.1))));
    }

    [Fact]
    public void Requests_past_the_in_flight_limit_are_counted_apart_from_no_resolver()
    {
        var itr = Make(new ItrOptions { Rlocs = [Ip("192.0.2.10")], ProbeInterval = TimeSpan.Zero, MaxOutstanding = 2 });
        Assert.Single(Sends(itr.Request(E("[0]10.0.0.1/32"), T0)));
        Assert.Single(Sends(itr.Request(E("[0]10.0.0.2/32"), T0.AddMilliseconds(1))));
        Assert.Empty(Sends(itr.Request(E("[0]10.0.0.3/32"), T0.AddMilliseconds(2))));
        Assert.Equal(1, itr.Counters.Drops(DropReason.RequestsInFlight));
        Assert.Equal(0, itr.Counters.Drops(DropReason.NoResolver));
    }

    [Fact]
    public void A_reply_refused_by_a_full_map_cache_is_counted()
    {
        var itr = Make(new ItrOptions { Rlocs = [Ip("192.0.2.10")], ProbeInterval = TimeSpan.Zero, MaxCacheEntries = 1 });
        var (r1, _, _) = Sent(itr.Request(E("[0]10.1.0.1/32"), T0));
        Assert.Single(Reply(itr, r1.Nonce, T0.AddSeconds(0.1), Rec("[0]10.1.0.0/16", "192.0.2.1") with { TtlRaw = 10 }).OfType<MapCacheChanged>());
        var (r2, _, _) = Sent(itr.Request(E("[0]10.2.0.1/32"), T0.AddSeconds(0.2)));
        var second = Reply(itr, r2.Nonce, T0.AddSeconds(0.3), Rec("[0]10.2.0.0/16", "192.0.2.2") with { TtlRaw = 10 });
        Assert.Empty(second.OfType<MapCacheChanged>());
        Assert.Equal(1, itr.Counters.Drops(DropReason.MapCacheFull));
        Assert.Equal(1, itr.CacheCount);
    }

    [Fact]
    public void No_resolver_is_counted()
    {
        var itr = new Itr(new ItrOptions { Rlocs = [Ip("192.0.2.10")] }, new StaticMappingSystem([], []));
        Assert.Empty(Sends(itr.Request(E("[0]10.0.0.1/32"), T0)));
        Assert.Equal(1, itr.Counters.Drops(DropReason.NoResolver));
    }

    [Fact]
    public void Ttl_expiry_on_lookup_and_tick()
    {
        var itr = Make();
        var (req, _, _) = Sent(itr.Request(E("[0]10.1.2.3/32"), T0));
        Reply(itr, req.Nonce, T0, Rec("[0]10.1.0.0/16", "192.0.2.1") with { TtlRaw = MappingRecord.TtlSecondsFlag | 30 });
        Assert.True(itr.TryLookup(Ip("10.1.2.3"), 0, T0.AddSeconds(29), out _));
        Assert.False(itr.TryLookup(Ip("10.1.2.3"), 0, T0.AddSeconds(30), out _));
        Assert.Equal(T0.AddSeconds(30), itr.NextDeadline);
        var actions = itr.Tick(T0.AddSeconds(30));
        var change = Assert.Single(actions.OfType<MapCacheChanged>());
        Assert.Null(change.Entry);
        Assert.Contains(Logs(actions), l => l.Event == "map-cache-expire");
        Assert.Equal(0, itr.CacheCount);
    }

    [Fact]
    public void Smr_for_cached_eid_triggers_smr_invoked_request()
    {
        var itr = Make();
        var (req, _, _) = Sent(itr.Request(E("[0]10.1.2.3/32"), T0));
        Reply(itr, req.Nonce, T0, Rec("[0]10.1.0.0/16", "192.0.2.1"));
        var smr = new MapRequest { Smr = true, Nonce = 5, SourceEid = IpAddress.Parse("10.1.0.0"), ItrRlocs = [IpAddress.Parse("192.0.2.1")], Records = [E("[0]10.1.2.3/32")] };
        var bytes = smr.ToBytes();
        var actions = itr.HandleSmr(Decode<MapRequest>(bytes), Packet(bytes, "192.0.2.1:4342"), T0.AddSeconds(5));
        var (again, _, send) = Sent(actions);
        Assert.True(again.SmrInvoked);
        Assert.Equal("[0]10.1.0.0/16", Assert.Single(again.Records).ToString());
        Assert.Equal(Mr1, send.To);
        Assert.Equal(1, itr.Counters.Events(ControlEvent.SmrHonoured));
        // An SMR for something not cached is dropped.
        var stranger = smr with { SourceEid = IpAddress.Parse("172.16.0.1"), Records = [E("[0]172.16.0.1/32")] };
        Assert.Empty(Sends(itr.HandleSmr(stranger, Packet(stranger.ToBytes(), "192.0.2.66:4342"), T0.AddSeconds(6))));
        Assert.Equal(1, itr.Counters.Drops(DropReason.SmrNotCached));
    }

    [Fact]
    public void Non_ip_eids_use_exact_match_and_ecm_inner_destination_is_the_resolver()
    {
        var itr = Make();
        var (req, ecm, _) = Sent(itr.Request(E("[0]'dino'"), T0));
        Assert.Equal(Mr1.Address, ecm.Inner.Destination);
        Reply(itr, req.Nonce, T0, Rec("[0]'dino'", "192.0.2.1"));
        Assert.True(itr.TryLookup(E("[0]'dino'"), T0, out _));
        Assert.False(itr.TryLookup(E("[0]'dinosaur'"), T0, out _));
        Assert.False(itr.TryLookup(E("[7]'dino'"), T0, out _));
    }

    [Fact]
    public void Best_locators_by_priority()
    {
        var e = new MapCacheEntry(E("[0]10.0.0.0/8"), [Loc("192.0.2.1", 2), Loc("192.0.2.2", 1, 30), Loc("192.0.2.3", 1, 70), Loc("192.0.2.4", 255)],
            MapReplyAction.NoAction, T0, T0.AddMinutes(1), null, true);
        Assert.Equal(["192.0.2.2", "192.0.2.3"], e.BestLocators().Select(l => l.Locator.ToText()));
    }

    [Fact]
    public void Constructor_refuses_missing_rlocs() =>
        Assert.Throws<ArgumentException>(() => new Itr(new ItrOptions(), new StaticMappingSystem([], [])));
}
