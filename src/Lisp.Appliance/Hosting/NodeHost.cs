using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Lisp.Appliance.Config;
using Lisp.ControlPlane;
using Lisp.ControlPlane.Transport;
using Lisp.DataPlane;
using Lisp.Decent.Push;
using Lisp.Decent;
using Lisp.Wire;

namespace Lisp.Appliance.Hosting;

/// <summary>
/// Runs one node's control plane on a pool of control shards (issue 10).
/// <code>
///   UDP 4342 sockets, one per listen address (UdpControlTransport binds them; nobody else reads them)
///        |  every shard polls every socket and its own eventfd; recvmmsg (MSG_DONTWAIT) on the shared
///        |  descriptor hands each datagram to exactly one shard
///        v
///   shard k:  decode once -> steering step ShardPlan.ShardOf(message): the EID's block hash for
///             Map-Register / Map-Notify-Ack / ECM Map-Request, shard 0 for everything else
///        |-- owned by k -> ControlNodeSet k (its roles, its slice of the map-server table) -> actions
///        `-- owned by j -> shard j's inbox (ConcurrentQueue, bounded, counted drops) + eventfd wake
///   actions:  sends batched per socket and flushed with sendmmsg before the shard sleeps; records a
///             Map-Register carries for other shards go to their inboxes as handoffs (HMAC checked once);
///             log lines to the log; map-cache changes to the data plane.
/// </code>
/// Thread ownership: shard k alone touches ControlNodeSet k (no lock on the per-packet path). Shard 0 also owns
/// the ETR, the ITR, the push group's I/O, operator lookups and management reads; a read parks the other shards
/// first (NodeHostQueries.cs), so it sees every slice. Shards share only thread-safe things: the counters
/// (Interlocked), the registration limits (Interlocked), the mapping system's published view, the log.
/// Timers run on a monotonic clock; a shard's turn costs O(due timers) (the map-server's heaps).
/// </summary>
public sealed partial class NodeHost : IDisposable
{
    /// <summary>Work items a shard's inbox holds at most; more are dropped and counted as queue drops.</summary>
    public const int QueueCapacity = 4096;
    private const int ReceiveBatch = 16;
    private const int SendBatch = 64;
    // Receive slots take any UDP datagram (a Map-Register may carry 255 records, ~10 KB, and loopback allows
    // 64 KB): 16 x 64 KB = 1 MB per shard. Send slots hold the usual reply (a few hundred bytes); a larger send
    // goes through the transport's socket call instead of the batch.
    private const int ReceiveSlotBytes = 65535;
    private const int SlotBytes = 9216;

    private NodeConfig _config;   // replaced by a config reload (NodeHostReload.cs)
    private readonly Log _log;
    private readonly UdpControlTransport _transport;
    private readonly IReadOnlyList<(int Fd, IPEndPoint Local)> _descriptors;
    private readonly ControlShard[] _shards;
    private readonly ShardPlan _plan;
    private readonly CancellationTokenSource _stop = new();
    private long _queueDrops, _truncated;
    private readonly PushIo? _push;

    /// <summary>One control shard: its thread, its node set, its inbox and its batches.</summary>
    private sealed class ControlShard(int index, ControlNodeSet nodes) : IDisposable
    {
        public readonly int Index = index;
        public readonly ControlNodeSet Nodes = nodes;
        public readonly ConcurrentQueue<object> Inbox = new();
        public readonly WakeSignal Wake = new();
        public int InboxCount;
        public int Sleeping;
        public Thread? Thread;
        public UdpBatchSocket[] Sockets = [];
        public PacketBatch? Receive;
        public PacketBatch[] Sends = [];
        public int[][] SendIndex = [];

        public void Dispose()
        {
            foreach (var s in Sockets) s.Dispose();
            Receive?.Dispose();
            foreach (var b in Sends) b.Dispose();
            Wake.Dispose();
        }
    }

    private sealed record PacketWork(ReceivedPacket Packet, ControlMessage? Message, WireStatus Status);
    private sealed record HandoffWork(MapServerHandoff Work);

