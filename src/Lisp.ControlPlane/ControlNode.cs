using System.Net;
using Lisp.Wire;

namespace Lisp.ControlPlane;

/// <summary>What one process runs: its addresses and the options of each role it plays (null = not played).</summary>
public sealed record ControlNodeOptions
{
    public string Name { get; init; } = "lisp";
    /// <summary>
    /// The control endpoints this node answers on (address + port). A map-server or resolver endpoint in this
    /// list is "this node" (the Map-Resolver does not forward to itself).
    /// </summary>
    public IReadOnlyList<IPEndPoint> LocalEndpoints { get; init; } = [];
    public MapServerOptions? MapServer { get; init; }
    public MapResolverOptions? MapResolver { get; init; }
    public EtrOptions? Etr { get; init; }
    public ItrOptions? Itr { get; init; }
    /// <summary>Debug and Warning lines of one event beyond this many per <see cref="LogWindow"/> are suppressed (and counted).</summary>
    public int LogBurst { get; init; } = 20;
    public TimeSpan LogWindow { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>Admission of every Map-Request this node answers or forwards (issue 12, finding 4); null: none.</summary>
    public RequestAdmissionOptions? Admission { get; init; } = new();
}

/// <summary>
/// The control plane of one process, still pure: decodes each received packet (Lisp.Wire), counts and drops
/// what is malformed or unexpected, routes the rest to its roles, and runs their timers.
/// <list type="bullet">
/// <item>Map-Register -> Map-Server; Map-Notify-Ack -> Map-Server; Map-Notify -> ETR (which acks it).</item>
/// <item>ECM Map-Request: E bit -> ETR; M bit -> Map-Server (else Resolver); neither -> Map-Resolver, else Map-Server, else ETR.</item>
/// <item>Plain Map-Request: S bit (SMR) -> ITR; otherwise (RLOC-probe, direct request) -> ETR.</item>
/// <item>Map-Reply -> ITR (one with the P bit is an RLOC-probe reply, matched against the ITR's probes).</item>
/// </list>
/// Handle never throws for any input. Not thread-safe: the host calls Handle and Tick from one thread
/// (reading <see cref="Counters"/> from others is fine).
/// </summary>
public sealed class ControlNode
{
    private readonly ControlNodeOptions _options;
    private readonly Dictionary<string, LogWindowState> _logWindows = new(StringComparer.Ordinal);

    private sealed class LogWindowState
    {
        public DateTimeOffset Start;
        public int Count;
        public int Suppressed;
    }

    /// <param name="counters">Shared by the control shards of one node (thread-safe increments); null: its own.</param>
    public ControlNode(ControlNodeOptions options, IMappingSystem mappingSystem, Random? random = null, ControlCounters? counters = null)
    {
        _options = options;
        MappingSystem = mappingSystem;
        random ??= SecureRandom.Instance;   // nonces guard against forged replies: never System.Random unless a test asks
        Counters = counters ?? new ControlCounters();
        if (options.MapServer is { } ms) MapServer = new MapServer(ms, Counters);
        if (options.MapResolver is { } mr) MapResolver = new MapResolver(mr, mappingSystem, MapServer, options.LocalEndpoints, Counters);
        if (options.Etr is { } etr) Etr = new Etr(etr, mappingSystem, random, Counters);
        if (options.Itr is { } itr) Itr = new Itr(itr, mappingSystem, random, Counters);
        if (options.Admission is { } adm) Admission = new RequestAdmission(adm, Counters);
    }

    /// <summary>The Map-Request admission step (null when <see cref="ControlNodeOptions.Admission"/> is null).</summary>
    public RequestAdmission? Admission { get; }

    public ControlNodeOptions Options => _options;
    public IMappingSystem MappingSystem { get; }
    public ControlCounters Counters { get; }
    public MapServer? MapServer { get; }
    public MapResolver? MapResolver { get; }
    public Etr? Etr { get; }
    public Itr? Itr { get; }

    /// <summary>The roles played, lispers.net style: "itr, etr, map-server, map-resolver".</summary>
    public string Roles => string.Join(", ", new[] { Itr is null ? null : "itr", Etr is null ? null : "etr",
        MapServer is null ? null : "map-server", MapResolver is null ? null : "map-resolver" }.Where(r => r is not null));

