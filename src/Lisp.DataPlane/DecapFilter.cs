using System.Net;
using System.Net.Sockets;
using System.Numerics;

namespace Lisp.DataPlane;

/// <summary>
/// `[data_plane] accept_from = "known"` (issue 13): the ETR decapsulates a data packet only when its outer source is
/// a known RLOC: one in the map-cache, one of the node's configured peers, or inside a configured prefix. Anything
/// else is counted (<see cref="DropReason.UnknownSource"/>) and dropped; instance-id 0xffffff control packets are not
/// filtered here (they carry their own authentication). The control thread publishes a new immutable set whenever the
/// map-cache's RLOCs change (<see cref="Publish"/>); workers read the current one once per batch, no lock.
/// <para>Lookup: open addressing over the RLOCs as 128-bit keys (IPv4 as v4-mapped), one multiply-shift hash and a
/// short linear probe (load at most 1/2); the configured prefixes are few and tried first by mask.</para>
/// </summary>
public sealed class DecapFilter
{
    private readonly (UInt128 Bits, UInt128 Mask)[] _prefixes;
    private volatile KnownRlocs _known = KnownRlocs.Empty;

    /// <param name="prefixes">outer source prefixes always accepted (IPv4 or IPv6, with their lengths)</param>
    public DecapFilter(IEnumerable<(IPAddress Address, int Length)> prefixes)
    {
        _prefixes = prefixes.Select(p =>
        {
            bool v4 = p.Address.AddressFamily == AddressFamily.InterNetwork;
            int length = v4 ? 96 + Math.Clamp(p.Length, 0, 32) : Math.Clamp(p.Length, 0, 128);
            UInt128 mask = length == 0 ? UInt128.Zero : UInt128.MaxValue << (128 - length);
            return (RlocKey.From(p.Address).Value & mask, mask);
        }).ToArray();
    }

    /// <summary>The set the workers use now (read once per batch).</summary>
    public KnownRlocs Current => _known;

    /// <summary>RLOCs in the current set (without the prefixes).</summary>
    public int Count => _known.Count;

    /// <summary>Control thread: replace the known RLOCs.</summary>
    public void Publish(IEnumerable<RlocKey> rlocs) => _known = new KnownRlocs(rlocs, _prefixes);

    /// <summary>An immutable set of RLOCs plus the configured prefixes.</summary>
    public sealed class KnownRlocs
    {
        public static readonly KnownRlocs Empty = new([], []);
        private readonly UInt128[] _slots;   // UInt128.Zero: empty (:: is never a sender's address)
        private readonly int _shift;
        private readonly (UInt128 Bits, UInt128 Mask)[] _prefixes;

        public int Count { get; }

        internal KnownRlocs(IEnumerable<RlocKey> rlocs, (UInt128, UInt128)[] prefixes)
        {
            _prefixes = prefixes;
            var distinct = rlocs.Select(r => r.Value).Where(v => v != UInt128.Zero).Distinct().ToList();
            int size = (int)BitOperations.RoundUpToPowerOf2((uint)Math.Max(8, distinct.Count * 2));
            _slots = new UInt128[size];
            _shift = 64 - BitOperations.Log2((uint)size);
            foreach (var v in distinct)
            {
                int i = Slot(v);
                while (_slots[i] != UInt128.Zero) i = (i + 1) & (_slots.Length - 1);
                _slots[i] = v;
            }
            Count = distinct.Count;
        }

        private int Slot(UInt128 v) => (int)((((ulong)(v >> 64) * 0x9E3779B97F4A7C15UL) ^ ((ulong)v * 0xC2B2AE3D27D4EB4FUL)) >> _shift);

        public bool Contains(RlocKey rloc)
        {
            var v = rloc.Value;
            foreach (var (bits, mask) in _prefixes)
            {
                if ((v & mask) == bits) return true;
            }
            if (v == UInt128.Zero) return false;
            int i = Slot(v);
            while (true)
            {
                var s = _slots[i];
                if (s == v) return true;
                if (s == UInt128.Zero) return false;
                i = (i + 1) & (_slots.Length - 1);
            }
        }
    }
}
