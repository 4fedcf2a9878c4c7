using Lisp.ControlPlane.Tables;
using Lisp.Wire;

namespace Lisp.ControlPlane.Tests.Tables;

/// <summary>
/// <see cref="EidTable{T}"/> against a naive oracle: a dictionary of EID-prefixes by their text, scanned with
/// <see cref="EidPrefix.Covers"/> for the most specific covering prefix (longest mask for IPv4, IPv6, MAC and
/// E.164; longest group then longest source for (S,G); the same key for names and geo-coordinates). Every kind,
/// several instance-ids, nested and overlapping prefixes, random inserts, overwrites and removes.
/// </summary>
public class EidTableOracleTests
{
    private sealed record V(int Id);

    private sealed class Model
    {
        public readonly Dictionary<string, (EidPrefix P, V V)> Items = new(StringComparer.Ordinal);

        /// <summary>How specific a covering prefix is, for a query of the given kind (bigger wins).</summary>
        private static (int, int) Rank(EidPrefix p, EidPrefix query)
        {
            if (query.IsSourceGroup)
            {
                var (s, g) = p.SourceGroup()!.Value;
                return (g.MaskLength, s.MaskLength);
            }
            return (p.MaskLength, 0);
        }

        public (EidPrefix P, V V)? Longest(EidPrefix query, Func<V, bool> accept)
        {
            (EidPrefix P, V V)? best = null;
            foreach (var (p, v) in Items.Values)
            {
                if (!p.Covers(query) || !accept(v)) continue;
                if (best is null || Rank(p, query).CompareTo(Rank(best.Value.P, query)) > 0) best = (p, v);
                else if (Rank(p, query) == Rank(best.Value.P, query))
                {
                    Assert.Fail($"oracle: two stored prefixes {p} and {best.Value.P} rank the same for {query}");
                }
            }
            return best;
        }

        public int DeepestDivergence(EidPrefix query)
        {
            if (OracleGen.AddressBits(query) is not { } q) return -1;
            var qbits = q.Bits & OracleGen.MaskOf(query.MaskLength);
            int deepest = -1;
            foreach (var (p, _) in Items.Values)
            {
                if (OracleGen.Space(p) != OracleGen.Space(query)) continue;
                var pbits = OracleGen.AddressBits(p)!.Value.Bits;
                if ((qbits & OracleGen.MaskOf(p.MaskLength)) == pbits) continue; // p contains the query's address
                deepest = Math.Max(deepest, OracleGen.Common(qbits, pbits));
            }
            return deepest;
        }
    }

