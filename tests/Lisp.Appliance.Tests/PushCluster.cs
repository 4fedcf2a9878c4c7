using System.Diagnostics;
using Lisp.TestSupport;

namespace Lisp.Appliance.Tests;

/// <summary>
/// A push group of `lisp-decent run` child processes on loopback (127.0.30.x), optionally inside a network
/// namespace the test created. Every wait is bounded; Dispose kills every child it started.
/// </summary>
internal sealed class PushCluster : IDisposable
{
    public static readonly string[][] DemoEids =
    [
        ["[0]1.1.1.1/32", "[0]'nexus-n1'"],
        ["[0]2.2.2.2/32", "[0]'nexus-n2'"],
        ["[0]3.3.3.3/32", "[0]'nexus-n3'"],
    ];

    private readonly string _dir = Directory.CreateTempSubdirectory("lisp-push-").FullName;
    public List<ApplianceProcess> Nodes { get; } = [];
    public string? Netns { get; init; }
    public int ControlPort { get; init; }
    public int DataPort { get; init; }
    public string Delivery { get; init; } = "replicate";
    public string Subnet { get; init; } = "127.0.30";
    public string Group { get; init; } = "224.1.1.1";
    public string RegisterInterval { get; init; } = "2s";
    /// <summary>decent.push.membership_refresh, when set (else the node's default: the register interval).</summary>
    public string? MembershipRefresh { get; init; }

    public string Address(int i) => $"{Subnet}.{i}";

    public string Config(int i, int count, string[] eids, string key = "decent-demo-key", string? seedGroup = null)
    {
        var members = Enumerable.Range(1, count).Where(j => j != i).Select(j => $"\"{Address(j)}:{ControlPort}\"");
        return $"""
            [node]
            name = "n{i}"
            roles = ["itr", "etr", "map-server", "map-resolver"]
            rlocs = ["{Address(i)}"]
            control_port = {ControlPort}
            log_level = "info"

            [decent.push]
            group = "{Group}"
            delivery = "{Delivery}"
            members = [{string.Join(", ", members)}]
            key = "{key}"
            register_interval = "{RegisterInterval}"
            data_port = {DataPort}
            {(seedGroup is not null ? $"seed_group = \"{seedGroup}\"" : "")}
            {(MembershipRefresh is not null ? $"membership_refresh = \"{MembershipRefresh}\"" : "")}
            {(Netns is not null ? "interface = \"lo\"" : "")}

            """ + string.Concat(eids.Select(e => $"[[database]]\neid = \"{e.Replace("\"", "\\\"", StringComparison.Ordinal)}\"\n"));
    }

    public ApplianceProcess Start(int i, int count, string[] eids, string key = "decent-demo-key", string? seedGroup = null)
    {
        var path = Path.Combine(_dir, $"n{i}.toml");
        File.WriteAllText(path, Config(i, count, eids, key, seedGroup));
        var n = ApplianceProcess.StartIn(Netns, $"n{i}", "run", "--config", path);
        Nodes.Add(n);
        return n;
    }

    public void StartDemo()
    {
        for (int i = 1; i <= 3; i++) Start(i, 3, DemoEids[i - 1]);
    }

    /// <summary>Runs `lisp-decent lig EID --map-resolver node` (in the namespace when there is one).</summary>
    public (int ExitCode, string Stdout, string Stderr) Lig(string eid, int node) =>
        ApplianceProcess.RunIn(Netns, TimeSpan.FromSeconds(30), "lig", eid, "--map-resolver", $"{Address(node)}:{ControlPort}",
            "--source", Address(node), "--count", "3", "--timeout", "1s");

    public void Dispose()
    {
        foreach (var n in Nodes) n.Dispose();
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>What the push tests read from a member's log.</summary>
internal static class PushNodeLog
{
    /// <summary>The newest `site-table` dump line (waits until one satisfies <paramref name="accept"/>).</summary>
    public static string SiteTable(this ApplianceProcess node, TimeSpan timeout, Func<string, bool> accept) =>
        node.WaitForNewest(@" site-table ", timeout, accept);
}

/// <summary>A network namespace made for one test (loopback up, multicast on, a route for 224/4), deleted on Dispose.</summary>
internal sealed class TestNetns : IDisposable
{
    public string Name { get; } = $"ldpush{Environment.ProcessId % 100000}x{Random.Shared.Next(1000)}";

    private TestNetns()
    {
    }

    /// <summary>The namespace, or null with the reason it could not be made.</summary>
    public static TestNetns? TryCreate(out string? reason)
    {
        var ns = new TestNetns();
        reason = Sh("ip", "netns", "add", ns.Name);
        if (reason is not null) return null;
        foreach (var cmd in new[]
        {
            new[] { "ip", "link", "set", "lo", "up" },
            ["ip", "link", "set", "lo", "multicast", "on"],
            ["ip", "route", "add", "224.0.0.0/4", "dev", "lo"],
        })
        {
            reason = Sh(["ip", "netns", "exec", ns.Name, .. cmd]);
            if (reason is not null)
            {
                ns.Dispose();
                return null;
            }
        }
        return ns;
    }

    /// <summary>Runs a command; null on success, else its error output.</summary>
    private static string? Sh(params string[] argv)
    {
        try
        {
            var psi = new ProcessStartInfo(argv[0]) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
            foreach (var a in argv.Skip(1)) psi.ArgumentList.Add(a);
            using var p = Process.Start(psi)!;
            var err = p.StandardError.ReadToEndAsync();
            if (!p.WaitForExit(10_000))
            {
                p.Kill();
                return $"{string.Join(' ', argv)}: timed out";
            }
            return p.ExitCode == 0 ? null : $"{string.Join(' ', argv)}: exit {p.ExitCode}: {err.Result.Trim()}";
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return $"{argv[0]}: {e.Message}";
        }
    }

    public void Dispose() => Sh("ip", "netns", "delete", Name);
}
