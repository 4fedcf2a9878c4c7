using System.Text.RegularExpressions;
using Tomlyn;
using Tomlyn.Syntax;

namespace Lisp.Appliance.Config;

/// <summary>
/// Turns Tomlyn's syntax diagnostics and conversion errors into config errors that name the key (<c>node.name</c>,
/// <c>site[1].key</c>) and the line, and say what is wrong in words. Tomlyn's model merges a duplicate key or table
/// silently (the last one wins); its syntax tree reports them, so <see cref="ConfigLoader.Parse"/> reads the tree first.
/// </summary>
internal static partial class TomlSyntax
{
    /// <summary>
    /// Tomlyn 2.10.2 keeps only the last group of an array of tables whose headers are split by another array of tables
    /// (<c>[[site]] [[database]] [[site]]</c> reads one site; valid TOML appends). Rather than lose sites or database
    /// mappings without a word, a config whose model holds fewer elements than its syntax tree has headers is refused,
    /// naming the header that was dropped and the fix.
    /// </summary>
    public static void CheckTableArraysKept(DocumentSyntax doc, Tomlyn.Model.TomlTable root, string source)
    {
        var headers = new Dictionary<string, List<int>>(StringComparer.Ordinal);
        foreach (var table in doc.Tables)
        {
            if (table is not TableArraySyntax) continue;
            string name = KeyText(table.Name);
            if (!headers.TryGetValue(name, out var lines)) headers[name] = lines = [];
            lines.Add(table.Span.Start.Line + 1);
        }
        foreach (var (name, lines) in headers)
        {
            object? node = root;
            foreach (var part in name.Split('.'))
            {
                node = node is Tomlyn.Model.TomlTable t && t.TryGetValue(part, out var v) ? v : null;
            }
            if (node is not Tomlyn.Model.TomlTableArray array || array.Count >= lines.Count) continue;
            throw new ConfigException($"{source}:{lines[0]}: [[{name}]] is written {lines.Count} times (lines {string.Join(", ", lines)}), " +
                $"split by other [[...]] tables, and the TOML reader kept only {array.Count}: write all the [[{name}]] tables one after another");
        }
    }

    /// <summary>The first error of a document whose syntax tree has errors.</summary>
    public static ConfigException Error(DocumentSyntax doc, string source)
    {
        var d = doc.Diagnostics.First(x => x.Kind == DiagnosticMessageKind.Error);
        var keys = KeyLines(doc);
        int line = d.Span.Start.Line + 1;   // the diagnostics count lines from 0
        var dup = DuplicateRegex().Match(d.Message);
        if (dup.Success)
        {
            // The key as written on the line (site[0].name); Tomlyn's own name leaves out the index of a first [[table]].
            bool known = keys.TryGetValue(line, out var at);
            string key = known ? at.Key : Normalize(dup.Groups["key"].Value);
            string what = known && at.IsTable ? $"the table [{key}] is defined twice" : "defined twice";
            return new ConfigException($"{source}:{line}: {key}: {what} (first at line {dup.Groups["line"].Value}); each key and table may appear once");
        }
        return new ConfigException(Located(source, line, keys, Reason(d.Message)));
    }

    /// <summary>An error Tomlyn raised while converting a syntactically valid document into its model.</summary>
    public static ConfigException ConversionError(DocumentSyntax doc, TomlException e, string source)
    {
        var d = e.Diagnostics.FirstOrDefault(x => x.Kind == DiagnosticMessageKind.Error);
        string message = d?.Message ?? e.Message;
        int line = d is not null ? d.Span.Start.Line + 1 : e.Line ?? 0;
        return new ConfigException(Located(source, line, KeyLines(doc), Reason(message)));
    }

    private static string Located(string source, int line, Dictionary<int, (string Key, bool IsTable)> keys, string reason) =>
        keys.TryGetValue(line, out var at)
            ? $"{source}:{line}: {at.Key}: {reason}"
            : line > 0 ? $"{source}:{line}: {reason}" : $"{source}: {reason}";

    /// <summary>Tomlyn's message without its position prefixes and converter wrapping, in the operator's words where we know better ones.</summary>
    private static string Reason(string message)
    {
        // "Exception while trying to convert TOML value to type '...' using converter '...'. Reason: (2,16) : error : X"
        int r = message.LastIndexOf("Reason:", StringComparison.Ordinal);
        if (r >= 0) message = message[(r + "Reason:".Length)..];
        message = PositionRegex().Replace(message, "").Trim();
        var integer = BadIntegerRegex().Match(message);
        if (integer.Success) return $"{integer.Groups[1].Value} is not a TOML integer (whole numbers from -2^63 to 2^63-1)";
        var control = ControlRegex().Match(message);
        if (control.Success) return $"contains the control character U+{Convert.ToInt32(control.Groups[1].Value, 16):X4}; control characters are not allowed";
        return "not valid TOML: " + message;
    }

    /// <summary>Line (1-based) -> the key or table header written on it, named as the config errors name keys.</summary>
    private static Dictionary<int, (string Key, bool IsTable)> KeyLines(DocumentSyntax doc)
    {
        var lines = new Dictionary<int, (string, bool)>();
        foreach (var kv in doc.KeyValues) Add(kv, "");
        var arrayCounts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var table in doc.Tables)
        {
            string name = KeyText(table.Name);
            if (table is TableArraySyntax)
            {
                arrayCounts[name] = arrayCounts.TryGetValue(name, out int n) ? n + 1 : 0;
                name = $"{name}[{arrayCounts[name]}]";
            }
            lines.TryAdd(table.Span.Start.Line + 1, (name, true));
            foreach (var kv in table.Items) Add(kv, name + ".");
        }
        return lines;

        void Add(KeyValueSyntax? kv, string prefix)
        {
            if (kv?.Key is null) return;
            lines.TryAdd(kv.Span.Start.Line + 1, (prefix + KeyText(kv.Key), false));
        }
    }

    private static string KeyText(KeySyntax? key)
    {
        if (key is null) return "?";
        var parts = new List<string> { Part(key.Key) };
        foreach (var dotted in key.DotKeys) parts.Add(Part(dotted.Key));
        return string.Join('.', parts);

        static string Part(BareKeyOrStringValueSyntax? k) => k switch
        {
            BareKeySyntax b => b.Key?.Text ?? "?",
            StringValueSyntax s => s.Value ?? "?",
            _ => "?",
        };
    }

    /// <summary>Tomlyn names an element of an array of tables "site.[1].key"; the config errors say "site[1].key".</summary>
    private static string Normalize(string key) => key.Replace(".[", "[", StringComparison.Ordinal);

    [GeneratedRegex(@"^The key `(?<key>[^`]+)` is already defined at \((?<line>\d+),(?<col>\d+)\)")]
    private static partial Regex DuplicateRegex();

    [GeneratedRegex(@"\(\d+,\d+\)\s*:\s*error\s*:\s*")]
    private static partial Regex PositionRegex();

    [GeneratedRegex(@"^Unable to parse integer `([^`]*)`")]
    private static partial Regex BadIntegerRegex();

    [GeneratedRegex(@"^Invalid control character found \\u([0-9a-fA-F]+)")]
    private static partial Regex ControlRegex();
}
