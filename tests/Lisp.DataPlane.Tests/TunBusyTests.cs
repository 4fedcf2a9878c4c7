using System.Diagnostics;
using Lisp.DataPlane;
using Xunit;

namespace Lisp.DataPlane.Tests;

/// <summary>
/// Opening a TUN device that another descriptor still holds (EBUSY): retried for a bounded time, reported, and
/// refused with a clear error when it stays busy. Runs in a namespace the test creates.
/// </summary>
[Collection("netns")]
public sealed class TunBusyTests
{
    [SkippableFact]
    public void A_device_released_while_we_wait_opens_and_the_wait_is_reported()
    {
        using var ns = TestNamespace.Create();
        ns.Run(() =>
        {
            var holder = LinuxTun.Open("ldpbusy0", 1)[0];
            // The releaser is started from this (namespaced) thread; closing a descriptor does not depend on it.
            var releaser = new Thread(() =>
            {
                Thread.Sleep(300);
                holder.Dispose();
            }) { IsBackground = true };
            var notes = new List<string>();
            var sw = Stopwatch.StartNew();
            releaser.Start();
            var tuns = LinuxTun.Open("ldpbusy0", 1, notes, TimeSpan.FromSeconds(10));
            sw.Stop();
            releaser.Join();
            using var tun = Assert.Single(tuns);
            Assert.True(sw.ElapsedMilliseconds >= 250, $"opened after {sw.ElapsedMilliseconds} ms, before the holder let go");
            var note = Assert.Single(notes);
            Assert.Matches(@"^TUN ldpbusy0 queue 0 was busy for \d+ ms", note);
        });
    }

    [SkippableFact]
    public void A_device_that_stays_busy_is_refused_with_the_reason()
    {
        using var ns = TestNamespace.Create();
        ns.Run(() =>
        {
            using var holder = LinuxTun.Open("ldpbusy1", 1)[0];
            var sw = Stopwatch.StartNew();
            var e = Assert.Throws<IOException>(() => LinuxTun.Open("ldpbusy1", 1, null, TimeSpan.FromMilliseconds(500)));
            Assert.Contains("TUNSETIFF ldpbusy1", e.Message);
            Assert.Contains("still busy after", e.Message);
            Assert.True(sw.ElapsedMilliseconds >= 450, $"gave up after {sw.ElapsedMilliseconds} ms");
            Assert.True(sw.ElapsedMilliseconds < 5000, $"took {sw.ElapsedMilliseconds} ms");
        });
    }
}
