namespace Lisp.TestSupport;

/// <summary>Locates ../shared (spec digest, vectors, captures, examples) from a test's output folder.</summary>
public static class SharedFiles
{
    private static readonly Lazy<string> Root = new(Find);

    /// <summary>Absolute path of the shared folder beside the project root.</summary>
    public static string Dir => Root.Value;

    /// <summary>The project root (the folder holding LispDecentAppliance.sln).</summary>
    public static string ProjectRoot { get; private set; } = "";

    public static string Path(params string[] parts) => System.IO.Path.Combine([Dir, .. parts]);

    private static string Find()
    {
        var d = new DirectoryInfo(AppContext.BaseDirectory);
        while (d is not null && !File.Exists(System.IO.Path.Combine(d.FullName, "LispDecentAppliance.sln")))
        {
            d = d.Parent;
        }
        if (d is null) throw new DirectoryNotFoundException("LispDecentAppliance.sln not found above " + AppContext.BaseDirectory);
        ProjectRoot = d.FullName;
        var shared = System.IO.Path.Combine(d.Parent!.FullName, "shared");
        if (!Directory.Exists(shared)) throw new DirectoryNotFoundException($"../shared not found beside {d.FullName}");
        return shared;
    }
}
