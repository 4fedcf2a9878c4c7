using Lisp.ControlPlane.Tables;

namespace Lisp.ControlPlane.Tests.Tables;

/// <summary>
/// <see cref="PrefixTrie{T}"/> against a naive oracle (a dictionary of prefixes scanned linearly): random
/// inserts, overwrites and removes of clustered, nesting prefixes in 32-bit and 128-bit key spaces, every
/// query compared after every step. The trie's internal Validate is not visible to this assembly, so its
/// invariants are checked through the public API (Count, Items order and contents, every query).
/// </summary>
public class PrefixTrieOracleTests
{
    private sealed record V(int Id);

    /// <summary>The naive model: (masked key, length) -> value. Bit arithmetic from OracleGen, not taken from the trie.</summary>
    private sealed class Model
    {
        public readonly Dictionary<(UInt128 Key, int Length), V> Items = [];

        public static UInt128 MaskOf(int length) => OracleGen.MaskOf(length);

        public static UInt128 Masked(UInt128 key, int length) => key & MaskOf(length);

        public static int Common(UInt128 a, UInt128 b) => OracleGen.Common(a, b);

        public static bool Contains((UInt128 Key, int Length) p, UInt128 key) => Masked(key, p.Length) == p.Key;

        public V? LongestMatch(UInt128 key, int maxLength, Func<V, bool> accept)
        {
            V? best = null;
            int bestLength = -1;
            foreach (var (p, v) in Items)
            {
                if (p.Length > maxLength || !Contains(p, key) || !accept(v)) continue;
                if (p.Length > bestLength)
                {
                    best = v;
                    bestLength = p.Length;
                }
            }
            return best;
        }

        public int DeepestDivergence(UInt128 key)
        {
            int deepest = -1;
            foreach (var (p, _) in Items)
            {
                if (Contains(p, key)) continue;
                deepest = Math.Max(deepest, Common(key, p.Key));
            }
            return deepest;
        }
    }

    /// <summary>Keys clustered around a few bases, so prefixes nest and share long runs of bits.</summary>
    private sealed class KeyGen(Random rng, int bits)
    {
        private readonly UInt128[] _bases = Enumerable.Range(0, 4).Select(_ => Random128(rng, bits)).ToArray();

        public static UInt128 Random128(Random rng, int bits)
        {
            var hi = (ulong)rng.NextInt64() ^ ((ulong)rng.Next() << 40);
            var lo = (ulong)rng.NextInt64() ^ ((ulong)rng.Next() << 40);
            var v = ((UInt128)hi << 64) | lo;
            return bits >= 128 ? v : v & Model.MaskOf(bits);
        }

        /// <summary>A key near a base: a random cut point, random bits after it (within the key space).</summary>
        public UInt128 Key()
        {
            if (rng.Next(10) == 0) return Random128(rng, bits);
            var b = _bases[rng.Next(_bases.Length)];
            int keep = rng.Next(bits + 1);
            var noise = Random128(rng, bits);
            // Often flip only one or two bits past the cut, so keys differ deep down.
            if (rng.Next(2) == 0)
            {
                noise = UInt128.Zero;
                for (int i = rng.Next(1, 3); i > 0; i--)
                {
                    int at = rng.Next(bits);
                    noise |= UInt128.One << (127 - at);
                }
            }
            return (b & Model.MaskOf(keep)) | (noise & ~Model.MaskOf(keep) & Model.MaskOf(bits));
        }

        /// <summary>A length: short, mid, long or the full width, each often.</summary>
        public int Length() => rng.Next(6) switch
        {
            0 => rng.Next(0, Math.Min(9, bits + 1)),
            1 => bits,
            2 => bits - rng.Next(0, 3),
            _ => rng.Next(bits + 1),
        };
    }

