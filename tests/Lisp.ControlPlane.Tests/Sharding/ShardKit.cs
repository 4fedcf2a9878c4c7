using System.Net;
using Lisp.ControlPlane;
using Lisp.ControlPlane.Tables;
using Lisp.ControlPlane.Tests.Tables;
using Lisp.Wire;

namespace Lisp.ControlPlane.Tests.Sharding;

/// <summary>
/// N sharded map-servers wired the way NodeHost wires them (one <see cref="RegistrationLimits"/>, a
/// <see cref="ShardContext"/> each, shard 0 joined to the others), with the host's delivery emulated in-process:
/// a message goes to <c>Plan.ShardOf(decoded message)</c>, and every <see cref="ShardHandoffAction"/> is applied
/// on its shard (FIFO, including the handoffs a handoff emits) until none is left.
/// </summary>
internal sealed class ShardedMapServers
{
    public ShardPlan Plan { get; }
    public RegistrationLimits Limits { get; } = new();
    public MapServer[] Shards { get; }
    public ControlCounters[] Counters { get; }

    public ShardedMapServers(int count, MapServerOptions options)
    {
        Plan = new ShardPlan(count);
        Counters = Enumerable.Range(0, count).Select(_ => new ControlCounters()).ToArray();
        Shards = Enumerable.Range(0, count)
            .Select(i => new MapServer(options with { Shard = new ShardContext(Plan, i, Limits) }, Counters[i]))
            .ToArray();
        Shards[0].JoinShards(Shards[1..]);
    }

    public MapServer Shard0 => Shards[0];

    /// <summary>The shard that answers a Map-Request for <paramref name="eid"/>.</summary>
    public MapServer Answering(EidPrefix eid) => Shards[Plan.QueryShard(EidKey.From(eid))];

    public long Events(ControlEvent e) => Counters.Sum(c => c.Events(e));
    public long Drops(DropReason r) => Counters.Sum(c => c.Drops(r));

    /// <summary>What one delivered datagram did.</summary>
    public sealed record Delivery(int Shard, IReadOnlyList<ControlAction> Direct, List<ControlAction> FromHandoffs, int Handoffs)
    {
        /// <summary>Everything the message caused: a split Map-Register's Map-Notify comes from the last owner shard to answer.</summary>
        public List<ControlAction> All => [.. Direct, .. FromHandoffs];
    }

    /// <summary>Decodes <paramref name="payload"/>, steers it, hands it to its shard, then drains every handoff.</summary>
    public Delivery Deliver(byte[] payload, IPEndPoint from, IPEndPoint local, DateTimeOffset now)
    {
        var message = ShardText.Decode(payload);
        int shard = Plan.ShardOf(message);
        Assert.InRange(shard, 0, Plan.Count - 1);
        var packet = new ReceivedPacket(payload, from, local);
        var ms = Shards[shard];
        IReadOnlyList<ControlAction> direct = message switch
        {
            MapRegister r => ms.HandleMapRegister(r, packet, now),
            MapNotify { IsAck: true } a => ms.HandleMapNotifyAck(a, packet, now),
            EncapsulatedControlMessage { Message: MapRequest q } e => ms.HandleMapRequest(e, q, packet, now),
            _ => throw new InvalidOperationException($"not a map-server message: {message.Type}"),
        };
        var (rest, handoffs) = Drain(shard, direct, now);
        return new Delivery(shard, direct, rest, handoffs);
    }

    /// <summary>Applies handoffs FIFO until none remain; returns the other actions they produced and how many were applied.</summary>
    public (List<ControlAction> Actions, int Handoffs) Drain(int source, IEnumerable<ControlAction> actions, DateTimeOffset now)
    {
        var queue = new Queue<(int From, ShardHandoffAction H)>(actions.OfType<ShardHandoffAction>().Select(h => (source, h)));
        var rest = new List<ControlAction>();
        int applied = 0;
        while (queue.Count > 0)
        {
            if (++applied > 100_000) throw new InvalidOperationException("handoff loop");
            var (src, h) = queue.Dequeue();
            Assert.InRange(h.Shard, 0, Plan.Count - 1);
            Assert.True(h.Shard != src, $"shard {src} handed work to itself");
            foreach (var a in Shards[h.Shard].ApplyHandoff(h.Work, now))
            {
                if (a is ShardHandoffAction next) queue.Enqueue((h.Shard, next));
                else rest.Add(a);
            }
        }
        return (rest, applied);
    }

