using System.Net;
using System.Net.Sockets;
using Lisp.MapCache;

namespace Lisp.DataPlane;

/// <summary>How the ITR sends: raw IP sockets (per-flow UDP source port) or plain UDP sockets; Auto tries raw first.</summary>
public enum SendMode
{
    Auto,
    Raw,
    Udp,
}

/// <summary>How the workers do their TUN I/O: io_uring when the start-up probe allows (Auto), forced, or plain syscalls.</summary>
public enum IoMode
{
    Auto,
    IoUring,
    Syscalls,
}

/// <summary>Picks the I/O backend from the configured mode and the io_uring probe; the note is what the log says.</summary>
public static class IoSelection
{
    /// <summary>
    /// Whether "auto" uses io_uring (when the probe passes). False: in perf/RESULTS.md (data-plane section) the io_uring TUN
    /// backend was not faster than read()/write() per packet (64 B: about 5 % slower in each of 3 paired runs;
    /// 1400 B: within noise), because per-packet kernel work, not syscall entry, bounds the overlay there.
    /// io = "io_uring" selects it explicitly.
    /// </summary>
    public static bool AutoPrefersIoUring => false;

    /// <summary>True = use io_uring. <paramref name="probe"/> is called only when the mode may use io_uring.</summary>
    public static bool UseIoUring(IoMode mode, Func<(bool Ok, string Detail)> probe, out string note)
    {
        if (mode == IoMode.Syscalls)
        {
            note = "io: syscalls (configured io = \"syscalls\"): TUN read()/write() per packet, sendmmsg/recvmmsg";
            return false;
        }
        if (mode == IoMode.Auto && !AutoPrefersIoUring)
        {
            note = "io: syscalls (io = \"auto\" picks syscalls on this build: measured faster)";
            return false;
        }
        var (ok, detail) = probe();
        if (!ok)
        {
            note = $"io: falling back to syscalls (TUN read()/write() per packet, sendmmsg/recvmmsg): io_uring unusable: {detail}";
            return false;
        }
        note = $"io: io_uring ({detail}): TUN reads and writes batched, one io_uring_enter per batch; UDP side sendmmsg/recvmmsg";
        return true;
    }

    public static (bool Ok, string Detail) RealProbe() => (IoUringProbe.Probe(out var d), d);
}

/// <summary>
/// The data plane of one node: N worker pairs (an ITR thread on its own TUN queue and send sockets, and an
/// ETR thread per address family on its own SO_REUSEPORT socket), all reading the same map-cache snapshots
/// and posting to one miss queue. Threads are dedicated (not thread-pool) and named lisp-itr-N / lisp-etr-N.
/// With a <see cref="ControlHandoff"/>, the ETRs pass LISP-Decent control packets (instance-id 0xffffff) to it
/// and a lisp-etr-control thread hands them to the control plane: the engine is the data port's one owner.
/// </summary>
public sealed class DataPlaneEngine : IDisposable
{
    private readonly List<ItrWorker> _itrs = [];
    private readonly List<EtrWorker> _etrs = [];
    private readonly List<IDisposable> _owned = [];
    private readonly List<Thread> _threads = [];
    private readonly CancellationTokenSource _stop = new();

    /// <summary>Builds the engine over given parts (in-memory doubles in tests; real ones from <see cref="Open"/>).</summary>
    public DataPlaneEngine(DataPlaneOptions options, Func<MapCacheSnapshot> snapshot, MissQueue misses,
        IReadOnlyList<(ITun Tun, IBatchSender? V4, IBatchSender? V6)> itrs, IReadOnlyList<IBatchReceiver> etrs,
        IReadOnlyList<IDisposable>? owned = null, ControlHandoff? control = null, IReadOnlyList<ITun>? etrTuns = null, GleanQueue? gleans = null,
        EchoNonceTable? echo = null)
        : this(options, () => MapCacheReader.From(snapshot), misses, itrs, etrs, owned, control, etrTuns, gleans, echo)
    {
    }

