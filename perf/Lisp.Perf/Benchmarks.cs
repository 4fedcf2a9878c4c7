using System.Net;
using BenchmarkDotNet.Attributes;
using Lisp.MapCache;
using Lisp.Wire;

namespace Lisp.Perf;

/// <summary>
/// IPv4 lookups per second: map-cache (default layout, batch API, hash LPM forced) against two baselines, the
/// per-length Dictionary and a path-compressed binary trie (<see cref="PatriciaLpm"/>), all in the same run.
/// Destinations (<see cref="Destinations"/>):
/// <list type="bullet">
/// <item>"stream": <see cref="StreamLength"/> (16M, 64 MiB, twice the 32 MiB L3) precomputed destinations walked
/// sequentially, each invocation taking the next <see cref="N"/>; a destination is seen again only after
/// 16M others, so table lines are not warm from the previous pass (what a router forwarding many flows sees).</item>
/// <item>"hot": the old workload, 4096 destinations replayed (<see cref="N"/>/4096 times per invocation): table
/// lines they touch stay in L1/L2. Kept as a labelled best case only.</item>
/// </list>
/// Time is per lookup (OperationsPerInvoke = N), including the RLOC choice for the map-cache.
/// </summary>
[MemoryDiagnoser]
public class V4Lookup
{
    public const int N = 65536;
    public const int StreamLength = 16 << 20;
    public const int HotLength = 4096;
    [Params(1_000, 1_000_000)] public int Prefixes;
    [Params("stream", "hot")] public string Destinations = "stream";
    private MapCacheSnapshot _dir = null!, _hash = null!;
    private DictionaryLpmV4 _dict = null!;
    private PatriciaLpm _trie = null!;
    private uint[] _dst = null!;
    private int _cursor;
    private readonly LookupResult[] _results = new LookupResult[256];

    [GlobalSetup]
    public void Setup()
    {
        var p = Data.V4Prefixes(Prefixes);
        _dir = Build(p, new MapCacheOptions(), out int[] slots);
        _hash = Build(p, Layout("hash"), out _);
        _dict = new DictionaryLpmV4(p);
        _trie = new PatriciaLpm(p);
        _dst = Destinations == "hot" ? Data.V4Destinations(p, HotLength) : Data.V4Destinations(p, StreamLength);
        // Correctness before timing: trie, Dictionary and map-cache agree (first 1M destinations, or all 4096).
        PatriciaLpm.Verify(_trie, _dict, _dir, slots, _dst.AsSpan(0, Math.Min(_dst.Length, 1 << 20)));
    }

    /// <summary>The next N destinations: a new stretch of the 16M stream, or the 4096 hot ones N/4096 times over.</summary>
    private ReadOnlySpan<uint> Next(out int repeat)
    {
        if (_dst.Length <= N)
        {
            repeat = N / _dst.Length;
            return _dst;
        }
        repeat = 1;
        if (_cursor + N > _dst.Length) _cursor = 0;
        var s = _dst.AsSpan(_cursor, N);
        _cursor += N;
        return s;
    }

    /// <summary>Options forcing one IPv4 layout whatever the prefix count: "hash", "dir16" or "dir24".</summary>
    internal static MapCacheOptions Layout(string layout) => layout switch
    {
        "hash" => new MapCacheOptions { Dir24Threshold = int.MaxValue, Dir16Threshold = int.MaxValue },
        "dir16" => new MapCacheOptions { Dir24Threshold = int.MaxValue, Dir16Threshold = 1 },
        "dir24" => new MapCacheOptions { Dir24Threshold = 1 },
        _ => throw new ArgumentException(layout),
    };

    internal static MapCacheSnapshot Build(List<(uint Addr, int Len)> p, MapCacheOptions options) => Build(p, options, out _);

