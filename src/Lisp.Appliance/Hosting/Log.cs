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
/// </summary>
public sealed class Log : IDisposable
{
    public const int MaxPending = 100_000;

    private readonly TextWriter _output;
    private readonly ConcurrentQueue<string> _pending = new();
    private readonly SemaphoreSlim _signal = new(0);
    private readonly Thread _writer;
    private int _count;
    private long _dropped;
    private volatile bool _stopping;

    public Log(LogLevel minimum, TextWriter output)
    {
        Minimum = minimum;
        _output = output;
        _writer = new Thread(WriteLoop) { IsBackground = true, Name = "lisp-log" };
        _writer.Start();
    }

    public LogLevel Minimum { get; }

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
        if (Interlocked.Increment(ref _count) > MaxPending)
        {
            Interlocked.Decrement(ref _count);
            Interlocked.Increment(ref _dropped);
            return;
        }
        _pending.Enqueue($"{DateTimeOffset.UtcNow:yyyy-MM-ddTHH:mm:ss.fffZ} {Name(level),-5} {evt} {message}");
        // Wake the writer only when it may be asleep (the first line of a batch); the rest ride along.
        if (_signal.CurrentCount == 0) _signal.Release();
    }

    public void Info(string evt, string message) => Write(LogLevel.Info, evt, message);
    public void Warn(string evt, string message) => Write(LogLevel.Warning, evt, message);
    public void Error(string evt, string message) => Write(LogLevel.Error, evt, message);

    private void WriteLoop()
    {
        long reportedDrops = 0;
        while (true)
        {
            _signal.Wait(TimeSpan.FromMilliseconds(500));
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
            if (_stopping && _pending.IsEmpty) return;
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
