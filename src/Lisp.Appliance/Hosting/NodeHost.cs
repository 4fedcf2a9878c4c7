using System.Net;
using System.Threading.Channels;
using Lisp.Appliance.Config;
using Lisp.ControlPlane;
using Lisp.ControlPlane.Transport;
using Lisp.Decent.Push;
using Lisp.Decent;
using Lisp.Wire;

namespace Lisp.Appliance.Hosting;

/// <summary>
/// Runs one node's control plane: the UDP transport's receive threads feed a bounded queue, and one control
/// thread owns the <see cref="ControlNode"/> state machine (so roles need no locks), handling packets and
/// timer deadlines and carrying out the actions the roles return. Packets that arrive while the queue is full
/// are dropped and counted: a flood cannot grow memory or stall the receive threads.
/// </summary>
public sealed partial class NodeHost : IDisposable
{
    public const int QueueCapacity = 4096;

    private readonly NodeConfig _config;
    private readonly Log _log;
    private readonly Channel<ReceivedPacket> _queue;
    private readonly Channel<EidPrefix> _requests = Channel.CreateUnbounded<EidPrefix>();
    private readonly UdpControlTransport _transport;
    private readonly Thread _controlThread;
    private readonly CancellationTokenSource _stop = new();
    private long _queueDrops;
    private readonly PushIo? _push;
    // One wake-up signal for the control loop, set by whoever queues work (packets, lookups, management reads).
    // Not Channel.WaitToReadAsync per queue: each unanswered call leaves a waiter (and a token registration)
    // on the channel, so an idle loop polling three channels would pile them up turn after turn.
    private readonly SemaphoreSlim _wakeSignal = new(0);
    private int _wakePending;

    public NodeHost(NodeConfig config, IMappingSystem mappingSystem, Log log)
    {
        _config = config;
        _log = log;
        _transport = new UdpControlTransport(config.ControlEndpoints(), m => _log.Warn("transport", m));
        // A pull-mode map-server keeps each listen address's sets apart (one map-server node per address).
        Nodes = mappingSystem is PullMappingSystem pull && config.Has("map-server")
            ? ControlNodeSet.ForPull(config, pull, _transport.LocalEndpoints)
            : ControlNodeSet.Single(new ControlNode(PushIo.Adjust(BuildOptions(config, _transport.LocalEndpoints), config, mappingSystem), mappingSystem));
        _queue = Channel.CreateBounded<ReceivedPacket>(new BoundedChannelOptions(QueueCapacity)
        {
            // Wait, not DropWrite: with DropWrite TryWrite returns true while discarding the packet, so a full queue
            // dropped datagrams that no counter or log line saw. With Wait, TryWrite returns false when full
            // (it never waits) and EnqueueOrCount counts the drop.
            FullMode = BoundedChannelFullMode.Wait,
            SingleReader = true,
        });
        // A push-group member also has the group's data socket and multicast socket (PushIo).
        if (mappingSystem is PushMappingSystem push) _push = new PushIo(config, push, log, EnqueueOrCount);
        _controlThread = new Thread(ControlLoop) { IsBackground = true, Name = "lisp-control" };
    }

    /// <summary>The node with the ETR/ITR (or the only node); see <see cref="Nodes"/> for all of them.</summary>
    public ControlNode Node => Nodes.Primary;
    public ControlNodeSet Nodes { get; }
    public IReadOnlyList<IPEndPoint> LocalEndpoints => _transport.LocalEndpoints;
    public long QueueDrops => Interlocked.Read(ref _queueDrops);
    /// <summary>The roles' clock: monotonic, so a wall-clock step does not expire or immortalise soft state (issue 10, d).</summary>
    public TimeProvider Clock { get; } = new MonotonicClock();
    /// <summary>The push group's sockets (push mapping system only); the data plane hands it instance-id 0xffffff packets.</summary>
    public PushIo? Push => _push;

    public static ControlNodeOptions BuildOptions(NodeConfig c, IReadOnlyList<IPEndPoint> local)
    {
        var rlocs = c.Rlocs.Count > 0 ? c.Rlocs : c.Listen;
        string key = c.DecentPull?.Key ?? c.DecentPush?.Key ?? c.RegistrationKey;
        return new ControlNodeOptions
        {
            Name = c.Name,
            LocalEndpoints = local,
            MapServer = c.Has("map-server")
                ? new MapServerOptions
                {
                    Sites = c.Sites,
                    RegistrationTimeout = c.RegistrationTimeout,
                    MaxRegistrations = c.MaxRegistrations,
                    LogLevel = Log.ParseLevel(c.LogLevel),
                    // A pull-mode set must not vouch for EIDs another set may hold (spec/decent.md).
                    NegativePrefix = c.DecentPull is not null ? NegativePrefixPolicy.RequestedPrefix : NegativePrefixPolicy.LeastSpecificUncovered,
                }
                : null,
            MapResolver = c.Has("map-resolver") ? new MapResolverOptions() : null,
            Etr = c.Has("etr")
                ? new EtrOptions
                {
                    Database = c.Database.Select(d => d.Rlocs.Count > 0 ? d : d with { Rlocs = rlocs.Select(a => new LocatorRecord(new IpAddress(a))).ToList() }).ToList(),
                    Key = key,
                    Algorithm = c.Algorithm,
                    RegisterInterval = c.DecentPush?.RegisterInterval ?? c.RegisterInterval,
                    RecordTtl = c.RecordTtl,
                    WantMapNotify = c.WantMapNotify,
                    ProxyReply = c.ProxyReply,
                    MapReplyTtl = c.MapReplyTtl,
                }
                : null,
            Itr = c.Has("itr")
                ? new ItrOptions
                {
                    Rlocs = rlocs,
                    ControlPort = (ushort)c.ControlPort,
                    InitialRetransmit = c.RequestTimeout,
                    MaxTransmissions = c.RequestRetries,
                    ProbeInterval = c.RlocProbeInterval,
                    ProbeTimeout = c.RlocProbeTimeout,
                }
                : null,
        };
    }

