using System.Net;
using Lisp.ControlPlane;
using Lisp.Wire;
using static Lisp.ControlPlane.Tests.H;

namespace Lisp.ControlPlane.Tests;

/// <summary>Three ControlNodes (MS/MR, ETR, ITR) in one process; the test shuttles their datagrams by hand.</summary>
public class EndToEndTests
{
    private const string Key = "decent-demo-key";
    private static readonly IPEndPoint MsEp = Ep("10.0.0.1:4342"), EtrEp = Ep("10.0.0.2:4342"), ItrEp = Ep("10.0.0.3:4342");

    public static readonly string[] AllKinds =
    [
        "[0]1.1.1.1/32", "[0]10.1.0.0/16", "[0]2001::1/128", "[0]2001:db8::/32", "[0]'nexus-n1'", "[0](1.1.1.1/32, 224.1.1.1/32)",
        "[0]+14085551212/64", "[0]0000-1111-2222/48", "[0]48-51-12-N-2-20-55-E/100",
        "[1000]10.1.0.0/16", "[1000]2001:db8::/32", "[1000]'dino'", "[1000](10.0.0.0/8, 239.1.1.0/24)",
        "[1000]+1223344556677880/64", "[1000]0000-1111-2222/48", "[1000]48-51-12-S-2-20-55-W/10",
    ];

    /// <summary>An address inside each EID to look up with, where the EID is a prefix.</summary>
    private static EidPrefix Inside(string eid) => eid switch
    {
        "[0]10.1.0.0/16" => E("[0]10.1.77.9/32"),
        "[0]2001:db8::/32" => E("[0]2001:db8:5::9/128"),
        "[1000]10.1.0.0/16" => E("[1000]10.1.0.200/32"),
        "[1000]2001:db8::/32" => E("[1000]2001:db8::42/128"),
        _ => E(eid),
    };

    private sealed record World(InMemoryNetwork Net, ControlNode Ms, ControlNode Etr, ControlNode Itr);

    private static World Build(bool proxy, AuthAlgorithm alg, ushort mapVersion = 0)
    {
        var system = new StaticMappingSystem([MsEp], [MsEp]);
        var ms = new ControlNode(new ControlNodeOptions
        {
            Name = "msmr", LocalEndpoints = [MsEp],
            MapServer = new MapServerOptions { Sites = [new SiteConfig("demo", Key, AllKinds.Select(E).ToList())] },
            MapResolver = new MapResolverOptions(),
        }, system, new Random(1));
        var etr = new ControlNode(new ControlNodeOptions
        {
            Name = "etr", LocalEndpoints = [EtrEp],
            Etr = new EtrOptions
            {
                Key = Key, Algorithm = alg, ProxyReply = proxy,
                Database = AllKinds.Select(e => new DatabaseMapping(E(e), [Loc("10.0.0.2", 1, 50), Loc("10.0.0.22", 2, 50)], mapVersion)).ToList(),
            },
        }, system, new Random(2));
        var itr = new ControlNode(new ControlNodeOptions
        {
            Name = "itr", LocalEndpoints = [ItrEp],
            Itr = new ItrOptions { Rlocs = [ItrEp.Address] },
        }, system, new Random(3));
        var net = new InMemoryNetwork();
        net.Add(MsEp, ms);
        net.Add(EtrEp, etr);
        net.Add(ItrEp, itr);
        return new World(net, ms, etr, itr);
    }

    [Theory]
    [InlineData(false, AuthAlgorithm.HmacSha256_128)]
    [InlineData(true, AuthAlgorithm.HmacSha256_128)]
    [InlineData(false, AuthAlgorithm.HmacSha1_96)]
    [InlineData(true, AuthAlgorithm.HmacSha1_96)]
    public void Every_eid_kind_registers_and_resolves(bool proxy, AuthAlgorithm alg)
    {
        var w = Build(proxy, alg);
        w.Net.Tick(w.Etr, T0);

        // Registered and notified; the solicited Map-Notify gets no Ack (RFC 9301 5.7).
        var regs = w.Ms.MapServer!.Registrations(T0);
        Assert.Equal(AllKinds.Length, regs.Count);
        Assert.All(regs, r => Assert.Equal(EtrEp, r.Registerer));
        Assert.All(w.Ms.MapServer.SiteTable(T0), row => Assert.True(row.Registered, row.Eid.ToString()));
        Assert.All(w.Etr.Etr!.RegistrationStates, s => Assert.Equal(T0, s.LastNotified));
        Assert.Equal(0, w.Etr.Counters.Events(ControlEvent.MapNotifyAckSent));
        Assert.Empty(Sends(w.Ms.Tick(T0.AddSeconds(5)))); // nothing left to retransmit
        Assert.Equal(0, w.Ms.Counters.TotalDrops + w.Etr.Counters.TotalDrops);

        var t = T0.AddSeconds(1);
        foreach (var kind in AllKinds)
        {
            var lookup = Inside(kind);
            w.Net.Run(w.Itr, w.Itr.Request(lookup, t), t);
            Assert.True(w.Itr.Itr!.TryLookup(lookup, t, out var entry), $"{kind} did not resolve");
            Assert.Equal(E(kind).ToString(), entry!.Eid.ToString());
            Assert.Equal(["10.0.0.2", "10.0.0.22"], entry.Locators.Select(l => l.Locator.ToText()));
            Assert.Equal(proxy ? MsEp : EtrEp, entry.LearnedFrom);
            Assert.Equal(!proxy, entry.Authoritative);
            Assert.Equal("10.0.0.2", Assert.Single(entry.BestLocators()).Locator.ToText());
        }
        Assert.Equal(AllKinds.Length, w.Itr.Itr!.CacheCount);
        Assert.Equal(AllKinds.Length, w.Net.CacheChanges.Count(c => c.Entry is not null));
        Assert.Equal(proxy ? AllKinds.Length : 0, w.Ms.Counters.Events(ControlEvent.ProxyMapReplySent));
        Assert.Equal(proxy ? 0 : AllKinds.Length, w.Etr.Counters.Events(ControlEvent.MapReplySent));
        Assert.Equal(0, w.Itr.Counters.TotalDrops);
        Assert.Equal(0, w.Net.Undeliverable);
    }

