using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace Lisp.DataPlane;

/// <summary>
/// The rtnetlink requests that set up the TUN (link MTU and up, addresses, routes), built as bytes with no I/O.
/// Why not the `ip` command: a static binary on a minimal image (satellite, router firmware) may have no `ip`, or
/// busybox's, which rejects `nodad` (issue 13). Every request asks for an acknowledgement, and each one is
/// idempotent (create-or-replace), so configuring a TUN again after a reattach or a restart does not fail on what
/// is already there.
/// <para>
/// Layouts (linux/netlink.h, linux/rtnetlink.h, linux/if_link.h, linux/if_addr.h; host byte order, which is little
/// endian on the x86-64 and arm64 targets; every header and attribute padded to 4 bytes):
/// <code>
/// nlmsghdr   u32 length (whole message) | u16 type | u16 flags | u32 sequence | u32 port id (0: kernel)
/// rtattr     u16 length (header + payload, unpadded) | u16 type | payload | pad to 4
/// ifinfomsg  u8 family | u8 pad | u16 device type | s32 ifindex | u32 flags | u32 change mask      (16 bytes)
/// ifaddrmsg  u8 family | u8 prefix length | u8 flags | u8 scope | u32 ifindex                       (8 bytes)
/// rtmsg      u8 family | u8 dst length | u8 src length | u8 tos | u8 table | u8 protocol | u8 scope
///            | u8 type | u32 flags                                                                  (12 bytes)
/// tcmsg      u8 family | u8 pad | u16 pad | s32 ifindex | u32 handle | u32 parent | u32 info            (20 bytes)
/// nlmsgerr   s32 error (0: the acknowledgement, else -errno) | the request's nlmsghdr ...
/// </code>
/// </para>
/// </summary>
public static class RtNetlinkMessages
{
    public const ushort NlmsgError = 2;
    public const ushort RtmNewLink = 16;
    public const ushort RtmNewAddr = 20;
    public const ushort RtmNewRoute = 24;
    public const ushort RtmNewQdisc = 36;

    public const ushort NlmFRequest = 0x1;
    public const ushort NlmFAck = 0x4;
    public const ushort NlmFReplace = 0x100;
    public const ushort NlmFCreate = 0x400;

    private const ushort IflaMtu = 4;
    private const ushort IflaGsoMaxSegs = 40;
    private const ushort IfaAddress = 1;
    private const ushort IfaLocal = 2;
    private const ushort IfaFlags = 8;
    private const ushort RtaDst = 1;
    private const ushort RtaOif = 4;
    private const ushort TcaKind = 1;
    /// <summary>TC_H_ROOT: the device's root qdisc (the one every transmit queue uses).</summary>
    private const uint TcHRoot = 0xFFFFFFFF;

    private const uint IffUp = 0x1;
    /// <summary>IFA_F_NODAD: the IPv6 address is usable at once, without duplicate address detection (a TUN has no neighbours).</summary>
    public const uint IfaFNoDad = 0x02;
    private const byte RtTableMain = 254;
    private const byte RtProtBoot = 3;
    private const byte RtScopeUniverse = 0;
    private const byte RtScopeLink = 253;
    private const byte RtnUnicast = 1;

    private const int HeaderLength = 16;

    /// <summary>RTM_NEWLINK on an existing device: set its MTU and bring it up.</summary>
    public static byte[] LinkUp(int ifindex, int mtu, uint sequence)
    {
        var w = new Writer(RtmNewLink, NlmFRequest | NlmFAck, sequence, 16 + Attribute(4));
        w.U8(0).U8(0).U16(0).S32(ifindex).U32(IffUp).U32(IffUp);
        w.AttrU32(IflaMtu, (uint)mtu);
        return w.Done();
    }

    /// <summary>
    /// RTM_NEWLINK on an existing device: the most segments the stack may put in one TSO super-packet for it
    /// (IFLA_GSO_MAX_SEGS, what `ip link set dev D gso_max_segs N` sends); flags untouched (change mask 0).
    /// </summary>
    public static byte[] SetGsoMaxSegments(int ifindex, int segments, uint sequence)
    {
        var w = new Writer(RtmNewLink, NlmFRequest | NlmFAck, sequence, 16 + Attribute(4));
        w.U8(0).U8(0).U16(0).S32(ifindex).U32(0).U32(0);
        w.AttrU32(IflaGsoMaxSegs, (uint)segments);
        return w.Done();
    }

