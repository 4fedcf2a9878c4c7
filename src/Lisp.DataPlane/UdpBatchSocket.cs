using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Lisp.DataPlane;

/// <summary>Sends a batch of prepared packets (the slots named by an index list).</summary>
public interface IBatchSender : IDisposable
{
    /// <summary>
    /// True when each packet is a complete outer IP packet (raw socket: the ITR wrote IP + UDP + LISP);
    /// false when it is the UDP payload (LISP header + inner packet) and the kernel adds IP + UDP.
    /// </summary>
    bool WritesOuterIp { get; }

    /// <summary>Sends the slots in <paramref name="indices"/> to each slot's address; returns how many went out.</summary>
    int Send(PacketBatch batch, ReadOnlySpan<int> indices);
}

/// <summary>Receives a batch of UDP payloads (LISP header + inner packet) with their source addresses.</summary>
public interface IBatchReceiver : IDisposable
{
    /// <summary>
    /// Fills slots at <see cref="PacketBatch.Headroom"/>, waiting at most <paramref name="timeoutMs"/> for the
    /// first datagram; a datagram cut short by the slot size gets Length -1. Sets and returns Count.
    /// </summary>
    int Receive(PacketBatch batch, int timeoutMs);

    /// <summary>Datagrams the kernel dropped before we could read them (receive buffer full), since the socket opened; 0 where not known.</summary>
    long KernelDrops => 0;
}

/// <summary>
/// A UDP or raw IP socket driven with sendmmsg/recvmmsg: one system call per batch instead of one per packet.
/// Raw mode (SOCK_RAW/IPPROTO_RAW, header included) lets the ITR choose the outer UDP source port per flow
/// (RFC 9300 section 5.3 ECMP entropy); UDP mode is the fallback when raw sockets are not permitted (the
/// source port is then the socket's own).
/// </summary>
public sealed unsafe class UdpBatchSocket : IBatchSender, IBatchReceiver, ISegmentSender
{
    private const int MSG_TRUNC = 0x20;
    private int _fd;
    private readonly bool _ownsFd = true;
    private readonly int _addressLength;
    private Native.MMsgHdr* _messages;
    private Native.IoVec* _iov;
    private byte* _control;
    private int _capacity;
    // Per-message control buffer for the UDP_GRO cmsg: a cmsghdr (16 bytes on LP64) + an int, rounded up.
    private const int ControlBytes = 32;
    private const int CmsgHeader = 16;

    private UdpBatchSocket(int fd, AddressFamily family, bool raw)
    {
        _fd = fd;
        Family = family;
        WritesOuterIp = raw;
        _addressLength = PacketBatch.AddressLength(family);
    }

    private UdpBatchSocket(int fd, AddressFamily family, bool raw, bool ownsFd) : this(fd, family, raw) => _ownsFd = ownsFd;

    /// <summary>
    /// Batched I/O on a UDP socket someone else opened and closes (the control transport's sockets): several
    /// control shards each attach their own view and call recvmmsg/sendmmsg on the one descriptor, which the
    /// kernel allows from many threads; the packets are shared out among them.
    /// </summary>
    public static UdpBatchSocket Attach(int fd, AddressFamily family) => new(fd, family, raw: false, ownsFd: false);

    public AddressFamily Family { get; }
    public bool WritesOuterIp { get; }
    public int Fd => _fd;
    /// <summary>UDP_SEGMENT is usable: <see cref="SendSegments"/> sends a run of equal-sized datagrams in one sendmsg.</summary>
    public bool GsoEnabled { get; private set; }
    /// <summary>UDP_GRO is on: <see cref="Receive"/> may return several datagrams in one slot (their size in <see cref="PacketBatch.SegmentSize"/>).</summary>
    public bool GroEnabled { get; private set; }

