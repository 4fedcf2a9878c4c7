using System.Net;
using System.Text;
using CsCheck;
using Lisp.ControlPlane;
using Lisp.Wire;
using static Lisp.ControlPlane.Tests.H;

namespace Lisp.ControlPlane.Tests;

public class NegativeReplyTests
{
    private const string Key = "k";

    private static MapServer ServerWith(IEnumerable<SiteConfig> sites, NegativePrefixPolicy policy = NegativePrefixPolicy.LeastSpecificUncovered)
        => new(new MapServerOptions { Sites = sites.ToList(), NegativePrefix = policy });

    private static void Reg(MapServer ms, params string[] eids)
    {
        var reg = Register(1, AuthAlgorithm.HmacSha256_128, eids.Select(e => Rec(e, "192.0.2.1")).ToArray()) with { WantMapNotify = false };
        var bytes = reg.ToSignedBytes(Encoding.UTF8.GetBytes(Key));
        ms.HandleMapRegister(Decode<MapRegister>(bytes), Packet(bytes, "10.0.0.2:4342"), T0);
        Assert.Equal(eids.Length, ms.Registrations(T0).Count);
    }

    [Fact]
    public void Ipv4_no_site_covers_least_specific_around_registered_16()
    {
        // 10.2.3.4 vs 10.1.0.0: second bytes 00000010 / 00000001 share 6 bits -> 14 common bits -> /15.
        var ms = ServerWith([new SiteConfig("s", Key, [E("[0]10.1.0.0/16")])]);
        Reg(ms, "[0]10.1.0.0/16");
        var rec = ms.Negative(E("[0]10.2.3.4/32"), T0);
        Assert.Equal("[0]10.2.0.0/15", rec.Eid.ToString());
        Assert.Equal(TimeSpan.FromMinutes(15), rec.Ttl);
        Assert.Equal(MapReplyAction.NativelyForward, rec.Action);
        Assert.True(rec.IsNegative);
    }

    [Fact]
    public void Ipv4_site_covers_but_not_registered_one_minute()
    {
        var ms = ServerWith([new SiteConfig("s", Key, [E("[0]0.0.0.0/0")]) { AcceptMoreSpecifics = true }]);
        Reg(ms, "[0]10.1.0.0/16", "[0]10.3.0.0/16");
        // 10.3.0.0 shares 15 bits with 10.2.3.4 -> /16.
        var rec = ms.Negative(E("[0]10.2.3.4/32"), T0);
        Assert.Equal("[0]10.2.0.0/16", rec.Eid.ToString());
        Assert.Equal(TimeSpan.FromMinutes(1), rec.Ttl);
        // 192.168.1.1 shares no leading bit with 10.x -> 128.0.0.0/1.
        Assert.Equal("[0]128.0.0.0/1", ms.Negative(E("[0]192.168.1.1/32"), T0).Eid.ToString());
        // 11.0.0.1 = 00001011 vs 00001010: 7 common bits -> 11.0.0.0/8.
        Assert.Equal("[0]11.0.0.0/8", ms.Negative(E("[0]11.0.0.1/32"), T0).Eid.ToString());
    }

    [Fact]
    public void Configured_prefix_elsewhere_is_an_obstacle_and_covering_site_bounds_the_answer()
    {
        var ms = ServerWith([new SiteConfig("a", Key, [E("[0]10.0.0.0/8")]), new SiteConfig("b", Key, [E("[0]10.128.0.0/9")])]);
        // Site a covers 10.1.1.1 (min length 8); site b's 10.128/9 is an obstacle: 10.1 vs 10.128 share 8 bits -> /9.
        var rec = ms.Negative(E("[0]10.1.1.1/32"), T0);
        Assert.Equal("[0]10.0.0.0/9", rec.Eid.ToString());
        Assert.Equal(TimeSpan.FromMinutes(1), rec.Ttl);
    }

    [Fact]
    public void Ipv6_least_specific()
    {
        var ms = ServerWith([new SiteConfig("s", Key, [E("[0]2001:db8::/32")])]);
        Reg(ms, "[0]2001:db8::/32");
        // 2001:0db9 vs 2001:0db8 differ in bit 31 -> 31 common bits -> /32.
        Assert.Equal("[0]2001:db9::/32", ms.Negative(E("[0]2001:db9::1/128"), T0).Eid.ToString());
        // 0x3000 vs 0x2001: 0011 / 0010 -> 3 common bits -> /4.
        Assert.Equal("[0]3000::/4", ms.Negative(E("[0]3000::1/128"), T0).Eid.ToString());
        // 2001:0db8 vs 2001:0da8: 16 bits, then 0x0d (8 bits), then 0xb8 / 0xa8 = 1011 / 1010 share 3 -> 27 -> /28.
        Assert.Equal("[0]2001:da0::/28", ms.Negative(E("[0]2001:da8::1/128"), T0).Eid.ToString());
    }

