using Lisp.ControlPlane;

namespace Lisp.ControlPlane.Tests;

/// <summary>The roles' default randomness (getrandom(2) in per-thread batches): sane output from every entry point.</summary>
public class SecureRandomTests
{
    [Fact]
    public void Nonces_do_not_repeat_and_bytes_cover_every_value()
    {
        var seen = new HashSet<ulong>();
        var counts = new long[256];
        Span<byte> b = stackalloc byte[8];
        // 100k draws cross many 4 KiB batch boundaries (512 nonces per batch).
        for (int i = 0; i < 100_000; i++)
        {
            SecureRandom.Instance.NextBytes(b);
            Assert.True(seen.Add(BitConverter.ToUInt64(b)), $"repeated 64-bit value after {i} draws");
            foreach (var x in b) counts[x]++;
        }
        // 800k bytes: each value is expected 3125 times; a working source is nowhere near 2000 or 4500.
        Assert.All(counts, c => Assert.InRange(c, 2000, 4500));
    }

    [Fact]
    public void Odd_sizes_and_arrays_are_filled_across_batch_boundaries()
    {
        var big = new byte[10_000];   // more than two batches in one call
        SecureRandom.Instance.NextBytes(big);
        Assert.True(big.Count(x => x == 0) < 200, "a 10,000-byte draw is mostly zeros");
        var odd = new byte[3];
        var values = new HashSet<int>();
        for (int i = 0; i < 5000; i++)   // walks the batches in 3-byte steps, across their ends
        {
            SecureRandom.Instance.NextBytes(odd);
            values.Add(odd[0] << 16 | odd[1] << 8 | odd[2]);
        }
        // 5000 draws of 24 bits collide about once on average; a stuck or repeating source collides a lot.
        Assert.True(values.Count > 4980, $"{5000 - values.Count} repeated 24-bit values in 5000 draws");
    }

    [Fact]
    public void Doubles_and_ranges_stay_in_bounds_on_several_threads()
    {
        var failures = new System.Collections.Concurrent.ConcurrentBag<string>();
        var threads = Enumerable.Range(0, 4).Select(_ => new Thread(() =>
        {
            double sum = 0;
            for (int i = 0; i < 20_000; i++)
            {
                double d = SecureRandom.Instance.NextDouble();
                if (d is < 0 or >= 1) failures.Add($"NextDouble {d}");
                int n = SecureRandom.Instance.Next(10);
                if (n is < 0 or >= 10) failures.Add($"Next(10) {n}");
                sum += d;
            }
            if (Math.Abs(sum / 20_000 - 0.5) > 0.02) failures.Add($"mean {sum / 20_000}");
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => Assert.True(t.Join(TimeSpan.FromSeconds(30))));
        Assert.Empty(failures);
    }
}
