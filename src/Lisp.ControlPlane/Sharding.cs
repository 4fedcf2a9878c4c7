using System.Net;
using System.Runtime.CompilerServices;
using Lisp.ControlPlane.Tables;
using Lisp.Wire;

namespace Lisp.ControlPlane;

/// <summary>
/// How a map-server's table is cut into control shards (one thread each) and which shard a message belongs to.
/// <para>
/// A shard owns every EID-prefix whose first <see cref="SteeringLength"/> bits hash to it (the whole address for
/// shorter families; the text for names; the group for (S,G)). A Map-Request for an address therefore lands on the
/// shard that holds every registered prefix at least that long around it. Prefixes shorter than the steering
/// length (a /8 site registration) would belong to many blocks, so they are replicated: shard 0 owns them
/// (counts them, confirms them) and every other shard holds a copy for its lookups. A negative Map-Reply from a
/// shard is never wider than the steering block (a shard cannot vouch for blocks it does not hold).
/// </para>
/// Pure and immutable: safe from any thread.
/// </summary>
public sealed class ShardPlan
{
    public ShardPlan(int count)
    {
        if (count < 1 || count > 256) throw new ArgumentOutOfRangeException(nameof(count), "1..256 control shards");
        Count = count;
    }

    public int Count { get; }

    /// <summary>
    /// Leading bits of an address that pick its shard. IPv4 /16 and IPv6 /48 (a site's usual allocation): EIDs of
    /// one site spread over shards block by block, and site-level prefixes shorter than this are few (replicated).
    /// </summary>
    public static int SteeringLength(EidFamily family) => family switch
    {
        EidFamily.Ipv4 => 16,
        EidFamily.Ipv6 => 48,
        EidFamily.Mac => 24,
        EidFamily.E164 => 32,
        _ => 0,
    };

    /// <summary>True when a prefix is shorter than its family's steering length: held by every shard, owned by shard 0.</summary>
    public bool IsReplicated(in EidKey key) => Count > 1 && key.Family switch
    {
        EidFamily.Exact => false,
        EidFamily.SourceGroup => key.Length < SteeringLength(key.GroupFamily),
        _ => key.Length < SteeringLength(key.Family),
    };

    /// <summary>
    /// The shard that owns <paramref name="key"/> (for a query: the shard that can answer it). Replicated prefixes
    /// belong to shard 0; a query shorter than the steering length goes to the shard of its first block.
    /// </summary>
    public int ShardOf(in EidKey key) => Shard(key, query: false);

    /// <summary>The shard that answers a Map-Request for <paramref name="key"/> (a short query: the shard of its first block).</summary>
    public int QueryShard(in EidKey key) => Shard(key, query: true);

    private int Shard(in EidKey key, bool query)
    {
        if (Count == 1) return 0;
        if (!query && IsReplicated(key)) return 0;
        ulong h;
        switch (key.Family)
        {
            case EidFamily.Exact:
                h = (ulong)(uint)StableHash(key.Text!) ^ ((ulong)key.InstanceId << 32);
                break;
            case EidFamily.SourceGroup:
                h = Block(key.GroupFamily, key.InstanceId, key.Bits);
                break;
            default:
                h = Block(key.Family, key.InstanceId, key.Bits);
                break;
        }
        return (int)(Mix(h) % (ulong)Count);
    }

    /// <summary>
    /// The steering step: the shard a decoded control message goes to. Map-Register and Map-Notify-Ack by their
    /// first record (the shard that verifies a Map-Register holds its pending Map-Notify, and the ack names the
    /// same first record); an ECM Map-Request for a map-server or resolver by its EID; anything else (the xTR's
    /// messages, which live in shard 0) to shard 0.
    /// </summary>
    public int ShardOf(ControlMessage message)
    {
        if (Count == 1) return 0;
        return message switch
        {
            MapRegister { Records.Count: > 0 } r => ShardOf(EidKey.From(r.Records[0].Eid)),
            MapNotify { IsAck: true, Records.Count: > 0 } a => ShardOf(EidKey.From(a.Records[0].Eid)),
            EncapsulatedControlMessage { ForEtr: false, Message: MapRequest { Records.Count: > 0 } q } => QueryShard(EidKey.From(q.Records[0])),
            _ => 0,
        };
    }

