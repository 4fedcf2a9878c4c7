using System.Globalization;
using System.Net;
using System.Numerics;
using System.Security.Cryptography;
using System.Text;
using Lisp.Decent;

namespace Lisp.Decent.Tests;

/// <summary>
/// Independent oracle for the index: BigInteger over the digest bytes (the library uses Horner's rule over
/// bytes), System.Security.Cryptography called here directly.
/// </summary>
internal static class Oracle
{
    public static int Sha256(string text, int modulus) =>
        (int)(new BigInteger(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(text)), isUnsigned: true, isBigEndian: true) % modulus);

    public static int Hmac(string text, int modulus, int width = 6, string key = "lisp-decent")
    {
        using var h = new HMACSHA256(Encoding.ASCII.GetBytes(key));
        var digest = h.ComputeHash(Encoding.UTF8.GetBytes(text));
        // Through the hex string, as lispers.net does it: int(hexdigest[0:2*width], 16) % modulus.
        var hex = Convert.ToHexString(digest)[..(2 * width)];
        return (int)(BigInteger.Parse("0" + hex, NumberStyles.HexNumber, CultureInfo.InvariantCulture) % modulus);
    }
}

/// <summary>A clock that moves only when told; timers fire inside <see cref="Advance"/>, in due order.</summary>
internal sealed class ManualTimeProvider : TimeProvider
{
    private readonly object _lock = new();
    private readonly List<ManualTimer> _timers = [];
    private DateTimeOffset _now = new(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);

    public override DateTimeOffset GetUtcNow()
    {
        lock (_lock) return _now;
    }

    public override long GetTimestamp() => GetUtcNow().UtcTicks;
    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var t = new ManualTimer(this, callback, state);
        lock (_lock) _timers.Add(t);
        t.Change(dueTime, period);
        return t;
    }

    /// <summary>Moves the clock forward, firing every timer that comes due on the way (at most 10000 firings).</summary>
    public void Advance(TimeSpan by)
    {
        DateTimeOffset target;
        lock (_lock) target = _now + by;
        for (int i = 0; i < 10_000; i++)
        {
            ManualTimer? next = null;
            lock (_lock)
            {
                foreach (var t in _timers)
                {
                    if (t.DueAt is { } d && d <= target && (next is null || d < next.DueAt)) next = t;
                }
                if (next is null)
                {
                    _now = target;
                    return;
                }
                if (next.DueAt > _now) _now = next.DueAt!.Value;
                next.DueAt = next.Period > TimeSpan.Zero ? _now + next.Period : null;
            }
            next.Fire();
        }
        throw new InvalidOperationException("timer storm: more than 10000 firings in one Advance");
    }

    internal sealed class ManualTimer(ManualTimeProvider owner, TimerCallback callback, object? state) : ITimer
    {
        public DateTimeOffset? DueAt;
        public TimeSpan Period;

        public bool Change(TimeSpan dueTime, TimeSpan period)
        {
            lock (owner._lock)
            {
                DueAt = dueTime == Timeout.InfiniteTimeSpan ? null : owner._now + dueTime;
                Period = period == Timeout.InfiniteTimeSpan ? TimeSpan.Zero : period;
            }
            return true;
        }

        public void Fire() => callback(state);

        public void Dispose()
        {
            lock (owner._lock)
            {
                DueAt = null;
                owner._timers.Remove(this);
            }
        }

        public ValueTask DisposeAsync()
        {
            Dispose();
            return ValueTask.CompletedTask;
        }
    }
}

/// <summary>A DNS source answering from a table the test changes; unknown names get NXDOMAIN; can be "down".</summary>
internal sealed class ScriptedDnsSource : IDnsAddressSource
{
    private readonly object _lock = new();
    private readonly Dictionary<string, (IPAddress[] Addresses, TimeSpan Ttl)> _records = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _queries = new(StringComparer.Ordinal);

    public bool Down { get; set; }

    public void Set(string name, TimeSpan ttl, params string[] addresses)
    {
        lock (_lock) _records[name] = (addresses.Select(IPAddress.Parse).ToArray(), ttl);
    }

    public void Remove(string name)
    {
        lock (_lock) _records.Remove(name);
    }

    public int Queries(string name)
    {
        lock (_lock) return _queries.GetValueOrDefault(name);
    }

    public Task<DnsAnswer> QueryAsync(string name, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            _queries[name] = _queries.GetValueOrDefault(name) + 1;
            if (Down) return Task.FromResult(DnsAnswer.Failed(DnsOutcome.Timeout, name + ": timed out (scripted)"));
            if (!_records.TryGetValue(name, out var r)) return Task.FromResult(DnsAnswer.Failed(DnsOutcome.NxDomain, name + ": NXDOMAIN (scripted)"));
            return Task.FromResult(new DnsAnswer(DnsOutcome.Ok, r.Addresses, r.Ttl));
        }
    }
}

/// <summary>Collects log lines from the code under test (and echoes them to the test output).</summary>
internal sealed class LogSink(Xunit.Abstractions.ITestOutputHelper? output = null)
{
    private readonly List<string> _lines = [];

    public void Add(string line)
    {
        lock (_lines) _lines.Add(line);
        try
        {
            output?.WriteLine(line);
        }
        catch (InvalidOperationException)
        {
            // test already finished
        }
    }

    public IReadOnlyList<string> Lines
    {
        get { lock (_lines) return _lines.ToArray(); }
    }

    public bool Any(string fragment) => Lines.Any(l => l.Contains(fragment, StringComparison.OrdinalIgnoreCase));
}
