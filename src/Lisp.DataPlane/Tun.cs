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
    /// True when the device speaks virtio-net headers (IFF_VNET_HDR): each packet <see cref="ReadBatch"/> returns has its
    /// 10-byte header in the slot just before it (at Offset - 10), and may be a
    /// segmentation-offload super-packet; <see cref="Write"/> adds an all-zero header itself.
    /// </summary>
    bool VnetHeader => false;

    /// <summary>Writes bytes that already begin with a virtio-net header (a coalesced super-packet); false when refused or when <see cref="VnetHeader"/> is off.</summary>
    bool WriteWithHeader(ReadOnlySpan<byte> headerAndPacket) => false;

    /// <summary>
    /// <see cref="WriteWithHeader"/> from a gather list (the first entry begins with the virtio-net header) of
    /// <paramref name="bytes"/> bytes in all. Default: joined into one buffer; a device on a descriptor writes the list
    /// with one writev, without that copy.
    /// </summary>
    internal unsafe bool WriteGather(ReadOnlySpan<Native.IoVec> iov, int bytes)
    {
        var joined = new byte[bytes];
        int at = 0;
        foreach (var v in iov)
        {
            new ReadOnlySpan<byte>(v.Base, (int)v.Length).CopyTo(joined.AsSpan(at));
            at += (int)v.Length;
        }
        return WriteWithHeader(joined);
    }

    /// <summary>The device takes UDP super-packets (GSO UDP_L4) written to it: the ETR may join UDP runs. Default: whenever it speaks vnet headers.</summary>
    bool AcceptsUdpSegmentation => VnetHeader;

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
/// <para>
/// Losing the device (issue 12 finding 9: `ip link del` under a running node makes poll() report POLLERR and read()
/// fail with EBADFD at once, forever) is noticed once: <see cref="Notify"/> gets "tun-lost", <see cref="Losses"/>
/// counts it, and from then on <see cref="ReadBatch"/> waits (exponential back-off, 10 ms doubling to 1 s, each wait
/// within the caller's timeout) and tries to attach the queue again by name: only to a device that exists again (it does
/// not create one the operator deleted: that device would have none of its addresses and routes); then "tun-reopened".
/// The old descriptor is kept open until Dispose (another thread may still be writing to it), then closed.
/// </para>
/// </summary>
public sealed unsafe class LinuxTun : ITun
{
    /// <summary>The interface index of device <paramref name="name"/> in the calling thread's network namespace (0: none).</summary>
    public static uint InterfaceIndex(string name) => Native.IfNameToIndex(name);

    private int _fd;
    private readonly bool _multiQueue;
    private readonly bool _vnet;
    private readonly uint _offloadFlags;
    private static readonly byte[] ZeroVnetHeader = new byte[VnetHeaderSize];
    /// <summary>Bytes of the virtio-net header in front of every packet when <see cref="VnetHeader"/> is on.</summary>
    public const int VnetHeaderSize = 10;
    private readonly List<int> _retired = [];
    private volatile bool _lost;
    private long _retryAt;
    private int _backoffMs;
    private long _losses, _reopens, _reopenFailures;

    private LinuxTun(int fd, string name, bool multiQueue, bool vnet, uint offloadFlags)
    {
        _fd = fd;
        Name = name;
        _multiQueue = multiQueue;
        _vnet = vnet;
        _offloadFlags = offloadFlags;
    }

    public bool VnetHeader => _vnet;
    /// <summary>The TUN_F_* flags the kernel accepted (TUNSETOFFLOAD); 0 without the vnet header.</summary>
    public uint OffloadFlags => _offloadFlags;
    /// <summary>USO was accepted: the kernel knows UDP segmentation on this device (Linux 6.2+), so the ETR may write UDP super-packets.</summary>
    public bool AcceptsUdpSegmentation => (_offloadFlags & (Native.TUN_F_USO4 | Native.TUN_F_USO6)) != 0;

