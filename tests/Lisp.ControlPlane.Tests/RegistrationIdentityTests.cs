using System.Text;
using Lisp.ControlPlane;
using Lisp.Wire;
using static Lisp.ControlPlane.Tests.H;

namespace Lisp.ControlPlane.Tests;

/// <summary>
/// Issue 10 defects c and d, and the limits: who a registration belongs to (RFC 9301 section 8.2: the xTR-ID when
/// the I bit is set, else the ETR by its address or RLOC set, never the UDP source port), the monotonic clock,
/// and refusals at the table and site limits.
/// </summary>
public class RegistrationIdentityTests
{
    private const string Key = "site-key";

    private static MapServer Server(int max = 1000, int siteMax = 0) => new(new MapServerOptions
    {
        Sites = [new SiteConfig("s", Key, [E("[0]10.0.0.0/8")]) { AcceptMoreSpecifics = true, MaxRegistrations = siteMax }],
        MaxRegistrations = max,
    });

    private static IReadOnlyList<ControlAction> Send(MapServer ms, MapRegister reg, string from, DateTimeOffset? now = null)
    {
        var bytes = reg.ToSignedBytes(Encoding.UTF8.GetBytes(Key));
        return ms.HandleMapRegister(Decode<MapRegister>(bytes), Packet(bytes, from), now ?? T0);
    }

    [Fact]
    public void Re_registering_from_a_new_source_port_refreshes_and_does_not_duplicate()
    {
        var ms = Server();
        for (int port = 40000; port < 40010; port++)
        {
            Send(ms, Register((ulong)port, AuthAlgorithm.HmacSha256_128, Rec("[0]10.1.0.0/24", "192.0.2.1"), Rec("[0]10.1.1.0/24", "192.0.2.1")),
                $"192.0.2.1:{port}", T0.AddSeconds(port - 40000));
        }
        Assert.Equal(2, ms.RegistrationCount);
        var regs = ms.Registrations(T0.AddSeconds(10));
        Assert.Equal(2, regs.Count);
        Assert.All(regs, r => Assert.Equal(40009, r.Registerer.Port));           // the newest source is remembered
        Assert.All(regs, r => Assert.Equal(T0, r.FirstRegistered));              // ...as a refresh of the first
        Assert.Equal(10, ms.Counters.Events(ControlEvent.RegistrationAccepted));  // ten Map-Registers, each confirmed
    }

    [Fact]
    public void A_multihomed_etr_registering_from_another_of_its_rlocs_is_the_same_registrant()
    {
        var ms = Server();
        Send(ms, Register(1, AuthAlgorithm.HmacSha256_128, Rec("[0]10.2.0.0/24", "192.0.2.1", "198.51.100.1")), "192.0.2.1:4342");
        Send(ms, Register(2, AuthAlgorithm.HmacSha256_128, Rec("[0]10.2.0.0/24", "192.0.2.1", "198.51.100.1")), "198.51.100.1:4342");
        var r = Assert.Single(ms.Registrations(T0));
        Assert.Equal("198.51.100.1:4342", r.Registerer.ToString());
    }

    [Fact]
    public void Two_etrs_of_one_site_from_different_addresses_are_two_registrants_and_xtr_ids_win_over_addresses()
    {
        var ms = Server();
        Send(ms, Register(1, AuthAlgorithm.HmacSha256_128, Rec("[0]10.3.0.0/24", "192.0.2.1")), "192.0.2.1:4342");
        Send(ms, Register(2, AuthAlgorithm.HmacSha256_128, Rec("[0]10.3.0.0/24", "192.0.2.2")), "192.0.2.2:4342");
        Assert.Equal(2, ms.Registrations(T0).Count);

        // One xTR-ID from two addresses (an ETR whose address changed): one registrant.
        var id = Enumerable.Range(1, 16).Select(i => (byte)i).ToArray();
        Send(ms, Register(3, AuthAlgorithm.HmacSha256_128, Rec("[0]10.4.0.0/24", "192.0.2.7")) with { XtrId = id }, "192.0.2.7:4342");
        Send(ms, Register(4, AuthAlgorithm.HmacSha256_128, Rec("[0]10.4.0.0/24", "192.0.2.8")) with { XtrId = id }, "192.0.2.8:5555");
        var r = Assert.Single(ms.Registrations(T0), x => x.Eid.ToString() == "[0]10.4.0.0/24");
        Assert.Equal("192.0.2.8", r.Rlocs[0].Locator.ToText());
    }

