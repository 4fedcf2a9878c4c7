using System.Buffers.Binary;
using System.Diagnostics;
using System.Runtime.InteropServices;
using Lisp.DataPlane;
using Lisp.DataPlane.Offload;

/// <summary>The `copies` mode: what the copy-free ITR and ETR paths save in user space per 44-segment super-packet.</summary>
internal static unsafe class CopiesBench
{
    private const int Mss = 1412, Segments = 44, Headers = 40;

    public static int Run(int rounds)
    {
        // A TCP super-packet in NEEDS_CSUM form: IPv4 (no options) + TCP (no options), random payload.
        int payload = Segments * Mss, length = Headers + payload;
        var super = new byte[length];
        new Random(1).NextBytes(super);
        super[0] = 0x45; super[1] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(super.AsSpan(2), (ushort)length);
        super[6] = 0x40; super[7] = 0; super[8] = 64; super[9] = 6;
        BinaryPrimitives.WriteUInt16BigEndian(super.AsSpan(10), 0);
        BinaryPrimitives.WriteUInt16BigEndian(super.AsSpan(10), InetChecksum.Ipv4HeaderChecksum(super.AsSpan(0, 20)));
        super[32] = 0x50; super[33] = 0x10;
        var h = new VirtioNetHeader { Flags = VirtioNetHeader.FlagNeedsCsum, GsoType = VirtioNetHeader.GsoTcpV4, GsoSize = Mss, CsumStart = 20, CsumOffset = 16 };

        var copied = new byte[Segments * (8 + Headers + Mss)];
        var blocks = new byte[Segments * (8 + Headers)];
        var lengths = new int[Segments];
        // The wire segments, laid out in native memory like the ETR's receive batch.
        if (Segmenter.Segment(super, h, Mss, copied, 8, lengths) != Segments) throw new InvalidOperationException("segmenting failed");
        int stride = 8 + Headers + Mss;
        byte* wire = (byte*)NativeMemory.Alloc((nuint)copied.Length);
        copied.CopyTo(new Span<byte>(wire, copied.Length));
        var copying = new Coalescer<TcpRules>(256, 64, 1600);
        var inPlace = new Coalescer<TcpRules>(256, 64, 1600);
        var iov = new Native.IoVec[Segments + 1];

        var itrCopy = new List<double>(); var itrFree = new List<double>();
        var etrCopy = new List<double>(); var etrFree = new List<double>();
        long sink = 0;
        const int reps = 2000;
        for (int round = 0; round < rounds; round++)
        {
            var sw = Stopwatch.StartNew();
            for (int i = 0; i < reps; i++) sink += Segmenter.Segment(super, h, Mss, copied, 8, lengths);
            itrCopy.Add(sw.Elapsed.TotalNanoseconds / reps);
            sw.Restart();
            for (int i = 0; i < reps; i++) sink += Segmenter.SegmentHeaders(super, h, Mss, blocks, 8, lengths);
            itrFree.Add(sw.Elapsed.TotalNanoseconds / reps);
            sw.Restart();
            for (int i = 0; i < reps; i++)
            {
                copying.Reset();
                for (int k = 0; k < Segments; k++) copying.TryAdd(new ReadOnlySpan<byte>(wire + k * stride + 8, lengths[k]), k);
                sink += copying.Group(0).Length;
            }
            etrCopy.Add(sw.Elapsed.TotalNanoseconds / reps);
            sw.Restart();
            for (int i = 0; i < reps; i++)
            {
                inPlace.Reset();
                for (int k = 0; k < Segments; k++) inPlace.TryAddInPlace(wire + k * stride + 8, lengths[k], k);
                sink += inPlace.Gather(0, iov, out int bytes) + bytes;
            }
            etrFree.Add(sw.Elapsed.TotalNanoseconds / reps);
        }
        NativeMemory.Free(wire);
        static string Row(List<double> v) { v.Sort(); return $"best {v[0] / 1000,6:F2} us, median {v[v.Count / 2] / 1000,6:F2} us"; }
        Console.WriteLine($"copies: one {Segments}-segment TCP super-packet ({payload} payload bytes), {rounds} rounds of {reps} (sink {sink & 1})");
        Console.WriteLine($"  ITR Segment (payload copied)        {Row(itrCopy)}");
        Console.WriteLine($"  ITR SegmentHeaders (gather send)    {Row(itrFree)}");
        Console.WriteLine($"  ETR TryAdd + Group (two copies)     {Row(etrCopy)}");
        Console.WriteLine($"  ETR TryAddInPlace + Gather (none)   {Row(etrFree)}");
        return 0;
    }
}
