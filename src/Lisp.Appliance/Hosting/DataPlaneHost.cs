using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Lisp.Appliance.Config;
using Lisp.ControlPlane;
using Lisp.DataPlane;
using Lisp.MapCache;
using Lisp.Wire;

namespace Lisp.Appliance.Hosting;

/// <summary>
/// Joins the data plane to a <see cref="NodeHost"/>: opens the TUN and the 4341 sockets, starts the worker
/// threads, mirrors the ITR's <see cref="MapCacheChanged"/> actions into a <see cref="MapCacheWriter"/> (on
/// the control thread, publishing a new snapshot per change) and forwards data-plane misses from the bounded,
/// rate-limited <see cref="MissQueue"/> to the ITR as lookup requests (handled on the control thread).
/// The data plane is the one owner of the data port: when the node is also a push-group member that takes
/// encapsulated Map-Registers (<see cref="PushIo.ReceivesFromDataPlane"/>), the ETRs hand it every instance-id
/// 0xffffff datagram through a bounded <see cref="ControlHandoff"/> instead of it binding a socket of its own.
/// </summary>
public sealed class DataPlaneHost : IDisposable
{
    private readonly DataPlaneConfig _config;
    private readonly NodeHost _host;
    private readonly Log _log;
    // Chunk recycling on: every reader of this writer's snapshots is a registered ITR worker (DataPlaneEngine.Open).
    private readonly MapCacheWriter _writer = new(new MapCacheOptions { RecycleChunks = true });
    private readonly MissQueue _misses;
    private readonly DataPlaneEngine _engine;
    private readonly Timer? _stats;
    private readonly List<Miss> _drained = [];
    private readonly Lock _drainLock = new();
    private string _lastStats = "";

    private DataPlaneHost(DataPlaneConfig config, NodeConfig node, NodeHost host, Log log)
    {
        _config = config;
        _host = host;
        _log = log;
        _misses = new MissQueue(capacity: 1024, ratePerSecond: config.MissRate, burst: 20);
        _gleanTtl = node.GleanTtl;
        _gleans = node.Glean ? new GleanQueue() : null;
        var options = BuildOptions(config, node);
        if (config.AcceptFrom == "known")
        {
            _filter = new DecapFilter(config.AcceptPrefixes.Select(p => (p.Address, p.Length)));
            _peers = node.MapServers.Concat(node.MapResolvers).Concat(node.DecentPush?.Members ?? [])
                .Select(e => RlocKey.From(e.Address)).Distinct().ToArray();
            _filter.Publish(_peers);
            options = options with { AcceptFrom = _filter };
        }
        var mode = config.SendMode switch { "raw" => SendMode.Raw, "udp" => SendMode.Udp, _ => SendMode.Auto };
        var control = host.Push is { ReceivesFromDataPlane: true } push ? new ControlHandoff(push.FromDataPlane, ControlQueueCapacity) : null;
        var io = config.Io switch { "io_uring" => IoMode.IoUring, "syscalls" => IoMode.Syscalls, _ => IoMode.Auto };
        _echo = config.EchoNonce
            ? new EchoNonceTable(new EchoNonceOptions { RequestInterval = config.EchoNonceInterval, Timeout = config.EchoNonceTimeout, Retry = config.EchoNonceRetry })
            : null;
        _engine = DataPlaneEngine.Open(options, config.Tun, config.Workers, mode, _writer.RegisterReader, _misses, control, io, gleans: _gleans, echo: _echo);
        _misses.OnPosted = DrainMisses;
        // TUN loss (issue 12 finding 9): each queue logs its loss once and its reattach; the worker backs off meanwhile.
        for (int q = 0; q < _engine.Tuns.Count; q++)
        {
            int queue = q;
            _engine.Tuns[q].Notify = (evt, message, warning) =>
            {
                if (warning) log.Warn(evt, $"queue {queue}: {message}");
                else log.Info(evt, $"queue {queue}: {message}");
                // A recreated device has none of the old one's settings: configure it again (create-or-replace, so
                // a second queue's reattach repeating it is harmless), off the worker thread that told us.
                if (evt == "tun-reopened" && config.ConfigureTun) ThreadPool.QueueUserWorkItem(_ => Reconfigure(), null);
            };
        }
        if (_gleans is not null) _gleans.OnPosted = DrainGleans;
        if (config.StatsInterval > TimeSpan.Zero) _stats = new Timer(_ => LogStats(false), null, config.StatsInterval, config.StatsInterval);
    }

