using System.Diagnostics;
using System.Net;
using Lisp.TestSupport;
using Lisp.Wire;
using Xunit;
using Xunit.Abstractions;

namespace Lisp.Decent.Tests;

/// <summary>
/// Pull mode against a real dnsmasq on 127.0.0.1 serving the seed's DNS slide on loopback addresses:
/// i.ms.test -> 127.0.(i+1).1 and 127.0.(i+1).2, i = 0..3. Short TTLs; every wait is bounded.
/// </summary>
public sealed class DnsmasqTests(ITestOutputHelper output)
{
    private readonly LogSink _log = new(output);

    private DecentPullOptions Options(Dnsmasq dns) => new()
    {
        DnsSuffix = "ms.test",
        Hash = new DecentHashOptions { Modulus = 4 },
        Dns = new DnsResolverOptions
        {
            Servers = [dns.EndPoint],
            QueryTimeout = TimeSpan.FromSeconds(1), // generous: other builds load this machine
            QueryRetries = 0,
            MinimumTtl = TimeSpan.FromSeconds(1),
            Grace = TimeSpan.FromSeconds(3),
            RetryInitial = TimeSpan.FromMilliseconds(500),
            RetryMaximum = TimeSpan.FromSeconds(2),
        },
    };

    private Dnsmasq Server(int ttl, bool start = true, IEnumerable<(string, string)>? extra = null) =>
        Dnsmasq.Create(Dnsmasq.SeedLikeRecords("ms.test", 4).Concat(extra ?? []), ttl, start, output: line =>
        {
            try
            {
                output.WriteLine(line);
            }
            catch (InvalidOperationException)
            {
            }
        });

    private static string[] Texts(IEnumerable<IPEndPoint> e) => e.Select(x => x.ToString()).ToArray();

    [SkippableFact]
    public async Task Every_index_resolves_to_its_two_addresses()
    {
        Dnsmasq.SkipIfMissing();
        using var dns = Server(ttl: 2, extra: [("both.ms.test", "127.0.8.1"), ("both.ms.test", "::1")]);
        using var ms = new PullMappingSystem(Options(dns), new ManualTimeProvider(), _log.Add);
        await ms.WarmUpAllAsync().WaitAsync(TimeSpan.FromSeconds(10));
        for (int i = 0; i < 4; i++)
        {
            Assert.Equal([$"127.0.{i + 1}.1:4342", $"127.0.{i + 1}.2:4342"], Texts(ms.MapServersForIndex(i)).Order());
            var st = ms.Dns.Status($"{i}.ms.test")!;
            Assert.Equal(TimeSpan.FromSeconds(2), st.ExpiresAt - st.FetchedAt); // the record TTL (--local-ttl=2)
        }
        // Seed EIDs go to their logged sets: 1.1.1.1 -> 1, 2.2.2.2 -> 0, 2001::2 -> 3.
        Assert.Equal(["127.0.2.1:4342", "127.0.2.2:4342"], Texts(ms.MapServersFor(EidPrefix.Parse("[0]1.1.1.1/32"))).Order());
        Assert.Equal(["127.0.1.1:4342", "127.0.1.2:4342"], Texts(ms.MapServersFor(EidPrefix.Parse("[0]2.2.2.2/32"))).Order());
        Assert.Equal(["127.0.4.1:4342", "127.0.4.2:4342"], Texts(ms.MapResolversFor(EidPrefix.Parse("[0]2001::2/128"))).Order());
        // A and AAAA both count.
        var both = await ms.ResolveNameAsync("both.ms.test").WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(["127.0.8.1", "::1"], both.Select(a => a.ToString()).Order());
        // dnsmasq's log reaches us through its stderr pipe a moment after it answered: wait for the line (bounded).
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (!dns.Log.Contains("query[AAAA] 0.ms.test", StringComparison.Ordinal) && DateTime.UtcNow < deadline) await Task.Delay(20);
        Assert.Contains("query[AAAA] 0.ms.test", dns.Log);
    }

