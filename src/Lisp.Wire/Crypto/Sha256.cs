using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;

namespace Lisp.Wire.Crypto;

/// <summary>
/// SHA-256 (FIPS 180-4 section 6.2), managed and allocation-free, so the appliance hashes without the device's OpenSSL.
/// Incremental: <c>var h = new Sha256(); h.Append(a); h.Append(b); h.Finish(digest);</c>, or the one-shot
/// <see cref="HashData(ReadOnlySpan{byte}, Span{byte})"/>. A mutable struct: pass it by ref, and a <c>default</c>
/// instance is unusable (construct it with <c>new Sha256()</c>).
/// </summary>
public struct Sha256
{
    public const int HashSize = 32;
    public const int BlockSize = HashState.BlockSize;

    private HashState _state;

    public Sha256() => _state = new HashState(HashKind.Sha256);

    public void Append(ReadOnlySpan<byte> data) => _state.Append(data);

    /// <summary>Writes the 32-byte digest and resets, so the instance can hash the next message.</summary>
    public int Finish(Span<byte> destination)
    {
        int n = _state.Finish(destination);
        _state = new HashState(HashKind.Sha256);
        return n;
    }

    public static int HashData(ReadOnlySpan<byte> data, Span<byte> destination)
    {
        var state = new HashState(HashKind.Sha256);
        state.Append(data);
        return state.Finish(destination);
    }

    /// <summary>For start-up and configuration work where one small array does not matter.</summary>
    public static byte[] HashData(ReadOnlySpan<byte> data)
    {
        var digest = new byte[HashSize];
        HashData(data, digest);
        return digest;
    }

    /// <summary>H(0): the first 32 bits of the fractional parts of the square roots of the first 8 primes (FIPS 180-4 5.3.3).</summary>
    internal static Words8 Initial()
    {
        Words8 h = default;
        h[0] = 0x6a09e667; h[1] = 0xbb67ae85; h[2] = 0x3c6ef372; h[3] = 0xa54ff53a;
        h[4] = 0x510e527f; h[5] = 0x9b05688c; h[6] = 0x1f83d9ab; h[7] = 0x5be0cd19;
        return h;
    }

    /// <summary>K: the first 32 bits of the fractional parts of the cube roots of the first 64 primes (FIPS 180-4 4.2.2).</summary>
    private static ReadOnlySpan<uint> K =>
    [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ];

    /// <summary>
    /// Folds whole 64-byte blocks into <paramref name="h"/> (FIPS 180-4 6.2.2). The message schedule W[0..63] is
    /// expanded up front; the 64 rounds are unrolled by eight with the working variables renamed instead of shifted
    /// (round i's "h" register receives the new "a", its "d" the new "e"), so no register moves between rounds.
    /// Pointers keep the schedule and constant reads free of bounds checks; every index is a loop constant below 64.
    /// </summary>
    [SkipLocalsInit]
    internal static unsafe void Compress(ref Words8 h, ReadOnlySpan<byte> blocks)
    {
        uint* w = stackalloc uint[64];
        uint h0 = h[0], h1 = h[1], h2 = h[2], h3 = h[3], h4 = h[4], h5 = h[5], h6 = h[6], h7 = h[7];
        fixed (uint* k = K)
        {
            while (blocks.Length >= BlockSize)
            {
                for (int t = 0; t < 16; t++) w[t] = BinaryPrimitives.ReadUInt32BigEndian(blocks.Slice(t * 4));
                for (int t = 16; t < 64; t++)
                {
                    uint x = w[t - 15], y = w[t - 2];
                    uint s0 = BitOperations.RotateRight(x, 7) ^ BitOperations.RotateRight(x, 18) ^ (x >> 3);
                    uint s1 = BitOperations.RotateRight(y, 17) ^ BitOperations.RotateRight(y, 19) ^ (y >> 10);
                    w[t] = w[t - 16] + s0 + w[t - 7] + s1;
                }
                uint a = h0, b = h1, c = h2, d = h3, e = h4, f = h5, g = h6, hh = h7;
                for (int t = 0; t < 64; t += 8)
                {
                    Round(a, b, c, ref d, e, f, g, ref hh, k[t] + w[t]);
                    Round(hh, a, b, ref c, d, e, f, ref g, k[t + 1] + w[t + 1]);
                    Round(g, hh, a, ref b, c, d, e, ref f, k[t + 2] + w[t + 2]);
                    Round(f, g, hh, ref a, b, c, d, ref e, k[t + 3] + w[t + 3]);
                    Round(e, f, g, ref hh, a, b, c, ref d, k[t + 4] + w[t + 4]);
                    Round(d, e, f, ref g, hh, a, b, ref c, k[t + 5] + w[t + 5]);
                    Round(c, d, e, ref f, g, hh, a, ref b, k[t + 6] + w[t + 6]);
                    Round(b, c, d, ref e, f, g, hh, ref a, k[t + 7] + w[t + 7]);
                }
                h0 += a; h1 += b; h2 += c; h3 += d; h4 += e; h5 += f; h6 += g; h7 += hh;
                blocks = blocks.Slice(BlockSize);
            }
        }
        h[0] = h0; h[1] = h1; h[2] = h2; h[3] = h3; h[4] = h4; h[5] = h5; h[6] = h6; h[7] = h7;
    }

    /// <summary>
    /// One round: T1 = h + Sigma1(e) + Ch(e,f,g) + K[t] + W[t]; T2 = Sigma0(a) + Maj(a,b,c); new e = d + T1 (left in
    /// <paramref name="d"/>), new a = T1 + T2 (left in <paramref name="h"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Round(uint a, uint b, uint c, ref uint d, uint e, uint f, uint g, ref uint h, uint kw)
    {
        h += (BitOperations.RotateRight(e, 6) ^ BitOperations.RotateRight(e, 11) ^ BitOperations.RotateRight(e, 25))
             + (g ^ (e & (f ^ g)))   // Ch(e,f,g) = (e AND f) XOR (NOT e AND g)
             + kw;
        d += h;
        h += (BitOperations.RotateRight(a, 2) ^ BitOperations.RotateRight(a, 13) ^ BitOperations.RotateRight(a, 22))
             + ((a & b) | (c & (a | b)));   // Maj(a,b,c) = (a AND b) XOR (a AND c) XOR (b AND c)
    }
}
