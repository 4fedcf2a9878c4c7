namespace Lisp.Wire;

/// <summary>Why a codec refused its input. Each value becomes a drop counter at the socket layer.</summary>
public enum WireError
{
    None = 0,
    Truncated,
    BadLength,
    BadType,
    UnsupportedAfi,
    BadValue,
    TooDeep,
    BufferTooSmall,
    BadText,
}

/// <summary>Outcome of a codec call: Ok, or the error class plus a sentence an operator can act on.</summary>
public readonly record struct WireStatus(WireError Error, string? Detail, int Offset)
{
    public static readonly WireStatus Ok = new(WireError.None, null, 0);
    public bool IsOk => Error == WireError.None;
    public override string ToString() => IsOk ? "ok" : $"{Error} at byte {Offset}: {Detail}";
}
