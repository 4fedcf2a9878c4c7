using Lisp.Wire;
using Xunit;

namespace Lisp.Wire.Tests;

/// <summary>The robustness contract of the decoder, checked on one input.</summary>
public static class Robustness
{
    /// <summary>
    /// TryDecode must not throw. When it accepts the bytes, the message must encode without an exception, be
    /// describable, and its encoding must decode again to a message that encodes to the same bytes.
    /// </summary>
    public static bool CheckDecode(ReadOnlySpan<byte> bytes)
    {
        var st = ControlMessage.TryDecode(bytes, out var m);
        if (!st.IsOk)
        {
            Assert.Null(m);
            Assert.False(string.IsNullOrEmpty(st.Detail));
            Assert.InRange(st.Offset, 0, Math.Max(0, bytes.Length));
            return false;
        }
        Assert.NotNull(m);
        var again = m!.ToBytes();
        MessageDescriber.Describe(m).WriteText(TextWriter.Null);
        var st2 = ControlMessage.TryDecode(again, out var m2);
        Assert.True(st2.IsOk, $"re-encoded message does not decode: {st2}; bytes {Convert.ToHexString(again)} from {Convert.ToHexString(bytes)}");
        Assert.Equal(Convert.ToHexString(again), Convert.ToHexString(m2!.ToBytes()));
        return true;
    }
}
