using System.Text.Json;
using Lisp.Wire;

namespace Lisp.Appliance.Cli;

/// <summary>`lisp-decent decode`: turn hex dumps, seed vector files or pcap captures into readable messages.</summary>
public static class DecodeCommand
{
    public const string Help = """
        Usage: lisp-decent decode [options] [HEX ...]

        Decodes LISP control messages (UDP 4342 payloads) and prints every field the way an operator
        reads them: an ECM down to its inner IP/UDP headers and inner message, every EID in its text form.

        Arguments:
          HEX ...            one message per argument; spaces, colons and a leading 0x are ignored

        Options:
          --file FILE        read messages from FILE: a pcap capture (UDP 4341/4342 payloads), or a text
                             file with one hex message per line (the last column of each line; lines
                             starting with # are skipped), e.g. tests/vectors/seed-map-requests.txt
          --json             print JSON (one array of decoded messages) instead of text
          -h, --help         show this help

        Exit status: 0 when every message decoded, 1 when any was malformed (each says why), 2 on usage errors.
        """;

    public static int Run(IReadOnlyList<string> args, TextWriter stdout, TextWriter stderr)
    {
        var cl = CommandLine.Parse(args, ["file"], ["json"]);
        if (cl.Has("help"))
        {
            stdout.WriteLine(Help);
            return 0;
        }
        if (cl.Error is not null)
        {
            stderr.WriteLine($"decode: {cl.Error} (see lisp-decent decode --help)");
            return 2;
        }
        var inputs = new List<(string Source, byte[]? Bytes, string? Error)>();
        foreach (var h in cl.Positional)
        {
            inputs.Add(HexInput("argument", h));
        }
        foreach (var f in cl.Values("file"))
        {
            if (!LoadFile(f, inputs, stderr)) return 2;
        }
        if (inputs.Count == 0)
        {
            stderr.WriteLine("decode: give at least one HEX message or --file (see lisp-decent decode --help)");
            return 2;
        }

        bool allOk = true;
        var results = new List<DecodedMessage>();
        foreach (var (source, bytes, error) in inputs)
        {
            if (bytes is null)
            {
                allOk = false;
                results.Add(new DecodedMessage(source, 0, false, error, null));
                continue;
            }
            var st = ControlMessage.TryDecode(bytes, out var msg);
            if (!st.IsOk || msg is null)
            {
                allOk = false;
                results.Add(new DecodedMessage(source, bytes.Length, false, $"malformed: {st}", null));
            }
            else
            {
                results.Add(new DecodedMessage(source, bytes.Length, true, null, JsonNodeOf(MessageDescriber.Describe(msg))));
            }
        }

        if (cl.Has("json"))
        {
            stdout.WriteLine(JsonSerializer.Serialize(results, ApplianceJsonContext.Default.ListDecodedMessage));
        }
        else
        {
            foreach (var r in results)
            {
                stdout.WriteLine($"# {r.Source} ({r.Length} bytes)");
                if (!r.Ok)
                {
                    stdout.WriteLine($"  error: {r.Error}");
                }
                else
                {
                    Print(r.Message!, stdout, 0);
                }
                stdout.WriteLine();
            }
        }
        return allOk ? 0 : 1;
    }

    private static void Print(DecodedField n, TextWriter w, int indent)
    {
        w.Write(new string(' ', indent * 2));
        w.WriteLine(n.Value is null ? n.Name : $"{n.Name}: {n.Value}");
        if (n.Children is null) return;
        foreach (var c in n.Children) Print(c, w, indent + 1);
    }

    private static DecodedField JsonNodeOf(DescriptionNode n) =>
        new(n.Label, n.Value, n.Children.Count == 0 ? null : n.Children.Select(JsonNodeOf).ToList());

    private static (string, byte[]?, string?) HexInput(string source, string text)
    {
        var clean = new System.Text.StringBuilder();
        string t = text.Trim();
        if (t.StartsWith("0x", StringComparison.OrdinalIgnoreCase)) t = t[2..];
        foreach (char c in t)
        {
            if (c is ' ' or ':' or '\t' or '-') continue;
            clean.Append(c);
        }
        try
        {
            return (source, Convert.FromHexString(clean.ToString()), null);
        }
        catch (FormatException)
        {
            return (source, null, $"not hex: '{(text.Length > 40 ? text[..40] + "..." : text)}'");
        }
    }

    private static bool LoadFile(string path, List<(string, byte[]?, string?)> inputs, TextWriter stderr)
    {
        byte[] data;
        try
        {
            data = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            stderr.WriteLine($"decode: cannot read {path}: {e.Message}");
            return false;
        }
        if (data.Length >= 4 && (BitConverter.ToUInt32(data, 0) is 0xa1b2c3d4 or 0xd4c3b2a1 or 0xa1b23c4d or 0x4d3cb2a1))
        {
            var st = PcapFile.TryReadUdp(data, out var grams);
            foreach (var g in grams)
            {
                if (g.SourcePort is 4341 or 4342 || g.DestinationPort is 4341 or 4342)
                {
                    inputs.Add(($"{Path.GetFileName(path)} frame {g.FrameNumber} {g.Source}:{g.SourcePort} -> {g.Destination}:{g.DestinationPort}", g.Payload, null));
                }
            }
            if (!st.IsOk) inputs.Add(($"{Path.GetFileName(path)}", null, $"capture file damaged: {st}"));
            return true;
        }
        int lineNo = 0;
        foreach (var line in System.Text.Encoding.UTF8.GetString(data).Split('\n'))
        {
            lineNo++;
            var l = line.Trim();
            if (l.Length == 0 || l.StartsWith('#')) continue;
            var cols = l.Split(['\t', ' '], StringSplitOptions.RemoveEmptyEntries);
            inputs.Add(HexInput($"{Path.GetFileName(path)} line {lineNo}", cols[^1]));
        }
        return true;
    }
}

/// <summary>JSON shape of one decoded message.</summary>
public sealed record DecodedMessage(string Source, int Length, bool Ok, string? Error, DecodedField? Message);

/// <summary>JSON shape of one decoded field (a label, its value, and nested fields).</summary>
public sealed record DecodedField(string Name, string? Value, List<DecodedField>? Children);
