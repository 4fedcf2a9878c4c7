using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Lisp.Perf;

/// <summary>
/// Baseline: a path-compressed binary trie (Patricia / radix tree) for IPv4 longest-prefix match, the textbook
/// structure of software routers (BSD radix, Linux's LC-trie ancestor) and the "realistic" baseline beside the
/// per-length Dictionary one. Nodes live in one struct array (no object per node, no references); each node is
/// a prefix (key, length) that is either a real prefix (Value &gt;= 0) or a branching point, with two children
/// chosen by the address bit just below the node's length. A lookup walks from the root, checks that the
/// node's prefix still matches (path compression skips bits, so they are compared here), remembers the last
/// real prefix seen and descends; one dependent, cache-missing load per level.
/// Checked against the map-cache on the same prefixes before any timing (<see cref="Verify"/>).
/// </summary>
public sealed class PatriciaLpm
{
    [StructLayout(LayoutKind.Sequential)]
    private struct Node
    {
        public uint Key;     // prefix bits, host order, masked to Len
        public int Value;    // prefix index, -1 = branching node only
        public int Left;     // child whose bit at position Len is 0 (-1 none)
        public int Right;
        public int Len;
    }

    private Node[] _nodes = new Node[1024];
    private int _count;
    private int _root = -1;

    public int Nodes => _count;
    public long Bytes => (long)_count * Unsafe.SizeOf<Node>();

    public PatriciaLpm(List<(uint Addr, int Len)> prefixes)
    {
        for (int i = 0; i < prefixes.Count; i++) Insert(prefixes[i].Addr & Mask(prefixes[i].Len), prefixes[i].Len, i);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Mask(int len) => len == 0 ? 0u : uint.MaxValue << (32 - len);

    /// <summary>Bit at position <paramref name="pos"/> (0 = most significant) of <paramref name="a"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Bit(uint a, int pos) => (int)(a >> (31 - pos)) & 1;

    private int NewNode(uint key, int len, int value)
    {
        if (_count == _nodes.Length) Array.Resize(ref _nodes, _nodes.Length * 2);
        _nodes[_count] = new Node { Key = key, Len = len, Value = value, Left = -1, Right = -1 };
        return _count++;
    }

    private void SetLink(int parent, int side, int child)
    {
        if (parent < 0) _root = child;
        else if (side == 0) _nodes[parent].Left = child;
        else _nodes[parent].Right = child;
    }

    private void Insert(uint key, int len, int value)
    {
        if (_root < 0) { _root = NewNode(key, len, value); return; }
        int parent = -1, side = 0, n = _root;
        while (true)
        {
            uint nodeKey = _nodes[n].Key;
            int nodeLen = _nodes[n].Len;
            int common = Math.Min(Math.Min(len, nodeLen), BitOperations.LeadingZeroCount(key ^ nodeKey));
            if (common < nodeLen)
            {
                // The new prefix branches off above node n (or is itself an ancestor of it).
                if (common == len)
                {
                    int m = NewNode(key, len, value);
                    if (Bit(nodeKey, len) == 0) _nodes[m].Left = n; else _nodes[m].Right = n;
                    SetLink(parent, side, m);
                }
                else
                {
                    int branch = NewNode(key & Mask(common), common, -1);
                    int leaf = NewNode(key, len, value);
                    if (Bit(key, common) == 0) { _nodes[branch].Left = leaf; _nodes[branch].Right = n; }
                    else { _nodes[branch].Left = n; _nodes[branch].Right = leaf; }
                    SetLink(parent, side, branch);
                }
                return;
            }
            if (len == nodeLen) { _nodes[n].Value = value; return; }
            int s = Bit(key, nodeLen);
            int child = s == 0 ? _nodes[n].Left : _nodes[n].Right;
            if (child < 0)
            {
                int leaf = NewNode(key, len, value);
                SetLink(n, s, leaf);
                return;
            }
            parent = n; side = s; n = child;
        }
    }

    /// <summary>Index (in the constructor's list) of the longest prefix covering <paramref name="addr"/>, or -1.</summary>
    public int Lookup(uint addr)
    {
        ref Node nodes = ref MemoryMarshal.GetArrayDataReference(_nodes);
        int best = -1;
        int n = _root;
        while (n >= 0)
        {
            ref Node x = ref Unsafe.Add(ref nodes, n);
            int len = x.Len;
            if (len != 0 && ((addr ^ x.Key) >> (32 - len)) != 0) break;
            if (x.Value >= 0) best = x.Value;
            if (len == 32) break;
            n = ((addr >> (31 - len)) & 1) == 0 ? x.Left : x.Right;
        }
        return best;
    }

    /// <summary>
    /// Throws unless the trie, the Dictionary baseline and the map-cache snapshot agree on every destination:
    /// <paramref name="slots"/>[i] is the map-cache entry slot of prefix i.
    /// </summary>
    public static void Verify(PatriciaLpm trie, DictionaryLpmV4 dict, Lisp.MapCache.MapCacheSnapshot snap, int[] slots, ReadOnlySpan<uint> destinations)
    {
        int hits = 0;
        foreach (uint d in destinations)
        {
            int t = trie.Lookup(d);
            int k = dict.Lookup(d);
            int m = snap.TryLookupV4(0, d, d, out var r) ? r.EntryIndex : -1;
            if (t != k || (t < 0 ? m != -1 : slots[t] != m))
                throw new InvalidOperationException($"LPM disagreement at {d:x8}: trie {t}, dictionary {k}, map-cache slot {m}");
            if (t >= 0) hits++;
        }
        if (hits == 0) throw new InvalidOperationException("verification saw no hits");
    }
}
