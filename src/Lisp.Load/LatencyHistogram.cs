using HdrHistogram;

namespace Lisp.Load;

/// <summary>
/// Latency in nanoseconds, 3 significant digits (0.1 % resolution), 1 ns to 1 hour: HdrHistogram 2.5.0's
/// LongHistogram (publishes with no trim/AOT warning for the members used here). One per sending thread;
/// merged at the end with <see cref="Add"/>.
/// </summary>
public sealed class LatencyHistogram
{
    public const long HighestNs = 3_600_000_000_000L;
    private readonly LongHistogram _h = new(HighestNs, 3);
    private long _sum;

    public long Count => _h.TotalCount;

    public void Record(long ns)
    {
        if (ns < 1) ns = 1;
        if (ns > HighestNs) ns = HighestNs;
        _h.RecordValue(ns);
        _sum += ns;
    }

    public void Add(LatencyHistogram other)
    {
        _h.Add(other._h);
        _sum += other._sum;
    }

    /// <summary>The value at percentile <paramref name="p"/> (0-100): the smallest recorded value (within resolution) with at least p % at or below it.</summary>
    public long Percentile(double p) => Count == 0 ? 0 : _h.GetValueAtPercentile(p);

    public long Max => Count == 0 ? 0 : _h.GetMaxValue();
    public double Mean => Count == 0 ? 0 : (double)_sum / Count;
}
