using System.Runtime.CompilerServices;

namespace Lisp.ControlPlane.Tables;

/// <summary>
/// A mutable longest-prefix-match table: a path-compressed binary (Patricia) trie over keys of up to 128 bits,
/// left-aligned in a <see cref="UInt128"/> (bit 0 is the most significant). One trie holds one address family of
/// one instance-id; the caller never mixes lengths of different families in one trie.
/// <para>
/// Why this shape: the map-server's table changes with every Map-Register (insert, refresh, withdraw, expire)
/// and is asked per Map-Request for the longest covering prefix and, for negative replies, for the widest
/// prefix around an address that holds nothing registered. A Patricia trie answers all three by walking one
/// path (at most 129 nodes, in practice about log2(n)), so the cost does not grow with the table, and it
/// holds at most 2n-1 nodes for n prefixes (no per-bit nodes, no rebuilds). The data plane's DIR-24 and
/// hashed tables (Lisp.MapCache) are built for read-mostly snapshots instead.
/// </para>
/// Not thread-safe: one control shard owns each trie.
/// </summary>
public sealed class PrefixTrie<T> where T : class
{
    private sealed class Node(UInt128 key, int length, T? value)
    {
        public UInt128 Key = key;
        public readonly int Length = length;
        public T? Value = value;
        public Node? Zero;
        public Node? One;
    }

    private Node? _root;
    // The path Remove walked (root first), reused: no parent pointer per node (8 B each, two nodes per prefix).
    private readonly Node?[] _path = new Node?[130];

    /// <summary>Prefixes holding a value.</summary>
    public int Count { get; private set; }

    /// <summary>Bit <paramref name="index"/> (0 = most significant) of a key.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Bit(UInt128 key, int index) => ((key >> (127 - index)) & UInt128.One) != UInt128.Zero;

    /// <summary>The key with every bit from <paramref name="length"/> on cleared.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static UInt128 Mask(UInt128 key, int length) => length <= 0 ? UInt128.Zero : length >= 128 ? key : key & (UInt128.MaxValue << (128 - length));

    /// <summary>Leading bits two keys share, at most <paramref name="limit"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int CommonLength(UInt128 a, UInt128 b, int limit)
    {
        int lz = (int)UInt128.LeadingZeroCount(a ^ b);
        return lz < limit ? lz : limit;
    }

    /// <summary>The value stored for exactly this prefix, or null.</summary>
    public T? Get(UInt128 key, int length)
    {
        key = Mask(key, length);
        var n = _root;
        while (n is not null)
        {
            if (n.Length > length || CommonLength(n.Key, key, n.Length) < n.Length) return null;
            if (n.Length == length) return n.Value;
            n = Bit(key, n.Length) ? n.One : n.Zero;
        }
        return null;
    }

    /// <summary>Stores <paramref name="value"/> for the prefix (replacing what was there).</summary>
    public void Set(UInt128 key, int length, T value)
    {
        ArgumentNullException.ThrowIfNull(value);
        if ((uint)length > 128) throw new ArgumentOutOfRangeException(nameof(length));
        key = Mask(key, length);
        Node? parent = null;
        var n = _root;
        while (true)
        {
            if (n is null)
            {
                Attach(parent, new Node(key, length, value), key);
                Count++;
                return;
            }
            int common = CommonLength(n.Key, key, Math.Min(n.Length, length));
            if (common == n.Length)
            {
                if (n.Length == length)
                {
                    if (n.Value is null) Count++;
                    n.Value = value;
                    return;
                }
                parent = n;
                n = Bit(key, n.Length) ? n.One : n.Zero;
                continue;
            }
            // The new prefix and n part at bit `common` (< n.Length): a node at `common` goes between parent and n.
            var above = common == length ? new Node(key, length, value) : new Node(Mask(key, common), common, null);
            Replace(parent, n, above);
            SetChild(above, Bit(n.Key, common), n);
            if (common != length) SetChild(above, Bit(key, common), new Node(key, length, value));
            Count++;
            return;
        }
    }

    /// <summary>Removes the prefix's value; true when there was one.</summary>
    public bool Remove(UInt128 key, int length)
    {
        key = Mask(key, length);
        var n = _root;
        int depth = 0;
        while (n is not null)
        {
            if (n.Length > length || CommonLength(n.Key, key, n.Length) < n.Length) return false;
            _path[depth++] = n;
            if (n.Length == length) break;
            n = Bit(key, n.Length) ? n.One : n.Zero;
        }
        if (n?.Value is null)
        {
            Array.Clear(_path, 0, depth);
            return false;
        }
        n.Value = null;
        Count--;
        Prune(depth - 1);
        Array.Clear(_path, 0, depth);
        return true;
    }

