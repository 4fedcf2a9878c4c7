using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

using Lisp.DataPlane;

namespace Lisp.Load;

/// <summary>
/// One UDP socket driven with sendmmsg/recvmmsg, with fixed native send and receive slots (no allocation per
/// packet) and the kernel's receive timestamp (SO_TIMESTAMPNS) of every datagram. Owned by one thread: no
/// member is thread-safe, and none needs to be.
/// </summary>
public sealed unsafe class LoadSocket : IDisposable
{
    private const int AddressSize = 32;
    private const int ControlSize = 64;
    private int _fd;
    private readonly int _slots;
    private readonly int _slotSize;
    private byte* _sendBuffers, _recvBuffers, _sendNames, _recvNames, _control;
    private Native.MMsgHdr* _sendMsgs, _recvMsgs;
    private readonly byte[] _defaultName = new byte[AddressSize];
    private int _defaultNameLength;
    private readonly List<int> _failed = [];
    private Native.IoVec* _sendIov, _recvIov;
    private readonly int[] _sendLength;
    private readonly uint[] _sendNameLength;

    private LoadSocket(int fd, IPEndPoint local, int slots, int slotSize)
    {
        _fd = fd;
        Local = local;
        _slots = slots;
        _slotSize = slotSize;
        _sendLength = new int[slots];
        _sendNameLength = new uint[slots];
        RecvLength = new int[slots];
        RecvTimestampNs = new long[slots];
        nuint data = (nuint)slots * (nuint)slotSize;
        _sendBuffers = (byte*)NativeMemory.AllocZeroed(data);
        _recvBuffers = (byte*)NativeMemory.AllocZeroed(data);
        _sendNames = (byte*)NativeMemory.AllocZeroed((nuint)(slots * AddressSize));
        _recvNames = (byte*)NativeMemory.AllocZeroed((nuint)(slots * AddressSize));
        _control = (byte*)NativeMemory.AllocZeroed((nuint)(slots * ControlSize));
        _sendMsgs = (Native.MMsgHdr*)NativeMemory.AllocZeroed((nuint)slots, (nuint)sizeof(Native.MMsgHdr));
        _recvMsgs = (Native.MMsgHdr*)NativeMemory.AllocZeroed((nuint)slots, (nuint)sizeof(Native.MMsgHdr));
        _sendIov = (Native.IoVec*)NativeMemory.AllocZeroed((nuint)slots, (nuint)sizeof(Native.IoVec));
        _recvIov = (Native.IoVec*)NativeMemory.AllocZeroed((nuint)slots, (nuint)sizeof(Native.IoVec));
    }

    public IPEndPoint Local { get; }
    public int Slots => _slots;
    public int SlotSize => _slotSize;
    /// <summary>Length of each received datagram of the last <see cref="Receive"/>; -1 when cut short by the slot size.</summary>
    public int[] RecvLength { get; }
    /// <summary>Kernel receive time (CLOCK_REALTIME ns) of each received datagram; 0 when the kernel gave none.</summary>
    public long[] RecvTimestampNs { get; }
    /// <summary>Datagrams the kernel refused to send (errno other than EAGAIN/EINTR/ENOBUFS, or those after retries).</summary>
    public long SendErrors { get; private set; }
    public int LastErrno { get; private set; }

