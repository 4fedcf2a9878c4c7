using System.Net;
using System.Runtime.InteropServices;
using Lisp.Appliance.Config;
using Lisp.Appliance.Hosting;
using Lisp.Appliance.Management;
using Lisp.ControlPlane;
using Lisp.Wire;

namespace Lisp.Appliance.Cli;

/// <summary>`lisp-decent run`: the appliance itself.</summary>
public static class RunCommand
{
    public const string Help = """
        Usage: lisp-decent run [--config FILE] [options]

        Runs the appliance: the control plane roles named in the config (itr, etr, map-server,
        map-resolver) on UDP control_port of each listen address, with the mapping system the config
        chooses (static map-servers/resolvers, [decent.pull] or [decent.push]). Logs one line per event
        on stdout. Stops cleanly on SIGINT/SIGTERM (withdrawing its registrations). SIGHUP reloads
        the config file: a file that does not validate is refused (one config-reload-failed line, the
        node keeps its config); otherwise sites, database mappings, keys, register interval, limits and
        the log level change in place, keeping registrations, the map-cache and the sockets; settings
        that need a restart (listen, roles, control_threads, mapping system, ITR, [data_plane],
        [management]) keep their old value and are logged. Under systemd (Type=notify) it sends
        READY=1, RELOADING=1, STOPPING=1 and WATCHDOG=1 to $NOTIFY_SOCKET itself.

        Without --config it runs the embedded default: one node on 127.0.0.1 that is ETR + ITR +
        map-server + map-resolver for itself, registers the demo EIDs [0]10.1.1.0/24 and [0]'demo-node',
        and looks up [0]10.1.1.1/32 once it has registered (try `lisp-decent lig 10.1.1.1 --map-resolver 127.0.0.1`
        in another terminal). Example configs: packaging/examples/.

        With [management] listen = "ADDRESS:PORT" it also serves a read-only management API, Prometheus
        metrics (/metrics) and a web page (/) there; `lisp-decent show --help` reads them.

        Options:
          --config FILE          TOML config (see packaging/examples/*.toml)
          --log-level LEVEL      debug | info | warning | error (overrides node.log_level)
          --request EID          ask the ITR to resolve EID shortly after start (repeatable)
          --check                validate the config, print a summary and exit
          --print-default-config print the embedded default config and exit
          -h, --help             show this help

        Exit status: 0 clean stop, 1 start-up failure (bad config, address in use), 2 usage error.
        """;