    public NodeHost(NodeConfig config, IMappingSystem mappingSystem, Log log)
    {
        _config = config;
        _log = log;
        _transport = new UdpControlTransport(config.ControlEndpoints(), m => _log.Warn("transport", m));
        _descriptors = _transport.Descriptors;
        int shards = config.ControlThreads ?? Math.Clamp(Environment.ProcessorCount, 1, 16);
        if (!config.Has("map-server") || mappingSystem is PushMappingSystem)
        {
            if (config.ControlThreads > 1) log.Info("control-threads", $"control_threads = {config.ControlThreads} ignored: {(config.Has("map-server") ? "a push group member's I/O reads the whole table" : "no map-server role to shard")}; 1 control thread");
            shards = 1;
        }
        _plan = new ShardPlan(shards);
        var limits = new ConcurrentDictionary<string, RegistrationLimits>(StringComparer.Ordinal);
        var counters = new ConcurrentDictionary<string, ControlCounters>(StringComparer.Ordinal);
        _shards = new ControlShard[shards];
        for (int k = 0; k < shards; k++)
        {
            int index = k;
            ControlNodeOptions Shard(ControlNodeOptions o) => o.MapServer is null ? o : o with
            {
                MapServer = o.MapServer with { Shard = new ShardContext(_plan, index, limits.GetOrAdd(o.Name, _ => new RegistrationLimits())) },
                Etr = index == 0 ? o.Etr : null,
                Itr = index == 0 ? o.Itr : null,
            };
            ControlCounters CountersOf(string name) => counters.GetOrAdd(name, _ => new ControlCounters());
            // A pull-mode map-server keeps each listen address's sets apart (one map-server node per address).
            var set = mappingSystem is PullMappingSystem pull && config.Has("map-server")
                ? ControlNodeSet.ForPull(config, pull, _transport.LocalEndpoints, Shard, CountersOf, withXtr: index == 0)
                : ControlNodeSet.Single(NewNode(Shard(PushIo.Adjust(BuildOptions(config, _transport.LocalEndpoints), config, mappingSystem)), mappingSystem, CountersOf));
            _shards[k] = new ControlShard(k, set);
        }
        // Shard 0's map-servers answer `show` for the whole table (read while the other shards are parked).
        foreach (var (node, _) in _shards[0].Nodes.All)
        {
            if (node.MapServer is not { } ms) continue;
            ms.JoinShards(_shards.Skip(1).SelectMany(s => s.Nodes.All).Where(n => n.Node.Options.Name == node.Options.Name && n.Node.MapServer is not null)
                .Select(n => n.Node.MapServer!).ToList());
        }
        // A push-group member also has the group's data socket and multicast socket (PushIo).
        if (mappingSystem is PushMappingSystem push) _push = new PushIo(config, push, log, EnqueueOrCount);
    }

    private static ControlNode NewNode(ControlNodeOptions options, IMappingSystem mappingSystem, Func<string, ControlCounters> counters) =>
        new(options, mappingSystem, null, counters(options.Name));

    /// <summary>The node with the ETR/ITR (or the only node); see <see cref="Nodes"/> for all of them.</summary>
    public ControlNode Node => Nodes.Primary;
    /// <summary>Shard 0's nodes: every role, and (through its map-servers' siblings) every registration.</summary>
    public ControlNodeSet Nodes => _shards[0].Nodes;
    /// <summary>Control shards (threads) this node runs.</summary>
    public int ControlThreads => _shards.Length;
    public IReadOnlyList<IPEndPoint> LocalEndpoints => _transport.LocalEndpoints;
    public long QueueDrops => Interlocked.Read(ref _queueDrops);
    /// <summary>Datagrams longer than a receive slot (counted as malformed, truncated).</summary>
    public long Truncated => Interlocked.Read(ref _truncated);
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
            Admission = new RequestAdmissionOptions
            {
                RatePerSource = c.RequestRatePerSource,
                BurstPerSource = c.RequestBurstPerSource,
                AmplificationFactor = c.ReplyAmplificationLimit,
            },
            MapServer = c.Has("map-server")
                ? new MapServerOptions
                {
                    Sites = c.Sites,
                    RegistrationTimeout = c.RegistrationTimeout,
                    MaxRegistrations = c.MaxRegistrations,
                    MaxRegistrantsPerEid = c.MaxRegistrantsPerEid,
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
                    ProbeBudgetPerSecond = c.RlocProbeBudget,
                    MaxProbedLocatorsPerRecord = c.RlocProbeMaxLocators,
                    MaxTtl = c.ItrMaxTtl,
                }
                : null,
        };
    }

    public void Start()
    {
        string roles = string.Join(", ", NodeConfig.KnownRoles.Where(_config.Has));
        _log.Info("node-started", $"{_config.Name}: roles {roles}; mapping system {Node.MappingSystem.Name}; listening on {string.Join(", ", LocalEndpoints)}; {_shards.Length} control thread(s)"
            + (Nodes.IsSplit ? $"; {Nodes.Servers.Count} map-server(s) with separate tables" : ""));
        _push?.Start();
        foreach (var shard in _shards)
        {
            shard.Sockets = _descriptors.Select(d => UdpBatchSocket.Attach(d.Fd, d.Local.AddressFamily)).ToArray();
            shard.Receive = new PacketBatch(ReceiveBatch, ReceiveSlotBytes);
            shard.Sends = _descriptors.Select(_ => new PacketBatch(SendBatch, SlotBytes + PacketBatch.Headroom)).ToArray();
            shard.SendIndex = _descriptors.Select(_ => new int[SendBatch]).ToArray();
            var s = shard;
            shard.Thread = new Thread(() => ShardLoop(s)) { IsBackground = true, Name = $"lisp-control-{shard.Index}" };
            shard.Thread.Start();
        }
    }

    /// <summary>Asks the ITR to resolve an EID (thread-safe; handled on shard 0).</summary>
    public void RequestLookup(EidPrefix eid)
    {
        Post(_shards[0], (Action)(() =>
        {
            if (Nodes.ItrNode is { } itr) Execute(_shards[0], itr.Request(eid, Clock.GetUtcNow()), null);
            else _log.Warn("no-itr", $"lookup of {eid} asked for, but this node has no itr role");
        }), force: false);
    }

    /// <summary>Queues a packet from another source (the push group's sockets) to the shard that owns it; a full inbox counts a drop.</summary>
    private void EnqueueOrCount(ReceivedPacket packet)
    {
        var status = ControlMessage.TryDecode(packet.Payload, out var message);
        var work = new PacketWork(packet, status.IsOk ? message : null, status);
        Post(_shards[status.IsOk ? _plan.ShardOf(message!) : 0], work, force: false);
    }

    /// <summary>Puts work in a shard's inbox and wakes it if it sleeps. Drops (and counts) when the inbox is full, unless forced.</summary>
    private bool Post(ControlShard shard, object work, bool force)
    {
        if (Interlocked.Increment(ref shard.InboxCount) > QueueCapacity && !force)
        {
            Interlocked.Decrement(ref shard.InboxCount);
            if (Interlocked.Increment(ref _queueDrops) % 1000 == 1)
            {
                _log.Warn("queue-full", $"control shard {shard.Index} inbox full ({QueueCapacity}); dropped {QueueDrops} items so far");
            }
            return false;
        }
        shard.Inbox.Enqueue(work);
        // Enqueue publishes with a full fence; the shard sets Sleeping (Interlocked) before it looks at the inbox a last time.
        // One poster per sleep writes the eventfd (the others see Sleeping already cleared): one wake-up per batch, not per item.
        if (Volatile.Read(ref shard.Sleeping) == 1 && Interlocked.CompareExchange(ref shard.Sleeping, 0, 1) == 1) shard.Wake.Signal();
        return true;
    }

    /// <summary>Called on shard 0 for each MapCacheChanged action (set before <see cref="Start"/>).</summary>
    public Action<MapCacheChanged>? MapCacheChangedHook { get; set; }

    /// <summary>Called on shard 0 at the end of each turn, after the turn's MapCacheChanged calls (the data plane publishes then).</summary>
    public Action? MapCacheTurnEndHook { get; set; }

    private void ShardLoop(ControlShard shard)
    {
        var token = _stop.Token;
        // Every shard reads the sockets (measured: 211k replies/s with both reading vs 185k with shard 0 alone
        // steering for the other, 2 shards on 2 cores beside the generator, perf/RESULTS.md).
        Span<int> fds = stackalloc int[_descriptors.Count + 1];
        for (int i = 0; i < _descriptors.Count; i++) fds[i] = _descriptors[i].Fd;
        fds[^1] = shard.Wake.Fd;
        while (!token.IsCancellationRequested)
        {
            try
            {
                if (!Turn(shard, fds)) continue;
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // A host bug must not take the control plane down with it: say so loudly, count it, go on.
                Nodes.Primary.Counters.Drop(Lisp.ControlPlane.DropReason.HandlerFault);
                _log.Error("shard-fault", $"control shard {shard.Index}: {e.GetType().Name}: {e.Message}");
                Thread.Sleep(10);
            }
        }
        FlushSends(shard);
    }

    /// <summary>One turn of a shard: inbox, sockets, timers; sleeps when there was nothing. False when it did work (go again at once).</summary>
    private bool Turn(ControlShard shard, ReadOnlySpan<int> fds)
    {
        {
            int done = DrainInbox(shard, 512);
            for (int i = 0; i < shard.Sockets.Length; i++)
            {
                int n = shard.Sockets[i].ReceiveReady(shard.Receive!);
                for (int k = 0; k < n; k++) Received(shard, shard.Receive!, k, _descriptors[i].Local);
                done += n;
            }
            FlushSends(shard);
            if (shard.Index == 0 && _push is not null) Execute(shard, _push.AfterBatch(Node, Clock.GetUtcNow()), null);
            Tick(shard);
            if (shard.Index == 0) MapCacheTurnEndHook?.Invoke();
            FlushSends(shard);
            if (done > 0) return false;
            // With several shards, work handed over arrives in bursts a few microseconds apart: spin briefly before
            // sleeping, since a sleep and an eventfd wake-up per burst cost more than the burst's work (measured:
            // 2 shards went from 143k to 211k replies/s with this and one eventfd write per sleep).
            if (_shards.Length > 1 && SpinForInbox(shard)) return false;
            // Nothing to do: sleep until a datagram, inbox work, or the next timer (at most 1 s; 200 ms for a push
            // member, whose group I/O checks the table that often).
            Interlocked.Exchange(ref shard.Sleeping, 1);
            if (shard.Inbox.IsEmpty)
            {
                var now = Clock.GetUtcNow();
                var wait = (shard.Nodes.NextDeadline ?? now.AddSeconds(1)) - now;
                var cap = _push is not null && shard.Index == 0 ? TimeSpan.FromMilliseconds(200) : TimeSpan.FromSeconds(1);
                if (wait > cap) wait = cap;
                if (wait > TimeSpan.Zero) WakeSignal.WaitReadable(fds, (int)Math.Ceiling(wait.TotalMilliseconds));
            }
            Volatile.Write(ref shard.Sleeping, 0);
            shard.Wake.Clear();
            return true;
        }
    }

    private static bool SpinForInbox(ControlShard shard)
    {
        long until = System.Diagnostics.Stopwatch.GetTimestamp() + System.Diagnostics.Stopwatch.Frequency / 20_000; // 50 us
        var spin = new SpinWait();
        while (System.Diagnostics.Stopwatch.GetTimestamp() < until)
        {
            if (!shard.Inbox.IsEmpty) return true;
            spin.SpinOnce(sleep1Threshold: -1);
        }
        return false;
    }

    private int DrainInbox(ControlShard shard, int max)
    {
        int n = 0;
        while (n < max && shard.Inbox.TryDequeue(out var work))
        {
            Interlocked.Decrement(ref shard.InboxCount);
            n++;
            switch (work)
            {
                case PacketWork p:
                    Dispatch(shard, p.Packet, p.Message, p.Status);
                    break;
                case HandoffWork h:
                    var node = shard.Nodes.ServerFor(h.Work.Local);
                    Execute(shard, node.HandleHandoff(h.Work, Clock.GetUtcNow()), LabelOf(shard, node));
                    break;
                case Action a:
                    a();
                    break;
            }
        }
        return n;
    }

    /// <summary>The steering step for one received datagram: decode once, handle it here or hand it to its shard.</summary>
    private void Received(ControlShard shard, PacketBatch batch, int k, IPEndPoint local)
    {
        var from = batch.Address(k);
        if (from is null) return;
        if (batch.Length[k] < 0)
        {
            Interlocked.Increment(ref _truncated);
            Nodes.Primary.Counters.DropMalformed(WireError.Truncated);
            return;
        }
        var packet = new ReceivedPacket(batch.Packet(k).ToArray(), from, local);
        var status = ControlMessage.TryDecode(packet.Payload, out var message);
        int owner = status.IsOk ? _plan.ShardOf(message!) : 0;
        if (owner == shard.Index) Dispatch(shard, packet, status.IsOk ? message : null, status);
        else Post(_shards[owner], new PacketWork(packet, status.IsOk ? message : null, status), force: false);
    }

    private void Dispatch(ControlShard shard, ReceivedPacket packet, ControlMessage? message, WireStatus status)
    {
        var node = shard.Nodes.Route(packet, message);
        Execute(shard, node.Handle(packet, message, status, Clock.GetUtcNow()), LabelOf(shard, node));
    }

    private void Tick(ControlShard shard)
    {
        var now = Clock.GetUtcNow();
        if (shard.Nodes.NextDeadline is { } d && d > now) return;
        foreach (var (node, label) in shard.Nodes.All) Execute(shard, node.Tick(now), label);
    }

    private static string? LabelOf(ControlShard shard, ControlNode node)
    {
        foreach (var (n, label) in shard.Nodes.All)
        {
            if (ReferenceEquals(n, node)) return label;
        }
        return null;
    }

    /// <param name="label">appended to the node's log lines, e.g. "(map-server 127.0.1.1:4342)" when a process runs several</param>
    private void Execute(ControlShard shard, IReadOnlyList<ControlAction> actions, string? label)
    {
        foreach (var a in actions)
        {
            switch (a)
            {
                case SendAction s:
                    if (_push?.TrySend(s) != true) QueueSend(shard, s);
                    break;
                case LogAction l:
                    _log.Write(l.Level, l.Event, label is null ? l.Message : $"{l.Message} ({label})");
                    break;
                case MapCacheChanged m:
                    MapCacheChangedHook?.Invoke(m); // the data plane mirrors these into its map-cache (DataPlaneHost)
                    break;
                case ShardHandoffAction h:
                    // Handed-over records carry reserved slots and confirmed Map-Notify records: never dropped.
                    Post(_shards[h.Shard], new HandoffWork(h.Work), force: true);
                    break;
            }
        }
    }

    /// <summary>Batches a send on the socket of the local endpoint it is from (sendmmsg at the end of the turn); anything else goes through the transport.</summary>
    private void QueueSend(ControlShard shard, SendAction s)
    {
        int socket = -1;
        if (s.From is { } from)
        {
            for (int i = 0; i < _descriptors.Count; i++)
            {
                var l = _descriptors[i].Local;
                if (l.Address.Equals(from.Address) && (from.Port == 0 || from.Port == l.Port)) { socket = i; break; }
            }
        }
        if (socket < 0 || s.To.AddressFamily != _descriptors[socket].Local.AddressFamily || (s.To.AddressFamily == AddressFamily.InterNetworkV6 && s.To.Address.ScopeId != 0) || s.Payload.Length > SlotBytes)
        {
            _transport.Send(s.To, s.Payload, s.From);
            return;
        }
        var batch = shard.Sends[socket];
        if (batch.Count == batch.Capacity) Flush(shard, socket);
        int k = batch.Count++;
        batch.Set(k, s.Payload);
        Span<byte> address = stackalloc byte[16];
        s.To.Address.TryWriteBytes(address, out int n);
        if (n == 4) batch.SetV4Address(k, System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(address), (ushort)s.To.Port);
        else batch.SetV6Address(k, address[..16], (ushort)s.To.Port);
    }

    private void FlushSends(ControlShard shard)
    {
        for (int i = 0; i < shard.Sends.Length; i++) Flush(shard, i);
    }

    private void Flush(ControlShard shard, int socket)
    {
        var batch = shard.Sends[socket];
        if (batch.Count == 0) return;
        var index = shard.SendIndex[socket];
        for (int k = 0; k < batch.Count; k++) index[k] = k;
        var sock = shard.Sockets[socket];
        long errors = sock.SendErrors;
        sock.Send(batch, index.AsSpan(0, batch.Count));
        if (sock.SendErrors != errors) Interlocked.Add(ref _sendErrors, sock.SendErrors - errors);
        batch.Count = 0;
    }

    private long _sendErrors;

    public void Dispose()
    {
        _stop.Cancel();
        foreach (var shard in _shards)
        {
            shard.Wake.Signal();
        }
        foreach (var shard in _shards)
        {
            if (shard.Thread is { IsAlive: true } t) t.Join(TimeSpan.FromSeconds(3));
        }
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
        foreach (var shard in _shards)
        {
            if (shard.Thread is not { IsAlive: true }) shard.Dispose();
        }
        _log.Info("node-stopped", $"{_config.Name}: {Nodes.TotalDrops} packets dropped, {QueueDrops} queue drops, {SendErrors} send errors");
    }
}
