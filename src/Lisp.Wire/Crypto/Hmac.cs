using System.Runtime.CompilerServices;

namespace Lisp.Wire.Crypto;

/// <summary>
/// An HMAC key made ready once (RFC 2104 section 2): HMAC(K, m) = H((K0 ^ opad) || H((K0 ^ ipad) || m)), where K0 is
/// the key zero-padded to the 64-byte block (a longer key is first replaced by H(K)), ipad = 0x36.., opad = 0x5c...
/// K0 ^ ipad and K0 ^ opad are each exactly one block, so their chaining words can be computed here and kept: a MAC
/// then costs only the message's blocks plus one outer block. That is the point of the type: the map-server verifies
/// one HMAC per Map-Register and signs one per Map-Notify with a site's key, and paying the two key blocks (or a
/// crypto library's context set-up) per message is most of the cost for a few-hundred-byte message.
/// Keep one per key (it holds key-derived material; it is not the key itself, but it is as good as the key).
/// A <c>default</c> instance is unusable.
/// </summary>
public readonly struct HmacKey
{
    private readonly Words8 _inner;   // chaining words after the K0 ^ ipad block
    private readonly Words8 _outer;   // chaining words after the K0 ^ opad block
    private readonly HashKind _kind;

    public static HmacKey Sha256(ReadOnlySpan<byte> key) => new(HashKind.Sha256, key);

    public static HmacKey Sha1(ReadOnlySpan<byte> key) => new(HashKind.Sha1, key);

    [SkipLocalsInit]
    private HmacKey(HashKind kind, ReadOnlySpan<byte> key)
    {
        _kind = kind;
        Span<byte> block = stackalloc byte[HashState.BlockSize];
        block.Clear();
        if (key.Length > HashState.BlockSize)
        {
            var hashed = new HashState(kind);
            hashed.Append(key);
            hashed.Finish(block);
        }
        else
        {
            key.CopyTo(block);
        }
        for (int i = 0; i < block.Length; i++) block[i] ^= 0x36;
        var inner = new HashState(kind);
        inner.Append(block);
        _inner = inner.H;
        for (int i = 0; i < block.Length; i++) block[i] ^= 0x36 ^ 0x5c;
        var outer = new HashState(kind);
        outer.Append(block);
        _outer = outer.H;
        block.Clear();
    }

    /// <summary>Full MAC length: 20 (HMAC-SHA-1) or 32 (HMAC-SHA-256).</summary>
    public int MacSize => _kind == HashKind.Sha1 ? Crypto.Sha1.HashSize : Crypto.Sha256.HashSize;

    /// <summary>An incremental MAC under this key (for a message in pieces, or with a stretch that counts as zeros).</summary>
    public Hmac Start() => new(_kind, _inner, _outer);

    /// <summary>Writes the full MAC of <paramref name="message"/> (<see cref="MacSize"/> bytes); returns its length.</summary>
    public int Compute(ReadOnlySpan<byte> message, Span<byte> mac)
    {
        var h = Start();
        h.Append(message);
        return h.Finish(mac);
    }
}

/// <summary>One MAC in progress under an <see cref="HmacKey"/>; a mutable struct (pass by ref). Allocation-free.</summary>
public struct Hmac
{
    private HashState _inner;
    private readonly Words8 _outer;

    internal Hmac(HashKind kind, in Words8 inner, in Words8 outer)
    {
        // Both hashes resume after their one-block key prefix: 64 bytes already counted in the length field.
        _inner = new HashState(kind, inner, HashState.BlockSize);
        _outer = outer;
    }

    public void Append(ReadOnlySpan<byte> data) => _inner.Append(data);

    /// <summary>Appends <paramref name="count"/> zero bytes without a buffer holding them.</summary>
    public void AppendZeros(int count) => _inner.AppendZeros(count);

    /// <summary>Writes the full MAC (20 or 32 bytes; callers truncate for the -96 / -128 forms); returns its length.</summary>
    [SkipLocalsInit]
    public int Finish(Span<byte> mac)
    {
        Span<byte> digest = stackalloc byte[Sha256.HashSize];
        int n = _inner.Finish(digest);
        // The outer hash's message is just the inner digest: with its padding, one block.
        var outer = new HashState(_inner.Kind, _outer, HashState.BlockSize);
        outer.Append(digest.Slice(0, n));
        return outer.Finish(mac);
    }
}

/// <summary>Comparisons whose time does not depend on where the inputs differ (a MAC check must not leak how many leading bytes matched).</summary>
public static class FixedTime
{
    /// <summary>
    /// True when both spans hold the same bytes. Lengths are not secret and are compared first; the contents are
    /// always read to the end. Not inlined and not optimised, so the JIT cannot turn the accumulate into an early exit.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.NoOptimization)]
    public static bool AreEqual(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b)
    {
        if (a.Length != b.Length) return false;
        int diff = 0;
        for (int i = 0; i < a.Length; i++) diff |= a[i] ^ b[i];
        return diff == 0;
    }
}
