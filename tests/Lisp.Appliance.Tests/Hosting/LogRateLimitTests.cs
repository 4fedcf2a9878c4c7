using Lisp.Appliance.Hosting;
using Lisp.ControlPlane;

namespace Lisp.Appliance.Tests.Hosting;

/// <summary>Issue 12 finding 8: identical log events are rate-limited per kind, with a summary that is never dropped.</summary>
public class LogRateLimitTests
{
    private sealed class ManualClock : TimeProvider
    {
        public long Ticks;
        public override long GetTimestamp() => Interlocked.Read(ref Ticks);
        public override long TimestampFrequency => TimeSpan.TicksPerSecond;
        public void Advance(TimeSpan t) => Interlocked.Add(ref Ticks, t.Ticks);
    }

    private static (Log Log, StringWriter Out, ManualClock Clock) Make(int perSecond = 20, LogLevel minimum = LogLevel.Info)
    {
        var clock = new ManualClock();
        var output = new StringWriter();
        return (new Log(minimum, TextWriter.Synchronized(output), perSecond, clock), output, clock);
    }

    private static List<string> Lines(StringWriter output) =>
        output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList();

    [Fact]
    public void A_flood_of_one_kind_is_cut_to_the_limit_and_summarized_before_the_next_line()
    {
        var (log, output, clock) = Make();
        for (int i = 0; i < 1000; i++) log.Info("smr-received", $"SMR {i}");
        log.Warn("rloc-down", "another kind is not affected");
        Assert.Equal(980, log.Suppressed);
        clock.Advance(TimeSpan.FromSeconds(1.5));
        log.Info("smr-received", "after the window");
        log.Dispose();

        var lines = Lines(output);
        Assert.Equal(20, lines.Count(l => l.Contains(" smr-received SMR ", StringComparison.Ordinal)));
        Assert.Single(lines, l => l.Contains(" rloc-down ", StringComparison.Ordinal));
        var summary = Assert.Single(lines, l => l.Contains(" log-suppressed ", StringComparison.Ordinal));
        Assert.Contains("info  log-suppressed 980 more smr-received lines suppressed in the last 1.5 s", summary);
        // The summary comes before the first line let through after it.
        Assert.True(lines.IndexOf(summary) < lines.FindIndex(l => l.EndsWith("after the window", StringComparison.Ordinal)));
    }

    [Fact]
    public void Warnings_are_limited_too_and_the_summary_takes_the_highest_level()
    {
        var (log, output, clock) = Make(perSecond: 5);
        for (int i = 0; i < 10; i++) log.Info("itr-rloc-undeliverable", "x");
        for (int i = 0; i < 10; i++) log.Error("itr-rloc-undeliverable", "y");
        Assert.Equal(15, log.Suppressed);
        clock.Advance(TimeSpan.FromSeconds(1));
        log.FlushSuppressed(); // what the writer thread does when the kind went quiet
        log.Dispose();
        var summary = Assert.Single(Lines(output), l => l.Contains(" log-suppressed ", StringComparison.Ordinal));
        Assert.Contains("error log-suppressed 15 more itr-rloc-undeliverable lines suppressed in the last 1 s", summary);
    }

    [Fact]
    public void The_bucket_refills_at_the_limit_rate()
    {
        var (log, output, clock) = Make(perSecond: 10);
        int let = 0;
        for (int ms = 0; ms < 5000; ms += 10) // 100 lines/s for 5 s: about 10/s get through (+ the first burst)
        {
            log.Info("flood", "z");
            clock.Advance(TimeSpan.FromMilliseconds(10));
        }
        log.Dispose();
        let = Lines(output).Count(l => l.Contains(" flood z", StringComparison.Ordinal));
        Assert.InRange(let, 50, 61);
        Assert.Equal(500 - let, log.Suppressed);
        // Every suppressed line is in some summary.
        long summarized = Lines(output).Where(l => l.Contains(" log-suppressed ", StringComparison.Ordinal))
            .Sum(l => long.Parse(l.Split(" log-suppressed ")[1].Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(log.Suppressed, summarized);
    }

    [Fact]
    public void Pending_summaries_are_written_at_dispose_and_lines_below_the_level_cost_nothing()
    {
        var (log, output, _) = Make(perSecond: 2);
        for (int i = 0; i < 100; i++) log.Write(LogLevel.Debug, "noise", "below the minimum");
        for (int i = 0; i < 4; i++) log.Info("burst", "b");
        log.Dispose();
        var lines = Lines(output);
        Assert.Equal(2, lines.Count(l => l.EndsWith(" burst b", StringComparison.Ordinal)));
        Assert.Contains(lines, l => l.Contains("log-suppressed 2 more burst lines suppressed in the last 0 s", StringComparison.Ordinal));
        Assert.DoesNotContain(lines, l => l.Contains("noise", StringComparison.Ordinal));
        Assert.Equal(2, log.Suppressed);
    }

    [Fact]
    public void Zero_turns_the_limit_off()
    {
        var (log, output, _) = Make(perSecond: 0);
        for (int i = 0; i < 500; i++) log.Info("same", "s");
        log.Dispose();
        Assert.Equal(500, Lines(output).Count);
        Assert.Equal(0, log.Suppressed);
    }
}
