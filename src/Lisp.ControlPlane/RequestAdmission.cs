using System.Net;
using System.Net.Sockets;
using Lisp.Wire;

namespace Lisp.ControlPlane;

/// <summary>Map-Request admission settings (issue 12, finding 4); see <see cref="RequestAdmission"/>.</summary>
public sealed record RequestAdmissionOptions
{
    public const int DefaultRatePerSource = 1000;
    public const int DefaultBurstPerSource = 2000;
    public const int DefaultAmplificationFactor = 3;
    public const int DefaultMaxTracked = 65536;

    /// <summary>Map-Requests per second one outer source address (and, apart, one reply ITR-RLOC) may have answered; 0: no limit.</summary>
    public int RatePerSource { get; init; } = DefaultRatePerSource;
    /// <summary>Bucket depth: requests one address may send at once after being idle.</summary>
    public int BurstPerSource { get; init; } = DefaultBurstPerSource;
    /// <summary>
    /// A Map-Reply to an ITR-RLOC that is not the request's outer source may be at most this many times the
    /// request's datagram; a larger one is not sent (drop.amplification-bound). 0: no bound.
    /// </summary>
    public int AmplificationFactor { get; init; } = DefaultAmplificationFactor;
    /// <summary>Most addresses whose buckets are tracked at once (clock eviction beyond it).</summary>
    public int MaxTracked { get; init; } = DefaultMaxTracked;
}

/// <summary>Why an ITR-RLOC was refused as a reply address.</summary>
public enum ItrRlocRefusal
{
    None,
    Multicast,
    Broadcast,
    Unspecified,
    /// <summary>A loopback ITR-RLOC in a request that did not come from a loopback source.</summary>
    Loopback,
}

/// <summary>
/// Map-Request admission (issue 12, finding 4): the one step every Map-Request answer passes through at
/// <see cref="ControlNode"/> (Map-Resolver, Map-Server proxy and negative replies, ETR replies, forwards).
/// <list type="number">
/// <item>ITR-RLOCs that are multicast, broadcast (255.255.255.255), unspecified, or loopback while the request
/// came from elsewhere are removed from the request (counted per reason); with none left, or with a reply address
/// (the fallback to the inner or outer source included) of such a kind, the request is dropped (drop.itr-rloc-refused).</item>
/// <item>Token buckets per outer source address and per reply address (the ITR-RLOC chosen), in one bounded
/// table with clock eviction; an empty bucket drops the request (drop.rate-limited).</item>
/// <item>After the role answered: a Map-Reply to an address other than the request's outer source larger than
/// <see cref="RequestAdmissionOptions.AmplificationFactor"/> x the request is not sent (drop.amplification-bound).</item>
/// </list>
/// Single-threaded, like the roles; the clock is the <c>now</c> handed in.
/// </summary>
public sealed class RequestAdmission
{
    private readonly RequestAdmissionOptions _options;
    private readonly ControlCounters _counters;
    private readonly BucketTable? _buckets;

    public RequestAdmission(RequestAdmissionOptions options, ControlCounters counters)
    {
        _options = options;
        _counters = counters;
        if (options.RatePerSource > 0)
        {
            _buckets = new BucketTable(Math.Max(16, options.MaxTracked), options.RatePerSource, Math.Max(1, options.BurstPerSource));
        }
    }

    public RequestAdmissionOptions Options => _options;
    /// <summary>Addresses whose buckets are held now (at most <see cref="RequestAdmissionOptions.MaxTracked"/>).</summary>
    public int Tracked => _buckets?.Count ?? 0;

    /// <summary>What a refused ITR-RLOC is, if anything.</summary>
    public static ItrRlocRefusal Classify(IPAddress a, IPAddress source)
    {
        if (a.IsIPv4MappedToIPv6) a = a.MapToIPv4();
        if (source.IsIPv4MappedToIPv6) source = source.MapToIPv4();
        if (a.Equals(IPAddress.Any) || a.Equals(IPAddress.IPv6Any)) return ItrRlocRefusal.Unspecified;
        if (a.AddressFamily == AddressFamily.InterNetwork)
        {
            Span<byte> b = stackalloc byte[4];
            a.TryWriteBytes(b, out _);
            if (b[0] >= 224 && b[0] <= 239) return ItrRlocRefusal.Multicast;
            if (a.Equals(IPAddress.Broadcast)) return ItrRlocRefusal.Broadcast;
            if (b[0] == 0) return ItrRlocRefusal.Unspecified;           // 0.0.0.0/8: "this network", never a destination
        }
        else if (a.IsIPv6Multicast) return ItrRlocRefusal.Multicast;
        if (IPAddress.IsLoopback(a) && !IPAddress.IsLoopback(source)) return ItrRlocRefusal.Loopback;
        return ItrRlocRefusal.None;
    }