    /// <summary>
    /// RTM_NEWQDISC, create or replace, on the device's root: the qdisc named <paramref name="kind"/> (what
    /// `tc qdisc replace dev D root noqueue` sends for "noqueue"); handle 0 lets the kernel pick one.
    /// </summary>
    public static byte[] ReplaceRootQdisc(int ifindex, string kind, uint sequence)
    {
        if (kind.Length is 0 or > 15 || !kind.All(c => char.IsAsciiLetterOrDigit(c) || c == '_')) throw new ArgumentException($"'{kind}' is not a qdisc kind", nameof(kind));
        Span<byte> name = stackalloc byte[kind.Length + 1]; // NUL-terminated, as tc sends it
        for (int i = 0; i < kind.Length; i++) name[i] = (byte)kind[i];
        var w = new Writer(RtmNewQdisc, NlmFRequest | NlmFAck | NlmFCreate | NlmFReplace, sequence, 20 + Attribute(name.Length));
        w.U8(0).U8(0).U16(0).S32(ifindex).U32(0).U32(TcHRoot).U32(0);
        w.Attr(TcaKind, name);
        return w.Done();
    }

    /// <summary>
    /// RTM_NEWADDR, create or replace: the address as local and peer address (what `ip addr add A/L dev D` sends),
    /// IPv6 without duplicate address detection.
    /// </summary>
    public static byte[] AddAddress(int ifindex, IPAddress address, int prefixLength, uint sequence)
    {
        var bytes = address.GetAddressBytes();
        bool v6 = address.AddressFamily == AddressFamily.InterNetworkV6;
        var w = new Writer(RtmNewAddr, NlmFRequest | NlmFAck | NlmFCreate | NlmFReplace, sequence,
            8 + 2 * Attribute(bytes.Length) + (v6 ? Attribute(4) : 0));
        w.U8(Family(address)).U8((byte)prefixLength).U8(v6 ? (byte)IfaFNoDad : (byte)0).U8(RtScopeUniverse).U32((uint)ifindex);
        w.Attr(IfaLocal, bytes);
        w.Attr(IfaAddress, bytes);
        if (v6) w.AttrU32(IfaFlags, IfaFNoDad);
        return w.Done();
    }

    /// <summary>RTM_NEWROUTE, create or replace: destination prefix out of the device, main table (`ip route replace P dev D`).</summary>
    public static byte[] ReplaceRoute(int ifindex, IPAddress destination, int prefixLength, uint sequence)
    {
        var bytes = destination.GetAddressBytes();
        bool v6 = destination.AddressFamily == AddressFamily.InterNetworkV6;
        bool hasDst = prefixLength > 0;
        var w = new Writer(RtmNewRoute, NlmFRequest | NlmFAck | NlmFCreate | NlmFReplace, sequence,
            12 + (hasDst ? Attribute(bytes.Length) : 0) + Attribute(4));
        // A route with no gateway is scoped to the link for IPv4 (as `ip` does); IPv6 routes are universal.
        w.U8(Family(destination)).U8((byte)prefixLength).U8(0).U8(0).U8(RtTableMain).U8(RtProtBoot).U8(v6 ? RtScopeUniverse : RtScopeLink).U8(RtnUnicast).U32(0);
        if (hasDst) w.Attr(RtaDst, bytes);
        w.AttrU32(RtaOif, (uint)ifindex);
        return w.Done();
    }

    /// <summary>
    /// Reads one reply message: true with <paramref name="error"/> 0 for the acknowledgement of request
    /// <paramref name="sequence"/>, or the errno it failed with; false when the bytes are not an NLMSG_ERROR for that
    /// request (other messages, truncated or malformed input: never read past the buffer).
    /// </summary>
    public static bool TryReadAck(ReadOnlySpan<byte> reply, uint sequence, out int error, out int consumed)
    {
        error = 0;
        consumed = 0;
        if (reply.Length < HeaderLength) return false;
        uint length = BinaryPrimitives.ReadUInt32LittleEndian(reply);
        if (length < HeaderLength || length > reply.Length) return false;
        consumed = (int)Math.Min((uint)reply.Length, (length + 3) & ~3u);
        ushort type = BinaryPrimitives.ReadUInt16LittleEndian(reply[4..]);
        uint seq = BinaryPrimitives.ReadUInt32LittleEndian(reply[8..]);
        if (type != NlmsgError || seq != sequence || length < HeaderLength + 4) return false;
        error = -BinaryPrimitives.ReadInt32LittleEndian(reply[HeaderLength..]);
        return true;
    }

    private static byte Family(IPAddress a) => a.AddressFamily == AddressFamily.InterNetworkV6 ? (byte)10 : (byte)2;