    /// <param name="newReader">Gives each ITR and ETR worker its own map-cache reader (<see cref="MapCacheWriter.RegisterReader"/>).</param>
    public DataPlaneEngine(DataPlaneOptions options, Func<MapCacheReader> newReader, MissQueue misses,
        IReadOnlyList<(ITun Tun, IBatchSender? V4, IBatchSender? V6)> itrs, IReadOnlyList<IBatchReceiver> etrs,
        IReadOnlyList<IDisposable>? owned = null, ControlHandoff? control = null, IReadOnlyList<ITun>? etrTuns = null, GleanQueue? gleans = null,
        EchoNonceTable? echo = null)
    {
        Options = options;
        Gleans = gleans;
        Echo = echo;
        Misses = misses;
        Control = control;
        foreach (var (tun, v4, v6) in itrs) _itrs.Add(new ItrWorker(tun, newReader(), v4, v6, misses, options, echo: echo));
        for (int e = 0; e < etrs.Count; e++)
        {
            // Each ETR writes through its own TUN handle when given (an io_uring ring is single-threaded).
            var tunMap = new Dictionary<uint, ITun> { [options.InstanceId] = etrTuns?[e] ?? itrs[0].Tun };
            _etrs.Add(new EtrWorker(etrs[e], tunMap, options, control: control, reader: newReader(), misses: misses, gleans: gleans, echo: echo));
        }
        if (owned is not null) _owned.AddRange(owned);
    }

    public DataPlaneOptions Options { get; }
    public MissQueue Misses { get; }
    /// <summary>Where the ETRs post gleaning candidates (null: gleaning off).</summary>
    public GleanQueue? Gleans { get; }
    /// <summary>Echo-nonce state shared by the workers (null: echo-nonce off).</summary>
    public EchoNonceTable? Echo { get; }
    /// <summary>Where the ETRs send instance-id 0xffffff packets (null: they drop them as <see cref="DropReason.ControlUnclaimed"/>).</summary>
    public ControlHandoff? Control { get; }
    public IReadOnlyList<ItrWorker> Itrs => _itrs;
    public IReadOnlyList<EtrWorker> Etrs => _etrs;
    /// <summary>Lines describing how the engine was built (send mode, fallbacks, io_uring probe) for the log.</summary>
    public List<string> Notes { get; } = [];
    /// <summary>The TUN queues <see cref="Open"/> opened (empty for an engine built on other TUNs): their loss/reattach state and counters.</summary>
    public IReadOnlyList<LinuxTun> Tuns { get; private set; } = [];
    /// <summary>True when <see cref="Open"/> set the workers up on io_uring (false: syscalls, configured or fallen back).</summary>
    public bool UsesIoUring { get; private set; }
    /// <summary>What the kernel accepted of the offloads (<see cref="DataPlaneOptions.Offload"/>), for the log and `show status`.</summary>
    public TunOffloads Offloads { get; private set; } = TunOffloads.None;

    public DataPlaneCounters Counters => DataPlaneCounters.Sum(_itrs.Select(w => w.Counters).Concat(_etrs.Select(w => w.Counters)));

