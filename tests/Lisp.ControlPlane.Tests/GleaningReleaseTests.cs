using System.Net;
using Lisp.ControlPlane;
using Lisp.Wire;
using static Lisp.ControlPlane.Tests.H;

namespace Lisp.ControlPlane.Tests;

/// <summary>
/// Which gleaned entries a Map-Reply releases when many are gleaned (issue 10: found by a lookup or an address
/// range, not a walk over all of them): exactly those the answer covers (checked against a brute force), in the
/// order they were gleaned; and the gleaned set follows the cache (an expired gleaned entry is not gleaned any more).
/// </summary>
public class GleaningReleaseTests
{
    private static readonly IPAddress Peer = Ip("192.0.2.77");

    private static Itr Make() =>
        new(new ItrOptions { Rlocs = [Ip("192.0.2.10")], ProbeInterval = TimeSpan.Zero, GlobalRequestsPerSecond = 1_000_000, MaxOutstanding = 100_000 },
            new StaticMappingSystem([], [Ep("1.1.1.1:4342")]), new Random(7));

    private static IReadOnlyList<ControlAction> Reply(Itr itr, ulong nonce, DateTimeOffset now, params MappingRecord[] records)
    {
        var bytes = new MapReply { Nonce = nonce, Records = records }.ToBytes();
        return itr.HandleMapReply(Decode<MapReply>(bytes), Packet(bytes, "1.1.1.1:4342", "192.0.2.10:4342"), now);
    }

    /// <summary>Gleans a mix of IPv4 and IPv6 hosts in and around 10.9.0.0/24 and 2001:db8::/64, not in address order; returns them and their verify nonces.</summary>
    private static (List<string> Order, Dictionary<string, ulong> Nonces) GleanMany(Itr itr)
    {
        var eids = new List<string>();
        for (int i = 0; i < 60; i++)
        {
            int host = i * 17 % 60 + 1;
            eids.Add($"[0]10.9.0.{host}/32");
            eids.Add($"[0]10.9.1.{host}/32");
            eids.Add($"[0]10.8.0.{host}/32");
            eids.Add($"[0]2001:db8::{host:x}/128");
            eids.Add($"[0]2001:db8:0:1::{host:x}/128");
        }
        var nonces = new Dictionary<string, ulong>();
        foreach (var eid in eids)
        {
            var actions = itr.Glean(E(eid), Peer, TimeSpan.FromSeconds(60), T0);
            Assert.Single(actions.OfType<MapCacheChanged>());
            nonces[eid] = ((MapRequest)Decode<EncapsulatedControlMessage>(Assert.Single(Sends(actions)).Payload).Message).Nonce;
        }
        Assert.Equal(eids.Count, itr.GleanedCount);
        return (eids, nonces);
    }

    [Theory]
    [InlineData("[0]10.9.0.5/32", "[0]10.9.0.0/24")]
    [InlineData("[0]10.9.0.5/32", "[0]10.9.0.0/23")]
    [InlineData("[0]10.9.1.7/32", "[0]10.8.0.0/15")]
    [InlineData("[0]10.9.0.5/32", "[0]10.9.0.5/32")]
    [InlineData("[0]10.8.0.33/32", "[0]0.0.0.0/0")]
    [InlineData("[0]2001:db8::5/128", "[0]2001:db8::/64")]
    [InlineData("[0]2001:db8::5/128", "[0]2001:db8::/48")]
    [InlineData("[0]2001:db8::5/128", "[0]2001:db8::5/128")]
    public void An_answer_releases_exactly_the_gleaned_entries_it_covers_in_glean_order(string asked, string answer)
    {
        var itr = Make();
        var (order, nonces) = GleanMany(itr);
        var covering = E(answer);
        var expected = order.Where(g => covering.Covers(E(g))).ToList(); // brute force
        Assert.Contains(asked, expected);

        var actions = Reply(itr, nonces[asked], T0.AddSeconds(0.1), Rec(answer, "192.0.2.1"));

        var released = Logs(actions).Where(l => l.Event == "map-cache-glean-replaced").Select(l => l.Message.Split(' ')[1]).ToList();
        Assert.Equal(expected, released);
        Assert.Equal(expected, actions.OfType<MapCacheChanged>().Where(c => c.Entry is null).Select(c => c.Eid.ToString()));
        Assert.Equal(answer, Assert.Single(actions.OfType<MapCacheChanged>(), c => c.Entry is not null).Eid.ToString());
        Assert.Equal(expected.Count, itr.Counters.Events(ControlEvent.GleanReplaced));
        Assert.Equal(order.Count - expected.Count, itr.GleanedCount);
        Assert.All(order, g => Assert.Equal(!expected.Contains(g), itr.IsGleaned(E(g))));
    }

    [Fact]
    public void A_gleaned_entry_that_expires_or_is_cleared_is_not_gleaned_any_more()
    {
        var itr = Make();
        itr.Glean(E("[0]10.9.0.5/32"), Peer, TimeSpan.FromSeconds(5), T0);
        itr.Glean(E("[0]10.9.0.6/32"), Peer, TimeSpan.FromSeconds(50), T0);
        Assert.Equal(2, itr.GleanedCount);
        itr.Tick(T0.AddSeconds(5));
        Assert.False(itr.IsGleaned(E("[0]10.9.0.5/32")));
        Assert.True(itr.IsGleaned(E("[0]10.9.0.6/32")));
        Assert.Equal(1, itr.GleanedCount);
        // Gleaned again after it went: a gleaned entry again, released by an answer like any other.
        itr.Glean(E("[0]10.9.0.5/32"), Peer, TimeSpan.FromSeconds(5), T0.AddSeconds(6));
        Assert.True(itr.IsGleaned(E("[0]10.9.0.5/32")));
        itr.Clear();
        Assert.Equal(0, itr.GleanedCount);
        Assert.False(itr.IsGleaned(E("[0]10.9.0.6/32")));
    }
}
