using System.Collections.Concurrent;
using System.Runtime.InteropServices;

namespace Lisp.Appliance.Management;

/// <summary>
/// One background thread at the lowest CPU priority (nice 19, set per thread with setpriority on its own thread id)
/// that builds the management views: sorting and formatting a table snapshot takes ~0.5 µs per row, and on a node
/// whose control thread shares a core with it (a 1-core router, or the soak's pinned node) a pool thread doing that
/// at normal priority took turns with the control thread and set its p99 latency (~135 ms in the 30-minute soak).
/// At nice 19 the scheduler gives the control thread the core whenever it has work; the views wait instead.
/// Where the priority cannot be lowered (a container refusing setpriority), the builds still run, at normal
/// priority, and <see cref="LowPriority"/> says so.
/// </summary>
internal static partial class BackgroundBuilder
{
    private static readonly BlockingCollection<Action> Work = new();
    private static readonly Lazy<Thread> Worker = new(Start);
    private static volatile int s_niceResult = int.MinValue;

    /// <summary>True once the builder thread runs at nice 19 (false before it starts or where setpriority failed).</summary>
    public static bool LowPriority => s_niceResult == 0;

    /// <summary>Runs <paramref name="build"/> on the builder thread; the task carries its result or its exception.</summary>
    public static Task<T> Run<T>(Func<T> build)
    {
        _ = Worker.Value;
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        Work.Add(() =>
        {
            try
            {
                done.TrySetResult(build());
            }
            catch (Exception e)
            {
                done.TrySetException(e);   // the caller's await rethrows it: the HTTP request answers 500 and logs it
            }
        });
        return done.Task;
    }

    private static Thread Start()
    {
        var t = new Thread(Loop) { IsBackground = true, Name = "lisp-mgmt-build" };
        t.Start();
        return t;
    }

    private static void Loop()
    {
        // PRIO_PROCESS with a thread id sets that thread's nice value on Linux (threads are scheduled one by one).
        s_niceResult = SetPriority(0, (uint)GetTid(), 19);
        foreach (var action in Work.GetConsumingEnumerable()) action();
    }

    [LibraryImport("libc", EntryPoint = "setpriority", SetLastError = true)]
    private static partial int SetPriority(int which, uint who, int priority);

    [LibraryImport("libc", EntryPoint = "gettid")]
    private static partial int GetTid();
}
