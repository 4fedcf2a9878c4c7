using System.Diagnostics;

namespace Lisp.ControlPlane;

/// <summary>
/// The control plane's clock: wall-clock time read once at start, then advanced by the monotonic timestamp
/// (<see cref="Stopwatch"/>, CLOCK_MONOTONIC on Linux). Soft-state timers (registration expiry, Map-Notify and
/// Map-Request retransmission, TTLs, probes) compare times from this clock, so a wall-clock step (NTP on a box
/// that booted in 1970, an operator's `date -s`) neither expires every registration nor keeps them forever
/// (issue 10, defect d). Times shown to operators are start time + elapsed, so after a step they differ from
/// the new wall clock by the step.
/// </summary>
public sealed class MonotonicClock : TimeProvider
{
    private readonly DateTimeOffset _anchor;
    private readonly long _anchorTimestamp;
    private readonly Func<long> _timestamp;
    private readonly long _frequency;

    public MonotonicClock() : this(DateTimeOffset.UtcNow, Stopwatch.GetTimestamp, Stopwatch.Frequency) { }

    /// <summary>Tests: a given start time and timestamp source.</summary>
    public MonotonicClock(DateTimeOffset start, Func<long> timestamp, long frequency)
    {
        _anchor = start;
        _timestamp = timestamp;
        _frequency = frequency;
        _anchorTimestamp = timestamp();
    }

    public override DateTimeOffset GetUtcNow()
    {
        long elapsed = _timestamp() - _anchorTimestamp;
        return _anchor + TimeSpan.FromTicks((long)((double)elapsed * TimeSpan.TicksPerSecond / _frequency));
    }

    public override long GetTimestamp() => _timestamp();

    public override long TimestampFrequency => _frequency;
}
