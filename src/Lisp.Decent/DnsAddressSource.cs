using System.Net;
using System.Net.Sockets;
using DnsClient;
using DnsClient.Protocol;

namespace Lisp.Decent;

/// <summary>
/// DNS settings for pull mode (and for a push system resolving its seed-group name). Only the listed
/// servers are asked: there is no fallback to the system resolver, so a test or an isolated deployment
/// never leaks queries elsewhere.
/// </summary>
public sealed record DnsResolverOptions
{
    /// <summary>Name servers, tried in order. Required (at least one).</summary>
    public IReadOnlyList<IPEndPoint> Servers { get; init; } = [];

    /// <summary>Wait for one answer from one server.</summary>
    public TimeSpan QueryTimeout { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Extra tries per server inside one query (DnsClient's Retries).</summary>
    public int QueryRetries { get; init; } = 1;

    /// <summary>Ask AAAA as well as A (the text says both; lispers.net only uses A).</summary>
    public bool QueryAaaa { get; init; } = true;

    /// <summary>Floor for the record TTL (dnsmasq serves TTL 0 unless --local-ttl); also the refresh period of a TTL-0 answer.</summary>
    public TimeSpan MinimumTtl { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Ceiling for the record TTL, so a changed map-server set is noticed within this time.</summary>
    public TimeSpan MaximumTtl { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>Refresh in the background when this fraction of the TTL has passed (0.1 .. 1).</summary>
    public double RefreshAtFraction { get; init; } = 0.8;

    /// <summary>After TTL expiry with every refresh failing, keep serving the last good answer this long.</summary>
    public TimeSpan Grace { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>First retry delay after a failed resolution; doubles per failure up to <see cref="RetryMaximum"/>.</summary>
    public TimeSpan RetryInitial { get; init; } = TimeSpan.FromSeconds(1);

    public TimeSpan RetryMaximum { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Parses "address:port" / "[v6]:port" / bare address (port 53).</summary>
    public static bool TryParseServer(string text, out IPEndPoint? endPoint)
    {
        endPoint = null;
        text = text.Trim();
        if (IPAddress.TryParse(text, out var bare) && !text.StartsWith('['))
        {
            endPoint = new IPEndPoint(bare, 53);
            return true;
        }
        if (IPEndPoint.TryParse(text, out var ep) && ep.Port != 0)
        {
            endPoint = ep;
            return true;
        }
        return false;
    }

    public string? Validate()
    {
        if (Servers.Count == 0) return "at least one DNS server (address:port) is needed";
        if (QueryTimeout <= TimeSpan.Zero) return "DNS query timeout must be positive";
        if (QueryRetries is < 0 or > 10) return "DNS query retries must be 0..10";
        if (MinimumTtl < TimeSpan.Zero || MaximumTtl < MinimumTtl || MaximumTtl <= TimeSpan.Zero) return "DNS TTL bounds must satisfy 0 <= minimum <= maximum, maximum > 0";
        if (RefreshAtFraction is < 0.1 or > 1.0) return "DNS refresh fraction must be 0.1..1";
        if (Grace < TimeSpan.Zero) return "DNS grace must not be negative";
        if (RetryInitial <= TimeSpan.Zero || RetryMaximum < RetryInitial) return "DNS retry delays must satisfy 0 < initial <= maximum";
        return null;
    }
}

public enum DnsOutcome
{
    /// <summary>At least one A/AAAA record.</summary>
    Ok,
    /// <summary>The name exists with no A or AAAA record.</summary>
    NoData,
    NxDomain,
    /// <summary>SERVFAIL, REFUSED, a malformed answer or another non-zero response code.</summary>
    ServerError,
    Timeout,
    /// <summary>Socket or other local error.</summary>
    Error,
}

/// <summary>One resolution of one name: every A and AAAA address, and the smallest record TTL.</summary>
public sealed record DnsAnswer(DnsOutcome Outcome, IReadOnlyList<IPAddress> Addresses, TimeSpan Ttl, string? Detail = null)
{
    public static DnsAnswer Failed(DnsOutcome outcome, string detail) => new(outcome, [], TimeSpan.Zero, detail);
}

/// <summary>Something that resolves a name to its A and AAAA addresses once (no caching). The seam for tests.</summary>
public interface IDnsAddressSource
{
    Task<DnsAnswer> QueryAsync(string name, CancellationToken cancellationToken);
}

/// <summary>
/// <see cref="IDnsAddressSource"/> over DnsClient's LookupClient: only the configured servers, no DnsClient
/// cache (TTL handling is <see cref="DnsAddressSetCache"/>'s job), A and AAAA asked in parallel.
/// </summary>
public sealed class DnsClientAddressSource : IDnsAddressSource
{
    private readonly LookupClient _client;
    private readonly bool _aaaa;

    public DnsClientAddressSource(DnsResolverOptions options)
    {
        if (options.Validate() is { } err) throw new ArgumentException(err, nameof(options));
        var o = new LookupClientOptions(options.Servers.ToArray())
        {
            AutoResolveNameServers = false,
            UseCache = false,
            Timeout = options.QueryTimeout,
            Retries = options.QueryRetries,
            ThrowDnsErrors = false,
            ContinueOnDnsError = true,
            ContinueOnEmptyResponse = false,
            UseTcpFallback = true,
            UseRandomNameServer = false,
        };
        _client = new LookupClient(o);
        _aaaa = options.QueryAaaa;
    }

    public async Task<DnsAnswer> QueryAsync(string name, CancellationToken cancellationToken)
    {
        var a = One(name, QueryType.A, cancellationToken);
        var aaaa = _aaaa ? One(name, QueryType.AAAA, cancellationToken) : Task.FromResult(new DnsAnswer(DnsOutcome.NoData, [], TimeSpan.Zero));
        var results = await Task.WhenAll(a, aaaa).ConfigureAwait(false);
        return Combine(results[0], results[1]);
    }

    /// <summary>
    /// A and AAAA into one answer: records from either are used (with a note when the other family failed);
    /// with no records at all, the A query's failure decides (NXDOMAIN, timeout ...).
    /// </summary>
    public static DnsAnswer Combine(DnsAnswer a, DnsAnswer aaaa)
    {
        var addrs = a.Addresses.Concat(aaaa.Addresses).ToArray();
        if (addrs.Length > 0)
        {
            var ttls = new List<TimeSpan>(2);
            if (a.Addresses.Count > 0) ttls.Add(a.Ttl);
            if (aaaa.Addresses.Count > 0) ttls.Add(aaaa.Ttl);
            string? note = null;
            if (a.Outcome is not (DnsOutcome.Ok or DnsOutcome.NoData)) note = "A query failed: " + a.Detail;
            else if (aaaa.Outcome is not (DnsOutcome.Ok or DnsOutcome.NoData)) note = "AAAA query failed: " + aaaa.Detail;
            return new DnsAnswer(DnsOutcome.Ok, addrs, ttls.Min(), note);
        }
        if (a.Outcome == DnsOutcome.NoData && aaaa.Outcome is not (DnsOutcome.Ok or DnsOutcome.NoData)) return aaaa;
        return a.Outcome == DnsOutcome.Ok ? a with { Outcome = DnsOutcome.NoData, Detail = "no A or AAAA records" } : a;
    }

    private async Task<DnsAnswer> One(string name, QueryType type, CancellationToken ct)
    {
        IDnsQueryResponse r;
        try
        {
            r = await _client.QueryAsync(name, type, QueryClass.IN, ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            throw;
        }
        catch (DnsResponseException e) when (e.Code == DnsResponseCode.ConnectionTimeout)
        {
            return DnsAnswer.Failed(DnsOutcome.Timeout, $"{type} {name}: timed out");
        }
        catch (DnsResponseException e)
        {
            return DnsAnswer.Failed(DnsOutcome.Error, $"{type} {name}: {e.Code}: {e.Message}");
        }
        catch (Exception e) when (e is SocketException or IOException or TimeoutException or OperationCanceledException or InvalidOperationException)
        {
            return DnsAnswer.Failed(e is TimeoutException or OperationCanceledException ? DnsOutcome.Timeout : DnsOutcome.Error,
                $"{type} {name}: {e.GetType().Name}: {e.Message}");
        }

        var code = r.Header.ResponseCode;
        if (code == DnsHeaderResponseCode.NotExistentDomain) return DnsAnswer.Failed(DnsOutcome.NxDomain, $"{type} {name}: NXDOMAIN");
        if (r.HasError || code != DnsHeaderResponseCode.NoError)
        {
            return DnsAnswer.Failed(DnsOutcome.ServerError, $"{type} {name}: {code} {r.ErrorMessage}".TrimEnd());
        }

        var list = new List<IPAddress>();
        int ttl = int.MaxValue;
        foreach (var rec in r.Answers)
        {
            IPAddress? addr = rec switch
            {
                ARecord ar when type == QueryType.A => ar.Address,
                AaaaRecord r6 when type == QueryType.AAAA => r6.Address,
                _ => null,
            };
            if (addr is null || list.Contains(addr)) continue;
            list.Add(addr);
            ttl = Math.Min(ttl, Math.Max(0, rec.InitialTimeToLive));
        }
        return list.Count == 0
            ? new DnsAnswer(DnsOutcome.NoData, [], TimeSpan.Zero, $"{type} {name}: no records")
            : new DnsAnswer(DnsOutcome.Ok, list, TimeSpan.FromSeconds(ttl));
    }
}