    /// <summary>
    /// The offload sets tried in order, each a fallback of the one before (USO needs Linux 6.2; TSO needs the vnet header;
    /// checksum offload alone still saves the host the checksum of every packet it sends into the TUN).
    /// </summary>
    private static readonly uint[] OffloadCandidates =
    [
        Native.TUN_F_CSUM | Native.TUN_F_TSO4 | Native.TUN_F_TSO6 | Native.TUN_F_USO4 | Native.TUN_F_USO6,
        Native.TUN_F_CSUM | Native.TUN_F_TSO4 | Native.TUN_F_TSO6,
        Native.TUN_F_CSUM,
        0,
    ];

    /// <summary>Asks the device for the largest offload set it accepts; returns the flags now on and why the larger sets were refused.</summary>
    private static uint NegotiateOffloads(int fd, List<string>? notes, string name)
    {
        int size = VnetHeaderSize;
        if (Native.Ioctl(fd, Native.TUNSETVNETHDRSZ, &size) != 0)
            notes?.Add($"offload: TUN {name}: TUNSETVNETHDRSZ 10 refused ({Native.Describe(Native.Errno)}); using the device default");
        foreach (uint flags in OffloadCandidates)
        {
            // TUNSETOFFLOAD takes the flags by value in the argument word.
            if (Native.Ioctl(fd, Native.TUNSETOFFLOAD, (void*)(nuint)flags) == 0) return flags;
            if (flags != 0) notes?.Add($"offload: TUN {name}: TUNSETOFFLOAD 0x{flags:x} refused ({Native.Describe(Native.Errno)}); trying a smaller set");
        }
        return 0;
    }

    public string Name { get; }
    public int Fd => Volatile.Read(ref _fd);

    /// <summary>Back-off bounds of the reattach attempts after the device was lost.</summary>
    public const int MinBackoffMs = 10, MaxBackoffMs = 1000;

    /// <summary>Told of a loss ("tun-lost", warning) and of a reattach ("tun-reopened"); (event, message, isWarning). Set before the workers start.</summary>
    public Action<string, string, bool>? Notify { get; set; }
    /// <summary>Whether the queue is lost (waiting to reattach).</summary>
    public bool Lost => _lost;
    /// <summary>Times the queue was lost (poll error/hang-up, or a read error other than EAGAIN/EINTR).</summary>
    public long Losses => Interlocked.Read(ref _losses);
    /// <summary>Times the queue was attached again after a loss.</summary>
    public long Reopens => Interlocked.Read(ref _reopens);
    /// <summary>Reattach attempts that failed (device still absent, or TUNSETIFF refused).</summary>
    public long ReopenFailures => Interlocked.Read(ref _reopenFailures);

    /// <summary>Marks the queue lost (once per loss: logs and counts only the first report).</summary>
    public void Fail(string why)
    {
        if (_lost) return;
        _backoffMs = MinBackoffMs;
        _retryAt = System.Diagnostics.Stopwatch.GetTimestamp() + MsToTicks(_backoffMs);
        _lost = true;
        Interlocked.Increment(ref _losses);
        Notify?.Invoke("tun-lost", $"TUN {Name}: {why}; reading stopped, reattaching by name when the device exists again (back-off {MinBackoffMs} ms to {MaxBackoffMs / 1000} s)", true);
    }

    private static long MsToTicks(int ms) => ms * System.Diagnostics.Stopwatch.Frequency / 1000;

    /// <summary>
    /// While lost: waits for the next attempt (at most <paramref name="timeoutMs"/>, never spinning) and, when it is due,
    /// tries to attach the queue again. True when the queue is usable (not lost, or just reattached).
    /// </summary>
    public bool TryRecover(int timeoutMs)
    {
        if (!_lost) return true;
        long now = System.Diagnostics.Stopwatch.GetTimestamp();
        if (now < _retryAt)
        {
            long waitMs = (_retryAt - now) * 1000 / System.Diagnostics.Stopwatch.Frequency + 1;
            Thread.Sleep((int)Math.Min(Math.Max(0, timeoutMs), waitMs));
            if (System.Diagnostics.Stopwatch.GetTimestamp() < _retryAt) return false;
        }
        string? error = null;
        int fd = -1;
        if (Native.IfNameToIndex(Name) == 0) error = "no such device"; // this thread's network namespace (not /sys's)
        else if (!TryAttach(Name, _multiQueue, _vnet, _offloadFlags, out fd, out int e)) error = Native.Describe(e);
        if (error is not null)
        {
            Interlocked.Increment(ref _reopenFailures);
            _backoffMs = Math.Min(_backoffMs * 2, MaxBackoffMs);
            _retryAt = System.Diagnostics.Stopwatch.GetTimestamp() + MsToTicks(_backoffMs);
            return false;
        }
        lock (_retired) _retired.Add(Interlocked.Exchange(ref _fd, fd));
        _lost = false;
        Interlocked.Increment(ref _reopens);
        Notify?.Invoke("tun-reopened", $"TUN {Name}: attached again after {ReopenFailures} failed attempt(s) in all; reading resumed", false);
        return true;
    }

