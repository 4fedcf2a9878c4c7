using System.Diagnostics;
using BenchmarkDotNet.Running;
using Lisp.MapCache;
using Lisp.Perf;

// `dotnet run -c Release -- memory` prints bytes per entry; anything else goes to BenchmarkDotNet.
if (args.Length > 0 && args[0] == "memory")
{
    foreach (int n in new[] { 1_000, 100_000, 1_000_000 })
    {
        var p = Data.V4Prefixes(n);
        foreach (int threshold in new[] { 16 * 1024, int.MaxValue })
        {
            GC.Collect(2, GCCollectionMode.Forced, true, true);
            long before = GC.GetTotalMemory(true);
            var sw = Stopwatch.StartNew();
            var w = new MapCacheWriter(new MapCacheOptions { Dir24Threshold = threshold });
            foreach (var (a, l) in p) w.AddOrReplaceV4(0, a, l, Data.Rlocs, 60, 0);
            var load = sw.Elapsed;
            sw.Restart();
            var s = w.Publish();
            var publish = sw.Elapsed;
            long withWriter = GC.GetTotalMemory(true) - before;
            Console.WriteLine($"IPv4 {n,9:N0} prefixes, {(threshold == int.MaxValue ? "hash LPM" : "default ")}: lookup structures {s.LookupBytes / (double)n,7:F1} B/entry; " +
                              $"snapshot+writer heap {withWriter / (double)n,7:F1} B/entry; load {load.TotalMilliseconds:F0} ms, publish {publish.TotalMilliseconds:F0} ms");
            GC.KeepAlive(w);
            if (n < 16 * 1024) break;
        }
    }
    return;
}
BenchmarkSwitcher.FromAssembly(typeof(V4Lookup).Assembly).Run(args);
