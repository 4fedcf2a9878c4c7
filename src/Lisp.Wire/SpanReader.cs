using System.Buffers.Binary;

namespace Lisp.Wire;

/// <summary>
/// Big-endian cursor over untrusted bytes. A read past the end never throws: it records the first failure,
/// returns zero, and every later read returns zero too, so a parser can read a whole header and check
/// <see cref="Ok"/> once. The first failure (with the field that caused it) is what the caller reports.
/// </summary>
public ref struct SpanReader
{
    private readonly ReadOnlySpan<byte> _buffer;
    private int _position;
    private WireStatus _status;

    public SpanReader(ReadOnlySpan<byte> buffer, int baseOffset = 0)
    {
        _buffer = buffer;
        _position = 0;
        BaseOffset = baseOffset;
        _status = WireStatus.Ok;
    }

    /// <summary>Offset of this reader's first byte inside the outermost packet, for error messages.</summary>
    public int BaseOffset { get; }
    public readonly int Position => _position;
    public readonly int Remaining => _buffer.Length - _position;
    public readonly bool Ok => _status.IsOk;
    public readonly WireStatus Status => _status;
    public readonly ReadOnlySpan<byte> Buffer => _buffer;

    public void Fail(WireError error, string detail)
    {
        if (_status.IsOk)
        {
            _status = new WireStatus(error, detail, BaseOffset + _position);
        }
        _position = _buffer.Length;
    }

    /// <summary>Adopts the failure of a nested reader so the outer caller sees the innermost reason.</summary>
    public void Fail(WireStatus inner)
    {
        if (_status.IsOk && !inner.IsOk)
        {
            _status = inner;
        }
        _position = _buffer.Length;
    }

    private bool Need(int count, string field)
    {
        if (!_status.IsOk)
        {
            return false;
        }
        if (count < 0 || count > _buffer.Length - _position)
        {
            Fail(WireError.Truncated, $"{field} needs {count} bytes, {Remaining} left");
            return false;
        }
        return true;
    }

    public byte U8(string field)
    {
        if (!Need(1, field)) return 0;
        return _buffer[_position++];
    }

    public ushort U16(string field)
    {
        if (!Need(2, field)) return 0;
        var v = BinaryPrimitives.ReadUInt16BigEndian(_buffer.Slice(_position));
        _position += 2;
        return v;
    }

    public uint U32(string field)
    {
        if (!Need(4, field)) return 0;
        var v = BinaryPrimitives.ReadUInt32BigEndian(_buffer.Slice(_position));
        _position += 4;
        return v;
    }

    public ulong U64(string field)
    {
        if (!Need(8, field)) return 0;
        var v = BinaryPrimitives.ReadUInt64BigEndian(_buffer.Slice(_position));
        _position += 8;
        return v;
    }

    public ReadOnlySpan<byte> Bytes(int count, string field)
    {
        if (!Need(count, field)) return default;
        var s = _buffer.Slice(_position, count);
        _position += count;
        return s;
    }

    public readonly ReadOnlySpan<byte> PeekRest() => _buffer.Slice(_position);

    public readonly byte Peek(int ahead) => _position + ahead < _buffer.Length ? _buffer[_position + ahead] : (byte)0;

    /// <summary>Splits off the next <paramref name="count"/> bytes as their own reader (an LCAF body, say).</summary>
    public SpanReader Sub(int count, string field)
    {
        int start = _position;
        var bytes = Bytes(count, field);
        return new SpanReader(bytes, BaseOffset + start);
    }
}

/// <summary>Big-endian cursor that writes into a caller's span; running out of room is a status, not a throw.</summary>
public ref struct SpanWriter
{
    private readonly Span<byte> _buffer;
    private int _position;
    private bool _overflow;

    public SpanWriter(Span<byte> buffer)
    {
        _buffer = buffer;
        _position = 0;
        _overflow = false;
    }

    public readonly int Position => _position;
    public readonly bool Ok => !_overflow;
    public readonly Span<byte> Written => _buffer.Slice(0, _position);
    public readonly Span<byte> Buffer => _buffer;

    private bool Room(int count)
    {
        if (_overflow || count > _buffer.Length - _position)
        {
            _overflow = true;
            return false;
        }
        return true;
    }

    public void U8(byte v)
    {
        if (Room(1)) _buffer[_position++] = v;
    }

    public void U16(ushort v)
    {
        if (!Room(2)) return;
        BinaryPrimitives.WriteUInt16BigEndian(_buffer.Slice(_position), v);
        _position += 2;
    }

    public void U32(uint v)
    {
        if (!Room(4)) return;
        BinaryPrimitives.WriteUInt32BigEndian(_buffer.Slice(_position), v);
        _position += 4;
    }

    public void U64(ulong v)
    {
        if (!Room(8)) return;
        BinaryPrimitives.WriteUInt64BigEndian(_buffer.Slice(_position), v);
        _position += 8;
    }

    public void Bytes(scoped ReadOnlySpan<byte> v)
    {
        if (!Room(v.Length)) return;
        v.CopyTo(_buffer.Slice(_position));
        _position += v.Length;
    }

    public void Zeros(int count)
    {
        if (!Room(count)) return;
        _buffer.Slice(_position, count).Clear();
        _position += count;
    }

    /// <summary>Reserves a 16-bit slot (a length field) and returns its position for <see cref="PatchU16"/>.</summary>
    public int ReserveU16()
    {
        int at = _position;
        U16(0);
        return at;
    }

    public readonly void PatchU16(int at, ushort v)
    {
        if (!_overflow) BinaryPrimitives.WriteUInt16BigEndian(_buffer.Slice(at), v);
    }
}