    /// <summary>
    /// The value of the longest stored prefix, no longer than <paramref name="maxLength"/>, that contains
    /// <paramref name="key"/>, or null.
    /// </summary>
    public T? LongestMatch(UInt128 key, int maxLength) => LongestMatch(key, maxLength, static (_, _) => true, 0);

    /// <summary>
    /// The value of the longest stored prefix, no longer than <paramref name="maxLength"/>, that contains
    /// <paramref name="key"/> and that <paramref name="accept"/> takes (given <paramref name="state"/>, so the
    /// caller needs no capturing lambda per call), or null.
    /// </summary>
    public T? LongestMatch<TState>(UInt128 key, int maxLength, Func<T, TState, bool> accept, TState state)
    {
        // Walking from the shortest covering prefix to the longest, the last one accepted wins: a covering prefix
        // whose registrations all expired (not yet swept) must not hide a shorter live one.
        Node? best = null;
        var n = _root;
        while (n is not null && n.Length <= maxLength && CommonLength(n.Key, key, n.Length) == n.Length)
        {
            if (n.Value is not null && accept(n.Value, state)) best = n;
            if (n.Length >= 128) break;
            n = Bit(key, n.Length) ? n.One : n.Zero;
        }
        return best?.Value;
    }

    /// <summary>
    /// The most leading bits <paramref name="key"/> shares with any stored prefix that does not contain it, or
    /// -1 when every stored prefix contains it (or the trie is empty). A prefix around the key that is one bit
    /// longer than this holds no stored prefix except those containing the key: the negative Map-Reply's size.
    /// </summary>
    public int DeepestDivergence(UInt128 key)
    {
        int deepest = -1;
        var n = _root;
        while (n is not null)
        {
            int common = CommonLength(n.Key, key, n.Length);
            if (common < n.Length)
            {
                // Every prefix under n shares n's first n.Length bits, so each parts from the key at `common`.
                return Math.Max(deepest, common);
            }
            if (n.Length >= 128) break;
            bool bit = Bit(key, n.Length);
            // The other branch is never empty (pruning keeps every valueless node with two children), and all
            // of it parts from the key at bit n.Length.
            if ((bit ? n.Zero : n.One) is not null) deepest = n.Length;
            n = bit ? n.One : n.Zero;
        }
        return deepest;
    }

    /// <summary>Every stored (key, length, value), in key order (shorter prefix first).</summary>
    public IEnumerable<(UInt128 Key, int Length, T Value)> Items()
    {
        var stack = new Stack<Node>();
        if (_root is not null) stack.Push(_root);
        while (stack.Count > 0)
        {
            var n = stack.Pop();
            if (n.Value is not null) yield return (n.Key, n.Length, n.Value);
            if (n.One is not null) stack.Push(n.One);
            if (n.Zero is not null) stack.Push(n.Zero);
        }
    }

    /// <summary>Checks the structure's invariants (tests): keys masked, children extend their parent, no useless nodes.</summary>
    internal string? Validate()
    {
        int values = 0;
        var stack = new Stack<Node>();
        if (_root is not null) stack.Push(_root);
        while (stack.Count > 0)
        {
            var n = stack.Pop();
            if (n.Key != Mask(n.Key, n.Length)) return $"node /{n.Length} key not masked";
            if (n.Value is not null) values++;
            else if (n.Zero is null || n.One is null) return $"valueless node /{n.Length} with fewer than two children";
            foreach (var (child, bit) in new[] { (n.Zero, false), (n.One, true) })
            {
                if (child is null) continue;
                if (child.Length <= n.Length) return "child not longer than parent";
                if (CommonLength(child.Key, n.Key, n.Length) < n.Length || Bit(child.Key, n.Length) != bit) return "child on the wrong side";
                stack.Push(child);
            }
        }
        return values == Count ? null : $"count {Count} but {values} values";
    }

    private void Attach(Node? parent, Node child, UInt128 key)
    {
        if (parent is null) _root = child;
        else SetChild(parent, Bit(key, parent.Length), child);
    }

    private static void SetChild(Node parent, bool one, Node child)
    {
        if (one) parent.One = child;
        else parent.Zero = child;
    }

    private void Replace(Node? parent, Node old, Node with)
    {
        if (parent is null) _root = with;
        else SetChild(parent, ReferenceEquals(parent.One, old), with);
    }

    /// <summary>Removes valueless nodes that no longer join two branches, from _path[depth] upwards.</summary>
    private void Prune(int depth)
    {
        while (depth >= 0)
        {
            var n = _path[depth]!;
            if (n.Value is not null || (n.Zero is not null && n.One is not null)) return;
            var parent = depth > 0 ? _path[depth - 1] : null;
            var only = n.Zero ?? n.One;
            if (only is null)
            {
                if (parent is null) _root = null;
                else if (ReferenceEquals(parent.One, n)) parent.One = null;
                else parent.Zero = null;
            }
            else Replace(parent, n, only);
            depth--;
        }
    }
}
