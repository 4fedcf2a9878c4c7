using System.Diagnostics;
using System.Text;
using Lisp.ControlPlane;
using Lisp.Wire;
using Xunit.Abstractions;
using static Lisp.ControlPlane.Tests.H;

namespace Lisp.ControlPlane.Tests;

/// <summary>
/// Issue 12, items 5 and 7, on the caller's clock: a captured Map-Register replayed (the same bytes) is refused,
/// counted as replayed-nonce and gets no Map-Notify, whether the registration is live, withdrawn (TTL 0) or
/// expired within its horizon, and an older Map-Register cannot roll a newer one back; the per-EID registrant
/// limit and a site's default share of the table.
/// </summary>
public class ReplayAndLimitTests(ITestOutputHelper output)
{
    private const string Key = "site-key";

    private static MapServer Server(int max = 1000, int perEid = MapServerOptions.DefaultMaxRegistrantsPerEid, params SiteConfig[] sites) => new(new MapServerOptions
    {
        Sites = sites.Length > 0 ? sites : [new SiteConfig("s", Key, [E("[0]10.0.0.0/8")]) { AcceptMoreSpecifics = true }],
        MaxRegistrations = max,
        MaxRegistrantsPerEid = perEid,
        LogLevel = LogLevel.Info,
    });

    private static byte[] Capture(MapRegister reg, string key = Key) => reg.ToSignedBytes(Encoding.UTF8.GetBytes(key));

    /// <summary>Delivers captured bytes (as an attacker replays them: byte for byte).</summary>
    private static IReadOnlyList<ControlAction> Deliver(MapServer ms, byte[] bytes, string from, DateTimeOffset now) =>
        ms.HandleMapRegister(Decode<MapRegister>(bytes), Packet(bytes, from), now);

    private static IReadOnlyList<string> Rlocs(MapServer ms, string eid, DateTimeOffset now) =>
        ms.Lookup(E(eid), now)?.SelectMany(r => r.Rlocs).Select(l => l.Locator.ToText()).ToList() ?? [];

    private static void AssertRefusedAsReplay(MapServer ms, IReadOnlyList<ControlAction> actions, long times = 1)
    {
        Assert.Empty(Sends(actions));                                                   // no Map-Notify
        Assert.Equal(times, ms.Counters.Drops(DropReason.ReplayedNonce));
        Assert.Contains(Logs(actions), l => l.Event == "registration-refused" && l.Message.Contains("replayed-nonce"));
    }

    [Fact]
    public void The_same_map_register_is_accepted_once()
    {
        var ms = Server();
        var bytes = Capture(Register(0x1111, AuthAlgorithm.HmacSha256_128, Rec("[0]10.1.0.0/24", "192.0.2.1")));
        Assert.Single(Sends(Deliver(ms, bytes, "192.0.2.1:4342", T0)));
        var again = Deliver(ms, bytes, "192.0.2.1:4342", T0.AddSeconds(1));
        AssertRefusedAsReplay(ms, again);
        Assert.Equal(1, ms.Counters.Events(ControlEvent.RegistrationAccepted));
        Assert.Equal(1, ms.Counters.Events(ControlEvent.RegistrationRefused));
        // The replay did not refresh the registration: it expires when the first said.
        Assert.Equal(T0.AddSeconds(180), Assert.Single(ms.Registrations(T0)).ExpiresAt);
    }

