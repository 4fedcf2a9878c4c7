using System.Collections.Concurrent;
using Lisp.ControlPlane;

namespace Lisp.Appliance.Hosting;

/// <summary>
/// One line per event on stdout: "2026-12-01T05:00:00.123Z info  registration-accepted [0]10.1.1.0/24 ...".
/// Thread-safe; lines below the configured level are dropped before formatting. Writing is off the caller's
/// thread: a line is queued (a lock-free enqueue) and a writer thread writes what is queued and flushes once per
/// batch, so a control shard never waits on a slow terminal or pipe and never pays a flush per line. At most
/// <see cref="MaxPending"/> lines wait; beyond that lines are dropped and the count is written when there is room.
/// Dispose writes everything still queued.
/// <para>
/// Per-kind rate limit (issue 12 finding 8: a flood of unauthenticated packets must not become a flood of log):
/// each event name has a token bucket of <see cref="LinesPerKindPerSecond"/> lines per second (bursts of as many);
/// lines over it are suppressed and counted (<see cref="Suppressed"/>), whatever their level. Once a second has
/// passed since the first suppressed line of a kind, one summary line goes out ("log-suppressed 812 more smr-received
/// lines suppressed in the last 1.2 s", at the highest level suppressed): before the next line of that kind that is let
/// through, or from the writer thread when the kind went quiet, or at Dispose. Summaries are never dropped.
/// </para>
/// </summary>
public sealed class Log : IDisposable
{
    public const int MaxPending = 100_000;
    /// <summary>Default of <see cref="LinesPerKindPerSecond"/>.</summary>
    public const int DefaultLinesPerKindPerSecond = 20;

    private readonly TextWriter _output;
    private readonly ConcurrentQueue<string> _pending = new();
    private readonly SemaphoreSlim _signal = new(0);
    private readonly Thread _writer;
    private int _count;
    private long _dropped;
    private volatile bool _stopping;
    private readonly TimeProvider _time;
    private readonly ConcurrentDictionary<string, Bucket> _buckets = new(StringComparer.Ordinal);
    private long _suppressed;

    /// <summary>One event name's token bucket and what it suppressed since the last summary (guarded by its own lock).</summary>
    private sealed class Bucket(double tokens, long at)
    {
        public double Tokens = tokens;
        public long RefilledAt = at;
        public long Suppressed;
        public long SuppressedSince;
        public LogLevel Level;
    }

    /// <param name="linesPerKindPerSecond">lines per event name per second (and burst); 0 = no per-kind limit</param>
    /// <param name="time">the clock of the rate limiter (tests); the system clock by default</param>
    public Log(LogLevel minimum, TextWriter output, int linesPerKindPerSecond = DefaultLinesPerKindPerSecond, TimeProvider? time = null)
    {
        Minimum = minimum;
        _output = output;
        LinesPerKindPerSecond = Math.Max(0, linesPerKindPerSecond);
        _time = time ?? TimeProvider.System;
        _writer = new Thread(WriteLoop) { IsBackground = true, Name = "lisp-log" };
        _writer.Start();
    }

    private volatile int _minimum;

    /// <summary>Lines below this level are dropped; a config reload may change it while the node runs.</summary>
    public LogLevel Minimum
    {
        get => (LogLevel)_minimum;
        set => _minimum = (int)value;
    }

    /// <summary>Lines per event name per second let through (0 = unlimited); beyond it lines are suppressed and summarized.</summary>
    public int LinesPerKindPerSecond { get; }

    /// <summary>Lines suppressed by the per-kind rate limit (each one is in some summary line).</summary>
    public long Suppressed => Interlocked.Read(ref _suppressed);

    /// <summary>Lines dropped because <see cref="MaxPending"/> were waiting.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    public static LogLevel ParseLevel(string s) => s switch
    {
        "debug" => LogLevel.Debug,
        "warning" or "warn" => LogLevel.Warning,
        "error" => LogLevel.Error,
        _ => LogLevel.Info,
    };

    public void Write(LogLevel level, string evt, string message)
    {
        if (level < Minimum) return;
        if (LinesPerKindPerSecond > 0 && !Admit(level, evt)) return;
        Enqueue(level, evt, message);
    }

    private void Enqueue(LogLevel level, string evt, string message)
    {
        if (Interlocked.Increment(ref _count) > MaxPending)
        {
            Interlocked.Decrement(ref _count);
            Interlocked.Increment(ref _dropped);
            return;
        }
        _pending.Enqueue(Line(level, evt, message));
        // Wake the writer only when it may be asleep (the first line of a batch); the rest ride along.
        if (_signal.CurrentCount == 0) _signal.Release();
    }

