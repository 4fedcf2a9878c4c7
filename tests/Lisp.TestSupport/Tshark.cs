using System.Buffers.Binary;
using System.Diagnostics;
using System.Xml.Linq;
using Xunit;

namespace Lisp.TestSupport;

/// <summary>
/// Runs Wireshark's tshark over packets a test built, as an independent decoder to check our encoders against.
/// Packets go into a classic pcap (link type 101, raw IP) in a temp file; tshark's PDML output is parsed into
/// one <see cref="TsharkPacket"/> per frame. Tests call <see cref="SkipIfMissing"/> first so a machine without
/// tshark skips them with a printed reason instead of failing.
/// </summary>
public static class Tshark
{
    public const ushort ControlPort = 4342;
    public const ushort DataPort = 4341;

    private static readonly Lazy<string?> Executable = new(Find);

    /// <summary>Full path of tshark, or null when it is not installed.</summary>
    public static string? ExecutablePath => Executable.Value;

    public static bool IsAvailable => ExecutablePath is not null;

    /// <summary>Skips the calling [SkippableFact] when tshark is missing, saying why.</summary>
    public static void SkipIfMissing()
    {
        Skip.If(!IsAvailable, "tshark is not installed (apt-get install tshark, or ./build.sh deps); the tshark golden tests need it");
    }

    private static string? Find()
    {
        var candidates = new List<string> { "/usr/bin/tshark", "/usr/local/bin/tshark" };
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(System.IO.Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            candidates.Add(System.IO.Path.Combine(dir, "tshark"));
        }
        return candidates.FirstOrDefault(File.Exists);
    }

    /// <summary>An IPv4 + UDP datagram from 127.0.0.1 to 127.0.0.1 carrying <paramref name="payload"/> (UDP checksum 0).</summary>
    public static byte[] Ipv4Udp(ReadOnlySpan<byte> payload, ushort sourcePort, ushort destinationPort)
    {
        int total = 20 + 8 + payload.Length;
        var p = new byte[total];
        p[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(2), (ushort)total);
        p[8] = 64;
        p[9] = 17;
        p[12] = 127; p[15] = 1;
        p[16] = 127; p[19] = 1;
        uint sum = 0;
        for (int i = 0; i < 20; i += 2) sum += (uint)(p[i] << 8 | p[i + 1]);
        while (sum >> 16 != 0) sum = (sum & 0xffff) + (sum >> 16);
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(10), (ushort)~sum);
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(20), sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(22), destinationPort);
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(24), (ushort)(8 + payload.Length));
        payload.CopyTo(p.AsSpan(28));
        return p;
    }

    /// <summary>Writes a classic little-endian pcap, link type 101 (raw IP), one frame per packet.</summary>
    public static void WritePcap(string path, IEnumerable<byte[]> ipPackets)
    {
        using var f = File.Create(path);
        Span<byte> h = stackalloc byte[24];
        BinaryPrimitives.WriteUInt32LittleEndian(h, 0xa1b2c3d4);
        BinaryPrimitives.WriteUInt16LittleEndian(h.Slice(4), 2);
        BinaryPrimitives.WriteUInt16LittleEndian(h.Slice(6), 4);
        BinaryPrimitives.WriteUInt32LittleEndian(h.Slice(16), 65535);
        BinaryPrimitives.WriteUInt32LittleEndian(h.Slice(20), 101);
        f.Write(h);
        uint second = 1_700_000_000;
        Span<byte> rec = stackalloc byte[16];
        foreach (var p in ipPackets)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(rec, second++);
            BinaryPrimitives.WriteUInt32LittleEndian(rec.Slice(8), (uint)p.Length);
            BinaryPrimitives.WriteUInt32LittleEndian(rec.Slice(12), (uint)p.Length);
            f.Write(rec);
            f.Write(p);
        }
    }

    /// <summary>Decodes LISP control payloads (sent 127.0.0.1:4342 -> 127.0.0.1:4342), one frame each.</summary>
    public static IReadOnlyList<TsharkPacket> DecodeControl(params byte[][] lispPayloads) =>
        DecodeIp(lispPayloads.Select(p => Ipv4Udp(p, ControlPort, ControlPort)));

    /// <summary>
    /// Writes the IP packets to a temp pcap and returns tshark's dissection of each frame. IPv4 header and UDP
    /// checksums are validated (a wrong one is an expert error); UDP 4342 is dissected as LISP control, 4341 as
    /// LISP data (tshark's default).
    /// </summary>
    public static IReadOnlyList<TsharkPacket> DecodeIp(IEnumerable<byte[]> ipPackets)
    {
        var exe = ExecutablePath ?? throw new InvalidOperationException("tshark is not installed");
        var file = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"lisp-tshark-{Guid.NewGuid():N}.pcap");
        try
        {
            WritePcap(file, ipPackets);
            var xml = Run(exe, "-n", "-r", file, "-d", "udp.port==4342,lisp",
                "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE", "-T", "pdml");
            return ParsePdml(xml);
        }
        finally
        {
            try { File.Delete(file); } catch (IOException) { }
        }
    }

    /// <summary>tshark's dissection of every frame of an existing capture file (any link type tshark reads).</summary>
    public static IReadOnlyList<TsharkPacket> DecodeFile(string path)
    {
        var exe = ExecutablePath ?? throw new InvalidOperationException("tshark is not installed");
        return ParsePdml(Run(exe, "-n", "-r", path, "-d", "udp.port==4342,lisp", "-T", "pdml"));
    }

    /// <summary>Runs tshark with the given arguments and returns its standard output (stderr only on failure).</summary>
    public static string Run(string exe, params string[] args)
    {
        var psi = new ProcessStartInfo(exe)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        // A private, empty profile folder keeps a user's Wireshark preferences from changing the dissection.
        psi.Environment["WIRESHARK_CONFIG_DIR"] = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "lisp-tshark-empty-profile");
        using var p = Process.Start(psi) ?? throw new InvalidOperationException("could not start tshark");
        var stderr = p.StandardError.ReadToEndAsync();
        string stdout = p.StandardOutput.ReadToEnd();
        if (!p.WaitForExit(60_000))
        {
            p.Kill();
            throw new TimeoutException("tshark did not finish within 60 s");
        }
        if (p.ExitCode != 0)
        {
            throw new InvalidOperationException($"tshark exited {p.ExitCode}: {stderr.Result}");
        }
        return stdout;
    }

    /// <summary>Parses PDML into packets: every field (nested ones too) with its shown and raw values.</summary>
    public static IReadOnlyList<TsharkPacket> ParsePdml(string pdml)
    {
        var doc = XDocument.Parse(pdml);
        var packets = new List<TsharkPacket>();
        foreach (var packet in doc.Root!.Elements("packet"))
        {
            var fields = new List<TsharkField>();
            var protos = new List<string>();
            foreach (var proto in packet.Elements("proto"))
            {
                protos.Add((string?)proto.Attribute("name") ?? "");
                Collect(proto, fields, protos);
            }
            packets.Add(new TsharkPacket(fields, protos));
        }
        return packets;
    }

    private static void Collect(XElement parent, List<TsharkField> fields, List<string> protos)
    {
        foreach (var e in parent.Elements())
        {
            var name = (string?)e.Attribute("name") ?? "";
            if (e.Name == "proto")
            {
                protos.Add(name);
            }
            else if (e.Name == "field")
            {
                fields.Add(new TsharkField(name, (string?)e.Attribute("show") ?? "", (string?)e.Attribute("value") ?? "",
                    (string?)e.Attribute("showname") ?? ""));
            }
            Collect(e, fields, protos);
        }
    }
}

