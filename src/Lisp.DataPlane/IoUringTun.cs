namespace Lisp.DataPlane;

/// <summary>
/// A TUN queue driven through its own io_uring: a batch of READ SQEs (one per packet slot) or WRITE SQEs (one
/// per decapsulated packet) goes to the kernel in one io_uring_enter instead of one read()/write() each.
/// <para>
/// Every READ/WRITE carries RWF_NOWAIT, so the kernel completes it inline during that io_uring_enter (a packet,
/// or -EAGAIN when the queue is empty) and never parks it on a poll or an io-wq thread: when a call returns, no
/// request references the caller's buffers (the batch can be reused or freed at once). Waiting for traffic is
/// one POLL_ADD (it references no memory) plus a timed io_uring_enter (EXT_ARG), so every wait is bounded.
/// The number of reads per batch adapts (doubling while every read returns a packet, shrinking to about twice
/// what came) so a lightly loaded queue does not pay for 64 -EAGAIN completions per packet.
/// </para>
/// The fd belongs to the <see cref="LinuxTun"/> (not closed here). One instance per thread: the ITR reads
/// through its own, each ETR writes through its own (the ring is single-threaded). <see cref="Write"/> (the
/// ITR's rare ICMP too-big) is a plain write().
/// </summary>
public sealed unsafe class IoUringTun : ITun
{
    private const ulong PollTag = ulong.MaxValue;
    private const int MinReads = 4;
    private readonly LinuxTun _tun;
    /// <summary>The TUN's current descriptor (it changes when the queue is attached again after a loss).</summary>
    private int TunFd => _tun.Fd;
    private readonly IoUring _ring;
    private readonly IoUring.Cqe[] _cqes;
    private readonly int[] _results;
    private bool _pollArmed;
    private int _reads = MinReads;

    private IoUringTun(LinuxTun tun, IoUring ring)
    {
        _tun = tun;
        _ring = ring;
        _cqes = new IoUring.Cqe[ring.CqEntries];
        _results = new int[ring.SqEntries];
    }

    public string Name => _tun.Name;
    /// <summary>io_uring_enter calls made (for tests and the benchmark's syscall accounting).</summary>
    public long Enters { get; private set; }
    /// <summary>READ completions that found the queue empty (-EAGAIN).</summary>
    public long EmptyReads { get; private set; }

    /// <summary>
    /// A ring for TUN queue <paramref name="tun"/> sized for <paramref name="batch"/> packets. Checks with a
    /// zero-length RWF_NOWAIT read (consumes nothing) that the TUN takes non-blocking io_uring I/O; throws
    /// <see cref="IoUringException"/> with the kernel's errno when not (EOPNOTSUPP: no FMODE_NOWAIT).
    /// </summary>
    public static IoUringTun Open(LinuxTun tun, int batch)
    {
        uint entries = 8;
        while (entries < batch + 1) entries <<= 1;
        var ring = IoUring.Create(entries);
        var t = new IoUringTun(tun, ring);
        try
        {
            byte dummy;
            ring.Prep(IoUring.OpRead, t.TunFd, &dummy, 0, 0, IoUring.RWF_NOWAIT);
            int r = t.SubmitAndReap(1);
            if (r < 0) throw new IoUringException("io_uring_enter", -r);
            int res = t._results[0];
            if (res < 0 && res != -Native.EAGAIN) throw new IoUringException("io_uring READ (RWF_NOWAIT) on the TUN", -res);
            return t;
        }
        catch
        {
            t.Dispose();
            throw;
        }
    }

    /// <summary>Submits what is prepared and collects <paramref name="expected"/> read/write results into _results[userData].</summary>
    private int SubmitAndReap(int expected)
    {
        int got = 0;
        int r = _ring.SubmitAndWait((uint)expected, 1000);
        Enters++;
        for (int spin = 0; ; spin++)
        {
            int n = _ring.Reap(_cqes);
            for (int k = 0; k < n; k++)
            {
                ref var c = ref _cqes[k];
                if (c.UserData == PollTag)
                {
                    _pollArmed = false;
                    continue;
                }
                _results[(int)c.UserData] = c.Res;
                got++;
            }
            if (got >= expected) return r < 0 && r != -IoUring.ETIME ? r : got;
            // RWF_NOWAIT requests complete inline; this only runs if a kernel defers them. Buffers stay referenced
            // until every completion is in, so keep waiting (bounded: about 10 s, then the process is in trouble).
            if (spin > 10) throw new IOException($"io_uring: {expected - got} TUN requests still pending after 10 s");
            r = _ring.SubmitAndWait((uint)(expected - got), 1000);
            Enters++;
        }
    }

