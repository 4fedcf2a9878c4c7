using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;

namespace Lisp.Wire.Crypto;

/// <summary>
/// SHA-1 (FIPS 180-4 section 6.1), managed and allocation-free. Only for HMAC-SHA-1-96, the older Map-Register
/// authentication RFC 9301 still lists (HMAC-SHA-1 does not depend on SHA-1's collision resistance); nothing else
/// in the appliance should hash with it. Same shape as <see cref="Sha256"/>.
/// </summary>
public struct Sha1
{
    public const int HashSize = 20;
    public const int BlockSize = HashState.BlockSize;

    private HashState _state;

    public Sha1() => _state = new HashState(HashKind.Sha1);

    public void Append(ReadOnlySpan<byte> data) => _state.Append(data);

    /// <summary>Writes the 20-byte digest and resets, so the instance can hash the next message.</summary>
    public int Finish(Span<byte> destination)
    {
        int n = _state.Finish(destination);
        _state = new HashState(HashKind.Sha1);
        return n;
    }

    public static int HashData(ReadOnlySpan<byte> data, Span<byte> destination)
    {
        var state = new HashState(HashKind.Sha1);
        state.Append(data);
        return state.Finish(destination);
    }

    /// <summary>H(0), FIPS 180-4 5.3.1.</summary>
    internal static Words8 Initial()
    {
        Words8 h = default;
        h[0] = 0x67452301; h[1] = 0xefcdab89; h[2] = 0x98badcfe; h[3] = 0x10325476; h[4] = 0xc3d2e1f0;
        return h;
    }

    /// <summary>
    /// Folds whole 64-byte blocks into the first five words of <paramref name="h"/> (FIPS 180-4 6.1.2): W[0..79] with
    /// W[t] = ROTL1(W[t-3] ^ W[t-8] ^ W[t-14] ^ W[t-16]), then four groups of 20 rounds with f = Ch, Parity, Maj,
    /// Parity and K = 5a827999, 6ed9eba1, 8f1bbcdc, ca62c1d6 (FIPS 180-4 4.1.1, 4.2.1).
    /// </summary>
    [SkipLocalsInit]
    internal static unsafe void Compress(ref Words8 h, ReadOnlySpan<byte> blocks)
    {
        uint* w = stackalloc uint[80];
        uint h0 = h[0], h1 = h[1], h2 = h[2], h3 = h[3], h4 = h[4];
        while (blocks.Length >= BlockSize)
        {
            for (int t = 0; t < 16; t++) w[t] = BinaryPrimitives.ReadUInt32BigEndian(blocks.Slice(t * 4));
            for (int t = 16; t < 80; t++) w[t] = BitOperations.RotateLeft(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
            uint a = h0, b = h1, c = h2, d = h3, e = h4;
            int i = 0;
            for (; i < 20; i++) Step(ref a, ref b, ref c, ref d, ref e, (d ^ (b & (c ^ d))) + 0x5a827999 + w[i]);
            for (; i < 40; i++) Step(ref a, ref b, ref c, ref d, ref e, (b ^ c ^ d) + 0x6ed9eba1 + w[i]);
            for (; i < 60; i++) Step(ref a, ref b, ref c, ref d, ref e, ((b & c) | (d & (b | c))) + 0x8f1bbcdc + w[i]);
            for (; i < 80; i++) Step(ref a, ref b, ref c, ref d, ref e, (b ^ c ^ d) + 0xca62c1d6 + w[i]);
            h0 += a; h1 += b; h2 += c; h3 += d; h4 += e;
            blocks = blocks.Slice(BlockSize);
        }
        h[0] = h0; h[1] = h1; h[2] = h2; h[3] = h3; h[4] = h4;
    }

    /// <summary>T = ROTL5(a) + f(b,c,d) + e + K + W[t]; e = d; d = c; c = ROTL30(b); b = a; a = T. <paramref name="fkw"/> is f + K + W.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Step(ref uint a, ref uint b, ref uint c, ref uint d, ref uint e, uint fkw)
    {
        uint t = BitOperations.RotateLeft(a, 5) + fkw + e;
        e = d;
        d = c;
        c = BitOperations.RotateLeft(b, 30);
        b = a;
        a = t;
    }
}
