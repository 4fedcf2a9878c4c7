using System.Net;
using Lisp.ControlPlane;
using Lisp.Decent.Push;
using Lisp.Wire;

namespace Lisp.Decent.Tests;

/// <summary>One push-group member in memory: a real <see cref="ControlNode"/> plus its push mapping system.</summary>
internal sealed class PushMember(string name, ControlNode node, PushMappingSystem push, IPEndPoint control)
{
    public string Name { get; } = name;
    public ControlNode Node { get; } = node;
    public PushMappingSystem Push { get; } = push;
    public PushReplicator Replicator { get; } = new(push);
    public IPEndPoint Control { get; } = control;
    public IPAddress Rloc => Control.Address;
    public bool Up { get; set; } = true;
    public bool JoinedMulticast { get; set; } = true;
    public MapServer Ms => Node.MapServer!;

    public bool Holds(string eid, DateTimeOffset now) => Ms.Registrations(now).Any(r => r.Eid.ToString() == eid);
    public IReadOnlyList<string> Eids(DateTimeOffset now) => Ms.Registrations(now).Select(r => r.Eid.ToString()).Distinct().ToList();
}

/// <summary>
/// An in-memory underlay for push groups: shuttles every <see cref="SendAction"/> of every member (after the
/// member's <see cref="PushReplicator"/>: control, encapsulated data, or multicast) to the receiving members'
/// <see cref="ControlNode.Handle"/>, on a virtual clock, counting datagrams.
/// </summary>
internal sealed class PushTestNetwork
{
    public static readonly DateTimeOffset T0 = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);
    public const string Key = "decent-demo-key";

    private readonly Queue<(PushDatagram Datagram, PushMember Sender)> _wire = new();
    public List<PushMember> Members { get; } = [];
    public DateTimeOffset Now { get; set; } = T0;
    public IPAddress Group { get; }
    public PushDelivery Delivery { get; }
    public TimeSpan RegisterInterval { get; init; } = TimeSpan.FromSeconds(60);
    public bool WantMapNotify { get; init; }
    public long Datagrams { get; private set; }
    public long DecapsulationDrops { get; private set; }
    public Dictionary<PushChannel, long> ByChannel { get; } = new() { [PushChannel.Control] = 0, [PushChannel.Data] = 0, [PushChannel.Multicast] = 0 };
    public List<string> Log { get; } = [];

    public PushTestNetwork(PushDelivery delivery, string group = "224.1.1.1")
    {
        Delivery = delivery;
        Group = IPAddress.Parse(group);
    }

    public static IPEndPoint ControlOf(int i) => new(IPAddress.Parse($"10.0.{i / 250}.{i % 250}"), 4342);

    /// <summary>Adds a member numbered <paramref name="i"/> registering <paramref name="eids"/>; all of <paramref name="memberCount"/> are its configured peers.</summary>
    public PushMember Add(int i, int memberCount, string[] eids, string? key = null, IReadOnlyList<IPEndPoint>? members = null)
    {
        var control = ControlOf(i);
        var push = new PushMappingSystem(new PushOptions
        {
            Group = Group,
            Delivery = Delivery,
            Self = [control],
            Members = members ?? Enumerable.Range(1, memberCount).Select(ControlOf).ToList(),
            Key = key ?? Key,
        });
        var rlocs = new List<LocatorRecord> { new(new IpAddress(control.Address)) };
        var options = new ControlNodeOptions
        {
            Name = $"n{i}",
            LocalEndpoints = [control],
            MapServer = new MapServerOptions { RegistrationTimeout = RegisterInterval * 3 },
            MapResolver = new MapResolverOptions(),
            Etr = new EtrOptions
            {
                Database = eids.Select(e => new DatabaseMapping(EidPrefix.Parse(e), rlocs)).ToList(),
                Key = key ?? Key,
                RegisterInterval = RegisterInterval,
                WantMapNotify = WantMapNotify,
            },
            Itr = new ItrOptions { Rlocs = [control.Address] },
        };
        var node = new ControlNode(PushGroup.Apply(options, push), push, new Random(i));
        var m = new PushMember($"n{i}", node, push, control);
        Members.Add(m);
        return m;
    }

    public PushMember this[string name] => Members.Single(m => m.Name == name);

    /// <summary>Queues what a member's role returned (sends only; logs are kept).</summary>
    public void Emit(PushMember sender, IEnumerable<ControlAction> actions)
    {
        foreach (var a in actions)
        {
            switch (a)
            {
                case SendAction s:
                    _wire.Enqueue((sender.Replicator.Expand(s), sender));
                    break;
                case LogAction l:
                    Log.Add($"{sender.Name} {l}");
                    break;
            }
        }
    }

    /// <summary>Sends a raw datagram as if <paramref name="from"/> had sent it on <paramref name="channel"/>.</summary>
    public void Inject(PushChannel channel, IPEndPoint to, byte[] payload, IPEndPoint from)
    {
        var stranger = new PushMember("stranger", Members[0].Node, Members[0].Push, from);
        _wire.Enqueue((new PushDatagram(channel, to, payload, from), stranger));
    }

    public void TickAll()
    {
        foreach (var m in Members.Where(m => m.Up)) Emit(m, m.Node.Tick(Now));
    }

    /// <summary>Delivers queued datagrams (and what they cause) until the wire is quiet or <paramref name="limit"/> were delivered.</summary>
    public int Run(int limit = 1_000_000)
    {
        int n = 0;
        while (_wire.Count > 0 && n < limit)
        {
            var (d, sender) = _wire.Dequeue();
            n++;
            Datagrams++;
            ByChannel[d.Channel]++;
            var from = d.From ?? sender.Control;
            switch (d.Channel)
            {
                case PushChannel.Control:
                    foreach (var m in Members.Where(m => m.Up && m.Control.Equals(d.To)))
                        Emit(m, m.Node.Handle(new ReceivedPacket(d.Payload, new IPEndPoint(from.Address, sender.Control.Port), m.Control), Now));
                    break;
                case PushChannel.Data:
                    foreach (var m in Members.Where(m => m.Up && m.Rloc.Equals(d.To.Address)))
                    {
                        if (PushEncapsulation.TryDecapsulate(d.Payload, m.Push.Group, out var inner, out var innerSource, out var error))
                            Emit(m, m.Node.Handle(new ReceivedPacket(inner, innerSource, m.Control), Now));
                        else
                        {
                            DecapsulationDrops++;
                            Log.Add($"{m.Name} decapsulation drop: {error}");
                        }
                    }
                    break;
                case PushChannel.Multicast:
                    foreach (var m in Members.Where(m => m.Up && m.JoinedMulticast && m.Push.Group.Equals(d.To.Address)))
                        Emit(m, m.Node.Handle(new ReceivedPacket(d.Payload, new IPEndPoint(from.Address, sender.Control.Port), m.Control), Now));
                    break;
            }
        }
        return n;
    }

    /// <summary>Advances the clock in <paramref name="step"/>s up to <paramref name="span"/>, ticking every member and delivering.</summary>
    public void Advance(TimeSpan span, TimeSpan? step = null)
    {
        var end = Now + span;
        var s = step ?? TimeSpan.FromSeconds(1);
        while (Now < end)
        {
            Now = Now + s > end ? end : Now + s;
            TickAll();
            Run();
        }
    }

    public void Converge()
    {
        TickAll();
        Run();
    }
}
