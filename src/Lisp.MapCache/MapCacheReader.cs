namespace Lisp.MapCache;

/// <summary>
/// How one data-plane thread reads the map-cache: <see cref="Acquire"/> at the start of a batch, use the
/// snapshot for that batch only, <see cref="Release"/> before waiting for the next one. With chunk recycling
/// (<see cref="MapCacheOptions.RecycleChunks"/>) the writer reuses copied-out chunks once no reader holds a
/// snapshot that references them, so a snapshot must not be used after its release.
/// Each instance belongs to one thread.
/// </summary>
public abstract class MapCacheReader : IDisposable
{
    public abstract MapCacheSnapshot Acquire();
    public abstract void Release();
    public void Dispose() => Release();

    /// <summary>A reader over a snapshot source that does not recycle (tests, tools): Release does nothing.</summary>
    public static MapCacheReader From(Func<MapCacheSnapshot> snapshot) => new Untracked(snapshot);

    private sealed class Untracked(Func<MapCacheSnapshot> snapshot) : MapCacheReader
    {
        public override MapCacheSnapshot Acquire() => snapshot();
        public override void Release() { }
    }
}

/// <summary>
/// The generations registered readers hold, one cache line per reader so their writes do not contend.
/// A reader announces the generation it is about to use, then checks that it is still the current one
/// (Dekker-style, with a full fence on both sides): either the writer's scan after a publish sees the
/// announcement, or the reader sees the new snapshot and announces that instead. Idle = long.MaxValue.
/// </summary>
internal sealed class ReaderRegistry
{
    private const int Stride = 16;   // longs: 128 bytes apart (adjacent-line prefetch included)
    public const int MaxReaders = 256;
    private readonly long[] _held = new long[MaxReaders * Stride];
    private int _count;

    public ReaderRegistry() => Array.Fill(_held, long.MaxValue);

    public int Register()
    {
        int n = Interlocked.Increment(ref _count);
        if (n > MaxReaders) throw new InvalidOperationException($"at most {MaxReaders} map-cache readers");
        return (n - 1) * Stride;
    }

    public void Announce(int slot, long generation)
    {
        Volatile.Write(ref _held[slot], generation);
        Interlocked.MemoryBarrier();
    }

    public void Clear(int slot) => Volatile.Write(ref _held[slot], long.MaxValue);

    /// <summary>The oldest generation any reader holds (long.MaxValue when none holds one). Call after a full fence.</summary>
    public long Oldest()
    {
        long min = long.MaxValue;
        int n = Math.Min(Volatile.Read(ref _count), MaxReaders);
        for (int i = 0; i < n; i++) min = Math.Min(min, Volatile.Read(ref _held[i * Stride]));
        return min;
    }
}