    private static ulong Block(EidFamily family, uint iid, UInt128 bits)
    {
        var block = PrefixTrie<object>.Mask(bits, SteeringLength(family));
        return (ulong)(block >> 64) ^ (ulong)block ^ ((ulong)iid << 40) ^ ((ulong)family << 56);
    }

    /// <summary>splitmix64's finaliser: spreads neighbouring blocks over shards.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Mix(ulong x)
    {
        x ^= x >> 30;
        x *= 0xbf58476d1ce4e5b9UL;
        x ^= x >> 27;
        x *= 0x94d049bb133111ebUL;
        return x ^ (x >> 31);
    }

    /// <summary>FNV-1a over the text's UTF-16 units: stable across runs, unlike string.GetHashCode.</summary>
    private static int StableHash(string s)
    {
        uint h = 2166136261;
        foreach (char c in s)
        {
            h = (h ^ c) * 16777619;
        }
        return (int)h;
    }
}

/// <summary>
/// Registration counts shared by the shards of one map-server, so the table limit and per-site limits hold for
/// the whole map-server and not per shard. A shard reserves a slot before it adds a registration (and for each
/// record it hands to another shard), and gives it back when a registration leaves (or a handed-over record
/// turned out to be a refresh). Interlocked only; no lock.
/// </summary>
public sealed class RegistrationLimits
{
    private long _total;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, StrongBox<long>> _sites = new(StringComparer.Ordinal);

    public long Total => Interlocked.Read(ref _total);

    public long Site(string site) => _sites.TryGetValue(site, out var b) ? Interlocked.Read(ref b.Value) : 0;

    /// <summary>Takes one slot for <paramref name="site"/>; false (nothing taken) when either limit is reached (0 = no site limit).</summary>
    public bool TryReserve(string site, long max, long siteMax, out bool siteFull)
    {
        siteFull = false;
        if (Interlocked.Increment(ref _total) > max)
        {
            Interlocked.Decrement(ref _total);
            return false;
        }
        var box = _sites.GetOrAdd(site, static _ => new StrongBox<long>());
        if (Interlocked.Increment(ref box.Value) > siteMax && siteMax > 0)
        {
            Interlocked.Decrement(ref box.Value);
            Interlocked.Decrement(ref _total);
            siteFull = true;
            return false;
        }
        return true;
    }

    public void Release(string site)
    {
        Interlocked.Decrement(ref _total);
        if (_sites.TryGetValue(site, out var box)) Interlocked.Decrement(ref box.Value);
    }
}

/// <summary>Which shard a map-server is and what it shares with its siblings.</summary>
public sealed record ShardContext(ShardPlan Plan, int Index, RegistrationLimits Limits);

/// <summary>
/// Work one shard hands another after it verified a Map-Register: the records the other shard owns (with the
/// <see cref="Completion"/> they report to), or a replica of a short prefix shard 0 owns. No second HMAC check.
/// </summary>
public sealed class MapServerHandoff
{
    public required SiteConfig Site { get; init; }
    public required MapRegister Register { get; init; }
    public required IPEndPoint From { get; init; }
    public required IPEndPoint Local { get; init; }
    /// <summary>Which of <see cref="Register"/>'s records to apply.</summary>
    public IReadOnlyList<int> RecordIndexes { get; init; } = [];
    /// <summary>A copy of a short prefix shard 0 owns: kept for lookups, not counted, no log lines.</summary>
    public bool Replica { get; init; }
    public RegisterCompletion? Completion { get; init; }
}

/// <summary>
/// One Map-Register split over shards: which records were refused, and how many shards have still to answer.
/// Each shard writes only its own records' flags, then arrives (Interlocked, a full fence); the last to arrive
/// reads every flag and sends the Map-Notify.
/// </summary>
public sealed class RegisterCompletion(int records, int parties)
{
    internal readonly bool[] Refused = new bool[records];
    /// <summary>The Map-Register as received (its records are echoed in the Map-Notify byte for byte).</summary>
    internal byte[]? RegisterPayload { get; init; }
    private int _outstanding = parties;

    /// <summary>True for the last party to arrive.</summary>
    internal bool Arrive() => Interlocked.Decrement(ref _outstanding) == 0;
}

/// <summary>Hand <paramref name="Work"/> to shard <paramref name="Shard"/> (the host queues it to that shard's thread).</summary>
public sealed record ShardHandoffAction(int Shard, MapServerHandoff Work) : ControlAction;
