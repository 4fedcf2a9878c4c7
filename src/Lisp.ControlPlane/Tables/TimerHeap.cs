namespace Lisp.ControlPlane.Tables;

/// <summary>
/// A min-heap of (item, deadline) timers with lazy invalidation, the pattern of <see cref="ItrCacheTable"/>'s expiry
/// heap: the owner pushes an item each time it sets a deadline and never removes one; an item whose deadline is no
/// longer the one its owner holds (rescheduled, answered, removed) is stale and is dropped when it reaches the front.
/// <paramref name="isLive"/> tells the two apart (given once, so no delegate is made per call). So the next deadline is
/// O(1) amortized and a turn costs O(due timers x log n) instead of a walk over every item (issue 10). The owner
/// rebuilds the heap from its live deadlines (<see cref="NeedsRebuild"/>) when stale items outnumber live ones.
/// Not thread-safe: the owner's shard owns it.
/// </summary>
public sealed class TimerHeap<T>(Func<T, DateTimeOffset, bool> isLive)
{
    private readonly PriorityQueue<T, DateTimeOffset> _heap = new();

    /// <summary>Items in the heap, stale ones included.</summary>
    public int Count => _heap.Count;

    public void Push(T item, DateTimeOffset at) => _heap.Enqueue(item, at);

    public void Clear() => _heap.Clear();

    /// <summary>Whether the heap holds more than twice <paramref name="live"/> items (plus slack): time to rebuild it.</summary>
    public bool NeedsRebuild(int live) => _heap.Count > 2 * live + 1024;

    /// <summary>The earliest live deadline (stale items at the front are dropped on the way); null when none.</summary>
    public DateTimeOffset? Next
    {
        get
        {
            while (_heap.TryPeek(out var item, out var at))
            {
                if (isLive(item, at)) return at;
                _heap.Dequeue();
            }
            return null;
        }
    }

    /// <summary>
    /// Pops every item due by <paramref name="now"/> and appends the live ones to <paramref name="into"/> (in deadline
    /// order; the caller orders and de-duplicates them as it needs). Items pushed afterwards wait for the next turn.
    /// </summary>
    public void PopDue(DateTimeOffset now, List<T> into)
    {
        while (_heap.TryPeek(out var item, out var at) && at <= now)
        {
            _heap.Dequeue();
            if (isLive(item, at)) into.Add(item);
        }
    }
}