    [SkippableFact]
    public async Task Server_down_at_start_gives_nothing_logs_and_recovers_once_it_starts()
    {
        Dnsmasq.SkipIfMissing();
        using var dns = Server(ttl: 2, start: false);
        var clock = new ManualTimeProvider();
        using var ms = new PullMappingSystem(Options(dns), clock, _log.Add);
        Assert.Empty(ms.MapServersForIndex(0));
        await ms.Dns.PendingAsync("0.ms.test").WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Empty(ms.MapServersForIndex(0));
        Assert.True(_log.Any("0.ms.test: "), "a failure line is logged");
        Assert.True(_log.Any("nothing to serve"));
        Assert.Equal(1, ms.Dns.Status("0.ms.test")!.Failures);

        dns.Start();
        clock.Advance(TimeSpan.FromMilliseconds(500)); // the first retry
        await ms.Dns.PendingAsync("0.ms.test").WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(2, ms.MapServersForIndex(0).Count);
        Assert.True(_log.Any("resolved again after 1 failure"));
    }

    [SkippableFact]
    public async Task Server_going_down_later_serves_the_last_answer_until_ttl_plus_grace()
    {
        Dnsmasq.SkipIfMissing();
        using var dns = Server(ttl: 2);
        var clock = new ManualTimeProvider();
        using var ms = new PullMappingSystem(Options(dns), clock, _log.Add);
        await ms.WarmUpAsync([2]).WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(2, ms.MapServersForIndex(2).Count);
        dns.Stop();

        // TTL 2 s + grace 3 s: served while the clock is below 5 s, with refreshes failing from 1.6 s on.
        for (int step = 1; step < 10; step++)
        {
            clock.Advance(TimeSpan.FromMilliseconds(500));
            await ms.Dns.PendingAsync("2.ms.test").WaitAsync(TimeSpan.FromSeconds(5));
            Assert.Equal(2, ms.MapServersForIndex(2).Count);
        }
        Assert.True(ms.Dns.Status("2.ms.test")!.Failures >= 2);
        Assert.True(_log.Any("serving the last answer"));
        clock.Advance(TimeSpan.FromMilliseconds(500)); // t = 5 s
        await ms.Dns.PendingAsync("2.ms.test").WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Empty(ms.MapServersForIndex(2));
        Assert.Empty(ms.MapResolversForIndex(2));
    }

    /// <summary>Real clock: a map-server added to the zone is picked up by the TTL-driven refresh (TTL 1 s).</summary>
    [SkippableFact]
    public async Task A_changed_record_set_is_picked_up_after_refresh()
    {
        Dnsmasq.SkipIfMissing();
        using var dns = Server(ttl: 1);
        using var ms = new PullMappingSystem(Options(dns), TimeProvider.System, _log.Add);
        var changes = new List<string>();
        ms.Dns.SetChanged += (name, set) => { lock (changes) changes.Add(name + "=" + set.Count); };
        await ms.WarmUpAsync([0]).WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(2, ms.MapServersForIndex(0).Count);

        dns.SetRecords(Dnsmasq.SeedLikeRecords("ms.test", 4).Append(("0.ms.test", "127.0.1.3")));
        var sw = Stopwatch.StartNew();
        while (ms.MapServersForIndex(0).Count != 3 && sw.Elapsed < TimeSpan.FromSeconds(5)) await Task.Delay(50);
        output.WriteLine($"picked up after {sw.ElapsedMilliseconds} ms");
        Assert.Equal(["127.0.1.1:4342", "127.0.1.2:4342", "127.0.1.3:4342"], Texts(ms.MapServersForIndex(0)).Order());
        lock (changes) Assert.Equal(["0.ms.test=2", "0.ms.test=3"], changes);
        Assert.True(_log.Any("set changed"));
    }

    [SkippableFact]
    public async Task Nxdomain_is_logged()
    {
        Dnsmasq.SkipIfMissing();
        using var dns = Server(ttl: 1);
        using var ms = new PullMappingSystem(Options(dns) with { Hash = new DecentHashOptions { Modulus = 16 } }, new ManualTimeProvider(), _log.Add);
        Assert.Empty(await ms.ResolveNameAsync("9.ms.test").WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.Empty(ms.MapServersForIndex(9));
        Assert.True(_log.Any("9.ms.test: NxDomain"));
        Assert.Contains("NXDOMAIN", dns.Log);
    }
}
