using System.Net;
using Xunit;
using Xunit.Abstractions;

namespace Lisp.Decent.Tests;

/// <summary>The cache's timing rules, with a scripted DNS source and a manual clock (no real waiting).</summary>
public sealed class DnsCacheTests(ITestOutputHelper output)
{
    private static readonly DnsResolverOptions Opts = new()
    {
        Servers = [new IPEndPoint(IPAddress.Loopback, 53)],
        MinimumTtl = TimeSpan.FromSeconds(5),
        MaximumTtl = TimeSpan.FromMinutes(10),
        RefreshAtFraction = 0.8,
        Grace = TimeSpan.FromSeconds(30),
        RetryInitial = TimeSpan.FromSeconds(1),
        RetryMaximum = TimeSpan.FromSeconds(8),
    };

    private static string[] Texts(IReadOnlyList<IPAddress> a) => a.Select(x => x.ToString()).ToArray();

    [Fact]
    public async Task First_ask_returns_empty_and_starts_resolution()
    {
        var src = new ScriptedDnsSource();
        src.Set("0.ms.test", TimeSpan.FromSeconds(60), "127.0.1.1", "127.0.1.2");
        var clock = new ManualTimeProvider();
        using var cache = new DnsAddressSetCache(src, Opts, clock);
        Assert.Empty(cache.Get("0.ms.test"));
        await cache.PendingAsync("0.ms.test");
        Assert.Equal(["127.0.1.1", "127.0.1.2"], Texts(cache.Get("0.ms.test")));
        Assert.Equal(["127.0.1.1", "127.0.1.2"], Texts(cache.Get("0.MS.test.")));  // normalised name
        Assert.Equal(1, src.Queries("0.ms.test"));
    }

    [Fact]
    public async Task Ttl_drives_background_refresh_and_is_clamped()
    {
        var src = new ScriptedDnsSource();
        src.Set("a.test", TimeSpan.FromSeconds(100), "127.0.0.10");
        src.Set("zero.test", TimeSpan.Zero, "127.0.0.11");
        var clock = new ManualTimeProvider();
        using var cache = new DnsAddressSetCache(src, Opts, clock);
        await cache.ResolveAsync("a.test");
        await cache.ResolveAsync("zero.test");
        var st = cache.Status("a.test")!;
        Assert.Equal(TimeSpan.FromSeconds(100), st.ExpiresAt - st.FetchedAt);
        var z = cache.Status("zero.test")!;
        Assert.Equal(Opts.MinimumTtl, z.ExpiresAt - z.FetchedAt); // TTL 0 (dnsmasq default) -> the minimum

        // Step the clock a second at a time, letting each started query finish (the clock does not wait for I/O).
        for (int t = 1; t <= 80; t++)
        {
            clock.Advance(TimeSpan.FromSeconds(1));
            await cache.PendingAsync("a.test");
            await cache.PendingAsync("zero.test");
            if (t == 79) Assert.Equal(1, src.Queries("a.test"));
        }
        Assert.Equal(2, src.Queries("a.test")); // refreshed at 80% of 100 s
        // zero.test (5 s) is refreshed every 4 s: 20 refreshes in 80 s.
        Assert.Equal(21, src.Queries("zero.test"));
    }

