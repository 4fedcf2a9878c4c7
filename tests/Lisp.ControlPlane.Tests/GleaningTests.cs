using System.Net;
using Lisp.ControlPlane;
using Lisp.Wire;
using static Lisp.ControlPlane.Tests.H;

namespace Lisp.ControlPlane.Tests;

/// <summary>
/// Gleaning (RFC 9300 section 9) in the ITR role, on a fake clock: a host EID -> RLOC seen by the ETR is installed
/// with a short TTL only when nothing covers it, is verified with a Map-Request, never overrides the mapping
/// system, and is replaced by the mapping system's answer.
/// </summary>
public class GleaningTests
{
    private static readonly IPEndPoint Mr = Ep("1.1.1.1:4342");
    private static readonly IPAddress Peer = Ip("192.0.2.77");

    private static Itr Make() =>
        new(new ItrOptions { Rlocs = [Ip("192.0.2.10")], ProbeInterval = TimeSpan.Zero }, new StaticMappingSystem([], [Mr]), new Random(7));

    private static IReadOnlyList<ControlAction> Reply(Itr itr, ulong nonce, DateTimeOffset now, params MappingRecord[] records)
    {
        var bytes = new MapReply { Nonce = nonce, Records = records }.ToBytes();
        return itr.HandleMapReply(Decode<MapReply>(bytes), Packet(bytes, "1.1.1.1:4342", "192.0.2.10:4342"), now);
    }

    private static MapRequest RequestIn(IReadOnlyList<ControlAction> actions) =>
        (MapRequest)Decode<EncapsulatedControlMessage>(Assert.Single(Sends(actions)).Payload).Message;

    [Fact]
    public void A_glean_installs_a_short_lived_host_entry_and_verifies_it()
    {
        var itr = Make();
        var actions = itr.Glean(E("[0]10.9.0.5/32"), Peer, TimeSpan.FromSeconds(60), T0);

        var change = Assert.Single(actions.OfType<MapCacheChanged>());
        Assert.Equal("[0]10.9.0.5/32", change.Eid.ToString());
        Assert.Equal("192.0.2.77", Assert.Single(change.Entry!.Locators).Locator.ToText());
        Assert.False(change.Entry.Authoritative);
        Assert.Equal(T0.AddSeconds(60), change.Entry.ExpiresAt);
        Assert.True(itr.IsGleaned(E("[0]10.9.0.5/32")));
        Assert.Equal(1, itr.Counters.Events(ControlEvent.MapCacheGleaned));
        // Verification: a Map-Request for the gleaned EID went to the map-resolver.
        Assert.Equal("[0]10.9.0.5/32", Assert.Single(RequestIn(actions).Records).ToString());
        Assert.Contains(Logs(actions), l => l.Event == "map-cache-glean");

        // It expires with its own short TTL (the mapping system did not answer here).
        Assert.True(itr.TryLookup(Ip("10.9.0.5"), 0, T0.AddSeconds(59), out _));
        var expired = itr.Tick(T0.AddSeconds(61)).OfType<MapCacheChanged>().Where(c => c.Entry is null).Select(c => c.Eid.ToString());
        Assert.Contains("[0]10.9.0.5/32", expired);
        Assert.False(itr.TryLookup(Ip("10.9.0.5"), 0, T0.AddSeconds(61), out _));
    }

    [Fact]
    public void A_mapping_from_the_mapping_system_is_never_overridden()
    {
        var itr = Make();
        var req = RequestIn(itr.Request(E("[0]10.9.0.5/32"), T0));
        Reply(itr, req.Nonce, T0, Rec("[0]10.9.0.0/24", "192.0.2.1"));

        var actions = itr.Glean(E("[0]10.9.0.5/32"), Peer, TimeSpan.FromSeconds(60), T0.AddSeconds(1));
        Assert.Empty(actions);
        Assert.Equal(1, itr.Counters.Events(ControlEvent.GleanCovered));
        Assert.Equal(0, itr.Counters.Events(ControlEvent.MapCacheGleaned));
        Assert.True(itr.TryLookup(Ip("10.9.0.5"), 0, T0.AddSeconds(1), out var entry));
        Assert.Equal("192.0.2.1", entry!.Locators[0].Locator.ToText());
        // A second glean for an EID already gleaned changes nothing either.
        itr.Glean(E("[0]10.8.0.1/32"), Peer, TimeSpan.FromSeconds(60), T0.AddSeconds(2));
        Assert.Empty(itr.Glean(E("[0]10.8.0.1/32"), Ip("192.0.2.99"), TimeSpan.FromSeconds(60), T0.AddSeconds(3)));
        Assert.Equal(2, itr.Counters.Events(ControlEvent.GleanCovered));
    }

    [Fact]
    public void The_mapping_systems_answer_replaces_the_gleaned_entry_under_it()
    {
        var itr = Make();
        var verify = RequestIn(itr.Glean(E("[0]10.9.0.5/32"), Peer, TimeSpan.FromSeconds(60), T0));
        var actions = Reply(itr, verify.Nonce, T0.AddSeconds(0.1), Rec("[0]10.9.0.0/24", "192.0.2.1"));

        // The /32 glean goes (else it would shadow the /24 by longest match), the /24 comes in.
        var changes = actions.OfType<MapCacheChanged>().Select(c => (c.Eid.ToString(), c.Entry is null)).ToList();
        Assert.Equal([("[0]10.9.0.5/32", true), ("[0]10.9.0.0/24", false)], changes);
        Assert.Equal(1, itr.Counters.Events(ControlEvent.GleanReplaced));
        Assert.False(itr.IsGleaned(E("[0]10.9.0.5/32")));
        Assert.True(itr.TryLookup(Ip("10.9.0.5"), 0, T0.AddSeconds(1), out var entry));
        Assert.Equal("[0]10.9.0.0/24", entry!.Eid.ToString());
        Assert.Equal("192.0.2.1", entry.Locators[0].Locator.ToText());
    }

    [Fact]
    public void A_negative_answer_also_replaces_the_glean()
    {
        var itr = Make();
        var verify = RequestIn(itr.Glean(E("[0]10.9.0.5/32"), Peer, TimeSpan.FromSeconds(60), T0));
        Reply(itr, verify.Nonce, T0.AddSeconds(0.1), new MappingRecord(E("[0]10.9.0.5/32"), [], 1, MapReplyAction.NativelyForward));
        Assert.True(itr.TryLookup(Ip("10.9.0.5"), 0, T0.AddSeconds(1), out var entry));
        Assert.True(entry!.IsNegative);
        Assert.Equal(1, itr.Counters.Events(ControlEvent.GleanReplaced));
    }

    [Fact]
    public void Only_host_eids_are_gleaned()
    {
        var itr = Make();
        Assert.Empty(itr.Glean(E("[0]10.9.0.0/24"), Peer, TimeSpan.FromSeconds(60), T0));
        Assert.Empty(itr.Glean(E("[0]'name'"), Peer, TimeSpan.FromSeconds(60), T0));
        Assert.Equal(0, itr.CacheCount);
        Assert.Single(itr.Glean(E("[0]2001:db8::5/128"), Peer, TimeSpan.FromSeconds(60), T0).OfType<MapCacheChanged>());
    }
}
