using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

[assembly: InternalsVisibleTo("Lisp.DataPlane.Tests")]
[assembly: InternalsVisibleTo("Lisp.Load")]
[assembly: InternalsVisibleTo("Lisp.DataPlane.Bench")]

namespace Lisp.DataPlane;

/// <summary>
/// The few libc calls the data plane needs, as direct [LibraryImport]s (source-generated marshalling, no
/// reflection, AOT clean). Tmds.LibC 0.5.0 has no sendmmsg/recvmmsg wrappers and no TUN constants, so the
/// structs below are written out for LP64 Linux (x86-64 and arm64 share this layout).
/// </summary>
internal static unsafe partial class Native
{
    private const string Libc = "libc";

    public const int O_RDWR = 2;
    public const int O_NONBLOCK = 0x800;
    public const int O_CLOEXEC = 0x80000;
    public const int AF_INET = 2;
    public const int AF_INET6 = 10;
    public const int SOCK_DGRAM = 2;
    public const int SOCK_RAW = 3;
    public const int SOCK_CLOEXEC = 0x80000;
    public const int IPPROTO_IP = 0;
    public const int IPPROTO_UDP = 17;
    public const int IPPROTO_IPV6 = 41;
    public const int IPPROTO_RAW = 255;
    public const int SOL_SOCKET = 1;
    public const int SO_REUSEADDR = 2;
    public const int SO_SNDBUF = 7;
    public const int SO_RCVBUF = 8;
    public const int SO_REUSEPORT = 15;
    /// <summary>Like SO_RCVBUF but past net.core.rmem_max; needs CAP_NET_ADMIN.</summary>
    public const int SO_RCVBUFFORCE = 33;
    /// <summary>getsockopt: the socket's sk_meminfo words; word 8 (SK_MEMINFO_DROPS) counts datagrams the kernel dropped for it.</summary>
    public const int SO_MEMINFO = 55;
    public const int IP_HDRINCL = 3;
    public const int IP_MTU_DISCOVER = 10;
    public const int IP_PMTUDISC_DONT = 0;
    public const int IPV6_V6ONLY = 26;
    public const int IPV6_HDRINCL = 36;
    public const int UDP_NO_CHECK6_TX = 101;
    public const int UDP_NO_CHECK6_RX = 102;
    public const int MSG_DONTWAIT = 0x40;
    public const short POLLIN = 1;
    public const short POLLERR = 8, POLLHUP = 0x10, POLLNVAL = 0x20;
    public const int EINTR = 4;
    public const int EAGAIN = 11;
    public const int EBUSY = 16;

    // linux/if_tun.h
    public const uint TUNSETIFF = 0x400454ca;
    public const short IFF_TUN = 0x0001;
    public const short IFF_NO_PI = 0x1000;
    public const short IFF_MULTI_QUEUE = 0x0100;
    public const short IFF_VNET_HDR = 0x4000;
    /// <summary>_IOW('T', 208, unsigned int): which offloads the reader of the TUN accepts (TUN_F_* below).</summary>
    public const uint TUNSETOFFLOAD = 0x400454d0;
    /// <summary>_IOW('T', 216, int): the vnet header size (10 is the default; set it explicitly all the same).</summary>
    public const uint TUNSETVNETHDRSZ = 0x400454d8;
    public const uint TUN_F_CSUM = 0x01, TUN_F_TSO4 = 0x02, TUN_F_TSO6 = 0x04, TUN_F_TSO_ECN = 0x08, TUN_F_USO4 = 0x20, TUN_F_USO6 = 0x40;
    // linux/udp.h (level SOL_UDP = IPPROTO_UDP)
    public const int UDP_SEGMENT = 103;
    public const int UDP_GRO = 104;
    public const int EINVAL = 22;
    public const int IFNAMSIZ = 16;

    // Same numbers on x86-64 and arm64 (asm-generic table).
    public const long SYS_io_uring_setup = 425;
    public const long SYS_io_uring_enter = 426;
    public const long SYS_io_uring_register = 427;
    public const int PROT_READ = 1, PROT_WRITE = 2, MAP_SHARED = 1, MAP_POPULATE = 0x8000;
    public static readonly void* MapFailed = (void*)-1;

