using System.Net;
using System.Text;
using Lisp.ControlPlane;
using Lisp.Wire;
using static Lisp.ControlPlane.Tests.H;

namespace Lisp.ControlPlane.Tests;

/// <summary>Issue 14: the roles' config-reload entry points (MapServer.Reconfigure, Etr.Reconfigure) keep what did not change.</summary>
public class ReconfigureTests
{
    private static readonly IPEndPoint Ms = Ep("1.1.1.1:4342");

    private static IReadOnlyList<ControlAction> RegisterAt(MapServer ms, string key, ulong nonce, string eid, string from, DateTimeOffset now)
    {
        var bytes = Register(nonce, AuthAlgorithm.HmacSha256_128, Rec(eid, from)).ToSignedBytes(Encoding.UTF8.GetBytes(key));
        return ms.HandleMapRegister(Decode<MapRegister>(bytes), Packet(bytes, from + ":4342"), now);
    }

    private static List<string> Registered(MapServer ms, DateTimeOffset now) =>
        ms.Registrations(now).Select(r => $"{r.Site} {r.Eid}").OrderBy(s => s, StringComparer.Ordinal).ToList();

    [Fact]
    public void Map_server_keeps_unchanged_sites_drops_removed_ones_and_rechecks_changed_ones()
    {
        var keep = new SiteConfig("keep", "k1", [E("[0]10.1.0.0/16")]) { AcceptMoreSpecifics = true };
        var gone = new SiteConfig("gone", "k2", [E("[0]10.2.0.0/16")]) { AcceptMoreSpecifics = true };
        var change = new SiteConfig("change", "k3", [E("[0]10.3.0.0/16")]) { AcceptMoreSpecifics = true };
        var ms = new MapServer(new MapServerOptions { Sites = [keep, gone, change] });
        RegisterAt(ms, "k1", 1, "[0]10.1.1.0/24", "192.0.2.1", T0);
        RegisterAt(ms, "k2", 2, "[0]10.2.1.0/24", "192.0.2.2", T0);
        RegisterAt(ms, "k3", 3, "[0]10.3.1.0/24", "192.0.2.3", T0);
        RegisterAt(ms, "k3", 4, "[0]10.3.200.0/24", "192.0.2.4", T0);
        var firstKeep = ms.Registrations(T0).Single(r => r.Site == "keep").FirstRegistered;

        // Same "keep" settings in a new object; "gone" removed; "change" with a new key and a narrower prefix; "new" added.
        var keep2 = new SiteConfig("keep", "k1", [E("[0]10.1.0.0/16")]) { AcceptMoreSpecifics = true };
        var change2 = new SiteConfig("change", "k3b", [E("[0]10.3.0.0/17")]) { AcceptMoreSpecifics = true };
        var added = new SiteConfig("new", "k4", [E("[0]10.4.0.0/16")]);
        var logs = Logs(ms.Reconfigure(ms.Options with { Sites = [keep2, change2, added], MaxRegistrations = 100 }));

        var t1 = T0.AddSeconds(1);
        Assert.Equal(["change [0]10.3.1.0/24", "keep [0]10.1.1.0/24"], Registered(ms, t1));
        Assert.Equal(firstKeep, ms.Registrations(t1).Single(r => r.Site == "keep").FirstRegistered);
        Assert.Same(keep, ms.Options.Sites[0]);                     // unchanged site: the same object, registrations untouched
        Assert.Equal(100, ms.Options.MaxRegistrations);
        Assert.Equal(2, ms.RegistrationCount);
        Assert.Contains(logs, l => l.Event == "site-removed" && l.Message.Contains("gone", StringComparison.Ordinal) && l.Message.Contains("1 registration", StringComparison.Ordinal));
        Assert.Contains(logs, l => l.Event == "site-changed" && l.Message.Contains("change", StringComparison.Ordinal) && l.Message.Contains("1 registration", StringComparison.Ordinal));
        Assert.Contains(logs, l => l.Event == "site-added" && l.Message.Contains("new", StringComparison.Ordinal));
        Assert.DoesNotContain(logs, l => l.Message.Contains("keep", StringComparison.Ordinal));

        // The changed site's key is the new one now; the removed site's is refused; the added site registers.
        Assert.Empty(Sends(RegisterAt(ms, "k3", 5, "[0]10.3.1.0/24", "192.0.2.3", t1)));
        Assert.Single(Sends(RegisterAt(ms, "k3b", 6, "[0]10.3.1.0/24", "192.0.2.3", t1)));
        Assert.Empty(Sends(RegisterAt(ms, "k2", 7, "[0]10.2.1.0/24", "192.0.2.2", t1)));
        Assert.Single(Sends(RegisterAt(ms, "k4", 8, "[0]10.4.0.0/16", "192.0.2.5", t1)));
        // A refresh of the kept registration is a refresh (same first-registered), not a new registration.
        Assert.Single(Sends(RegisterAt(ms, "k1", 9, "[0]10.1.1.0/24", "192.0.2.1", t1)));
        Assert.Equal(firstKeep, ms.Registrations(t1).Single(r => r.Site == "keep").FirstRegistered);
        Assert.Equal(3, ms.RegistrationCount);
    }

