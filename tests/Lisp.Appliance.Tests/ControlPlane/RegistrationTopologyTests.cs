using System.Text;
using System.Text.RegularExpressions;
using Lisp.Appliance.Tests.Support;
using Lisp.TestSupport;
using Lisp.Wire;

namespace Lisp.Appliance.Tests.ControlPlane;

/// <summary>
/// MS/MR on 127.0.20.1, ETR "a" (HMAC-SHA-1: IPv4, IPv6, name, MAC in instance 1000) on .2, ETR "b"
/// (HMAC-SHA-256: (S,G), E.164 and geo in instance 1000) on .3; tests add an ITR (.4), a wrong-key ETR (.5)
/// and a raw socket (.9).
/// </summary>
public sealed class RegistrationTopologyFixture : IDisposable
{
    public const string Net = "127.0.20";

    /// <summary>(EID as configured, canonical text, registering host, TTL seconds, RLOCs as "addr p w").</summary>
    public static readonly (string Eid, int Host, int TtlSeconds, string[] Rlocs)[] Eids =
    [
        ("[0]10.20.1.0/24", 2, 3, ["127.0.20.2 1 60", "127.0.20.12 2 40"]),
        ("[0]2001:db8:20:1::/64", 2, 3, ["127.0.20.2 3 70"]),
        ("[0]'printer-20'", 2, 3, ["127.0.20.2 1 100"]),
        ("[1000]0000-1111-2222/48", 2, 3, ["127.0.20.2 1 100"]),
        ("[0](10.20.9.1/32, 224.20.1.1/32)", 3, 180, ["127.0.20.3 5 50", "127.0.20.13 5 50"]),
        ("[1000]+14087182001/64", 3, 180, ["127.0.20.3 1 100"]),
        ("[1000]48-51-12-N-2-20-55-E/100", 3, 180, ["127.0.20.3 1 100"]),
    ];

    public RegistrationTopologyFixture()
    {
        Topology = new Topology(Net);
        try
        {
            MapServer = Topology.StartNode("ms", NodeToml.MapServer("ms-20", "127.0.20.1", registrationTimeout: "5s", sites:
            [
                new("site-a", "key-a-20", "[0]10.20.0.0/16", "[0]2001:db8:20::/48", "[0]'printer-20'", "[1000]0000-1111-2222/48"),
                new("site-b", "key-b-20", "[0](10.20.9.1/32, 224.20.1.1/32)", "[1000]+14087182001/64", "[1000]48-51-12-N-2-20-55-E/100") { AcceptMoreSpecifics = false },
            ]));
            EtrA = Topology.StartNode("etr-a", NodeToml.Etr("etr-a-20", "127.0.20.2", "127.0.20.1", "key-a-20", algorithm: "hmac-sha1", recordTtl: "3s", database:
            [
                new("[0]10.20.1.0/24", [new("127.0.20.2", 1, 60), new("127.0.20.12", 2, 40)]),
                new("[0]2001:db8:20:1::/64", [new("127.0.20.2", 3, 70)]),
                new("[0]'printer-20'"),
                new("[1000]0000-1111-2222/48"),
            ]));
            EtrB = Topology.StartNode("etr-b", NodeToml.Etr("etr-b-20", "127.0.20.3", "127.0.20.1", "key-b-20", algorithm: "hmac-sha256", database:
            [
                new("[0](10.20.9.1/32, 224.20.1.1/32)", [new("127.0.20.3", 5, 50), new("127.0.20.13", 5, 50)]),
                new("[1000]+14087182001/64"),
                new("[1000]48-51-12-N-2-20-55-E/100"),
            ]));
            foreach (var (eid, _, _, _) in Eids)
            {
                MapServer.WaitForLine(@"registration-accepted .*" + Regex.Escape(Canonical(eid) + " registered"), TimeSpan.FromSeconds(20));
            }
        }
        catch
        {
            Topology.Dispose();
            throw;
        }
    }

    public Topology Topology { get; }
    public ApplianceProcess MapServer { get; }
    public ApplianceProcess EtrA { get; }
    public ApplianceProcess EtrB { get; }

    public static string Canonical(string eid) => EidPrefix.Parse(eid).ToString();

    public void Dispose() => Topology.Dispose();
}