    [Fact]
    public async Task Failing_refresh_serves_the_last_answer_until_ttl_plus_grace_then_empty()
    {
        var log = new LogSink(output);
        var src = new ScriptedDnsSource();
        src.Set("1.ms.test", TimeSpan.FromSeconds(10), "127.0.2.1", "127.0.2.2");
        var clock = new ManualTimeProvider();
        using var cache = new DnsAddressSetCache(src, Opts, clock, log.Add);
        await cache.ResolveAsync("1.ms.test");
        src.Down = true;

        // Expiry at t=10, grace 30 -> served until t=40.
        for (int t = 1; t < 40; t++)
        {
            clock.Advance(TimeSpan.FromSeconds(1));
            await cache.PendingAsync("1.ms.test");
            Assert.Equal(2, cache.Get("1.ms.test").Count);
        }
        clock.Advance(TimeSpan.FromSeconds(1));
        await cache.PendingAsync("1.ms.test");
        Assert.Empty(cache.Get("1.ms.test"));
        var st = cache.Status("1.ms.test")!;
        Assert.False(st.Serving);
        Assert.True(st.Failures >= 3);
        Assert.Contains("Timeout", st.LastError);
        Assert.True(log.Any("failure 1, retry in 1s; serving the last answer 127.0.2.1, 127.0.2.2"));
        Assert.False(log.Any("nothing to serve"));
        clock.Advance(TimeSpan.FromSeconds(7)); // next retry (t = 47) fails with nothing left to serve
        await cache.PendingAsync("1.ms.test");
        Assert.True(log.Any("nothing to serve"));

        // Back up: picked up at the next retry, served again, recovery logged.
        src.Down = false;
        clock.Advance(Opts.RetryMaximum);
        await cache.PendingAsync("1.ms.test");
        Assert.Equal(2, cache.Get("1.ms.test").Count);
        Assert.True(log.Any("resolved again after"));
    }

    [Fact]
    public async Task Retries_back_off_exponentially_up_to_the_maximum()
    {
        var src = new ScriptedDnsSource { Down = true };
        var clock = new ManualTimeProvider();
        using var cache = new DnsAddressSetCache(src, Opts, clock);
        Assert.Empty(cache.Get("x.test"));
        await cache.PendingAsync("x.test");
        Assert.Equal(1, src.Queries("x.test"));
        // Delays 1, 2, 4, 8, 8, 8 s -> queries at t = 1, 3, 7, 15, 23, 31.
        int[] expectAt = [1, 3, 7, 15, 23, 31];
        int q = 1;
        for (int t = 1; t <= 31; t++)
        {
            clock.Advance(TimeSpan.FromSeconds(1));
            await cache.PendingAsync("x.test");
            if (expectAt.Contains(t)) q++;
            Assert.Equal(q, src.Queries("x.test"));
        }
        Assert.Equal(TimeSpan.FromSeconds(1), cache.Backoff(1));
        Assert.Equal(TimeSpan.FromSeconds(8), cache.Backoff(1000));
    }

    [Fact]
    public async Task Nxdomain_is_logged_and_retried()
    {
        var log = new LogSink(output);
        var src = new ScriptedDnsSource();
        var clock = new ManualTimeProvider();
        using var cache = new DnsAddressSetCache(src, Opts, clock, log.Add);
        Assert.Empty(await cache.ResolveAsync("9.ms.test"));
        Assert.True(log.Any("9.ms.test: NxDomain"));
        src.Set("9.ms.test", TimeSpan.FromSeconds(60), "127.0.9.1");
        clock.Advance(TimeSpan.FromSeconds(1));
        await cache.PendingAsync("9.ms.test");
        Assert.Equal(["127.0.9.1"], Texts(cache.Get("9.ms.test")));
    }

    [Fact]
    public async Task Changed_set_raises_the_event_and_is_logged()
    {
        var log = new LogSink(output);
        var src = new ScriptedDnsSource();
        src.Set("2.ms.test", TimeSpan.FromSeconds(10), "127.0.3.1", "127.0.3.2");
        var clock = new ManualTimeProvider();
        using var cache = new DnsAddressSetCache(src, Opts, clock, log.Add);
        var events = new List<string>();
        cache.SetChanged += (n, a) => { lock (events) events.Add(n + "=" + string.Join(",", a)); };
        await cache.ResolveAsync("2.ms.test");
        clock.Advance(TimeSpan.FromSeconds(8));
        await cache.PendingAsync("2.ms.test"); // same answer: no event
        src.Set("2.ms.test", TimeSpan.FromSeconds(10), "127.0.3.1", "127.0.3.2", "127.0.3.3");
        clock.Advance(TimeSpan.FromSeconds(8));
        await cache.PendingAsync("2.ms.test");
        Assert.Equal(3, cache.Get("2.ms.test").Count);
        Assert.Equal(["2.ms.test=127.0.3.1,127.0.3.2", "2.ms.test=127.0.3.1,127.0.3.2,127.0.3.3"], events);
        Assert.True(log.Any("set changed"));
    }

