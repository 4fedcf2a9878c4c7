using Lisp.ControlPlane.Tables;
using Lisp.Wire;

namespace Lisp.ControlPlane.Tests.Tables;

/// <summary>
/// <see cref="EidTable{T}.WalkAfter"/>, the resumable ordered walk the management pages use: against an oracle that
/// sorts the stored keys by a tuple written here (family, instance-id, group family, bits, length, source family,
/// source bits, source length, text), independently of <see cref="EidTable{T}.CompareKeys"/>. Pages of every size
/// must concatenate to the oracle's list, each key once; keys changed between pages must not disturb the others.
/// </summary>
public class EidTableWalkTests
{
    private sealed record V(int Id);

    private static (int, uint, int, UInt128, int, int, UInt128, int, string) Tuple(EidKey k) =>
        (k.Family == EidFamily.SourceGroup ? 5 : (int)k.Family, k.InstanceId,
         k.Family == EidFamily.SourceGroup ? (int)k.GroupFamily : 0, k.Bits, k.Length,
         k.Family == EidFamily.SourceGroup ? (int)k.SourceFamily : 0, k.SourceBits, k.SourceLength, k.Text ?? "");

    private static int OracleCompare(EidKey a, EidKey b)
    {
        var (x, y) = (Tuple(a), Tuple(b));
        int c = x.Item1.CompareTo(y.Item1);
        if (c == 0) c = x.Item2.CompareTo(y.Item2);
        if (c == 0) c = x.Item3.CompareTo(y.Item3);
        if (c == 0) c = x.Item4.CompareTo(y.Item4);
        if (c == 0) c = x.Item5.CompareTo(y.Item5);
        if (c == 0) c = x.Item6.CompareTo(y.Item6);
        if (c == 0) c = x.Item7.CompareTo(y.Item7);
        if (c == 0) c = x.Item8.CompareTo(y.Item8);
        if (c == 0) c = string.CompareOrdinal(x.Item9, y.Item9);
        return c;
    }

    private static List<EidKey> Page(EidTable<V> table, EidKey? after, int size)
    {
        var page = new List<EidKey>();
        table.WalkAfter(after, (k, _) =>
        {
            page.Add(k);
            return page.Count < size;
        });
        return page;
    }

    private static List<EidKey> AllInPages(EidTable<V> table, int size)
    {
        var all = new List<EidKey>();
        EidKey? after = null;
        for (int guard = 0; guard < 100_000; guard++)
        {
            var page = Page(table, after, size);
            all.AddRange(page);
            if (page.Count < size) return all;
            after = page[^1];
        }
        throw new InvalidOperationException("the walk did not end");
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(2, 3)]
    [InlineData(3, 7)]
    [InlineData(4, 64)]
    [InlineData(5, 100_000)]
    public void Pages_of_every_size_concatenate_to_the_sorted_keys(int seed, int pageSize)
    {
        var gen = new OracleGen(new Random(seed));
        var table = new EidTable<V>();
        var stored = new Dictionary<EidKey, V>();
        for (int i = 0; i < 600; i++)
        {
            var key = EidKey.From(gen.Prefix());
            var v = new V(i);
            table.Set(key, v);
            stored[key] = v;
        }
        for (int i = 0; i < 100; i++)
        {
            var key = stored.Keys.ElementAt(gen.Rng.Next(stored.Count));
            Assert.True(table.Remove(key));
            stored.Remove(key);
        }
        var expected = stored.Keys.ToList();
        expected.Sort(OracleCompare);
        Assert.Contains(expected, k => k.Family == EidFamily.Exact);
        Assert.Contains(expected, k => k.Family == EidFamily.SourceGroup);

        var walked = AllInPages(table, pageSize);
        Assert.Equal(expected, walked);
        // The table's own comparer agrees with the oracle's on every neighbouring pair.
        for (int i = 1; i < walked.Count; i++) Assert.True(EidTable<V>.CompareKeys(walked[i - 1], walked[i]) < 0, $"{walked[i - 1]} !< {walked[i]}");
        // The values come with their keys.
        int wrong = 0;
        table.WalkAfter(null, (k, v) =>
        {
            if (!ReferenceEquals(stored[k], v)) wrong++;
            return true;
        });
        Assert.Equal(0, wrong);
    }

    [Fact]
    public void Keys_present_for_the_whole_walk_are_seen_once_while_others_come_and_go()
    {
        var gen = new OracleGen(new Random(42));
        var table = new EidTable<V>();
        var stable = new HashSet<EidKey>();
        for (int i = 0; i < 400; i++)
        {
            var key = EidKey.From(gen.Prefix());
            if (stable.Add(key)) table.Set(key, new V(i));
        }
        var churn = new List<EidKey>();
        var seen = new List<EidKey>();
        EidKey? after = null;
        for (int guard = 0; guard < 10_000; guard++)
        {
            var page = Page(table, after, 5);
            seen.AddRange(page);
            if (page.Count < 5) break;
            after = page[^1];
            // Between pages: add new keys (some before the cursor, some after), remove earlier churn, and remove the
            // cursor's own key when it is churn (the next page resumes after a key no longer stored).
            for (int j = 0; j < 3; j++)
            {
                var key = EidKey.From(gen.Prefix());
                if (stable.Contains(key) || churn.Contains(key)) continue;
                table.Set(key, new V(-1));
                churn.Add(key);
            }
            if (churn.Count > 6)
            {
                Assert.True(table.Remove(churn[0]));
                churn.RemoveAt(0);
            }
        }
        var stableSeen = seen.Where(stable.Contains).ToList();
        Assert.Equal(stable.Count, stableSeen.Count);
        Assert.Equal(stable.Count, stableSeen.Distinct().Count());
        // Whatever else was seen was in the table at some point, and the whole walk is in order.
        for (int i = 1; i < seen.Count; i++) Assert.True(OracleCompare(seen[i - 1], seen[i]) < 0);
    }

    [Fact]
    public void A_cursor_key_that_is_no_longer_stored_resumes_at_the_next_one()
    {
        var table = new EidTable<V>();
        var keys = new[] { "[0]10.0.0.0/8", "[0]10.0.0.0/16", "[0]10.1.0.0/16", "[0]11.0.0.0/8", "[0]'dino'", "[0]'zz'" }
            .Select(t => EidKey.From(EidPrefix.Parse(t))).ToList();
        foreach (var k in keys) table.Set(k, new V(0));
        Assert.True(table.Remove(keys[1]));
        // Hand-ordered: 10.0.0.0/8 < (10.0.0.0/16, removed) < 10.1.0.0/16 < 11.0.0.0/8 < names.
        Assert.Equal([keys[2], keys[3]], Page(table, keys[1], 2));
        Assert.True(table.Remove(keys[4]));
        Assert.Equal([keys[5]], Page(table, keys[4], 10));
        Assert.Empty(Page(table, keys[5], 10));
        Assert.Empty(Page(table, EidKey.From(EidPrefix.Parse("[0]'zzz'")), 10));
    }
}
