namespace Lisp.TestSupport;

/// <summary>
/// Locates the project's own test data (tests/vectors: seed vectors, third-party captures) and the project root
/// from a test's output folder. Everything a test reads lives inside the repository: a user's clone is enough.
/// </summary>
public static class TestFiles
{
    private static readonly Lazy<string> Root = new(FindRoot);

    /// <summary>The project root (the folder holding LispDecentAppliance.sln).</summary>
    public static string ProjectRoot => Root.Value;

    /// <summary>tests/vectors under the project root.</summary>
    public static string VectorsDir => System.IO.Path.Combine(ProjectRoot, "tests", "vectors");

    /// <summary>A file under tests/vectors, e.g. <c>Vector("captures", "lisp_ipv6.pcap")</c>; throws when it is missing.</summary>
    public static string Vector(params string[] parts)
    {
        var p = System.IO.Path.Combine([VectorsDir, .. parts]);
        if (!File.Exists(p)) throw new FileNotFoundException("test vector missing from the repository", p);
        return p;
    }

    /// <summary>A path under the project root.</summary>
    public static string InProject(params string[] parts) => System.IO.Path.Combine([ProjectRoot, .. parts]);

    private static string FindRoot()
    {
        var d = new DirectoryInfo(AppContext.BaseDirectory);
        while (d is not null && !File.Exists(System.IO.Path.Combine(d.FullName, "LispDecentAppliance.sln")))
        {
            d = d.Parent;
        }
        if (d is null) throw new DirectoryNotFoundException("LispDecentAppliance.sln not found above " + AppContext.BaseDirectory);
        return d.FullName;
    }
}
