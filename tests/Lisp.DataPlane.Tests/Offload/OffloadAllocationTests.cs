using Lisp.DataPlane.Offload;
using Xunit;
using static Lisp.DataPlane.Tests.Offload.OffloadReference;

namespace Lisp.DataPlane.Tests.Offload;

/// <summary>The hot path allocates nothing: segmenting, coalescing a batch and reading its groups.</summary>
public sealed class OffloadAllocationTests
{
    [Fact]
    public void Segment_and_coalesce_allocate_nothing_per_batch() =>
        SegmentAndCoalesceAllocateNothing(new Coalescer<TcpRules>(64, 64, 9216), Build(new Random(99), false, 6, 30000),
            new VirtioNetHeader { GsoType = VirtioNetHeader.GsoTcpV4, GsoSize = 1400 });

    /// <summary>The same for UDP (USO, IPv6): segmenting, joining the datagrams again and reading the group.</summary>
    [Fact]
    public void Udp_segment_and_coalesce_allocate_nothing_per_batch() =>
        SegmentAndCoalesceAllocateNothing(new Coalescer<UdpRules>(64, 64, 9216), Build(new Random(99), true, 17, 30000),
            new VirtioNetHeader { Flags = VirtioNetHeader.FlagNeedsCsum, GsoType = VirtioNetHeader.GsoUdpL4, GsoSize = 1400 });

    /// <summary>A 30,000-byte super-packet cut at 1400 (22 segments), joined back into one group equal to it, 0 bytes per batch.</summary>
    private static void SegmentAndCoalesceAllocateNothing<T>(Coalescer<T> coalescer, byte[] super, VirtioNetHeader h)
        where T : struct, ICoalescingProtocol
    {
        var output = new byte[64 * 1500];
        var lengths = new int[64];
        int stride = 8 + Segmenter.HeaderLength(super, h) + 1400;
        int count = 0, groups = 0;

        void Batch()
        {
            count = Segmenter.Segment(super, h, 1400, output, 8, lengths);
            coalescer.Reset();
            for (int k = 0; k < count; k++) coalescer.TryAdd(output.AsSpan(k * stride + 8, lengths[k]), k);
            groups = 0;
            for (int g = 0; g < coalescer.GroupCount; g++) groups += coalescer.Group(g).Length > 0 ? 1 : 0;
        }

        Batch(); // warm up (JIT)
        long allocated = SteadyAllocation(Batch);
        Assert.Equal(22, count);
        Assert.Equal(1, groups);
        Assert.Equal(super, coalescer.Group(0)[10..].ToArray());
        Assert.Equal(0, allocated);
    }

    /// <summary>The ETR's copy-free path too: headers-only segmenting, taking packets in place, gather lists.</summary>
    [Fact]
    public unsafe void Headers_only_segments_and_in_place_gathering_allocate_nothing_per_batch()
    {
        var rng = new Random(98);
        var super = Build(rng, false, 6, 30000);
        var h = new VirtioNetHeader { GsoType = VirtioNetHeader.GsoTcpV4, GsoSize = 1400 };
        var wire = GC.AllocateArray<byte>(64 * 1500, pinned: true);
        var blocks = new byte[64 * 48];
        var lengths = new int[64];
        var iov = new Native.IoVec[65];
        var coalescer = new Coalescer<TcpRules>(64, 8, 1600);
        Assert.Equal(22, Segmenter.Segment(super, h, 1400, wire, 8, lengths));
        int entries = 0, count = 0;
        fixed (byte* w = wire)
        {
            byte* at = w;
            void Batch()
            {
                count = Segmenter.SegmentHeaders(super, h, 1400, blocks, 8, lengths);
                coalescer.Reset();
                for (int k = 0; k < count; k++) coalescer.TryAddInPlace(at + k * (8 + 40 + 1400) + 8, lengths[k], k);
                entries = coalescer.Gather(0, iov, out _);
            }
            Batch(); // warm up (JIT)
            Assert.Equal(0, SteadyAllocation(Batch));
        }
        Assert.Equal(22, count);
        Assert.Equal(23, entries);
    }
}