    internal static MapCacheSnapshot Build(List<(uint Addr, int Len)> p, MapCacheOptions options, out int[] slots)
    {
        var w = new MapCacheWriter(options);
        slots = new int[p.Count];
        for (int i = 0; i < p.Count; i++) slots[i] = w.AddOrReplaceV4(0, p[i].Addr, p[i].Len, Data.Rlocs, 60, 0);
        return w.Publish();
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = N)]
    public int Dictionary()
    {
        var dst = Next(out int repeat);
        int s = 0;
        for (int r = 0; r < repeat; r++)
            foreach (uint d in dst) s += _dict.Lookup(d);
        return s;
    }

    [Benchmark(OperationsPerInvoke = N)]
    public int PatriciaTrie()
    {
        var dst = Next(out int repeat);
        var trie = _trie;
        int s = 0;
        for (int r = 0; r < repeat; r++)
            foreach (uint d in dst) s += trie.Lookup(d);
        return s;
    }

    [Benchmark(OperationsPerInvoke = N)]
    public int MapCache()
    {
        var dst = Next(out int repeat);
        var snap = _dir;
        int s = 0;
        for (int r = 0; r < repeat; r++)
            foreach (uint d in dst)
                if (snap.TryLookupV4(0, d, d, out var res)) s += res.RlocIndex;
        return s;
    }

    /// <summary>The batch API in 256-packet batches (a worker's batch size), flow hash = destination.</summary>
    [Benchmark(OperationsPerInvoke = N)]
    public int MapCacheBatch()
    {
        var dst = Next(out int repeat);
        var snap = _dir;
        int s = 0;
        for (int r = 0; r < repeat; r++)
            for (int i = 0; i < dst.Length; i += 256)
            {
                var chunk = dst.Slice(i, Math.Min(256, dst.Length - i));
                s += snap.LookupV4Batch(0, chunk, chunk, _results);
            }
        return s;
    }

    /// <summary>Hash LPM forced: every lookup probes ExactTable(s) (CRC32-C + 8-lane tag compare), so the CPU floor shows most here.</summary>
    [Benchmark(OperationsPerInvoke = N)]
    public int MapCacheHashLpmOnly()
    {
        var dst = Next(out int repeat);
        var snap = _hash;
        int s = 0;
        for (int r = 0; r < repeat; r++)
            foreach (uint d in dst)
                if (snap.TryLookupV4(0, d, d, out var res)) s += res.RlocIndex;
        return s;
    }
}

[MemoryDiagnoser]
public class V6Lookup
{
    public const int N = 4096;
    [Params(100_000)] public int Prefixes;
    private MapCacheSnapshot _snap = null!;
    private DictionaryLpmV6 _dict = null!;
    private V6Key[] _dst = null!;

    [GlobalSetup]
    public void Setup()
    {
        var p = Data.V6Prefixes(Prefixes);
        var w = new MapCacheWriter();
        foreach (var (a, l) in p) w.AddOrReplaceV6(0, a, l, Data.Rlocs, 60, 0);
        _snap = w.Publish();
        _dict = new DictionaryLpmV6(p);
        _dst = Data.V6Destinations(p, N);
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = N)]
    public int Dictionary()
    {
        int s = 0;
        foreach (var d in _dst) s += _dict.Lookup(d);
        return s;
    }

    [Benchmark(OperationsPerInvoke = N)]
    public int MapCache()
    {
        var snap = _snap;
        int s = 0;
        var dst = _dst;
        for (int i = 0; i < dst.Length; i++)
            if (snap.TryLookupV6(0, dst[i], (uint)i, out var r)) s += r.RlocIndex;
        return s;
    }
}

/// <summary>
/// Encapsulation in memory: per packet, the next destination of a 16M streamed set (64 MiB, beyond L3) is written
/// into the inner header of one of 256 reused packet buffers (a worker's batch), then flow hash of the inner
/// header + lookup (100k IPv4 prefixes, DIR-24) + outer header write into headroom (payload not touched).
/// </summary>
[MemoryDiagnoser]
public class Encapsulate
{
    public const int Packets = 256;
    public const int N = 65536;
    [Params(64, 1400)] public int PacketBytes;
    private MapCacheSnapshot _snap = null!;
    private byte[][] _buffers = null!;
    private uint[] _dst = null!;
    private int _cursor;
    private readonly uint _src = 0xC6336401; // 198.51.100.1
    private readonly IPAddress _srcIp = IPAddress.Parse("198.51.100.1");

