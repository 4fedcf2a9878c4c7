using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;

namespace Lisp.DataPlane;

/// <summary>A destination the ITR found no map-cache entry for: instance-id and address (4 or 16 bytes).</summary>
public readonly record struct Miss(uint InstanceId, IPAddress Address)
{
    public override string ToString() => $"[{InstanceId}]{Address}";
}

/// <summary>A source EID and the RLOC (outer source address and port) that encapsulated it, seen by an ETR: a gleaning candidate (RFC 9300 section 9).</summary>
public readonly record struct Glean(uint InstanceId, IPAddress Eid, IPEndPoint Rloc)
{
    public override string ToString() => $"[{InstanceId}]{Eid} from {Rloc}";
}

/// <summary>Where misses go: the bounded, rate-limited queue of <see cref="RateLimitedQueue{T}"/> for <see cref="Miss"/>.</summary>
public sealed class MissQueue(int capacity = 1024, double ratePerSecond = 100, int burst = 20) : RateLimitedQueue<Miss>(capacity, ratePerSecond, burst);

/// <summary>Where ETR workers post gleaning candidates for the control plane (bounded, rate-limited like misses).</summary>
public sealed class GleanQueue(int capacity = 256, double ratePerSecond = 50, int burst = 20) : RateLimitedQueue<Glean>(capacity, ratePerSecond, burst);

/// <summary>
/// Where data-plane workers post misses (or gleans) and the control plane picks them up. Posting never blocks and never
/// allocates more than the bound: a full queue or a post over the rate is refused (and counted by the
/// worker). The rate limit is a lock-free GCRA token bucket (<paramref name="ratePerSecond"/> with a burst of
/// <paramref name="burst"/>), so a scan of the EID space cannot turn into a Map-Request flood.
/// Workers already suppress repeats per destination (<see cref="MissSuppressor"/>) before they post.
/// </summary>
public class RateLimitedQueue<T>(int capacity, double ratePerSecond, int burst)
{
    private readonly ConcurrentQueue<T> _queue = new();
    private readonly long _interval = Math.Max(1, (long)(Stopwatch.Frequency / Math.Max(0.001, ratePerSecond)));
    private readonly long _tolerance = (long)(Stopwatch.Frequency / Math.Max(0.001, ratePerSecond)) * Math.Max(0, burst - 1);
    private long _theoreticalArrival;
    private int _count;
    private long _refusedFull, _refusedRate, _posted;

    public int Capacity { get; } = capacity;
    public int Count => Volatile.Read(ref _count);
    public long RefusedFull => Interlocked.Read(ref _refusedFull);
    public long RefusedRate => Interlocked.Read(ref _refusedRate);
    public long Posted => Interlocked.Read(ref _posted);

    /// <summary>Set by the host: called (on the posting thread) after a successful post, e.g. to wake the control thread. Must not block.</summary>
    public Action? OnPosted { get; set; }

    /// <summary>Thread-safe; false when refused (queue full or over the rate).</summary>
    public bool TryPost(T miss, long now = 0)
    {
        if (now == 0) now = Stopwatch.GetTimestamp();
        // GCRA: allowed when now >= TAT - tolerance; then TAT = max(TAT, now) + interval. Bounded CAS retries.
        bool allowed = false;
        for (int attempt = 0; attempt < 8; attempt++)
        {
            long tat = Volatile.Read(ref _theoreticalArrival);
            if (now < tat - _tolerance) break;
            long next = Math.Max(tat, now) + _interval;
            if (Interlocked.CompareExchange(ref _theoreticalArrival, next, tat) == tat)
            {
                allowed = true;
                break;
            }
        }
        if (!allowed)
        {
            Interlocked.Increment(ref _refusedRate);
            return false;
        }
        if (Interlocked.Increment(ref _count) > Capacity)
        {
            Interlocked.Decrement(ref _count);
            Interlocked.Increment(ref _refusedFull);
            return false;
        }
        _queue.Enqueue(miss);
        Interlocked.Increment(ref _posted);
        OnPosted?.Invoke();
        return true;
    }

    /// <summary>Takes up to <paramref name="max"/> misses (the control plane calls this on its own thread).</summary>
    public int Drain(List<T> into, int max = 256)
    {
        int n = 0;
        while (n < max && _queue.TryDequeue(out var m))
        {
            Interlocked.Decrement(ref _count);
            into.Add(m);
            n++;
        }
        return n;
    }
}

/// <summary>
/// Per-worker, direct-mapped memory of recently posted misses: a destination is posted at most once per
/// <c>interval</c> (hash collisions only cause an extra post). Fixed size; no allocation; one thread.
/// </summary>
public sealed class MissSuppressor(int slots = 1024, double intervalSeconds = 1.0)
{
    private readonly ulong[] _keys = new ulong[slots];
    private readonly long[] _times = new long[slots];
    private readonly long _interval = (long)(Stopwatch.Frequency * intervalSeconds);

    /// <summary>True when this key should be posted now (and records it).</summary>
    public bool ShouldPost(ulong key, long now)
    {
        key |= 1; // 0 marks an empty slot
        int i = (int)((key ^ (key >> 29)) % (ulong)_keys.Length);
        if (_keys[i] == key && now - _times[i] < _interval) return false;
        _keys[i] = key;
        _times[i] = now;
        return true;
    }
}