    /// <summary>
    /// RFC 9302: the ETR's Map-Version goes into its Map-Register records and its Map-Replies; the map-server keeps
    /// it for proxy replies; the ITR's map-cache entry (and the change the data plane mirrors) carries it. After the
    /// ETR's mapping changes version, a new request (what the data plane asks for on a newer source version) gets it.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void The_map_version_travels_from_the_etr_database_to_the_itr_map_cache(bool proxy)
    {
        var w = Build(proxy, AuthAlgorithm.HmacSha256_128, mapVersion: 42);
        w.Net.Tick(w.Etr, T0);
        var t = T0.AddSeconds(1);
        var lookup = E("[0]10.1.77.9/32");
        w.Net.Run(w.Itr, w.Itr.Request(lookup, t), t);
        Assert.True(w.Itr.Itr!.TryLookup(lookup, t, out var entry));
        Assert.Equal(42, entry!.MapVersion);
        Assert.Equal(42, w.Net.CacheChanges.Single(c => c.Entry is not null).Entry!.MapVersion);

        var etr = w.Etr.Etr!;
        var changed = etr.Database.Select(d => d with { MapVersion = 43 }).ToList();
        t = t.AddSeconds(1);
        w.Net.Run(w.Etr, etr.UpdateDatabase(changed, t), t);
        t = t.AddSeconds(1);
        w.Net.Run(w.Itr, w.Itr.Request(lookup, t), t);
        Assert.True(w.Itr.Itr!.TryLookup(lookup, t, out entry));
        Assert.Equal(43, entry!.MapVersion);
        Assert.Equal(0, w.Itr.Counters.TotalDrops);
    }

    [Fact]
    public void Unregistered_eid_gets_a_negative_entry()
    {
        var w = Build(false, AuthAlgorithm.HmacSha256_128);
        w.Net.Tick(w.Etr, T0);
        w.Net.Run(w.Itr, w.Itr.Request(E("[0]99.0.0.1/32"), T0), T0);
        Assert.True(w.Itr.Itr!.TryLookup(IPAddress.Parse("99.0.0.1"), 0, T0, out var entry));
        Assert.True(entry!.IsNegative);
        // 99 = 01100011 shares 1 leading bit with 1.1.1.1 and 10.1.0.0 (0000...): /2 around it.
        Assert.Equal("[0]64.0.0.0/2", entry.Eid.ToString());
        Assert.Equal(TimeSpan.FromMinutes(15), entry.Ttl);
        Assert.Equal(MapReplyAction.NativelyForward, entry.Action);
    }

    [Fact]
    public void Registration_times_out_when_etr_stops_and_refreshes_while_it_runs()
    {
        var w = Build(false, AuthAlgorithm.HmacSha256_128);
        w.Net.Tick(w.Etr, T0);
        // The ETR keeps registering every ~60 s: the registration stays for 10 minutes.
        for (var t = T0; t < T0.AddMinutes(10); t = t.AddSeconds(5))
        {
            w.Net.Tick(w.Etr, t);
            w.Net.Tick(w.Ms, t);
        }
        Assert.Equal(AllKinds.Length, w.Ms.MapServer!.Registrations(T0.AddMinutes(10)).Count);
        // It stops: gone 180 s after the last register.
        var last = w.Ms.MapServer.Registrations(T0.AddMinutes(10)).Max(r => r.LastRegistered);
        w.Net.Tick(w.Ms, last.AddSeconds(179));
        Assert.Equal(AllKinds.Length, w.Ms.MapServer.Registrations(last.AddSeconds(179)).Count);
        w.Net.Tick(w.Ms, last.AddSeconds(180));
        Assert.Empty(w.Ms.MapServer.Registrations(last.AddSeconds(180)));
        Assert.Contains(w.Net.LogLines, l => l.Event == "registration-timeout");
    }