    /// <summary>open /dev/net/tun + TUNSETIFF; false with the errno.</summary>
    private static bool TryAttach(string name, bool multiQueue, bool vnet, uint offloadFlags, out int fd, out int errno)
    {
        fd = Native.Open("/dev/net/tun", Native.O_RDWR | Native.O_NONBLOCK | Native.O_CLOEXEC);
        if (fd < 0)
        {
            errno = Native.Errno;
            return false;
        }
        Native.IfReqFlags req = default;
        var bytes = Encoding.ASCII.GetBytes(name);
        for (int i = 0; i < bytes.Length; i++) req.Name[i] = bytes[i];
        req.Flags = (short)(Native.IFF_TUN | Native.IFF_NO_PI | (multiQueue ? Native.IFF_MULTI_QUEUE : 0) | (vnet ? Native.IFF_VNET_HDR : 0));
        if (Native.Ioctl(fd, Native.TUNSETIFF, &req) == 0)
        {
            if (vnet)
            {
                // The same offloads as before the loss: the worker's buffers and parsing were set up for them.
                int size = VnetHeaderSize;
                Native.Ioctl(fd, Native.TUNSETVNETHDRSZ, &size);
                Native.Ioctl(fd, Native.TUNSETOFFLOAD, (void*)(nuint)offloadFlags);
            }
            errno = 0;
            return true;
        }
        errno = Native.Errno;
        Native.Close(fd);
        fd = -1;
        return false;
    }

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
    /// <param name="vnetHeader">open with IFF_VNET_HDR and negotiate offloads (checksum, TSO4/6, USO); the accepted set is in <see cref="OffloadFlags"/></param>
    public static IReadOnlyList<LinuxTun> Open(string name, int queues, List<string>? notes = null, TimeSpan? busyRetryLimit = null, bool vnetHeader = false)
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
                    req.Flags = (short)(Native.IFF_TUN | Native.IFF_NO_PI | (queues > 1 ? Native.IFF_MULTI_QUEUE : 0) | (vnetHeader ? Native.IFF_VNET_HDR : 0));
                    if (Native.Ioctl(fd, Native.TUNSETIFF, &req) == 0)
                    {
                        uint offloads = vnetHeader ? NegotiateOffloads(fd, q == 0 ? notes : null, name) : 0;
                        list.Add(new LinuxTun(fd, name, queues > 1, vnetHeader, offloads));
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
        if (_lost && !TryRecover(timeoutMs)) return 0;
        int fd = Fd;
        var pfd = new Native.PollFd { Fd = fd, Events = Native.POLLIN };
        int r = Native.Poll(&pfd, 1, timeoutMs);
        if (r < 0)
        {
            int e = Native.Errno;
            if (e != Native.EINTR) Fail($"poll: {Native.Describe(e)}");
            return 0;
        }
        if (r == 0) return 0;
        if ((pfd.Revents & (Native.POLLERR | Native.POLLHUP | Native.POLLNVAL)) != 0 && (pfd.Revents & Native.POLLIN) == 0)
        {
            Fail($"poll reports {PollFlags(pfd.Revents)}");
            return 0;
        }
        int n = 0;
        // With the vnet header the read lands 10 bytes early, so the packet itself still starts at the headroom and the
        // header sits just before it (the ITR parses it before the outer header overwrites that part of the headroom).
        int hdr = _vnet ? VnetHeaderSize : 0;
        while (n < batch.Capacity)
        {
            byte* p = batch.SlotPointer(n) + PacketBatch.Headroom - hdr;
            nint got = Native.Read(fd, p, (nuint)(batch.MaxPacket + hdr));
            if (got < 0)
            {
                int e = Native.Errno;
                if (e != Native.EAGAIN && e != Native.EINTR) Fail($"read: {Native.Describe(e)}");
                break;
            }
            if (got <= hdr) break;
            batch.Offset[n] = PacketBatch.Headroom;
            batch.Length[n] = (int)got - hdr;
            n++;
        }
        batch.Count = n;
        return n;
    }

