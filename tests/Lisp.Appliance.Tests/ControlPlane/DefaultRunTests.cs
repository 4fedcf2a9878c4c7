using System.Net;
using System.Net.Sockets;
using Lisp.Appliance.Tests.Support;
using Lisp.TestSupport;

namespace Lisp.Appliance.Tests.ControlPlane;

/// <summary>`lisp-decent run` with no arguments: the embedded single node on 127.0.0.1:4342.</summary>
public sealed class DefaultRunTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(15);

    [SkippableFact]
    public void RunWithNoArgumentsRegistersItsDemoEidsAndLigResolvesThem()
    {
        try
        {
            using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            probe.Bind(new IPEndPoint(IPAddress.Loopback, 4342));
        }
        catch (SocketException e)
        {
            Skip.If(true, $"127.0.0.1:4342 (UDP) is in use ({e.SocketErrorCode}); `lisp-decent run` with no arguments needs it");
        }

        using var node = ApplianceProcess.Start("run");
        try
        {
            node.WaitForLine(@"node-started demo: roles itr, etr, map-server, map-resolver; .*listening on 127\.0\.0\.1:4342", Wait);
            node.WaitForLine(@"registration-accepted site 'demo' \[0\]10\.1\.1\.0/24 registered by 127\.0\.0\.1:4342 with RLOCs 127\.0\.0\.1", Wait);
            node.WaitForLine(@"registration-accepted site 'demo' \[0\]'demo-node' registered by 127\.0\.0\.1:4342", Wait);
            node.WaitForLine(@"map-notify-accepted .*\[0\]10\.1\.1\.0/24", Wait);
            // The embedded default asks its own ITR for [0]10.1.1.1/32 once it has registered.
            node.WaitForLine(@"map-cache-install \[0\]10\.1\.1\.0/24 -> 127\.0\.0\.1 p1 w100", Wait);

            var reply = Topology.LigAt("10.1.1.1", "127.0.0.1");
            var rec = reply.Single;
            Assert.Equal("[0]10.1.1.0/24", rec.Eid);
            Assert.Equal(["127.0.0.1 1 100"], rec.Rlocs.Select(l => $"{l.Address} {l.Priority} {l.Weight}").ToArray());
            Assert.Equal(180, rec.TtlSeconds); // record_ttl = "3m"
            Assert.Equal("127.0.0.1:4342", reply.From);

            var name = Topology.LigAt("[0]'demo-node'", "127.0.0.1");
            Assert.Equal("[0]'demo-node'", name.Single.Eid);
            Assert.Equal("127.0.0.1", Assert.Single(name.Single.Rlocs).Address);

            // Plain text output as an operator sees it.
            var (rc, text, err) = ApplianceProcess.Run(TimeSpan.FromSeconds(30), "lig", "10.1.1.1", "--map-resolver", "127.0.0.1");
            Assert.True(rc == 0, err);
            Assert.Contains("Received map-reply from 127.0.0.1:4342", text, StringComparison.Ordinal);
            Assert.Contains("EID [0]10.1.1.0/24, ttl 3 minutes, 1 RLOC(s)", text, StringComparison.Ordinal);
            Assert.Matches(@"RLOC 127\.0\.0\.1\s+priority\s+1 weight 100\s+up", text);

            node.Stop();
            node.WaitForLine(@"node-stopped demo: ", TimeSpan.FromSeconds(5));
            Assert.Equal(0, node.ExitCode);
        }
        finally
        {
            node.Kill();
        }
    }
}
