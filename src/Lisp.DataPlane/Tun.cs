using System.Collections.Concurrent;
using System.Text;

namespace Lisp.DataPlane;

/// <summary>
/// One queue of a layer-3 TUN device: IP packets in, IP packets out (no packet-information prefix).
/// A worker owns its queue; implementations need not be thread-safe except where noted.
/// </summary>
public interface ITun : IDisposable
{
    string Name { get; }

    /// <summary>
    /// Reads up to <see cref="PacketBatch.Capacity"/> packets into the batch's slots at
    /// <see cref="PacketBatch.Headroom"/>, waiting at most <paramref name="timeoutMs"/> for the first one;
    /// sets <see cref="PacketBatch.Count"/> and returns it (0 on timeout).
    /// </summary>
    int ReadBatch(PacketBatch batch, int timeoutMs);

    /// <summary>Writes one IP packet towards the host; false when the device refused it (counted by the caller).</summary>
    bool Write(ReadOnlySpan<byte> packet);

    /// <summary>
    /// Writes the packets of the slots in <paramref name="indices"/> (each at its Offset/Length) towards the host;
    /// returns how many went in and sets Length to -1 for each one the device refused. The slots are no longer
    /// referenced when this returns. Default: one <see cref="Write"/> per packet.
    /// </summary>
    int WriteBatch(PacketBatch batch, ReadOnlySpan<int> indices)
    {
        int ok = 0;
        foreach (int i in indices)
        {
            if (Write(batch.Packet(i))) ok++;
            else batch.Length[i] = -1;
        }
        return ok;
    }
}

/// <summary>
/// A Linux TUN queue opened on /dev/net/tun with TUNSETIFF (IFF_TUN | IFF_NO_PI, plus IFF_MULTI_QUEUE when
/// several workers share one device: each worker then reads its own queue and the kernel spreads flows).
/// The descriptor is non-blocking; a batch is one poll() and then reads until EAGAIN or the batch is full
/// (a TUN read returns one packet, so this is what "batch" can mean without virtio-net offload headers).
/// </summary>
public sealed unsafe class LinuxTun : ITun
{
    private int _fd;

    private LinuxTun(int fd, string name)
    {
        _fd = fd;
        Name = name;
    }

    public string Name { get; }
    public int Fd => _fd;

    /// <summary>How long <see cref="Open"/> keeps retrying a device the kernel reports busy.</summary>
    public static readonly TimeSpan BusyRetryLimit = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Opens <paramref name="queues"/> queues of TUN device <paramref name="name"/> (created if absent).
    /// <para>
    /// EBUSY is retried for up to <see cref="BusyRetryLimit"/>: a previous instance that just exited can still
    /// hold the device for a moment (<paramref name="busyRetryLimit"/> overrides the limit), because the kernel releases the files an io_uring ring referenced in a
    /// worker after the process is gone (a restart of the native-AOT binary, which starts in milliseconds, hit
    /// this in the netns restart test). Each such wait is reported through <paramref name="notes"/>.
    /// </para>
    /// </summary>
    public static IReadOnlyList<LinuxTun> Open(string name, int queues, List<string>? notes = null, TimeSpan? busyRetryLimit = null)
    {
        var busyLimit = busyRetryLimit ?? BusyRetryLimit;
        if (Encoding.ASCII.GetByteCount(name) is 0 or >= Native.IFNAMSIZ) throw new ArgumentException($"TUN name '{name}' must be 1..15 characters");
        if (queues < 1 || queues > 64) throw new ArgumentOutOfRangeException(nameof(queues));
        var list = new List<LinuxTun>();
        var waited = System.Diagnostics.Stopwatch.StartNew();   // one busy deadline for all queues, not one each
        try
        {
            for (int q = 0; q < queues; q++)
            {
                int delayMs = 20, busyTries = 0;
                while (true)
                {
                    int fd = Native.Open("/dev/net/tun", Native.O_RDWR | Native.O_NONBLOCK | Native.O_CLOEXEC);
                    if (fd < 0) throw new IOException($"open /dev/net/tun: {Native.Describe(Native.Errno)}");
                    Native.IfReqFlags req = default;
                    var bytes = Encoding.ASCII.GetBytes(name);
                    for (int i = 0; i < bytes.Length; i++) req.Name[i] = bytes[i];
                    req.Flags = (short)(Native.IFF_TUN | Native.IFF_NO_PI | (queues > 1 ? Native.IFF_MULTI_QUEUE : 0));
                    if (Native.Ioctl(fd, Native.TUNSETIFF, &req) == 0)
                    {
                        list.Add(new LinuxTun(fd, name));
                        if (busyTries > 0)
                        {
                            notes?.Add($"TUN {name} queue {q} was busy for {waited.ElapsedMilliseconds} ms (a previous holder still releasing it) before it opened");
                        }
                        break;
                    }
                    int e = Native.Errno;
                    Native.Close(fd);
                    if (e != Native.EBUSY || waited.Elapsed >= busyLimit)
                    {
                        string busy = e == Native.EBUSY ? $" (still busy after {waited.Elapsed.TotalSeconds:0.#} s: another process holds it?)" : "";
                        throw new IOException($"ioctl TUNSETIFF {name}: {Native.Describe(e)}{busy}");
                    }
                    busyTries++;
                    Thread.Sleep(delayMs);
                    delayMs = Math.Min(delayMs * 2, 400);
                }
            }
        }
        catch
        {
            foreach (var t in list) t.Dispose();
            throw;
        }
        return list;
    }