    public void Start()
    {
        _transport.Start((payload, from, local) => EnqueueOrCount(new ReceivedPacket(payload, from, local)));
        string roles = string.Join(", ", NodeConfig.KnownRoles.Where(_config.Has));
        _log.Info("node-started", $"{_config.Name}: roles {roles}; mapping system {Node.MappingSystem.Name}; listening on {string.Join(", ", LocalEndpoints)}"
            + (Nodes.IsSplit ? $"; {Nodes.Servers.Count} map-server(s) with separate tables" : ""));
        _push?.Start();
        _controlThread.Start();
    }

    /// <summary>Asks the ITR to resolve an EID (thread-safe; handled on the control thread).</summary>
    public void RequestLookup(EidPrefix eid)
    {
        if (_requests.Writer.TryWrite(eid)) Wake();
    }

    /// <summary>Queues a received packet for the control loop; when the queue is full, counts and (rate-limited) logs the drop.</summary>
    private void EnqueueOrCount(ReceivedPacket packet)
    {
        if (_queue.Writer.TryWrite(packet))
        {
            Wake();
            return;
        }
        if (Interlocked.Increment(ref _queueDrops) % 1000 == 1)
        {
            _log.Warn("queue-full", $"control queue full ({QueueCapacity}); dropped {QueueDrops} packets so far");
        }
    }

    /// <summary>Wakes the control loop; cheap when it is already awake (one flag, at most one pending release).</summary>
    private void Wake()
    {
        if (Interlocked.Exchange(ref _wakePending, 1) == 0) _wakeSignal.Release();
    }

    /// <summary>Called on the control thread for each MapCacheChanged action (set before <see cref="Start"/>).</summary>
    public Action<MapCacheChanged>? MapCacheChangedHook { get; set; }

    private void ControlLoop()
    {
        var token = _stop.Token;
        TickAll();
        while (!token.IsCancellationRequested)
        {
            if (_push is not null) Execute(_push.AfterBatch(Node, Clock.GetUtcNow()), null);
            var now = Clock.GetUtcNow();
            var deadline = Nodes.NextDeadline ?? now.AddSeconds(1);
            var wait = deadline - now;
            if (wait > TimeSpan.FromSeconds(1)) wait = TimeSpan.FromSeconds(1);
            try
            {
                // A packet, a lookup request (e.g. a data-plane miss) or a management read wakes the loop. Always
                // wait (0 ms when a deadline has passed) so a pending signal is consumed, not left to pile up.
                _wakeSignal.Wait(wait > TimeSpan.Zero ? (int)Math.Ceiling(wait.TotalMilliseconds) : 0, token);
            }
            catch (OperationCanceledException)
            {
                break;
            }
            // Cleared before draining: work queued from here on sets it again and the next wait returns at once.
            Interlocked.Exchange(ref _wakePending, 0); // a full fence: the queue reads below must not move above it
            int handled = 0;
            while (handled < 256 && _queue.Reader.TryRead(out var packet))
            {
                var node = Nodes.Route(packet);
                Execute(node.Handle(packet, Clock.GetUtcNow()), LabelOf(node));
                handled++;
            }
            if (handled == 256) Wake(); // more are queued: come straight back after the timers have had their turn
            RunQueries(); // management reads (Management/NodeHostQueries.cs)
            while (_requests.Reader.TryRead(out var eid))
            {
                if (Nodes.ItrNode is { } itr) Execute(itr.Request(eid, Clock.GetUtcNow()), null);
                else _log.Warn("no-itr", $"lookup of {eid} asked for, but this node has no itr role");
            }
            TickAll();
        }
    }

    private void TickAll()
    {
        foreach (var (node, label) in Nodes.All) Execute(node.Tick(Clock.GetUtcNow()), label);
    }

    private string? LabelOf(ControlNode node)
    {
        foreach (var (n, label) in Nodes.All)
        {
            if (ReferenceEquals(n, node)) return label;
        }
        return null;
    }

    /// <param name="label">appended to the node's log lines, e.g. "(map-server 127.0.1.1:4342)" when a process runs several</param>
    private void Execute(IReadOnlyList<ControlAction> actions, string? label)
    {
        foreach (var a in actions)
        {
            switch (a)
            {
                case SendAction s:
                    if (_push?.TrySend(s) != true) _transport.Send(s.To, s.Payload, s.From);
                    break;
                case LogAction l:
                    _log.Write(l.Level, l.Event, label is null ? l.Message : $"{l.Message} ({label})");
                    break;
                case MapCacheChanged m:
                    MapCacheChangedHook?.Invoke(m); // the data plane mirrors these into its map-cache (DataPlaneHost)
                    break;
            }
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        if (_controlThread.IsAlive) _controlThread.Join(TimeSpan.FromSeconds(3));
        if (_push is not null)
        {
            // Leaving the group: TTL-0 Map-Registers to every member, then close the group's sockets.
            foreach (var a in _push.Leave(Node, Clock.GetUtcNow()))
            {
                if (a is SendAction s && !_push.TrySend(s)) _transport.Send(s.To, s.Payload, s.From);
            }
            _push.Dispose();
        }
        _transport.Dispose();
        _log.Info("node-stopped", $"{_config.Name}: {Nodes.TotalDrops} packets dropped, {QueueDrops} queue drops, {_transport.SendErrors} send errors");
    }
}
