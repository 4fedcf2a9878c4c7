using Lisp.Fuzz;
using Lisp.TestSupport;
using Xunit;

namespace Lisp.Wire.Tests;

/// <summary>
/// Replays the fuzz corpora (issue 12): every file under tests/fuzz-corpus/TARGET/ (minimized crashes and hangs,
/// plus a selection of afl++ queue entries) and the afl seeds under fuzz/seeds/TARGET/ go through the same target
/// functions the afl++ harness runs (fuzz/Lisp.Fuzz.Targets), in-process. No exception may escape (a parser refuses
/// bad input with a status or a ConfigException, it never throws past its boundary) and each input must finish
/// within a generous bound (a hang guard only, not a speed check). See FUZZING.md.
/// </summary>
public sealed class FuzzCorpusReplayTests
{
    private static readonly TimeSpan HangGuard = TimeSpan.FromSeconds(30);

    public static TheoryData<string> Targets()
    {
        var data = new TheoryData<string>();
        foreach (var t in FuzzTargets.Names) data.Add(t);
        return data;
    }

    private static List<string> Inputs(string target)
    {
        var files = new List<string>();
        foreach (var dir in new[] { TestFiles.InProject("tests", "fuzz-corpus", target), TestFiles.InProject("fuzz", "seeds", target) })
        {
            if (Directory.Exists(dir)) files.AddRange(Directory.GetFiles(dir, "*", SearchOption.AllDirectories).Where(f => !f.EndsWith(".md", StringComparison.Ordinal)));
        }
        files.Sort(StringComparer.Ordinal);
        return files;
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public async Task Every_corpus_input_is_refused_or_accepted_without_an_exception_or_a_hang(string target)
    {
        var run = FuzzTargets.Get(target);
        var inputs = Inputs(target);
        Assert.NotEmpty(inputs);
        var failures = new List<string>();
        foreach (var file in inputs)
        {
            var bytes = File.ReadAllBytes(file);
            var task = Task.Factory.StartNew(() => run(bytes), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
            try
            {
                await task.WaitAsync(HangGuard);
            }
            catch (TimeoutException)
            {
                failures.Add($"{file}: still running after {HangGuard.TotalSeconds:0} s (hang)");
            }
#pragma warning disable CA1031 // every exception out of a target is a finding, reported with its input
            catch (Exception e)
#pragma warning restore CA1031
            {
                failures.Add($"{file}: {e}");
            }
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }
}