public sealed class RegistrationTopologyTests(RegistrationTopologyFixture f) : IClassFixture<RegistrationTopologyFixture>
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(15);
    private Topology T => f.Topology;

    public static TheoryData<int> EidIndexes()
    {
        var d = new TheoryData<int>();
        for (int i = 0; i < RegistrationTopologyFixture.Eids.Length; i++) d.Add(i);
        return d;
    }

    [Fact]
    public void EveryEidIsRegisteredAtTheMapServerWithItsRlocsAndEachEtrGetsMapNotify()
    {
        foreach (var (eid, host, _, rlocs) in RegistrationTopologyFixture.Eids)
        {
            var line = f.MapServer.WaitForLine(@"registration-accepted .*" + Regex.Escape(RegistrationTopologyFixture.Canonical(eid) + " registered"), Wait);
            Assert.Contains($"registered by {T.Endpoint(host)}", line, StringComparison.Ordinal);
            Assert.Contains("with RLOCs " + string.Join(", ", rlocs.Select(r => r.Split(' ')[0])), line, StringComparison.Ordinal);
            Assert.Contains(host == 2 ? "site 'site-a'" : "site 'site-b'", line, StringComparison.Ordinal);
        }
        f.EtrA.WaitForLine(@"map-notify-accepted .*registered \[0\]10\.20\.1\.0/24", Wait);
        f.EtrB.WaitForLine(@"map-notify-accepted .*registered \[0\]\(10\.20\.9\.1/32, 224\.20\.1\.1/32\)", Wait);
        Assert.False(f.MapServer.Any("registration-rejected"), f.MapServer.Output);
    }

    [Theory]
    [MemberData(nameof(EidIndexes))]
    public void LigResolvesEveryEidKind(int index)
    {
        var (eid, host, ttl, rlocs) = RegistrationTopologyFixture.Eids[index];
        // Ask for a host inside IP prefixes (longest match at the map-server), the EID itself otherwise.
        string ask = eid switch
        {
            "[0]10.20.1.0/24" => "10.20.1.77",
            "[0]2001:db8:20:1::/64" => "[0]2001:db8:20:1::99/128",
            _ => eid,
        };
        var reply = T.LigUntil(ask, 1, r => r.IsPositive, Wait);
        var rec = reply.Single;
        Assert.Equal(RegistrationTopologyFixture.Canonical(eid), rec.Eid);
        Assert.Equal("NoAction", rec.Action);
        Assert.Equal(ttl, rec.TtlSeconds);
        Assert.Equal(rlocs, rec.Rlocs.Select(l => $"{l.Address} {l.Priority} {l.Weight}").ToArray());
        Assert.All(rec.Rlocs, l => Assert.True(l.Up));
        Assert.Equal(T.Endpoint(1), reply.From);
        _ = host;
    }

    [Theory]
    [InlineData("10.20.200.1", 60)]                  // inside site-a's prefix, nothing registered: 1 minute
    [InlineData("[0]2001:db8:20:ff::1/128", 60)]
    [InlineData("[0]'nobody-20'", 900)]             // no site configures it: 15 minutes
    [InlineData("99.20.1.1", 900)]
    [InlineData("[1000]0000-1111-9999/48", 900)]
    public void UnregisteredEidGetsANegativeReply(string eid, int ttlSeconds)
    {
        var reply = T.Lig(eid, 1);
        var rec = reply.Single;
        Assert.True(reply.IsNegative, reply.Raw);
        Assert.Empty(rec.Rlocs);
        Assert.Equal("NativelyForward", rec.Action);
        Assert.Equal(ttlSeconds, rec.TtlSeconds);
        Assert.True(EidPrefix.Parse(rec.Eid).Canonical().Covers(EidPrefix.Parse(eid).Canonical()), $"negative prefix {rec.Eid} does not cover {eid}");
        // It must not cover any registered EID of the same kind.
        foreach (var (registered, _, _, _) in RegistrationTopologyFixture.Eids)
        {
            Assert.False(EidPrefix.Parse(rec.Eid).Canonical().Covers(EidPrefix.Parse(registered).Canonical()), $"{rec.Eid} covers registered {registered}");
        }
    }

    [Fact]
    public void EtrWithAWrongKeyIsRejectedAndNeverGetsAMapNotify()
    {
        int before = f.MapServer.Count(@"registration-rejected .*127\.0\.20\.5:");
        var etr = T.StartNode("etr-wrong-key", NodeToml.Etr("etr-wrong-20", "127.0.20.5", "127.0.20.1", "not-the-site-key", nodeRlocs: false,
            database: [new("[0]10.20.5.0/24", [new("127.0.20.5")])]));
        // Three register rounds, each rejected for authentication, none accepted, no Map-Notify back.
        f.MapServer.WaitForCount(@"registration-rejected auth-failure: Map-Register from 127\.0\.20\.5:\d+ for \[0\]10\.20\.5\.0/24: authentication failed", before + 3, Wait);
        Assert.False(f.MapServer.Any(@"registration-accepted .*\[0\]10\.20\.5\.0/24"), f.MapServer.Output);
        Assert.False(etr.Any("map-notify-accepted"), etr.Output);
        Assert.False(etr.Any("map-notify-rejected"), "the map-server sent a Map-Notify for a rejected Map-Register:\n" + etr.Output);
        var reply = T.Lig("10.20.5.1", 1);
        Assert.True(reply.IsNegative, reply.Raw);
        etr.Stop();
    }

    [Theory]
    [InlineData(AuthAlgorithm.HmacSha1_96)]
    [InlineData(AuthAlgorithm.HmacSha256_128)]
    public void HandBuiltMapRegisterWithAWrongKeyGetsNoMapNotifyAtAll(AuthAlgorithm algorithm)
    {
        using var socket = new TestSocket(T.Address(9));
        var ms = T.IpEndpoint(1);
        var eid = EidPrefix.Parse(algorithm == AuthAlgorithm.HmacSha1_96 ? "[0]10.20.61.0/24" : "[0]10.20.62.0/24");
        MapRegister Register(ulong nonce) => new()
        {
            Nonce = nonce, Algorithm = algorithm, WantMapNotify = true, ProxyReply = true,
            Records = [new MappingRecord(eid, [new LocatorRecord(new IpAddress(System.Net.IPAddress.Parse(T.Address(9))))], MappingRecord.TtlSecondsFlag | 3)],
        };

        // Control: the right key from the same socket gets its Map-Notify, so silence below means something.
        ulong goodNonce = 0x2020_0000_0000_0001UL + (ulong)algorithm;
        socket.Send(Register(goodNonce).ToSignedBytes(Encoding.UTF8.GetBytes("key-a-20")), ms);
        var notifyBytes = socket.Receive(TimeSpan.FromSeconds(5));
        Assert.NotNull(notifyBytes);
        Assert.True(ControlMessage.TryDecode(notifyBytes, out var msg).IsOk);
        var notify = Assert.IsType<MapNotify>(msg);
        Assert.Equal(goodNonce, notify.Nonce);
        Assert.True(MessageAuthentication.Verify(notifyBytes, Encoding.UTF8.GetBytes("key-a-20")));
        // Drain Map-Notify retransmissions (we never ack) before listening for silence.
        while (socket.Receive(TimeSpan.FromMilliseconds(100)) is not null)
        {
        }

        int before = f.MapServer.Count(@"registration-rejected auth-failure: Map-Register from " + Regex.Escape(socket.Local.ToString()));
        ulong badNonce = 0x2020_0000_0000_0100UL + (ulong)algorithm;
        socket.Send(Register(badNonce).ToSignedBytes(Encoding.UTF8.GetBytes("a stranger's key")), ms);
        f.MapServer.WaitForCount(@"registration-rejected auth-failure: Map-Register from " + Regex.Escape(socket.Local.ToString()), before + 1, Wait);
        var sw = System.Diagnostics.Stopwatch.StartNew();
        while (sw.Elapsed < TimeSpan.FromSeconds(1.5))
        {
            var got = socket.Receive(TimeSpan.FromMilliseconds(200));
            if (got is null) continue;
            // Only a late retransmission of the good Map-Notify may show up; nothing may answer the bad nonce.
            Assert.True(ControlMessage.TryDecode(got, out var m).IsOk);
            Assert.True(m is MapNotify n && n.Nonce == goodNonce, $"got an answer to the wrong-key Map-Register: {m}");
        }
    }

    [Fact]
    public void ItrRequestInstallsMapCacheEntriesAndExpiresThemAtTheRecordTtl()
    {
        var itr = T.StartNode("itr", """
            [node]
            name = "itr-20"
            roles = ["itr"]
            listen = ["127.0.20.4"]
            rlocs = ["127.0.20.4"]
            control_port = {PORT}

            [mapping]
            map_resolvers = ["127.0.20.1"]

            [itr]
            request_timeout = "1s"
            request_retries = 3
            """, "--request", "[0]10.20.1.77/32", "--request", "[1000]+14087182001/64", "--request", "[0]10.20.222.1/32");
        var install = itr.WaitForLine(@"map-cache-install \[0\]10\.20\.1\.0/24 -> 127\.0\.20\.2 p1 w60, 127\.0\.20\.12 p2 w40, TTL 0\.05 min", Wait);
        var e164 = RegistrationTopologyFixture.Canonical("[1000]+14087182001/64");
        itr.WaitForLine(@"map-cache-install " + Regex.Escape(e164) + @" -> 127\.0\.20\.3 p1 w100, TTL 3 min", Wait);
        itr.WaitForLine(@"map-cache-install \[0\]10\.20\.\S+ negative \(NativelyForward\), TTL 1 min", Wait);

        // The 3 s record TTL (sent in lispers.net's seconds form) expires the entry on the ITR's own timer.
        var expire = itr.WaitForLine(@"map-cache-expire \[0\]10\.20\.1\.0/24 expired", Wait);
        var lived = LogLine.Time(expire) - LogLine.Time(install);
        Assert.InRange(lived.TotalSeconds, 2.5, 8);
        Assert.False(itr.Any("map-cache-expire " + Regex.Escape(e164)), "the 3-minute entry expired early:\n" + itr.Output);
        Assert.False(itr.Any("map-request-timeout"), itr.Output);
        itr.Stop();
    }
}