    /// <summary>
    /// Probes UDP generic segmentation offload (Linux 4.18+): setting UDP_SEGMENT to 0 is accepted exactly when the kernel
    /// knows the option; the size itself is then given per sendmsg. An IPv6 socket must compute UDP checksums for GSO (the
    /// kernel refuses GSO with UDP_NO_CHECK6_TX), so the zero-checksum option is turned off on this socket.
    /// </summary>
    public bool TryEnableGso(out string? why)
    {
        why = null;
        if (WritesOuterIp)
        {
            why = "raw sockets have no UDP segmentation";
            return false;
        }
        if (Family == AddressFamily.InterNetworkV6) Native.SetInt(_fd, Native.IPPROTO_UDP, Native.UDP_NO_CHECK6_TX, 0);
        if (Native.SetInt(_fd, Native.IPPROTO_UDP, Native.UDP_SEGMENT, 0) != 0)
        {
            why = $"setsockopt UDP_SEGMENT: {Native.Describe(Native.Errno)}";
            if (Family == AddressFamily.InterNetworkV6) Native.SetInt(_fd, Native.IPPROTO_UDP, Native.UDP_NO_CHECK6_TX, 1);
            return false;
        }
        GsoEnabled = true;
        return true;
    }

    /// <summary>Turns on UDP generic receive offload (Linux 5.0+) on this receiving socket.</summary>
    public bool TryEnableGro(out string? why)
    {
        why = null;
        if (Native.SetInt(_fd, Native.IPPROTO_UDP, Native.UDP_GRO, 1) != 0)
        {
            why = $"setsockopt UDP_GRO: {Native.Describe(Native.Errno)}";
            return false;
        }
        GroEnabled = true;
        return true;
    }

    /// <summary>
    /// One sendmsg of <paramref name="data"/> to <paramref name="address"/> (a sockaddr of <see cref="PacketBatch.AddressSize"/>
    /// bytes) cut by the kernel into datagrams of <paramref name="segmentSize"/> bytes (the last may be shorter), with a
    /// UDP_SEGMENT control message. Returns the datagrams sent (all or none), or 0 with <see cref="LastErrno"/> set.
    /// </summary>
    public int SendSegments(ReadOnlySpan<byte> data, int segmentSize, byte* address, uint flow) => SendSegments(data, segmentSize, address);

    public int SendSegments(ReadOnlySpan<byte> data, int segmentSize, byte* address)
    {
        fixed (byte* p = data)
        {
            var iov = new Native.IoVec { Base = p, Length = (nuint)data.Length };
            return SendSegments(new ReadOnlySpan<Native.IoVec>(&iov, 1), data.Length, segmentSize, address);
        }
    }

    int ISegmentSender.SendSegments(ReadOnlySpan<Native.IoVec> iov, int bytes, int segmentSize, byte* address, uint flow) =>
        SendSegments(iov, bytes, segmentSize, address);

    /// <summary>One sendmsg of the gather list <paramref name="iov"/> (<paramref name="bytes"/> in all) as datagrams of <paramref name="segmentSize"/> bytes (UDP_SEGMENT).</summary>
    internal int SendSegments(ReadOnlySpan<Native.IoVec> iov, int bytes, int segmentSize, byte* address)
    {
        if (bytes == 0) return 0;
        int count = (bytes + segmentSize - 1) / segmentSize;
        // cmsghdr { size_t len; int level; int type; } then the u16 segment size (CMSG_LEN(2) = 18, CMSG_SPACE(2) = 24).
        byte* control = stackalloc byte[24];
        new Span<byte>(control, 24).Clear();
        *(nuint*)control = 18;
        *(int*)(control + 8) = Native.IPPROTO_UDP;
        *(int*)(control + 12) = Native.UDP_SEGMENT;
        *(ushort*)(control + 16) = (ushort)segmentSize;
        fixed (Native.IoVec* v = iov)
        {
            var h = new Native.MsgHdr
            {
                Name = address,
                NameLength = (uint)_addressLength,
                Iov = v,
                IovLength = (nuint)iov.Length,
                Control = count > 1 ? control : null,
                ControlLength = count > 1 ? 24u : 0u,
            };
            for (int tries = 0; tries < 8; tries++)
            {
                if (Native.SendMsg(_fd, &h, 0) >= 0) return count;
                int e = Native.Errno;
                if (e != Native.EINTR && e != Native.EAGAIN)
                {
                    LastErrno = e;
                    SendErrors++;
                    return 0;
                }
            }
        }
        SendErrors++;
        return 0;
    }