    [Fact]
    public void Instance_ids_do_not_mix()
    {
        var ms = ServerWith([new SiteConfig("s", Key, [E("[1]10.0.0.0/8")]) { AcceptMoreSpecifics = true }]);
        Reg(ms, "[1]10.1.0.0/16");
        var rec = ms.Negative(E("[2]10.1.2.3/32"), T0);
        Assert.Equal("[2]0.0.0.0/0", rec.Eid.ToString());
        Assert.Equal(TimeSpan.FromMinutes(15), rec.Ttl);
        Assert.Equal("[1]10.0.0.0/16", ms.Negative(E("[1]10.0.2.3/32"), T0).Eid.ToString());
    }

    [Fact]
    public void Non_ip_eid_is_answered_as_itself()
    {
        var ms = ServerWith([new SiteConfig("s", Key, [E("[0]'dino'")])]);
        Assert.Equal("[0]'nobody'", ms.Negative(E("[0]'nobody'"), T0).Eid.ToString());
        Assert.Equal("[0]0000-1111-2222/48", ms.Negative(E("[0]0000-1111-2222/48"), T0).Eid.ToString());
        Assert.Equal("[0](1.1.1.1/32, 224.1.1.1/32)", ms.Negative(E("[0](1.1.1.1/32, 224.1.1.1/32)"), T0).Eid.ToString());
    }

    [Fact]
    public void Capped_policies_for_decent_pull()
    {
        var sites = new[] { new SiteConfig("s", Key, [E("[0]0.0.0.0/0")]) { AcceptMoreSpecifics = true } };
        var host = ServerWith(sites, NegativePrefixPolicy.HostLength);
        Assert.Equal("[0]10.2.3.4/32", host.Negative(E("[0]10.2.3.4/32"), T0).Eid.ToString());
        Assert.Equal("[0]10.2.0.0/32", host.Negative(E("[0]10.2.0.0/16"), T0).Eid.ToString());
        var req = ServerWith(sites, NegativePrefixPolicy.RequestedPrefix);
        Reg(req, "[0]10.1.0.0/16");
        Assert.Equal("[0]10.2.3.4/32", req.Negative(E("[0]10.2.3.4/32"), T0).Eid.ToString());
        Assert.Equal("[0]192.168.0.0/16", req.Negative(E("[0]192.168.0.0/16"), T0).Eid.ToString());
        // Asked for 10.0.0.0/8 while 10.1.0.0/16 is registered inside it: narrowed to 10.0.0.0/16.
        Assert.Equal("[0]10.0.0.0/16", req.Negative(E("[0]10.0.0.0/8"), T0).Eid.ToString());
    }

    [Theory]
    [InlineData("10.2.3.4", "10.1.0.0", 14)]
    [InlineData("10.0.0.0", "10.0.0.0", 32)]
    [InlineData("0.0.0.0", "128.0.0.0", 0)]
    [InlineData("2001:db8::", "2001:db9::", 31)]
    [InlineData("::1", "::", 127)]
    [InlineData("10.0.0.1", "2001::", 0)]
    public void Common_prefix_length(string a, string b, int expected) =>
        Assert.Equal(expected, PrefixMath.CommonPrefixLength(IPAddress.Parse(a), IPAddress.Parse(b)));

    [Fact]
    public void Least_specific_uncovered_matches_a_naive_oracle()
    {
        var genPrefix = Gen.Select(Gen.UInt, Gen.Int[0, 32], (a, l) => EidPrefix.Create(0, new IpAddress(new IPAddress(BitConverter.GetBytes(a))), l).Canonical());
        Gen.Select(Gen.UInt, genPrefix.Array[0, 6]).Sample((addr, obstacles) =>
        {
            var eid = EidPrefix.Create(0, new IpAddress(new IPAddress(BitConverter.GetBytes(addr))), 32);
            var relevant = obstacles.Where(o => !o.Covers(eid)).ToList();
            var got = PrefixMath.LeastSpecificUncovered(eid, obstacles);
            Assert.True(got.Covers(eid));
            Assert.DoesNotContain(relevant, o => PrefixMath.Overlaps(o, got));
            if (got.MaskLength > 0)
            {
                var wider = EidPrefix.Create(0, eid.Inner, got.MaskLength - 1).Canonical();
                Assert.Contains(relevant, o => PrefixMath.Overlaps(o, wider));
            }
        }, iter: 2000);
    }
}
