using System.Buffers.Binary;
using System.Net;
using System.Text;
using Lisp.Load;
using Lisp.TestSupport;
using Lisp.Wire;

namespace Lisp.Appliance.Tests.Load;

/// <summary>The pure half of `lisp-decent load`: templates, patching, signing, matching, judging, histogram.</summary>
public sealed class LoadMessageTests
{
    private static readonly byte[] Key = Encoding.UTF8.GetBytes("load-test-key");

    private static LoadOptions Options(AuthAlgorithm alg = AuthAlgorithm.HmacSha256_128) => new()
    {
        Target = new IPEndPoint(IPAddress.Loopback, 4342),
        Bind = new IPEndPoint(IPAddress.Loopback, 0),
        Algorithm = alg,
        Key = Key,
    };

    private static byte[] SignedRegister(TemplateSet t, int i, ulong nonce)
    {
        var b = t[i].ToArray();
        using var signer = new MessageSigner(Key);
        LoadMessages.PatchRegister(b, nonce, signer);
        return b;
    }

    private static byte[] PatchedRequest(TemplateSet t, int i, ulong nonce, ushort port)
    {
        var b = t[i].ToArray();
        LoadMessages.PatchRequest(b, nonce, port);
        return b;
    }

    [Fact]
    public void EidRangeCountsUpPrefixesAndNames()
    {
        Assert.Equal("[0]10.0.0.0/32", EidRange.At(EidPrefix.Parse("[0]10.0.0.0/32"), 0).ToString());
        Assert.Equal("[0]10.0.1.44/32", EidRange.At(EidPrefix.Parse("[0]10.0.0.0/32"), 300).ToString());
        Assert.Equal("[5]10.0.3.0/24", EidRange.At(EidPrefix.Parse("[5]10.0.0.0/24"), 3).ToString());
        Assert.Equal("[7]2001:db8:0:2::/64", EidRange.At(EidPrefix.Parse("[7]2001:db8::/64"), 2).ToString());
        Assert.Equal("[0]'load-12'", EidRange.At(EidPrefix.Parse("[0]'load'"), 12).ToString());
        Assert.NotNull(EidRange.Check(EidPrefix.Parse("[0]255.255.255.0/32"), 1000));
        Assert.Null(EidRange.Check(EidPrefix.Parse("[0]255.255.255.0/32"), 256));
    }

    [Theory]
    [InlineData(AuthAlgorithm.HmacSha1_96)]
    [InlineData(AuthAlgorithm.HmacSha256_128)]
    public void RegisterTemplatesDecodeWithTheProjectDecoderAndVerify(AuthAlgorithm alg)
    {
        var eids = EidRange.Build(EidPrefix.Parse("[3]10.9.0.0/32"), 5);
        var t = LoadMessages.BuildRegisters(eids, 2, IPAddress.Parse("127.0.0.9"), Options(alg));
        Assert.Equal(3, t.Count);
        for (int i = 0; i < t.Count; i++)
        {
            var bytes = SignedRegister(t, i, 0x0102030400000000UL + (ulong)i);
            Assert.True(ControlMessage.TryDecode(bytes, out var m).IsOk);
            var reg = Assert.IsType<MapRegister>(m);
            Assert.Equal(0x0102030400000000UL + (ulong)i, reg.Nonce);
            Assert.True(reg.ProxyReply);
            Assert.True(reg.WantMapNotify);
            Assert.Equal(alg, reg.Algorithm);
            Assert.Equal(MessageAuthentication.FullLength(alg), reg.AuthData!.Length);
            Assert.True(MessageAuthentication.Verify(bytes, Key), "the project's verifier accepts our HMAC");
            Assert.False(MessageAuthentication.Verify(bytes, "other"u8));
            Assert.Equal(eids.Skip(2 * i).Take(2).Select(e => e.ToString()), reg.Records.Select(r => r.Eid.ToString()));
            Assert.All(reg.Records, r => Assert.Equal("127.0.0.9", Assert.Single(r.Locators).Locator.ToText()));
        }
    }

