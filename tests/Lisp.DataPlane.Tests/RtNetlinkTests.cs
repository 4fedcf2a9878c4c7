using System.Net;
using Lisp.DataPlane;
using Xunit;

namespace Lisp.DataPlane.Tests;

/// <summary>
/// The rtnetlink requests that configure the TUN (issue 13: no `ip` subprocess). Expected bytes are written out by
/// hand from the kernel's UAPI struct layouts (linux/netlink.h, rtnetlink.h, if_addr.h; little endian), field by
/// field, not produced by the code under test. The kernel then accepts them in a namespace the test creates, and
/// what it reports (`ip -n NS addr/route/link show`) is what was asked for.
/// </summary>
public sealed class RtNetlinkTests
{
    private static byte[] Hex(string s) => Convert.FromHexString(s.Replace(" ", "", StringComparison.Ordinal).Replace("|", "", StringComparison.Ordinal));

    [Fact]
    public void Link_up_with_mtu_is_byte_exact()
    {
        var expected = Hex(
            "28000000 1000 0500 01000000 00000000 |" +   // nlmsghdr: len 40, RTM_NEWLINK 16, REQUEST|ACK, seq 1, port 0
            "00 00 0000 07000000 01000000 01000000 |" +  // ifinfomsg: AF_UNSPEC, type 0, ifindex 7, flags IFF_UP, change IFF_UP
            "0800 0400 78050000");                       // IFLA_MTU (4) = 1400
        Assert.Equal(expected, RtNetlinkMessages.LinkUp(7, 1400, 1));
    }

    [Fact]
    public void Gso_max_segs_is_byte_exact()
    {
        var expected = Hex(
            "28000000 1000 0500 09000000 00000000 |" +   // nlmsghdr: len 40, RTM_NEWLINK 16, REQUEST|ACK, seq 9, port 0
            "00 00 0000 07000000 00000000 00000000 |" +  // ifinfomsg: AF_UNSPEC, ifindex 7, flags 0, change 0 (link state untouched)
            "0800 2800 2c000000");                       // IFLA_GSO_MAX_SEGS (40) = 44
        Assert.Equal(expected, RtNetlinkMessages.SetGsoMaxSegments(7, 44, 9));
    }

    [Fact]
    public void Noqueue_root_qdisc_is_byte_exact()
    {
        // The fields are those of iproute2's own request for `tc qdisc replace dev t0 root noqueue`, as strace decoded
        // it (nlmsg_len 48, RTM_NEWQDISC, REQUEST|ACK|REPLACE|CREATE, tcm_family AF_UNSPEC, tcm_handle 0,
        // tcm_parent 4294967295, TCA_KIND "noqueue\0" in a 12-byte attribute), with ifindex 7 and sequence 8.
        var expected = Hex(
            "30000000 2400 0505 08000000 00000000 |" +   // nlmsghdr: len 48, RTM_NEWQDISC 36, REQUEST|ACK|REPLACE|CREATE, seq 8
            "00 00 0000 07000000 00000000 ffffffff 00000000 |" + // tcmsg: AF_UNSPEC, pads, ifindex 7, handle 0, parent TC_H_ROOT, info 0
            "0c00 0100 6e6f717565756500");               // TCA_KIND (1) = "noqueue" and its NUL
        Assert.Equal(expected, RtNetlinkMessages.ReplaceRootQdisc(7, "noqueue", 8));
        Assert.Throws<ArgumentException>(() => RtNetlinkMessages.ReplaceRootQdisc(7, "", 8));
        Assert.Throws<ArgumentException>(() => RtNetlinkMessages.ReplaceRootQdisc(7, "no queue", 8));
        Assert.Throws<ArgumentException>(() => RtNetlinkMessages.ReplaceRootQdisc(7, "sixteen_letters_", 8));
        // A kind with an underscore: TCA_KIND "fq_codel\0" is 4 + 9 bytes, padded to 16, so the message is 16 + 20 + 16.
        var fq = RtNetlinkMessages.ReplaceRootQdisc(7, "fq_codel", 8);
        Assert.Equal(Hex("34000000 2400 0505 08000000 00000000 | 00 00 0000 07000000 00000000 ffffffff 00000000 | 0d00 0100 66715f636f64656c 00 000000"), fq);
    }

