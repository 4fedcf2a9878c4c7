using System.Net;
using Lisp.Appliance.Config;
using Lisp.Decent;
using Lisp.Decent.Push;

namespace Lisp.Appliance.Hosting;

/// <summary>Builds a push-based LISP-Decent mapping system from [decent.push], resolving a seed group when one is named.</summary>
public static class PushHosting
{
    public static PushMappingSystem Create(NodeConfig c, DecentPushConfig p, Log log)
    {
        var self = c.ControlEndpoints();
        var delivery = p.Delivery switch
        {
            "multicast" => PushDelivery.Multicast,
            "replicate-encapsulated" => PushDelivery.ReplicateEncapsulated,
            _ => PushDelivery.Replicate,
        };
        var options = new PushOptions
        {
            Group = p.Group,
            Delivery = delivery,
            Self = self,
            Members = p.Members,
            Key = p.Key ?? c.RegistrationKey,
            ControlPort = c.ControlPort,
            DataPort = p.DataPort,
        };
        if (options.Validate() is { } error) throw new ConfigException("decent.push: " + error);
        var system = new PushMappingSystem(options);
        if (p.SeedGroupName is { Length: > 0 } seed)
        {
            var found = ResolveSeed(seed, p.Group, self[0].Address, log);
            if (found is { Count: > 0 })
            {
                system.SetMembers(p.Members.Concat(found.Select(a => new IPEndPoint(a, c.ControlPort))));
                log.Info("push-seed-group", $"seed group '{seed}' names {found.Count} member(s) of {p.Group}: {string.Join(", ", found)}");
            }
            else
            {
                log.Warn("push-seed-group", $"seed group '{seed}' gave no members for {p.Group}; using the configured ones ({p.Members.Count})");
            }
        }
        return system;
    }

    /// <summary>
    /// "lisp:ADDR[:PORT]" (or a bare ADDR[:PORT]): look the group up at that seed-group member (RFC 9962 4.4);
    /// "dns:NAME@SERVER[:PORT]" (or NAME@SERVER): the A/AAAA records of NAME (a pull-style DNS name) are the members.
    /// Bounded: about 4 s at most. Null when no answer came.
    /// </summary>
    internal static IReadOnlyList<IPAddress>? ResolveSeed(string seed, IPAddress group, IPAddress source, Log log)
    {
        var task = ResolveSeedAsync(seed, group, source, log, CancellationToken.None);
        return task.Wait(TimeSpan.FromSeconds(4)) ? task.Result : null;
    }

    /// <summary>Throws <see cref="ConfigException"/> when <paramref name="seed"/> is neither form (checked at start).</summary>
    internal static Task<IReadOnlyList<IPAddress>?> ResolveSeedAsync(string seed, IPAddress group, IPAddress source, Log? log,
        CancellationToken cancellationToken)
    {
        string s = seed.StartsWith("lisp:", StringComparison.Ordinal) ? seed[5..] : seed;
        if (!seed.StartsWith("dns:", StringComparison.Ordinal) && (IPEndPoint.TryParse(s, out var ep)))
        {
            if (ep.Port == 0) ep = new IPEndPoint(ep.Address, Lisp.Wire.DataHeader.ControlPort);
            return Guard(PushSeedGroup.LookupAsync(ep, group, ep.AddressFamily == source.AddressFamily ? source : null, TimeSpan.FromSeconds(1),
                tries: 3, cancellationToken), $"look-up of {group} at {ep}", log);
        }
        if (seed.StartsWith("dns:", StringComparison.Ordinal)) s = seed[4..];
        int at = s.IndexOf('@', StringComparison.Ordinal);
        if (at <= 0 || !DnsResolverOptions.TryParseServer(s[(at + 1)..], out var server) || server is null)
        {
            throw new ConfigException($"decent.push.seed_group: '{seed}' is neither lisp:ADDR[:PORT] nor dns:NAME@SERVER[:PORT]");
        }
        var dns = new DnsClientAddressSource(new DnsResolverOptions { Servers = [server], QueryTimeout = TimeSpan.FromSeconds(1) });
        return Guard(QueryDns(dns, s[..at], cancellationToken), $"DNS look-up of {s[..at]}", log);
    }

    private static async Task<IReadOnlyList<IPAddress>?> QueryDns(DnsClientAddressSource dns, string name, CancellationToken cancellationToken) =>
        (await dns.QueryAsync(name, cancellationToken).ConfigureAwait(false)).Addresses;