    /// <summary>A UDP socket bound to <paramref name="bind"/> (port 0 = ephemeral), non-blocking, receive timestamps on.</summary>
    public static LoadSocket Open(IPEndPoint bind, int slots, int slotSize, bool reusePort = false, int bufferBytes = 8 << 20)
    {
        bool v4 = bind.AddressFamily == AddressFamily.InterNetwork;
        int fd = Native.Socket(v4 ? Native.AF_INET : Native.AF_INET6,
            Native.SOCK_DGRAM | LoadNative.SOCK_NONBLOCK | Native.SOCK_CLOEXEC, Native.IPPROTO_UDP);
        if (fd < 0) throw new IOException($"socket(UDP): {Native.Describe(Native.Errno)}");
        try
        {
            Native.SetInt(fd, Native.SOL_SOCKET, Native.SO_REUSEADDR, 1);
            if (reusePort) Native.SetInt(fd, Native.SOL_SOCKET, Native.SO_REUSEPORT, 1);
            Native.SetInt(fd, Native.SOL_SOCKET, Native.SO_RCVBUF, bufferBytes);
            Native.SetInt(fd, Native.SOL_SOCKET, Native.SO_SNDBUF, bufferBytes);
            Native.SetInt(fd, Native.SOL_SOCKET, LoadNative.SO_TIMESTAMPNS, 1);
            if (!v4) Native.SetInt(fd, Native.IPPROTO_IPV6, Native.IPV6_V6ONLY, 1);
            Span<byte> sa = stackalloc byte[AddressSize];
            int len = UdpBatchSocket.WriteSockaddr(sa, bind);
            fixed (byte* p = sa)
            {
                if (Native.Bind(fd, p, (uint)len) < 0) throw new IOException($"bind {bind}: {Native.Describe(Native.Errno)}");
                uint got = AddressSize;
                Native.GetSockName(fd, p, &got);
            }
            var local = ReadSockaddr(sa) ?? bind;
            return new LoadSocket(fd, local, slots, slotSize);
        }
        catch
        {
            Native.Close(fd);
            throw;
        }
    }

    internal static IPEndPoint? ReadSockaddr(ReadOnlySpan<byte> sa)
    {
        int family = BinaryPrimitives.ReadUInt16LittleEndian(sa);
        int port = BinaryPrimitives.ReadUInt16BigEndian(sa.Slice(2));
        if (family == Native.AF_INET) return new IPEndPoint(new IPAddress(sa.Slice(4, 4)), port);
        if (family == Native.AF_INET6) return new IPEndPoint(new IPAddress(sa.Slice(8, 16)), port);
        return null;
    }

    public Span<byte> SendSlot(int i) => new(_sendBuffers + (nint)i * _slotSize, _slotSize);
    public Span<byte> RecvSlot(int i) => new(_recvBuffers + (nint)i * _slotSize, Math.Max(0, RecvLength[i]));

    /// <summary>Every send slot goes to <paramref name="destination"/> until changed.</summary>
    public void SetDestinationAll(IPEndPoint destination)
    {
        _defaultNameLength = UdpBatchSocket.WriteSockaddr(_defaultName, destination);
        RestoreDestination(_slots);
    }

    /// <summary>Send slots 0..count-1 go to the destination of <see cref="SetDestinationAll"/> again (after <see cref="ReplyTo"/>).</summary>
    public void RestoreDestination(int count)
    {
        for (int i = 0; i < count; i++)
        {
            _defaultName.CopyTo(new Span<byte>(_sendNames + i * AddressSize, AddressSize));
            _sendNameLength[i] = (uint)_defaultNameLength;
        }
    }

    /// <summary>The send slots the last <see cref="Send"/> could not hand to the kernel (each also counted in SendErrors).</summary>
    public IReadOnlyList<int> LastFailed => _failed;

    /// <summary>Send slot <paramref name="sendIndex"/> goes back to where received datagram <paramref name="recvIndex"/> came from.</summary>
    public void ReplyTo(int sendIndex, int recvIndex)
    {
        new Span<byte>(_recvNames + recvIndex * AddressSize, AddressSize).CopyTo(new Span<byte>(_sendNames + sendIndex * AddressSize, AddressSize));
        _sendNameLength[sendIndex] = _recvMsgs[recvIndex].Header.NameLength;
    }

    public void SetSendLength(int i, int length) => _sendLength[i] = length;

