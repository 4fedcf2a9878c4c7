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
        LISP data packets (UDP 4341 payloads) show their LISP header and inner IP packet.

        Arguments:
          HEX ...            one message per argument; spaces, colons and a leading 0x are ignored

        Options:
          --file FILE        read messages from FILE ("-" = standard input; at most 64 MiB): a pcap or
                             pcapng capture (UDP 4341/4342 payloads; link types 0 NULL, 1 Ethernet,
                             12/101 raw IP, 108 LOOP, 113 Linux SLL, 228 IPv4, 229 IPv6, 276 Linux SLL2,
                             i.e. tcpdump -i any; IP fragments are skipped and counted), or a text file
                             with one hex message per line (the last column of each line; lines
                             starting with # are skipped), e.g. tests/vectors/seed-map-requests.txt
          --json             print JSON (one array of decoded messages) instead of text
          -h, --help         show this help

        Exit status: 0 when every message decoded; 1 when any was malformed or an input was refused (each says
        why: a damaged capture, an unsupported link type, a capture without LISP datagrams, a --file over the
        64 MiB limit); 2 on usage errors and unreadable files.
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
        var inputs = new List<Input>();
        foreach (var h in cl.Positional)
        {
            inputs.Add(HexInput("argument", h));
        }
        foreach (var f in cl.Values("file"))
        {
            if (LoadFile(f, inputs, stderr) is int rc) return rc;
        }
        if (inputs.Count == 0)
        {
            stderr.WriteLine("decode: give at least one HEX message or --file (see lisp-decent decode --help)");
            return 2;
        }

        bool allOk = true;
        var results = new List<DecodedMessage>();
        foreach (var (source, bytes, error, data) in inputs)
        {
            if (bytes is null)
            {
                allOk = false;
                results.Add(new DecodedMessage(source, 0, false, error, null));
                continue;
            }
            DescriptionNode? node = null;
            WireStatus st;
            if (data)
            {
                st = DataPacketDescriber.TryDescribe(bytes, out node);
            }
            else
            {
                st = ControlMessage.TryDecode(bytes, out var msg);
                if (st.IsOk && msg is not null) node = MessageDescriber.Describe(msg);
            }
            if (!st.IsOk || node is null)
            {
                allOk = false;
                results.Add(new DecodedMessage(source, bytes.Length, false, $"malformed: {st}", null));
            }
            else
            {
                results.Add(new DecodedMessage(source, bytes.Length, true, null, JsonNodeOf(node)));
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

    private static Input HexInput(string source, string text)
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
            return new Input(source, Convert.FromHexString(clean.ToString()), null, false);
        }
        catch (FormatException)
        {
            return new Input(source, null, $"not hex: '{(text.Length > 40 ? text[..40] + "..." : text)}'", false);
        }
    }

    private static readonly Func<ushort, ushort, bool> LispPorts = (s, d) => s is 4341 or 4342 || d is 4341 or 4342;

    /// <summary>
    /// Reads one --file input (at most <see cref="BoundedInput.Limit"/> bytes, "-" = standard input) and adds its
    /// messages. Returns an exit status to stop with (2 unreadable, 1 over the size limit), or null to go on.
    /// </summary>
    private static int? LoadFile(string path, List<Input> inputs, TextWriter stderr)
    {
        string name = path == "-" ? "stdin" : Path.GetFileName(path);
        switch (BoundedInput.Read(path, BoundedInput.Limit, out var data, out var why))
        {
            case BoundedInput.Outcome.Unreadable:
                stderr.WriteLine($"decode: cannot read {path}: {why}");
                return 2;
            case BoundedInput.Outcome.TooLarge:
                stderr.WriteLine($"decode: {(path == "-" ? "standard input" : path)}: input larger than the {BoundedInput.LimitText} limit; decode reads at most that much " +
                                 "from each --file (cut a capture into parts with editcap -c or tcpdump -C)");
                return 1;
        }
        if (CaptureReader.Detect(data) == CaptureFormat.NotACapture)
        {
            LoadText(name, data, inputs);
            return null;
        }
        var st = CaptureReader.TryRead(data, LispPorts, out var cap);
        bool manyInterfaces = cap.Interfaces.Count > 1;
        foreach (var g in cap.Datagrams)
        {
            var label = $"{name} frame {g.FrameNumber}{(manyInterfaces ? $" interface {g.Interface}" : "")} at {g.Time} {Endpoint(g.Source, g.SourcePort)} -> {Endpoint(g.Destination, g.DestinationPort)}";
            bool control = g.SourcePort == DataHeader.ControlPort || g.DestinationPort == DataHeader.ControlPort;
            inputs.Add(new Input(label, g.Payload, null, !control && DataPacketDescriber.LooksLikeData(g.Payload)));
        }
        foreach (var (linkType, frames) in cap.UnsupportedLinkTypeFrames)
        {
            var ifs = string.Join(", ", cap.Interfaces.Where(i => i.LinkType == linkType).Select(i => i.Index));
            inputs.Add(new Input(name, null, $"{frames} frame(s) of interface {ifs} skipped: link type {linkType} is not supported (supported: {LinkLayer.SupportedText})", false));
        }
        if (cap.Fragments > 0)
        {
            stderr.WriteLine($"decode: {name}: {cap.Fragments} IP fragment(s) skipped (fragments are not reassembled)");
        }
        if (!st.IsOk)
        {
            inputs.Add(new Input(name, null, st.Error == WireError.BadType ? $"cannot decode the capture: {st.Detail}" : $"capture file damaged: {st}", false));
        }
        else if (cap.Datagrams.Count == 0 && cap.UnsupportedLinkTypeFrames.Count == 0)
        {
            inputs.Add(new Input(name, null, $"no UDP 4341/4342 datagram in {cap.Frames} frame(s) of the capture " +
                $"({cap.OtherUdp} other UDP, {cap.NotUdp} not UDP, {cap.NotIp} not IP, {cap.Fragments} fragments, {cap.Malformed} malformed)", false));
        }
        return null;
    }

    private static string Endpoint(System.Net.IPAddress a, ushort port) =>
        a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{a}]:{port}" : $"{a}:{port}";

    private static void LoadText(string name, byte[] data, List<Input> inputs)
    {
        int lineNo = 0;
        foreach (var line in System.Text.Encoding.UTF8.GetString(data).Split('\n'))
        {
            lineNo++;
            var l = line.Trim();
            if (l.Length == 0 || l.StartsWith('#')) continue;
            var cols = l.Split(['\t', ' '], StringSplitOptions.RemoveEmptyEntries);
            inputs.Add(HexInput($"{name} line {lineNo}", cols[^1]));
        }
    }

    /// <summary>One message to decode: its bytes (or why there are none), and whether it is a LISP data packet.</summary>
    private sealed record Input(string Source, byte[]? Bytes, string? Error, bool Data);
}

/// <summary>JSON shape of one decoded message.</summary>
public sealed record DecodedMessage(string Source, int Length, bool Ok, string? Error, DecodedField? Message);

/// <summary>JSON shape of one decoded field (a label, its value, and nested fields).</summary>
public sealed record DecodedField(string Name, string? Value, List<DecodedField>? Children);