    /// <summary>
    /// Opens the real thing: <paramref name="workers"/> queues of TUN <paramref name="tunName"/>, raw (or UDP
    /// fallback) send sockets per worker and family, and UDP receive sockets on the data port.
    /// </summary>
    public static DataPlaneEngine Open(DataPlaneOptions o, string tunName, int workers, SendMode mode, Func<MapCacheReader> newReader, MissQueue misses,
        ControlHandoff? control = null, IoMode io = IoMode.Auto, Func<(bool Ok, string Detail)>? probe = null, GleanQueue? gleans = null, EchoNonceTable? echo = null)
    {
        var owned = new List<IDisposable>();
        var notes = new List<string>();
        var rings = new List<IDisposable>();
        try
        {
            bool uring = IoSelection.UseIoUring(io, probe ?? IoSelection.RealProbe, out var ioNote);
            // The io_uring TUN path reads and writes plain packets only: offloads need the syscall path.
            bool vnet = o.Offload && !uring;
            var offloadNotes = new List<string>();
            if (o.Offload && uring) offloadNotes.Add("offload: off: io = \"io_uring\" has no virtio-net header path (io = \"syscalls\" or \"auto\" has offloads)");
            var tuns = LinuxTun.Open(tunName, workers, offloadNotes, vnetHeader: vnet);
            owned.AddRange(tuns);
            // io_uring: one ring per ITR (reads) and per ETR (writes); any refusal here falls back as a whole.
            ITun[] itrTuns = [.. tuns];
            var etrTun = new List<ITun>();
            int etrCount = workers * ((Receives(o, AddressFamily.InterNetwork) ? 1 : 0) + (Receives(o, AddressFamily.InterNetworkV6) ? 1 : 0));
            if (uring)
            {
                try
                {
                    for (int w = 0; w < workers; w++) itrTuns[w] = Own(IoUringTun.Open(tuns[w], o.BatchSize), rings);
                    for (int e = 0; e < etrCount; e++) etrTun.Add(Own(IoUringTun.Open(tuns[e % workers], o.BatchSize), rings));
                }
                catch (IOException e)
                {
                    foreach (var r in rings) r.Dispose();
                    rings.Clear();
                    itrTuns = [.. tuns];
                    etrTun.Clear();
                    ioNote = $"io: falling back to syscalls (TUN read()/write() per packet, sendmmsg/recvmmsg): io_uring on the TUN refused: {e.Message}";
                }
            }
            notes.Add(ioNote);
            // Rings go first in the owned list: disposed before the TUN fds they use.
            owned.InsertRange(0, rings);
            var itrs = new List<(ITun, IBatchSender?, IBatchSender?)>();
            // send_mode = "auto": with TCP segmentation offload on the TUN, UDP sockets with UDP_SEGMENT (one sendmsg per
            // run of segments) carried 3.7x (IPv4 underlay) and 4.0x (IPv6) the TCP throughput of the raw-socket batch through
            // the overlay, and 2.3-2.6x its 64-byte packet rate (perf/RESULTS.md, issue 13);
            // without it, raw sockets (the ITR writes the outer header and the per-flow source port itself).
            bool tso = vnet && (tuns[0].OffloadFlags & (Native.TUN_F_TSO4 | Native.TUN_F_TSO6)) != 0;
            SendMode used = mode == SendMode.Auto && tso ? SendMode.Udp : mode;
            string? gsoRefused = null;
            for (int w = 0; w < workers; w++)
            {
                IBatchSender? v4 = o.LocalRlocV4 is { } a4 ? OpenSender(AddressFamily.InterNetwork, a4, ref used, notes, vnet, o.BatchSize, ref gsoRefused) : null;
                IBatchSender? v6 = o.LocalRlocV6 is { } a6 ? OpenSender(AddressFamily.InterNetworkV6, a6, ref used, notes, vnet, o.BatchSize, ref gsoRefused) : null;
                if (v4 is not null) owned.Add(v4);
                if (v6 is not null) owned.Add(v6);
                itrs.Add((itrTuns[w], v4, v6));
            }
            if (gsoRefused is not null) offloadNotes.Add($"offload: UDP GSO refused ({gsoRefused}); segments go out with sendmmsg");
            notes.Add(used == SendMode.Udp
                ? $"send mode: udp ({UdpSourcePorts} source ports per family, picked by flow hash{(gsoRefused is null && vnet ? ", UDP GSO" : "")}){(mode == SendMode.Auto && tso ? "; auto chose udp: TCP segmentation offload is on" : "")}"
                : "send mode: raw (per-flow outer UDP source port)");
            var etrs = new List<IBatchReceiver>();
            for (int w = 0; w < workers; w++)
            {
                // Bound to the wildcard address, so the ETR also takes data sent to any other local address.
                if (Receives(o, AddressFamily.InterNetwork)) etrs.Add(Own(UdpBatchSocket.OpenUdp(new IPEndPoint(IPAddress.Any, o.DataPort), bufferBytes: o.ReceiveBufferBytes), owned));
                if (Receives(o, AddressFamily.InterNetworkV6)) etrs.Add(Own(UdpBatchSocket.OpenUdp(new IPEndPoint(IPAddress.IPv6Any, o.DataPort), bufferBytes: o.ReceiveBufferBytes), owned));
            }
            if (etrs.FirstOrDefault() is UdpBatchSocket first)
            {
                int granted = first.ReceiveBufferBytes;
                notes.Add(granted >= 2L * o.ReceiveBufferBytes
                    ? $"etr: receive buffer {Mib(granted)} per socket (asked {Mib(o.ReceiveBufferBytes)}; the kernel doubles it)"
                    : $"etr: receive buffer {Mib(granted)} per socket, less than the {Mib(2L * o.ReceiveBufferBytes)} asked for " +
                      "(no CAP_NET_ADMIN to pass net.core.rmem_max): bursts may overflow it, counted as kernel-receive-drop");
            }
            bool gro = false;
            if (vnet)
            {
                foreach (var r in etrs)
                {
                    if (r is UdpBatchSocket u)
                    {
                        if (u.TryEnableGro(out var why)) gro = true;
                        else offloadNotes.Add($"offload: UDP GRO refused ({why}); one datagram per receive slot");
                    }
                }
            }
            var tun0 = tuns[0];
            var offloads = !vnet ? TunOffloads.None : new TunOffloads
            {
                VnetHeader = true,
                Checksum = (tun0.OffloadFlags & Native.TUN_F_CSUM) != 0,
                Tso4 = (tun0.OffloadFlags & Native.TUN_F_TSO4) != 0,
                Tso6 = (tun0.OffloadFlags & Native.TUN_F_TSO6) != 0,
                Uso = tun0.AcceptsUdpSegmentation,
                UdpGso = itrs.Any(t => t.Item2 is ISegmentSender { GsoEnabled: true } || t.Item3 is ISegmentSender { GsoEnabled: true }),
                UdpGro = gro,
                TcpCoalescing = true,
                UdpCoalescing = tun0.AcceptsUdpSegmentation,
            };
            offloads = offloads with { Notes = offloadNotes };
            var engine = new DataPlaneEngine(o, newReader, misses, itrs, etrs, owned, control, etrTun.Count == etrs.Count ? etrTun : null, gleans, echo);
            engine.Notes.AddRange(notes);
            engine.Notes.AddRange(offloadNotes);
            engine.Notes.Add(o.Offload ? $"offload: {offloads.Describe()}" : "offload: off (configured offload = \"off\")");
            engine.Offloads = offloads;
            engine.Tuns = tuns;
            engine.UsesIoUring = etrTun.Count > 0;
            return engine;
        }
        catch
        {
            foreach (var d in owned) d.Dispose();
            throw;
        }
    }

