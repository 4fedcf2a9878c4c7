using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Lisp.DataPlane;

/// <summary>
/// A minimal io_uring instance written against the kernel ABI (linux/io_uring.h), no liburing: io_uring_setup,
/// the SQ ring, CQ ring and SQE array mmap'd, io_uring_enter to submit and wait. One owner thread: the
/// submission side (SQ tail, SQEs) and the completion side (CQ head) are single-producer/single-consumer with
/// the kernel, so the only ordering needed is the ring protocol's:
/// <list type="bullet">
/// <item>SQ: fill the SQE and the array slot, then publish the tail with a release store (Volatile.Write); read
/// the kernel's head with an acquire load (Volatile.Read) before reusing an entry.</item>
/// <item>CQ: read the kernel's tail with an acquire load before reading CQEs, then publish the consumed head
/// with a release store so the kernel may overwrite them.</item>
/// </list>
/// Layouts are the LP64 ones (x86-64 and arm64 share them and the syscall numbers 425-427).
/// </summary>
internal sealed unsafe class IoUring : IDisposable
{
    public const byte OpNop = 0, OpPollAdd = 6, OpSendMsg = 9, OpRecvMsg = 10, OpAsyncCancel = 14, OpRead = 22, OpWrite = 23;
    public const int RWF_NOWAIT = 0x8;
    private const uint SetupCoopTaskrun = 1 << 8, SetupSingleIssuer = 1 << 12;
    public const uint FeatSingleMmap = 1, FeatNoDrop = 2, FeatFastPoll = 32, FeatExtArg = 256;
    private const uint EnterGetEvents = 1, EnterExtArg = 8;
    private const long OffSqRing = 0, OffCqRing = 0x8000000, OffSqes = 0x10000000;
    private const int RegisterProbe = 8;
    public const int ETIME = 62, EBUSY = 16, EOPNOTSUPP = 95, ENOSYS = 38;

    [StructLayout(LayoutKind.Sequential, Size = 64)]
    public struct Sqe
    {
        public byte Opcode;
        public byte Flags;
        public ushort IoPrio;
        public int Fd;
        public ulong Off;
        public ulong Addr;
        public uint Len;
        public uint OpFlags; // rw_flags, msg_flags, poll32_events, cancel_flags ...
        public ulong UserData;
        public ushort BufIndex;
        public ushort Personality;
        public int FileIndex;
        public ulong Addr3;
        public ulong Pad;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct Cqe
    {
        public ulong UserData;
        public int Res;
        public uint Flags;
    }

