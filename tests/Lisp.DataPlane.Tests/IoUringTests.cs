using System.Diagnostics;
using System.Net;
using Lisp.DataPlane;
using Lisp.MapCache;
using Xunit;

namespace Lisp.DataPlane.Tests;

/// <summary>
/// The io_uring backend on real descriptors: the ring on a pipe, timed waits, the start-up probe and the
/// fallback selection, and <see cref="IoUringTun"/> on a TUN created inside a network namespace the test makes
/// (a dedicated thread setns()es into it, so the device and the sockets live there, not in the host namespace).
/// </summary>
[Collection("netns")]
public sealed unsafe class IoUringTests
{
    private static bool Available => IoUringProbe.Probe(out _);

    [SkippableFact]
    public void Ring_writes_and_reads_a_pipe_in_one_enter_each()
    {
        Skip.IfNot(Available, "io_uring is not usable here");
        int* fds = stackalloc int[2];
        Assert.Equal(0, Native.Pipe2(fds, Native.O_CLOEXEC | Native.O_NONBLOCK));
        using var ring = IoUring.Create(16);
        try
        {
            var data = new byte[3][];
            for (int i = 0; i < 3; i++) data[i] = Enumerable.Repeat((byte)(i + 1), 100 + i).ToArray();
            var cqes = new IoUring.Cqe[32];
            fixed (byte* a = data[0], b = data[1], c = data[2])
            {
                // Issued inline in submission order, so the pipe holds them in order.
                Assert.True(ring.Prep(IoUring.OpWrite, fds[1], a, 100, 10));
                Assert.True(ring.Prep(IoUring.OpWrite, fds[1], b, 101, 11));
                Assert.True(ring.Prep(IoUring.OpWrite, fds[1], c, 102, 12));
                Assert.Equal(3, ring.SubmitAndWait(3, 1000));
            }
            Assert.Equal(3, ring.Reap(cqes));
            Assert.Equal([100, 101, 102], cqes.Take(3).OrderBy(x => x.UserData).Select(x => x.Res));
            var buf = new byte[400];
            fixed (byte* p = buf)
            {
                Assert.True(ring.Prep(IoUring.OpRead, fds[0], p, 400, 7, IoUring.RWF_NOWAIT));
                Assert.Equal(1, ring.SubmitAndWait(1, 1000));
            }
            Assert.Equal(1, ring.Reap(cqes));
            Assert.Equal(303, cqes[0].Res);
            Assert.Equal(7ul, cqes[0].UserData);
            Assert.Equal(data[0].Concat(data[1]).Concat(data[2]), buf.Take(303));
            // Empty pipe, RWF_NOWAIT: completes at once with -EAGAIN (never parked on the buffer).
            fixed (byte* p = buf)
            {
                ring.Prep(IoUring.OpRead, fds[0], p, 400, 8, IoUring.RWF_NOWAIT);
                ring.SubmitAndWait(1, 1000);
            }
            Assert.Equal(1, ring.Reap(cqes));
            Assert.Equal(-Native.EAGAIN, cqes[0].Res);
            Assert.Equal(0u, ring.CqReady);
        }
        finally
        {
            Native.Close(fds[0]);
            Native.Close(fds[1]);
        }
    }

    [SkippableFact]
    public void Timed_wait_on_an_idle_fd_returns_ETIME_in_time()
    {
        Skip.IfNot(Available, "io_uring is not usable here");
        int* fds = stackalloc int[2];
        Assert.Equal(0, Native.Pipe2(fds, Native.O_CLOEXEC | Native.O_NONBLOCK));
        try
        {
            using var ring = IoUring.Create(8);
            var s = ring.GetSqe();
            s->Opcode = IoUring.OpPollAdd;
            s->Fd = fds[0];
            s->OpFlags = (uint)Native.POLLIN;
            s->UserData = 1;
            var sw = Stopwatch.StartNew();
            int r = ring.SubmitAndWait(1, 60);
            Assert.Equal(1, r); // the POLL_ADD was submitted; the wait itself ran out (ETIME is folded into the count)
            Assert.InRange(sw.ElapsedMilliseconds, 40, 2000);
            Assert.Equal(0u, ring.CqReady);
            byte one = 1;
            Assert.Equal(1, Native.Write(fds[1], &one, 1));
            Assert.Equal(0, ring.SubmitAndWait(1, 1000));
            Assert.Equal(1u, ring.CqReady);
        }
        finally
        {
            Native.Close(fds[0]);
            Native.Close(fds[1]);
        }
    }

    [SkippableFact]
    public void Probe_names_what_it_checked()
    {
        bool ok = IoUringProbe.Probe(out var detail);
        Skip.IfNot(ok, detail);
        Assert.Contains("READ, WRITE, POLL_ADD supported", detail);
        using var ring = IoUring.Create(4);
        Assert.Empty(ring.MissingOpcodes([IoUring.OpRead, IoUring.OpWrite, IoUring.OpPollAdd, IoUring.OpSendMsg]));
        Assert.Equal([(byte)250], ring.MissingOpcodes([IoUring.OpRead, 250]));
    }

