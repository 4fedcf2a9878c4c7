using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace Lisp.Appliance.Hosting;

/// <summary>
/// The systemd notification protocol (sd_notify) without libsystemd: when $NOTIFY_SOCKET names an AF_UNIX datagram
/// socket (a path, or an abstract name starting with '@'), state lines are sent there as datagrams: READY=1 once the
/// node is up, RELOADING=1 with MONOTONIC_USEC at a reload's start and READY=1 when it is done, STOPPING=1 at
/// shutdown. With $WATCHDOG_USEC set (and $WATCHDOG_PID absent or this process), a thread sends WATCHDOG=1 every half
/// of it, but only while the control loop answers a ping (a stuck loop lets systemd's watchdog fire). Without
/// $NOTIFY_SOCKET every call does nothing.
/// </summary>
public sealed class SystemdNotify : IDisposable
{
    private readonly Socket? _socket;
    private readonly UnixDomainSocketEndPoint? _target;
    private readonly Log _log;
    private readonly object _sendLock = new();
    private Thread? _watchdog;
    private readonly CancellationTokenSource _stop = new();

    private SystemdNotify(Socket? socket, UnixDomainSocketEndPoint? target, Log log)
    {
        _socket = socket;
        _target = target;
        _log = log;
    }

    /// <summary>True when $NOTIFY_SOCKET was set and usable.</summary>
    public bool Enabled => _socket is not null;

    /// <summary>The watchdog period asked for by $WATCHDOG_USEC (null: none, or meant for another process).</summary>
    public static TimeSpan? WatchdogInterval()
    {
        if (!ulong.TryParse(Environment.GetEnvironmentVariable("WATCHDOG_USEC"), NumberStyles.None, CultureInfo.InvariantCulture, out ulong usec) || usec == 0) return null;
        var pid = Environment.GetEnvironmentVariable("WATCHDOG_PID");
        if (!string.IsNullOrEmpty(pid) && (!int.TryParse(pid, NumberStyles.None, CultureInfo.InvariantCulture, out int p) || p != Environment.ProcessId)) return null;
        return TimeSpan.FromTicks((long)Math.Min(usec * 10, long.MaxValue / 2));
    }

    /// <summary>Opens the socket $NOTIFY_SOCKET names; a missing variable gives a notifier that does nothing.</summary>
    public static SystemdNotify FromEnvironment(Log log)
    {
        var name = Environment.GetEnvironmentVariable("NOTIFY_SOCKET");
        if (string.IsNullOrEmpty(name)) return new SystemdNotify(null, null, log);
        if (name[0] is not ('/' or '@'))
        {
            log.Warn("sd-notify", $"NOTIFY_SOCKET '{name}' is neither a path nor an abstract socket name; not notifying");
            return new SystemdNotify(null, null, log);
        }
        try
        {
            // An abstract name: '@' stands for the leading NUL byte (UnixDomainSocketEndPoint does the same).
            var target = new UnixDomainSocketEndPoint(name[0] == '@' ? "\0" + name[1..] : name);
            var socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
            return new SystemdNotify(socket, target, log);
        }
        catch (Exception e) when (e is SocketException or ArgumentException)
        {
            log.Warn("sd-notify", $"cannot open a socket for NOTIFY_SOCKET {name}: {e.Message}; not notifying");
            return new SystemdNotify(null, null, log);
        }
    }

    /// <summary>Sends one notification (newline-separated assignments); false when it could not be sent.</summary>
    public bool Send(string state)
    {
        if (_socket is null) return false;
        try
        {
            lock (_sendLock) _socket.SendTo(Encoding.UTF8.GetBytes(state), SocketFlags.None, _target!);
            return true;
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            _log.Warn("sd-notify", $"sending '{state.Split('\n')[0]}' to NOTIFY_SOCKET failed: {e.Message}");
            return false;
        }
    }

    public void Ready(string status) => Send($"READY=1\nSTATUS={status}\nMAINPID={Environment.ProcessId}");

    public void Reloading() => Send($"RELOADING=1\nMONOTONIC_USEC={MonotonicMicroseconds().ToString(CultureInfo.InvariantCulture)}");

    /// <summary>STOPPING=1; the watchdog stops first (the control loop is about to stop answering).</summary>
    public void Stopping()
    {
        _stop.Cancel();
        _watchdog?.Join(TimeSpan.FromSeconds(2));
        Send("STOPPING=1");
    }

    /// <summary>CLOCK_MONOTONIC in microseconds (what systemd compares MONOTONIC_USEC with).</summary>
    public static ulong MonotonicMicroseconds()
    {
        // Stopwatch on Linux reads CLOCK_MONOTONIC in nanoseconds.
        long t = System.Diagnostics.Stopwatch.GetTimestamp();
        return (ulong)(t / (System.Diagnostics.Stopwatch.Frequency / 1_000_000));
    }

    /// <summary>
    /// Starts the watchdog thread when $WATCHDOG_USEC asks for one: every half period it asks <paramref name="alive"/>
    /// (bounded by the half period) and sends WATCHDOG=1 only when that says yes.
    /// </summary>
    public void StartWatchdog(Func<TimeSpan, bool> alive)
    {
        if (_socket is null || WatchdogInterval() is not { } period) return;
        var half = period / 2;
        if (half < TimeSpan.FromMilliseconds(10)) half = TimeSpan.FromMilliseconds(10);
        var token = _stop.Token;
        _watchdog = new Thread(() =>
        {
            long missed = 0;
            while (!token.WaitHandle.WaitOne(half))
            {
                if (alive(half)) Send("WATCHDOG=1");
                else if (missed++ % 10 == 0) _log.Error("watchdog", $"the control loop did not answer within {half.TotalMilliseconds:0} ms; not sending WATCHDOG=1");
            }
        }) { IsBackground = true, Name = "lisp-sd-watchdog" };
        _watchdog.Start();
        _log.Info("sd-notify", $"watchdog: WATCHDOG=1 every {half.TotalMilliseconds:0} ms while the control loop answers");
    }

    public void Dispose()
    {
        _stop.Cancel();
        _watchdog?.Join(TimeSpan.FromSeconds(2));
        _socket?.Dispose();
        _stop.Dispose();
    }
}
