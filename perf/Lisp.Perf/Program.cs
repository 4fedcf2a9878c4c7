using System.Diagnostics;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Environments;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.NativeAot;
using Lisp.MapCache;
using Lisp.Perf;

if (args.Length > 0 && args[0] == "control-table")
{
    ControlTableMeasure.Run(args.Length > 1 ? args.Skip(1).Select(int.Parse).ToArray() : [1_000, 100_000, 1_000_000]);
    return;
}
if (args.Length > 0 && args[0] == "churn")
{
    ChurnMeasure.Run(args.Length > 1 ? int.Parse(args[1]) : 1_000_000, args.Length > 2 ? int.Parse(args[2]) : 10_000, args.Length > 3 ? int.Parse(args[3]) : 10, !args.Contains("--no-recycle"));
    return;
}
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
            var w = new MapCacheWriter(threshold == int.MaxValue ? V4Lookup.Layout("hash") : new MapCacheOptions());
            foreach (var (a, l) in p) w.AddOrReplaceV4(0, a, l, Data.Rlocs, 60, 0);
            var load = sw.Elapsed;
            sw.Restart();
            var s = w.Publish();
            var publish = sw.Elapsed;
            long withWriter = GC.GetTotalMemory(true) - before;
            Console.WriteLine($"IPv4 {n,9:N0} prefixes, {(threshold == int.MaxValue ? "hash LPM" : $"default ({s.V4LayoutOf(0)})")}: lookup structures {s.LookupBytes / (double)n,7:F1} B/entry; " +
                              $"snapshot+writer heap {withWriter / (double)n,7:F1} B/entry; load {load.TotalMilliseconds:F0} ms, publish {publish.TotalMilliseconds:F0} ms");
            GC.KeepAlive(w);
            if (n < 16 * 1024) break;
        }
    }
    return;
}
// `dotnet run -c Release -- layouts [sizes...]` is a quick Stopwatch sweep (ns per lookup, best of 5 rounds)
// of every IPv4 layout forced, used to pick MapCacheOptions.Dir16Threshold; not a substitute for BenchmarkDotNet.
if (args.Length > 0 && args[0] == "layouts")
{
    var sizes = args.Length > 1 ? args.Skip(1).Select(int.Parse).ToArray() : new[] { 16, 64, 128, 256, 512, 1_000, 4_000, 16_000, 100_000, 1_000_000 };
    foreach (int n in sizes)
    {
        var p = Data.V4Prefixes(n);
        var dst = Data.V4Destinations(p, 4096);
        var line = $"{n,9:N0} prefixes:";
        foreach (var (name, o) in new[] { ("hash", V4Lookup.Layout("hash")), ("dir16", V4Lookup.Layout("dir16")), ("dir24", V4Lookup.Layout("dir24")) })
        {
            if (name == "dir24" && n < 4_000) continue;
            var s = V4Lookup.Build(p, o);
            double best = double.MaxValue;
            int sink = 0;
            int reps = Math.Max(20, 2_000_000 / dst.Length);
            for (int round = 0; round < 5; round++)
            {
                var sw = Stopwatch.StartNew();
                for (int r = 0; r < reps; r++)
                    for (int i = 0; i < dst.Length; i++)
                        if (s.TryLookupV4(0, dst[i], (uint)i, out var res)) sink += res.RlocIndex;
                best = Math.Min(best, sw.Elapsed.TotalNanoseconds / ((double)reps * dst.Length));
            }
            line += $"  {name} {best,6:F1} ns ({s.LookupBytes / 1024.0,8:F0} KiB)";
            GC.KeepAlive(sink);
        }
        Console.WriteLine(line);
    }
    return;
}
// `dotnet run -c Release -- batch [sizes...]`: TryLookupV4 one by one against LookupV4Batch (256 per batch) over the
// same 1M random destinations, the two interleaved round by round in one process (so load on a shared machine
// hits both alike); prints the best and the median of 11 rounds, ns per lookup. A cross-check of BatchLookup.
if (args.Length > 0 && args[0] == "batch")
{
    static string Measure(int count, Func<int, int, long> single, Func<int, int, long> batch)
    {
        var a = new List<double>();
        var b = new List<double>();
        long sink = 0;
        int reps = Math.Max(1, (1 << 20) / count);
        for (int round = 0; round < 11; round++)
        {
            var sw = Stopwatch.StartNew();
            for (int r = 0; r < reps; r++) sink += single(0, count);
            a.Add(sw.Elapsed.TotalNanoseconds / ((double)reps * count));
            sw.Restart();
            for (int r = 0; r < reps; r++)
                for (int i = 0; i < count; i += 256) sink += batch(i, Math.Min(256, count - i));
            b.Add(sw.Elapsed.TotalNanoseconds / ((double)reps * count));
        }
        a.Sort();
        b.Sort();
        return $"single best {a[0],6:F1} median {a[5],6:F1} ns; batch best {b[0],6:F1} median {b[5],6:F1} ns ({sink & 1})";
    }
    var results = new LookupResult[256];
    foreach (int n in args.Length > 1 ? args.Skip(1).Select(int.Parse).ToArray() : new[] { 100_000, 1_000_000 })
    {
        var p = Data.V4Prefixes(n);
        var s = V4Lookup.Build(p, new MapCacheOptions());
        foreach (int count in new[] { 1 << 20, 4096 })
        {
            var dst = Data.V4Destinations(p, count);
            Console.WriteLine($"IPv4 {n,9:N0} prefixes, {count,9:N0} destinations: " + Measure(count,
                (start, len) =>
                {
                    long sum = 0;
                    foreach (uint d in dst.AsSpan(start, len))
                        if (s.TryLookupV4(0, d, d, out var r)) sum += r.RlocIndex + r.EntryIndex;
                    return sum;
                },
                (start, len) =>
                {
                    long sum = 0;
                    var chunk = dst.AsSpan(start, len);
                    s.LookupV4Batch(0, chunk, chunk, results);
                    foreach (ref readonly var r in results.AsSpan(0, len))
                        if (r.Found) sum += r.RlocIndex + r.EntryIndex;
                    return sum;
                }));
        }
    }
    {
        var p = Data.V6Prefixes(100_000);
        var w = new MapCacheWriter();
        foreach (var (a, l) in p) w.AddOrReplaceV6(0, a, l, Data.Rlocs, 60, 0);
        var s = w.Publish();
        foreach (int count in new[] { 1 << 20, 4096 })
        {
            var dst = Data.V6Destinations(p, count);
            var flows = dst.Select(d => (uint)d.Lo).ToArray();
            Console.WriteLine($"IPv6 {100_000,9:N0} prefixes, {count,9:N0} destinations: " + Measure(count,
                (start, len) =>
                {
                    long sum = 0;
                    for (int i = start; i < start + len; i++)
                        if (s.TryLookupV6(0, dst[i], flows[i], out var r)) sum += r.RlocIndex + r.EntryIndex;
                    return sum;
                },
                (start, len) =>
                {
                    long sum = 0;
                    s.LookupV6Batch(0, dst.AsSpan(start, len), flows.AsSpan(start, len), results);
                    foreach (ref readonly var r in results.AsSpan(0, len))
                        if (r.Found) sum += r.RlocIndex + r.EntryIndex;
                    return sum;
                }));
        }
    }
    return;
}
// `dotnet run -c Release -- v6 [sizes...]`: the same quick sweep for IPv6 (default layout).
if (args.Length > 0 && args[0] == "v6")
{
    foreach (int n in args.Length > 1 ? args.Skip(1).Select(int.Parse).ToArray() : new[] { 1_000, 100_000 })
    {
        var p = Data.V6Prefixes(n);
        var dst = Data.V6Destinations(p, 4096);
        var w = new MapCacheWriter();
        var sw0 = Stopwatch.StartNew();
        foreach (var (a, l) in p) w.AddOrReplaceV6(0, a, l, Data.Rlocs, 60, 0);
        var s = w.Publish();
        double publishMs = sw0.Elapsed.TotalMilliseconds;
        double best = double.MaxValue;
        int sink = 0;
        int reps = Math.Max(20, 1_000_000 / dst.Length);
        for (int round = 0; round < 5; round++)
        {
            var sw = Stopwatch.StartNew();
            for (int r = 0; r < reps; r++)
                for (int i = 0; i < dst.Length; i++)
                    if (s.TryLookupV6(0, dst[i], (uint)i, out var res)) sink += res.RlocIndex;
            best = Math.Min(best, sw.Elapsed.TotalNanoseconds / ((double)reps * dst.Length));
        }
        GC.KeepAlive(sink);
        Console.WriteLine($"IPv6 {n,9:N0} prefixes: {best,6:F1} ns; lookup structures {s.LookupBytes / (double)n:F0} B/entry; load+publish {publishMs:F0} ms");
    }
    return;
}
// `--runtimes jit,aot-v2,aot-v3[,aot-v2-v256]` (any subset; default: BenchmarkDotNet's own job, i.e. the JIT) runs every selected
// benchmark once per runtime, side by side in one table: "jit" is RyuJIT with tiered PGO on this CPU (here
// AVX-512), "aot-v2"/"aot-v3" are native-AOT builds of the benchmark at IlcInstructionSet x86-64-v2 (the
// shipped floor, src/Lisp.Appliance/Lisp.Appliance.csproj) and x86-64-v3 (AVX2). The ILCompiler is the one the
// SDK brings (no package version named). Jobs are ShortRun-sized (3 warmups, 3 iterations, 1 launch) unless
// `--iterations N`. Do not combine with `--job`.
var rest = new List<string>();
string? runtimes = null;
int iterations = 3;
for (int i = 0; i < args.Length; i++)
{
    if (args[i] == "--runtimes" && i + 1 < args.Length) runtimes = args[++i];
    else if (args[i] == "--iterations" && i + 1 < args.Length) iterations = int.Parse(args[++i]);
    else rest.Add(args[i]);
}
if (runtimes is null)
{
    BenchmarkSwitcher.FromAssembly(typeof(V4Lookup).Assembly).Run(rest.ToArray());
    return;
}
var config = ManualConfig.Create(DefaultConfig.Instance);
foreach (var name in runtimes.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
{
    var job = Job.Default.WithWarmupCount(3).WithIterationCount(iterations).WithLaunchCount(1).WithId(name);
    job = name switch
    {
        "jit" => job.WithRuntime(CoreRuntime.Core10_0),
        "aot-v2" or "aot-v3" or "aot-v2-v256" => job.WithRuntime(NativeAotRuntime.Net10_0).WithToolchain(
            NativeAotToolchain.CreateBuilder()
                .UseNuGet() // no version: the generated project relies on PublishAot and the SDK's own ILCompiler
                .IlcInstructionSet(name == "aot-v3" ? "x86-64-v3" : "x86-64-v2")
                .TargetFrameworkMoniker("net10.0")
                .DisplayName(name)
                .ToToolchain()),
        _ => throw new ArgumentException($"--runtimes: unknown runtime '{name}' (jit, aot-v2, aot-v3, aot-v2-v256)"),
    };
    // aot-v2-v256: the x86-64-v2 build with ExactTable forced to compare tags as one (emulated) Vector256, the
    // form the code had before; only to measure that choice against the two-Vector128 form.
    if (name == "aot-v2-v256") job = job.WithArguments([new MsBuildArgument("/p:LispTagCompare=v256")]);
    config.AddJob(job);
}
BenchmarkSwitcher.FromAssembly(typeof(V4Lookup).Assembly).Run(rest.ToArray(), config);
