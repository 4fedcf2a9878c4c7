using Lisp.Wire;

namespace Lisp.ControlPlane.Tables;

/// <summary>
/// The ITR's map-cache as the control plane holds it: entries by their typed key (what RLOC-probing indexes) and,
/// beside it, the same entries in an <see cref="EidTable{T}"/> for longest-prefix lookups and a min-heap of
/// expiry times, so a lookup is one trie path and a timer turn costs O(entries due) instead of a walk over every
/// entry (issue 10). A replaced entry's heap item stays behind and is skipped when it comes due (it is not the
/// entry the table holds any more); the heap is rebuilt when such leftovers outnumber the live entries.
/// Not thread-safe: the ITR's shard owns it.
/// </summary>
public sealed class ItrCacheTable
{
    private readonly Dictionary<EidKey, MapCacheEntry> _byKey = new();
    private readonly EidTable<MapCacheEntry> _index = new();
    private readonly PriorityQueue<(EidKey Key, MapCacheEntry Entry), long> _expiry = new();

    public int Count => _byKey.Count;

    public IEnumerable<MapCacheEntry> Values => _byKey.Values;

    public bool ContainsKey(EidKey key) => _byKey.ContainsKey(key);

    public bool TryGetValue(EidKey key, out MapCacheEntry entry) => _byKey.TryGetValue(key, out entry!);

    public MapCacheEntry this[EidKey key]
    {
        get => _byKey[key];
        set
        {
            _byKey[key] = value;
            _index.Set(key, value);
            _expiry.Enqueue((key, value), value.ExpiresAt.UtcTicks);
            if (_expiry.Count > 2 * _byKey.Count + 1024) RebuildHeap();
        }
    }

    public bool Remove(EidKey key, out MapCacheEntry entry)
    {
        if (!_byKey.Remove(key, out entry!)) return false;
        _index.Remove(key);
        return true;
    }

    public void Clear()
    {
        foreach (var k in _byKey.Keys) _index.Remove(k);
        _byKey.Clear();
        _expiry.Clear();
    }

    /// <summary>
    /// At most <paramref name="max"/> unexpired entries after <paramref name="after"/> (null: from the first) in
    /// <see cref="EidTable{T}.CompareKeys"/> order, appended to <paramref name="into"/>; returns the last key read,
    /// or null when the walk reached the end (a management page's slice: O(depth + max), issue 12).
    /// </summary>
    public EidKey? Slice(EidKey? after, int max, DateTimeOffset now, List<MapCacheEntry> into)
    {
        long t = now.UtcTicks;
        int read = 0;
        EidKey? last = null;
        _index.WalkAfter(after, (key, e) =>
        {
            if (e.ExpiresAt.UtcTicks > t) into.Add(e);
            last = key;
            return ++read < max;
        });
        return read >= max ? last : null;
    }

    /// <summary>The most specific unexpired entry covering <paramref name="eid"/> (exact for kinds without prefixes).</summary>
    public MapCacheEntry? Longest(EidPrefix eid, DateTimeOffset now) =>
        _index.Longest(EidKey.From(eid), static (e, t) => e.ExpiresAt.UtcTicks > t, now.UtcTicks);

    /// <summary>Earliest expiry of a held entry (stale heap items at the front are dropped on the way).</summary>
    public DateTimeOffset? NextExpiry
    {
        get
        {
            while (_expiry.TryPeek(out var item, out long t))
            {
                if (_byKey.TryGetValue(item.Key, out var held) && ReferenceEquals(held, item.Entry)) return new DateTimeOffset(t, TimeSpan.Zero);
                _expiry.Dequeue();
            }
            return null;
        }
    }

    /// <summary>Keys of the entries that expired by <paramref name="now"/> (still in the table: the caller removes them).</summary>
    public List<EidKey> Due(DateTimeOffset now)
    {
        var due = new List<EidKey>();
        long t = now.UtcTicks;
        while (_expiry.TryPeek(out var item, out long at) && at <= t)
        {
            _expiry.Dequeue();
            if (_byKey.TryGetValue(item.Key, out var held) && ReferenceEquals(held, item.Entry) && held.ExpiresAt.UtcTicks <= t) due.Add(item.Key);
        }
        return due;
    }

    private void RebuildHeap()
    {
        _expiry.Clear();
        foreach (var (k, e) in _byKey) _expiry.Enqueue((k, e), e.ExpiresAt.UtcTicks);
    }
}