    public int ReadBatch(PacketBatch batch, int timeoutMs)
    {
        batch.Count = 0;
        // A lost TUN (issue 12 finding 9): back off and reattach in the LinuxTun, never spin on failing reads.
        if (_tun.Lost && !_tun.TryRecover(timeoutMs)) return 0;
        int n = ReadNow(batch);
        if (_tun.Lost) return 0;
        if (n > 0 || timeoutMs <= 0) return n;
        // The queue was empty: wait (bounded) for it to become readable, then read again.
        if (!_pollArmed) _pollArmed = _ring.Prep(IoUring.OpPollAdd, TunFd, null, 0, PollTag, (uint)Native.POLLIN);
        _ring.SubmitAndWait(1, timeoutMs);
        Enters++;
        int reaped = _ring.Reap(_cqes);
        for (int k = 0; k < reaped; k++)
        {
            if (_cqes[k].UserData == PollTag) _pollArmed = false;
        }
        return _pollArmed ? 0 : ReadNow(batch);
    }

    private int ReadNow(PacketBatch batch)
    {
        int want = Math.Min(_reads, Math.Min(batch.Capacity, (int)_ring.SqSpace));
        if (want <= 0) return 0;
        uint len = (uint)batch.MaxPacket;
        for (int i = 0; i < want; i++) _ring.Prep(IoUring.OpRead, TunFd, batch.SlotPointer(i) + PacketBatch.Headroom, len, (ulong)i, IoUring.RWF_NOWAIT);
        if (SubmitAndReap(want) < 0) return 0;
        int w = 0;
        for (int i = 0; i < want; i++)
        {
            int res = _results[i];
            if (res <= 0)
            {
                if (res == -Native.EAGAIN) EmptyReads++;
                else if (res < 0 && res != -Native.EINTR) _tun.Fail($"io_uring READ: {Native.Describe(-res)}");
                continue;
            }
            // A packet that arrived after an earlier read found the queue empty leaves a gap: close it (rare).
            if (w != i) new ReadOnlySpan<byte>(batch.SlotPointer(i) + PacketBatch.Headroom, res).CopyTo(new Span<byte>(batch.SlotPointer(w) + PacketBatch.Headroom, res));
            batch.Offset[w] = PacketBatch.Headroom;
            batch.Length[w] = res;
            w++;
        }
        _reads = w == want ? Math.Min(batch.Capacity, want * 2) : Math.Max(MinReads, w * 2);
        batch.Count = w;
        return w;
    }

    public bool Write(ReadOnlySpan<byte> packet) => _tun.Write(packet);

    public int WriteBatch(PacketBatch batch, ReadOnlySpan<int> indices)
    {
        int ok = 0, done = 0;
        while (done < indices.Length)
        {
            int chunk = Math.Min(indices.Length - done, (int)_ring.SqSpace);
            if (chunk <= 0) chunk = 1; // cannot happen with nothing in flight; keeps the loop finite
            for (int k = 0; k < chunk; k++)
            {
                int i = indices[done + k];
                _ring.Prep(IoUring.OpWrite, TunFd, batch.SlotPointer(i) + batch.Offset[i], (uint)batch.Length[i], (ulong)k, IoUring.RWF_NOWAIT);
            }
            int r = SubmitAndReap(chunk);
            for (int k = 0; k < chunk; k++)
            {
                int i = indices[done + k];
                if (r >= 0 && _results[k] == batch.Length[i]) ok++;
                else batch.Length[i] = -1;
            }
            done += chunk;
        }
        return ok;
    }

    public void Dispose() => _ring.Dispose();
}