    /// <summary>Messages the kernel refused (errno other than EAGAIN/EINTR): skipped and counted.</summary>
    public long SendErrors { get; private set; }
    public int LastErrno { get; private set; }

    /// <summary>Socket buffers asked for by default: 4 MiB each way (the kernel doubles it).</summary>
    public const int DefaultBufferBytes = 4 << 20;

    /// <summary>UDP socket bound to <paramref name="bind"/>; SO_REUSEPORT so each worker can own one.</summary>
    public static UdpBatchSocket OpenUdp(IPEndPoint bind, bool reusePort = true, int bufferBytes = DefaultBufferBytes)
    {
        var family = bind.AddressFamily;
        int fd = Native.Socket(family == AddressFamily.InterNetwork ? Native.AF_INET : Native.AF_INET6, Native.SOCK_DGRAM | Native.SOCK_CLOEXEC, Native.IPPROTO_UDP);
        if (fd < 0) throw new IOException($"socket(UDP): {Native.Describe(Native.Errno)}");
        var s = new UdpBatchSocket(fd, family, raw: false);
        try
        {
            Native.SetInt(fd, Native.SOL_SOCKET, Native.SO_REUSEADDR, 1);
            if (reusePort) Native.SetInt(fd, Native.SOL_SOCKET, Native.SO_REUSEPORT, 1);
            SetReceiveBuffer(fd, bufferBytes);
            // The send side stays within net.core.wmem_max: a full send buffer makes sendmsg wait, it loses nothing.
            Native.SetInt(fd, Native.SOL_SOCKET, Native.SO_SNDBUF, bufferBytes);
            if (family == AddressFamily.InterNetworkV6)
            {
                Native.SetInt(fd, Native.IPPROTO_IPV6, Native.IPV6_V6ONLY, 1);
                // LISP over IPv6 uses zero UDP checksums (RFC 6935/6936): accept them, and send them in UDP mode.
                Native.SetInt(fd, Native.IPPROTO_UDP, Native.UDP_NO_CHECK6_RX, 1);
                Native.SetInt(fd, Native.IPPROTO_UDP, Native.UDP_NO_CHECK6_TX, 1);
            }
            else
            {
                // Let an oversized encapsulated packet leave as outer fragments (RFC 9300 section 7.1).
                Native.SetInt(fd, Native.IPPROTO_IP, Native.IP_MTU_DISCOVER, Native.IP_PMTUDISC_DONT);
            }
            Span<byte> sa = stackalloc byte[32];
            int len = WriteSockaddr(sa, bind);
            fixed (byte* p = sa)
            {
                if (Native.Bind(fd, p, (uint)len) < 0) throw new IOException($"bind {bind}: {Native.Describe(Native.Errno)}");
            }
            return s;
        }
        catch
        {
            s.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Asks for <paramref name="bytes"/> of receive buffer past net.core.rmem_max when the process may (CAP_NET_ADMIN,
    /// which the data plane has for its TUN), else up to that limit. Debian's limit is 208 KiB: at 10 Gbit/s
    /// that is 0.2 ms of UDP GRO runs, and a receive buffer of 8 MiB (the most a 4 MiB rmem_max allows) still overflowed
    /// when the ETR thread waited for a core: four TCP streams through the overlay on 2 cores lost 1,337 GRO buffers in 24 s
    /// and retransmitted 44,359 segments; at 32 MiB none were lost (issue 13).
    /// </summary>
    private static void SetReceiveBuffer(int fd, int bytes)
    {
        if (Native.SetInt(fd, Native.SOL_SOCKET, Native.SO_RCVBUFFORCE, bytes) < 0) Native.SetInt(fd, Native.SOL_SOCKET, Native.SO_RCVBUF, bytes);
    }

    /// <summary>The receive buffer the kernel granted (SO_RCVBUF: twice what was asked, for its bookkeeping), in bytes; -1 when unknown.</summary>
    public int ReceiveBufferBytes => GetInt(Native.SO_RCVBUF);

    private int GetInt(int name)
    {
        int v = 0;
        uint len = 4;
        return Native.GetSockOpt(_fd, Native.SOL_SOCKET, name, &v, &len) == 0 ? v : -1;
    }

    /// <summary>
    /// SK_MEMINFO_DROPS of this socket (SO_MEMINFO, Linux 4.6+): datagrams the kernel threw away for it, mostly because
    /// the receive buffer was full; one system call, so the ETR reads it between batches, not per datagram.
    /// </summary>
    public long KernelDrops
    {
        get
        {
            uint* words = stackalloc uint[9];
            uint len = 9 * 4;
            return Native.GetSockOpt(_fd, Native.SOL_SOCKET, Native.SO_MEMINFO, words, &len) == 0 && len >= 9 * 4 ? words[8] : 0;
        }
    }

    /// <summary>Raw IP socket (header included) for sending complete outer packets; throws IOException (EPERM without CAP_NET_RAW).</summary>
    public static UdpBatchSocket OpenRaw(AddressFamily family, int bufferBytes = DefaultBufferBytes)
    {
        int fd = Native.Socket(family == AddressFamily.InterNetwork ? Native.AF_INET : Native.AF_INET6, Native.SOCK_RAW | Native.SOCK_CLOEXEC, Native.IPPROTO_RAW);
        if (fd < 0) throw new IOException($"socket(SOCK_RAW, IPPROTO_RAW): {Native.Describe(Native.Errno)}");
        var s = new UdpBatchSocket(fd, family, raw: true);
        Native.SetInt(fd, Native.SOL_SOCKET, Native.SO_SNDBUF, bufferBytes);
        if (family == AddressFamily.InterNetworkV6 && Native.SetInt(fd, Native.IPPROTO_IPV6, Native.IPV6_HDRINCL, 1) < 0)
        {
            int e = Native.Errno;
            s.Dispose();
            throw new IOException($"setsockopt IPV6_HDRINCL: {Native.Describe(e)}");
        }
        return s;
    }

    /// <summary>The port the socket is bound to (0 for raw sockets).</summary>
    public int LocalPort
    {
        get
        {
            Span<byte> sa = stackalloc byte[32];
            uint len = 32;
            fixed (byte* p = sa)
            {
                if (Native.GetSockName(_fd, p, &len) < 0) return 0;
            }
            return BinaryPrimitives.ReadUInt16BigEndian(sa.Slice(2));
        }
    }

    internal static int WriteSockaddr(Span<byte> sa, IPEndPoint ep)
    {
        sa.Clear();
        if (ep.AddressFamily == AddressFamily.InterNetwork)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(sa, Native.AF_INET);
            BinaryPrimitives.WriteUInt16BigEndian(sa.Slice(2), (ushort)ep.Port);
            ep.Address.TryWriteBytes(sa.Slice(4, 4), out _);
            return 16;
        }
        BinaryPrimitives.WriteUInt16LittleEndian(sa, Native.AF_INET6);
        BinaryPrimitives.WriteUInt16BigEndian(sa.Slice(2), (ushort)ep.Port);
        ep.Address.TryWriteBytes(sa.Slice(8, 16), out _);
        BinaryPrimitives.WriteUInt32LittleEndian(sa.Slice(24), (uint)ep.Address.ScopeId);
        return 28;
    }

    private void Ensure(int capacity)
    {
        if (_capacity >= capacity) return;
        if (_messages != null)
        {
            NativeMemory.Free(_messages);
            NativeMemory.Free(_iov);
            NativeMemory.Free(_control);
        }
        _messages = (Native.MMsgHdr*)NativeMemory.AllocZeroed((nuint)capacity, (nuint)sizeof(Native.MMsgHdr));
        _iov = (Native.IoVec*)NativeMemory.AllocZeroed((nuint)capacity, (nuint)sizeof(Native.IoVec));
        _control = (byte*)NativeMemory.AllocZeroed((nuint)capacity, ControlBytes);
        _capacity = capacity;
    }

    public int Send(PacketBatch batch, ReadOnlySpan<int> indices)
    {
        if (indices.Length == 0) return 0;
        Ensure(batch.Capacity);
        int n = indices.Length;
        for (int k = 0; k < n; k++)
        {
            int i = indices[k];
            _iov[k].Base = batch.SlotPointer(i) + batch.Offset[i];
            _iov[k].Length = (nuint)batch.Length[i];
            ref var h = ref _messages[k].Header;
            h.Name = batch.AddressPointer(i);
            h.NameLength = (uint)_addressLength;
            h.Iov = &_iov[k];
            h.IovLength = 1;
            h.Control = null;
            h.ControlLength = 0;
            h.Flags = 0;
        }
        int sent = 0, done = 0, retries = 0;
        while (done < n)
        {
            int r = Native.SendMMsg(_fd, _messages + done, (uint)(n - done), 0);
            if (r > 0)
            {
                sent += r;
                done += r;
                continue;
            }
            int e = Native.Errno;
            if ((e == Native.EINTR || e == Native.EAGAIN) && retries++ < 8) continue;
            // The first remaining message failed (e.g. EMSGSIZE, ENETUNREACH): skip it and go on.
            LastErrno = e;
            SendErrors++;
            done++;
        }
        return sent;
    }

    public int Receive(PacketBatch batch, int timeoutMs)
    {
        batch.Count = 0;
        var pfd = new Native.PollFd { Fd = _fd, Events = Native.POLLIN };
        if (Native.Poll(&pfd, 1, timeoutMs) <= 0) return 0;
        return ReceiveReady(batch);
    }

    /// <summary>Takes what is queued now (recvmmsg, MSG_DONTWAIT), without waiting: 0 when nothing is (or another thread took it).</summary>
    public int ReceiveReady(PacketBatch batch)
    {
        batch.Count = 0;
        Ensure(batch.Capacity);
        int cap = batch.Capacity;
        for (int k = 0; k < cap; k++)
        {
            _iov[k].Base = batch.SlotPointer(k) + PacketBatch.Headroom;
            _iov[k].Length = (nuint)batch.MaxPacket;
            ref var h = ref _messages[k].Header;
            h.Name = batch.AddressPointer(k);
            h.NameLength = PacketBatch.AddressSize;
            h.Iov = &_iov[k];
            h.IovLength = 1;
            h.Control = GroEnabled ? _control + k * ControlBytes : null;
            h.ControlLength = GroEnabled ? (nuint)ControlBytes : 0;
            h.Flags = 0;
        }
        int r = Native.RecvMMsg(_fd, _messages, (uint)cap, Native.MSG_DONTWAIT, null);
        if (r <= 0) return 0;
        for (int k = 0; k < r; k++)
        {
            batch.Offset[k] = PacketBatch.Headroom;
            batch.Length[k] = (_messages[k].Header.Flags & MSG_TRUNC) != 0 ? -1 : (int)_messages[k].Length;
            batch.SegmentSize[k] = GroEnabled ? GroSize(ref _messages[k].Header) : 0;
        }
        batch.Count = r;
        return r;
    }

    /// <summary>The UDP_GRO cmsg of a received message: the size of each coalesced datagram (0 when the message is one datagram).</summary>
    private static int GroSize(ref Native.MsgHdr h)
    {
        // Walk the cmsgs the kernel wrote (ControlLength is now the bytes used); each is 8-byte aligned.
        byte* c = (byte*)h.Control;
        nuint used = h.ControlLength, at = 0;
        while (c != null && at + CmsgHeader <= used)
        {
            nuint len = *(nuint*)(c + at);
            if (len < CmsgHeader || at + len > used) break;
            if (*(int*)(c + at + 8) == Native.IPPROTO_UDP && *(int*)(c + at + 12) == Native.UDP_GRO && len >= CmsgHeader + 4)
                return *(int*)(c + at + CmsgHeader);
            at += (len + 7) & ~(nuint)7;
        }
        return 0;
    }

    public void Dispose()
    {
        int fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0 && _ownsFd) Native.Close(fd);
        if (_messages != null)
        {
            NativeMemory.Free(_messages);
            NativeMemory.Free(_iov);
            NativeMemory.Free(_control);
            _messages = null;
            _iov = null;
            _control = null;
        }
    }
}