    [Fact]
    public void Site_limit_refuses_new_eids_of_that_site_counts_them_and_leaves_them_out_of_the_map_notify()
    {
        var ms = Server(max: 1000, siteMax: 2);
        var actions = Send(ms, Register(1, AuthAlgorithm.HmacSha256_128,
            Rec("[0]10.5.0.0/24", "192.0.2.1"), Rec("[0]10.5.1.0/24", "192.0.2.1"), Rec("[0]10.5.2.0/24", "192.0.2.1")), "192.0.2.1:4342");
        Assert.Equal(2, ms.RegistrationCount);
        Assert.Equal(1, ms.Counters.Drops(DropReason.SiteRegistrationLimit));
        Assert.Equal(1, ms.Counters.Events(ControlEvent.RegistrationRefused));
        var notify = Decode<MapNotify>(Assert.Single(Sends(actions)).Payload);
        Assert.Equal(["[0]10.5.0.0/24", "[0]10.5.1.0/24"], notify.Records.Select(r => r.Eid.ToString()).ToArray());
        Assert.Contains(Logs(actions), l => l.Event == "registration-refused" && l.Message.Contains("10.5.2.0/24", StringComparison.Ordinal));

        // A refresh of what is held is not a new registration: still accepted at the limit.
        actions = Send(ms, Register(2, AuthAlgorithm.HmacSha256_128, Rec("[0]10.5.0.0/24", "192.0.2.1")), "192.0.2.1:4342");
        Assert.Single(Sends(actions));
        Assert.Equal(1, ms.Counters.Events(ControlEvent.RegistrationRefused));

        // Withdrawing one frees a slot for the refused EID.
        Send(ms, Register(3, AuthAlgorithm.HmacSha256_128, new MappingRecord(E("[0]10.5.0.0/24"), [Loc("192.0.2.1")], 0)), "192.0.2.1:4342");
        Send(ms, Register(4, AuthAlgorithm.HmacSha256_128, Rec("[0]10.5.2.0/24", "192.0.2.1")), "192.0.2.1:4342");
        Assert.Equal(["[0]10.5.1.0/24", "[0]10.5.2.0/24"], ms.Registrations(T0).Select(r => r.Eid.ToString()).ToArray());
    }

    [Fact]
    public void Expiry_frees_the_slot_and_a_turn_touches_only_what_is_due()
    {
        var ms = new MapServer(new MapServerOptions
        {
            Sites = [new SiteConfig("s", Key, [E("[0]10.0.0.0/8")]) { AcceptMoreSpecifics = true }],
            MaxRegistrations = 3,
            RegistrationTimeout = TimeSpan.FromSeconds(60),
        });
        for (int i = 0; i < 3; i++) Send(ms, Register((ulong)i + 1, AuthAlgorithm.HmacSha256_128, Rec($"[0]10.6.{i}.0/24", "192.0.2.1")), "192.0.2.1:4342", T0.AddSeconds(i * 10));
        Assert.Equal(T0.AddSeconds(60), ms.NextDeadline);
        // Refreshing the first moves its expiry; the heap entry at T0+60 is found stale and re-queued, nothing expires.
        Send(ms, Register(9, AuthAlgorithm.HmacSha256_128, Rec("[0]10.6.0.0/24", "192.0.2.1")), "192.0.2.1:4342", T0.AddSeconds(50));
        Assert.DoesNotContain(ms.Tick(T0.AddSeconds(60)), a => a is LogAction { Event: "registration-timeout" });
        Assert.Equal(3, ms.RegistrationCount);
        // At T0+75 only 10.6.1.0/24 (due T0+70) is due; 10.6.2.0/24 (T0+80) and the refreshed one (T0+110) stay.
        var expired = ms.Tick(T0.AddSeconds(75)).OfType<LogAction>().Where(l => l.Event == "registration-timeout").ToList();
        Assert.Contains("10.6.1.0/24", Assert.Single(expired).Message, StringComparison.Ordinal);
        Assert.Equal(2, ms.RegistrationCount);
        Assert.Equal(T0.AddSeconds(80), ms.NextDeadline);
        // The table was full (3); the expired one's slot takes a new EID.
        var actions = Send(ms, Register(10, AuthAlgorithm.HmacSha256_128, Rec("[0]10.6.9.0/24", "192.0.2.1")), "192.0.2.1:4342", T0.AddSeconds(76));
        Assert.Single(Sends(actions));
        Assert.Equal(3, ms.RegistrationCount);
    }
}

public class MonotonicClockTests
{
    [Fact]
    public void A_wall_clock_step_does_not_move_the_roles_clock()
    {
        long ticks = 1_000;
        var start = new DateTimeOffset(2026, 12, 7, 0, 0, 0, TimeSpan.Zero);
        var clock = new MonotonicClock(start, () => ticks, 1_000);   // 1,000 timestamp units per second
        Assert.Equal(start, clock.GetUtcNow());
        ticks += 90_000;                                              // 90 s pass on the monotonic counter
        Assert.Equal(start.AddSeconds(90), clock.GetUtcNow());
        // The wall clock is not consulted after start, so a step of it (NTP, `date -s`) changes nothing: only
        // the monotonic counter moves this clock. A registration made at start with a 180 s timeout is alive.
        var ms = new MapServer(new MapServerOptions
        {
            Sites = [new SiteConfig("s", "k", [EidPrefix.Parse("[0]10.0.0.0/8")]) { AcceptMoreSpecifics = true }],
        });
        var reg = new MapRegister { Nonce = 1, Algorithm = AuthAlgorithm.HmacSha256_128, Records = [H.Rec("[0]10.9.0.0/24", "192.0.2.1")] };
        var bytes = reg.ToSignedBytes(System.Text.Encoding.UTF8.GetBytes("k"));
        ms.HandleMapRegister(H.Decode<MapRegister>(bytes), H.Packet(bytes, "192.0.2.1:4342"), start);
        ms.Tick(clock.GetUtcNow());
        Assert.Equal(1, ms.RegistrationCount);
        ticks += 91_000;                                              // 181 s after start
        ms.Tick(clock.GetUtcNow());
        Assert.Equal(0, ms.RegistrationCount);
    }
}