    private static string PollFlags(short revents) => string.Join("|",
        new[] { ((short)Native.POLLERR, "POLLERR"), ((short)Native.POLLHUP, "POLLHUP"), ((short)Native.POLLNVAL, "POLLNVAL") }
            .Where(f => (revents & f.Item1) != 0).Select(f => f.Item2));

    public bool Write(ReadOnlySpan<byte> packet)
    {
        fixed (byte* p = packet)
        {
            if (!_vnet) return Native.Write(Fd, p, (nuint)packet.Length) == packet.Length;
            // A plain packet on a vnet-header device: an all-zero header in front (no GSO; the host checks the checksum).
            fixed (byte* z = ZeroVnetHeader)
            {
                var iov = stackalloc Native.IoVec[2];
                iov[0] = new Native.IoVec { Base = z, Length = VnetHeaderSize };
                iov[1] = new Native.IoVec { Base = p, Length = (nuint)packet.Length };
                return Native.Writev(Fd, iov, 2) == VnetHeaderSize + packet.Length;
            }
        }
    }

    public bool WriteWithHeader(ReadOnlySpan<byte> headerAndPacket)
    {
        if (!_vnet) return false;
        fixed (byte* p = headerAndPacket)
        {
            return Native.Write(Fd, p, (nuint)headerAndPacket.Length) == headerAndPacket.Length;
        }
    }

    bool ITun.WriteGather(ReadOnlySpan<Native.IoVec> iov, int bytes)
    {
        if (!_vnet) return false;
        fixed (Native.IoVec* v = iov)
        {
            return Native.Writev(Fd, v, iov.Length) == bytes;
        }
    }

    public void Dispose()
    {
        int fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0) Native.Close(fd);
        lock (_retired)
        {
            foreach (int old in _retired) Native.Close(old);
            _retired.Clear();
        }
    }
}

/// <summary>
/// In-memory TUN for tests and benchmarks: <see cref="Inject"/> plays the host sending a packet into the
/// device (the ITR reads it); packets the ETR writes are collected in <see cref="Written"/>. Thread-safe.
/// </summary>
/// With <see cref="VnetHeader"/> it plays a device opened with IFF_VNET_HDR: injected bytes begin with the 10-byte header,
/// and what the ETR writes is kept with its header.
public sealed class InMemoryTun(string name = "mem0", int maxQueued = 4096) : ITun
{
    public bool VnetHeader { get; init; }

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
            int hdr = VnetHeader ? LinuxTun.VnetHeaderSize : 0;
            if (p.Length >= hdr && p.Length - hdr <= batch.MaxPacket)
            {
                batch.Set(n, p.AsSpan(hdr));
                p.AsSpan(0, hdr).CopyTo(batch.Slot(n).Slice(PacketBatch.Headroom - hdr));
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
        if (!VnetHeader)
        {
            Written.Enqueue(packet.ToArray());
            return true;
        }
        var withHeader = new byte[LinuxTun.VnetHeaderSize + packet.Length];
        packet.CopyTo(withHeader.AsSpan(LinuxTun.VnetHeaderSize));
        Written.Enqueue(withHeader);
        return true;
    }

    public bool WriteWithHeader(ReadOnlySpan<byte> headerAndPacket)
    {
        if (RefuseWrites || !VnetHeader) return false;
        Written.Enqueue(headerAndPacket.ToArray());
        return true;
    }

    public void Dispose() => _arrived.Dispose();
}
