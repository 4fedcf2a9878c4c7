using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;

namespace Lisp.DataPlane;

/// <summary>A remote RLOC as a number: IPv4 as its IPv4-mapped IPv6 value, IPv6 as its 128 bits (no allocation on the data path; an IPv4-mapped IPv6 address is the IPv4 RLOC).</summary>
public readonly record struct RlocKey(UInt128 Value)
{
    private static readonly UInt128 V4Mapped = (UInt128)0xffffUL << 32;

    public static RlocKey FromV4(uint address) => new(V4Mapped | address);
    public static RlocKey FromV6(ReadOnlySpan<byte> address16) => new(BinaryPrimitives.ReadUInt128BigEndian(address16));
    public static RlocKey From(IPAddress a) =>
        a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork
            ? FromV4(BinaryPrimitives.ReadUInt32BigEndian(a.GetAddressBytes()))
            : FromV6(a.GetAddressBytes());

    public bool IsV4 => Value >> 32 == 0xffff;

    public IPAddress ToAddress()
    {
        if (IsV4)
        {
            Span<byte> v4 = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(v4, (uint)Value);
            return new IPAddress(v4);
        }
        Span<byte> b = stackalloc byte[16];
        BinaryPrimitives.WriteUInt128BigEndian(b, Value);
        return new IPAddress(b);
    }

    public override string ToString() => ToAddress().ToString();
}