    public List<ControlAction> Tick(DateTimeOffset now)
    {
        var all = new List<ControlAction>();
        for (int i = 0; i < Shards.Length; i++)
        {
            var actions = Shards[i].Tick(now);
            Assert.Empty(actions.OfType<ShardHandoffAction>());
            all.AddRange(actions);
        }
        return all;
    }
}

/// <summary>Helpers shared by the sharding tests: the steering lengths as documented, text forms for comparison.</summary>
internal static class ShardText
{
    /// <summary>ShardPlan's documented steering lengths (IPv4 /16, IPv6 /48, MAC /24, E.164 /32), written out here.</summary>
    public static int SteeringBits(LispAddress inner) => inner switch
    {
        IpAddress ip => ip.IsV4 ? 16 : 48,
        MacAddress => 24,
        E164Address => 32,
        _ => 0,
    };

    /// <summary>(prefix length, steering length) of the part that steers: the address, or the group of an (S,G); null for exact kinds.</summary>
    public static (int Length, int Steering)? Steered(EidPrefix p)
    {
        if (p.SourceGroup() is { } sg) return (sg.Group.MaskLength, SteeringBits(sg.Group.Inner));
        return p.Inner is IpAddress or MacAddress or E164Address ? (p.MaskLength, SteeringBits(p.Inner)) : null;
    }

    /// <summary>Decodes any control message (H.Decode wants the exact type).</summary>
    public static ControlMessage Decode(byte[] payload)
    {
        var st = ControlMessage.TryDecode(payload, out var m);
        Assert.True(st.IsOk, st.ToString());
        return m!;
    }

    public static string Show(Registration r) =>
        $"{r.Eid} site={r.Site} xtr={r.XtrIdText} from={r.Registerer} first={r.FirstRegistered:O} last={r.LastRegistered:O} " +
        $"expires={r.ExpiresAt:O} flags={r.FlagsText} ttl={r.RecordTtlRaw:x} rlocs={string.Join(",", r.Rlocs.Select(l => l.Locator.ToText()))}";

    public static List<string> Show(IEnumerable<Registration>? regs) =>
        regs is null ? [] : regs.Select(Show).Order(StringComparer.Ordinal).ToList();

    public static string Show(MappingRecord r) =>
        $"{r.Eid.Canonical()} ttl={r.TtlRaw:x} rlocs={string.Join(",", r.Locators.Select(l => l.Locator.ToText()))}";

    /// <summary>The Map-Notify records sent in <paramref name="actions"/> (one list per Map-Notify).</summary>
    public static List<List<string>> Notifies(IEnumerable<ControlAction> actions) =>
        actions.OfType<SendAction>()
            .Select(s => Decode(s.Payload))
            .OfType<MapNotify>()
            .Select(n => n.Records.Select(Show).Order(StringComparer.Ordinal).ToList())
            .ToList();

    /// <summary>A random host (or longer prefix) inside an IP prefix: OracleGen's idea, kept to IP.</summary>
    public static EidPrefix HostIn(Random rng, EidPrefix p)
    {
        var ip = (IpAddress)p.Inner;
        int w = ip.IsV4 ? 32 : 128;
        var gen = new OracleGen(rng);
        var bits = (OracleGen.Bits(ip.Address) & OracleGen.MaskOf(p.MaskLength)) | (gen.Random128() & ~OracleGen.MaskOf(p.MaskLength) & OracleGen.MaskOf(w));
        return OracleGen.IpPrefix(p.InstanceId, bits, ip.IsV4, w);
    }
}
