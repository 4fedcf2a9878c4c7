using Lisp.ControlPlane.Tables;

namespace Lisp.ControlPlane.Tests.Tables;

/// <summary>
/// The trie's internal invariants (PrefixTrie.Validate: keys masked, children on the right side and longer than
/// their parent, every valueless node joining two branches, Count equal to the values held) after every step of
/// random inserts and removes, including the node pool's reuse of freed nodes.
/// </summary>
public class PrefixTrieStructureTests
{
    [Theory]
    [InlineData(1, 32)]
    [InlineData(2, 128)]
    [InlineData(3, 8)]
    public void Invariants_hold_after_every_insert_and_remove(int seed, int bits)
    {
        var rnd = new Random(seed);
        var trie = new PrefixTrie<string>();
        var held = new Dictionary<(UInt128, int), string>();
        UInt128 Key()
        {
            // Clustered: a few bases with random low bits, so prefixes nest and share long runs.
            UInt128 b = rnd.Next(4) switch { 0 => UInt128.Zero, 1 => UInt128.MaxValue, 2 => (UInt128)0x0a000000 << 96, _ => (UInt128)rnd.NextInt64() << 64 };
            int low = rnd.Next(Math.Min(bits, 24) + 1);
            UInt128 noise = low == 0 ? UInt128.Zero : ((UInt128)(ulong)rnd.NextInt64() & (((UInt128)1 << low) - 1)) << (128 - bits);
            return PrefixTrie<string>.Mask(b ^ noise, bits);
        }
        for (int step = 0; step < 3000; step++)
        {
            var k = Key();
            int len = rnd.Next(bits + 1);
            var masked = PrefixTrie<string>.Mask(k, len);
            // Grow for the first half, then mostly shrink: freed nodes get reused and the trie empties.
            bool insert = step < 1500 ? rnd.Next(4) != 0 : rnd.Next(4) == 0;
            if (insert)
            {
                string v = $"{step}";
                trie.Set(k, len, v);
                held[(masked, len)] = v;
            }
            else
            {
                Assert.Equal(held.Remove((masked, len)), trie.Remove(k, len));
                if (held.Count > 0 && rnd.Next(2) == 0)
                {
                    var (hk, hl) = held.Keys.ElementAt(rnd.Next(held.Count));
                    Assert.True(trie.Remove(hk, hl));
                    held.Remove((hk, hl));
                }
            }
            Assert.Null(trie.Validate());
            Assert.Equal(held.Count, trie.Count);
        }
        foreach (var (hk, hl) in held.Keys.ToList()) Assert.True(trie.Remove(hk, hl));
        Assert.Null(trie.Validate());
        Assert.Equal(0, trie.Count);
        Assert.Empty(trie.Items());
    }
}