    private static void CheckAll(PrefixTrie<V> trie, Model model, KeyGen gen, Random rng, int bits, string at)
    {
        Assert.True(model.Items.Count == trie.Count, $"{at}: Count {trie.Count}, oracle {model.Items.Count}");

        // Items: the same set, in key order with the shorter prefix first (as documented).
        var items = trie.Items().ToList();
        var expected = model.Items.OrderBy(kv => kv.Key.Key).ThenBy(kv => kv.Key.Length).Select(kv => (kv.Key.Key, kv.Key.Length, kv.Value.Id)).ToList();
        Assert.Equal(expected, items.Select(i => (i.Key, i.Length, i.Value.Id)).ToList());

        // Get of every stored prefix (with host bits set in the query, which Get must ignore), and of random ones.
        foreach (var ((k, l), v) in model.Items)
        {
            var dirty = k | (KeyGen.Random128(rng, 128) & ~Model.MaskOf(l));
            Assert.True(ReferenceEquals(v, trie.Get(dirty, l)), $"{at}: Get /{l} {k:X} wrong");
        }
        for (int i = 0; i < 4; i++)
        {
            var k = gen.Key();
            int l = gen.Length();
            var want = model.Items.GetValueOrDefault((Model.Masked(k, l), l));
            Assert.True(ReferenceEquals(want, trie.Get(k, l)), $"{at}: Get random /{l} {k:X}");
        }

        // LongestMatch, plain and with an accept callback, and DeepestDivergence, at clustered keys.
        for (int i = 0; i < 6; i++)
        {
            var key = gen.Key();
            if (bits < 128 && rng.Next(4) == 0) key |= KeyGen.Random128(rng, 128) & ~Model.MaskOf(bits); // bits past the key space
            if (i == 0 && model.Items.Count > 0)
            {
                // Right at a stored prefix, plus noise below it.
                var p = model.Items.Keys.ElementAt(rng.Next(model.Items.Count));
                key = p.Key | (gen.Key() & ~Model.MaskOf(p.Length));
            }
            int max = rng.Next(3) == 0 ? rng.Next(bits + 1) : rng.Next(2) == 0 ? bits : 128;

            var want = model.LongestMatch(key, max, _ => true);
            Assert.True(ReferenceEquals(want, trie.LongestMatch(key, max)),
                $"{at}: LongestMatch({key:X}, {max}) = {trie.LongestMatch(key, max)?.Id}, oracle {want?.Id}");

            int mod = rng.Next(2, 4);
            int calls = 0;
            var wantAccepted = model.LongestMatch(key, max, v => v.Id % mod != 0);
            var got = trie.LongestMatch(key, max, (v, m) => { calls++; return v.Id % m != 0; }, mod);
            Assert.True(ReferenceEquals(wantAccepted, got),
                $"{at}: LongestMatch({key:X}, {max}, Id % {mod} != 0) = {got?.Id}, oracle {wantAccepted?.Id}");
            Assert.True(calls <= model.Items.Count, $"{at}: accept called {calls} times for {model.Items.Count} values");

            Assert.True(model.DeepestDivergence(key) == trie.DeepestDivergence(key),
                $"{at}: DeepestDivergence({key:X}) = {trie.DeepestDivergence(key)}, oracle {model.DeepestDivergence(key)}");
        }
    }