    public int ReadBatch(PacketBatch batch, int timeoutMs)
    {
        batch.Count = 0;
        var pfd = new Native.PollFd { Fd = _fd, Events = Native.POLLIN };
        int r = Native.Poll(&pfd, 1, timeoutMs);
        if (r <= 0) return 0;
        int n = 0;
        while (n < batch.Capacity)
        {
            byte* p = batch.SlotPointer(n) + PacketBatch.Headroom;
            nint got = Native.Read(_fd, p, (nuint)batch.MaxPacket);
            if (got <= 0) break; // EAGAIN: drained (errors surface as an empty poll next time)
            batch.Offset[n] = PacketBatch.Headroom;
            batch.Length[n] = (int)got;
            n++;
        }
        batch.Count = n;
        return n;
    }

    public bool Write(ReadOnlySpan<byte> packet)
    {
        fixed (byte* p = packet)
        {
            return Native.Write(_fd, p, (nuint)packet.Length) == packet.Length;
        }
    }

    public void Dispose()
    {
        int fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0) Native.Close(fd);
    }
}

/// <summary>
/// In-memory TUN for tests and benchmarks: <see cref="Inject"/> plays the host sending a packet into the
/// device (the ITR reads it); packets the ETR writes are collected in <see cref="Written"/>. Thread-safe.
/// </summary>
public sealed class InMemoryTun(string name = "mem0", int maxQueued = 4096) : ITun
{
    private readonly ConcurrentQueue<byte[]> _inbound = new();
    private readonly SemaphoreSlim _arrived = new(0);
    private int _queued;

    public string Name { get; } = name;
    public ConcurrentQueue<byte[]> Written { get; } = new();
    /// <summary>When true, <see cref="Write"/> refuses packets (to test the drop counter).</summary>
    public bool RefuseWrites { get; set; }

    /// <summary>Queues a packet for the ITR to read; false when <c>maxQueued</c> packets are already waiting.</summary>
    public bool Inject(ReadOnlySpan<byte> packet)
    {
        if (Interlocked.Increment(ref _queued) > maxQueued)
        {
            Interlocked.Decrement(ref _queued);
            return false;
        }
        _inbound.Enqueue(packet.ToArray());
        _arrived.Release();
        return true;
    }

    public int ReadBatch(PacketBatch batch, int timeoutMs)
    {
        batch.Count = 0;
        if (!_arrived.Wait(Math.Max(0, timeoutMs))) return 0;
        int n = 0;
        while (true)
        {
            if (!_inbound.TryDequeue(out var p)) break;
            Interlocked.Decrement(ref _queued);
            if (p.Length <= batch.MaxPacket)
            {
                batch.Set(n, p);
                n++;
            }
            if (n == batch.Capacity || !_arrived.Wait(0)) break;
        }
        batch.Count = n;
        return n;
    }

    public bool Write(ReadOnlySpan<byte> packet)
    {
        if (RefuseWrites) return false;
        Written.Enqueue(packet.ToArray());
        return true;
    }

    public void Dispose() => _arrived.Dispose();
}