    [Fact]
    public void A_replay_after_a_ttl_0_withdrawal_does_not_resurrect_the_registration()
    {
        var ms = Server();
        var captured = Capture(Register(0x2001, AuthAlgorithm.HmacSha256_128, Rec("[0]10.2.0.0/24", "192.0.2.1")));
        Deliver(ms, captured, "192.0.2.1:4342", T0);
        var withdraw = Register(0x2002, AuthAlgorithm.HmacSha256_128, Rec("[0]10.2.0.0/24", "192.0.2.1") with { TtlRaw = 0 });
        Assert.Single(Sends(Deliver(ms, Capture(withdraw), "192.0.2.1:4342", T0.AddSeconds(10))));
        Assert.Equal(0, ms.RegistrationCount);

        var replay = Deliver(ms, captured, "192.0.2.1:4342", T0.AddSeconds(20));
        AssertRefusedAsReplay(ms, replay);
        Assert.False(ms.Holds(E("[0]10.2.0.1/32"), T0.AddSeconds(20)));
        Assert.Equal(0, ms.RegistrationCount);

        // Sent from another address (no xTR-ID, so identity is by address): still the site's nonce, still refused.
        AssertRefusedAsReplay(ms, Deliver(ms, captured, "203.0.113.9:4342", T0.AddSeconds(21)), 2);
        Assert.Empty(ms.Registrations(T0.AddSeconds(21)));

        // The withdrawal replayed is refused too; the ETR registering anew (a fresh nonce) is accepted.
        AssertRefusedAsReplay(ms, Deliver(ms, Capture(withdraw), "192.0.2.1:4342", T0.AddSeconds(22)), 3);
        Assert.Single(Sends(Deliver(ms, Capture(Register(0x2003, AuthAlgorithm.HmacSha256_128, Rec("[0]10.2.0.0/24", "192.0.2.1"))), "192.0.2.1:4342", T0.AddSeconds(30))));
        Assert.Equal(T0.AddSeconds(30), Assert.Single(ms.Registrations(T0.AddSeconds(30))).FirstRegistered);
    }

    [Fact]
    public void A_replay_after_expiry_is_refused_within_the_horizon_and_the_horizon_is_one_lifetime()
    {
        var ms = Server();
        var captured = Capture(Register(0x3001, AuthAlgorithm.HmacSha256_128, Rec("[0]10.3.0.0/24", "192.0.2.1")) with { XtrId = Id(3) });
        Deliver(ms, captured, "192.0.2.1:4342", T0);
        ms.Tick(T0.AddSeconds(180));                                                     // expired (180 s lifetime)
        Assert.Equal(1, ms.Counters.Events(ControlEvent.RegistrationExpired));
        Assert.Equal(0, ms.RegistrationCount);

        AssertRefusedAsReplay(ms, Deliver(ms, captured, "198.51.100.7:4342", T0.AddSeconds(300)));
        Assert.Empty(ms.Registrations(T0.AddSeconds(300)));

        // One lifetime after the expiry the tombstone is gone: what remains (README, "Replay protection").
        ms.Tick(T0.AddSeconds(360));
        Assert.Null(ms.NextDeadline);
        Assert.Single(Sends(Deliver(ms, captured, "192.0.2.1:4342", T0.AddSeconds(400))));
    }

    [Fact]
    public void An_older_map_register_cannot_roll_a_newer_one_back()
    {
        var ms = Server();
        var older = Capture(Register(0x4001, AuthAlgorithm.HmacSha256_128, Rec("[0]10.4.0.0/24", "192.0.2.1", "198.51.100.1")));
        var newer = Capture(Register(0x4002, AuthAlgorithm.HmacSha256_128, Rec("[0]10.4.0.0/24", "192.0.2.1", "198.51.100.2")));
        Deliver(ms, older, "192.0.2.1:4342", T0);
        Deliver(ms, newer, "192.0.2.1:4342", T0.AddSeconds(60));
        Assert.Equal(["192.0.2.1", "198.51.100.2"], Rlocs(ms, "[0]10.4.0.1/32", T0.AddSeconds(60)));

        AssertRefusedAsReplay(ms, Deliver(ms, older, "192.0.2.1:4342", T0.AddSeconds(61)));
        Assert.Equal(["192.0.2.1", "198.51.100.2"], Rlocs(ms, "[0]10.4.0.1/32", T0.AddSeconds(61)));

        // The window is the last 4 accepted nonces: three more refreshes, and the older one is still refused.
        for (ulong n = 0x4003; n < 0x4006; n++)
        {
            Deliver(ms, Capture(Register(n, AuthAlgorithm.HmacSha256_128, Rec("[0]10.4.0.0/24", "192.0.2.1", "198.51.100.2"))), "192.0.2.1:4342", T0.AddSeconds(62));
        }
        AssertRefusedAsReplay(ms, Deliver(ms, newer, "192.0.2.1:4342", T0.AddSeconds(63)), 2);
    }