    private static async Task<IReadOnlyList<IPAddress>?> Guard(Task<IReadOnlyList<IPAddress>?> lookup, string what, Log? log)
    {
        try
        {
            return await lookup.ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            log?.Warn("push-seed-group", $"{what}: {e.Message}");
            return null;
        }
    }
}

/// <summary>
/// Re-resolves the seed group in the background every <c>membership_refresh</c> (RFC 9962 section 4: look the
/// group up periodically to learn membership changes). Each look-up is bounded (about 4 s); a failure keeps the
/// last good answer and retries with back-off (1 s, 2 s, 4 s, ... up to the refresh interval); reachability
/// changes are logged once. Never touches the control plane: the control thread takes each new answer with
/// <see cref="TakeAnswer"/> and merges it.
/// </summary>
public sealed class PushSeedRefresher : IDisposable
{
    private readonly string _seed;
    private readonly IPAddress _group;
    private readonly IPAddress _source;
    private readonly TimeSpan _interval;
    private readonly Log _log;
    private readonly CancellationTokenSource _stop = new();
    private Task? _task;
    /// <summary>The newest answer not yet taken by the control thread (swapped atomically).</summary>
    private IReadOnlyList<IPAddress>? _pending;

    public PushSeedRefresher(string seed, IPAddress group, IPAddress source, TimeSpan interval, Log log, bool reachableAtStart)
    {
        _seed = seed;
        _group = group;
        _source = source;
        _interval = interval;
        _log = log;
        Reachable = reachableAtStart;
    }

    /// <summary>Whether the last look-up got an answer.</summary>
    public bool Reachable { get; private set; }
    /// <summary>The last good answer (kept across failures).</summary>
    public IReadOnlyList<IPAddress> LastGood { get; private set; } = [];
    public long Lookups => Interlocked.Read(ref _lookups);
    private long _lookups;

    public void Start() => _task = Task.Run(() => RunAsync(_stop.Token));

    /// <summary>Whether an answer is waiting for <see cref="TakeAnswer"/>.</summary>
    public bool HasAnswer => Volatile.Read(ref _pending) is not null;

    /// <summary>The newest answer since the last call, or null (any thread; the control thread calls it).</summary>
    public IReadOnlyList<IPAddress>? TakeAnswer() => Interlocked.Exchange(ref _pending, null);

    private async Task RunAsync(CancellationToken token)
    {
        int failures = Reachable ? 0 : 1;
        while (!token.IsCancellationRequested)
        {
            var delay = failures == 0 ? _interval : Min(_interval, TimeSpan.FromSeconds(Math.Pow(2, Math.Min(failures - 1, 16))));
            try
            {
                await Task.Delay(delay, token).ConfigureAwait(false);
                Interlocked.Increment(ref _lookups);
                var answer = await PushHosting.ResolveSeedAsync(_seed, _group, _source, null, token)
                    .WaitAsync(TimeSpan.FromSeconds(5), token).ConfigureAwait(false);
                if (answer is { Count: > 0 })
                {
                    if (!Reachable || !answer.Select(a => a.ToString()).Order().SequenceEqual(LastGood.Select(a => a.ToString()).Order()))
                    {
                        _log.Info("push-seed-group", $"seed group '{_seed}' {(Reachable ? "now names" : "reachable again: names")} {answer.Count} member(s) of {_group}: {string.Join(", ", answer)}");
                    }
                    Reachable = true;
                    failures = 0;
                    LastGood = answer;
                    Interlocked.Exchange(ref _pending, answer);
                    continue;
                }
                Failed(ref failures, answer is null ? "no answer" : "no members");
            }
            catch (OperationCanceledException) when (token.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                Failed(ref failures, e.Message);
            }
        }
    }

    private void Failed(ref int failures, string why)
    {
        if (Reachable || failures == 0)
        {
            _log.Warn("push-seed-group", $"seed group '{_seed}' look-up of {_group} failed ({why}); keeping the last good list ({LastGood.Count} member(s)), retrying with back-off up to every {_interval.TotalSeconds:0.###} s");
        }
        Reachable = false;
        failures++;
    }

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;

    public void Dispose()
    {
        _stop.Cancel();
        try
        {
            _task?.Wait(TimeSpan.FromSeconds(2));
        }
        catch (AggregateException)
        {
            // cancelled
        }
        _stop.Dispose();
    }
}