/// <summary>One field of tshark's dissection: its name (lisp.type ...), shown value, raw hex value and display line.</summary>
public sealed record TsharkField(string Name, string Show, string Value, string ShowName);

/// <summary>One frame as tshark dissected it, in field order; protocols in the order they appear (nested ones too).</summary>
public sealed class TsharkPacket(IReadOnlyList<TsharkField> fields, IReadOnlyList<string> protocols)
{
    public IReadOnlyList<TsharkField> Fields { get; } = fields;
    public IReadOnlyList<string> Protocols { get; } = protocols;

    /// <summary>Shown values of every field with this name, in order.</summary>
    public IReadOnlyList<string> All(string name) => Fields.Where(f => f.Name == name).Select(f => f.Show).ToList();

    /// <summary>The shown value of the only (or first) field with this name; fails the test when absent.</summary>
    public string One(string name) =>
        Fields.FirstOrDefault(f => f.Name == name)?.Show ?? throw new Xunit.Sdk.XunitException($"tshark shows no field {name}; fields: {string.Join(", ", Fields.Select(f => f.Name).Distinct())}");

    /// <summary>The raw hex value (PDML "value") of the first field with this name; for byte fields such as lisp.auth.</summary>
    public string Raw(string name) =>
        Fields.FirstOrDefault(f => f.Name == name)?.Value ?? throw new Xunit.Sdk.XunitException($"tshark shows no field {name}");

    /// <summary>The first field with this name read as a number (decimal or 0x-hex, as tshark shows it).</summary>
    public long Number(string name)
    {
        var s = One(name);
        return s.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
            ? long.Parse(s.AsSpan(2), System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture)
            : long.Parse(s, System.Globalization.CultureInfo.InvariantCulture);
    }

    public bool Has(string name) => Fields.Any(f => f.Name == name);

    /// <summary>The display lines of every field, for a failure message.</summary>
    public string Dump() => string.Join("\n", Fields.Select(f => $"{f.Name} = {f.Show} [{f.ShowName}]"));

    /// <summary>Malformed-packet markers, expert infos of severity warning or error, and LISP "invalid field" marks.</summary>
    public IReadOnlyList<string> Problems()
    {
        var list = new List<string>();
        foreach (var f in Fields)
        {
            if (f.Name == "_ws.expert" && (f.ShowName.Contains("(Error/", StringComparison.Ordinal) || f.ShowName.Contains("(Warning/", StringComparison.Ordinal)))
            {
                list.Add(f.ShowName);
            }
            else if (f.Name is "lisp.unexpected_field" or "lisp.invalid_field" or "lisp.expected_field" or "lisp.undecoded")
            {
                list.Add(f.Name + ": " + f.ShowName);
            }
        }
        if (Protocols.Contains("_ws.malformed")) list.Add("Malformed Packet");
        return list;
    }

    /// <summary>Fails the test when tshark flagged the frame as malformed or raised an expert warning/error.</summary>
    public void AssertClean()
    {
        var p = Problems();
        if (p.Count > 0) throw new Xunit.Sdk.XunitException("tshark reports: " + string.Join("; ", p));
    }
}
