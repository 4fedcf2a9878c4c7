using Lisp.TestSupport;
using Lisp.Wire;
using Xunit;
using Xunit.Abstractions;

namespace Lisp.Decent.Tests;

/// <summary>The seed's vectors: the ETR log (decent-index.tsv) and the ITR's 9 Map-Requests.</summary>
public sealed class HashVectorTests(ITestOutputHelper output)
{
    public static TheoryData<string, int, string, string, int, string> IndexRows()
    {
        var data = new TheoryData<string, int, string, string, int, string>();
        foreach (var line in File.ReadLines(TestFiles.Vector("decent-index.tsv")))
        {
            if (line.StartsWith('#') || line.Trim().Length == 0) continue;
            var f = line.Split('\t');
            data.Add(f[0], int.Parse(f[1]), f[2], f[3], int.Parse(f[4]), f[5]);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(IndexRows))]
    public void Seed_etr_log_rows_reproduce(string algorithm, int modulus, string suffix, string eidText, int index, string dnsName)
    {
        Assert.True(DecentHashOptions.TryParseAlgorithm(algorithm, out var alg));
        var hasher = new DecentHasher(new DecentHashOptions { Modulus = modulus, Algorithm = alg });
        var eid = EidPrefix.Parse(eidText);
        var loc = hasher.Locate(eid, suffix);
        Assert.Equal(eidText, loc.Eid);          // the printed form round-trips to exactly the hashed text
        Assert.Equal(eidText, loc.HashedText);
        Assert.Equal(index, loc.Index);
        Assert.Equal(dnsName, loc.DnsName);
        Assert.Equal(index, hasher.IndexOf(eid, HashPurpose.Lookup));
    }

    [Fact]
    public void Vector_file_has_all_ten_strict_rows_including_e164_and_geo()
    {
        var rows = IndexRows().Select(r => (string)r[3]).ToList();
        Assert.Equal(10, rows.Count);
        Assert.Contains("[0]48-51-12-N-2-20-55-E/100", rows);
        Assert.Equal(3, rows.Count(r => r.StartsWith("[0]+", StringComparison.Ordinal)));
    }

    /// <summary>The 9 Map-Requests: decode each packet, hash its EID record as an ITR lookup, compare with the log's DNS name.</summary>
    [Fact]
    public void Seed_map_requests_go_to_the_logged_set()
    {
        var hasher = new DecentHasher(new DecentHashOptions { Modulus = 4 });
        int n = 0;
        foreach (var line in File.ReadLines(TestFiles.Vector("seed-map-requests.txt")))
        {
            if (line.StartsWith('#') || line.Trim().Length == 0) continue;
            var f = line.Split('\t');
            var status = ControlMessage.TryDecode(Convert.FromHexString(f[4]), out var msg);
            Assert.True(status.IsOk, status.ToString());
            var ecm = Assert.IsType<EncapsulatedControlMessage>(msg);
            var req = Assert.IsType<MapRequest>(ecm.Message);
            var eid = Assert.Single(req.Records);
            var loc = hasher.Locate(eid, "ms.lispers.net", HashPurpose.Lookup);
            output.WriteLine($"{eid}\thashed {loc.HashedText}\t-> {loc.DnsName} (log: {f[1]})");
            Assert.Equal(f[1], loc.DnsName);
            Assert.Equal(int.Parse(f[1].Split('.')[0]), Oracle.Sha256(loc.HashedText, 4));
            if (eid.IsSourceGroup)
            {
                // ff02::1:ff00:2: the ITR hashed the group alone (its printed (S,G) form would give set 2).
                Assert.Equal("[0]ff02::1:ff00:2/128", loc.HashedText);
                Assert.Equal(2, Oracle.Sha256(eid.ToString(), 4));
            }
            else
            {
                Assert.Equal("[0]" + f[0], eid.ToString());
            }
            n++;
        }
        Assert.Equal(9, n);
    }

    [Fact]
    public void Source_group_row_semantics()
    {
        var sg = EidPrefix.Parse("[0](1.1.1.1/32, 224.1.1.1/32)");
        DecentHasher H(SourceGroupHashing m, int mask = 0) => new(new DecentHashOptions { Modulus = 4, SourceGroup = m, HashMask = mask });

        // lispers.net 2019 ETR: the source prefix -> 1 (what the seed's ETR log shows).
        Assert.Equal("[0]1.1.1.1/32", H(SourceGroupHashing.Source).HashText(sg, HashPurpose.Register));
        Assert.Equal(1, H(SourceGroupHashing.Source).IndexOf(sg, HashPurpose.Register));
        // ... while its lookups hash the group.
        Assert.Equal("[0]224.1.1.1/32", H(SourceGroupHashing.Source).HashText(sg, HashPurpose.Lookup));

        // The draft's string -> 0.
        Assert.Equal("[0]224.1.1.1/32-1.1.1.1/32", H(SourceGroupHashing.Draft).HashText(sg));
        Assert.Equal(0, H(SourceGroupHashing.Draft).IndexOf(sg));
        // The draft's string with a 12-character mask -> "[0]224.1.1.1" -> 1.
        Assert.Equal("[0]224.1.1.1", H(SourceGroupHashing.Draft, 12).HashText(sg));
        Assert.Equal(1, H(SourceGroupHashing.Draft, 12).IndexOf(sg));
        // (*,G) with the same mask lands in the same set as any (S,G) of that group.
        var starG = EidPrefix.Parse("[0](0.0.0.0/0, 224.1.1.1/32)");
        Assert.Equal("[0]224.1.1.1/32-0.0.0.0/0", H(SourceGroupHashing.Draft).HashText(starG));
        Assert.Equal(1, H(SourceGroupHashing.Draft, 12).IndexOf(starG));
        var other = EidPrefix.Parse("[0](2.2.2.2/32, 224.1.1.1/32)");
        Assert.Equal(1, H(SourceGroupHashing.Draft, 12).IndexOf(other));

        // Our default: the group prefix, for registration and lookup alike.
        var g = H(SourceGroupHashing.Group);
        Assert.Equal("[0]224.1.1.1/32", g.HashText(sg, HashPurpose.Register));
        Assert.Equal(g.IndexOf(sg, HashPurpose.Register), g.IndexOf(sg, HashPurpose.Lookup));
        Assert.Equal(g.IndexOf(starG), g.IndexOf(sg));
        Assert.Equal(Oracle.Sha256("[0]224.1.1.1/32", 4), g.IndexOf(sg));
        Assert.Equal(SourceGroupHashing.Group, new DecentHashOptions().SourceGroup);
    }

    [Fact]
    public void Instance_id_is_part_of_the_text()
    {
        var h = new DecentHasher(new DecentHashOptions { Modulus = 1000 });
        var eid = EidPrefix.Parse("[1000]10.0.0.0/8");
        Assert.Equal("[1000]10.0.0.0/8", h.HashText(eid));
        Assert.Equal(Oracle.Sha256("[1000]10.0.0.0/8", 1000), h.IndexOf(eid));
        var sg = EidPrefix.Parse("[7](1.1.1.1/32, 224.1.1.1/32)");
        Assert.Equal("[7]224.1.1.1/32", h.HashText(sg));
    }
}