    /// <summary>
    /// Step 1 and 2, before a role answers. True: <paramref name="admitted"/> (the request, less refused ITR-RLOCs)
    /// and <paramref name="admittedEcm"/> (its ECM, when it came in one) go to the role. False: <paramref name="refusal"/>
    /// holds the (log) actions to return instead.
    /// </summary>
    public bool TryAdmit(MapRequest request, EncapsulatedControlMessage? ecm, ReceivedPacket packet, DateTimeOffset now,
        out MapRequest admitted, out EncapsulatedControlMessage? admittedEcm, out IReadOnlyList<ControlAction> refusal)
    {
        admitted = request;
        admittedEcm = ecm;
        refusal = [];
        var source = packet.From.Address;
        List<LispAddress>? kept = null;
        ItrRlocRefusal firstRefusal = ItrRlocRefusal.None;
        IPAddress? firstRefused = null;
        for (int i = 0; i < request.ItrRlocs.Count; i++)
        {
            var r = request.ItrRlocs[i];
            var why = Util.Ip(r) is { } ip ? Classify(ip, source) : ItrRlocRefusal.None;
            if (why == ItrRlocRefusal.None)
            {
                kept?.Add(r);
                continue;
            }
            Count(why);
            if (firstRefusal == ItrRlocRefusal.None) { firstRefusal = why; firstRefused = Util.Ip(r); }
            kept ??= [.. request.ItrRlocs.Take(i)];
        }
        if (kept is not null)
        {
            if (kept.Count == 0)
            {
                _counters.Drop(DropReason.ItrRlocRefused);
                refusal = [new LogAction(LogLevel.Warning, "itr-rloc-refused",
                    $"Map-Request for {First(request)} from {packet.From} (nonce {Util.Hex(request.Nonce)}) dropped: no usable ITR-RLOC ({firstRefused} is {Kebab(firstRefusal)})")];
                return false;
            }
            admitted = request with { ItrRlocs = kept };
            if (ecm is not null) admittedEcm = ecm with { Message = admitted };
        }
        // Where the answer would go, fallbacks included (the ECM's inner source, the plain request's sender).
        // A plain request (RLOC-probe) listing its sender is answered to the sender, as the ETR does.
        var target = admittedEcm is not null
            ? Util.ReplyAddress(admitted, packet.Local, admittedEcm.InnerHeader?.Source)
            : admitted.ItrRlocs.Any(a => Util.Ip(a) is { } ip && ip.Equals(source)) ? source : Util.ReplyAddress(admitted, packet.Local, source);
        if (target is not null && Classify(target, source) is var bad and not ItrRlocRefusal.None)
        {
            Count(bad);
            _counters.Drop(DropReason.ItrRlocRefused);
            refusal = [new LogAction(LogLevel.Warning, "itr-rloc-refused",
                $"Map-Request for {First(request)} from {packet.From} (nonce {Util.Hex(request.Nonce)}) dropped: reply address {target} is {Kebab(bad)}")];
            return false;
        }
        if (_buckets is not null)
        {
            long ticks = now.UtcTicks;
            bool ok = _buckets.Take(source, BucketTable.SourceRole, ticks);
            if (ok && target is not null) ok = _buckets.Take(target, BucketTable.TargetRole, ticks);
            if (!ok)
            {
                _counters.Drop(DropReason.RateLimited);
                refusal = [new LogAction(LogLevel.Warning, "map-request-rate-limited",
                    $"Map-Request for {First(request)} from {packet.From} to answer to {target?.ToString() ?? "?"} dropped: over {_options.RatePerSource}/s (burst {_options.BurstPerSource})")];
                return false;
            }
        }
        return true;
    }