/// <summary>Echo-nonce settings (RFC 9300 section 10.1): [data_plane] echo_nonce, echo_nonce_interval, echo_nonce_timeout, echo_nonce_retry.</summary>
public sealed record EchoNonceOptions
{
    /// <summary>After an echo (or at first traffic) the next request to that RLOC is due this much later.</summary>
    public TimeSpan RequestInterval { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>A request not echoed within this long, while traffic to the RLOC kept flowing, marks the RLOC down; also how long we echo a peer's nonce after its last request.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(3);
    /// <summary>A down RLOC is tried again (marked up, a new request with the next packet) after this long.</summary>
    public TimeSpan Retry { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>Remote RLOCs tracked at most (more get no echo-nonce, counted).</summary>
    public int MaxRlocs { get; init; } = 4096;
}

/// <summary>What one remote RLOC's echo-nonce state looks like (for `show` and the management API).</summary>
public readonly record struct EchoNonceRloc(IPAddress Rloc, string State, uint RequestNonce, double? SecondsSinceEcho,
    long Requests, long EchoesReceived, long EchoesSent, long Downs);

/// <summary>A reachability verdict for the map-cache: <see cref="Reachable"/> false = no echo in time, true = retry after the hold.</summary>
public readonly record struct EchoNonceChange(RlocKey Rloc, bool Reachable, string Reason);

/// <summary>
/// Echo-nonce locator reachability (RFC 9300 section 10.1), one state machine per remote RLOC, time in ticks of
/// <c>ticksPerSecond</c> (Stopwatch ticks in the data plane; any fake clock in tests):
/// <list type="bullet">
/// <item>Requesting: with traffic to an RLOC and a request due, our ITR sets N and E with a fresh random nonce in the
/// packets to it (<see cref="OnSend"/>) until that nonce comes back; due again <see cref="EchoNonceOptions.RequestInterval"/>
/// after an echo.</item>
/// <item>Echoing: our ETR records the nonce of each N+E packet per source RLOC (<see cref="OnReceive"/>); our ITR puts
/// it, N set and E clear, in packets back to that RLOC for <see cref="EchoNonceOptions.Timeout"/> after the last
/// request (in every other packet while we request ourselves: one nonce field per packet).</item>
/// <item>Verdict: our ETR seeing our request nonce with E clear from that RLOC = reachable. A request older than the
/// timeout while we kept sending to the RLOC (the last packet at least half the timeout after the request began)
/// marks it down (<see cref="Tick"/> returns the change; the host applies it to the map-cache); without traffic the
/// request is abandoned, no verdict. A down RLOC is retried after <see cref="EchoNonceOptions.Retry"/>.</item>
/// </list>
/// Both ends need echo-nonce on and traffic in both directions (an echo rides on the peer's data packets): with
/// one-way traffic nothing comes back and the RLOC would be marked down; use RLOC-probing there.
/// Thread-safe: ITR workers (<see cref="OnSend"/>), ETR workers (<see cref="OnReceive"/>) and the control thread
/// (<see cref="Tick"/>) share one lock, taken once per packet only when echo-nonce is on.
/// </summary>
public sealed class EchoNonceTable
{
    private sealed class Peer
    {
        public uint RequestNonce;         // 0 = not requesting
        public long RequestSince, NextRequestAt, LastSent, LastEchoed, LastSeen;
        public bool HasEchoed;
        public bool Down;
        public long DownSince;
        public bool RequestOut;           // the request nonce went out in a packet (its timeout runs)
        public uint Owed;                 // a nonce the peer asked us to echo (0 = none)
        public long OwedUntil;
        public bool LastWasEcho;
        public long Requests, EchoesReceived, EchoesSent, Downs;
    }

    private readonly Dictionary<RlocKey, Peer> _peers = new();
    private readonly Lock _lock = new();
    private readonly long _interval, _timeout, _retry;
    private readonly int _max;
    private readonly double _ticksPerSecond;
    private uint _rng;
    private long _requests, _echoesReceived, _echoesSent, _downs, _retries, _abandoned, _tableFull;

    public EchoNonceTable(EchoNonceOptions options, long ticksPerSecond = 0, int seed = 0)
    {
        if (ticksPerSecond <= 0) ticksPerSecond = Stopwatch.Frequency;
        if (options.Timeout <= TimeSpan.Zero || options.RequestInterval <= TimeSpan.Zero || options.Retry <= TimeSpan.Zero)
        {
            throw new ArgumentException("echo-nonce interval, timeout and retry must be positive");
        }
        _ticksPerSecond = ticksPerSecond;
        _interval = Ticks(options.RequestInterval);
        _timeout = Ticks(options.Timeout);
        _retry = Ticks(options.Retry);
        _max = options.MaxRlocs;
        Options = options;
        _rng = (uint)(seed != 0 ? seed : Random.Shared.Next()) | 1;
    }

    public EchoNonceOptions Options { get; }

    private long Ticks(TimeSpan t) => (long)(t.TotalSeconds * _ticksPerSecond);

    /// <summary>Requests started (N+E sent with a new nonce).</summary>
    public long Requests => Interlocked.Read(ref _requests);
    /// <summary>Our request nonces that came back (RLOC reachable).</summary>
    public long EchoesReceived => Interlocked.Read(ref _echoesReceived);
    /// <summary>Packets that carried a peer's nonce back to it.</summary>
    public long EchoesSent => Interlocked.Read(ref _echoesSent);
    /// <summary>RLOCs marked down: no echo within the timeout while traffic was sent.</summary>
    public long Downs => Interlocked.Read(ref _downs);
    /// <summary>Down RLOCs tried again after the retry hold.</summary>
    public long Retries => Interlocked.Read(ref _retries);
    /// <summary>Requests dropped without a verdict because traffic to the RLOC stopped.</summary>
    public long Abandoned => Interlocked.Read(ref _abandoned);
    /// <summary>Packets to or from an RLOC not tracked because the table was full.</summary>
    public long TableFull => Interlocked.Read(ref _tableFull);

    /// <summary>
    /// ITR, per packet to <paramref name="rloc"/>: true when this packet carries an echo-nonce field, then
    /// <paramref name="nonce"/> goes in the nonce field with N set, and E set when <paramref name="request"/>.
    /// False: the packet is an ordinary one (random nonce, or the map-versions).
    /// </summary>
    public bool OnSend(RlocKey rloc, long now, out uint nonce, out bool request)
    {
        nonce = 0;
        request = false;
        lock (_lock)
        {
            var p = Get(rloc, now, create: true);
            if (p is null) return false;
            p.LastSent = now;
            if (p.RequestNonce == 0 && !p.Down && now >= p.NextRequestAt)
            {
                p.RequestNonce = NextNonce();
                p.RequestOut = false;
                p.Requests++;
                _requests++;
            }
            // A peer's nonce goes back in every packet while we are not requesting ourselves; while we are, in every
            // other packet (one nonce field per packet), so both the echo and our request get through.
            if (p.Owed != 0 && now < p.OwedUntil && (p.RequestNonce == 0 || !p.LastWasEcho))
            {
                nonce = p.Owed;
                p.LastWasEcho = true;
                p.EchoesSent++;
                _echoesSent++;
                return true;
            }
            p.LastWasEcho = false;
            if (p.RequestNonce == 0) return false;
            if (!p.RequestOut)
            {
                // The timeout runs from the first packet that actually carried the request.
                p.RequestOut = true;
                p.RequestSince = now;
            }
            nonce = p.RequestNonce;
            request = true;
            return true;
        }
    }

    /// <summary>ETR, per decapsulated packet with the N bit from <paramref name="rloc"/> (its outer source).</summary>
    public void OnReceive(RlocKey rloc, bool echoRequest, uint nonce, long now)
    {
        nonce &= 0xffffff;
        lock (_lock)
        {
            var p = Get(rloc, now, create: echoRequest);
            if (p is null) return;
            p.LastSeen = now;
            if (echoRequest)
            {
                p.Owed = nonce;
                p.OwedUntil = now + _timeout;
                return; // a request is never taken as the echo of ours
            }
            if (p.RequestNonce != 0 && nonce == p.RequestNonce)
            {
                p.RequestNonce = 0;
                p.LastEchoed = now;
                p.HasEchoed = true;
                p.NextRequestAt = now + _interval;
                p.EchoesReceived++;
                _echoesReceived++;
            }
        }
    }

    /// <summary>Control thread: timeouts and retries; the verdicts go into <paramref name="changes"/> for the map-cache.</summary>
    public void Tick(long now, List<EchoNonceChange> changes)
    {
        lock (_lock)
        {
            List<RlocKey>? idle = null;
            foreach (var (key, p) in _peers)
            {
                if (p.RequestNonce != 0 && p.RequestOut && now - p.RequestSince >= _timeout)
                {
                    p.RequestNonce = 0;
                    if (p.LastSent - p.RequestSince >= _timeout / 2)
                    {
                        p.Down = true;
                        p.DownSince = now;
                        p.Downs++;
                        _downs++;
                        changes.Add(new EchoNonceChange(key, false, $"no echo of nonce within {Options.Timeout.TotalSeconds:0.###} s while traffic was sent"));
                    }
                    else
                    {
                        p.NextRequestAt = now; // traffic stopped: no verdict; the next packet asks again
                        _abandoned++;
                    }
                }
                else if (p.Down && now - p.DownSince >= _retry)
                {
                    p.Down = false;
                    p.NextRequestAt = now;
                    _retries++;
                    changes.Add(new EchoNonceChange(key, true, $"down for {Options.Retry.TotalSeconds:0.###} s: trying it again"));
                }
                else if (!p.Down && p.RequestNonce == 0 && now - Math.Max(p.LastSent, p.LastSeen) > 10 * _interval)
                {
                    (idle ??= []).Add(key);
                }
            }
            if (idle is not null) foreach (var k in idle) _peers.Remove(k);
        }
    }

    /// <summary>Whether <paramref name="rloc"/> is down by echo-nonce now.</summary>
    public bool IsDown(RlocKey rloc)
    {
        lock (_lock) return _peers.TryGetValue(rloc, out var p) && p.Down;
    }

    /// <summary>Every tracked RLOC's state, by address.</summary>
    public IReadOnlyList<EchoNonceRloc> Snapshot(long now)
    {
        lock (_lock)
        {
            return _peers.OrderBy(kv => kv.Key.Value)
                .Select(kv =>
                {
                    var p = kv.Value;
                    string state = p.Down ? "down" : p.RequestNonce != 0 ? "requesting" : p.HasEchoed ? "up" : "unknown";
                    return new EchoNonceRloc(kv.Key.ToAddress(), state, p.RequestNonce,
                        p.HasEchoed ? (now - p.LastEchoed) / _ticksPerSecond : null, p.Requests, p.EchoesReceived, p.EchoesSent, p.Downs);
                }).ToList();
        }
    }

    private Peer? Get(RlocKey rloc, long now, bool create)
    {
        if (_peers.TryGetValue(rloc, out var p)) return p;
        if (!create) return null;
        if (_peers.Count >= _max)
        {
            _tableFull++;
            return null;
        }
        p = new Peer { NextRequestAt = now, LastSeen = now };
        _peers[rloc] = p;
        return p;
    }

    private uint NextNonce()
    {
        uint x;
        do
        {
            x = _rng;
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            _rng = x;
        }
        while ((x & 0xffffff) == 0);
        return x & 0xffffff;
    }
}