    private static void Run(int seed, int bits, int steps)
    {
        var rng = new Random(seed);
        var gen = new KeyGen(rng, bits);
        var trie = new PrefixTrie<V>();
        var model = new Model();
        int nextId = 1;
        for (int step = 0; step < steps; step++)
        {
            // Phases of growth and of shrinking, so the trie fills up, empties and refills (pruning paths).
            bool growing = step / 400 % 2 == 0;
            int op = rng.Next(100);
            string at = $"seed {seed}, {bits}-bit, step {step}";
            if (op < (growing ? 65 : 30))
            {
                UInt128 k;
                int l;
                if (model.Items.Count > 0 && rng.Next(4) == 0)
                {
                    (k, l) = model.Items.Keys.ElementAt(rng.Next(model.Items.Count)); // overwrite
                }
                else
                {
                    k = gen.Key();
                    l = gen.Length();
                }
                var v = new V(nextId++);
                trie.Set(k, l, v);                       // k may carry bits past l: Set masks them
                model.Items[(Model.Masked(k, l), l)] = v;
            }
            else
            {
                UInt128 k;
                int l;
                if (model.Items.Count > 0 && rng.Next(5) != 0)
                {
                    (k, l) = model.Items.Keys.ElementAt(rng.Next(model.Items.Count));
                    k |= gen.Key() & ~Model.MaskOf(l);   // host bits set: Remove must mask them
                }
                else
                {
                    k = gen.Key();
                    l = gen.Length();
                }
                bool want = model.Items.Remove((Model.Masked(k, l), l));
                Assert.True(want == trie.Remove(k, l), $"{at}: Remove /{l} {k:X} should return {want}");
            }
            CheckAll(trie, model, gen, rng, bits, at);
        }

        // Empty it completely: nothing may be left behind.
        foreach (var (k, l) in model.Items.Keys.ToList())
        {
            Assert.True(trie.Remove(k, l));
            model.Items.Remove((k, l));
            Assert.Equal(model.Items.Count, trie.Count);
        }
        Assert.Empty(trie.Items());
        Assert.Null(trie.LongestMatch(gen.Key(), 128));
        Assert.Equal(-1, trie.DeepestDivergence(gen.Key()));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void Random_32_bit_prefixes_match_the_oracle(int seed) => Run(seed, 32, 2000);

    [Theory]
    [InlineData(11)]
    [InlineData(12)]
    [InlineData(13)]
    [InlineData(14)]
    public void Random_128_bit_prefixes_match_the_oracle(int seed) => Run(seed, 128, 2000);

    [Theory]
    [InlineData(21)]
    [InlineData(22)]
    public void Tiny_key_space_with_many_collisions_matches_the_oracle(int seed) => Run(seed, 6, 900);

    [Fact]
    public void Empty_trie_and_argument_checks()
    {
        var trie = new PrefixTrie<V>();
        Assert.Equal(0, trie.Count);
        Assert.Null(trie.Get(UInt128.Zero, 0));
        Assert.Null(trie.LongestMatch(UInt128.MaxValue, 128));
        Assert.Null(trie.LongestMatch(UInt128.MaxValue, 128, static (_, _) => true, 0));
        Assert.Equal(-1, trie.DeepestDivergence(UInt128.Zero));
        Assert.False(trie.Remove(UInt128.Zero, 0));
        Assert.Empty(trie.Items());
        Assert.Throws<ArgumentNullException>(() => trie.Set(UInt128.Zero, 0, null!));
        Assert.Throws<ArgumentOutOfRangeException>(() => trie.Set(UInt128.Zero, 129, new V(1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => trie.Set(UInt128.Zero, -1, new V(1)));
        Assert.Equal(0, trie.Count);
    }

    [Fact]
    public void Default_route_and_host_routes_at_both_ends_of_the_key_space()
    {
        var trie = new PrefixTrie<V>();
        var all = new V(1);
        var top = new V(2);
        var bottom = new V(3);
        trie.Set(UInt128.Zero, 0, all);
        trie.Set(UInt128.MaxValue, 128, top);
        trie.Set(UInt128.Zero, 128, bottom);
        Assert.Same(top, trie.LongestMatch(UInt128.MaxValue, 128));
        Assert.Same(all, trie.LongestMatch(UInt128.MaxValue, 127));
        Assert.Same(bottom, trie.LongestMatch(UInt128.Zero, 128));
        Assert.Same(all, trie.LongestMatch(UInt128.One, 128));
        // ::1 shares 127 bits with ::0/128 (which does not contain it); ::/0 contains everything.
        Assert.Equal(127, trie.DeepestDivergence(UInt128.One));
        // 8000:: shares its first bit with ffff:...:ffff/128 and none with ::/128.
        Assert.Equal(1, trie.DeepestDivergence(UInt128.One << 127));
        Assert.True(trie.Remove(UInt128.Zero, 0));
        Assert.Null(trie.LongestMatch(UInt128.One, 128));
        Assert.Equal(2, trie.Count);
        Assert.True(trie.Remove(UInt128.Zero, 128));
        Assert.True(trie.Remove(UInt128.MaxValue, 128));
        Assert.Equal(0, trie.Count);
        Assert.Empty(trie.Items());
    }
}
