using System.Runtime.InteropServices;
using Lisp.DataPlane.Offload;
using Xunit;
using static Lisp.DataPlane.Tests.Offload.OffloadReference;

namespace Lisp.DataPlane.Tests.Offload;

/// <summary>
/// The ETR's copy-free path: packets taken in place (<c>TryAddInPlace</c>, from native memory like the receive batch)
/// and handed out as gather lists (<c>Gather</c>) must give, byte for byte, what the copying path gives
/// (<c>TryAdd</c> + <c>Group</c>, itself checked against the reference in OffloadCoalescerTests and
/// OffloadUdpCoalescerTests): the same verdict for every packet, the same groups, members and first ids, and each
/// group's gather list joined equal to its built packet. Mixes of several flows, interleaved, with packets the rules
/// refuse (corrupt checksums, SYNs, short segments) so groups of one and closed flows occur.
/// </summary>
public sealed unsafe class OffloadGatherTests
{
    /// <summary>Wire segments of a random super-packet of <paramref name="protocol"/> (6 TCP, 17 UDP).</summary>
    private static byte[][] Segments(Random rng, bool v6, int protocol, int payload, int mss)
    {
        var super = Build(rng, v6, protocol, payload, seq: (uint)rng.Next());
        var h = new VirtioNetHeader
        {
            Flags = VirtioNetHeader.FlagNeedsCsum,
            GsoType = protocol == 17 ? VirtioNetHeader.GsoUdpL4 : v6 ? VirtioNetHeader.GsoTcpV6 : VirtioNetHeader.GsoTcpV4,
            GsoSize = (ushort)mss,
        };
        int headers = Segmenter.HeaderLength(super, h);
        int count = Segmenter.SegmentCount(super, h, mss);
        var output = new byte[count * (headers + mss)];
        var lengths = new int[count];
        Assert.Equal(count, Segmenter.Segment(super, h, mss, output, 0, lengths));
        return Enumerable.Range(0, count).Select(k => output.AsSpan(k * (headers + mss), lengths[k]).ToArray()).ToArray();
    }

    /// <summary>Several flows' segments interleaved in order per flow, with some packets spoiled on the way.</summary>
    private static List<byte[]> Mix(Random rng, int protocol)
    {
        var flows = new List<Queue<byte[]>>();
        int n = rng.Next(1, 5);
        for (int f = 0; f < n; f++)
            flows.Add(new Queue<byte[]>(Segments(rng, rng.Next(2) == 0, protocol, rng.Next(1, 30000), rng.Next(200, 1400))));
        var mix = new List<byte[]>();
        while (flows.Any(q => q.Count > 0))
        {
            var q = flows.Where(q => q.Count > 0).ElementAt(rng.Next(flows.Count(q => q.Count > 0)));
            var p = q.Dequeue();
            int spoil = rng.Next(20);
            if (spoil == 0) p[^1] ^= 0x40;                               // corrupt payload: checksum fails, refused
            else if (spoil == 1 && protocol == 6) p[(p[0] >> 4 == 6 ? 40 : 20) + 13] |= 0x02; // SYN: refused
            mix.Add(p);
        }
        return mix;
    }

    [Theory]
    [InlineData(6)]
    [InlineData(17)]
    public void In_place_gather_lists_equal_the_built_groups(int protocol)
    {
        var rng = new Random(protocol * 1000 + 7);
        int groupsSeen = 0, multiSeen = 0;
        for (int round = 0; round < 60; round++)
        {
            var packets = Mix(rng, protocol);
            if (packets.Count > 256) packets = packets.Take(256).ToList();
            int total = packets.Sum(p => p.Length);
            byte* native = (byte*)NativeMemory.Alloc((nuint)Math.Max(1, total));
            try
            {
                if (protocol == 6) Compare(new Coalescer<TcpRules>(256, 64, 9216), new Coalescer<TcpRules>(256, 64, 9216), packets, native, ref groupsSeen, ref multiSeen);
                else Compare(new Coalescer<UdpRules>(256, 64, 9216), new Coalescer<UdpRules>(256, 64, 9216), packets, native, ref groupsSeen, ref multiSeen);
            }
            finally
            {
                NativeMemory.Free(native);
            }
        }
        Assert.True(multiSeen > 60, $"only {multiSeen} joined groups in {groupsSeen}");
        Assert.True(groupsSeen > multiSeen, "no group of one occurred");
    }

    private static void Compare<T>(Coalescer<T> copying, Coalescer<T> inPlace, List<byte[]> packets, byte* native, ref int groupsSeen, ref int multiSeen)
        where T : struct, ICoalescingProtocol
    {
        int at = 0;
        for (int i = 0; i < packets.Count; i++)
        {
            var p = packets[i];
            p.CopyTo(new Span<byte>(native + at, p.Length));
            bool a = copying.TryAdd(p, i);
            bool b = inPlace.TryAddInPlace(native + at, p.Length, i);
            Assert.Equal(a, b);
            at += p.Length;
        }
        Assert.Equal(copying.GroupCount, inPlace.GroupCount);
        var iov = new Native.IoVec[257];
        for (int g = 0; g < copying.GroupCount; g++)
        {
            Assert.Equal(copying.Members(g), inPlace.Members(g));
            Assert.Equal(copying.FirstId(g), inPlace.FirstId(g));
            int entries = inPlace.Gather(g, iov, out int bytes);
            Assert.Equal(inPlace.Members(g) + 1, entries);
            var joined = new List<byte>();
            for (int k = 0; k < entries; k++) joined.AddRange(new ReadOnlySpan<byte>(iov[k].Base, (int)iov[k].Length).ToArray());
            Assert.Equal(bytes, joined.Count);
            Assert.Equal(copying.Group(g).ToArray(), joined.ToArray());
            groupsSeen++;
            if (copying.Members(g) > 1) multiSeen++;
        }
    }

    /// <summary>The gather list of a joined group points into the caller's memory: a payload byte changed there shows in it.</summary>
    [Fact]
    public void Gathered_payloads_are_the_callers_bytes_not_copies()
    {
        var rng = new Random(3);
        var segs = Segments(rng, false, 6, 4000, 1000);
        Assert.Equal(4, segs.Length);
        int total = segs.Sum(s => s.Length);
        byte* native = (byte*)NativeMemory.Alloc((nuint)total);
        try
        {
            var c = new Coalescer<TcpRules>(16, 4, 9216);
            int at = 0;
            var starts = new List<int>();
            foreach (var s in segs)
            {
                s.CopyTo(new Span<byte>(native + at, s.Length));
                Assert.True(c.TryAddInPlace(native + at, s.Length, starts.Count));
                starts.Add(at);
                at += s.Length;
            }
            var iov = new Native.IoVec[5];
            Assert.Equal(5, c.Gather(0, iov, out int bytes));
            Assert.Equal(10 + 40 + 4000, bytes);
            // Entry 1 is the first segment's payload, right after its 40 header bytes, in our memory.
            Assert.True(iov[1].Base == native + starts[0] + 40);
            Assert.Equal(1000u, (uint)iov[1].Length);
            Assert.True(iov[4].Base == native + starts[3] + 40);
        }
        finally
        {
            NativeMemory.Free(native);
        }
    }
}
