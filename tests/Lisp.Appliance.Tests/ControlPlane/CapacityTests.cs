using System.Text.Json;
using Lisp.Appliance.Config;
using Lisp.Appliance.Tests.Support;
using Lisp.TestSupport;

namespace Lisp.Appliance.Tests.ControlPlane;

/// <summary>
/// Capacity is configuration (issue 10): `[map_server] max_registrations`, a site's `max_registrations`,
/// `[node] control_threads`. Past the limit a registration is refused, counted with its reason, logged, and not
/// confirmed, also when the table is cut into control shards that share the limit.
/// </summary>
public sealed class CapacityTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    [Fact]
    public void Config_keys_parse_and_bad_values_are_refused()
    {
        const string baseToml = """
            [node]
            name = "cap"
            roles = ["map-server"]
            listen = ["127.0.0.1"]
            control_threads = 3

            [map_server]
            max_registrations = 1234

            [[site]]
            name = "a"
            key = "k"
            eid_prefixes = ["[0]10.0.0.0/8"]
            max_registrations = 99
            """;
        var c = ConfigLoader.Parse(baseToml);
        Assert.Equal(3, c.ControlThreads);
        Assert.Equal(1234, c.MaxRegistrations);
        Assert.Equal(99, Assert.Single(c.Sites).MaxRegistrations);
        Assert.Equal(Lisp.ControlPlane.MapServerOptions.DefaultMaxRegistrantsPerEid, c.MaxRegistrantsPerEid);
        Assert.Equal(7, ConfigLoader.Parse(baseToml.Replace("max_registrations = 1234", "max_registrations = 1234\nmax_registrants_per_eid = 7")).MaxRegistrantsPerEid);
        Assert.ThrowsAny<Exception>(() => ConfigLoader.Parse(baseToml.Replace("max_registrations = 1234", "max_registrations = 1234\nmax_registrants_per_eid = 0")));
        Assert.Equal(Lisp.ControlPlane.MapServerOptions.DefaultMaxRegistrations, ConfigLoader.Parse(baseToml.Replace("max_registrations = 1234", "")).MaxRegistrations);
        Assert.True(Lisp.ControlPlane.MapServerOptions.DefaultMaxRegistrations >= 1_000_000);
        Assert.ThrowsAny<Exception>(() => ConfigLoader.Parse(baseToml.Replace("max_registrations = 1234", "max_registrations = 0")));
        Assert.ThrowsAny<Exception>(() => ConfigLoader.Parse(baseToml.Replace("control_threads = 3", "control_threads = 0")));
    }

    [Fact]
    public void Registrations_past_the_configured_limit_are_refused_counted_and_not_confirmed_across_shards()
    {
        using var topology = new Topology("127.0.64");
        string node = topology.Address(1);
        string management = $"{node}:{ManagementNode.FreeTcpPort(node)}";
        var process = topology.StartNode("cap", NodeToml.MapServer("cap-64", node, [new("cap", "cap-key", "[0]10.64.0.0/16", "[0]10.65.0.0/16")],
            maxRegistrations: 50, controlThreads: 2, management: management));
        process.WaitForLine("management-started", Wait);
        // 80 EIDs over two /16 blocks (so both shards own some), one record per Map-Register.
        var (rc, stdout, stderr) = ApplianceProcess.Run(TimeSpan.FromSeconds(60), ["load", "register", "--target", topology.Endpoint(1),
            "--bind", topology.Address(2), "--eid-base", "[0]10.64.255.216/32", "--eids", "80", "--key", "cap-key", "--window", "8",
            "--timeout", "1s", "--duration", "20s", "--json"]);
        Assert.True(rc == 0, $"load exited {rc}\n{stdout}\n{stderr}");
        var step = JsonDocument.Parse(stdout).RootElement.GetProperty("steps")[0];
        Assert.Equal(50, step.GetProperty("accepted").GetInt64());      // unique Map-Notifies: only what was registered

        var (status, _, body) = Http.Send(management, "GET", "/api/counters");
        Assert.Equal(200, status);
        var control = JsonDocument.Parse(body).RootElement.GetProperty("control")[0];
        Assert.Equal(50, control.GetProperty("registrations").GetInt64());
        Assert.Equal(30, control.GetProperty("events").GetProperty("registration-refused").GetInt64());
        Assert.Equal(30, control.GetProperty("drops").GetProperty("registration-table-full").GetInt64());
        Assert.Equal(50, control.GetProperty("events").GetProperty("registration-accepted").GetInt64());
        process.WaitForLine(@"registration-refused site 'cap' \[0\]10\.6[45]\.\d+\.\d+/32 from .*registration table full \(50, map_server.max_registrations\)", Wait);
        process.WaitForLine("2 control thread", Wait);
    }

    [Fact]
    public void A_captured_map_register_replayed_at_the_running_node_gets_no_second_map_notify_and_is_counted()
    {
        // Issue 12, item 5: the same bytes again (a replay) are refused: no Map-Notify, counted replayed-nonce in
        // /api/counters and /metrics; a Map-Register with a fresh nonce is still confirmed.
        using var topology = new Topology("127.0.66");
        string node = topology.Address(1);
        string management = $"{node}:{ManagementNode.FreeTcpPort(node)}";
        var process = topology.StartNode("replay", NodeToml.MapServer("replay-66", node, [new("replay", "replay-key", "[0]10.66.0.0/16")],
            controlThreads: 2, management: management));
        process.WaitForLine("management-started", Wait);
        var key = System.Text.Encoding.UTF8.GetBytes("replay-key");
        byte[] Signed(ulong nonce) => new Lisp.Wire.MapRegister
        {
            Nonce = nonce, Algorithm = Lisp.Wire.AuthAlgorithm.HmacSha256_128, WantMapNotify = true, ProxyReply = true,
            Records = [new Lisp.Wire.MappingRecord(Lisp.Wire.EidPrefix.Parse("[0]10.66.1.0/24"), [new Lisp.Wire.LocatorRecord(Lisp.Wire.IpAddress.Parse(topology.Address(2)))], 3)],
        }.ToSignedBytes(key);
        using var etr = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Dgram, System.Net.Sockets.ProtocolType.Udp);
        etr.Bind(new System.Net.IPEndPoint(System.Net.IPAddress.Parse(topology.Address(2)), 0));
        var buffer = new byte[65535];
        ulong? Notified(int timeoutMs)
        {
            etr.ReceiveTimeout = timeoutMs;
            try
            {
                int n = etr.Receive(buffer);
                Assert.True(Lisp.Wire.ControlMessage.TryDecode(buffer.AsSpan(0, n), out var m).IsOk);
                return Assert.IsType<Lisp.Wire.MapNotify>(m).Nonce;
            }
            catch (System.Net.Sockets.SocketException)
            {
                return null;
            }
        }

        var captured = Signed(0x5eed_0000_0000_0001);
        etr.SendTo(captured, topology.IpEndpoint(1));
        Assert.Equal(0x5eed_0000_0000_0001UL, Notified(5000));
        etr.SendTo(captured, topology.IpEndpoint(1));                    // the replay
        Assert.Null(Notified(1500));
        etr.SendTo(Signed(0x5eed_0000_0000_0002), topology.IpEndpoint(1)); // a real refresh
        Assert.Equal(0x5eed_0000_0000_0002UL, Notified(5000));

        var (status, _, body) = Http.Send(management, "GET", "/api/counters");
        Assert.Equal(200, status);
        var control = JsonDocument.Parse(body).RootElement.GetProperty("control")[0];
        Assert.Equal(1, control.GetProperty("drops").GetProperty("replayed-nonce").GetInt64());
        Assert.Equal(1, control.GetProperty("events").GetProperty("registration-refused").GetInt64());
        Assert.Equal(2, control.GetProperty("events").GetProperty("registration-accepted").GetInt64());
        var (mstatus, _, metrics) = Http.Send(management, "GET", "/metrics");
        Assert.Equal(200, mstatus);
        Assert.Matches(@"lisp_control_drops_total\{[^}]*reason=""replayed-nonce""[^}]*\} 1", metrics);
        process.WaitForLine(@"registration-refused site 'replay' \[0\]10\.66\.1\.0/24 from .*replayed-nonce", Wait);
    }

    [Fact]
    public void A_map_register_of_250_records_larger_than_a_send_slot_is_received_confirmed_whole()
    {
        // 250 IPv6 /128 records of 40 bytes: a 10 KB Map-Register, past the shards' 9 KB send slots (the Map-Notify goes
        // through the transport's own send) and through their 64 KB receive slots (a 9 KB receive slot truncated it).
        using var topology = new Topology("127.0.65");
        string node = topology.Address(1);
        string management = $"{node}:{ManagementNode.FreeTcpPort(node)}";
        var process = topology.StartNode("big", NodeToml.MapServer("big-65", node, [new("big", "big-key", "[0]2001:db8::/32")],
            controlThreads: 2, management: management));
        process.WaitForLine("management-started", Wait);
        // Built here (the load generator keeps its messages within 9 KB): one Map-Register, M bit, HMAC-SHA-256.
        var key = System.Text.Encoding.UTF8.GetBytes("big-key");
        var register = new Lisp.Wire.MapRegister
        {
            Nonce = 0x0123456789abcdef, Algorithm = Lisp.Wire.AuthAlgorithm.HmacSha256_128, WantMapNotify = true, ProxyReply = true,
            Records = Enumerable.Range(0, 250).Select(i => new Lisp.Wire.MappingRecord(
                Lisp.Wire.EidPrefix.Parse($"[0]2001:db8:{i:x}::1/128"), [new Lisp.Wire.LocatorRecord(Lisp.Wire.IpAddress.Parse(topology.Address(2)))], 3)).ToList(),
        };
        var bytes = register.ToSignedBytes(key);
        Assert.True(bytes.Length > 9216, $"{bytes.Length} bytes");
        using var etr = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Dgram, System.Net.Sockets.ProtocolType.Udp);
        etr.Bind(new System.Net.IPEndPoint(System.Net.IPAddress.Parse(topology.Address(2)), 0));
        etr.ReceiveTimeout = 5000;
        etr.SendTo(bytes, topology.IpEndpoint(1));
        var buffer = new byte[65535];
        int n = etr.Receive(buffer);
        var reply = buffer.AsSpan(0, n).ToArray();
        Assert.True(Lisp.Wire.ControlMessage.TryDecode(reply, out var m).IsOk);
        var notify = Assert.IsType<Lisp.Wire.MapNotify>(m);
        Assert.Equal(register.Nonce, notify.Nonce);
        Assert.Equal(250, notify.Records.Count);
        Assert.True(Lisp.Wire.MessageAuthentication.Verify(reply, key));
        var (status, _, body) = Http.Send(management, "GET", "/api/counters");
        Assert.Equal(200, status);
        var control = JsonDocument.Parse(body).RootElement.GetProperty("control")[0];
        Assert.Equal(250, control.GetProperty("registrations").GetInt64());
        Assert.Equal(0, control.GetProperty("drops").GetProperty("malformed").GetInt64());
    }
}