    [Fact]
    public void Selection_forced_off_never_probes()
    {
        Assert.False(IoSelection.UseIoUring(IoMode.Syscalls, () => throw new InvalidOperationException("probed"), out var note));
        Assert.Contains("syscalls (configured", note);
    }

    [Theory]
    [InlineData(IoMode.Auto)]
    [InlineData(IoMode.IoUring)]
    public void Selection_falls_back_with_the_probe_reason(IoMode mode)
    {
        bool probes = mode == IoMode.IoUring || IoSelection.AutoPrefersIoUring;
        Assert.False(IoSelection.UseIoUring(mode, () => (false, "io_uring_setup: Operation not permitted (errno 1)"), out var note));
        if (probes)
        {
            Assert.Contains("falling back to syscalls", note);
            Assert.Contains("Operation not permitted (errno 1)", note);
        }
        else
        {
            Assert.Contains("\"auto\" picks syscalls", note);
        }
        Assert.Equal(probes, IoSelection.UseIoUring(mode, () => (true, "ok"), out note));
        Assert.Contains(probes ? "io: io_uring (ok)" : "io: syscalls", note);
    }

    [SkippableFact]
    public void Tun_in_a_namespace_reads_and_writes_batches_through_the_ring()
    {
        Skip.IfNot(Available, "io_uring is not usable here");
        using var ns = TestNamespace.Create();
        ns.Run(() =>
        {
            var tuns = LinuxTun.Open("ldpu0", 1);
            using var tun = tuns[0];
            using var ut = IoUringTun.Open(tun, 64);
            ns.Ip("addr add 10.9.0.1/24 dev ldpu0");
            ns.Ip("link set ldpu0 up");
            using var sock = UdpBatchSocket.OpenUdp(new IPEndPoint(IPAddress.Parse("10.9.0.1"), 7000), reusePort: false);

            // Host -> TUN: 200 datagrams from the namespace's socket to 10.9.0.2 (routed into the TUN), read in batches.
            using var tx = new PacketBatch(50, 1500);
            var idx = Enumerable.Range(0, 50).ToArray();
            for (int round = 0; round < 4; round++)
            {
                for (int i = 0; i < 50; i++)
                {
                    tx.Set(i, BitConverter.GetBytes(round * 50 + i));
                    tx.SetV4Address(i, 0x0a090002, 7001);
                }
                Assert.Equal(50, sock.Send(tx, idx));
            }
            using var rb = new PacketBatch(64, 1600);
            var seen = new List<int>();
            long entersBefore = ut.Enters;
            var sw = Stopwatch.StartNew();
            int batches = 0;
            while (seen.Count < 200 && sw.ElapsedMilliseconds < 5000)
            {
                int n = ut.ReadBatch(rb, 200);
                if (n > 0) batches++;
                for (int i = 0; i < n; i++)
                {
                    var p = rb.Packet(i);
                    if (p[0] >> 4 != 4 || p[9] != 17) continue; // e.g. IPv6 router solicitations
                    seen.Add(BitConverter.ToInt32(p.Slice(28)));
                }
            }
            Assert.Equal(Enumerable.Range(0, 200), seen); // every one, in order
            Assert.True(batches < 100, $"{batches} batches for 200 packets: reads were not batched");
            Assert.True(ut.Enters - entersBefore <= batches * 3 + 2, $"{ut.Enters - entersBefore} io_uring_enter calls for {batches} batches");

            // Idle: a read batch waits about its timeout and returns nothing.
            sw.Restart();
            while (ut.ReadBatch(rb, 0) > 0) { }
            sw.Restart();
            Assert.Equal(0, ut.ReadBatch(rb, 100));
            Assert.InRange(sw.ElapsedMilliseconds, 50, 3000);

            // TUN -> host: 40 UDP packets from 10.9.0.2 to the socket, written with one WriteBatch.
            using var wb = new PacketBatch(40, 1500);
            for (int i = 0; i < 40; i++) wb.Set(i, Packets.UdpV4("10.9.0.2", "10.9.0.1", 7001, 7000, 28 + 4 + i, fill: (byte)i));
            long e0 = ut.Enters;
            Assert.Equal(40, ut.WriteBatch(wb, Enumerable.Range(0, 40).ToArray()));
            Assert.Equal(1, ut.Enters - e0);
            using var got = new PacketBatch(64, 1500);
            var lengths = new List<int>();
            sw.Restart();
            while (lengths.Count < 40 && sw.ElapsedMilliseconds < 5000)
            {
                int n = sock.Receive(got, 200);
                for (int i = 0; i < n; i++) lengths.Add(got.Length[i]);
            }
            Assert.Equal(Enumerable.Range(4, 40), lengths);

            // A packet the device refuses (not IP) comes back as Length -1.
            wb.Set(0, new byte[] { 0, 1, 2, 3 });
            Assert.Equal(0, ut.WriteBatch(wb, [0]));
            Assert.Equal(-1, wb.Length[0]);
        });
    }

