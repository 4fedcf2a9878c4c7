using System.Runtime.CompilerServices;

[assembly: InternalsVisibleTo("Lisp.ControlPlane.Tests")]

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
/// Nodes live in one array of structs (indices, not references): per prefix at most two 32-byte nodes and a value
/// slot, no objects for the GC to trace. Measured: the object-per-node version cost 128 B per registration in node
/// objects (four objects per registration with the entry and registrant), the pool 80 B with two objects.
/// Not thread-safe: one control shard owns each trie.
/// </summary>
public sealed class PrefixTrie<T> where T : class
{
    private struct Node
    {
        public UInt128 Key;
        public int Length;
        public int Zero;   // child index, -1: none
        public int One;
    }

    private const int None = -1;
    private Node[] _nodes = new Node[4];
    private T?[] _values = new T?[4];
    private int _used;          // nodes handed out (the high-water mark)
    private int _free = None;   // freed nodes, chained through Zero
    private int _root = None;
    // The path Remove walked (root first), shared by the tries of a thread (a trie belongs to one thread).
    [ThreadStatic] private static int[]? t_path;

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

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int Child(int n, bool one) => one ? _nodes[n].One : _nodes[n].Zero;

    private int NewNode(UInt128 key, int length, T? value)
    {
        int i;
        if (_free != None)
        {
            i = _free;
            _free = _nodes[i].Zero;
        }
        else
        {
            if (_used == _nodes.Length)
            {
                Array.Resize(ref _nodes, _nodes.Length * 2);
                Array.Resize(ref _values, _values.Length * 2);
            }
            i = _used++;
        }
        _nodes[i] = new Node { Key = key, Length = length, Zero = None, One = None };
        _values[i] = value;
        return i;
    }

    private void FreeNode(int i)
    {
        _values[i] = null;
        _nodes[i].Zero = _free;
        _nodes[i].One = None;
        _free = i;
    }

    /// <summary>The node holding exactly this prefix (with or without a value), or -1.</summary>
    private int Find(UInt128 key, int length)
    {
        int n = _root;
        while (n != None)
        {
            ref var node = ref _nodes[n];
            if (node.Length > length || CommonLength(node.Key, key, node.Length) < node.Length) return None;
            if (node.Length == length) return n;
            n = Bit(key, node.Length) ? node.One : node.Zero;
        }
        return None;
    }

    /// <summary>The value stored for exactly this prefix, or null.</summary>
    public T? Get(UInt128 key, int length)
    {
        int n = Find(Mask(key, length), length);
        return n == None ? null : _values[n];
    }

    /// <summary>Stores <paramref name="value"/> for the prefix (replacing what was there).</summary>
    public void Set(UInt128 key, int length, T value)
    {
        ArgumentNullException.ThrowIfNull(value);
        if ((uint)length > 128) throw new ArgumentOutOfRangeException(nameof(length));
        key = Mask(key, length);
        int parent = None;
        int n = _root;
        while (true)
        {
            if (n == None)
            {
                int leaf = NewNode(key, length, value);
                if (parent == None) _root = leaf;
                else SetChild(parent, Bit(key, _nodes[parent].Length), leaf);
                Count++;
                return;
            }
            int nLength = _nodes[n].Length;
            UInt128 nKey = _nodes[n].Key;
            int common = CommonLength(nKey, key, Math.Min(nLength, length));
            if (common == nLength)
            {
                if (nLength == length)
                {
                    if (_values[n] is null) Count++;
                    _values[n] = value;
                    return;
                }
                parent = n;
                n = Bit(key, nLength) ? _nodes[n].One : _nodes[n].Zero;
                continue;
            }
            // The new prefix and n part at bit `common` (< n's length): a node at `common` goes between parent and n.
            int above = common == length ? NewNode(key, length, value) : NewNode(Mask(key, common), common, null);
            Replace(parent, n, above);
            SetChild(above, Bit(nKey, common), n);
            if (common != length) SetChild(above, Bit(key, common), NewNode(key, length, value));
            Count++;
            return;
        }
    }

    /// <summary>Removes the prefix's value; true when there was one.</summary>
    public bool Remove(UInt128 key, int length)
    {
        key = Mask(key, length);
        var path = t_path ??= new int[130];
        int n = _root;
        int depth = 0;
        while (n != None)
        {
            ref var node = ref _nodes[n];
            if (node.Length > length || CommonLength(node.Key, key, node.Length) < node.Length) return false;
            path[depth++] = n;
            if (node.Length == length) break;
            n = Bit(key, node.Length) ? node.One : node.Zero;
        }
        if (n == None || _values[n] is null) return false;
        _values[n] = null;
        Count--;
        Prune(path, depth - 1);
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
        T? best = null;
        int n = _root;
        while (n != None)
        {
            ref var node = ref _nodes[n];
            if (node.Length > maxLength || CommonLength(node.Key, key, node.Length) != node.Length) break;
            if (_values[n] is { } v && accept(v, state)) best = v;
            if (node.Length >= 128) break;
            n = Bit(key, node.Length) ? node.One : node.Zero;
        }
        return best;
    }

