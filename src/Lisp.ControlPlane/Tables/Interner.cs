namespace Lisp.ControlPlane.Tables;

/// <summary>
/// Shares one instance among equal values that many table entries hold (an ETR's RLOC set is the same for
/// every EID it registers, and so is its source endpoint), with reference counts so a value nobody holds any
/// more is forgotten. Measured reason: at 100k registrations from one ETR, a private copy of the decoded RLOC
/// list (list, array, locator record, address records) and of the source endpoint cost about 250 B per
/// registration, a fifth of the whole entry (perf/RESULTS.md "Control plane at scale").
/// Not thread-safe: the table's owner calls it.
/// </summary>
public sealed class Interner<T>(IEqualityComparer<T> comparer) where T : class
{
    private readonly Dictionary<T, Shared> _values = new(comparer);

    private sealed class Shared(T value)
    {
        public readonly T Value = value;
        public int References;
    }

    /// <summary>Distinct values held.</summary>
    public int Count => _values.Count;

    /// <summary>The shared instance equal to <paramref name="value"/> (the value itself when it is the first), one more reference to it.</summary>
    public T Acquire(T value)
    {
        if (!_values.TryGetValue(value, out var shared)) _values[value] = shared = new Shared(value);
        shared.References++;
        return shared.Value;
    }

    /// <summary>Drops one reference taken with <see cref="Acquire"/>.</summary>
    public void Release(T value)
    {
        if (_values.TryGetValue(value, out var shared) && --shared.References <= 0) _values.Remove(value);
    }
}

/// <summary>Compares RLOC sets by content, in order (the order is the registration's).</summary>
public sealed class LocatorListComparer : IEqualityComparer<IReadOnlyList<Lisp.Wire.LocatorRecord>>
{
    public static readonly LocatorListComparer Instance = new();

    public bool Equals(IReadOnlyList<Lisp.Wire.LocatorRecord>? x, IReadOnlyList<Lisp.Wire.LocatorRecord>? y)
    {
        if (ReferenceEquals(x, y)) return true;
        if (x is null || y is null || x.Count != y.Count) return false;
        for (int i = 0; i < x.Count; i++)
        {
            if (!x[i].Equals(y[i])) return false;
        }
        return true;
    }

    public int GetHashCode(IReadOnlyList<Lisp.Wire.LocatorRecord> list)
    {
        var h = new HashCode();
        h.Add(list.Count);
        for (int i = 0; i < list.Count; i++) h.Add(list[i]);
        return h.ToHashCode();
    }
}