    [Theory]
    [InlineData("[0]10.1.0.0/32", "127.0.0.1")]
    [InlineData("[9]2001:db8::/128", "::1")]
    [InlineData("[0]'load'", "127.0.0.1")]
    public void RequestTemplatesDecodeAndInnerChecksumVerifies(string eidBase, string itr)
    {
        var eids = EidRange.Build(EidPrefix.Parse(eidBase), 4);
        var t = LoadMessages.BuildRequests(eids, IPAddress.Parse(itr));
        for (int i = 0; i < eids.Count; i++)
        {
            var bytes = PatchedRequest(t, i, 0xaabbccdd00000000UL | (uint)i, 40000);
            Assert.True(ControlMessage.TryDecode(bytes, out var m).IsOk);
            var ecm = Assert.IsType<EncapsulatedControlMessage>(m);
            var mr = Assert.IsType<MapRequest>(ecm.Message);
            Assert.Equal(0xaabbccdd00000000UL | (uint)i, mr.Nonce);
            Assert.Equal(eids[i].ToString(), Assert.Single(mr.Records).ToString());
            Assert.Equal(itr, Assert.Single(mr.ItrRlocs).ToText());
            Assert.Equal(40000, ecm.Inner.SourcePort);
            Assert.Equal(4342, ecm.Inner.DestinationPort);
            // The checksum we patched equals the one the project's own header writer computes.
            var fresh = new EncapsulatedControlMessage(ecm.Inner with { UdpChecksum = null }, mr).ToBytes();
            Assert.Equal(Convert.ToHexString(fresh), Convert.ToHexString(bytes));
        }
    }

    [SkippableFact]
    public void TemplatesDecodeCleanlyWithTshark()
    {
        Tshark.SkipIfMissing();
        var v4 = EidRange.Build(EidPrefix.Parse("[0]10.2.0.0/32"), 2);
        var named = EidRange.Build(EidPrefix.Parse("[7]'load'"), 1);
        var r1 = SignedRegister(LoadMessages.BuildRegisters(v4, 2, IPAddress.Parse("127.0.0.2"), Options()), 0, 0x1111);
        var r2 = SignedRegister(LoadMessages.BuildRegisters(named, 1, IPAddress.Parse("127.0.0.2"), Options(AuthAlgorithm.HmacSha1_96)), 0, 0x2222);
        var q4 = PatchedRequest(LoadMessages.BuildRequests(v4, IPAddress.Parse("127.0.0.3")), 1, 0x3333, 41000);
        var q6 = PatchedRequest(LoadMessages.BuildRequests(EidRange.Build(EidPrefix.Parse("[0]2001:db8::1/128"), 1), IPAddress.Parse("::1")), 0, 0x4444, 41001);
        var ps = Tshark.DecodeControl(r1, r2, q4, q6);
        foreach (var p in ps) Assert.True(p.Problems().Count == 0, string.Join("; ", p.Problems()) + "\n" + p.Dump());

        Assert.Equal("3", ps[0].One("lisp.type"));
        Assert.Equal(("1", "1"), (ps[0].One("lisp.mreg.flags.pmr"), ps[0].One("lisp.mreg.flags.wmn")));
        Assert.Equal(2, ps[0].Number("lisp.records"));
        Assert.Equal(32, ps[0].Number("lisp.authlen"));
        Assert.Equal("0x0000000000001111", ps[0].One("lisp.nonce"));
        Assert.Equal(["10.2.0.0", "10.2.0.1"], ps[0].All("lisp.mapping.eid.ipv4"));
        Assert.Equal(["127.0.0.2", "127.0.0.2"], ps[0].All("lisp.loc.locator"));
        Assert.Equal(20, ps[1].Number("lisp.authlen"));
        Assert.Equal("load-0", ps[1].One("lisp.lcaf.iid.dn") is { } dn ? dn : ps[1].One("lisp.mapping.eid.dn"));

        Assert.Equal(["8", "1"], ps[2].All("lisp.type"));
        Assert.Equal("Good", ps[2].Fields.Last(f => f.Name == "udp.checksum.status").ShowName.Split(": ")[1]);
        Assert.Equal("Good", ps[2].Fields.Last(f => f.Name == "ip.checksum.status").ShowName.Split(": ")[1]);
        Assert.Equal("0x0000000000003333", ps[2].One("lisp.nonce"));
        Assert.Equal("10.2.0.1", ps[2].One("lisp.mreq.record.prefix.ipv4"));
        Assert.Equal(["4342", "41000"], ps[2].All("udp.srcport"));
        Assert.Equal("Good", ps[3].Fields.Last(f => f.Name == "udp.checksum.status").ShowName.Split(": ")[1]);
        Assert.Equal("2001:db8::1", ps[3].One("lisp.mreq.record.prefix.ipv6"));
    }