    [StructLayout(LayoutKind.Sequential, Size = 120)]
    private struct Params
    {
        public uint SqEntries, CqEntries, Flags, SqThreadCpu, SqThreadIdle, Features, WqFd;
        public fixed uint Resv[3];
        // io_sqring_offsets
        public uint SqHead, SqTail, SqRingMask, SqRingEntries, SqFlags, SqDropped, SqArray, SqResv1;
        public ulong SqUserAddr;
        // io_cqring_offsets
        public uint CqHead, CqTail, CqRingMask, CqRingEntries, CqOverflow, CqCqes, CqFlags, CqResv1;
        public ulong CqUserAddr;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct GetEventsArg
    {
        public ulong SigMask;
        public uint SigMaskSize;
        public uint MinWaitUsec;
        public ulong Ts;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct KernelTimespec
    {
        public long Sec;
        public long Nsec;
    }

    private int _fd;
    private byte* _sqRing, _cqRing;
    private nuint _sqRingSize, _cqRingSize, _sqesSize;
    private Sqe* _sqes;
    private uint* _sqHead, _sqTail, _sqArray, _cqHead, _cqTail;
    private Cqe* _cqes;
    private readonly uint _sqMask, _cqMask;
    private uint _sqLocalTail; // SQEs handed out, not yet published
    private uint _sqPublished; // tail value last published

    public uint SqEntries { get; }
    public uint CqEntries { get; }
    public uint Features { get; }
    public int Fd => _fd;

    private IoUring(int fd, in Params p)
    {
        _fd = fd;
        SqEntries = p.SqEntries;
        CqEntries = p.CqEntries;
        Features = p.Features;
        _sqMask = p.SqEntries - 1;
        _cqMask = p.CqEntries - 1;
    }

    /// <summary>
    /// Creates a ring of <paramref name="entries"/> SQEs (power of two; the CQ gets twice as many). Throws
    /// <see cref="IoUringException"/> with the errno when the kernel refuses (ENOSYS, EPERM under seccomp or
    /// io_uring_disabled, ENOMEM for locked memory, EINVAL for unknown flags are retried without them).
    /// </summary>
    public static IoUring Create(uint entries)
    {
        Params p = default;
        // COOP_TASKRUN (5.19): completions run when we enter the kernel anyway, no IPI; SINGLE_ISSUER (6.0) is not
        // used because rings are created on the opening thread and driven by the worker thread.
        p.Flags = SetupCoopTaskrun;
        long fd = Native.Syscall6(Native.SYS_io_uring_setup, entries, (long)&p, 0, 0, 0, 0);
        if (fd < 0 && Native.Errno == 22 /* EINVAL: older kernel */)
        {
            p = default;
            fd = Native.Syscall6(Native.SYS_io_uring_setup, entries, (long)&p, 0, 0, 0, 0);
        }
        if (fd < 0) throw new IoUringException("io_uring_setup", Native.Errno);
        var ring = new IoUring((int)fd, p);
        try
        {
            ring.Map(p);
        }
        catch
        {
            ring.Dispose();
            throw;
        }
        return ring;
    }

    private void Map(in Params p)
    {
        _sqRingSize = p.SqArray + p.SqEntries * 4;
        _cqRingSize = p.CqCqes + p.CqEntries * (uint)sizeof(Cqe);
        _sqesSize = p.SqEntries * (uint)sizeof(Sqe);
        _sqRing = MapOne(_sqRingSize, OffSqRing, "SQ ring");
        _cqRing = MapOne(_cqRingSize, OffCqRing, "CQ ring");
        _sqes = (Sqe*)MapOne(_sqesSize, OffSqes, "SQEs");
        _sqHead = (uint*)(_sqRing + p.SqHead);
        _sqTail = (uint*)(_sqRing + p.SqTail);
        _sqArray = (uint*)(_sqRing + p.SqArray);
        _cqHead = (uint*)(_cqRing + p.CqHead);
        _cqTail = (uint*)(_cqRing + p.CqTail);
        _cqes = (Cqe*)(_cqRing + p.CqCqes);
        // The array indirection is identity: SQE i always sits in array slot i.
        for (uint i = 0; i < p.SqEntries; i++) _sqArray[i] = i;
        _sqLocalTail = _sqPublished = Volatile.Read(ref *_sqTail);
    }

    private byte* MapOne(nuint size, long offset, string what)
    {
        void* m = Native.Mmap(null, size, Native.PROT_READ | Native.PROT_WRITE, Native.MAP_SHARED | Native.MAP_POPULATE, _fd, offset);
        if (m == Native.MapFailed) throw new IoUringException($"mmap {what}", Native.Errno);
        return (byte*)m;
    }

    /// <summary>Free SQ entries (not yet handed out).</summary>
    public uint SqSpace => SqEntries - (_sqLocalTail - Volatile.Read(ref *_sqHead));

    /// <summary>The next SQE, zeroed, or null when the SQ is full (submit first).</summary>
    public Sqe* GetSqe()
    {
        if (_sqLocalTail - Volatile.Read(ref *_sqHead) >= SqEntries) return null;
        Sqe* s = &_sqes[_sqLocalTail & _sqMask];
        *s = default;
        _sqLocalTail++;
        return s;
    }

    /// <summary>Prepares a read/write-style SQE (READ, WRITE, SENDMSG, RECVMSG; POLL_ADD with the events in <paramref name="opFlags"/>); false when the SQ is full.</summary>
    public bool Prep(byte opcode, int fd, void* addr, uint len, ulong userData, uint opFlags = 0)
    {
        Sqe* s = GetSqe();
        if (s == null) return false;
        s->Opcode = opcode;
        s->Fd = fd;
        s->Addr = (ulong)addr;
        s->Len = len;
        s->OpFlags = opFlags;
        s->UserData = userData;
        return true;
    }

    private void Publish()
    {
        if (_sqLocalTail != _sqPublished)
        {
            Volatile.Write(ref *_sqTail, _sqLocalTail); // release: SQE contents before the tail
            _sqPublished = _sqLocalTail;
        }
    }

    /// <summary>
    /// Publishes the prepared SQEs and calls io_uring_enter once: submits them and, with
    /// <paramref name="waitFor"/> &gt; 0, waits for that many completions at most <paramref name="timeoutMs"/>
    /// (negative = no limit). Returns the SQEs the kernel consumed, or -errno (-ETIME on timeout: the SQEs were
    /// still submitted; -EINTR, -EBUSY when the CQ is full).
    /// </summary>
    public int SubmitAndWait(uint waitFor, int timeoutMs)
    {
        Publish();
        // Everything published but not yet consumed by the kernel (also SQEs a failed earlier enter left behind).
        uint n = _sqLocalTail - Volatile.Read(ref *_sqHead);
        if (n == 0 && waitFor == 0) return 0;
        long r;
        if (waitFor > 0 && timeoutMs >= 0)
        {
            KernelTimespec ts = new() { Sec = timeoutMs / 1000, Nsec = (timeoutMs % 1000) * 1_000_000L };
            GetEventsArg arg = new() { Ts = (ulong)&ts };
            r = Native.Syscall6(Native.SYS_io_uring_enter, _fd, n, waitFor, EnterGetEvents | EnterExtArg, (long)&arg, sizeof(GetEventsArg));
        }
        else
        {
            r = Native.Syscall6(Native.SYS_io_uring_enter, _fd, n, waitFor, waitFor > 0 ? EnterGetEvents : 0, 0, 0);
        }
        if (r < 0) return -Native.Errno;
        return (int)r;
    }

    /// <summary>Completions ready to read (acquire on the kernel's tail).</summary>
    public uint CqReady => Volatile.Read(ref *_cqTail) - *_cqHead;

    /// <summary>Copies out up to <paramref name="into"/>.Length completions and releases them to the kernel.</summary>
    public int Reap(Span<Cqe> into)
    {
        uint head = *_cqHead;
        uint tail = Volatile.Read(ref *_cqTail); // acquire: CQE contents after the tail
        int n = 0;
        while (head != tail && n < into.Length)
        {
            into[n++] = _cqes[head & _cqMask];
            head++;
        }
        if (n > 0) Volatile.Write(ref *_cqHead, head); // release: done reading before the kernel may reuse
        return n;
    }

    /// <summary>IORING_REGISTER_PROBE: which of <paramref name="opcodes"/> the kernel lacks (empty: all supported).</summary>
    public List<byte> MissingOpcodes(ReadOnlySpan<byte> opcodes)
    {
        const int ops = 64;
        int size = 16 + ops * 8;
        byte* probe = stackalloc byte[size];
        new Span<byte>(probe, size).Clear();
        long r = Native.Syscall6(Native.SYS_io_uring_register, _fd, RegisterProbe, (long)probe, ops, 0, 0);
        if (r < 0) throw new IoUringException("io_uring_register(PROBE)", Native.Errno);
        int lastOp = probe[0], opsLen = probe[1];
        var missing = new List<byte>();
        foreach (byte op in opcodes)
        {
            bool ok = op <= lastOp && op < opsLen && (*(ushort*)(probe + 16 + op * 8 + 2) & 1) != 0; // IO_URING_OP_SUPPORTED
            if (!ok) missing.Add(op);
        }
        return missing;
    }

    public static string OpName(byte op) => op switch
    {
        OpNop => "NOP",
        OpPollAdd => "POLL_ADD",
        OpSendMsg => "SENDMSG",
        OpRecvMsg => "RECVMSG",
        OpAsyncCancel => "ASYNC_CANCEL",
        OpRead => "READ",
        OpWrite => "WRITE",
        _ => $"op {op}",
    };

    public void Dispose()
    {
        if (_sqes != null) Native.Munmap(_sqes, _sqesSize);
        if (_cqRing != null) Native.Munmap(_cqRing, _cqRingSize);
        if (_sqRing != null) Native.Munmap(_sqRing, _sqRingSize);
        _sqes = null;
        _cqRing = _sqRing = null;
        int fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0) Native.Close(fd);
    }
}

/// <summary>An io_uring call the kernel refused, with its errno (the reason the data plane logs when it falls back).</summary>
public sealed class IoUringException(string call, int errno) : IOException($"{call}: {Native.Describe(errno)}")
{
    public int Errno { get; } = errno;
}

/// <summary>
/// Probes io_uring at start: io_uring_setup on a small ring, the EXT_ARG feature (timed waits, 5.11), and
/// IORING_REGISTER_PROBE for the opcodes the backend uses. Other kernels and seccomp profiles refuse some of it.
/// </summary>
public static class IoUringProbe
{
    private static readonly byte[] Needed = [IoUring.OpRead, IoUring.OpWrite, IoUring.OpPollAdd];

    /// <summary>True when the backend can run; <paramref name="detail"/> says what happened either way.</summary>
    public static bool Probe(out string detail)
    {
        IoUring ring;
        try
        {
            ring = IoUring.Create(4);
        }
        catch (IoUringException e)
        {
            detail = e.Message;
            return false;
        }
        using (ring)
        {
            if ((ring.Features & IoUring.FeatExtArg) == 0)
            {
                detail = $"io_uring_setup succeeded but the kernel lacks IORING_FEAT_EXT_ARG (features 0x{ring.Features:x}; needs Linux 5.11)";
                return false;
            }
            try
            {
                var missing = ring.MissingOpcodes(Needed);
                if (missing.Count > 0)
                {
                    detail = $"IORING_REGISTER_PROBE: kernel lacks {string.Join(", ", missing.Select(IoUring.OpName))}";
                    return false;
                }
            }
            catch (IoUringException e)
            {
                detail = e.Message;
                return false;
            }
            detail = $"io_uring_setup succeeded (features 0x{ring.Features:x}; READ, WRITE, POLL_ADD supported)";
            return true;
        }
    }
}