    [GlobalSetup]
    public void Setup()
    {
        var p = Data.V4Prefixes(100_000);
        _snap = V4Lookup.Build(p, new MapCacheOptions());
        // Only destinations inside an installed prefix (even indexes of V4Destinations), so every packet is encapsulated.
        var all = Data.V4Destinations(p, 2 * V4Lookup.StreamLength);
        _dst = new uint[V4Lookup.StreamLength];
        for (int i = 0; i < _dst.Length; i++) _dst[i] = all[2 * i];
        _buffers = new byte[Packets][];
        var rng = new Random(9);
        for (int i = 0; i < Packets; i++)
        {
            var b = new byte[64 + PacketBytes];
            rng.NextBytes(b);
            var inner = b.AsSpan(64);
            inner[0] = 0x45; inner[6] = 0; inner[7] = 0; inner[9] = 17;
            _buffers[i] = b;
        }
    }

    private ReadOnlySpan<uint> Next()
    {
        if (_cursor + N > _dst.Length) _cursor = 0;
        var s = _dst.AsSpan(_cursor, N);
        _cursor += N;
        return s;
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = N)]
    public int WireWriteHeaders()
    {
        var snap = _snap;
        var dst = Next();
        int s = 0;
        for (int i = 0; i < dst.Length; i++)
        {
            var b = _buffers[i & (Packets - 1)];
            var inner = b.AsSpan(64, PacketBytes);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(inner.Slice(16), dst[i]);
            uint flow = FlowHash.FromPacket(inner);
            if (!snap.TryLookupV4(0, System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(inner.Slice(16)), flow, out var r) || r.RlocIndex < 0) continue;
            s += Encapsulation.WriteHeaders(b, 64, PacketBytes, _srcIp, snap.Rlocs.Address(r.RlocIndex), FlowHash.SourcePort(flow), DataHeader.ForInstance(0, flow));
        }
        return s;
    }

    [Benchmark(OperationsPerInvoke = N)]
    public int FastWriteV4()
    {
        var snap = _snap;
        var dst = Next();
        int s = 0;
        for (int i = 0; i < dst.Length; i++)
        {
            var b = _buffers[i & (Packets - 1)];
            var inner = b.AsSpan(64, PacketBytes);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(inner.Slice(16), dst[i]);
            uint flow = FlowHash.FromPacket(inner);
            if (!snap.TryLookupV4(0, System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(inner.Slice(16)), flow, out var r) || r.RlocIndex < 0) continue;
            s += FastEncapsulation.WriteV4(b, 64, PacketBytes, _src, snap.Rlocs.V4(r.RlocIndex), FlowHash.SourcePort(flow), 0, flow);
        }
        return s;
    }
}

/// <summary>
/// <see cref="MapCacheSnapshot.TryLookupV4"/> one at a time against <see cref="MapCacheSnapshot.LookupV4Batch"/>
/// in 256-destination batches (a worker's batch), same destinations, flow hash = destination, default layout
/// (DIR-24 at 100k and 1M prefixes). "cold": 1M random destinations (4 MiB) walked in order, N per invocation,
/// so the 64 MiB DIR-24 front table, the entries and the tail hash tables miss the CPU caches (what the
/// prefetching batch is for). "hot": 4096 destinations replayed, table lines stay cached.
/// </summary>
public class BatchLookup
{
    public const int N = 65536;
    public const int Batch = 256;
    [Params(100_000, 1_000_000)] public int Prefixes;
    [Params("cold", "hot")] public string Destinations = "cold";
    private MapCacheSnapshot _snap = null!;
    private uint[] _dst = null!;
    private int _cursor;
    private readonly LookupResult[] _results = new LookupResult[Batch];

    [GlobalSetup]
    public void Setup()
    {
        var p = Data.V4Prefixes(Prefixes);
        _snap = V4Lookup.Build(p, new MapCacheOptions());
        _dst = Data.V4Destinations(p, Destinations == "hot" ? 4096 : 1 << 20);
    }