    [StructLayout(LayoutKind.Sequential)]
    public struct IoVec
    {
        public void* Base;
        public nuint Length;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct MsgHdr
    {
        public void* Name;
        public uint NameLength;
        public IoVec* Iov;
        public nuint IovLength;
        public void* Control;
        public nuint ControlLength;
        public int Flags;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct MMsgHdr
    {
        public MsgHdr Header;
        public uint Length;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    /// <summary>struct ifreq as TUNSETIFF reads it: 16-byte name, then a short of flags (padded to 40 bytes).</summary>
    [StructLayout(LayoutKind.Sequential, Size = 40)]
    public struct IfReqFlags
    {
        public fixed byte Name[IFNAMSIZ];
        public short Flags;
    }

    /// <summary>The interface index of <paramref name="name"/> in the calling thread's network namespace; 0 when there is none.</summary>
    [LibraryImport(Libc, EntryPoint = "if_nametoindex", StringMarshalling = StringMarshalling.Utf8)]
    public static partial uint IfNameToIndex(string name);

    [LibraryImport(Libc, EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Open(string path, int flags);

    [LibraryImport(Libc, EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport(Libc, EntryPoint = "read", SetLastError = true)]
    public static partial nint Read(int fd, byte* buffer, nuint count);

    [LibraryImport(Libc, EntryPoint = "write", SetLastError = true)]
    public static partial nint Write(int fd, byte* buffer, nuint count);

    [LibraryImport(Libc, EntryPoint = "ioctl", SetLastError = true)]
    public static partial int Ioctl(int fd, nuint request, void* arg);

    [LibraryImport(Libc, EntryPoint = "socket", SetLastError = true)]
    public static partial int Socket(int domain, int type, int protocol);

    [LibraryImport(Libc, EntryPoint = "bind", SetLastError = true)]
    public static partial int Bind(int fd, byte* address, uint length);

    [LibraryImport(Libc, EntryPoint = "getsockname", SetLastError = true)]
    public static partial int GetSockName(int fd, byte* address, uint* length);

    [LibraryImport(Libc, EntryPoint = "setsockopt", SetLastError = true)]
    public static partial int SetSockOpt(int fd, int level, int name, void* value, uint length);

    [LibraryImport(Libc, EntryPoint = "getsockopt", SetLastError = true)]
    public static partial int GetSockOpt(int fd, int level, int name, void* value, uint* length);

    [LibraryImport(Libc, EntryPoint = "writev", SetLastError = true)]
    public static partial nint Writev(int fd, IoVec* iov, int count);

    [LibraryImport(Libc, EntryPoint = "sendmsg", SetLastError = true)]
    public static partial nint SendMsg(int fd, MsgHdr* message, int flags);

    [LibraryImport(Libc, EntryPoint = "sendmmsg", SetLastError = true)]
    public static partial int SendMMsg(int fd, MMsgHdr* messages, uint count, int flags);

    [LibraryImport(Libc, EntryPoint = "recvmmsg", SetLastError = true)]
    public static partial int RecvMMsg(int fd, MMsgHdr* messages, uint count, int flags, void* timeout);

    [LibraryImport(Libc, EntryPoint = "poll", SetLastError = true)]
    public static partial int Poll(PollFd* fds, nuint count, int timeoutMs);

    [LibraryImport(Libc, EntryPoint = "syscall", SetLastError = true)]
    public static partial long Syscall6(long number, long a1, long a2, long a3, long a4, long a5, long a6);

    [LibraryImport(Libc, EntryPoint = "mmap", SetLastError = true)]
    public static partial void* Mmap(void* address, nuint length, int prot, int flags, int fd, long offset);

    [LibraryImport(Libc, EntryPoint = "munmap", SetLastError = true)]
    public static partial int Munmap(void* address, nuint length);

    [LibraryImport(Libc, EntryPoint = "setns", SetLastError = true)]
    public static partial int SetNs(int fd, int nstype);

    public const int CLONE_NEWNET = 0x40000000;

    [LibraryImport(Libc, EntryPoint = "eventfd", SetLastError = true)]
    public static partial int EventFd(uint initval, int flags);

    public const int EFD_NONBLOCK = 0x800, EFD_CLOEXEC = 0x80000;

    [LibraryImport(Libc, EntryPoint = "pipe2", SetLastError = true)]
    public static partial int Pipe2(int* fds, int flags);

    public static int SetInt(int fd, int level, int name, int value) => SetSockOpt(fd, level, name, &value, 4);

    public static int Errno => Marshal.GetLastPInvokeError();

    public static string Describe(int errno) => $"{Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})";
}
