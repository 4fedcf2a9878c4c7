using System.Net;
using BenchmarkDotNet.Attributes;
using Lisp.MapCache;
using Lisp.Wire;

namespace Lisp.Perf;

/// <summary>IPv4 lookups per second: map-cache (default layout, DIR-16 forced, hash LPM forced) against the Dictionary baseline.
/// Each invocation does <see cref="N"/> independent lookups; BenchmarkDotNet reports time per lookup.</summary>
[MemoryDiagnoser]
public class V4Lookup
{
    public const int N = 4096;
    [Params(1_000, 100_000, 1_000_000)] public int Prefixes;
    private MapCacheSnapshot _dir = null!, _hash = null!, _dir16 = null!;
    private DictionaryLpmV4 _dict = null!;
    private uint[] _dst = null!;
    private uint[] _flows = null!;
    private LookupResult[] _results = null!;

    [GlobalSetup]
    public void Setup()
    {
        var p = Data.V4Prefixes(Prefixes);
        _dir = Build(p, new MapCacheOptions());
        _hash = Build(p, Layout("hash"));
        _dir16 = Build(p, Layout("dir16"));
        _dict = new DictionaryLpmV4(p);
        _dst = Data.V4Destinations(p, N);
        _flows = _dst.Select(d => d * 2654435761u).ToArray();
        _results = new LookupResult[N];
    }

    /// <summary>Options forcing one IPv4 layout whatever the prefix count: "hash", "dir16" or "dir24".</summary>
    internal static MapCacheOptions Layout(string layout) => layout switch
    {
        "hash" => new MapCacheOptions { Dir24Threshold = int.MaxValue, Dir16Threshold = int.MaxValue },
        "dir16" => new MapCacheOptions { Dir24Threshold = int.MaxValue, Dir16Threshold = 1 },
        "dir24" => new MapCacheOptions { Dir24Threshold = 1 },
        _ => throw new ArgumentException(layout),
    };

    internal static MapCacheSnapshot Build(List<(uint Addr, int Len)> p, MapCacheOptions options)
    {
        var w = new MapCacheWriter(options);
        foreach (var (a, l) in p) w.AddOrReplaceV4(0, a, l, Data.Rlocs, 60, 0);
        return w.Publish();
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = N)]
    public int Dictionary()
    {
        int s = 0;
        foreach (uint d in _dst) s += _dict.Lookup(d);
        return s;
    }

    [Benchmark(OperationsPerInvoke = N)]
    public int MapCache()
    {
        var snap = _dir;
        int s = 0;
        var dst = _dst;
        for (int i = 0; i < dst.Length; i++)
            if (snap.TryLookupV4(0, dst[i], (uint)i, out var r)) s += r.RlocIndex;
        return s;
    }

    [Benchmark(OperationsPerInvoke = N)]
    public int MapCacheBatch() => _dir.LookupV4Batch(0, _dst, _flows, _results);

    [Benchmark(OperationsPerInvoke = N)]
    public int MapCacheDir16Forced()
    {
        var snap = _dir16;
        int s = 0;
        var dst = _dst;
        for (int i = 0; i < dst.Length; i++)
            if (snap.TryLookupV4(0, dst[i], (uint)i, out var r)) s += r.RlocIndex;
        return s;
    }

    [Benchmark(OperationsPerInvoke = N)]
    public int MapCacheHashLpmOnly()
    {
        var snap = _hash;
        int s = 0;
        var dst = _dst;
        for (int i = 0; i < dst.Length; i++)
            if (snap.TryLookupV4(0, dst[i], (uint)i, out var r)) s += r.RlocIndex;
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

/// <summary>Encapsulation in memory: per packet, flow hash of the inner header + lookup + outer header write
/// into headroom (inner payload not touched). 100k IPv4 prefixes, 256 packet buffers reused.</summary>
[MemoryDiagnoser]
public class Encapsulate
{
    public const int Packets = 256;
    [Params(64, 1400)] public int PacketBytes;
    private MapCacheSnapshot _snap = null!;
    private byte[][] _buffers = null!;
    private uint[] _dst = null!;
    private readonly uint _src = 0xC6336401; // 198.51.100.1
    private readonly IPAddress _srcIp = IPAddress.Parse("198.51.100.1");

    [GlobalSetup]
    public void Setup()
    {
        var p = Data.V4Prefixes(100_000);
        _snap = V4Lookup.Build(p, new MapCacheOptions());
        var inside = Data.V4Destinations(p, Packets * 4).Where((d, i) => (i & 1) == 0).Take(Packets).ToArray();
        _dst = inside;
        _buffers = new byte[Packets][];
        var rng = new Random(9);
        for (int i = 0; i < Packets; i++)
        {
            var b = new byte[64 + PacketBytes];
            rng.NextBytes(b);
            var inner = b.AsSpan(64);
            inner[0] = 0x45; inner[6] = 0; inner[7] = 0; inner[9] = 17;
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(inner.Slice(16), _dst[i]);
            _buffers[i] = b;
        }
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Packets)]
    public int WireWriteHeaders()
    {
        var snap = _snap;
        int s = 0;
        for (int i = 0; i < _buffers.Length; i++)
        {
            var b = _buffers[i];
            var inner = b.AsSpan(64, PacketBytes);
            uint flow = FlowHash.FromPacket(inner);
            if (!snap.TryLookupV4(0, System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(inner.Slice(16)), flow, out var r) || r.RlocIndex < 0) continue;
            s += Encapsulation.WriteHeaders(b, 64, PacketBytes, _srcIp, snap.Rlocs.Address(r.RlocIndex), FlowHash.SourcePort(flow), DataHeader.ForInstance(0, flow));
        }
        return s;
    }

    [Benchmark(OperationsPerInvoke = Packets)]
    public int FastWriteV4()
    {
        var snap = _snap;
        int s = 0;
        for (int i = 0; i < _buffers.Length; i++)
        {
            var b = _buffers[i];
            var inner = b.AsSpan(64, PacketBytes);
            uint flow = FlowHash.FromPacket(inner);
            if (!snap.TryLookupV4(0, System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(inner.Slice(16)), flow, out var r) || r.RlocIndex < 0) continue;
            s += FastEncapsulation.WriteV4(b, 64, PacketBytes, _src, snap.Rlocs.V4(r.RlocIndex), FlowHash.SourcePort(flow), 0, flow);
        }
        return s;
    }
}
