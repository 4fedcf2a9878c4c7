using System.Net;
using Lisp.TestSupport;
using Lisp.Wire;

namespace Lisp.Wire.Tests;

/// <summary>Hex helpers and the independent test inputs: seed vectors, third-party captures.</summary>
public static class TestData
{
    /// <summary>Hex to bytes; spaces, newlines and '|' separators are ignored so golden bytes can be laid out by field.</summary>
    public static byte[] Hex(string hex)
    {
        var clean = new string(hex.Where(Uri.IsHexDigit).ToArray());
        return Convert.FromHexString(clean);
    }

    public static string ToHex(ReadOnlySpan<byte> b) => Convert.ToHexString(b).ToLowerInvariant();

    public static IPAddress Ip(string s) => IPAddress.Parse(s);
    public static IpAddress Addr(string s) => IpAddress.Parse(s);

    public sealed record SeedRequest(string Eid, string DnsName, string MapResolver, int Length, byte[] Bytes)
    {
        public override string ToString() => Eid;
    }

    private static readonly Lazy<IReadOnlyList<SeedRequest>> Seeds = new(() =>
        File.ReadAllLines(TestFiles.Vector("seed-map-requests.txt"))
            .Where(l => l.Length > 0 && !l.StartsWith('#'))
            .Select(l => l.Split('\t'))
            .Select(c => new SeedRequest(c[0], c[1], c[2], int.Parse(c[3], System.Globalization.CultureInfo.InvariantCulture), Hex(c[4])))
            .ToList());

    public static IReadOnlyList<SeedRequest> SeedRequests => Seeds.Value;

    public static IEnumerable<object[]> SeedEids => SeedRequests.Select(s => new object[] { s.Eid });

    public static SeedRequest Seed(string eid) => SeedRequests.Single(s => s.Eid == eid);

    public static List<CapturedDatagram> Capture(string name)
    {
        var bytes = File.ReadAllBytes(TestFiles.Vector("captures", name));
        var st = PcapFile.TryReadUdp(bytes, out var grams);
        if (!st.IsOk) throw new InvalidOperationException($"{name}: {st}");
        return grams;
    }

    public static readonly string[] CaptureNames = ["lisp_eid_register.pcap", "lisp_ipv6.pcap", "lisp_invalid.pcap"];

    public static T Decode<T>(byte[] bytes) where T : ControlMessage
    {
        var st = ControlMessage.TryDecode(bytes, out var m);
        if (!st.IsOk) throw new Xunit.Sdk.XunitException($"decode failed: {st}");
        return Xunit.Assert.IsAssignableFrom<T>(m);
    }
}
