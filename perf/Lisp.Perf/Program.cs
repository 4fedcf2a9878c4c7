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