    private static void Check(EidTable<V> table, Model model, OracleGen gen, string at, bool full)
    {
        Assert.True(model.Items.Count == table.Count, $"{at}: Count {table.Count}, oracle {model.Items.Count}");
        var stored = model.Items.Values.Select(x => x.P).ToList();
        if (full)
        {
            Assert.Equal(model.Items.Values.Select(x => x.V.Id).Order().ToList(), table.Values().Select(v => v.Id).Order().ToList());
            foreach (var (p, v) in model.Items.Values)
            {
                Assert.True(ReferenceEquals(v, table.Get(p)), $"{at}: Get({p})");
                var d = gen.Dirty(p);
                Assert.True(ReferenceEquals(v, table.Get(EidKey.From(d))), $"{at}: Get({d}) (host bits set, stored {p})");
            }
        }
        for (int i = 0; i < 8; i++)
        {
            var q = gen.Query(stored);
            var key = EidKey.From(q);

            var want = model.Items.TryGetValue(q.ToString(), out var exact) ? exact.V : null;
            Assert.True(ReferenceEquals(want, table.Get(key)), $"{at}: Get({q}) = {table.Get(key)?.Id}, oracle {want?.Id}");

            var all = model.Longest(q, _ => true);
            var got = table.Longest(key, static (_, _) => true, 0);
            Assert.True(ReferenceEquals(all?.V, got), $"{at}: Longest({q}) = {got?.Id}, oracle {all?.P} ({all?.V.Id})");

            int mod = gen.Rng.Next(2, 4);
            var some = model.Longest(q, v => v.Id % mod != 0);
            var gotSome = table.Longest(key, static (v, m) => v.Id % m != 0, mod);
            Assert.True(ReferenceEquals(some?.V, gotSome), $"{at}: Longest({q}, Id % {mod} != 0) = {gotSome?.Id}, oracle {some?.P} ({some?.V.Id})");

            int dd = model.DeepestDivergence(q);
            Assert.True(dd == table.DeepestDivergence(key), $"{at}: DeepestDivergence({q}) = {table.DeepestDivergence(key)}, oracle {dd}");
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    [InlineData(6)]
    public void Random_eids_of_every_kind_match_the_oracle(int seed)
    {
        var gen = new OracleGen(new Random(seed));
        var rng = gen.Rng;
        var table = new EidTable<V>();
        var model = new Model();
        int nextId = 1;
        for (int step = 0; step < 1500; step++)
        {
            string at = $"seed {seed}, step {step}";
            bool growing = step / 300 % 2 == 0;
            if (rng.Next(100) < (growing ? 65 : 30))
            {
                EidPrefix p = model.Items.Count > 0 && rng.Next(4) == 0
                    ? model.Items.Values.ElementAt(rng.Next(model.Items.Count)).P   // overwrite
                    : gen.Prefix();
                var v = new V(nextId++);
                table.Set(EidKey.From(rng.Next(3) == 0 ? gen.Dirty(p) : p), v);
                model.Items[p.ToString()] = (p, v);
            }
            else
            {
                EidPrefix p = model.Items.Count > 0 && rng.Next(5) != 0
                    ? model.Items.Values.ElementAt(rng.Next(model.Items.Count)).P
                    : gen.Prefix();
                bool want = model.Items.Remove(p.ToString());
                Assert.True(want == table.Remove(EidKey.From(rng.Next(3) == 0 ? gen.Dirty(p) : p)), $"{at}: Remove({p}) should return {want}");
            }
            Check(table, model, gen, at, full: step % 10 == 0);
        }
        foreach (var (text, (p, _)) in model.Items.ToList())
        {
            Assert.True(table.Remove(EidKey.From(p)), $"final Remove({p})");
            model.Items.Remove(text);
            Assert.Equal(model.Items.Count, table.Count);
        }
        Assert.Empty(table.Values());
    }

    [Theory]
    [InlineData(31)]
    [InlineData(32)]
    [InlineData(33)]
    public void Source_group_only_tables_match_the_oracle(int seed)
    {
        // Many (S,G) entries sharing groups, so a longer group whose sources do not cover S must yield to a shorter one.
        var gen = new OracleGen(new Random(seed));
        var rng = gen.Rng;
        var table = new EidTable<V>();
        var model = new Model();
        int nextId = 1;
        for (int step = 0; step < 800; step++)
        {
            string at = $"seed {seed}, step {step}";
            if (rng.Next(100) < (step / 200 % 2 == 0 ? 70 : 30))
            {
                var p = gen.SourceGroupPrefix(rng.Next(5) == 0 ? 1u : 0u, host: false);
                var v = new V(nextId++);
                table.Set(EidKey.From(p), v);
                model.Items[p.ToString()] = (p, v);
            }
            else if (model.Items.Count > 0)
            {
                var p = model.Items.Values.ElementAt(rng.Next(model.Items.Count)).P;
                Assert.True(model.Items.Remove(p.ToString()));
                Assert.True(table.Remove(EidKey.From(p)), $"{at}: Remove({p})");
            }
            Assert.Equal(model.Items.Count, table.Count);
            var stored = model.Items.Values.Select(x => x.P).ToList();
            for (int i = 0; i < 6; i++)
            {
                var q = stored.Count > 0 && rng.Next(2) == 0 ? gen.Inside(stored[rng.Next(stored.Count)]) : gen.SourceGroupPrefix(rng.Next(5) == 0 ? 1u : 0u, host: true);
                var key = EidKey.From(q);
                var want = model.Longest(q, _ => true);
                var got = table.Longest(key, static (_, _) => true, 0);
                Assert.True(ReferenceEquals(want?.V, got), $"{at}: Longest({q}) = {got?.Id}, oracle {want?.P} ({want?.V.Id})");
                var some = model.Longest(q, v => v.Id % 2 == 0);
                var gotSome = table.Longest(key, static (v, _) => v.Id % 2 == 0, 0);
                Assert.True(ReferenceEquals(some?.V, gotSome), $"{at}: Longest({q}, even) = {gotSome?.Id}, oracle {some?.P} ({some?.V.Id})");
                Assert.Equal(-1, table.DeepestDivergence(key));
            }
        }
    }

    [Fact]
    public void Group_then_source_worked_example()
    {
        var table = new EidTable<V>();
        var wide = new V(1);
        var narrowGroup = new V(2);
        var narrowSource = new V(3);
        table.Set(EidKey.From(H.E("[0](10.0.0.0/8, 224.0.0.0/4)")), wide);
        table.Set(EidKey.From(H.E("[0](10.1.0.0/16, 224.1.1.0/24)")), narrowGroup);
        table.Set(EidKey.From(H.E("[0](10.1.2.0/24, 224.0.0.0/4)")), narrowSource);
        // The longer group wins even though a longer source exists under a shorter group.
        Assert.Same(narrowGroup, table.Longest(EidKey.From(H.E("[0](10.1.2.3/32, 224.1.1.1/32)")), static (_, _) => true, 0));
        // Its source does not cover 10.9.x: the /4 group is next, with the /8 source.
        Assert.Same(wide, table.Longest(EidKey.From(H.E("[0](10.9.0.1/32, 224.1.1.1/32)")), static (_, _) => true, 0));
        // Under the /4 group the longest source covering S.
        Assert.Same(narrowSource, table.Longest(EidKey.From(H.E("[0](10.1.2.3/32, 225.0.0.1/32)")), static (_, _) => true, 0));
        // The longer group refused by accept: the /4 group's longest source.
        Assert.Same(narrowSource, table.Longest(EidKey.From(H.E("[0](10.1.2.3/32, 224.1.1.1/32)")), static (v, _) => v.Id != 2, 0));
        Assert.Null(table.Longest(EidKey.From(H.E("[1](10.1.2.3/32, 224.1.1.1/32)")), static (_, _) => true, 0));
        Assert.Null(table.Longest(EidKey.From(H.E("[0](11.1.2.3/32, 224.1.1.1/32)")), static (_, _) => true, 0));
        Assert.Equal(3, table.Count);
    }
}
