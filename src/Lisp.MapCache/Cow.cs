using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Lisp.MapCache;

/// <summary>
/// Decides when chunks replaced by copy-on-write may be written again (epoch-based reclamation, as RCU or
/// VPP's worker barriers do it). A chunk copied while the writer builds generation G+1 is still referenced by
/// snapshot G and earlier; it is tagged G+1 and may be reused once every registered reader holds generation
/// G+1 or later, or none (<see cref="MapCacheReader"/> records which one each reader holds).
/// <para>
/// Why: without reuse every change allocates its copied chunks (48 KiB per change measured at 1M prefixes,
/// 10k changes/s), those chunks live as long as a snapshot and get promoted, and the collector then ran 59
/// gen2 and 291 gen1 collections in 8 s, each pausing the data-plane readers. With reuse the steady state
/// allocates no chunks at all. A reader that stops releasing only stops reuse (retired chunks past a bound
/// go to the collector instead); it can never see a chunk change under it.
/// </para>
/// </summary>
internal sealed class ChunkRecycler
{
    /// <summary>The generation being built (the published one + 1): tag of what is retired now.</summary>
    public long PendingTag = 1;
    /// <summary>Chunks retired with a tag at or below this may be reused.</summary>
    public long SafeTag;
    /// <summary>Bytes one array may keep retired before the oldest go to the collector instead.</summary>
    public const long MaxRetiredBytes = 32L << 20;
    /// <summary>Chunks handed out again instead of allocated (a counter for tests and the churn measurement).</summary>
    public long Reused;
}

/// <summary>
/// A growable array split into fixed-size chunks, written by one thread and published to readers as an
/// immutable <see cref="Chunks{T}"/> view, with copy-on-write per chunk (the shape of issue 10's "DIR-24 chunks
/// copied on write").
/// <para>
/// Why chunks: a map-cache change touches a few entries of arrays that hold millions (the 2^24-entry DIR-24
/// front table is 64 MiB). Rebuilding or copying the whole array per publish cost 122 ms and 130 MiB of
/// allocation per change at 20k entries, and the large-object heap garbage then forced gen2 collections that
/// paused the data-plane workers. Here a publish copies only the chunks written since the previous publish,
/// plus the spine (the array of chunk references). Every chunk and every spine stays below the 85,000-byte
/// large-object threshold (<see cref="MaxChunkBytes"/>, <see cref="MaxSpineLength"/>), so all of it is
/// ordinary gen0 garbage once no reader holds the snapshot that used it.
/// </para>
/// <para>
/// Readers never see a chunk change: a chunk reachable from a published spine is never written again; the
/// writer copies it first (once per publish cycle) and writes the copy, which only the next spine references.
/// </para>
/// </summary>
internal sealed class CowArray<T>
{
    /// <summary>Chunks stay below the large-object threshold (85,000 bytes) with room for the array header.</summary>
    public const int MaxChunkBytes = 64 * 1024;
    /// <summary>A spine of references stays below the threshold too: 8,192 x 8 bytes = 64 KiB.</summary>
    public const int MaxSpineLength = 8 * 1024;

    private readonly int _shift;
    private readonly int _mask;
    private T[][] _spine;
    private int _chunkCount;
    // True while _spine is referenced by a published view: the next write copies it first.
    private bool _spineShared;
    // Chunk c was allocated or copied since the last publish (so it is private to the writer).
    private bool[] _owned;
    private readonly ChunkRecycler? _recycler;
    private readonly Queue<(long Tag, T[] Chunk)> _retired = new();
    private readonly Stack<T[]> _free = new();
    private readonly Queue<(long Tag, T[][] Spine)> _retiredSpines = new();
    private readonly int _maxRetired;

    public CowArray(int chunkShift, int initialLength = 0, ChunkRecycler? recycler = null)
    {
        _recycler = recycler;
        _maxRetired = (int)Math.Max(16, ChunkRecycler.MaxRetiredBytes / ((long)Unsafe.SizeOf<T>() << chunkShift));
        if (Unsafe.SizeOf<T>() << chunkShift > MaxChunkBytes) throw new ArgumentOutOfRangeException(nameof(chunkShift), "chunk too large");
        _shift = chunkShift;
        _mask = (1 << chunkShift) - 1;
        _spine = new T[Math.Max(1, (initialLength + _mask) >> _shift)][];
        _owned = new bool[_spine.Length];
        EnsureLength(initialLength);
    }

    /// <summary>Chunk size for <typeparamref name="T"/> under <see cref="MaxChunkBytes"/> (a power of two).</summary>
    public static int ShiftFor(int maxShift)
    {
        int shift = maxShift;
        while (shift > 0 && Unsafe.SizeOf<T>() << shift > MaxChunkBytes) shift--;
        return shift;
    }

    public int ChunkShift => _shift;
    /// <summary>Elements addressable now (whole chunks).</summary>
    public int Length => _chunkCount << _shift;