    private ReadOnlySpan<uint> Next(out int repeat)
    {
        if (_dst.Length <= N)
        {
            repeat = N / _dst.Length;
            return _dst;
        }
        repeat = 1;
        if (_cursor + N > _dst.Length) _cursor = 0;
        var s = _dst.AsSpan(_cursor, N);
        _cursor += N;
        return s;
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = N)]
    public int Single()
    {
        var dst = Next(out int repeat);
        var snap = _snap;
        int s = 0;
        for (int r = 0; r < repeat; r++)
            foreach (uint d in dst)
                if (snap.TryLookupV4(0, d, d, out var res)) s += res.RlocIndex + res.EntryIndex;
        return s;
    }

    [Benchmark(OperationsPerInvoke = N)]
    public int Batched()
    {
        var dst = Next(out int repeat);
        var snap = _snap;
        var results = _results;
        int s = 0;
        for (int r = 0; r < repeat; r++)
            for (int i = 0; i < dst.Length; i += Batch)
            {
                var chunk = dst.Slice(i, Math.Min(Batch, dst.Length - i));
                snap.LookupV4Batch(0, chunk, chunk, results);
                for (int k = 0; k < chunk.Length; k++)
                    if (results[k].Found) s += results[k].RlocIndex + results[k].EntryIndex;
            }
        return s;
    }
}

/// <summary>
/// The same comparison for IPv6 (<see cref="MapCacheSnapshot.TryLookupV6"/> against
/// <see cref="MapCacheSnapshot.LookupV6Batch"/>, 256 per batch), 100k prefixes of <see cref="Data.V6Prefixes"/>,
/// "cold": 1M destinations (16 MiB) walked in order; "hot": 4096 replayed.
/// </summary>
public class BatchLookupV6
{
    public const int N = 65536;
    public const int Batch = 256;
    [Params(100_000)] public int Prefixes;
    [Params("cold", "hot")] public string Destinations = "cold";
    private MapCacheSnapshot _snap = null!;
    private V6Key[] _dst = null!;
    private uint[] _flows = null!;
    private int _cursor;
    private readonly LookupResult[] _results = new LookupResult[Batch];

    [GlobalSetup]
    public void Setup()
    {
        var p = Data.V6Prefixes(Prefixes);
        var w = new MapCacheWriter();
        foreach (var (a, l) in p) w.AddOrReplaceV6(0, a, l, Data.Rlocs, 60, 0);
        _snap = w.Publish();
        _dst = Data.V6Destinations(p, Destinations == "hot" ? 4096 : 1 << 20);
        _flows = new uint[_dst.Length];
        for (int i = 0; i < _flows.Length; i++) _flows[i] = (uint)_dst[i].Lo;
    }

    private int Next(out int length, out int repeat)
    {
        if (_dst.Length <= N)
        {
            repeat = N / _dst.Length;
            length = _dst.Length;
            return 0;
        }
        repeat = 1;
        length = N;
        if (_cursor + N > _dst.Length) _cursor = 0;
        int start = _cursor;
        _cursor += N;
        return start;
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = N)]
    public int Single()
    {
        int start = Next(out int length, out int repeat);
        var snap = _snap;
        var dst = _dst.AsSpan(start, length);
        var flows = _flows.AsSpan(start, length);
        int s = 0;
        for (int r = 0; r < repeat; r++)
            for (int i = 0; i < dst.Length; i++)
                if (snap.TryLookupV6(0, dst[i], flows[i], out var res)) s += res.RlocIndex + res.EntryIndex;
        return s;
    }

    [Benchmark(OperationsPerInvoke = N)]
    public int Batched()
    {
        int start = Next(out int length, out int repeat);
        var snap = _snap;
        var results = _results;
        int s = 0;
        for (int r = 0; r < repeat; r++)
            for (int i = 0; i < length; i += Batch)
            {
                int n = Math.Min(Batch, length - i);
                snap.LookupV6Batch(0, _dst.AsSpan(start + i, n), _flows.AsSpan(start + i, n), results);
                for (int k = 0; k < n; k++)
                    if (results[k].Found) s += results[k].RlocIndex + results[k].EntryIndex;
            }
        return s;
    }
}