    [Fact]
    public void SinkAnswersDecodeAndAreJudgedPositiveAndAcksVerify()
    {
        var eids = EidRange.Build(EidPrefix.Parse("[4]10.3.0.0/32"), 3);
        var req = PatchedRequest(LoadMessages.BuildRequests(eids, IPAddress.Loopback), 2, 0x77, 40000);
        var rloc = new IpAddress(IPAddress.Parse("127.0.0.5")).ToBytes();
        var reply = new byte[512];
        int n = LoadMessages.SinkMapReply(req, rloc, reply);
        Assert.True(n > 0);
        Assert.True(ControlMessage.TryDecode(reply.AsSpan(0, n), out var m).IsOk);
        var mr = Assert.IsType<MapReply>(m);
        Assert.Equal(0x77UL, mr.Nonce);
        Assert.Equal(eids[2].ToString(), Assert.Single(mr.Records).Eid.ToString());
        Assert.Equal(ReplyOutcome.Positive, LoadMessages.ClassifyMapReply(reply.AsSpan(0, n), eids[2], IPAddress.Parse("127.0.0.5")));
        Assert.Equal(ReplyOutcome.RlocMismatch, LoadMessages.ClassifyMapReply(reply.AsSpan(0, n), eids[2], IPAddress.Parse("127.0.0.6")));
        Assert.Equal(ReplyOutcome.WrongEid, LoadMessages.ClassifyMapReply(reply.AsSpan(0, n), eids[1], null));

        var reg = SignedRegister(LoadMessages.BuildRegisters(eids, 3, IPAddress.Loopback, Options()), 0, 0x99);
        var notify = new byte[512];
        using var signer = new MessageSigner(Key);
        int len = LoadMessages.SinkMapNotify(reg, notify, signer);
        Assert.True(ControlMessage.TryDecode(notify.AsSpan(0, len), out var nm).IsOk);
        Assert.Equal(0x99UL, Assert.IsType<MapNotify>(nm).Nonce);
        Assert.True(signer.Verify(notify.AsSpan(0, len)));
        Assert.True(MessageAuthentication.Verify(notify.AsSpan(0, len), Key));
        Assert.True(LoadMessages.MakeAck(notify.AsSpan(0, len), signer));
        Assert.True(ControlMessage.TryDecode(notify.AsSpan(0, len), out var am).IsOk);
        Assert.True(Assert.IsType<MapNotify>(am).IsAck);
        Assert.True(MessageAuthentication.Verify(notify.AsSpan(0, len), Key));
        notify[40] ^= 1;
        Assert.False(signer.Verify(notify.AsSpan(0, len)));
    }

    [Fact]
    public void GarbageIsJudgedNeverThrown()
    {
        var rng = new Random(7);
        var asked = EidPrefix.Parse("[0]10.0.0.1/32");
        var buf = new byte[600];
        using var signer = new MessageSigner(Key);
        for (int i = 0; i < 5000; i++)
        {
            int len = rng.Next(0, buf.Length);
            rng.NextBytes(buf);
            if (i % 2 == 0 && len > 0) buf[0] = (byte)(rng.Next(2) == 0 ? 0x20 : 0x80);
            var d = buf.AsSpan(0, len);
            var outcome = LoadMessages.ClassifyMapReply(d, asked, null);
            Assert.True(Enum.IsDefined(outcome));
            LoadMessages.TryPeekNonce(d, out _, out _);
            signer.Verify(d);
            LoadMessages.SinkMapReply(d, new IpAddress(IPAddress.Loopback).ToBytes(), new byte[1024]);
            LoadMessages.SinkMapNotify(d, new byte[1024], signer);
        }
    }

    [Fact]
    public void NonceTrackerTellsMatchedDuplicateLateAndUnmatchedApart()
    {
        var t = new NonceTracker(0xabcd00, 16);
        var n1 = t.Issue(11, 1);
        var n2 = t.Issue(12, 2);
        t.SetSent(2, 1000, 50);   // realtime ns for latency, monotonic ticks for expiry
        Assert.Equal(2, t.InFlight);
        Assert.Equal(MatchResult.Matched, t.Match(n1, out int item, out byte kind, out long sent));
        Assert.Equal((11, (byte)1, 1000L), (item, kind, sent));
        Assert.Equal(MatchResult.Duplicate, t.Match(n1, out _, out _, out _));
        Assert.Equal(MatchResult.Unmatched, t.Match(n2 ^ (1UL << 40), out _, out _, out _)); // another run's tag
        Assert.Equal(MatchResult.Unmatched, t.Match((ulong)0xabcd00 << 32 | 99, out _, out _, out _)); // never issued
        Assert.Equal(0, t.Expire(50));    // expiry reads the monotonic stamp: sent at 50 is not before 50
        Assert.Equal(1, t.Expire(51));
        Assert.Equal(0, t.InFlight);
        Assert.Equal(MatchResult.Late, t.Match(n2, out _, out _, out _));
        Assert.Equal(1, t.TimedOutCount);
        // Wrap the ring: an old nonce whose slot was reused is late, not matched to the newcomer.
        for (int i = 0; i < t.Capacity; i++) t.Match(t.Issue(i, 1), out _, out _, out _);
        Assert.Equal(MatchResult.Late, t.Match(n1, out _, out _, out _));
    }