    [Fact]
    public async Task Concurrent_askers_share_one_query()
    {
        var gate = new TaskCompletionSource<DnsAnswer>(TaskCreationOptions.RunContinuationsAsynchronously);
        var src = new GatedSource(gate.Task);
        using var cache = new DnsAddressSetCache(src, Opts, new ManualTimeProvider());
        var tasks = Enumerable.Range(0, 10).Select(_ => cache.ResolveAsync("s.test")).ToArray();
        for (int i = 0; i < 10; i++) Assert.Empty(cache.Get("s.test"));
        gate.SetResult(new DnsAnswer(DnsOutcome.Ok, [IPAddress.Parse("127.0.0.5")], TimeSpan.FromSeconds(60)));
        var results = await Task.WhenAll(tasks).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.All(results, r => Assert.Single(r));
        Assert.Equal(1, src.Calls);
    }

    [Fact]
    public void Combine_a_and_aaaa()
    {
        var a = new DnsAnswer(DnsOutcome.Ok, [IPAddress.Parse("127.0.0.1")], TimeSpan.FromSeconds(30));
        var aaaa = new DnsAnswer(DnsOutcome.Ok, [IPAddress.IPv6Loopback], TimeSpan.FromSeconds(20));
        var nodata = new DnsAnswer(DnsOutcome.NoData, [], TimeSpan.Zero);
        var both = DnsClientAddressSource.Combine(a, aaaa);
        Assert.Equal(2, both.Addresses.Count);
        Assert.Equal(TimeSpan.FromSeconds(20), both.Ttl);
        Assert.Equal(DnsOutcome.Ok, DnsClientAddressSource.Combine(a, nodata).Outcome);
        var partial = DnsClientAddressSource.Combine(a, DnsAnswer.Failed(DnsOutcome.Timeout, "AAAA timed out"));
        Assert.Equal(DnsOutcome.Ok, partial.Outcome);
        Assert.Contains("AAAA query failed", partial.Detail);
        Assert.Equal(DnsOutcome.NxDomain, DnsClientAddressSource.Combine(DnsAnswer.Failed(DnsOutcome.NxDomain, "nx"), DnsAnswer.Failed(DnsOutcome.NxDomain, "nx")).Outcome);
        Assert.Equal(DnsOutcome.NoData, DnsClientAddressSource.Combine(nodata, nodata).Outcome);
        Assert.Equal(DnsOutcome.Timeout, DnsClientAddressSource.Combine(nodata, DnsAnswer.Failed(DnsOutcome.Timeout, "t")).Outcome);
    }

    [Fact]
    public void Server_text_and_option_validation()
    {
        Assert.True(DnsResolverOptions.TryParseServer("127.0.0.53:53", out var a) && a!.Port == 53);
        Assert.True(DnsResolverOptions.TryParseServer("127.0.0.1", out var b) && b!.Port == 53);
        Assert.True(DnsResolverOptions.TryParseServer("[::1]:5353", out var c) && c!.Port == 5353 && c.Address.Equals(IPAddress.IPv6Loopback));
        Assert.True(DnsResolverOptions.TryParseServer("::1", out var d) && d!.Port == 53);
        Assert.False(DnsResolverOptions.TryParseServer("dns.example", out _));
        Assert.NotNull(new DnsResolverOptions().Validate()); // no servers
        Assert.Null(Opts.Validate());
        Assert.NotNull((Opts with { RetryMaximum = TimeSpan.FromMilliseconds(1) }).Validate());
    }

    private sealed class GatedSource(Task<DnsAnswer> answer) : IDnsAddressSource
    {
        public int Calls;

        public Task<DnsAnswer> QueryAsync(string name, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref Calls);
            return answer;
        }
    }
}
