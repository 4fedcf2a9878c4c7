namespace Lisp.DataPlane;

/// <summary>
/// An eventfd a thread can sleep on in poll(2) beside its sockets, and any other thread can set: a control shard
/// waits for "a datagram on my sockets, or work in my inbox, or my next timer", in one system call.
/// </summary>
public sealed unsafe class WakeSignal : IDisposable
{
    private int _fd;

    public WakeSignal()
    {
        _fd = Native.EventFd(0, Native.EFD_NONBLOCK | Native.EFD_CLOEXEC);
        if (_fd < 0) throw new IOException($"eventfd: {Native.Describe(Native.Errno)}");
    }

    public int Fd => _fd;

    /// <summary>Wakes the waiter (the counter only grows; one read clears it).</summary>
    public void Signal()
    {
        ulong one = 1;
        Native.Write(_fd, (byte*)&one, 8);
    }

    /// <summary>Clears the signal (after waking).</summary>
    public void Clear()
    {
        ulong v;
        Native.Read(_fd, (byte*)&v, 8);
    }

    /// <summary>
    /// Waits until one of <paramref name="fds"/> is readable or <paramref name="timeoutMs"/> passes (-1: no limit);
    /// returns how many are ready (0 on timeout or EINTR).
    /// </summary>
    public static int WaitReadable(ReadOnlySpan<int> fds, int timeoutMs)
    {
        var p = stackalloc Native.PollFd[fds.Length];
        for (int i = 0; i < fds.Length; i++) p[i] = new Native.PollFd { Fd = fds[i], Events = Native.POLLIN };
        int r = Native.Poll(p, (nuint)fds.Length, timeoutMs);
        return r < 0 ? 0 : r;
    }

    public void Dispose()
    {
        int fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0) Native.Close(fd);
    }
}