    [Fact]
    public void A_cancelled_message_is_neither_in_flight_nor_timed_out()
    {
        var t = new NonceTracker(0x77, 16);
        var refused = t.Issue(1, 2);
        var sent = t.Issue(2, 2);
        t.SetSent(2, 1000, 10);
        Assert.Equal(2, t.Cancel(refused));   // the kind it was issued with
        Assert.Equal(1, t.InFlight);
        Assert.Equal(0, t.Cancel(refused));   // twice changes nothing
        Assert.Equal(0, t.Cancel(sent ^ (1UL << 40)));   // another run's tag changes nothing
        Assert.Equal(1, t.InFlight);
        Assert.Equal(1, t.Expire(100));    // only the one that left times out
        Assert.Equal(1, t.TimedOutCount);
        Assert.Equal(0, t.InFlight);
    }

    [Fact]
    public void HistogramPercentilesAgreeWithASortedArray()
    {
        var rng = new Random(42);
        var h = new LatencyHistogram();
        var parts = new[] { new LatencyHistogram(), new LatencyHistogram() };
        var values = new long[20000];
        for (int i = 0; i < values.Length; i++)
        {
            // Log-normal-ish latencies from 1 us to ~100 ms.
            values[i] = (long)Math.Exp(7 + rng.NextDouble() * 11.5);
            h.Record(values[i]);
            parts[i % 2].Record(values[i]);
        }
        parts[0].Add(parts[1]);
        Array.Sort(values);
        foreach (double p in new[] { 1, 50, 90, 99, 99.9, 100 })
        {
            long oracle = values[Math.Max(0, (int)Math.Ceiling(p / 100 * values.Length) - 1)];
            foreach (var hist in new[] { h, parts[0] })
            {
                long got = hist.Percentile(p);
                Assert.True(Math.Abs(got - oracle) <= oracle * 0.001 + 1, $"p{p}: histogram {got}, sorted array {oracle}");
            }
        }
        Assert.Equal(values.Length, parts[0].Count);
        Assert.InRange(h.Max, values[^1], values[^1] * 1.001 + 1);
        Assert.Equal(values.Average(v => (double)v), h.Mean, 3);
    }

    [Fact]
    public void KernelDropsAreReadOnlyForATargetOnThisMachine()
    {
        Assert.True(KernelDrops.IsLocal(IPAddress.Parse("127.0.42.1")));
        Assert.True(KernelDrops.IsLocal(IPAddress.IPv6Loopback));
        // TEST-NET-1 (RFC 5737): no interface here has it, so a local socket on the same port is not the target's.
        Assert.False(KernelDrops.IsLocal(IPAddress.Parse("192.0.2.1")));
    }

    [Fact]
    public void KernelDropsParseProcNetUdp()
    {
        const string text = """
              sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
             1: 012A007F:10F6 00000000:0000 07 00000000 00000000 00:00000000 00000000     0        0 1 2 0000000000000000 17
             2: 00000000:10F6 00000000:0000 07 00000000 00000000 00:00000000 00000000     0        0 1 2 0000000000000000 3
             3: 022A007F:5EF6 00000000:0000 07 00000000 00000000 00:00000000 00000000     0        0 1 2 0000000000000000 0
            """;
        Assert.Equal("012A007F:10F6", KernelDrops.ProcAddress(IPAddress.Parse("127.0.42.1"), 4342));
        Assert.Equal(20, KernelDrops.Parse(text, IPEndPoint.Parse("127.0.42.1:4342")));
        Assert.Equal(0, KernelDrops.Parse(text, IPEndPoint.Parse("127.0.42.2:24310")));
        Assert.Null(KernelDrops.Parse(text, IPEndPoint.Parse("127.0.42.9:1")));
        Assert.Equal("00000000000000000000000001000000:10F6", KernelDrops.ProcAddress(IPAddress.IPv6Loopback, 4342));
    }
}