    [Fact]
    public void Smr_after_rloc_change_refreshes_the_itr_cache()
    {
        var w = Build(false, AuthAlgorithm.HmacSha256_128);
        w.Net.Tick(w.Etr, T0);
        var eid = E("[0]10.1.0.0/16");
        w.Net.Run(w.Itr, w.Itr.Request(E("[0]10.1.2.3/32"), T0), T0);
        Assert.True(w.Itr.Itr!.TryLookup(IPAddress.Parse("10.1.2.3"), 0, T0, out var before));
        Assert.Equal("10.0.0.2", before!.Locators[0].Locator.ToText());

        var t = T0.AddSeconds(10);
        var db = w.Etr.Etr!.Database.Select(m => m.Eid.SameKey(eid) ? m with { Rlocs = [Loc("10.0.0.99")] } : m).ToList();
        // The ETR's new RLOC reaches it (the map-server forwards Map-Requests to the registered RLOC).
        w.Net.Alias(Ep("10.0.0.99:4342"), w.Etr);
        w.Net.Run(w.Etr, w.Etr.Etr.UpdateDatabase(db, t), t);
        Assert.True(w.Itr.Itr.TryLookup(IPAddress.Parse("10.1.2.3"), 0, t, out var after));
        Assert.Equal("10.0.0.99", Assert.Single(after!.Locators).Locator.ToText());
        Assert.Equal(1, w.Itr.Counters.Events(ControlEvent.SmrHonoured));
        Assert.Contains(w.Net.Trace, x => x.Message is EncapsulatedControlMessage { Message: MapRequest { SmrInvoked: true } });
    }

    [Fact]
    public void Pull_style_set_of_two_map_servers_with_fallback_resolver()
    {
        // Two MS/MR nodes form the set for every EID: the ETR registers with both, the ITR asks the first and,
        // when it is unreachable, the second after the 1 s timeout.
        var a = Ep("1.1.1.1:4342");
        var b = Ep("2.2.2.2:4342");
        var system = new StaticMappingSystem([a, b], [a, b]);
        ControlNode MsNode(IPEndPoint ep) => new(new ControlNodeOptions
        {
            LocalEndpoints = [ep],
            MapServer = new MapServerOptions
            {
                Sites = [new SiteConfig("registrations", Key, [E("[0]0.0.0.0/0"), E("[0]::/0")]) { AcceptMoreSpecifics = true }],
                NegativePrefix = NegativePrefixPolicy.RequestedPrefix,
            },
            MapResolver = new MapResolverOptions(),
        }, system, new Random(9));
        var msA = MsNode(a);
        var msB = MsNode(b);
        var etr = new ControlNode(new ControlNodeOptions
        {
            Etr = new EtrOptions { Key = Key, Database = [new DatabaseMapping(E("[0]1.1.1.1/32"), [Loc("172.17.0.3")])] },
        }, system, new Random(10));
        var itr = new ControlNode(new ControlNodeOptions { Itr = new ItrOptions { Rlocs = [IPAddress.Parse("172.17.0.4")] } }, system, new Random(11));
        var net = new InMemoryNetwork();
        net.Add(a, msA);
        net.Add(b, msB);
        net.Add(Ep("172.17.0.3:4342"), etr);
        net.Add(Ep("172.17.0.4:4342"), itr);

        net.Tick(etr, T0);
        Assert.Single(msA.MapServer!.Registrations(T0));
        Assert.Single(msB.MapServer!.Registrations(T0));

        net.Unreachable.Add(a);
        net.Run(itr, itr.Request(E("[0]1.1.1.1/32"), T0), T0);
        Assert.False(itr.Itr!.TryLookup(IPAddress.Parse("1.1.1.1"), 0, T0, out _));
        net.Tick(itr, T0.AddSeconds(1));
        Assert.True(itr.Itr.TryLookup(IPAddress.Parse("1.1.1.1"), 0, T0.AddSeconds(1), out var entry));
        Assert.Equal("172.17.0.3", entry!.Locators[0].Locator.ToText());

        // Not registered anywhere: a host-length negative, not a wide one that could hide another set's EIDs.
        net.Run(itr, itr.Request(E("[0]5.5.5.5/32"), T0.AddSeconds(2)), T0.AddSeconds(2));
        net.Tick(itr, T0.AddSeconds(3));
        Assert.True(itr.Itr.TryLookup(IPAddress.Parse("5.5.5.5"), 0, T0.AddSeconds(3), out var neg));
        Assert.Equal("[0]5.5.5.5/32", neg!.Eid.ToString());
        Assert.Equal(TimeSpan.FromMinutes(1), neg.Ttl);
    }
}