    /// <summary>Sends slots 0..count-1 with sendmmsg; returns how many the kernel took. A refused datagram is skipped and counted.</summary>
    public int Send(int count)
    {
        for (int k = 0; k < count; k++)
        {
            _sendIov[k].Base = _sendBuffers + (nint)k * _slotSize;
            _sendIov[k].Length = (nuint)_sendLength[k];
            ref var h = ref _sendMsgs[k].Header;
            h.Name = _sendNames + k * AddressSize;
            h.NameLength = _sendNameLength[k];
            h.Iov = &_sendIov[k];
            h.IovLength = 1;
            h.Control = null;
            h.ControlLength = 0;
            h.Flags = 0;
        }
        int sent = 0, done = 0, retries = 0;
        _failed.Clear();
        while (done < count)
        {
            int r = Native.SendMMsg(_fd, _sendMsgs + done, (uint)(count - done), 0);
            if (r > 0)
            {
                sent += r;
                done += r;
                continue;
            }
            int e = Native.Errno;
            if ((e == Native.EINTR || e == Native.EAGAIN || e == LoadNative.ENOBUFS) && retries++ < 64)
            {
                if (e != Native.EINTR) Thread.Yield();
                continue;
            }
            LastErrno = e;
            SendErrors++;
            _failed.Add(done);
            done++;
        }
        return sent;
    }

    /// <summary>Waits up to <paramref name="timeoutNs"/> for a datagram to read; true when one is there.</summary>
    public bool WaitReadable(long timeoutNs)
    {
        var pfd = new Native.PollFd { Fd = _fd, Events = Native.POLLIN };
        var ts = new LoadNative.TimeSpec { Seconds = timeoutNs / 1_000_000_000L, Nanoseconds = timeoutNs % 1_000_000_000L };
        return LoadNative.PPoll(&pfd, 1, &ts, null) > 0;
    }

    /// <summary>Reads what is queued (up to the slot count) without waiting; sets RecvLength/RecvTimestampNs; returns the count.</summary>
    public int Receive()
    {
        for (int k = 0; k < _slots; k++)
        {
            _recvIov[k].Base = _recvBuffers + (nint)k * _slotSize;
            _recvIov[k].Length = (nuint)_slotSize;
            ref var h = ref _recvMsgs[k].Header;
            h.Name = _recvNames + k * AddressSize;
            h.NameLength = AddressSize;
            h.Iov = &_recvIov[k];
            h.IovLength = 1;
            h.Control = _control + k * ControlSize;
            h.ControlLength = ControlSize;
            h.Flags = 0;
        }
        int r = Native.RecvMMsg(_fd, _recvMsgs, (uint)_slots, Native.MSG_DONTWAIT, null);
        if (r <= 0) return 0;
        for (int k = 0; k < r; k++)
        {
            ref var h = ref _recvMsgs[k].Header;
            RecvLength[k] = (h.Flags & LoadNative.MSG_TRUNC) != 0 ? -1 : (int)_recvMsgs[k].Length;
            RecvTimestampNs[k] = Timestamp(h.Control, (int)h.ControlLength);
        }
        return r;
    }

    /// <summary>Walks the control messages (struct cmsghdr: 8-byte length, level, type, data 8-aligned) for SCM_TIMESTAMPNS.</summary>
    private static long Timestamp(void* control, int length)
    {
        byte* p = (byte*)control;
        int off = 0;
        while (off + 16 <= length)
        {
            long len = *(long*)(p + off);
            int level = *(int*)(p + off + 8);
            int type = *(int*)(p + off + 12);
            if (len < 16 || off + len > length) break;
            if (level == Native.SOL_SOCKET && type == LoadNative.SCM_TIMESTAMPNS && len >= 32)
            {
                long sec = *(long*)(p + off + 16);
                long nsec = *(long*)(p + off + 24);
                return sec * 1_000_000_000L + nsec;
            }
            off += (int)((len + 7) & ~7L);
        }
        return 0;
    }

    public void Dispose()
    {
        int fd = Interlocked.Exchange(ref _fd, -1);
        if (fd < 0) return;
        Native.Close(fd);
        NativeMemory.Free(_sendBuffers);
        NativeMemory.Free(_recvBuffers);
        NativeMemory.Free(_sendNames);
        NativeMemory.Free(_recvNames);
        NativeMemory.Free(_control);
        NativeMemory.Free(_sendMsgs);
        NativeMemory.Free(_recvMsgs);
        NativeMemory.Free(_sendIov);
        NativeMemory.Free(_recvIov);
        _sendBuffers = _recvBuffers = _sendNames = _recvNames = _control = null;
        _sendMsgs = _recvMsgs = null;
        _sendIov = _recvIov = null;
    }
}
