namespace Lisp.Appliance.Cli;

/// <summary>
/// Minimal option parser: "--name value", "--name=value", boolean "--flag", and positional arguments.
/// Unknown options are an error that names the option, so typos never silently change behaviour.
/// </summary>
public sealed class CommandLine
{
    private readonly Dictionary<string, List<string>> _options = new(StringComparer.Ordinal);
    private readonly HashSet<string> _flags = new(StringComparer.Ordinal);

    public List<string> Positional { get; } = [];
    public string? Error { get; private set; }

    /// <param name="valueOptions">options that take a value (without leading dashes)</param>
    /// <param name="flagOptions">options that are on/off</param>
    public static CommandLine Parse(IReadOnlyList<string> args, IEnumerable<string> valueOptions, IEnumerable<string> flagOptions)
    {
        var c = new CommandLine();
        var values = new HashSet<string>(valueOptions, StringComparer.Ordinal);
        var flags = new HashSet<string>(flagOptions, StringComparer.Ordinal) { "help" };
        for (int i = 0; i < args.Count; i++)
        {
            string a = args[i];
            if (a == "-h") a = "--help";
            if (a.StartsWith("--", StringComparison.Ordinal) && a.Length > 2)
            {
                string name = a[2..];
                string? inline = null;
                int eq = name.IndexOf('=');
                if (eq >= 0)
                {
                    inline = name[(eq + 1)..];
                    name = name[..eq];
                }
                if (flags.Contains(name) && inline is null)
                {
                    c._flags.Add(name);
                }
                else if (values.Contains(name))
                {
                    string? v = inline;
                    if (v is null)
                    {
                        if (i + 1 >= args.Count)
                        {
                            c.Error ??= $"option --{name} needs a value";
                            continue;
                        }
                        v = args[++i];
                    }
                    if (!c._options.TryGetValue(name, out var list)) c._options[name] = list = [];
                    list.Add(v);
                }
                else
                {
                    c.Error ??= $"unknown option --{name}";
                }
            }
            else
            {
                c.Positional.Add(a);
            }
        }
        return c;
    }

    public bool Has(string flag) => _flags.Contains(flag);
    public string? Value(string name) => _options.TryGetValue(name, out var l) ? l[^1] : null;
    public IReadOnlyList<string> Values(string name) => _options.TryGetValue(name, out var l) ? l : [];
}
