namespace Lisp.Wire;

/// <summary>LISP control message types (first 4 bits of a UDP 4342 payload).</summary>
public enum MessageType : byte
{
    Reserved = 0,
    MapRequest = 1,
    MapReply = 2,
    MapRegister = 3,
    MapNotify = 4,
    MapNotifyAck = 5,
    MapReferral = 6,
    InfoRequest = 7,
    EncapsulatedControl = 8,
}

/// <summary>A LISP control-plane message: decoded from and encoded to the UDP 4342 payload.</summary>
public abstract record ControlMessage
{
    /// <summary>Most records one message may claim; the 8-bit count on the wire caps it anyway.</summary>
    public const int MaxRecords = 255;

    public abstract MessageType Type { get; }
    public abstract int EncodedLength { get; }
    public abstract void Write(ref SpanWriter w);

    public byte[] ToBytes()
    {
        var buf = new byte[EncodedLength];
        var w = new SpanWriter(buf);
        Write(ref w);
        if (!w.Ok || w.Position != buf.Length)
        {
            throw new InvalidOperationException($"{Type} writer produced {w.Position} bytes, expected {buf.Length}");
        }
        return buf;
    }

    /// <summary>Writes into <paramref name="destination"/>; returns bytes written, or 0 when it does not fit.</summary>
    public int TryWrite(Span<byte> destination)
    {
        if (destination.Length < EncodedLength) return 0;
        var w = new SpanWriter(destination);
        Write(ref w);
        return w.Ok ? w.Position : 0;
    }

    /// <summary>Decodes one control message. Never throws; on failure the status names the field and offset.</summary>
    public static WireStatus TryDecode(ReadOnlySpan<byte> packet, out ControlMessage? message) => TryDecode(packet, 0, out message);

    internal static WireStatus TryDecode(ReadOnlySpan<byte> packet, int depth, out ControlMessage? message)
    {
        message = null;
        var r = new SpanReader(packet);
        if (packet.Length < 4)
        {
            r.Fail(WireError.Truncated, $"a LISP control message is at least 4 bytes, got {packet.Length}");
            return r.Status;
        }
        var type = (MessageType)(packet[0] >> 4);
        try
        {
            message = type switch
            {
                MessageType.MapRequest => MapRequest.Read(ref r),
                MessageType.MapReply => MapReply.Read(ref r),
                MessageType.MapRegister => MapRegister.Read(ref r),
                MessageType.MapNotify or MessageType.MapNotifyAck => MapNotify.Read(ref r),
                MessageType.EncapsulatedControl => EncapsulatedControlMessage.Read(ref r, depth),
                _ => Unsupported(ref r, type),
            };
        }
        catch (Exception e) when (e is ArgumentException or FormatException or OverflowException)
        {
            // Defence in depth: a reader bug must become a status, never an exception out of the codec.
            r.Fail(WireError.BadValue, $"decoder fault: {e.Message}");
        }
        if (r.Ok && message is not null && r.Remaining != 0)
        {
            r.Fail(WireError.BadLength, $"{r.Remaining} bytes left after the {type} message");
        }
        if (!r.Ok) message = null;
        return r.Status;
    }

    private static ControlMessage? Unsupported(ref SpanReader r, MessageType type)
    {
        r.Fail(WireError.BadType, $"message type {(int)type} ({type}) is not handled");
        return null;
    }

    protected static void CheckCount(ref SpanReader r, int count, int minBytesEach, string what)
    {
        if (count * minBytesEach > r.Remaining)
        {
            r.Fail(WireError.BadLength, $"{what} count {count} needs at least {count * minBytesEach} bytes, {r.Remaining} left");
        }
    }
}