    /// <summary>Earliest time <see cref="Tick"/> has work; null when nothing is scheduled.</summary>
    public DateTimeOffset? NextDeadline
    {
        get
        {
            DateTimeOffset? d = null;
            foreach (var x in new[] { MapServer?.NextDeadline, Etr?.NextDeadline, Itr?.NextDeadline })
            {
                if (x is { } v && (d is null || v < d)) d = v;
            }
            return d;
        }
    }

    /// <summary>Handles one received datagram. Never throws.</summary>
    public IReadOnlyList<ControlAction> Handle(ReceivedPacket packet, DateTimeOffset now)
    {
        var status = ControlMessage.TryDecode(packet.Payload, out var message);
        return Handle(packet, status.IsOk ? message : null, status, now);
    }

    /// <summary>
    /// Handles a datagram the host's steering step decoded already (one decode per packet); a null message with
    /// its failed <paramref name="status"/> is counted as malformed. Never throws.
    /// </summary>
    public IReadOnlyList<ControlAction> Handle(ReceivedPacket packet, ControlMessage? message, WireStatus status, DateTimeOffset now)
    {
        IReadOnlyList<ControlAction> actions;
        try
        {
            actions = Route(packet, message, status, now);
        }
        catch (Exception e)
        {
            Counters.Drop(DropReason.HandlerFault);
            actions = [new LogAction(LogLevel.Error, "handler-fault", $"packet of {packet.Payload.Length} bytes from {packet.From}: {e.GetType().Name}: {e.Message}")];
        }
        return Throttle(actions, now);
    }

    /// <summary>Runs every role's timers. Never throws.</summary>
    public IReadOnlyList<ControlAction> Tick(DateTimeOffset now)
    {
        var actions = new List<ControlAction>();
        void Run(Func<IReadOnlyList<ControlAction>> f, string role)
        {
            try
            {
                actions.AddRange(f());
            }
            catch (Exception e)
            {
                Counters.Drop(DropReason.HandlerFault);
                actions.Add(new LogAction(LogLevel.Error, "timer-fault", $"{role} timer: {e.GetType().Name}: {e.Message}"));
            }
        }
        if (MapServer is { } ms) Run(() => ms.Tick(now), "map-server");
        if (Etr is { } etr) Run(() => etr.Tick(now), "etr");
        if (Itr is { } itr) Run(() => itr.Tick(now), "itr");
        return Throttle(actions, now);
    }

    /// <summary>ITR lookup miss: asks the mapping system (rate-limited). Empty when this node has no ITR.</summary>
    public IReadOnlyList<ControlAction> Request(EidPrefix eid, DateTimeOffset now) => Itr is { } itr ? Throttle(itr.Request(eid, now), now) : [];

    /// <summary>Applies records another control shard verified (see <see cref="MapServerHandoff"/>). Never throws.</summary>
    public IReadOnlyList<ControlAction> HandleHandoff(MapServerHandoff work, DateTimeOffset now)
    {
        if (MapServer is not { } ms) return [];
        try
        {
            return Throttle(ms.ApplyHandoff(work, now), now);
        }
        catch (Exception e)
        {
            Counters.Drop(DropReason.HandlerFault);
            return [new LogAction(LogLevel.Error, "handler-fault", $"handed-over records from {work.From}: {e.GetType().Name}: {e.Message}")];
        }
    }

    private IReadOnlyList<ControlAction> Route(ReceivedPacket packet, ControlMessage? message, WireStatus status, DateTimeOffset now)
    {
        if (!status.IsOk || message is null)
        {
            Counters.DropMalformed(status.Error == WireError.None ? WireError.BadValue : status.Error);
            return [new LogAction(LogLevel.Debug, "malformed", $"{packet.Payload.Length} bytes from {packet.From}: {status}")];
        }
        Counters.Count(ControlEvent.Received);
        switch (message)
        {
            case MapRegister reg when MapServer is { } ms:
                return ms.HandleMapRegister(reg, packet, now);
            case MapNotify { IsAck: false } notify when Etr is { } etr:
                return etr.HandleMapNotify(notify, packet, now);
            case MapNotify { IsAck: true } ack when MapServer is { } ms:
                return ms.HandleMapNotifyAck(ack, packet, now);
            case MapReply reply when Itr is { } itr:
                return itr.HandleMapReply(reply, packet, now);
            case MapRequest { Smr: true } smr when Itr is { } itr:
                return itr.HandleSmr(smr, packet, now);
            case MapRequest { Smr: false } req when Etr is { } etr:
                return Admit(req, null, packet, now, (r, _) => etr.HandleMapRequest(r, null, packet, now));
            case EncapsulatedControlMessage { Message: MapRequest req } ecm:
                return Admit(req, ecm, packet, now, (r, e) => RouteEcm(e!, r, packet, now));
        }
        return Unexpected(message, packet);
    }

