using System.Diagnostics;
using Lisp.Appliance.Cli;
using Lisp.TestSupport;

namespace Lisp.Appliance.Tests.Cli;

/// <summary>
/// `decode --file` on captures and on inputs without a size (issue 12, finding 11), run as the real process:
/// each link type's golden capture decodes, the size cap stops /dev/zero and a sparse 65 MiB file with a clear
/// message, an unknown link type and a capture without LISP traffic are named instead of a usage error.
/// </summary>
public sealed class DecodeCaptureTests : IDisposable
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(60);
    private readonly string _dir = Directory.CreateTempSubdirectory("lisp-decode-test-").FullName;

    public void Dispose()
    {
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static (int Rc, string Out, string Err) Run(params string[] args) => ApplianceProcess.Run(Limit, args);

    [Theory]
    [InlineData("null.pcap")]
    [InlineData("ethernet-vlan.pcap")]
    [InlineData("raw12.pcap")]
    [InlineData("raw101.pcap")]
    [InlineData("raw101-nsec.pcap")]
    [InlineData("sll.pcap")]
    [InlineData("ipv4.pcap")]
    [InlineData("ipv6.pcap")]
    [InlineData("sll2.pcap")]
    [InlineData("sll2.pcapng")]
    [InlineData("two-interfaces.pcapng")]
    public void Each_link_types_capture_decodes_its_map_request_and_data_packet(string name)
    {
        var (rc, o, e) = Run("decode", "--file", TestFiles.Vector("captures", "golden", name));
        Assert.True(rc == 0, $"rc {rc}: {e}\n{o}");
        int n = name == "two-interfaces.pcapng" ? 2 : 1;
        Assert.Equal(n, CountOf(o, "eid: [0]1.1.1.1/32"));
        Assert.Equal(n, CountOf(o, "LISP data packet"));
        Assert.Equal(n, CountOf(o, "instance-id: 7"));
        Assert.Equal(n, CountOf(o, "source: 10.0.0.1"));
        Assert.Contains(name is "raw101.pcap" or "raw101-nsec.pcap" or "ipv6.pcap" ? "[2001:db8::1]:61000 -> [2001:db8::2]:4342" : "192.0.2.1:61000 -> 192.0.2.2:4342", o, StringComparison.Ordinal);
        if (n == 2) Assert.Contains("interface 1", o, StringComparison.Ordinal);
    }

    private static int CountOf(string s, string what)
    {
        int n = 0;
        for (int i = s.IndexOf(what, StringComparison.Ordinal); i >= 0; i = s.IndexOf(what, i + what.Length, StringComparison.Ordinal)) n++;
        return n;
    }

    [Fact]
    public void Dev_zero_stops_at_the_cap_with_a_clear_message()
    {
        var sw = Stopwatch.StartNew();
        var (rc, o, e) = Run("decode", "--file", "/dev/zero");
        Assert.Equal(1, rc);
        Assert.Contains("/dev/zero: input larger than the 64 MiB (67108864 bytes) limit", e, StringComparison.Ordinal);
        Assert.DoesNotContain("OutOfMemory", e + o, StringComparison.Ordinal);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(30), $"took {sw.Elapsed}");
    }

    [Fact]
    public void A_sparse_65_MiB_file_hits_the_cap()
    {
        var f = Path.Combine(_dir, "big.pcap");
        using (var s = File.Create(f)) s.SetLength(65L * 1024 * 1024);
        var (rc, _, e) = Run("decode", "--file", f);
        Assert.Equal(1, rc);
        Assert.Contains("input larger than the 64 MiB (67108864 bytes) limit", e, StringComparison.Ordinal);
    }

    [SkippableFact]
    public void A_fifo_is_read_incrementally_up_to_the_cap()
    {
        Skip.If(OperatingSystem.IsWindows(), "no FIFOs");
        var fifo = Path.Combine(_dir, "fifo");
        using (var mk = Process.Start("mkfifo", [fifo])) mk.WaitForExit();
        // A writer that never stops: decode must stop reading at the cap and exit (the writer then gets EPIPE).
        using var writer = Process.Start(new ProcessStartInfo("sh", ["-c", $"cat /dev/zero > '{fifo}'"]) { RedirectStandardError = true })!;
        try
        {
            var (rc, _, e) = Run("decode", "--file", fifo);
            Assert.Equal(1, rc);
            Assert.Contains("64 MiB (67108864 bytes) limit", e, StringComparison.Ordinal);
        }
        finally
        {
            if (!writer.HasExited) writer.Kill(entireProcessTree: true);
        }
    }

    [Fact]
    public void Bounded_read_of_an_endless_stream_stops_just_past_the_limit()
    {
        using var endless = new EndlessStream();
        Assert.Equal(BoundedInput.Outcome.TooLarge, BoundedInput.Read(endless, 1000, out var none));
        Assert.Empty(none);
        Assert.InRange(endless.Served, 1001, 1000 + 64 * 1024);
        using var small = new MemoryStream(new byte[1000]);
        Assert.Equal(BoundedInput.Outcome.Ok, BoundedInput.Read(small, 1000, out var all));
        Assert.Equal(1000, all.Length);
    }

    private sealed class EndlessStream : Stream
    {
        public long Served { get; private set; }
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => Served; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count)
        {
            int n = Math.Min(count, 333);
            Served += n;
            return n;
        }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    [Fact]
    public void An_unknown_link_type_is_named_not_a_usage_error()
    {
        var bytes = File.ReadAllBytes(TestFiles.Vector("captures", "golden", "ipv4.pcap"));
        bytes[20] = 147; // link type field (little-endian file): USER0
        var f = Path.Combine(_dir, "user0.pcap");
        File.WriteAllBytes(f, bytes);
        var (rc, o, e) = Run("decode", "--file", f);
        Assert.Equal(1, rc);
        Assert.Contains("link type 147 is not supported", o, StringComparison.Ordinal);
        Assert.DoesNotContain("give at least one HEX", e, StringComparison.Ordinal);
    }

    [Fact]
    public void A_capture_without_lisp_traffic_says_so()
    {
        var bytes = File.ReadAllBytes(TestFiles.Vector("captures", "golden", "ipv4.pcap"));
        var f = Path.Combine(_dir, "none.pcap");
        File.WriteAllBytes(f, bytes.AsSpan(0, 24).ToArray()); // header, no frames
        var (rc, o, _) = Run("decode", "--json", "--file", f);
        Assert.Equal(1, rc);
        Assert.Contains("no UDP 4341/4342 datagram in 0 frame(s) of the capture", o, StringComparison.Ordinal);
    }

    [Fact]
    public void A_truncated_capture_reports_the_damage_and_keeps_what_came_before()
    {
        var bytes = File.ReadAllBytes(TestFiles.Vector("captures", "golden", "sll2.pcapng"));
        var f = Path.Combine(_dir, "cut.pcapng");
        File.WriteAllBytes(f, bytes.AsSpan(0, bytes.Length - 10).ToArray());
        var (rc, o, _) = Run("decode", "--file", f);
        Assert.Equal(1, rc);
        Assert.Contains("eid: [0]1.1.1.1/32", o, StringComparison.Ordinal);
        Assert.Contains("capture file damaged: Truncated", o, StringComparison.Ordinal);
    }
}
