using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Lisp.TestSupport;

namespace Lisp.Appliance.Tests.Support;

/// <summary>
/// A set of `lisp-decent run` processes on one 127.a.b.x network: each node on its own loopback address, all on
/// the same (free) control port. Configs live in a temp folder; Dispose kills every process and removes it.
/// </summary>
public sealed class Topology : IDisposable
{
    private readonly List<ApplianceProcess> _processes = [];
    private readonly object _gate = new();

    /// <param name="network">the first three octets, e.g. "127.0.20"; each test class uses its own</param>
    public Topology(string network)
    {
        Network = network;
        Dir = Directory.CreateTempSubdirectory("lisp-appliance-test-").FullName;
        Port = Loopback.FreeUdpPort(Address(1));
    }

    public string Network { get; }
    public string Dir { get; }
    public int Port { get; }

    /// <summary>"127.0.20.<paramref name="host"/>".</summary>
    public string Address(int host) => $"{Network}.{host}";

    /// <summary>"127.0.20.<paramref name="host"/>:PORT".</summary>
    public string Endpoint(int host) => $"{Address(host)}:{Port}";

    public IPEndPoint IpEndpoint(int host) => new(IPAddress.Parse(Address(host)), Port);

    /// <summary>Writes <paramref name="toml"/> as NAME.toml (the literal "{PORT}" replaced) and returns its path.</summary>
    public string WriteConfig(string name, string toml)
    {
        var path = Path.Combine(Dir, name + ".toml");
        File.WriteAllText(path, toml.Replace("{PORT}", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal));
        return path;
    }

    /// <summary>Starts `lisp-decent run --config NAME.toml [extra]` and waits until it logs node-started.</summary>
    public ApplianceProcess StartNode(string name, string toml, params string[] extra)
    {
        var path = WriteConfig(name, toml);
        var p = ApplianceProcess.Start(["run", "--config", path, .. extra]);
        lock (_gate) _processes.Add(p);
        p.WaitForLine(@" node-started ", TimeSpan.FromSeconds(20));
        return p;
    }

    /// <summary>Runs `lisp-decent lig EID --map-resolver ENDPOINT --json` and returns the parsed reply (exit code checked).</summary>
    public LigReply Lig(string eid, int resolverHost, int count = 3, string timeout = "1s") => LigAt(eid, Endpoint(resolverHost), count, timeout);

    public static LigReply LigAt(string eid, string resolver, int count = 3, string timeout = "1s")
    {
        var (rc, stdout, stderr) = ApplianceProcess.Run(TimeSpan.FromSeconds(60), "lig", eid, "--map-resolver", resolver, "--json", "--count", count.ToString(System.Globalization.CultureInfo.InvariantCulture), "--timeout", timeout);
        Assert.True(rc == 0, $"lig {eid} via {resolver} exited {rc}; stdout:\n{stdout}\nstderr:\n{stderr}");
        return LigReply.Parse(stdout);
    }

    /// <summary>Polls lig until <paramref name="accept"/> holds (bounded), returning the last reply.</summary>
    public LigReply LigUntil(string eid, int resolverHost, Func<LigReply, bool> accept, TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            var r = Lig(eid, resolverHost);
            if (accept(r) || sw.Elapsed > timeout) return r;
            Thread.Sleep(300);
        }
    }

    public void Dispose()
    {
        List<ApplianceProcess> ps;
        lock (_gate) ps = [.. _processes];
        foreach (var p in ps) p.Dispose();
        try
        {
            Directory.Delete(Dir, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}

/// <summary>`lig --json` output.</summary>
public sealed record LigReply(string Eid, bool Replied, string? From, IReadOnlyList<LigRecordView> Records, string Raw)
{
    public LigRecordView Single => Assert.Single(Records);

    public static LigReply Parse(string json)
    {
        using var doc = JsonDocument.Parse(json);
        var root = doc.RootElement;
        var records = new List<LigRecordView>();
        foreach (var r in root.GetProperty("records").EnumerateArray())
        {
            var rlocs = r.GetProperty("rlocs").EnumerateArray()
                .Select(l => new LigRlocView(l.GetProperty("address").GetString()!, l.GetProperty("priority").GetInt32(), l.GetProperty("weight").GetInt32(), l.GetProperty("up").GetBoolean()))
                .ToList();
            records.Add(new LigRecordView(r.GetProperty("eid").GetString()!, r.GetProperty("ttl-seconds").GetInt32(), r.GetProperty("action").GetString()!,
                r.GetProperty("authoritative").GetBoolean(), rlocs));
        }
        return new LigReply(root.GetProperty("eid").GetString()!, root.GetProperty("replied").GetBoolean(),
            root.TryGetProperty("from", out var f) && f.ValueKind == JsonValueKind.String ? f.GetString() : null, records, json);
    }

    public bool IsPositive => Records.Count > 0 && Records.All(r => r.Rlocs.Count > 0);
    public bool IsNegative => Records.Count > 0 && Records.All(r => r.Rlocs.Count == 0);
}

public sealed record LigRecordView(string Eid, int TtlSeconds, string Action, bool Authoritative, IReadOnlyList<LigRlocView> Rlocs);

public sealed record LigRlocView(string Address, int Priority, int Weight, bool Up);

/// <summary>A plain UDP socket on a loopback address, for hand-built packets to a node.</summary>
public sealed class TestSocket : IDisposable
{
    private readonly Socket _socket = new(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);

    public TestSocket(string address)
    {
        _socket.Bind(new IPEndPoint(IPAddress.Parse(address), 0));
    }

    public IPEndPoint Local => (IPEndPoint)_socket.LocalEndPoint!;

    public void Send(byte[] payload, IPEndPoint to) => _socket.SendTo(payload, to);

    /// <summary>The first datagram that arrives within <paramref name="timeout"/>, or null.</summary>
    public byte[]? Receive(TimeSpan timeout)
    {
        if (!_socket.Poll((int)timeout.TotalMicroseconds, SelectMode.SelectRead)) return null;
        var buffer = new byte[65535];
        EndPoint from = new IPEndPoint(IPAddress.Any, 0);
        try
        {
            int n = _socket.ReceiveFrom(buffer, ref from);
            return buffer.AsSpan(0, n).ToArray();
        }
        catch (SocketException)
        {
            return null;
        }
    }

    public void Dispose() => _socket.Dispose();
}

/// <summary>Parses the timestamp at the start of a node's log line.</summary>
public static class LogLine
{
    public static DateTimeOffset Time(string line) =>
        DateTimeOffset.Parse(line[..line.IndexOf(' ', StringComparison.Ordinal)], System.Globalization.CultureInfo.InvariantCulture,
            System.Globalization.DateTimeStyles.AssumeUniversal);
}
