using Lisp.Appliance.Config;
using Lisp.Appliance.Hosting;
using Xunit;

namespace Lisp.DataPlane.Tests;

/// <summary>The configuration keys of the RFC 9300 / 9302 data-plane features: parsed, range-checked, handed to the data plane.</summary>
public sealed class Rfc9300ConfigTests
{
    private const string Base = """
        [node]
        name = "x"
        roles = ["itr", "etr"]
        rlocs = ["192.0.2.1"]
        [mapping]
        map_servers = ["192.0.2.9"]
        map_resolvers = ["192.0.2.9"]
        key = "k"
        [[database]]
        eid = "[0]10.1.0.0/24"
        [data_plane]
        tun = "lisp0"

        """;

    [Fact]
    public void Map_version_goes_to_every_database_mapping_and_to_the_data_plane()
    {
        var c = ConfigLoader.Parse(Base + "[etr]\nmap_version = 17\n");
        Assert.Equal(17, c.MapVersion);
        Assert.All(c.Database, d => Assert.Equal(17, d.MapVersion));
        Assert.Equal(17, DataPlaneHost.BuildOptions(c.DataPlane!, c).MapVersion);
        var none = ConfigLoader.Parse(Base);
        Assert.Equal(0, none.MapVersion);
        Assert.Equal(0, DataPlaneHost.BuildOptions(none.DataPlane!, none).MapVersion);
    }

    [Theory]
    [InlineData("map_version = 4096")]
    [InlineData("map_version = -1")]
    public void Map_version_out_of_12_bits_is_refused(string line)
    {
        var e = Assert.ThrowsAny<Exception>(() => ConfigLoader.Parse(Base + "[etr]\n" + line + "\n"));
        Assert.Contains("etr.map_version", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Gleaning_is_off_by_default_with_a_60_second_ttl_and_can_be_turned_on()
    {
        var off = ConfigLoader.Parse(Base);
        Assert.False(off.Glean);
        Assert.Equal(TimeSpan.FromSeconds(60), off.GleanTtl);
        var on = ConfigLoader.Parse(Base + "[etr]\nglean = true\nglean_ttl = \"20s\"\n");
        Assert.True(on.Glean);
        Assert.Equal(TimeSpan.FromSeconds(20), on.GleanTtl);
    }

    [Theory]
    [InlineData("glean_ttl = \"0s\"", "etr.glean_ttl")]
    [InlineData("glean_ttl = \"2h\"", "etr.glean_ttl")]
    [InlineData("gleam = true", "gleam")]
    public void Bad_gleaning_settings_are_refused(string line, string key)
    {
        var e = Assert.ThrowsAny<Exception>(() => ConfigLoader.Parse(Base + "[etr]\n" + line + "\n"));
        Assert.Contains(key, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Gleaning_needs_a_data_plane()
    {
        var noDataPlane = Base[..Base.IndexOf("[data_plane]", StringComparison.Ordinal)];
        var e = Assert.ThrowsAny<Exception>(() => ConfigLoader.Parse(noDataPlane + "[etr]\nglean = true\n"));
        Assert.Contains("etr.glean", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Echo_nonce_is_off_by_default_and_its_timings_parse()
    {
        var off = ConfigLoader.Parse(Base).DataPlane!;
        Assert.False(off.EchoNonce);
        Assert.Equal((10.0, 3.0, 30.0), (off.EchoNonceInterval.TotalSeconds, off.EchoNonceTimeout.TotalSeconds, off.EchoNonceRetry.TotalSeconds));
        var on = ConfigLoader.Parse(Base + "echo_nonce = true\necho_nonce_interval = \"5s\"\necho_nonce_timeout = \"2s\"\necho_nonce_retry = \"1m\"\n").DataPlane!;
        Assert.True(on.EchoNonce);
        Assert.Equal((5.0, 2.0, 60.0), (on.EchoNonceInterval.TotalSeconds, on.EchoNonceTimeout.TotalSeconds, on.EchoNonceRetry.TotalSeconds));
    }

    [Theory]
    [InlineData("echo_nonce_timeout = \"0s\"", "data_plane.echo_nonce_timeout")]
    [InlineData("echo_nonce_interval = \"2h\"", "data_plane.echo_nonce_interval")]
    [InlineData("echo_nonce = 1", "data_plane.echo_nonce")]
    public void Bad_echo_nonce_settings_are_refused(string line, string key)
    {
        var e = Assert.ThrowsAny<Exception>(() => ConfigLoader.Parse(Base + line + "\n"));
        Assert.Contains(key, e.Message, StringComparison.Ordinal);
    }
}