    [SkippableFact]
    public void Engine_picks_io_uring_or_falls_back_with_the_reason()
    {
        Skip.IfNot(Available, "io_uring is not usable here");
        using var ns = TestNamespace.Create();
        ns.Run(() =>
        {
            var o = new DataPlaneOptions { LocalRlocV4 = IPAddress.Loopback, DataPort = 14341 };
            var cache = new MapCacheWriter();
            foreach (var (mode, probe, uring, text) in new (IoMode, Func<(bool, string)>?, bool, string)[]
            {
                (IoMode.IoUring, null, true, "io: io_uring"),
                (IoMode.IoUring, () => (false, "io_uring_setup: Operation not permitted (errno 1)"), false, "falling back to syscalls (TUN read()/write() per packet, sendmmsg/recvmmsg): io_uring unusable: io_uring_setup: Operation not permitted (errno 1)"),
                (IoMode.Syscalls, null, false, "io: syscalls (configured"),
                (IoMode.Auto, null, IoSelection.AutoPrefersIoUring, IoSelection.AutoPrefersIoUring ? "io: io_uring" : "io: syscalls (io = \"auto\""),
            })
            {
                using var engine = DataPlaneEngine.Open(o, "ldpe0", 1, SendMode.Udp, cache.RegisterReader, new MissQueue(), io: mode, probe: probe);
                Assert.Equal(uring, engine.UsesIoUring);
                Assert.Contains(engine.Notes, n => n.Contains(text));
            }
        });
    }
}

/// <summary>A network namespace for one test, deleted on dispose; <see cref="Run"/> executes code on a thread inside it.</summary>
internal sealed unsafe class TestNamespace : IDisposable
{
    private static int _counter;

    public string Name { get; }

    private TestNamespace(string name) => Name = name;

    public static TestNamespace Create()
    {
        Skip.IfNot(Environment.UserName == "root" || NetnsTests.Sh("id -u").Out.Trim() == "0", "needs root for network namespaces");
        Skip.IfNot(File.Exists("/dev/net/tun"), "/dev/net/tun is missing");
        string name = $"ldpio{Environment.ProcessId % 100000}x{Interlocked.Increment(ref _counter)}";
        var r = NetnsTests.Sh($"ip netns add {name} && ip -n {name} link set lo up");
        Skip.If(r.Code != 0, $"ip netns add failed: {r.Err.Trim()}");
        return new TestNamespace(name);
    }

    public void Ip(string args)
    {
        var r = NetnsTests.Sh($"ip -n {Name} {args}");
        if (r.Code != 0) throw new InvalidOperationException($"ip {args}: {r.Err}");
    }

    /// <summary>Runs <paramref name="body"/> on a new thread that first joins this namespace (bounded: 60 s).</summary>
    public void Run(Action body)
    {
        Exception? failure = null;
        var t = new Thread(() =>
        {
            try
            {
                int fd = Native.Open($"/var/run/netns/{Name}", Native.O_CLOEXEC);
                if (fd < 0) throw new IOException($"open netns {Name}: {Native.Describe(Native.Errno)}");
                try
                {
                    if (Native.SetNs(fd, Native.CLONE_NEWNET) < 0) throw new IOException($"setns: {Native.Describe(Native.Errno)}");
                }
                finally
                {
                    Native.Close(fd);
                }
                body();
            }
            catch (Exception e)
            {
                failure = e;
            }
        }) { IsBackground = true, Name = "netns-" + Name };
        t.Start();
        if (!t.Join(TimeSpan.FromSeconds(60))) throw new TimeoutException($"test body in {Name} still running after 60 s");
        if (failure is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(failure).Throw();
    }

    public void Dispose() => NetnsTests.Sh($"ip netns del {Name}");
}

/// <summary>The [data_plane] io key.</summary>
public sealed class IoConfigTests
{
    private const string Base = """
        [node]
        name = "x"
        roles = ["itr", "etr"]
        rlocs = ["192.0.2.1"]
        [mapping]
        map_servers = ["192.0.2.9"]
        map_resolvers = ["192.0.2.9"]
        key = "k"
        [[database]]
        eid = "[0]10.1.0.0/24"
        [data_plane]
        tun = "lisp0"

        """;

    [Theory]
    [InlineData("", "auto")]
    [InlineData("io = \"io_uring\"", "io_uring")]
    [InlineData("io = \"syscalls\"", "syscalls")]
    [InlineData("io = \"auto\"", "auto")]
    public void Io_key_parses(string line, string expected) =>
        Assert.Equal(expected, Lisp.Appliance.Config.ConfigLoader.Parse(Base + line).DataPlane!.Io);

    [Fact]
    public void Io_key_rejects_other_values()
    {
        var e = Assert.ThrowsAny<Exception>(() => Lisp.Appliance.Config.ConfigLoader.Parse(Base + "io = \"epoll\""));
        Assert.Contains("io", e.Message);
    }
}
