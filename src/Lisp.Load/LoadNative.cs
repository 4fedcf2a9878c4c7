using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Lisp.DataPlane;

[assembly: InternalsVisibleTo("Lisp.Appliance.Tests")]

namespace Lisp.Load;

/// <summary>
/// What the load generator needs from libc beyond Lisp.DataPlane's <see cref="Native"/> (whose socket, sendmmsg /
/// recvmmsg and struct layouts it uses): receive timestamps, ppoll with a nanosecond timeout, clock_gettime.
/// [LibraryImport]s (source-generated marshalling, AOT clean); layouts are LP64 Linux (x86-64 and arm64 share them).
/// </summary>
internal static unsafe partial class LoadNative
{
    private const string Libc = "libc";

    public const int SOCK_NONBLOCK = 0x800;
    public const int SO_TIMESTAMPNS = 35;    // SO_TIMESTAMPNS_OLD: struct timespec with 64-bit fields on LP64
    public const int SCM_TIMESTAMPNS = 35;
    public const int MSG_TRUNC = 0x20;
    public const int ENOBUFS = 105;
    public const int CLOCK_REALTIME = 0;

    [StructLayout(LayoutKind.Sequential)]
    public struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [LibraryImport(Libc, EntryPoint = "ppoll", SetLastError = true)]
    public static partial int PPoll(Native.PollFd* fds, nuint count, TimeSpec* timeout, void* sigmask);

    [LibraryImport(Libc, EntryPoint = "clock_gettime")]
    public static partial int ClockGetTime(int clock, TimeSpec* time);

    /// <summary>CLOCK_REALTIME in nanoseconds: the clock SO_TIMESTAMPNS stamps received datagrams with.</summary>
    public static long RealtimeNs()
    {
        TimeSpec t;
        ClockGetTime(CLOCK_REALTIME, &t);
        return t.Seconds * 1_000_000_000L + t.Nanoseconds;
    }
}
