using Lisp.Appliance.Cli;
using Lisp.TestSupport;
using Xunit;

namespace Lisp.Decent.Tests;

public sealed class DecentIndexCommandTests
{
    private static (int Rc, string Out, string Err) Run(params string[] args)
    {
        var o = new StringWriter { NewLine = "\n" };
        var e = new StringWriter { NewLine = "\n" };
        int rc = DecentIndexCommand.Run(args, o, e);
        return (rc, o.ToString(), e.ToString());
    }

    [Fact]
    public void Prints_the_seed_logs_index_for_every_vector_row()
    {
        var rows = File.ReadLines(TestFiles.Vector("decent-index.tsv"))
            .Where(l => !l.StartsWith('#') && l.Trim().Length > 0).Select(l => l.Split('\t')).ToList();
        Assert.Equal(10, rows.Count);
        var (rc, o, e) = Run(["--modulus", "4", "--dns-suffix", "ms.lispers.net", .. rows.Select(r => r[3])]);
        Assert.Equal(0, rc);
        Assert.Equal("", e);
        var expected = string.Concat(rows.Select(r => $"{r[3]}\t{r[4]}\t{r[5]}\n"));
        Assert.Equal(expected, o);
    }

    [Fact]
    public void Source_group_modes_and_masks()
    {
        const string sg = "[0](1.1.1.1/32, 224.1.1.1/32)";
        string[] common = ["--modulus", "4", "--dns-suffix", "ms.lispers.net"];
        Assert.Equal($"{sg}\t1\t1.ms.lispers.net\n", Run([.. common, "--sg-hash", "source", sg]).Out);
        Assert.Equal($"{sg}\t0\t0.ms.lispers.net\n", Run([.. common, "--sg-hash", "draft", sg]).Out);
        Assert.Equal($"{sg}\t1\t1.ms.lispers.net\t[0]224.1.1.1\n", Run([.. common, "--sg-hash=draft", "--hash-mask", "12", "--show-text", sg]).Out);
        Assert.Equal($"{sg}\t2\t2.ms.lispers.net\t[0]224.1.1.1/32\n", Run([.. common, "--show-text", sg]).Out);
        Assert.Equal("[0]240.0.1.1/32\t0\t0.ms.lispers.net\t[0]240.0\n", Run([.. common, "--hash-mask", "8", "--show-text", "240.0.1.1/32"]).Out);
        Assert.Equal("[0]240.0.1.1/32\t2\t2.ms.lispers.net\t[0]240.0.1.0/24\n", Run([.. common, "--lookup-length", "24", "--show-text", "240.0.1.1/32"]).Out);
        Assert.StartsWith("[0]10.1.2.3/32\t" + Oracle.Sha256("[0]10.1.0.0/16", 4) + "\t",
            Run([.. common, "--lookup-length", "[0]10.0.0.0/8=16", "10.1.2.3/32"]).Out);
    }

    [Fact]
    public void Hmac_algorithm()
    {
        // Oracle.Hmac: independent (HMACSHA256 + hex + BigInteger).
        var (rc, o, _) = Run("--modulus", "1000", "--dns-suffix", "ms.test", "--algorithm", "hmac-sha256-lisp-decent", "[0]'dino'");
        Assert.Equal(0, rc);
        int idx = Oracle.Hmac("[0]'dino'", 1000);
        Assert.Equal($"[0]'dino'\t{idx}\t{idx}.ms.test\n", o);
        var wide = Run("--modulus", "1000", "--dns-suffix", "ms.test", "--algorithm", "hmac-sha256-lisp-decent", "--digest-bytes", "32", "--hmac-key", "k", "[0]'dino'").Out;
        Assert.StartsWith($"[0]'dino'\t{Oracle.Hmac("[0]'dino'", 1000, 32, "k")}\t", wide);
    }

    [Fact]
    public void Bad_eid_is_reported_and_the_others_still_print()
    {
        var (rc, o, e) = Run("--modulus", "4", "--dns-suffix", "ms.lispers.net", "1.1.1.1/32", "300.1.1.1/32", "2.2.2.2");
        Assert.Equal(1, rc);
        Assert.Equal("[0]1.1.1.1/32\t1\t1.ms.lispers.net\n[0]2.2.2.2/32\t0\t0.ms.lispers.net\n", o);
        Assert.Contains("bad EID '300.1.1.1/32'", e);
    }

    [Theory]
    [InlineData("--dns-suffix", "ms.test", "1.1.1.1")]                        // no modulus
    [InlineData("--modulus", "4", "1.1.1.1")]                                 // no suffix
    [InlineData("--modulus", "0", "--dns-suffix", "ms.test", "1.1.1.1")]
    [InlineData("--modulus", "4", "--dns-suffix", "ms.test", "--algorithm", "md5", "1.1.1.1")]
    [InlineData("--modulus", "4", "--dns-suffix", "ms.test", "--sg-hash", "both", "1.1.1.1")]
    [InlineData("--modulus", "4", "--dns-suffix", "ms.test", "--digest-bytes", "33", "1.1.1.1")]
    [InlineData("--modulus", "4", "--dns-suffix", "ms.test", "--lookup-length", "x", "1.1.1.1")]
    [InlineData("--modulus", "4", "--dns-suffix", "ms.test", "--bogus", "1.1.1.1")]
    [InlineData("--modulus", "4", "--dns-suffix", "ms.test")]                 // no EID
    public void Usage_errors_exit_2(params string[] args)
    {
        var (rc, o, e) = Run(args);
        Assert.Equal(2, rc);
        Assert.Equal("", o);
        Assert.Contains("usage:", e);
    }

    [Fact]
    public void Help_explains_every_option()
    {
        var (rc, o, _) = Run("--help");
        Assert.Equal(0, rc);
        foreach (var opt in new[] { "--modulus", "--dns-suffix", "--algorithm", "--hmac-key", "--digest-bytes", "--hash-mask", "--lookup-length", "--sg-hash", "--show-text", "sha256", "hmac-sha256-lisp-decent", "group", "draft", "source" })
        {
            Assert.Contains(opt, o);
        }
    }
}