    private static int Attribute(int payload) => (4 + payload + 3) & ~3;

    private sealed class Writer
    {
        private readonly byte[] _b;
        private int _at;

        public Writer(ushort type, ushort flags, uint sequence, int body)
        {
            _b = new byte[HeaderLength + body];
            U32((uint)_b.Length).U16(type).U16(flags).U32(sequence).U32(0);
        }

        public Writer U8(byte v)
        {
            _b[_at++] = v;
            return this;
        }

        public Writer U16(ushort v)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(_b.AsSpan(_at), v);
            _at += 2;
            return this;
        }

        public Writer U32(uint v)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(_b.AsSpan(_at), v);
            _at += 4;
            return this;
        }

        public Writer S32(int v) => U32((uint)v);

        public void Attr(ushort type, ReadOnlySpan<byte> payload)
        {
            U16((ushort)(4 + payload.Length)).U16(type);
            payload.CopyTo(_b.AsSpan(_at));
            _at += (payload.Length + 3) & ~3;
        }

        public void AttrU32(ushort type, uint v)
        {
            Span<byte> p = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(p, v);
            Attr(type, p);
        }

        public byte[] Done() => _at == _b.Length ? _b : throw new InvalidOperationException($"netlink message sized {_b.Length}, written {_at}");
    }
}

/// <summary>
/// A NETLINK_ROUTE socket in the calling thread's network namespace that sends <see cref="RtNetlinkMessages"/>
/// requests one at a time and waits (bounded) for each acknowledgement; a refusal becomes an IOException with the
/// kernel's reason.
/// </summary>
public sealed unsafe class RtNetlinkSocket : IDisposable
{
    private const int AfNetlink = 16;
    private const int NetlinkRoute = 0;
    private readonly int _fd;
    private uint _sequence = (uint)Environment.TickCount;

    public RtNetlinkSocket()
    {
        _fd = Native.Socket(AfNetlink, Native.SOCK_RAW | Native.SOCK_CLOEXEC, NetlinkRoute);
        if (_fd < 0) throw new IOException($"cannot open a netlink socket: {Native.Describe(Native.Errno)}");
        // sockaddr_nl: u16 family, u16 pad, u32 port id (0: the kernel assigns one), u32 multicast groups (none).
        byte* address = stackalloc byte[12];
        new Span<byte>(address, 12).Clear();
        address[0] = AfNetlink;
        if (Native.Bind(_fd, address, 12) != 0)
        {
            int errno = Native.Errno;
            Native.Close(_fd);
            throw new IOException($"cannot bind a netlink socket: {Native.Describe(errno)}");
        }
    }

    public uint NextSequence() => ++_sequence;

    /// <summary>Sends a request built with <paramref name="sequence"/> and waits up to <paramref name="timeoutMs"/> for its acknowledgement.</summary>
    public void Request(byte[] message, uint sequence, string what, int timeoutMs = 3000)
    {
        fixed (byte* p = message)
        {
            if (Native.Write(_fd, p, (nuint)message.Length) != message.Length) throw new IOException($"{what}: netlink send failed: {Native.Describe(Native.Errno)}");
        }
        var buffer = new byte[8192];
        long deadline = Environment.TickCount64 + timeoutMs;
        while (true)
        {
            int left = (int)Math.Max(0, deadline - Environment.TickCount64);
            var fds = new Native.PollFd { Fd = _fd, Events = Native.POLLIN };
            int ready = Native.Poll(&fds, 1, left);
            if (ready < 0 && Native.Errno == Native.EINTR) continue;
            if (ready <= 0) throw new IOException($"{what}: no answer from the kernel within {timeoutMs} ms");
            nint n;
            fixed (byte* b = buffer) n = Native.Read(_fd, b, (nuint)buffer.Length);
            if (n < 0) throw new IOException($"{what}: netlink receive failed: {Native.Describe(Native.Errno)}");
            var rest = buffer.AsSpan(0, (int)n);
            while (rest.Length > 0)
            {
                bool ack = RtNetlinkMessages.TryReadAck(rest, sequence, out int error, out int consumed);
                if (ack)
                {
                    if (error != 0) throw new IOException($"{what}: {Native.Describe(error)}");
                    return;
                }
                if (consumed == 0) break;   // not a whole message: drop the rest of this datagram
                rest = rest[consumed..];
            }
            if (left == 0) throw new IOException($"{what}: no acknowledgement from the kernel within {timeoutMs} ms");
        }
    }

    public void Dispose() => Native.Close(_fd);
}