    /// <summary>Every Map-Request answer passes here: <see cref="RequestAdmission"/> before and after the role.</summary>
    private IReadOnlyList<ControlAction> Admit(MapRequest req, EncapsulatedControlMessage? ecm, ReceivedPacket packet, DateTimeOffset now,
        Func<MapRequest, EncapsulatedControlMessage?, IReadOnlyList<ControlAction>> answer)
    {
        if (Admission is not { } adm) return answer(req, ecm);
        if (!adm.TryAdmit(req, ecm, packet, now, out var admitted, out var admittedEcm, out var refusal)) return refusal;
        return adm.Bound(answer(admitted, admittedEcm), admitted, packet);
    }

    private IReadOnlyList<ControlAction> RouteEcm(EncapsulatedControlMessage ecm, MapRequest req, ReceivedPacket packet, DateTimeOffset now)
    {
        // lispers.net layouts (name EIDs, no inner IP header): answered to an ITR-RLOC, forwarded as it came.
        if (!ecm.HasInnerHeader) Counters.Count(ControlEvent.EcmWithoutInnerHeader);
        if (ecm.ForEtr)
        {
            if (Etr is { } etr) return etr.HandleMapRequest(req, ecm, packet, now);
        }
        else if (ecm.ForMapServer)
        {
            if (MapServer is { } ms) return ms.HandleMapRequest(ecm, req, packet, now);
            if (MapResolver is { } mr) return mr.HandleMapRequest(ecm, req, packet, now);
        }
        else
        {
            if (MapResolver is { } mr) return mr.HandleMapRequest(ecm, req, packet, now);
            if (MapServer is { } ms) return ms.HandleMapRequest(ecm, req, packet, now);
            if (Etr is { } etr) return etr.HandleMapRequest(req, ecm, packet, now);
        }
        return Unexpected(ecm, packet);
    }

    private List<ControlAction> Unexpected(ControlMessage message, ReceivedPacket packet)
    {
        Counters.Drop(DropReason.UnexpectedType);
        string what = message is EncapsulatedControlMessage e ? $"ECM({e.Message.Type}{(e.ForEtr ? ", E" : "")}{(e.ForMapServer ? ", M" : "")})" : message.Type.ToString();
        return [new LogAction(LogLevel.Debug, "unexpected-message", $"{what} from {packet.From}: no role on this node ({Roles}) handles it")];
    }

    private IReadOnlyList<ControlAction> Throttle(IReadOnlyList<ControlAction> actions, DateTimeOffset now)
    {
        List<ControlAction>? result = null;
        for (int i = 0; i < actions.Count; i++)
        {
            var a = actions[i];
            bool keep = true;
            LogAction? summary = null;
            if (a is LogAction { Level: LogLevel.Debug or LogLevel.Warning } log)
            {
                if (!_logWindows.TryGetValue(log.Event, out var w))
                {
                    _logWindows[log.Event] = w = new LogWindowState { Start = now };
                    if (_logWindows.Count > 1000) _logWindows.Clear();
                }
                if (now - w.Start >= _options.LogWindow || now < w.Start)
                {
                    if (w.Suppressed > 0)
                    {
                        summary = new LogAction(LogLevel.Info, "log-suppressed", $"{w.Suppressed} '{log.Event}' lines suppressed since {w.Start:O}");
                    }
                    w.Start = now;
                    w.Count = 0;
                    w.Suppressed = 0;
                }
                if (++w.Count > _options.LogBurst)
                {
                    w.Suppressed++;
                    keep = false;
                }
            }
            if ((!keep || summary is not null) && result is null)
            {
                result = new List<ControlAction>(actions.Count);
                for (int j = 0; j < i; j++) result.Add(actions[j]);
            }
            if (summary is not null) result!.Add(summary);
            if (keep) result?.Add(a);
        }
        return result ?? actions;
    }
}