    /// <summary>Takes a token of <paramref name="evt"/>'s bucket, or counts the line as suppressed; writes a due summary first.</summary>
    private bool Admit(LogLevel level, string evt)
    {
        long now = _time.GetTimestamp();
        var b = _buckets.GetOrAdd(evt, static (_, s) => new Bucket(s.LinesPerKindPerSecond, s._time.GetTimestamp()), this);
        lock (b)
        {
            double elapsed = Math.Max(0, now - b.RefilledAt) / (double)_time.TimestampFrequency;
            b.Tokens = Math.Min(LinesPerKindPerSecond, b.Tokens + elapsed * LinesPerKindPerSecond);
            b.RefilledAt = now;
            if (b.Tokens >= 1)
            {
                b.Tokens -= 1;
                if (b.Suppressed > 0) WriteSummary(evt, b, now); // under the lock: before this line, exactly once
                return true;
            }
            if (b.Suppressed == 0)
            {
                b.SuppressedSince = now;
                b.Level = level;
            }
            else if (level > b.Level) b.Level = level;
            b.Suppressed++;
            Interlocked.Increment(ref _suppressed);
            return false;
        }
    }

    /// <summary>Queues the summary of <paramref name="b"/> (never dropped: bypasses <see cref="MaxPending"/>) and resets it; caller holds its lock.</summary>
    private void WriteSummary(string evt, Bucket b, long now)
    {
        double seconds = Math.Max(0, now - b.SuppressedSince) / (double)_time.TimestampFrequency;
        Interlocked.Increment(ref _count);
        _pending.Enqueue(Line(b.Level, "log-suppressed",
            $"{b.Suppressed} more {evt} line{(b.Suppressed == 1 ? "" : "s")} suppressed in the last {seconds.ToString("0.#", System.Globalization.CultureInfo.InvariantCulture)} s (limit {LinesPerKindPerSecond} per second per kind)"));
        b.Suppressed = 0;
        if (_signal.CurrentCount == 0) _signal.Release();
    }

    /// <summary>
    /// Writes the summary of each kind whose suppression window (a second from its first suppressed line) has closed,
    /// or of every kind with suppressed lines when <paramref name="all"/> (Dispose). The writer thread calls it on each wake.
    /// </summary>
    public void FlushSuppressed(bool all = false)
    {
        long now = _time.GetTimestamp();
        foreach (var (evt, b) in _buckets)
        {
            if (Volatile.Read(ref b.Suppressed) == 0) continue;
            lock (b)
            {
                if (b.Suppressed > 0 && (all || now - b.SuppressedSince >= _time.TimestampFrequency)) WriteSummary(evt, b, now);
            }
        }
    }

    private static string Line(LogLevel level, string evt, string message) =>
        $"{DateTimeOffset.UtcNow:yyyy-MM-ddTHH:mm:ss.fffZ} {Name(level),-5} {evt} {message}";

    public void Info(string evt, string message) => Write(LogLevel.Info, evt, message);
    public void Warn(string evt, string message) => Write(LogLevel.Warning, evt, message);
    public void Error(string evt, string message) => Write(LogLevel.Error, evt, message);

    private void WriteLoop()
    {
        long reportedDrops = 0;
        while (true)
        {
            _signal.Wait(TimeSpan.FromMilliseconds(500));
            bool stopping = _stopping;
            if (LinesPerKindPerSecond > 0) FlushSuppressed(all: stopping);
            bool wrote = false;
            while (_pending.TryDequeue(out var line))
            {
                Interlocked.Decrement(ref _count);
                _output.WriteLine(line);
                wrote = true;
            }
            long dropped = Dropped;
            if (dropped != reportedDrops)
            {
                _output.WriteLine($"{DateTimeOffset.UtcNow:yyyy-MM-ddTHH:mm:ss.fffZ} {Name(LogLevel.Warning),-5} log-dropped {dropped - reportedDrops} lines dropped: more than {MaxPending} were waiting to be written ({dropped} in all)");
                reportedDrops = dropped;
                wrote = true;
            }
            if (wrote) _output.Flush();
            if (stopping && _pending.IsEmpty) return;
        }
    }

    /// <summary>Writes what is queued and stops the writer.</summary>
    public void Dispose()
    {
        if (_stopping) return;
        _stopping = true;
        _signal.Release();
        _writer.Join(TimeSpan.FromSeconds(5));
    }

    private static string Name(LogLevel l) => l switch
    {
        LogLevel.Debug => "debug",
        LogLevel.Info => "info",
        LogLevel.Warning => "warn",
        _ => "error",
    };
}