    [Fact]
    public void One_map_register_naming_an_eid_twice_is_not_a_replay_of_itself()
    {
        var ms = Server();
        var reg = Register(0x5001, AuthAlgorithm.HmacSha256_128,
            Rec("[0]10.5.0.0/24", "192.0.2.1"), Rec("[0]10.5.1.0/24", "192.0.2.1"), Rec("[0]10.5.0.0/24", "192.0.2.1") with { TtlRaw = 0 });
        var notify = Decode<MapNotify>(Assert.Single(Sends(Deliver(ms, Capture(reg), "192.0.2.1:4342", T0))).Payload);
        Assert.Equal(3, notify.Records.Count);
        Assert.Equal(0, ms.Counters.Drops(DropReason.ReplayedNonce));
        Assert.Equal("[0]10.5.1.0/24", Assert.Single(ms.Registrations(T0)).Eid.ToString());
    }

    [Fact]
    public void Nonce_0_cannot_be_told_from_a_refresh_and_is_not_refused()
    {
        // RFC 9301 lets an ETR that wants no Map-Notify send nonce 0: every refresh is then the same bytes.
        var ms = Server();
        var bytes = Capture(Register(0, AuthAlgorithm.HmacSha256_128, Rec("[0]10.6.0.0/24", "192.0.2.1")) with { WantMapNotify = false });
        Deliver(ms, bytes, "192.0.2.1:4342", T0);
        Deliver(ms, bytes, "192.0.2.1:4342", T0.AddSeconds(60));
        Assert.Equal(0, ms.Counters.Drops(DropReason.ReplayedNonce));
        Assert.Equal(T0.AddSeconds(240), Assert.Single(ms.Registrations(T0.AddSeconds(60))).ExpiresAt);
    }

    private static byte[] Id(int i) => Enumerable.Repeat((byte)i, 16).ToArray();

    [Fact]
    public void An_eid_takes_at_most_max_registrants_per_eid_and_a_tombstone_gives_way()
    {
        var ms = Server(perEid: 4);
        for (int i = 1; i <= 4; i++)
        {
            Assert.Single(Sends(Deliver(ms, Capture(Register((ulong)(0x600 + i), AuthAlgorithm.HmacSha256_128, Rec("[0]10.7.0.0/24", $"192.0.2.{i}")) with { XtrId = Id(i) }),
                $"192.0.2.{i}:4342", T0)));
        }
        var fifth = Deliver(ms, Capture(Register(0x605, AuthAlgorithm.HmacSha256_128, Rec("[0]10.7.0.0/24", "192.0.2.5")) with { XtrId = Id(5) }), "192.0.2.5:4342", T0);
        Assert.Empty(Sends(fifth));
        Assert.Equal(1, ms.Counters.Drops(DropReason.RegistrantsPerEid));
        Assert.Contains(Logs(fifth), l => l.Event == "registration-refused" && l.Message.Contains("max_registrants_per_eid"));
        Assert.Equal(4, ms.RegistrationCount);

        // The registrants there refresh as before; one withdrawing makes room (its tombstone gives way).
        Assert.Single(Sends(Deliver(ms, Capture(Register(0x611, AuthAlgorithm.HmacSha256_128, Rec("[0]10.7.0.0/24", "192.0.2.1")) with { XtrId = Id(1) }), "192.0.2.1:4342", T0.AddSeconds(1))));
        Deliver(ms, Capture(Register(0x612, AuthAlgorithm.HmacSha256_128, Rec("[0]10.7.0.0/24", "192.0.2.2") with { TtlRaw = 0 }) with { XtrId = Id(2) }), "192.0.2.2:4342", T0.AddSeconds(2));
        Assert.Single(Sends(Deliver(ms, Capture(Register(0x613, AuthAlgorithm.HmacSha256_128, Rec("[0]10.7.0.0/24", "192.0.2.5")) with { XtrId = Id(5) }), "192.0.2.5:4342", T0.AddSeconds(3))));
        Assert.Equal(4, ms.Lookup(E("[0]10.7.0.1/32"), T0.AddSeconds(3))!.Count);
        Assert.Equal(1, ms.Counters.Drops(DropReason.RegistrantsPerEid));
    }