    public static int Run(IReadOnlyList<string> args, TextWriter stdout, TextWriter stderr)
    {
        var cl = CommandLine.Parse(args, ["config", "log-level", "request"], ["check", "print-default-config"]);
        if (cl.Has("help"))
        {
            stdout.WriteLine(Help);
            return 0;
        }
        if (cl.Error is not null || cl.Positional.Count > 0)
        {
            stderr.WriteLine($"run: {cl.Error ?? "unexpected argument " + cl.Positional[0]} (see lisp-decent run --help)");
            return 2;
        }
        if (cl.Has("print-default-config"))
        {
            stdout.Write(DefaultConfigText());
            return 0;
        }
        var level = cl.Value("log-level");
        if (level is not null && level is not ("debug" or "info" or "warning" or "error"))
        {
            stderr.WriteLine($"run: --log-level '{level}' is not debug, info, warning or error");
            return 2;
        }
        var requests = new List<EidPrefix>();
        foreach (var r in cl.Values("request"))
        {
            if (!EidPrefix.TryParse(r, out var eid, out var err))
            {
                stderr.WriteLine($"run: --request: {err}");
                return 2;
            }
            requests.Add(eid!);
        }

        NodeConfig config;
        string source = cl.Value("config") ?? "embedded default config";
        try
        {
            config = cl.Value("config") is { } path ? ConfigLoader.LoadFile(path) : ConfigLoader.Parse(DefaultConfigText(), source);
        }
        catch (ConfigException e)
        {
            stderr.WriteLine($"run: bad config: {e.Message}");
            return 1;
        }
        if (cl.Value("config") is null && requests.Count == 0)
        {
            requests.Add(EidPrefix.Parse("[0]10.1.1.1/32"));
        }
        if (cl.Has("check"))
        {
            stdout.WriteLine($"{source}: ok: node {config.Name}, roles {string.Join(", ", config.Roles)}, {config.Sites.Count} site(s), {config.Database.Count} database mapping(s)");
            return 0;
        }

        if (level is not null) config = config with { LogLevel = level };   // the roles skip building lines below it too
        using var log = new Log(Log.ParseLevel(config.LogLevel), stdout, config.LogRate);
        IMappingSystem mapping;
        try
        {
            mapping = MappingSystems.Create(config, log);
        }
        catch (ConfigException e)
        {
            stderr.WriteLine($"run: bad config: {e.Message}");
            return 1;
        }
        NodeHost host;
        try
        {
            host = new NodeHost(config, mapping, log);
        }
        catch (InvalidOperationException e)
        {
            stderr.WriteLine($"run: cannot start: {e.Message}");
            (mapping as IDisposable)?.Dispose();
            return 1;
        }

        using var stopped = new ManualResetEventSlim();
        using var reloadAsked = new AutoResetEvent(false);
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stopped.Set(); });
        using var intr = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stopped.Set(); });
        bool hupWasIgnored = SignalDisposition.UnignoreHangup();
        using var hup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, c => { c.Cancel = true; reloadAsked.Set(); });
        using var notify = SystemdNotify.FromEnvironment(log);
        log.Info("config", $"loaded {source}");
        if (hupWasIgnored) log.Info("signal", "SIGHUP was ignored by whoever started this process (nohup?); it is taken again: SIGHUP reloads the config");
        DataPlaneHost? dataPlane = null;
        if (config.DataPlane is { } dpc)
        {
            try
            {
                dataPlane = DataPlaneHost.Start(dpc, config, host, log);
            }
            catch (Exception e) when (e is IOException or InvalidOperationException)
            {
                stderr.WriteLine($"run: cannot start the data plane: {e.Message}");
                host.Dispose();
                (mapping as IDisposable)?.Dispose();
                return 1;
            }
        }
        ManagementServer? management = null;
        if (config.Management is { } mep)
        {
            try
            {
                management = ManagementServer.Start(mep, host, dataPlane, log);
            }
            catch (HttpListenerException e)
            {
                stderr.WriteLine($"run: cannot start the management API on {mep}: {e.Message}");
                dataPlane?.Dispose();
                host.Dispose();
                (mapping as IDisposable)?.Dispose();
                return 1;
            }
        }
        host.Start();
        if (requests.Count > 0)
        {
            // Give the ETR a moment to register first, then resolve through the mapping system like any ITR miss.
            _ = Task.Delay(TimeSpan.FromSeconds(2)).ContinueWith(_ =>
            {
                foreach (var eid in requests) host.RequestLookup(eid);
            }, TaskScheduler.Default);
        }
        notify.Ready($"{config.Name}: listening on {string.Join(", ", host.LocalEndpoints)}");
        notify.StartWatchdog(host.Ping);
        while (WaitHandle.WaitAny([stopped.WaitHandle, reloadAsked]) == 1)
        {
            Reload(cl.Value("config"), level, host, log, notify);
        }
        log.Info("signal", "stopping");
        notify.Stopping();
        management?.Dispose();
        dataPlane?.Dispose();
        host.Dispose();
        (mapping as IDisposable)?.Dispose();
        return 0;
    }

    /// <summary>SIGHUP: re-reads and validates the config, then applies it (NodeHost.Reload); a bad file changes nothing.</summary>
    private static void Reload(string? path, string? levelOverride, NodeHost host, Log log, SystemdNotify notify)
    {
        notify.Reloading();
        log.Info("signal", $"SIGHUP: reloading {path ?? "the embedded default config"}");
        try
        {
            NodeConfig next;
            try
            {
                next = path is not null ? ConfigLoader.LoadFile(path) : ConfigLoader.Parse(DefaultConfigText(), "embedded default config");
            }
            catch (ConfigException e)
            {
                host.ReloadRefused($"bad config: {e.Message}");
                return;
            }
            if (levelOverride is not null) next = next with { LogLevel = levelOverride };   // the command line still wins
            host.Reload(next, TimeSpan.FromSeconds(10));
        }
        finally
        {
            notify.Ready($"{host.Config.Name}: running ({host.Reloads} reload(s), {host.ReloadFailures} refused)");
        }
    }

    internal static string DefaultConfigText()
    {
        using var s = typeof(RunCommand).Assembly.GetManifestResourceStream("default-config.toml")
            ?? throw new InvalidOperationException("embedded default config is missing from the binary");
        using var r = new StreamReader(s);
        return r.ReadToEnd();
    }
}