    /// <summary>LISP-Decent control packets (instance-id 0xffffff) waiting for the push group at most; more are dropped and counted.</summary>
    public const int ControlQueueCapacity = 1024;

    /// <summary>The engine's settings for a [data_plane] section on this node.</summary>
    public static DataPlaneOptions BuildOptions(DataPlaneConfig config, NodeConfig node) =>
        new()
        {
            InstanceId = config.InstanceId,
            LocalRlocV4 = node.Rlocs.FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork),
            LocalRlocV6 = node.Rlocs.FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetworkV6),
            DataPort = (ushort)config.DataPort,
            UnderlayMtu = config.UnderlayMtu,
            MissPolicy = config.MissPolicy == "queue" ? MissPolicy.Queue : MissPolicy.Drop,
            HoldPackets = config.HoldPackets,
            HoldTime = config.HoldTime,
            BatchSize = config.BatchSize,
            MaxPacket = Math.Max(config.TunMtu, 1500) + 64,
            MapVersion = node.MapVersion,
            Offload = config.Offload != "off",
            ReceiveBufferBytes = config.ReceiveBuffer,
        };

    /// <summary>
    /// Whether this node's data plane (when [data_plane] is configured) binds UDP <paramref name="port"/> for
    /// family <paramref name="family"/>; if so, nothing else on the node may bind it, and control packets for
    /// it arrive through the engine's <see cref="ControlHandoff"/>.
    /// </summary>
    public static bool OwnsDataPort(NodeConfig node, AddressFamily family, int port) =>
        node.DataPlane is { } dp && dp.DataPort == port && DataPlaneEngine.Receives(BuildOptions(dp, node), family);

    public DataPlaneEngine Engine => _engine;
    public MapCacheWriter MapCache => _writer;
    /// <summary>The [data_plane] section this host runs (read-only).</summary>
    public DataPlaneConfig Config => _config;
    /// <summary>The bounded, rate-limited miss queue to the control plane (its counters are thread-safe).</summary>
    public MissQueue Misses => _misses;

    /// <summary>Opens and starts the data plane; throws IOException (with the system's reason) when the TUN or sockets cannot be opened.</summary>
    public static DataPlaneHost Start(DataPlaneConfig config, NodeConfig node, NodeHost host, Log log)
    {
        var dp = new DataPlaneHost(config, node, host, log);
        try
        {
            foreach (var note in dp._engine.Notes) log.Info("data-plane", note);
            if (config.ConfigureTun) dp.ConfigureTun();
            else
            {
                if (dp.GsoSegmentsWanted() is int segments)
                    log.Info("data-plane", $"configure_tun = false: `ip link set dev {config.Tun} gso_max_segs {segments}` lets each TCP super-packet leave in one UDP GSO send");
                if (config.TunQdisc == "noqueue")
                    log.Info("data-plane", $"configure_tun = false: `tc qdisc replace dev {config.Tun} root noqueue` saves a qdisc step per packet sent into the TUN");
            }
            host.MapCacheChangedHook = dp.OnMapCacheChanged;
            host.MapCacheTurnEndHook = dp.PublishIfChanged;
            dp._engine.Start();
            var o = dp._engine.Options;
            log.Info("data-plane-started", $"tun {config.Tun} iid {config.InstanceId}, {config.Workers} worker(s), data port {config.DataPort}, " +
                $"rlocs {o.LocalRlocV4?.ToString() ?? "-"} / {o.LocalRlocV6?.ToString() ?? "-"}, underlay mtu {config.UnderlayMtu}, miss policy {config.MissPolicy}" +
                (dp._engine.Control is not null ? "; instance-id 0xffffff (push-group Map-Registers) goes to the control plane" : "") +
                (config.EchoNonce ? $"; echo-nonce on (request every {config.EchoNonceInterval.TotalSeconds:0.###} s, timeout {config.EchoNonceTimeout.TotalSeconds:0.###} s, retry {config.EchoNonceRetry.TotalSeconds:0.###} s)" : "") +
                (node.Glean ? $"; gleaning on (TTL {node.GleanTtl.TotalSeconds:0.###} s)" : "") +
                (node.MapVersion != 0 ? $"; map-version {node.MapVersion}" : "") +
                (dp._filter is not null ? $"; accept_from known ({dp._peers.Length} configured peer(s), {config.AcceptPrefixes.Count} prefix(es) and the map-cache's RLOCs)" : ""));
            return dp;
        }
        catch
        {
            dp.Dispose();
            throw;
        }
    }

    /// <summary>
    /// MTU and link up, addresses (IPv6 without duplicate address detection), routes into the TUN: rtnetlink requests
    /// from the binary itself (no `ip` subprocess: a minimal image may have none, or busybox's without `nodad`), each
    /// create-or-replace, so a restart on a TUN already configured succeeds.
    /// </summary>
    private void Reconfigure()
    {
        try
        {
            ConfigureTun();
        }
        catch (IOException e)
        {
            _log.Warn("tun-configure-failed", $"{_config.Tun} reattached but not configured: {e.Message}");
        }
    }

    private void ConfigureTun()
    {
        int ifindex = (int)LinuxTun.InterfaceIndex(_config.Tun);
        if (ifindex == 0) throw new IOException($"TUN {_config.Tun}: no such device in this network namespace");
        using var nl = new RtNetlinkSocket();
        uint seq = nl.NextSequence();
        nl.Request(RtNetlinkMessages.LinkUp(ifindex, _config.TunMtu, seq), seq, $"TUN {_config.Tun}: mtu {_config.TunMtu} up");
        _log.Info("tun-configured", $"{_config.Tun}: mtu {_config.TunMtu}, up (netlink)");
        // Optional steps: a refusal is logged and the TUN works as before, only a little slower.
        void Optional(Func<uint, byte[]> build, string what, string done, string refusedEvent, string refusedConsequence)
        {
            uint s = nl.NextSequence();
            try
            {
                nl.Request(build(s), s, $"TUN {_config.Tun}: {what}");
                _log.Info("tun-configured", $"{_config.Tun}: {done}");
            }
            catch (IOException e)
            {
                _log.Warn(refusedEvent, $"{e.Message}; {refusedConsequence}");
            }
        }
        if (GsoSegmentsWanted() is int segments)
            Optional(s => RtNetlinkMessages.SetGsoMaxSegments(ifindex, segments, s), $"gso_max_segs {segments}",
                $"gso_max_segs {segments} (a TCP super-packet's segments leave in one UDP GSO send)",
                "tun-gso-segments-refused", "TCP super-packets keep the kernel's default size and leave in two UDP GSO sends");
        if (_config.TunQdisc == "noqueue")
            Optional(s => RtNetlinkMessages.ReplaceRootQdisc(ifindex, "noqueue", s), "root qdisc noqueue",
                "qdisc noqueue (packets go straight to the TUN's read queue)",
                "tun-qdisc-refused", "the TUN keeps the kernel's default qdisc");
        foreach (var a in _config.Addresses)
        {
            seq = nl.NextSequence();
            nl.Request(RtNetlinkMessages.AddAddress(ifindex, a.Address, a.Length, seq), seq, $"TUN {_config.Tun}: address {a}");
            _log.Info("tun-configured", $"{_config.Tun}: address {a}" + (a.Address.AddressFamily == AddressFamily.InterNetworkV6 ? " (no DAD)" : ""));
        }
        foreach (var r in _config.Routes)
        {
            seq = nl.NextSequence();
            nl.Request(RtNetlinkMessages.ReplaceRoute(ifindex, r.Address, r.Length, seq), seq, $"TUN {_config.Tun}: route {r}");
            _log.Info("tun-configured", $"{_config.Tun}: route {r}");
        }
    }

    /// <summary>The TUN's gso_max_segs that fits a TCP super-packet into one UDP GSO send, when TSO and UDP GSO are both on.</summary>
    private int? GsoSegmentsWanted() =>
        _engine.Offloads is { UdpGso: true } o && (o.Tso4 || o.Tso6) ? ItrWorker.SegmentsPerGsoSend(_config.UnderlayMtu) : null;

    private bool _changed;

    /// <summary>
    /// Control thread (shard 0), at the end of its turn: publish one snapshot for all the changes of the turn.
    /// Coalesced, not one rebuild per change: a Map-Reply batch or an expiry sweep of n entries costs one publish.
    /// </summary>
    private void PublishIfChanged()
    {
        if (_echo is not null) TickEchoNonce();
        if (_filterChanged)
        {
            _filterChanged = false;
            _filter!.Publish(_rlocUses.Keys.Concat(_peers));
        }
        if (!_changed) return;
        _changed = false;
        _writer.Publish();
    }

    /// <summary>Control thread: mirror one ITR map-cache change into the writer (published at the end of the turn).</summary>
    // ---- accept_from = "known": the map-cache's RLOCs (counted per entry that names them) and the configured peers,
    // published to the ETR workers' filter at the end of a control turn that changed the set.
    private readonly DecapFilter? _filter;
    private readonly RlocKey[] _peers = [];
    private readonly Dictionary<RlocKey, int> _rlocUses = [];
    private readonly Dictionary<EidPrefix, RlocKey[]> _entryRlocs = [];
    private bool _filterChanged;

    private void TrackRlocs(MapCacheChanged change)
    {
        if (_entryRlocs.Remove(change.Eid, out var old))
        {
            foreach (var r in old)
            {
                if (--_rlocUses[r] > 0) continue;
                _rlocUses.Remove(r);
                _filterChanged = true;
            }
        }
        if (change.Entry is not { IsNegative: false } entry) return;
        var now = entry.Locators.Where(l => l.Locator is IpAddress).Select(l => RlocKey.From(((IpAddress)l.Locator).Address)).Distinct().ToArray();
        if (now.Length == 0) return;
        _entryRlocs[change.Eid] = now;
        foreach (var r in now)
        {
            if (_rlocUses.TryGetValue(r, out int n)) _rlocUses[r] = n + 1;
            else
            {
                _rlocUses[r] = 1;
                _filterChanged = true;
            }
        }
    }

    private void OnMapCacheChanged(MapCacheChanged change)
    {
        if (_filter is not null) TrackRlocs(change);
        long expires = change.Entry?.ExpiresAt.UtcTicks ?? 0;
        if (change.Entry is null)
        {
            _writer.Remove(change.Eid);
        }
        else if (change.Entry.IsNegative)
        {
            _writer.AddOrReplaceNegative(change.Eid, change.Entry.Action, (uint)change.Entry.Ttl.TotalSeconds, expires);
        }
        else
        {
            var rlocs = change.Entry.Locators
                .Where(l => l.Locator is IpAddress)
                .Select(l => new RlocSpec(((IpAddress)l.Locator).Address, l.Priority, l.Weight, l.Reachable))
                .ToArray();
            _writer.AddOrReplace(change.Eid, rlocs, (uint)change.Entry.Ttl.TotalSeconds, expires, change.Entry.MapVersion);
        }
        _changed = true;
    }

    /// <summary>Worker thread, after a successful post: hand the queued misses to the ITR's request channel (non-blocking).</summary>
    private void DrainMisses()
    {
        if (!_drainLock.TryEnter()) return; // another worker is draining; its loop picks this one up
        try
        {
            _drained.Clear();
            _misses.Drain(_drained, 64);
            foreach (var m in _drained)
            {
                var inner = new IpAddress(m.Address);
                _host.RequestLookup(EidPrefix.Create(m.InstanceId, inner, inner.HostMaskLength));
            }
        }
        finally
        {
            _drainLock.Exit();
        }
    }

    // ---- Gleaning (RFC 9300 section 9; [etr] glean = true): ETR candidates -> the ITR role on the control thread.
    private readonly GleanQueue? _gleans;
    private readonly TimeSpan _gleanTtl;
    private readonly List<Glean> _gleaned = [];
    private readonly Lock _gleanLock = new();

    /// <summary>Worker thread, after a successful post: hand the queued gleaning candidates to the ITR (non-blocking).</summary>
    private void DrainGleans()
    {
        if (!_gleanLock.TryEnter()) return;
        try
        {
            _gleaned.Clear();
            _gleans!.Drain(_gleaned, 64);
            foreach (var g in _gleaned)
            {
                var eid = new IpAddress(g.Eid);
                _host.Glean(EidPrefix.Create(g.InstanceId, eid, eid.HostMaskLength), g.Rloc.Address, _gleanTtl);
            }
        }
        finally
        {
            _gleanLock.Exit();
        }
    }

    // ---- Echo-nonce (RFC 9300 section 10.1; [data_plane] echo_nonce = true): verdicts -> the writer's RLOC reachability.
    private readonly EchoNonceTable? _echo;
    private readonly List<EchoNonceChange> _echoChanges = [];
    private long _nextEchoTick;

    /// <summary>Control thread (shard 0), at most 10 times a second: echo-nonce timeouts and retries, applied to the map-cache.</summary>
    private void TickEchoNonce()
    {
        long now = Stopwatch.GetTimestamp();
        if (now < _nextEchoTick) return;
        _nextEchoTick = now + Stopwatch.Frequency / 10;
        _echoChanges.Clear();
        _echo!.Tick(now, _echoChanges);
        foreach (var c in _echoChanges)
        {
            var rloc = c.Rloc.ToAddress();
            _writer.SetReachability(rloc, c.Reachable);
            _changed = true;
            if (c.Reachable) _log.Info("echo-nonce-retry", $"rloc {rloc} marked reachable again: {c.Reason}");
            else _log.Warn("echo-nonce-down", $"rloc {rloc} marked unreachable: {c.Reason} ({_echo.Downs} so far)");
        }
    }

    /// <summary>Echo-nonce state (null when off), for the log and the management API.</summary>
    public EchoNonceTable? EchoNonce => _echo;

    private void LogStats(bool final)
    {
        string s = _engine.Counters.ToString();
        if (_echo is { } e) s += $"; echo-nonce requests {e.Requests}, echoes received {e.EchoesReceived}, echoes sent {e.EchoesSent}, down {e.Downs}, retries {e.Retries}, abandoned {e.Abandoned}";
        long losses = _engine.Tuns.Sum(t => t.Losses);
        if (losses > 0) s += $"; tun lost {losses}, reattached {_engine.Tuns.Sum(t => t.Reopens)}{(_engine.Tuns.Any(t => t.Lost) ? " (lost now)" : "")}";
        if (!final && s == _lastStats) return;
        _lastStats = s;
        string control = _engine.Control is { } c ? $"; control hand-off {c.Handled} handled, {c.Count} queued, {c.HandlerErrors} handler errors" : "";
        _log.Info(final ? "data-plane-stopped" : "data-plane-stats", $"{_config.Tun}: {s}; map-cache {_writer.Count} entries{control}");
    }

    public void Dispose()
    {
        _stats?.Dispose();
        _host.MapCacheChangedHook = null;
        _host.MapCacheTurnEndHook = null;
        _engine.Dispose();
        LogStats(true);
    }
}