    /// <summary>
    /// Step 3, on what the role answered: removes a Map-Reply to an address other than the request's outer source
    /// that is more than <see cref="RequestAdmissionOptions.AmplificationFactor"/> times the request's datagram.
    /// </summary>
    public IReadOnlyList<ControlAction> Bound(IReadOnlyList<ControlAction> actions, MapRequest request, ReceivedPacket packet)
    {
        if (_options.AmplificationFactor <= 0) return actions;
        long limit = (long)_options.AmplificationFactor * Math.Max(1, packet.Payload.Length);
        List<ControlAction>? result = null;
        for (int i = 0; i < actions.Count; i++)
        {
            var a = actions[i];
            bool withhold = a is SendAction s && s.Payload.Length > limit && s.Payload.Length > 0
                && (s.Payload[0] >> 4) == (int)MessageType.MapReply && !SameAddress(s.To.Address, packet.From.Address);
            if (withhold && result is null) result = [.. actions.Take(i)];
            if (!withhold)
            {
                result?.Add(a);
                continue;
            }
            var send = (SendAction)a;
            _counters.Drop(DropReason.AmplificationBound);
            result!.Add(new LogAction(LogLevel.Warning, "amplification-bound",
                $"Map-Reply for {First(request)} ({send.Payload.Length} bytes) to {send.To} not sent: more than {_options.AmplificationFactor} x the {packet.Payload.Length}-byte request from {packet.From}, and {send.To.Address} is not its source"));
        }
        return result ?? actions;
    }

    private static bool SameAddress(IPAddress a, IPAddress b)
    {
        if (a.IsIPv4MappedToIPv6) a = a.MapToIPv4();
        if (b.IsIPv4MappedToIPv6) b = b.MapToIPv4();
        return a.Equals(b);
    }

    private void Count(ItrRlocRefusal why) => _counters.Count(why switch
    {
        ItrRlocRefusal.Multicast => ControlEvent.ItrRlocRefusedMulticast,
        ItrRlocRefusal.Broadcast => ControlEvent.ItrRlocRefusedBroadcast,
        ItrRlocRefusal.Unspecified => ControlEvent.ItrRlocRefusedUnspecified,
        _ => ControlEvent.ItrRlocRefusedLoopback,
    });

    private static string First(MapRequest r) => r.Records.Count > 0 ? r.Records[0].ToString() : "(no record)";
    private static string Kebab(ItrRlocRefusal r) => ControlCounters.Kebab(r.ToString());

    /// <summary>
    /// Token buckets keyed by (address, role) in a fixed-size open table: at most <c>capacity</c> entries, a new key
    /// beyond it evicts by clock (second chance), so no sender can grow it. Tokens are kept as ticks of credit.
    /// </summary>
    private sealed class BucketTable
    {
        public const byte SourceRole = 0, TargetRole = 1;

        private struct Entry
        {
            public Key Key;
            public double Tokens;
            public long Last;
            public bool Used;       // clock reference bit
        }

        private readonly record struct Key(UInt128 Address, byte Role);

        private readonly Entry[] _entries;
        private readonly Dictionary<Key, int> _index;
        private readonly double _rate, _burst;
        private int _hand, _count;

        public BucketTable(int capacity, double rate, double burst)
        {
            _entries = new Entry[capacity];
            _index = new Dictionary<Key, int>(capacity);
            _rate = rate;
            _burst = burst;
        }

        public int Count => _count;

        public bool Take(IPAddress address, byte role, long now)
        {
            var key = new Key(Pack(address), role);
            if (!_index.TryGetValue(key, out int slot))
            {
                slot = Victim();
                _entries[slot] = new Entry { Key = key, Tokens = _burst, Last = now };
                _index[key] = slot;
            }
            ref var e = ref _entries[slot];
            e.Used = true;
            if (now > e.Last)
            {
                e.Tokens = Math.Min(_burst, e.Tokens + (now - e.Last) / (double)TimeSpan.TicksPerSecond * _rate);
                e.Last = now;
            }
            if (e.Tokens < 1) return false;
            e.Tokens -= 1;
            return true;
        }

        private int Victim()
        {
            if (_count < _entries.Length) return _count++;
            while (true)
            {
                ref var e = ref _entries[_hand];
                int slot = _hand;
                _hand = (_hand + 1) % _entries.Length;
                if (e.Used) { e.Used = false; continue; }
                _index.Remove(e.Key);
                return slot;
            }
        }

        private static UInt128 Pack(IPAddress a)
        {
            if (a.IsIPv4MappedToIPv6) a = a.MapToIPv4();
            Span<byte> b = stackalloc byte[16];
            b.Clear();
            if (a.AddressFamily == AddressFamily.InterNetwork)
            {
                a.TryWriteBytes(b[12..], out _);
                b[10] = b[11] = 0xff;
            }
            else a.TryWriteBytes(b, out _);
            return System.Buffers.Binary.BinaryPrimitives.ReadUInt128BigEndian(b);
        }
    }
}