    [Fact]
    public void Ipv4_address_is_byte_exact()
    {
        var expected = Hex(
            "28000000 1400 0505 02000000 00000000 |" +   // len 40, RTM_NEWADDR 20, REQUEST|ACK|REPLACE|CREATE (0x505), seq 2
            "02 20 00 00 07000000 |" +                   // ifaddrmsg: AF_INET, /32, flags 0, scope universe, ifindex 7
            "0800 0200 0a010001 |" +                     // IFA_LOCAL 10.1.0.1
            "0800 0100 0a010001");                       // IFA_ADDRESS 10.1.0.1
        Assert.Equal(expected, RtNetlinkMessages.AddAddress(7, IPAddress.Parse("10.1.0.1"), 32, 2));
    }

    [Fact]
    public void Ipv6_address_without_dad_is_byte_exact()
    {
        var expected = Hex(
            "48000000 1400 0505 03000000 00000000 |" +   // len 72
            "0a 80 02 00 07000000 |" +                   // AF_INET6, /128, IFA_F_NODAD in the 8-bit flags too, ifindex 7
            "1400 0200 fd000001000000000000000000000001 |" + // IFA_LOCAL fd00:1::1 (len 20)
            "1400 0100 fd000001000000000000000000000001 |" + // IFA_ADDRESS
            "0800 0800 02000000");                       // IFA_FLAGS (8) = IFA_F_NODAD
        Assert.Equal(expected, RtNetlinkMessages.AddAddress(7, IPAddress.Parse("fd00:1::1"), 128, 3));
    }

    [Fact]
    public void Routes_are_byte_exact()
    {
        var v4 = Hex(
            "2c000000 1800 0505 04000000 00000000 |" +   // len 44, RTM_NEWROUTE 24
            "02 18 00 00 fe 03 fd 01 00000000 |" +       // AF_INET, dst /24, src 0, tos 0, main table 254, proto boot 3, scope link 253, unicast 1, flags 0
            "0800 0100 0a020000 |" +                     // RTA_DST 10.2.0.0
            "0800 0400 07000000");                       // RTA_OIF 7
        Assert.Equal(v4, RtNetlinkMessages.ReplaceRoute(7, IPAddress.Parse("10.2.0.0"), 24, 4));
        var v6 = Hex(
            "38000000 1800 0505 05000000 00000000 |" +   // len 56: 16 + rtmsg 12 + RTA_DST 20 + RTA_OIF 8
            "0a 40 00 00 fe 03 00 01 00000000 |" +       // AF_INET6, /64, scope universe
            "1400 0100 fd000002000000000000000000000000 |" +
            "0800 0400 07000000");
        Assert.Equal(v6, RtNetlinkMessages.ReplaceRoute(7, IPAddress.Parse("fd00:2::"), 64, 5));
        var defaultRoute = Hex("24000000 1800 0505 06000000 00000000 | 02 00 00 00 fe 03 fd 01 00000000 | 0800 0400 07000000");
        Assert.Equal(defaultRoute, RtNetlinkMessages.ReplaceRoute(7, IPAddress.Any, 0, 6));
    }

    [Fact]
    public void Acks_and_errors_are_read_and_anything_else_is_refused_without_reading_past_the_bytes()
    {
        // NLMSG_ERROR (2), len 36, seq 4: error 0 (the acknowledgement), then the request's header echoed.
        var ack = Hex("24000000 0200 0001 04000000 99000000 | 00000000 | 2c000000 1800 0505 04000000 00000000");
        Assert.True(RtNetlinkMessages.TryReadAck(ack, 4, out int error, out int consumed));
        Assert.Equal(0, error);
        Assert.Equal(36, consumed);
        // error -17 (EEXIST) for the same request.
        var refused = Hex("24000000 0200 0001 04000000 99000000 | efffffff | 2c000000 1800 0505 04000000 00000000");
        Assert.True(RtNetlinkMessages.TryReadAck(refused, 4, out error, out _));
        Assert.Equal(17, error);
        // Another request's ack, another message type, a length past the bytes, a short buffer.
        Assert.False(RtNetlinkMessages.TryReadAck(ack, 5, out _, out consumed));
        Assert.Equal(36, consumed);
        Assert.False(RtNetlinkMessages.TryReadAck(Hex("14000000 1000 0000 04000000 00000000 00000000"), 4, out _, out _));
        Assert.False(RtNetlinkMessages.TryReadAck(ack[..20], 4, out _, out _));
        Assert.False(RtNetlinkMessages.TryReadAck(ack[..10], 4, out _, out _));
        var rng = new Random(9);
        var buf = new byte[64];
        for (int i = 0; i < 20_000; i++)
        {
            rng.NextBytes(buf);
            int n = rng.Next(buf.Length + 1);
            if (rng.Next(2) == 0 && n >= 4) BitConverter.TryWriteBytes(buf.AsSpan(0, 4), (uint)rng.Next(n + 8));
            RtNetlinkMessages.TryReadAck(buf.AsSpan(0, n), 4, out _, out consumed);
            Assert.InRange(consumed, 0, n);
        }
    }

