using System.Diagnostics;
using System.Net;
using Lisp.MapCache;

namespace Lisp.Perf;

/// <summary>
/// `lisp-perf churn [prefixes] [changes/s] [seconds]` (issue 10's churn target): an IPv4 map-cache of N prefixes
/// (default 1M, the route-table length mix of <see cref="Data.V4Prefixes"/>, so DIR-24), one reader thread doing
/// batched lookups of streamed destinations the way an ITR worker does (one <see cref="MapCacheWriter.Current"/>
/// read per batch of 256), and one writer thread that applies changes at a fixed rate, coalesced into one
/// publish per 10 ms tick (what the control shard does per turn). A change is one of: remove a held prefix
/// (expiry), add it back (a new Map-Reply), or replace its locator set (a refresh that moved the site).
/// Phases of equal length: readers alone (baseline), then readers with churn. Prints lookups/s per phase and
/// their ratio, changes applied, publish time percentiles, bytes allocated per change and the GC counts per
/// generation during the churn phase. A Stopwatch measurement, not BenchmarkDotNet: the table takes seconds to
/// load and the point is the interference between the two threads.
/// </summary>
public static class ChurnMeasure
{
    public static void Run(int prefixes, int changesPerSecond, int seconds, bool recycle)
    {
        var p = Data.V4Prefixes(prefixes);
        var w = new MapCacheWriter(new MapCacheOptions { RecycleChunks = recycle });
        var sets = Enumerable.Range(0, 64).Select(i => new RlocSpec[]
        {
            new(new IPAddress(new byte[] { 198, 18, (byte)i, 1 }), 1, 50), new(new IPAddress(new byte[] { 198, 18, (byte)i, 2 }), 1, 50),
        }).ToArray();
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < p.Count; i++) w.AddOrReplaceV4(0, p[i].Addr, p[i].Len, sets[i & 63], 60, 0);
        var first = w.Publish();
        Console.WriteLine($"chunk recycling {(recycle ? "on" : "off")}");
        Console.WriteLine($"loaded {p.Count:N0} prefixes in {sw.Elapsed.TotalSeconds:F1} s (layout {first.V4LayoutOf(0)}); lookup structures {first.LookupBytes >> 20} MiB");
        var dst = Data.V4Destinations(p, 1 << 22);

        // The reader counts lookups into the current phase's slot; phases alternate quiet / churn so that
        // drift in the machine's load (other work on the same cores) shows up as disagreement between repeats.
        int phase = 0;
        var phaseLookups = new long[64];
        bool stop = false;
        var reader = new Thread(() =>
        {
            using var handle = w.RegisterReader();
            var results = new LookupResult[256];
            var flows = new uint[256];
            int at = 0;
            while (!Volatile.Read(ref stop))
            {
                var s = handle.Acquire();
                s.LookupV4Batch(0, dst.AsSpan(at, 256), flows, results);
                handle.Release();
                at = (at + 256) & (dst.Length - 1);
                Interlocked.Add(ref phaseLookups[Volatile.Read(ref phase)], 256);
            }
        }) { Name = "reader", IsBackground = true };
        reader.Start();
        Thread.Sleep(1000);

        var rng = new Random(9);
        var removed = new List<int>();
        var publishUs = new List<double>();
        long changes = 0, churnAllocated = 0;
        double churnSeconds = 0, quietSeconds = 0;
        long quietLookups = 0, churnLookups = 0;
        int d0 = 0, d1 = 0, d2 = 0;
        for (int round = 1; round <= 4; round++)
        {
            bool churning = round % 2 == 0;
            int gen0 = GC.CollectionCount(0), gen1 = GC.CollectionCount(1), gen2 = GC.CollectionCount(2);
            long allocated = GC.GetAllocatedBytesForCurrentThread();
            long done = 0;
            Volatile.Write(ref phase, round);
            var clock = Stopwatch.StartNew();
            var tick = Stopwatch.StartNew();
            while (clock.Elapsed.TotalSeconds < seconds)
            {
                if (churning)
                {
                    long due = (long)(clock.Elapsed.TotalSeconds * changesPerSecond);
                    for (; done < due; done++)
                    {
                        int op = rng.Next(3);
                        if (op == 0 || (op == 1 && removed.Count == 0))
                        {
                            int i = rng.Next(p.Count);
                            if (w.RemoveV4(0, p[i].Addr, p[i].Len)) removed.Add(i);
                        }
                        else if (op == 1)
                        {
                            int k = rng.Next(removed.Count);
                            int i = removed[k];
                            removed[k] = removed[^1];
                            removed.RemoveAt(removed.Count - 1);
                            w.AddOrReplaceV4(0, p[i].Addr, p[i].Len, sets[rng.Next(64)], 60, 0);
                        }
                        else
                        {
                            int i = rng.Next(p.Count);
                            w.AddOrReplaceV4(0, p[i].Addr, p[i].Len, sets[rng.Next(64)], 60, 0);
                        }
                    }
                    var t = Stopwatch.GetTimestamp();
                    w.Publish();
                    publishUs.Add(Stopwatch.GetElapsedTime(t).TotalMicroseconds);
                }
                double sleep = 10 - tick.Elapsed.TotalMilliseconds;
                if (sleep > 0) Thread.Sleep(TimeSpan.FromMilliseconds(sleep));
                tick.Restart();
            }
            double secs = clock.Elapsed.TotalSeconds;
            Volatile.Write(ref phase, 0);
            Thread.Sleep(50);
            long n = Interlocked.Read(ref phaseLookups[round]);
            if (churning)
            {
                changes += done;
                churnSeconds += secs;
                churnLookups += n;
                churnAllocated += GC.GetAllocatedBytesForCurrentThread() - allocated;
                d0 += GC.CollectionCount(0) - gen0; d1 += GC.CollectionCount(1) - gen1; d2 += GC.CollectionCount(2) - gen2;
            }
            else
            {
                quietSeconds += secs;
                quietLookups += n;
            }
            Console.WriteLine($"  round {round} ({(churning ? $"churn, {done / secs:N0} changes/s" : "quiet")}): {n / secs / 1e6:F2} M lookups/s; load average {File.ReadAllText("/proc/loadavg").Split(' ')[0]}");
        }
        Volatile.Write(ref stop, true);
        reader.Join();

        publishUs.Sort();
        double rateBase = quietLookups / quietSeconds, rateChurn = churnLookups / churnSeconds;
        Console.WriteLine($"changes: {changes:N0} in {churnSeconds:F1} s = {changes / churnSeconds:N0}/s, {publishUs.Count:N0} publishes " +
                          $"(publish p50 {publishUs[publishUs.Count / 2]:F0} us, p99 {publishUs[(int)(publishUs.Count * 0.99)]:F0} us, max {publishUs[^1]:F0} us)");
        Console.WriteLine($"lookups/s: quiet {rateBase / 1e6:F2} M, during churn {rateChurn / 1e6:F2} M, ratio {rateChurn / rateBase:F3}");
        Console.WriteLine($"writer allocated {churnAllocated / (double)Math.Max(1, changes) / 1024:F2} KiB per change; GCs during churn: gen0 {d0}, gen1 {d1}, gen2 {d2}; chunks reused {w.RecycledChunks:N0}");
        Console.WriteLine($"final: {w.Count:N0} prefixes held; load average {File.ReadAllText("/proc/loadavg").Trim()}");
    }
}
