using Lisp.DataPlane.Offload;
using Xunit;
using static Lisp.DataPlane.Tests.Offload.OffloadReference;

namespace Lisp.DataPlane.Tests.Offload;

/// <summary>The hot path allocates nothing: segmenting, coalescing a batch and reading its groups.</summary>
public sealed class OffloadAllocationTests
{
    [Fact]
    public void Segment_and_coalesce_allocate_nothing_per_batch()
    {
        var rng = new Random(99);
        var super = Build(rng, false, 6, 30000);
        var h = new VirtioNetHeader { GsoType = VirtioNetHeader.GsoTcpV4, GsoSize = 1400 };
        var output = new byte[64 * 1500];
        var lengths = new int[64];
        var coalescer = new TcpCoalescer(64);
        int count = 0, groups = 0;

        void Batch()
        {
            count = Segmenter.Segment(super, h, 1400, output, 8, lengths);
            int stride = 8 + Segmenter.HeaderLength(super, h) + 1400;
            coalescer.Reset();
            for (int k = 0; k < count; k++) coalescer.TryAdd(output.AsSpan(k * stride + 8, lengths[k]), k);
            groups = 0;
            for (int g = 0; g < coalescer.GroupCount; g++) groups += coalescer.Group(g).Length > 0 ? 1 : 0;
        }

        Batch(); // warm up (JIT)
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 50; i++) Batch();
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(22, count);
        Assert.Equal(1, groups);
        Assert.Equal(super, coalescer.Group(0)[10..].ToArray());
        Assert.Equal(0, allocated);
    }
}
