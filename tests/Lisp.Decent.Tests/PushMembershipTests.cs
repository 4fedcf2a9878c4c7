using System.Net;
using Lisp.Decent.Push;
using Xunit;

namespace Lisp.Decent.Tests;

/// <summary>The push member list kept up to date: learning, seed-group merges and pruning, on an injected clock.</summary>
public class PushMembershipTests
{
    private static readonly DateTimeOffset T0 = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(180);

    private static IPAddress A(int i) => IPAddress.Parse($"10.0.0.{i}");

    /// <summary>Member 1 (this node) with member 2 configured statically.</summary>
    private static PushMappingSystem System(params int[] learnedAtStart)
    {
        var push = new PushMappingSystem(new PushOptions
        {
            Group = IPAddress.Parse("224.1.1.1"),
            Self = [new IPEndPoint(A(1), 4342)],
            Members = [new IPEndPoint(A(2), 4342)],
            Key = "k",
        });
        if (learnedAtStart.Length > 0) push.SetMembers(push.Options.Members.Concat(learnedAtStart.Select(i => new IPEndPoint(A(i), 4342))));
        return push;
    }

    private static int[] Members(PushMappingSystem push) => push.Members.Select(m => (int)m.Address.GetAddressBytes()[3]).Order().ToArray();

    [Fact]
    public void A_learned_member_whose_registration_is_gone_for_a_registration_timeout_is_pruned_and_static_ones_never_are()
    {
        var push = System();
        var m = new PushMembership(push, Timeout, T0);

        // 3 registers (and names 4 in its RLE): both are learned.
        var c = m.Update([A(1), A(2), A(3)], [A(1), A(2), A(3), A(4)], null, T0);
        Assert.Equal([A(3), A(4)], c.Added.OrderBy(a => a.ToString()));
        Assert.Equal([1, 2, 3, 4], Members(push));
        Assert.Contains(A(3), c.Arrived);

        // 3 refreshes at T0+10 s, then withdraws (its registration disappears); 4 never registered itself; 2 (static) goes silent.
        Assert.False(m.Update([A(1), A(3)], [A(1), A(3), A(4)], null, T0.AddSeconds(10)).MembersChanged);
        var present = new[] { A(1) };
        Assert.False(m.Update(present, [A(1), A(3), A(4)], null, T0.AddSeconds(20)).MembersChanged);
        // 4 was learned at T0 and never present: pruned just after one timeout; 3 (last present at T0+10 s) not yet.
        var c2 = m.Update(present, [A(1), A(3), A(4)], null, T0 + Timeout + TimeSpan.FromSeconds(1));
        Assert.Equal([A(4)], c2.Removed);
        Assert.Equal([1, 2, 3], Members(push));
        var c3 = m.Update(present, [A(1), A(3), A(4)], null, T0 + Timeout + TimeSpan.FromSeconds(11));
        Assert.Equal([A(3)], c3.Removed);
        Assert.Equal([1, 2], Members(push)); // 2 (static) stays however long it is silent

        // A stale RLE (another member has not pruned it yet) or seed answer naming a pruned member does not bring it back.
        var c4 = m.Update(present, [A(3), A(4)], [A(4)], T0 + Timeout * 2);
        Assert.Empty(c4.Added);
        Assert.Equal([1, 2], Members(push));

        // Its own registration coming back does.
        var c5 = m.Update([A(1), A(4)], [], null, T0 + Timeout * 3);
        Assert.Equal([A(4)], c5.Added);
        Assert.Equal([A(4)], c5.Arrived);
        Assert.Equal([1, 2, 4], Members(push));

        // Static member 2 and this node are never pruned, present or not, however long.
        m.Update([], [], null, T0 + Timeout * 10);
        Assert.Equal([1, 2], Members(push));
    }

    [Fact]
    public void A_registration_that_keeps_refreshing_keeps_its_member()
    {
        var push = System();
        var m = new PushMembership(push, Timeout, T0);
        for (int s = 0; s <= 1000; s += 60) Assert.Empty(m.Update([A(3)], [], null, T0.AddSeconds(s)).Removed);
        Assert.Equal([1, 2, 3], Members(push));
    }

    [Fact]
    public void Seed_group_answers_are_merged_and_members_from_the_start_up_look_up_are_learned_ones()
    {
        // The start-up look-up gave 5: a learned member (prunable), not a static one.
        var push = System(5);
        var m = new PushMembership(push, Timeout, T0);
        Assert.Equal([A(5)], m.Learned);

        // A later answer adds 6 and 7 (duplicates, this node, the static member, other families and 0.0.0.0 ignored).
        var c = m.Update([A(5)], [], [A(1), A(2), A(6), A(6), A(7), IPAddress.Any, IPAddress.Parse("2001:db8::1"), IPAddress.Parse("::ffff:10.0.0.5")], T0.AddSeconds(60));
        Assert.Equal([A(6), A(7)], c.Added.OrderBy(a => a.ToString()));
        Assert.Equal([1, 2, 5, 6, 7], Members(push));
        Assert.Equal([A(5)], c.Arrived);

        // The same answer again changes nothing; a failed look-up (no answer: null) keeps the list.
        Assert.False(m.Update([A(5), A(6), A(7)], [], [A(6), A(7)], T0.AddSeconds(120)).MembersChanged);
        Assert.False(m.Update([A(5), A(6), A(7)], [], null, T0.AddSeconds(180)).MembersChanged);
        Assert.Equal([1, 2, 5, 6, 7], Members(push));

        // An answer that no longer names 7 does not remove it while it registers; its registration going away does.
        Assert.Empty(m.Update([A(5), A(6), A(7)], [], [A(5), A(6)], T0.AddSeconds(240)).Removed);
        Assert.Equal([A(7)], m.Update([A(5), A(6)], [], [A(5), A(6)], T0.AddSeconds(240) + Timeout + TimeSpan.FromSeconds(1)).Removed);
        Assert.Equal([1, 2, 5, 6], Members(push));
    }
}