    [Fact]
    public void One_site_cannot_fill_the_table_for_the_others()
    {
        var a = new SiteConfig("a", "key-a", [E("[0]10.0.0.0/8")]) { AcceptMoreSpecifics = true };
        var b = new SiteConfig("b", "key-b", [E("[0]172.16.0.0/12")]) { AcceptMoreSpecifics = true };
        var ms = Server(max: 10, perEid: 16, a, b);
        // Site a registers 20 EIDs: it gets its share (10 / 2 sites), the rest are refused as its site limit.
        for (int i = 0; i < 20; i++)
        {
            Deliver(ms, Capture(Register((ulong)(0x700 + i), AuthAlgorithm.HmacSha256_128, Rec($"[0]10.8.{i}.0/24", "192.0.2.1")), "key-a"), "192.0.2.1:4342", T0);
        }
        Assert.Equal(5, ms.RegistrationCount);
        Assert.Equal(15, ms.Counters.Drops(DropReason.SiteRegistrationLimit));
        Assert.Equal(0, ms.Counters.Drops(DropReason.RegistrationTableFull));
        // Site b still has room for its share.
        for (int i = 0; i < 5; i++)
        {
            Assert.Single(Sends(Deliver(ms, Capture(Register((ulong)(0x800 + i), AuthAlgorithm.HmacSha256_128, Rec($"[0]172.16.{i}.0/24", "192.0.2.9")), "key-b"), "192.0.2.9:4342", T0)));
        }
        Assert.Equal(10, ms.RegistrationCount);

        // An explicit max_registrations overrides the share (here: the whole table for a lone site).
        var solo = Server(max: 10, perEid: 16, a with { MaxRegistrations = 8 }, b);
        for (int i = 0; i < 9; i++)
        {
            Deliver(solo, Capture(Register((ulong)(0x900 + i), AuthAlgorithm.HmacSha256_128, Rec($"[0]10.9.{i}.0/24", "192.0.2.1")), "key-a"), "192.0.2.1:4342", T0);
        }
        Assert.Equal(8, solo.RegistrationCount);
    }

    [Fact]
    public void A_refresh_costs_the_same_with_2_or_2000_registrants_on_the_eid()
    {
        double Measure(int registrants)
        {
            var ms = Server(max: 100_000, perEid: 100_000);
            for (int i = 0; i < registrants; i++)
            {
                Deliver(ms, Capture(Register((ulong)(i + 1), AuthAlgorithm.HmacSha256_128, Rec("[0]10.10.0.0/24", "192.0.2.1")) with { XtrId = BitConverter.GetBytes((long)i).Concat(new byte[8]).ToArray() }),
                    "192.0.2.1:4342", T0);
            }
            // Refreshes of the last registrant (a scan would walk all the others first), fresh nonces, bytes signed beforehand.
            var id = BitConverter.GetBytes((long)(registrants - 1)).Concat(new byte[8]).ToArray();
            var refreshes = Enumerable.Range(0, 2000).Select(n => Capture(Register((ulong)(1_000_000 + n), AuthAlgorithm.HmacSha256_128, Rec("[0]10.10.0.0/24", "192.0.2.1")) with { XtrId = id, WantMapNotify = false }))
                .Select(b => (Bytes: b, Message: Decode<MapRegister>(b))).ToList();
            var sw = Stopwatch.StartNew();
            foreach (var (b, m) in refreshes) ms.HandleMapRegister(m, Packet(b, "192.0.2.1:4342"), T0.AddSeconds(1));
            sw.Stop();
            Assert.Equal(registrants, ms.RegistrationCount);
            return sw.Elapsed.TotalMicroseconds / refreshes.Count;
        }
        Measure(2);                                   // warm-up (JIT)
        double few = Measure(2), many = Measure(2000);
        output.WriteLine($"refresh: {few:0.00} us with 2 registrants on the EID, {many:0.00} us with 2000");
        Assert.True(many < few * 4 + 5, $"refresh {many:0.00} us at 2000 registrants vs {few:0.00} us at 2");
    }
}
