using System.Net;
using Lisp.ControlPlane;
using Lisp.Wire;

namespace Lisp.ControlPlane.Tests;

internal static class H
{
    public static readonly DateTimeOffset T0 = new(2026, 1, 1, 12, 0, 0, TimeSpan.Zero);

    public static EidPrefix E(string text) => EidPrefix.Parse(text);
    public static IPEndPoint Ep(string text) => IPEndPoint.Parse(text);
    public static IPAddress Ip(string text) => IPAddress.Parse(text);
    public static LocatorRecord Loc(string ip, byte priority = 1, byte weight = 100) => new(IpAddress.Parse(ip), priority, weight);

    public static MappingRecord Rec(string eid, params string[] rlocs) =>
        new(E(eid), rlocs.Select(r => Loc(r)).ToList(), 3);

    public static MapRegister Register(ulong nonce, AuthAlgorithm alg, params MappingRecord[] records) => new()
    {
        Nonce = nonce, Algorithm = alg, Records = records, WantMapNotify = true,
    };

    public static ReceivedPacket Packet(byte[] payload, string from, string local = "10.0.0.1:4342") => new(payload, Ep(from), Ep(local));

    public static T Decode<T>(byte[] payload) where T : ControlMessage
    {
        var st = ControlMessage.TryDecode(payload, out var m);
        Assert.True(st.IsOk, st.ToString());
        return Assert.IsType<T>(m);
    }

    public static List<SendAction> Sends(IEnumerable<ControlAction> actions) => actions.OfType<SendAction>().ToList();
    public static List<LogAction> Logs(IEnumerable<ControlAction> actions) => actions.OfType<LogAction>().ToList();

    public static MapRequest Request(ulong nonce, string eid, params string[] itrRlocs) => new()
    {
        Nonce = nonce, ItrRlocs = itrRlocs.Select(r => (LispAddress)IpAddress.Parse(r)).ToList(), Records = [E(eid)],
    };

    /// <summary>An ECM around a Map-Request, as an ITR at <paramref name="itr"/> (inner source port 4342) sends it.</summary>
    public static byte[] Ecm(MapRequest request, string itr, bool forMs = false, bool forEtr = false, ushort port = 4342)
    {
        var src = Ip(itr);
        var dst = request.Records[0].Inner is IpAddress ip && ip.Address.AddressFamily == src.AddressFamily ? ip.Address : src;
        return new EncapsulatedControlMessage(new IpUdpHeader(src, dst, port, 4342), request) { ForMapServer = forMs, ForEtr = forEtr }.ToBytes();
    }
}

/// <summary>A mapping system with per-EID answers for tests.</summary>
internal sealed class FuncMappingSystem(Func<EidPrefix, IReadOnlyList<IPEndPoint>> servers, Func<EidPrefix, IReadOnlyList<IPEndPoint>> resolvers) : IMappingSystem
{
    public string Name => "test";
    public IReadOnlyList<IPEndPoint> MapServersFor(EidPrefix eid) => servers(eid);
    public IReadOnlyList<IPEndPoint> MapResolversFor(EidPrefix eid) => resolvers(eid);
}

/// <summary>
/// An in-memory network of ControlNodes keyed by endpoint: shuttles SendActions between them (the sender's
/// endpoint as From, the destination as Local) until nothing is left in flight.
/// </summary>
internal sealed class InMemoryNetwork
{
    private readonly Dictionary<IPEndPoint, ControlNode> _nodes = new();
    private readonly Dictionary<ControlNode, IPEndPoint> _addresses = new();
    public List<(IPEndPoint From, IPEndPoint To, ControlMessage Message)> Trace { get; } = [];
    public List<LogAction> LogLines { get; } = [];
    public List<MapCacheChanged> CacheChanges { get; } = [];
    public HashSet<IPEndPoint> Unreachable { get; } = [];
    public int Undeliverable { get; private set; }

    public void Add(IPEndPoint endpoint, ControlNode node)
    {
        _nodes[endpoint] = node;
        _addresses[node] = endpoint;
    }

    /// <summary>Delivers what is sent to <paramref name="endpoint"/> to <paramref name="node"/> too (another RLOC of it); its own address stays.</summary>
    public void Alias(IPEndPoint endpoint, ControlNode node) => _nodes[endpoint] = node;

    public void Run(ControlNode from, IEnumerable<ControlAction> actions, DateTimeOffset now, int maxHops = 1000)
    {
        var queue = new Queue<(IPEndPoint From, ControlAction Action)>(actions.Select(a => (_addresses[from], a)));
        while (queue.Count > 0)
        {
            if (--maxHops < 0) throw new InvalidOperationException("message loop in the in-memory network");
            var (src, action) = queue.Dequeue();
            switch (action)
            {
                case LogAction l:
                    LogLines.Add(l);
                    break;
                case MapCacheChanged c:
                    CacheChanges.Add(c);
                    break;
                case SendAction s:
                    var sender = s.From ?? src;
                    if (ControlMessage.TryDecode(s.Payload, out var m).IsOk) Trace.Add((sender, s.To, m!));
                    if (Unreachable.Contains(s.To) || !_nodes.TryGetValue(s.To, out var node))
                    {
                        Undeliverable++;
                        break;
                    }
                    var result = node.Handle(new ReceivedPacket(s.Payload, sender, s.To), now);
                    foreach (var a in result) queue.Enqueue((s.To, a));
                    break;
            }
        }
    }

    public void Tick(ControlNode node, DateTimeOffset now) => Run(node, node.Tick(now), now);
}
