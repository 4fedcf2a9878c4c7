using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using Lisp.Appliance.Config;
using Lisp.ControlPlane;
using Lisp.DataPlane;
using Lisp.Decent.Push;
using Lisp.Wire;

namespace Lisp.Appliance.Hosting;

/// <summary>
/// The push group's own sockets beside the control transport: a LISP data socket per local address (UDP
/// 4341 by default) that takes Map-Registers LISP-encapsulated with instance-id 0xffffff to the group and hands
/// them to the control plane as if they came from the inner source; and, for multicast delivery, a socket
/// joined to the group (on the configured interface, multicast loopback and TTL set explicitly) that both
/// sends the Map-Registers addressed to the group and receives every member's. Also dumps the site table to
/// the log whenever it changes, and withdraws this member's registrations (TTL 0) when the node stops.
/// When the node's data plane owns the data port ([data_plane] on the same port: <see cref="DataPlaneHost.OwnsDataPort"/>),
/// this binds no data socket for that family: the data plane's ETRs hand it the instance-id 0xffffff datagrams
/// (<see cref="FromDataPlane"/>), validated exactly as the ones its own socket receives, and it sends its
/// encapsulated copies from an ephemeral port of its own address instead.
/// </summary>
public sealed class PushIo : IDisposable
{
    private readonly NodeConfig _config;
    private readonly PushMappingSystem _push;
    private readonly PushReplicator _replicator;
    private readonly Log _log;
    private readonly Action<ReceivedPacket> _inject;
    /// <summary>Data-port sockets this member bound itself (receive and send).</summary>
    private readonly List<Socket> _dataSockets = [];
    /// <summary>Send-only sockets (ephemeral port) for the families whose data port the data plane owns.</summary>
    private readonly List<Socket> _sendSockets = [];
    private readonly Socket? _multicast;
    private readonly List<Thread> _threads = [];
    private volatile bool _stopping;
    private string _lastTable = "";
    /// <summary>The send list's dynamic part: learned, merged from seed answers, pruned (control thread only).</summary>
    private PushMembership? _membership;
    /// <summary>Re-resolves the seed group in the background (null without seed_group or with membership_refresh = 0).</summary>
    private PushSeedRefresher? _refresher;
    private DateTimeOffset _lastDump = DateTimeOffset.MinValue, _lastMembership = DateTimeOffset.MinValue;
    private long _decapsulated, _decapDrops, _multicastReceived, _sendErrors, _plainControl;

