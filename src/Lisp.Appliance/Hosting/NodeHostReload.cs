using Lisp.Appliance.Config;
using Lisp.ControlPlane;

namespace Lisp.Appliance.Hosting;

// Config reload (SIGHUP): the new config is compared with the running one (ConfigReload), what can change in place is
// applied on the control threads, the rest is kept and logged as needing a restart. The roles are not thread-safe: the
// change runs on shard 0 with every other shard parked (as a management read does), so no shard sees half a change.
public sealed partial class NodeHost
{
    private long _reloads, _reloadFailures;

    /// <summary>Reloads applied since start.</summary>
    public long Reloads => Interlocked.Read(ref _reloads);

    /// <summary>Reloads refused (bad config, or applying failed); the node kept its config.</summary>
    public long ReloadFailures => Interlocked.Read(ref _reloadFailures);

    /// <summary>
    /// Counts and logs a reload that was refused before it reached the node (the file did not read or validate):
    /// one line naming the error, and the config-reload-failed counter (also in /metrics).
    /// </summary>
    public void ReloadRefused(string why)
    {
        Interlocked.Increment(ref _reloadFailures);
        Node.Counters.Count(ControlEvent.ConfigReloadFailed);
        _log.Error("config-reload-failed", $"{why}; still running the previous config");
    }

    /// <summary>
    /// Applies <paramref name="next"/> (already validated) as far as it can without a restart; blocks until the control
    /// threads did it (at most <paramref name="timeout"/>). False (logged, counted) when applying failed: the node keeps
    /// running, with the old config where the change did not get through.
    /// </summary>
    public bool Reload(NodeConfig next, TimeSpan timeout)
    {
        var plan = ConfigReload.Compare(_config, next);
        foreach (var r in plan.NeedRestart)
        {
            _log.Warn("config-reload", $"{r} changed: needs restart; kept the old value");
        }
        var applied = plan.Applied;
        ControlNodeOptions fresh;
        try
        {
            fresh = PushIo.Adjust(BuildOptions(applied, _transport.LocalEndpoints), applied, Node.MappingSystem);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            ReloadRefused($"cannot build the new options: {e.Message}");
            return false;
        }
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        void Apply()
        {
            try
            {
                Parked(() =>
                {
                    var now = Clock.GetUtcNow();
                    // Map-servers of every shard (each holds its slice of the table), shard 0 last: its log lines count
                    // what every slice dropped (one dictionary per map-server node, by name).
                    var dropped = new Dictionary<string, Dictionary<string, int>>(StringComparer.Ordinal);
                    foreach (var shard in Enumerable.Reverse(_shards))
                    {
                        foreach (var (node, label) in shard.Nodes.All)
                        {
                            if (node.MapServer is not { } ms || fresh.MapServer is not { } fm) continue;
                            if (!dropped.TryGetValue(node.Options.Name, out var counts)) dropped[node.Options.Name] = counts = new(StringComparer.Ordinal);
                            var lines = ms.Reconfigure(ms.Options with
                            {
                                Sites = fm.Sites,
                                RegistrationTimeout = fm.RegistrationTimeout,
                                MaxRegistrations = fm.MaxRegistrations,
                                MaxRegistrantsPerEid = fm.MaxRegistrantsPerEid,
                                LogLevel = fm.LogLevel,
                            }, counts);
                            if (shard.Index == 0) Execute(shard, lines, label);
                        }
                    }
                    // The ETR lives on shard 0 only: its withdrawals and registrations go out from here.
                    foreach (var (node, label) in _shards[0].Nodes.All)
                    {
                        if (node.Etr is { } etr && fresh.Etr is { } fe) Execute(_shards[0], etr.Reconfigure(fe, now), label);
                    }
                    return true;
                }, timeout);
                FlushSends(_shards[0]);
                done.TrySetResult();
            }
            catch (Exception e)
            {
                done.TrySetException(e);
            }
        }
        _log.Minimum = Log.ParseLevel(applied.LogLevel);
        Post(_shards[0], (Action)Apply, force: true);
        try
        {
            if (!done.Task.Wait(timeout)) throw new TimeoutException("the control threads did not apply it in time");
        }
        catch (Exception e)
        {
            var inner = e is AggregateException { InnerException: { } i } ? i : e;
            ReloadRefused($"applying the new config failed: {inner.GetType().Name}: {inner.Message}");
            return false;
        }
        _config = applied;
        Interlocked.Increment(ref _reloads);
        Node.Counters.Count(ControlEvent.ConfigReloaded);
        _log.Info("config-reloaded", plan.Changed.Count == 0 && plan.NeedRestart.Count == 0
            ? "no change"
            : $"applied: {(plan.Changed.Count == 0 ? "nothing" : string.Join(", ", plan.Changed))}"
              + (plan.NeedRestart.Count == 0 ? "" : $"; needs restart (kept): {string.Join(", ", plan.NeedRestart)}"));
        return true;
    }

    /// <summary>
    /// True when shard 0 runs a posted no-op within <paramref name="timeout"/>: the control loop is alive (not stuck
    /// in a turn). Used by the watchdog, so it vouches only for a loop that answers.
    /// </summary>
    public bool Ping(TimeSpan timeout)
    {
        using var answered = new ManualResetEventSlim();
        var a = answered;
        Post(_shards[0], (Action)(() =>
        {
            try
            {
                a.Set();
            }
            catch (ObjectDisposedException)
            {
                // the pinger gave up already
            }
        }), force: true);
        return answered.Wait(timeout);
    }
}