    private static string Mib(long bytes) => bytes % (1 << 20) == 0 ? $"{bytes >> 20} MiB" : $"{bytes / 1024} KiB";

    /// <summary>
    /// Whether <see cref="Open"/> binds an ETR socket (wildcard address, <see cref="DataPlaneOptions.DataPort"/>)
    /// for family <paramref name="f"/>: IPv4 when there is a local IPv4 RLOC or no IPv6 one, IPv6 when there is
    /// a local IPv6 RLOC. Anything else that wants the data port of that family must take it from the engine.
    /// </summary>
    public static bool Receives(DataPlaneOptions o, AddressFamily f) => f switch
    {
        AddressFamily.InterNetwork => o.LocalRlocV4 is not null || o.LocalRlocV6 is null,
        AddressFamily.InterNetworkV6 => o.LocalRlocV6 is not null,
        _ => false,
    };

    private static T Own<T>(T d, List<IDisposable> owned) where T : IDisposable
    {
        owned.Add(d);
        return d;
    }

    /// <summary>UDP sockets (each its own source port) per family per ITR worker in UDP send mode (<see cref="UdpSourcePortPool"/>).</summary>
    public const int UdpSourcePorts = 8;

    private static IBatchSender OpenSender(AddressFamily f, IPAddress local, ref SendMode mode, List<string> notes, bool gso, int batchSize, ref string? gsoRefused)
    {
        if (mode != SendMode.Udp)
        {
            try
            {
                return UdpBatchSocket.OpenRaw(f);
            }
            catch (IOException e) when (mode == SendMode.Auto)
            {
                notes.Add($"raw socket refused ({e.Message}); falling back to UDP sockets");
                mode = SendMode.Udp;
            }
        }
        var pool = UdpSourcePortPool.Open(local, UdpSourcePorts, batchSize, gso, out var why);
        gsoRefused ??= why;
        return pool;
    }

    public void Start()
    {
        var token = _stop.Token;
        for (int i = 0; i < _itrs.Count; i++)
        {
            var w = _itrs[i];
            _threads.Add(new Thread(() => w.Run(token)) { IsBackground = true, Name = $"lisp-itr-{i}" });
        }
        for (int i = 0; i < _etrs.Count; i++)
        {
            var w = _etrs[i];
            _threads.Add(new Thread(() => w.Run(token)) { IsBackground = true, Name = $"lisp-etr-{i}" });
        }
        if (Control is { } control) _threads.Add(new Thread(() => control.Run(token, Options.PollMs)) { IsBackground = true, Name = "lisp-etr-control" });
        foreach (var t in _threads) t.Start();
    }

    public void Dispose()
    {
        _stop.Cancel();
        foreach (var t in _threads) t.Join(TimeSpan.FromSeconds(2));
        foreach (var w in _itrs) w.Dispose();
        foreach (var w in _etrs) w.Dispose();
        foreach (var d in _owned) d.Dispose();
    }
}
