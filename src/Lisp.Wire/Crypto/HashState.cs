using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace Lisp.Wire.Crypto;

/// <summary>Eight 32-bit chaining words, inline (SHA-256 uses all eight, SHA-1 the first five): no array behind a hash state.</summary>
[InlineArray(8)]
internal struct Words8
{
    private uint _first;
}

/// <summary>One 64-byte message block, inline.</summary>
[InlineArray(HashState.BlockSize)]
internal struct Block
{
    private byte _first;
}

internal enum HashKind : byte
{
    // 0 is left out so a default(...) state is recognisably uninitialised.
    Sha1 = 1,
    Sha256 = 2,
}

/// <summary>
/// The Merkle-Damgard framing SHA-1 and SHA-256 share (FIPS 180-4 sections 5.1.1 and 6.1.2 / 6.2.2): the message is
/// cut into 64-byte blocks, each folded into the chaining words by the algorithm's compression function; the last
/// block is padded with one 1 bit (0x80), zeros up to 56 mod 64, and the message length in bits as a 64-bit
/// big-endian integer. A struct with its buffer inline, so hashing allocates nothing. The length counter may start
/// above zero: HMAC resumes from chaining words saved after its 64-byte key block.
/// </summary>
internal struct HashState
{
    public const int BlockSize = 64;

    public Words8 H;
    private Block _buffer;
    private ulong _bytes;   // bytes appended since the initial chaining value (the length field counts these)
    private int _buffered;
    private HashKind _kind;

    public HashState(HashKind kind)
    {
        _kind = kind;
        H = kind == HashKind.Sha1 ? Sha1.Initial() : Sha256.Initial();
    }

    /// <summary>Resumes from chaining words saved after <paramref name="bytesSoFar"/> bytes (a whole number of blocks).</summary>
    public HashState(HashKind kind, in Words8 chaining, ulong bytesSoFar)
    {
        _kind = kind;
        H = chaining;
        _bytes = bytesSoFar;
    }

    public readonly HashKind Kind => _kind;

    public readonly int HashSize => _kind switch
    {
        HashKind.Sha1 => Sha1.HashSize,
        HashKind.Sha256 => Sha256.HashSize,
        _ => throw new InvalidOperationException("hash state used before it was initialised"),
    };

    public void Append(ReadOnlySpan<byte> data)
    {
        _bytes += (ulong)data.Length;
        if (_buffered > 0)
        {
            int take = Math.Min(BlockSize - _buffered, data.Length);
            data.Slice(0, take).CopyTo(((Span<byte>)_buffer).Slice(_buffered));
            _buffered += take;
            data = data.Slice(take);
            if (_buffered < BlockSize) return;
            Compress(_buffer);
            _buffered = 0;
        }
        // Whole blocks straight from the caller's memory: no copy through the buffer.
        int whole = data.Length & ~(BlockSize - 1);
        if (whole > 0)
        {
            Compress(data.Slice(0, whole));
            data = data.Slice(whole);
        }
        data.CopyTo(_buffer);
        _buffered = data.Length;
    }

    /// <summary>Appends <paramref name="count"/> zero bytes (a MAC over a message whose Authentication Data counts as zeros).</summary>
    public void AppendZeros(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        _bytes += (ulong)count;
        Span<byte> buffer = _buffer;
        while (count > 0)
        {
            int take = Math.Min(BlockSize - _buffered, count);
            buffer.Slice(_buffered, take).Clear();
            _buffered += take;
            count -= take;
            if (_buffered == BlockSize)
            {
                Compress(buffer);
                _buffered = 0;
            }
        }
    }

    /// <summary>Pads and folds the last block(s); <see cref="H"/> then holds the digest words. The state is spent.</summary>
    public void Pad()
    {
        Span<byte> buffer = _buffer;
        ulong bits = _bytes * 8;
        buffer[_buffered++] = 0x80;
        if (_buffered > BlockSize - 8)
        {
            // No room for the 8-byte length: it goes in one more block of zeros.
            buffer.Slice(_buffered).Clear();
            Compress(buffer);
            _buffered = 0;
        }
        buffer.Slice(_buffered, BlockSize - 8 - _buffered).Clear();
        BinaryPrimitives.WriteUInt64BigEndian(buffer.Slice(BlockSize - 8), bits);
        Compress(buffer);
        _buffered = 0;
    }

    /// <summary>Pads and writes the digest (big-endian words, FIPS 180-4 6.1.2 step 4 / 6.2.2 step 4); returns its length.</summary>
    public int Finish(Span<byte> destination)
    {
        int size = HashSize;
        if (destination.Length < size) throw new ArgumentException($"destination holds {destination.Length} bytes; the hash is {size}", nameof(destination));
        Pad();
        for (int i = 0; i < size / 4; i++) BinaryPrimitives.WriteUInt32BigEndian(destination.Slice(i * 4), H[i]);
        return size;
    }

    private void Compress(ReadOnlySpan<byte> blocks)
    {
        if (_kind == HashKind.Sha256) Sha256.Compress(ref H, blocks);
        else if (_kind == HashKind.Sha1) Sha1.Compress(ref H, blocks);
        else throw new InvalidOperationException("hash state used before it was initialised");
    }
}