    [SkippableFact]
    public void The_kernel_takes_them_on_a_tun_in_a_namespace_and_reports_what_was_asked()
    {
        using var ns = TestNamespace.Create();
        const string name = "ldpnl0";
        string? failure = null;
        ns.Run(() =>
        {
            using var tun = LinuxTun.Open(name, 1)[0];
            int ifindex = (int)LinuxTun.InterfaceIndex(name);
            Assert.NotEqual(0, ifindex);
            using var nl = new RtNetlinkSocket();
            void Do(Func<uint, byte[]> build, string what)
            {
                uint seq = nl.NextSequence();
                nl.Request(build(seq), seq, what);
            }
            // Twice each: create-or-replace, so configuring an already configured TUN succeeds.
            for (int round = 0; round < 2; round++)
            {
                Do(s => RtNetlinkMessages.LinkUp(ifindex, 1380, s), "link");
                Do(s => RtNetlinkMessages.SetGsoMaxSegments(ifindex, 44, s), "gso_max_segs");
                Do(s => RtNetlinkMessages.ReplaceRootQdisc(ifindex, "noqueue", s), "qdisc");
                Do(s => RtNetlinkMessages.AddAddress(ifindex, IPAddress.Parse("10.1.0.1"), 32, s), "v4 address");
                Do(s => RtNetlinkMessages.AddAddress(ifindex, IPAddress.Parse("fd00:1::1"), 128, s), "v6 address");
                Do(s => RtNetlinkMessages.ReplaceRoute(ifindex, IPAddress.Parse("10.2.0.0"), 24, s), "v4 route");
                Do(s => RtNetlinkMessages.ReplaceRoute(ifindex, IPAddress.Parse("fd00:2::"), 64, s), "v6 route");
            }
            // A refusal names the kernel's reason: a device index that does not exist.
            var e = Assert.Throws<IOException>(() => Do(s => RtNetlinkMessages.AddAddress(ifindex + 1000, IPAddress.Parse("10.9.0.1"), 32, s), "bad device"));
            failure = e.Message.Contains("bad device", StringComparison.Ordinal) && e.Message.Contains("errno", StringComparison.Ordinal) ? null : $"unexpected error text: {e.Message}";

            var link = NetnsTests.Sh($"ip -n {ns.Name} link show dev {name}").Out;
            Assert.Contains("mtu 1380", link);
            Assert.Matches(@"<[^>]*\bUP\b", link);
            Assert.Contains("gso_max_segs 44 ", NetnsTests.Sh($"ip -d -n {ns.Name} link show dev {name}").Out);
            Assert.Contains(" qdisc noqueue ", link);
            var addr = NetnsTests.Sh($"ip -n {ns.Name} addr show dev {name}").Out;
            Assert.Contains("inet 10.1.0.1/32", addr);
            Assert.Contains("inet6 fd00:1::1/128", addr);
            Assert.DoesNotContain("tentative", addr);   // no duplicate address detection
            Assert.Contains($"10.2.0.0/24 dev {name}", NetnsTests.Sh($"ip -n {ns.Name} route show").Out);
            Assert.Contains($"fd00:2::/64 dev {name}", NetnsTests.Sh($"ip -n {ns.Name} -6 route show").Out);
        });
        Assert.Null(failure);
    }
}