    /// <summary>Makes every index below <paramref name="length"/> addressable (new chunks are zeroed).</summary>
    public void EnsureLength(int length)
    {
        int need = (length + _mask) >> _shift;
        if (need <= _chunkCount) return;
        if (need > MaxSpineLength) throw new InvalidOperationException($"chunked array limit reached ({MaxSpineLength} chunks of {1 << _shift})");
        if (need > _spine.Length || _spineShared)
        {
            var spine = new T[Math.Max(need, _spineShared ? _spine.Length : Math.Min(MaxSpineLength, _spine.Length * 2))][];
            Array.Copy(_spine, spine, _chunkCount);
            _spine = spine;
            if (_spineShared) Array.Clear(_owned);
            _spineShared = false;
            if (_owned.Length < spine.Length) Array.Resize(ref _owned, spine.Length);
        }
        for (int c = _chunkCount; c < need; c++)
        {
            _spine[c] = new T[1 << _shift];
            _owned[c] = true;
        }
        _chunkCount = need;
    }

    /// <summary>Current value (the writer's view, including unpublished writes).</summary>
    public T this[int index] => _spine[index >> _shift][index & _mask];

    /// <summary>A writable reference to one element: copies its chunk (and the spine) first when a reader may hold them.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref T Write(int index)
    {
        int c = index >> _shift;
        if (_spineShared || !_owned[c]) Own(c);
        return ref _spine[c][index & _mask];
    }

    /// <summary>A writable span of chunk-local elements [index, index + count) that must lie in one chunk.</summary>
    public Span<T> WriteSpan(int index, int count)
    {
        int c = index >> _shift;
        if (_spineShared || !_owned[c]) Own(c);
        return _spine[c].AsSpan(index & _mask, count);
    }

    /// <summary>Sets [start, start + count) to <paramref name="value"/>, chunk by chunk.</summary>
    public void Fill(int start, int count, T value)
    {
        while (count > 0)
        {
            int inChunk = Math.Min(count, (1 << _shift) - (start & _mask));
            WriteSpan(start, inChunk).Fill(value);
            start += inChunk;
            count -= inChunk;
        }
    }

    private void Own(int c)
    {
        if (_spineShared)
        {
            var spine = RentSpine(_spine.Length);
            Array.Copy(_spine, spine, _spine.Length);
            if (_recycler is not null) _retiredSpines.Enqueue((_recycler.PendingTag, _spine));
            _spine = spine;
            _spineShared = false;
            Array.Clear(_owned);
        }
        if (!_owned[c])
        {
            var old = _spine[c];
            var copy = Rent();
            Array.Copy(old, copy, old.Length);
            _spine[c] = copy;
            _owned[c] = true;
            if (_recycler is not null)
            {
                _retired.Enqueue((_recycler.PendingTag, old));
                if (_retired.Count > _maxRetired) _retired.Dequeue(); // to the collector: a reader is holding an old generation
            }
        }
    }

    private T[] Rent()
    {
        if (_recycler is not null)
        {
            while (_retired.TryPeek(out var r) && r.Tag <= _recycler.SafeTag) _free.Push(_retired.Dequeue().Chunk);
            if (_free.TryPop(out var chunk))
            {
                _recycler.Reused++;
                return chunk;
            }
        }
        return new T[1 << _shift];
    }

    private T[][] RentSpine(int length)
    {
        if (_recycler is not null)
        {
            while (_retiredSpines.TryPeek(out var r) && r.Tag <= _recycler.SafeTag)
            {
                var spine = _retiredSpines.Dequeue().Spine;
                if (spine.Length == length) return spine;   // a spine of another length (the array grew since) is left to the collector
            }
            if (_retiredSpines.Count > 64) _retiredSpines.Dequeue();
        }
        return new T[length][];
    }

    /// <summary>
    /// The current contents as an immutable view. Later writes copy what they touch, so the view never changes.
    /// Costs nothing when nothing was written since the previous call (the same spine is returned).
    /// </summary>
    public Chunks<T> Publish()
    {
        _spineShared = true;
        return new Chunks<T>(_spine, _shift);
    }
}

/// <summary>An immutable chunked array as readers see it: element i is chunk i &gt;&gt; shift, offset i &amp; mask.</summary>
internal readonly struct Chunks<T>
{
    private readonly T[][] _spine;
    private readonly int _shift;

    public Chunks(T[][] spine, int shift)
    {
        _spine = spine;
        _shift = shift;
    }

    public bool IsEmpty => _spine is null;

    /// <summary>No bounds checks: callers index only what the writer addressed (slots from the same snapshot).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref T At(int index)
    {
        var chunk = Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_spine), (nint)((uint)index >> _shift));
        return ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(chunk), (nint)((uint)index & ((1u << _shift) - 1)));
    }

    /// <summary>Approximate bytes of the chunks (shared ones counted too).</summary>
    public long Bytes
    {
        get
        {
            if (_spine is null) return 0;
            long n = 0;
            foreach (var c in _spine) if (c is not null) n += (long)c.Length * Unsafe.SizeOf<T>();
            return n;
        }
    }
}