    public PushIo(NodeConfig config, PushMappingSystem push, Log log, Action<ReceivedPacket> inject)
    {
        _config = config;
        _push = push;
        _replicator = new PushReplicator(push);
        _log = log;
        _inject = inject;
        foreach (var self in push.Options.Self)
        {
            var ep = new IPEndPoint(self.Address, push.Options.DataPort);
            if (DataPlaneHost.OwnsDataPort(config, ep.AddressFamily, ep.Port))
            {
                ReceivesFromDataPlane = true;
                OpenSendSocket(self.Address);
                continue;
            }
            var s = new Socket(ep.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            try
            {
                if (ep.AddressFamily == AddressFamily.InterNetworkV6) s.DualMode = false;
                s.Bind(ep);
                _dataSockets.Add(s);
            }
            catch (SocketException e)
            {
                s.Dispose();
                if (push.Delivery == PushDelivery.ReplicateEncapsulated)
                {
                    Dispose();
                    throw new InvalidOperationException($"decent.push: cannot bind the LISP data socket {ep}: {e.Message}");
                }
                _log.Warn("push-data-socket", $"cannot bind {ep} ({e.Message}); encapsulated Map-Registers from other members will not be received");
            }
        }
        if (push.Delivery == PushDelivery.Multicast)
        {
            try
            {
                _multicast = OpenMulticast(config.DecentPush!, push);
            }
            catch (Exception e) when (e is SocketException or InvalidOperationException)
            {
                Dispose();
                throw new InvalidOperationException($"decent.push: cannot join group {push.Group}: {e.Message}");
            }
        }
    }

    /// <summary>
    /// True when the data plane owns the data port (for at least one of this member's address families): the
    /// data plane must then give this member its instance-id 0xffffff datagrams (<see cref="FromDataPlane"/>).
    /// </summary>
    public bool ReceivesFromDataPlane { get; }

    public long Decapsulated => Interlocked.Read(ref _decapsulated);
    public long DecapsulationDrops => Interlocked.Read(ref _decapDrops);
    /// <summary>Plain (not encapsulated) control messages from known members taken on the data port.</summary>
    public long PlainControlOnDataPort => Interlocked.Read(ref _plainControl);

    private bool IsMember(IPAddress address)
    {
        foreach (var m in _push.Members)
        {
            if (m.Address.Equals(address)) return true;
        }
        return false;
    }

    /// <summary>Makes a control node's options those of a push-group member (no-op for other mapping systems).</summary>
    public static ControlNodeOptions Adjust(ControlNodeOptions options, NodeConfig config, IMappingSystem mappingSystem)
    {
        if (mappingSystem is not PushMappingSystem push || config.DecentPush is not { } p) return options;
        var o = PushGroup.Apply(options, push);
        if (o.MapServer is { } ms) o = o with { MapServer = ms with { RegistrationTimeout = p.RegisterInterval * 3 } };
        return o;
    }

    private void OpenSendSocket(IPAddress local)
    {
        if (_sendSockets.Any(x => x.AddressFamily == local.AddressFamily)) return;
        var s = new Socket(local.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        try
        {
            if (local.AddressFamily == AddressFamily.InterNetworkV6) s.DualMode = false;
            s.Bind(new IPEndPoint(local, 0)); // our own address as the outer source; the data port stays the data plane's
        }
        catch (SocketException e)
        {
            _log.Warn("push-data-socket", $"cannot bind a send socket to {local} ({e.Message}); the kernel picks the source address");
        }
        _sendSockets.Add(s);
    }

    /// <summary>
    /// The data plane's control hand-off thread: one data-port datagram with instance-id 0xffffff (the whole UDP
    /// payload). Checked and unwrapped like those on this member's own data socket, then queued to the control
    /// plane as if it came from the inner source.
    /// </summary>
    public void FromDataPlane(ControlPacket packet)
    {
        var family = packet.From?.AddressFamily ?? _push.Group.AddressFamily;
        var local = _push.Options.Self.FirstOrDefault(e => e.AddressFamily == family) ?? _push.Options.Self[0];
        Deliver(packet.Payload, packet.From, local, "data plane");
    }

    private void Deliver(ReadOnlySpan<byte> payload, EndPoint? from, IPEndPoint local, string via)
    {
        if (PushEncapsulation.TryDecapsulate(payload, _push.Group, out var inner, out var innerSource, out var error))
        {
            Interlocked.Increment(ref _decapsulated);
            _inject(new ReceivedPacket(inner, innerSource, new IPEndPoint(local.Address, _push.Options.ControlPort)));
        }
        else if (from is IPEndPoint source && IsMember(source.Address) && ControlMessage.TryDecode(payload, out var plain).IsOk)
        {
            // lispers.net answers an encapsulated push Map-Register with a plain Map-Notify to the data port (issue 11,
            // item 7): from a known member, a well-formed control message is taken as one; the role authenticates it.
            long n = Interlocked.Increment(ref _plainControl);
            if (n % 100 == 1)
            {
                _log.Info("push-plain-control", $"plain {plain!.Type} from push member {source} on the data port ({via}): taken as a control message ({n} so far)");
            }
            _inject(new ReceivedPacket(payload.ToArray(), source, new IPEndPoint(local.Address, _push.Options.ControlPort)));
        }
        else if (Interlocked.Increment(ref _decapDrops) % 100 == 1)
        {
            _log.Warn("push-decap-drop", $"{payload.Length} bytes from {from} on {local} ({via}): {error} ({DecapsulationDrops} dropped so far)");
        }
    }

    private Socket OpenMulticast(DecentPushConfig p, PushMappingSystem push)
    {
        bool v4 = push.Group.AddressFamily == AddressFamily.InterNetwork;
        var self = push.Options.Self.FirstOrDefault(s => s.AddressFamily == push.Group.AddressFamily)
            ?? throw new InvalidOperationException($"no local address of the group's family to send from");
        int index = 0;
        if (p.Interface is { Length: > 0 } name)
        {
            var nic = NetworkInterface.GetAllNetworkInterfaces().FirstOrDefault(n => n.Name == name)
                ?? throw new InvalidOperationException($"decent.push.interface '{name}' does not exist");
            index = v4 ? nic.GetIPProperties().GetIPv4Properties().Index : nic.GetIPProperties().GetIPv6Properties().Index;
        }
        var s = new Socket(push.Group.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        try
        {
            // Every member process on a host binds the group and port: SO_REUSEADDR lets them all receive.
            s.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            s.Bind(new IPEndPoint(push.Group, push.Options.ControlPort));
            if (v4)
            {
                s.SetSocketOption(SocketOptionLevel.IP, SocketOptionName.AddMembership,
                    index > 0 ? new MulticastOption(push.Group, index) : new MulticastOption(push.Group, self.Address));
                // Send from our own address (the registerer identity members see), on the group's interface.
                s.SetSocketOption(SocketOptionLevel.IP, SocketOptionName.MulticastInterface, self.Address.GetAddressBytes());
                s.SetSocketOption(SocketOptionLevel.IP, SocketOptionName.MulticastTimeToLive, p.MulticastTtl);
                s.SetSocketOption(SocketOptionLevel.IP, SocketOptionName.MulticastLoopback, true);
            }
            else
            {
                s.SetSocketOption(SocketOptionLevel.IPv6, SocketOptionName.AddMembership, new IPv6MulticastOption(push.Group, index));
                if (index > 0) s.SetSocketOption(SocketOptionLevel.IPv6, SocketOptionName.MulticastInterface, index);
                s.SetSocketOption(SocketOptionLevel.IPv6, SocketOptionName.MulticastTimeToLive, p.MulticastTtl);
                s.SetSocketOption(SocketOptionLevel.IPv6, SocketOptionName.MulticastLoopback, true);
            }
        }
        catch
        {
            s.Dispose();
            throw;
        }
        _log.Info("push-multicast", $"joined {push.Group} on {(index > 0 ? p.Interface : self.Address.ToString())}, ttl {p.MulticastTtl}, loopback on, port {push.Options.ControlPort}");
        return s;
    }

    public void Start()
    {
        foreach (var s in _dataSockets)
        {
            var local = (IPEndPoint)s.LocalEndPoint!;
            _threads.Add(new Thread(() => ReceiveLoop(s, local, data: true)) { IsBackground = true, Name = "lisp-push-data" });
        }
        if (_multicast is not null)
        {
            var local = _push.Options.Self.First(e => e.AddressFamily == _push.Group.AddressFamily);
            _threads.Add(new Thread(() => ReceiveLoop(_multicast, local, data: false)) { IsBackground = true, Name = "lisp-push-mcast" });
        }
        foreach (var t in _threads) t.Start();
        if (_config.DecentPush is { SeedGroupName: { Length: > 0 } seed, MembershipRefresh: var refresh } && refresh > TimeSpan.Zero)
        {
            // Answered at start when the seed added members beyond the configured ones; otherwise retry soon.
            bool answered = _push.Members.Any(m => !_push.IsSelf(m) && !_push.Options.Members.Contains(m));
            _refresher = new PushSeedRefresher(seed, _push.Group, _push.Options.Self[0].Address, refresh, _log, answered);
            _refresher.Start();
        }
        _log.Info("push-started", $"{_push.Name}: members {string.Join(", ", _push.Members)}; data port {_push.Options.DataPort}" +
            (ReceivesFromDataPlane ? " (received through the data plane's ETR, which owns the port)" : ""));
    }

    private void ReceiveLoop(Socket s, IPEndPoint local, bool data)
    {
        var buffer = new byte[65535];
        var control = new IPEndPoint(local.Address, _push.Options.ControlPort);
        while (!_stopping)
        {
            int n;
            EndPoint from = new IPEndPoint(local.AddressFamily == AddressFamily.InterNetwork ? IPAddress.Any : IPAddress.IPv6Any, 0);
            try
            {
                n = s.ReceiveFrom(buffer, ref from);
            }
            catch (SocketException) when (!_stopping)
            {
                continue; // ICMP errors from earlier sends
            }
            catch (Exception) when (_stopping)
            {
                return;
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            var payload = buffer.AsSpan(0, n);
            if (!data)
            {
                Interlocked.Increment(ref _multicastReceived);
                _inject(new ReceivedPacket(payload.ToArray(), (IPEndPoint)from, control));
                continue;
            }
            Deliver(payload, from, local, "data socket");
        }
    }

    /// <summary>Sends what the push group's data plane carries (encapsulated copies, multicast); false leaves it to the control transport.</summary>
    public bool TrySend(SendAction a)
    {
        var d = _replicator.Expand(a);
        Socket? s = d.Channel switch
        {
            PushChannel.Data => _dataSockets.FirstOrDefault(x => x.AddressFamily == d.To.AddressFamily)
                ?? _sendSockets.FirstOrDefault(x => x.AddressFamily == d.To.AddressFamily),
            PushChannel.Multicast => _multicast,
            _ => null,
        };
        if (d.Channel == PushChannel.Control) return false;
        if (s is null)
        {
            if (Interlocked.Increment(ref _sendErrors) % 100 == 1) _log.Warn("push-send", $"no {d.Channel} socket for {d.To}");
            return true;
        }
        try
        {
            s.SendTo(d.Payload, d.To);
        }
        catch (SocketException e)
        {
            if (Interlocked.Increment(ref _sendErrors) % 100 == 1) _log.Warn("push-send", $"{d.Channel} to {d.To}: {e.SocketErrorCode}");
        }
        return true;
    }

    /// <summary>
    /// On the control thread after each round: when the site table changed (checked at most every 200 ms), and
    /// at least once a second anyway, updates the member list from the group's peer-group registrations
    /// (authenticated with the group key) and the newest seed-group answer, pruning learned members whose
    /// registration has been gone for a registration timeout; logs the site table when it changed. Returns the
    /// ETR's actions for the caller to carry out: the re-registrations to new or (re)appeared members, sent at once.
    /// </summary>
    public IReadOnlyList<ControlAction> AfterBatch(ControlNode node, DateTimeOffset now)
    {
        if (node.MapServer is not { } ms || now - _lastDump < TimeSpan.FromMilliseconds(200)) return [];
        var rows = ms.SiteTable(now);
        string signature = string.Join("\n", rows.Select(r => $"{r.Eid} {r.Registered} {r.Registrants} {string.Join(",", r.Rlocs.Select(l => l.Locator.ToText()))}"));
        if (signature == _lastTable)
        {
            if (now - _lastMembership < TimeSpan.FromSeconds(1) && _refresher?.HasAnswer != true) return [];
            _lastMembership = now;
            return LearnMembers(node, ms, now);
        }
        _lastTable = signature;
        _lastDump = now;
        _lastMembership = now;
        var actions = LearnMembers(node, ms, now);
        int registered = rows.Count(r => r.Registered);
        _log.Info("site-table", $"{_config.Name}: {rows.Count} entries, {registered} registered: " +
            string.Join(" | ", rows.Select(r => $"{r.Eid}{(r.Registered ? $" by {r.LastRegisterer} ({r.Registrants})" : " (configured)")}")));
        foreach (var line in MapServer.Format(rows).Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            _log.Write(LogLevel.Debug, "site-table-row", line.TrimEnd('\r'));
        }
        return actions;
    }

    private IReadOnlyList<ControlAction> LearnMembers(ControlNode node, MapServer ms, DateTimeOffset now)
    {
        var peer = PushGroup.PeerGroupEid(_push.Group);
        var present = new List<IPAddress>();
        var mentioned = new List<IPAddress>();
        foreach (var r in ms.Registrations(now).Where(r => r.Eid.SameKey(peer)))
        {
            var named = PushGroup.MembersOf(new MappingRecord(r.Eid, r.Rlocs));
            mentioned.AddRange(named);
            if (PushGroup.RegisteringMember(r.Registerer.Address, named) is { } member) present.Add(member);
        }
        var seedAnswer = _refresher?.TakeAnswer();
        // Multicast delivery sends to the group, not to a member list: nothing to learn or prune.
        if (_push.Delivery == PushDelivery.Multicast) return [];
        var timeout = (_config.DecentPush?.RegisterInterval ?? _config.RegisterInterval) * 3; // the map-server's registration timeout (Adjust)
        _membership ??= new PushMembership(_push, timeout, now);
        var change = _membership.Update(present, mentioned, seedAnswer, now);
        if (change.Added.Count > 0)
        {
            _log.Info("push-members", $"learned {string.Join(", ", change.Added)} from the group's {(seedAnswer is not null ? "peer-group registrations and seed group" : "peer-group registrations")}; now {_push.Members.Count} members");
        }
        if (change.Removed.Count > 0)
        {
            _log.Info("push-members", $"removed {string.Join(", ", change.Removed)}: no peer-group registration for more than {timeout.TotalSeconds:0.###} s (left or aged out); now {_push.Members.Count} members");
        }
        if (node.Etr is not { } etr) return [];
        if (change.MembersChanged)
        {
            var mapping = PushGroup.PeerGroupMapping(_push.Group, _push.MemberRlocs);
            var db = etr.Database.Select(d => d.Eid.SameKey(mapping.Eid) ? mapping : d).ToList();
            var actions = etr.UpdateDatabase(db, now); // re-registers to every member, the new ones included
            if (actions.Count > 0 || change.Arrived.Count == 0) return actions;
        }
        if (change.Arrived.Count > 0)
        {
            // A member that (re)appeared may have missed our last Map-Registers (it was not listening yet, or it
            // restarted): send ours now rather than leave it without them for up to a whole register interval.
            _log.Info("push-members", $"{string.Join(", ", change.Arrived)} registered to the group; sending our mappings now instead of at the next interval");
            return etr.RegisterNow(now);
        }
        return [];
    }

    /// <summary>Leaving the group: Map-Registers with TTL 0 for every mapping (call once the control thread stopped).</summary>
    public IReadOnlyList<ControlAction> Leave(ControlNode node, DateTimeOffset now) => node.Etr?.Withdraw(now) ?? [];

    public void Dispose()
    {
        _stopping = true;
        _refresher?.Dispose();
        foreach (var s in _dataSockets) s.Dispose();
        foreach (var s in _sendSockets) s.Dispose();
        _multicast?.Dispose();
        foreach (var t in _threads) t.Join(TimeSpan.FromSeconds(1));
    }
}
