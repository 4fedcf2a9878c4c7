using System.Collections.Concurrent;
using System.Net;

namespace Lisp.DataPlane;

/// <summary>A LISP data-port datagram for the control plane: the whole UDP payload (LISP header included) and its outer source.</summary>
public readonly record struct ControlPacket(byte[] Payload, IPEndPoint? From);

/// <summary>
/// Hands LISP-Decent control packets (data-port datagrams with instance-id 0xffffff, RFC 9962 push mode) from
/// the ETR workers to a control-plane callback, so that the data plane alone owns the data port. Workers
/// call <see cref="TryPost"/>: it copies the datagram into a bounded queue and never blocks (a full queue
/// refuses the packet and the worker counts the drop). One consumer thread (<see cref="Run"/>, started by the
/// engine) takes packets off the queue and calls the handler, so the handler's cost never lands on a worker.
/// </summary>
public sealed class ControlHandoff
{
    private readonly Action<ControlPacket> _handler;
    private readonly ConcurrentQueue<ControlPacket> _queue = new();
    private readonly SemaphoreSlim _ready = new(0);
    private int _count;
    private long _handled, _handlerErrors;

    /// <param name="handler">called on the consumer thread, one packet at a time</param>
    /// <param name="capacity">packets queued at most; more are refused</param>
    public ControlHandoff(Action<ControlPacket> handler, int capacity = 256)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _handler = handler;
        Capacity = capacity;
    }

    public int Capacity { get; }
    /// <summary>Packets waiting for the handler.</summary>
    public int Count => Volatile.Read(ref _count);
    public long Handled => Interlocked.Read(ref _handled);
    /// <summary>Packets whose handler threw (the exception is swallowed so the consumer keeps running).</summary>
    public long HandlerErrors => Interlocked.Read(ref _handlerErrors);

    /// <summary>Any thread (an ETR worker): copies <paramref name="payload"/> into the queue; false (nothing copied) when it is full.</summary>
    public bool TryPost(ReadOnlySpan<byte> payload, IPEndPoint? from)
    {
        if (Interlocked.Increment(ref _count) > Capacity)
        {
            Interlocked.Decrement(ref _count);
            return false;
        }
        _queue.Enqueue(new ControlPacket(payload.ToArray(), from));
        _ready.Release();
        return true;
    }

    /// <summary>Takes the oldest packet, waiting at most <paramref name="timeoutMs"/> for one.</summary>
    public bool TryTake(out ControlPacket packet, int timeoutMs)
    {
        if (_ready.Wait(Math.Max(0, timeoutMs)) && _queue.TryDequeue(out packet))
        {
            Interlocked.Decrement(ref _count);
            return true;
        }
        packet = default;
        return false;
    }

    /// <summary>The consumer loop: hands queued packets to the handler until <paramref name="stop"/> (checked every <paramref name="pollMs"/>).</summary>
    public void Run(CancellationToken stop, int pollMs = 100)
    {
        while (!stop.IsCancellationRequested) RunOnce(pollMs);
    }

    /// <summary>Hands at most one packet to the handler (waiting at most <paramref name="timeoutMs"/>); true when one was handled.</summary>
    public bool RunOnce(int timeoutMs)
    {
        if (!TryTake(out var p, timeoutMs)) return false;
        try
        {
            _handler(p);
            Interlocked.Increment(ref _handled);
        }
#pragma warning disable CA1031 // a handler bug must not kill the consumer thread (and with it the process)
        catch (Exception)
#pragma warning restore CA1031
        {
            Interlocked.Increment(ref _handlerErrors);
        }
        return true;
    }
}
