using Lisp.Wire;
using Xunit;

namespace Lisp.Wire.Tests;

/// <summary>RFC 9302 version arithmetic: 12 bits, 0 = null (never compared), newer = ahead by at most half the circle.</summary>
public sealed class MapVersionTests
{
    [Theory]
    [InlineData(2, 1, true)]
    [InlineData(1, 2, false)]
    [InlineData(5, 5, false)]
    [InlineData(0, 5, false)]      // null is never newer
    [InlineData(5, 0, false)]      // nor older
    [InlineData(1, 4095, true)]    // 4095 is followed by 1 (0 is skipped)
    [InlineData(4095, 1, false)]
    [InlineData(2049, 1, true)]    // ahead by 2048: still newer
    [InlineData(2050, 1, false)]   // ahead by 2049: behind by 2046 on the circle, so older
    [InlineData(3, 4090, true)]
    public void Newer_on_the_12_bit_circle(int a, int b, bool newer) => Assert.Equal(newer, MapVersion.IsNewer((ushort)a, (ushort)b));

    [Fact]
    public void Versions_come_out_of_the_data_header_as_the_codec_reads_them()
    {
        // V + I, source version 0xabc, destination version 0x123, instance-id 0x000007, LSBs 0.
        byte[] header = [0x18, 0xab, 0xc1, 0x23, 0x00, 0x00, 0x07, 0x00];
        Assert.Equal(((ushort)0xabc, (ushort)0x123), MapVersion.FromDataHeader(header));
        Assert.True(DataHeader.TryRead(header, out var h).IsOk);
        Assert.Equal((0xabc, 0x123, 7u), (h.SourceMapVersion, h.DestMapVersion, h.InstanceId));
    }
}
