using System.Diagnostics;
using Lisp.DataPlane;
using Xunit;

namespace Lisp.DataPlane.Tests;

/// <summary>
/// Issue 12 finding 9: the TUN deleted under a reading worker (`ip link del`) is logged once, the reader backs off
/// (no busy loop: CPU over 2 s stays far below a core) and reattaches by name when the device is created again, and
/// reading resumes. Both TUN paths: read()/poll() and io_uring. Runs in a namespace the test creates.
/// </summary>
[Collection("netns")]
public sealed class TunLossTests
{
    [SkippableTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_deleted_tun_is_reported_once_backed_off_and_reattached(bool ioUring)
    {
        using var ns = TestNamespace.Create();
        ns.Run(() =>
        {
            const string name = "ldploss0";
            var tun = LinuxTun.Open(name, 1)[0];
            var events = new List<string>();
            tun.Notify = (evt, message, _) => { lock (events) events.Add($"{evt} {message}"); };
            ITun reader = tun;
            if (ioUring)
            {
                try { reader = IoUringTun.Open(tun, 64); }
                catch (IOException e) { tun.Dispose(); Skip.If(true, $"io_uring on the TUN refused: {e.Message}"); }
            }
            ns.Ip($"link set {name} up");
            ns.Ip($"addr add 10.77.0.1/24 dev {name}");
            using var batch = new PacketBatch(64, 2048);
            long reads = 0, packets = 0;
            int workerTid = 0;
            bool stop = false;
            var worker = new Thread(() =>
            {
                Volatile.Write(ref workerTid, gettid());
                while (!Volatile.Read(ref stop))
                {
                    int n = reader.ReadBatch(batch, 100);
                    Interlocked.Add(ref packets, n);
                    Interlocked.Increment(ref reads);
                }
            }) { IsBackground = true, Name = "tun-loss-reader" };
            worker.Start();
            try
            {
                ns.Ip($"link del {name}");
                Assert.True(SpinWait.SpinUntil(() => tun.Lost, 3000), "the loss was not noticed");
                Thread.Sleep(200);

                // Backing off, not spinning: the reader thread's own reads and CPU over 2 s (the thread's, not the
                // process's: other test classes run in parallel in this process).
                double cpu0 = ThreadCpuSeconds(Volatile.Read(ref workerTid));
                long reads0 = Interlocked.Read(ref reads);
                Thread.Sleep(2000);
                double cpu = ThreadCpuSeconds(Volatile.Read(ref workerTid)) - cpu0;
                long spins = Interlocked.Read(ref reads) - reads0;
                Assert.True(spins < 100, $"{spins} reads in 2 s while the TUN was gone");
                Assert.True(cpu < 0.5, $"{cpu:0.00} s CPU in 2 s while the TUN was gone");
                lock (events) Assert.Single(events, e => e.StartsWith("tun-lost ", StringComparison.Ordinal));
                Assert.Equal(1, tun.Losses);
                Assert.True(tun.ReopenFailures >= 2);

                // The operator creates the device again: the queue reattaches and reads what the host sends into it.
                ns.Ip($"tuntap add dev {name} mode tun");
                ns.Ip($"link set {name} up");
                ns.Ip($"addr add 10.77.0.1/24 dev {name}");
                Assert.True(SpinWait.SpinUntil(() => tun.Reopens == 1, 4000), "not reattached");
                long before = Interlocked.Read(ref packets);
                NetnsTests.Sh($"ip netns exec {ns.Name} ping -c 3 -i 0.2 -W 1 10.77.0.2");
                Assert.True(SpinWait.SpinUntil(() => Interlocked.Read(ref packets) > before, 3000), "nothing read after the reattach");
                lock (events)
                {
                    Assert.Single(events, e => e.StartsWith("tun-lost ", StringComparison.Ordinal));
                    Assert.Single(events, e => e.StartsWith("tun-reopened ", StringComparison.Ordinal));
                }
                Assert.False(tun.Lost);
            }
            finally
            {
                Volatile.Write(ref stop, true);
                worker.Join(5000);
                if (!ReferenceEquals(reader, tun)) reader.Dispose();
                tun.Dispose();
            }
        });
    }

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    private static extern int gettid();

    /// <summary>utime + stime of one thread of this process (/proc/self/task/TID/stat, fields 14 and 15, in clock ticks of 1/100 s).</summary>
    private static double ThreadCpuSeconds(int tid)
    {
        string stat = File.ReadAllText($"/proc/self/task/{tid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        // fields[0] is field 3 (state): utime and stime are fields 14 and 15.
        return (long.Parse(fields[11], System.Globalization.CultureInfo.InvariantCulture) + long.Parse(fields[12], System.Globalization.CultureInfo.InvariantCulture)) / 100.0;
    }
}
