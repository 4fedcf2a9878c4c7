using Lisp.Wire;

namespace Lisp.ControlPlane.Tables;

/// <summary>
/// The ITR's map-cache as the control plane holds it: entries by their text key (what RLOC-probing indexes) and,
/// beside it, the same entries in an <see cref="EidTable{T}"/> for longest-prefix lookups and a min-heap of
/// expiry times, so a lookup is one trie path and a timer turn costs O(entries due) instead of a walk over every
/// entry (issue 10). A replaced entry's heap item stays behind and is skipped when it comes due (it is not the
/// entry the table holds any more); the heap is rebuilt when such leftovers outnumber the live entries.
/// Not thread-safe: the ITR's shard owns it.
/// </summary>
public sealed class ItrCacheTable
{
    private readonly Dictionary<string, MapCacheEntry> _byText = new(StringComparer.Ordinal);
    private readonly EidTable<MapCacheEntry> _index = new();
    private readonly PriorityQueue<(string Key, MapCacheEntry Entry), long> _expiry = new();

    public int Count => _byText.Count;

    public IEnumerable<MapCacheEntry> Values => _byText.Values;

    public bool ContainsKey(string key) => _byText.ContainsKey(key);

    public bool TryGetValue(string key, out MapCacheEntry entry) => _byText.TryGetValue(key, out entry!);

    public MapCacheEntry this[string key]
    {
        get => _byText[key];
        set
        {
            _byText[key] = value;
            _index.Set(EidKey.From(value.Eid), value);
            _expiry.Enqueue((key, value), value.ExpiresAt.UtcTicks);
            if (_expiry.Count > 2 * _byText.Count + 1024) RebuildHeap();
        }
    }

    public bool Remove(string key, out MapCacheEntry entry)
    {
        if (!_byText.Remove(key, out entry!)) return false;
        _index.Remove(EidKey.From(entry.Eid));
        return true;
    }

    public void Clear()
    {
        foreach (var e in _byText.Values) _index.Remove(EidKey.From(e.Eid));
        _byText.Clear();
        _expiry.Clear();
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
                if (_byText.TryGetValue(item.Key, out var held) && ReferenceEquals(held, item.Entry)) return new DateTimeOffset(t, TimeSpan.Zero);
                _expiry.Dequeue();
            }
            return null;
        }
    }

    /// <summary>Keys of the entries that expired by <paramref name="now"/> (still in the table: the caller removes them).</summary>
    public List<string> Due(DateTimeOffset now)
    {
        var due = new List<string>();
        long t = now.UtcTicks;
        while (_expiry.TryPeek(out var item, out long at) && at <= t)
        {
            _expiry.Dequeue();
            if (_byText.TryGetValue(item.Key, out var held) && ReferenceEquals(held, item.Entry) && held.ExpiresAt.UtcTicks <= t) due.Add(item.Key);
        }
        return due;
    }

    private void RebuildHeap()
    {
        _expiry.Clear();
        foreach (var (k, e) in _byText) _expiry.Enqueue((k, e), e.ExpiresAt.UtcTicks);
    }
}
