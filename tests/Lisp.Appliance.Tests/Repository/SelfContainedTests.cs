using System.Text.RegularExpressions;
using Lisp.TestSupport;

namespace Lisp.Appliance.Tests.Repository;

/// <summary>
/// A user's clone must be enough: nothing in the tree may reach for the team's workspace folder that sits beside
/// the checkout on developer machines (vectors, captures and examples are copied into the repository instead).
/// </summary>
public sealed class SelfContainedTests
{
    // Built from pieces so this file does not match itself: a parent-directory step followed by the folder name,
    // with either separator, or the same path given to Path.Combine as separate strings.
    private static readonly Regex OutsideReference = new(
        @"\.\.[/\\]" + "shared" + @"\b|""\.\.""\s*,\s*""" + "shared" + @"""",
        RegexOptions.Compiled);

    private static readonly HashSet<string> Checked = new(StringComparer.Ordinal)
    {
        ".cs", ".csproj", ".props", ".targets", ".sln", ".slnx", ".sh", ".toml", ".json", ".c", ".h", ".py",
        ".yml", ".yaml", ".txt", ".tsv", ".html", ".js", ".editorconfig", ".gitignore",
    };

    private static readonly HashSet<string> SkippedDirs = new(StringComparer.Ordinal)
    {
        ".git", "bin", "obj", "artifacts", "BenchmarkDotNet.Artifacts", "TestResults", "node_modules",
    };

    [Fact]
    public void No_source_test_script_or_config_refers_to_a_folder_beside_the_checkout()
    {
        var root = TestFiles.ProjectRoot;
        var offenders = new List<string>();
        int scanned = 0;
        foreach (var file in Walk(root))
        {
            var name = Path.GetFileName(file);
            var ext = Path.GetExtension(file);
            bool isScript = name is "run" or "build.sh" || ext.Length == 0 && IsShebangScript(file);
            if (!Checked.Contains(ext) && !Checked.Contains(name) && !isScript) continue;
            scanned++;
            int lineNo = 0;
            foreach (var line in File.ReadLines(file))
            {
                lineNo++;
                if (OutsideReference.IsMatch(line)) offenders.Add($"{Path.GetRelativePath(root, file)}:{lineNo}: {line.Trim()}");
            }
        }
        // The tree has well over a hundred such files; a walk that found almost none looked in the wrong place.
        Assert.True(scanned > 100, $"only {scanned} files scanned under {root}");
        Assert.True(offenders.Count == 0, "files that reach outside the repository:\n" + string.Join("\n", offenders));
    }

    [Fact]
    public void The_pattern_catches_the_forms_it_is_meant_to_catch()
    {
        string up = "..";
        Assert.Matches(OutsideReference, $"File.ReadLines(\"{up}/shared/vectors/x.tsv\")");
        Assert.Matches(OutsideReference, $"{up}\\shared\\vectors");
        Assert.Matches(OutsideReference, $"Path.Combine(root, \"{up}\", \"shared\", \"vectors\")");
        Assert.DoesNotMatch(OutsideReference, "state shared by the workers");
        Assert.DoesNotMatch(OutsideReference, "tests/vectors/decent-index.tsv");
    }

    [Fact]
    public void Every_vector_the_tests_read_is_in_the_repository_with_its_provenance()
    {
        var readme = File.ReadAllText(TestFiles.Vector("README.md"));
        foreach (var f in Directory.EnumerateFiles(TestFiles.VectorsDir, "*", SearchOption.AllDirectories))
        {
            var rel = Path.GetRelativePath(TestFiles.VectorsDir, f).Replace('\\', '/');
            if (rel == "README.md") continue;
            Assert.True(readme.Contains($"`{rel}`", StringComparison.Ordinal), $"tests/vectors/README.md does not name {rel}");
        }
        Assert.True(new FileInfo(TestFiles.Vector("captures", "lisp_eid_register.pcap")).Length > 24);
        Assert.Contains(File.ReadLines(TestFiles.Vector("decent-index.tsv")), l => l.Length > 0 && !l.StartsWith('#'));
    }

    private static IEnumerable<string> Walk(string dir)
    {
        foreach (var f in Directory.EnumerateFiles(dir)) yield return f;
        foreach (var d in Directory.EnumerateDirectories(dir))
        {
            if (SkippedDirs.Contains(Path.GetFileName(d))) continue;
            foreach (var f in Walk(d)) yield return f;
        }
    }

    private static bool IsShebangScript(string file)
    {
        using var s = File.OpenRead(file);
        Span<byte> head = stackalloc byte[2];
        return s.Read(head) == 2 && head[0] == (byte)'#' && head[1] == (byte)'!';
    }
}
