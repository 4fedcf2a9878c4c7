using System.Net;
using System.Net.Sockets;

namespace Lisp.DataPlane;

/// <summary>A sender that can hand the kernel a run of equal-sized datagrams in one call (UDP_SEGMENT).</summary>
public unsafe interface ISegmentSender
{
    /// <summary>UDP_SEGMENT was accepted at start.</summary>
    bool GsoEnabled { get; }

    /// <summary>Sends <paramref name="data"/> as datagrams of <paramref name="segmentSize"/> bytes to <paramref name="address"/>
    /// from the source port of <paramref name="flow"/>; returns the datagrams sent.</summary>
    int SendSegments(ReadOnlySpan<byte> data, int segmentSize, byte* address, uint flow);

    /// <summary>
    /// <see cref="SendSegments(ReadOnlySpan{byte}, int, byte*, uint)"/> from a gather list of <paramref name="bytes"/>
    /// bytes in all (the datagrams are cut every <paramref name="segmentSize"/> bytes of the joined list, wherever its
    /// entries begin): headers and payloads where they lie, with no copy into one buffer first.
    /// </summary>
    internal int SendSegments(ReadOnlySpan<Native.IoVec> iov, int bytes, int segmentSize, byte* address, uint flow);
}

/// <summary>
/// UDP send mode with per-flow source ports. A UDP socket has one source port, so in UDP mode every flow would leave
/// with the same outer 5-tuple and an ECMP underlay could not spread them (RFC 9300 section 5.3 asks for the port to
/// come from the inner flow). This keeps a few UDP sockets, each bound to its own ephemeral port on the local RLOC,
/// and sends each packet through the socket its flow hash picks: one flow keeps one port (no reordering across
/// paths), different flows spread over <see cref="Count"/> ports. It is what lets `send_mode = "auto"` use UDP GSO
/// (measured several times faster for TCP through the overlay than raw sockets, perf/RESULTS.md) without losing the
/// entropy the raw socket gave. Owned by one ITR worker; not thread-safe.
/// </summary>
public sealed unsafe class UdpSourcePortPool : IBatchSender, ISegmentSender
{
    private readonly UdpBatchSocket[] _sockets;
    private readonly int[][] _indices;
    private readonly int[] _counts;

    private UdpSourcePortPool(UdpBatchSocket[] sockets, int capacity)
    {
        _sockets = sockets;
        _indices = sockets.Select(_ => new int[capacity]).ToArray();
        _counts = new int[sockets.Length];
    }

    /// <summary>Opens <paramref name="count"/> UDP sockets on <paramref name="local"/> (ephemeral ports); GSO enabled on each when <paramref name="gso"/>.</summary>
    public static UdpSourcePortPool Open(IPAddress local, int count, int batchCapacity, bool gso, out string? gsoRefused)
    {
        gsoRefused = null;
        var list = new List<UdpBatchSocket>();
        try
        {
            for (int i = 0; i < count; i++)
            {
                var s = UdpBatchSocket.OpenUdp(new IPEndPoint(local, 0), reusePort: false);
                list.Add(s);
                if (gso && !s.TryEnableGso(out var why)) gsoRefused ??= why;
            }
        }
        catch
        {
            foreach (var s in list) s.Dispose();
            throw;
        }
        return new UdpSourcePortPool([.. list], Math.Max(1024, batchCapacity));
    }

    public int Count => _sockets.Length;
    public bool WritesOuterIp => false;
    public bool GsoEnabled => _sockets.All(s => s.GsoEnabled);
    public AddressFamily Family => _sockets[0].Family;
    /// <summary>The source ports in use, in socket order.</summary>
    public IReadOnlyList<int> Ports => _sockets.Select(s => s.LocalPort).ToArray();

    private int Pick(uint flow) => (int)(flow % (uint)_sockets.Length);

    /// <summary>Sends each slot through the socket of its flow (<see cref="PacketBatch.Flow"/>), one sendmmsg per socket used.</summary>
    public int Send(PacketBatch batch, ReadOnlySpan<int> indices)
    {
        if (_sockets.Length == 1) return _sockets[0].Send(batch, indices);
        foreach (int i in indices)
        {
            int s = Pick(batch.Flow[i]);
            _indices[s][_counts[s]++] = i;
        }
        int sent = 0;
        for (int s = 0; s < _sockets.Length; s++)
        {
            if (_counts[s] == 0) continue;
            sent += _sockets[s].Send(batch, _indices[s].AsSpan(0, _counts[s]));
            _counts[s] = 0;
        }
        return sent;
    }

    public int SendSegments(ReadOnlySpan<byte> data, int segmentSize, byte* address, uint flow) =>
        _sockets[Pick(flow)].SendSegments(data, segmentSize, address);

    int ISegmentSender.SendSegments(ReadOnlySpan<Native.IoVec> iov, int bytes, int segmentSize, byte* address, uint flow) =>
        _sockets[Pick(flow)].SendSegments(iov, bytes, segmentSize, address);

    public void Dispose()
    {
        foreach (var s in _sockets) s.Dispose();
    }
}