    /// <summary>
    /// The most leading bits <paramref name="key"/> shares with any stored prefix that does not contain it, or
    /// -1 when every stored prefix contains it (or the trie is empty). A prefix around the key that is one bit
    /// longer than this holds no stored prefix except those containing the key: the negative Map-Reply's size.
    /// </summary>
    public int DeepestDivergence(UInt128 key)
    {
        int deepest = -1;
        int n = _root;
        while (n != None)
        {
            ref var node = ref _nodes[n];
            int common = CommonLength(node.Key, key, node.Length);
            if (common < node.Length)
            {
                // Every prefix under n shares n's first Length bits, so each parts from the key at `common`.
                return Math.Max(deepest, common);
            }
            if (node.Length >= 128) break;
            bool bit = Bit(key, node.Length);
            // The other branch is never empty (pruning keeps every valueless node with two children), and all
            // of it parts from the key at bit Length.
            if ((bit ? node.Zero : node.One) != None) deepest = node.Length;
            n = bit ? node.One : node.Zero;
        }
        return deepest;
    }

    /// <summary>Every stored (key, length, value), in key order (shorter prefix first).</summary>
    public IEnumerable<(UInt128 Key, int Length, T Value)> Items()
    {
        var stack = new Stack<int>();
        if (_root != None) stack.Push(_root);
        while (stack.Count > 0)
        {
            int n = stack.Pop();
            if (_values[n] is { } v) yield return (_nodes[n].Key, _nodes[n].Length, v);
            if (_nodes[n].One != None) stack.Push(_nodes[n].One);
            if (_nodes[n].Zero != None) stack.Push(_nodes[n].Zero);
        }
    }

    /// <summary>
    /// Visits stored (key, length, value) in key order (<see cref="Items"/>'s order: key, then shorter prefix first)
    /// starting after (key <paramref name="fromKey"/>, length <paramref name="fromLength"/>), or at it when
    /// <paramref name="inclusive"/>; <paramref name="visit"/> returns false to stop. Subtrees wholly before the start
    /// are skipped unvisited, so a walk that stops after k items costs O(depth + k) whatever the trie holds: the
    /// management pages resume from a cursor this way instead of walking the table from its start (issue 12).
    /// </summary>
    public void WalkFrom<TState>(UInt128 fromKey, int fromLength, bool inclusive, Func<UInt128, int, T, TState, bool> visit, TState state)
    {
        var stack = new Stack<int>();
        if (_root != None) stack.Push(_root);
        while (stack.Count > 0)
        {
            int n = stack.Pop();
            ref var node = ref _nodes[n];
            // The largest key below this node: its bits, then every later bit set.
            UInt128 last = node.Length >= 128 ? node.Key : node.Key | (UInt128.MaxValue >> node.Length);
            if (last < fromKey) continue;
            int order = node.Key != fromKey ? node.Key.CompareTo(fromKey) : node.Length.CompareTo(fromLength);
            if (_values[n] is { } v && (order > 0 || (order == 0 && inclusive)) && !visit(node.Key, node.Length, v, state)) return;
            if (node.One != None) stack.Push(node.One);
            if (node.Zero != None) stack.Push(node.Zero);
        }
    }

    /// <summary>Checks the structure's invariants (tests): keys masked, children extend their parent, no useless nodes.</summary>
    internal string? Validate()
    {
        int values = 0;
        var stack = new Stack<int>();
        if (_root != None) stack.Push(_root);
        while (stack.Count > 0)
        {
            int n = stack.Pop();
            var node = _nodes[n];
            if (node.Key != Mask(node.Key, node.Length)) return $"node /{node.Length} key not masked";
            if (_values[n] is not null) values++;
            else if (node.Zero == None || node.One == None) return $"valueless node /{node.Length} with fewer than two children";
            foreach (var (child, bit) in new[] { (node.Zero, false), (node.One, true) })
            {
                if (child == None) continue;
                var c = _nodes[child];
                if (c.Length <= node.Length) return "child not longer than parent";
                if (CommonLength(c.Key, node.Key, node.Length) < node.Length || Bit(c.Key, node.Length) != bit) return "child on the wrong side";
                stack.Push(child);
            }
        }
        return values == Count ? null : $"count {Count} but {values} values";
    }

    private void SetChild(int parent, bool one, int child)
    {
        if (one) _nodes[parent].One = child;
        else _nodes[parent].Zero = child;
    }

    private void Replace(int parent, int old, int with)
    {
        if (parent == None) _root = with;
        else SetChild(parent, _nodes[parent].One == old, with);
    }

    /// <summary>Removes valueless nodes that no longer join two branches, from path[depth] upwards.</summary>
    private void Prune(int[] path, int depth)
    {
        while (depth >= 0)
        {
            int n = path[depth];
            if (_values[n] is not null || (_nodes[n].Zero != None && _nodes[n].One != None)) return;
            int parent = depth > 0 ? path[depth - 1] : None;
            int only = _nodes[n].Zero != None ? _nodes[n].Zero : _nodes[n].One;
            if (only == None)
            {
                if (parent == None) _root = None;
                else if (_nodes[parent].One == n) _nodes[parent].One = None;
                else _nodes[parent].Zero = None;
            }
            else Replace(parent, n, only);
            FreeNode(n);
            depth--;
        }
    }
}