    [Fact]
    public void Etr_withdraws_only_removed_mappings_and_sends_nothing_when_nothing_changed()
    {
        var a = new DatabaseMapping(E("[0]10.1.0.0/16"), [Loc("192.0.2.1")]);
        var b = new DatabaseMapping(E("[0]10.2.0.0/16"), [Loc("192.0.2.1")]);
        var options = new EtrOptions { Key = "k", Database = [a, b] };
        var etr = new Etr(options, new StaticMappingSystem([Ms], [Ms]), new Random(1));
        etr.Tick(T0);
        var next = etr.NextDeadline;

        // Nothing changed (equal content, new objects): nothing sent, schedule kept.
        var same = options with { Database = [a with { Rlocs = [Loc("192.0.2.1")] }, b with { Rlocs = [Loc("192.0.2.1")] }] };
        Assert.Empty(etr.Reconfigure(same, T0.AddSeconds(1)));
        Assert.Equal(next, etr.NextDeadline);

        // b removed: one TTL-0 Map-Register for b only, signed with the key it was registered with; a is at most
        // refreshed (a register round with its normal TTL), never withdrawn.
        var actions = etr.Reconfigure(options with { Database = [a] }, T0.AddSeconds(2));
        var regs = Sends(actions).Select(s => (Send: s, Reg: Decode<MapRegister>(s.Payload))).ToList();
        var withdraw = Assert.Single(regs, r => r.Reg.Records.Any(x => x.TtlRaw == 0));
        var rec = Assert.Single(withdraw.Reg.Records);
        Assert.Equal("[0]10.2.0.0/16", rec.Eid.ToString());
        Assert.True(MessageAuthentication.Verify(withdraw.Send.Payload, Encoding.UTF8.GetBytes("k")));
        Assert.All(regs.Where(r => r.Send != withdraw.Send), r => Assert.All(r.Reg.Records, x => { Assert.Equal("[0]10.1.0.0/16", x.Eid.ToString()); Assert.True(x.TtlRaw > 0); }));
        Assert.Equal([a], etr.Database);

        // New key: registered now with it (the map-server holds the old settings otherwise); nothing withdrawn.
        actions = etr.Reconfigure(options with { Database = [a], Key = "k2" }, T0.AddSeconds(3));
        var sends = Sends(actions);
        var again = Decode<MapRegister>(Assert.Single(sends).Payload);
        Assert.True(Assert.Single(again.Records).TtlRaw > 0);
        Assert.True(MessageAuthentication.Verify(sends[0].Payload, Encoding.UTF8.GetBytes("k2")));
    }
}
