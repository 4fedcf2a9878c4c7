namespace Lisp.Load;

public enum MatchResult
{
    Matched,
    Duplicate,
    Late,
    Unmatched,
}

/// <summary>
/// Outstanding messages of one sending thread, by nonce: nonce = 32-bit run tag &lt;&lt; 32 | 32-bit sequence,
/// so a reply from another run, thread or step is told apart (unmatched) from a second reply (duplicate) and
/// from one after its timeout (late). A ring indexed by sequence: O(1) issue and match, timeouts expire in send
/// order from the oldest. Single-threaded, no locks; pure (times are passed in).
/// </summary>
public sealed class NonceTracker
{
    private const byte Free = 0, Pending = 1, Answered = 2, TimedOut = 3;

    private struct Slot
    {
        public uint Seq;
        public byte State;
        public byte Kind;
        public int Item;
        public long SentNs;
        public long SentMono;
    }

    private readonly Slot[] _ring;
    private readonly int _mask;
    private uint _next;
    private uint _oldest;

    public NonceTracker(uint tag, int capacity)
    {
        Tag = tag;
        int size = 1024;
        while (size < capacity && size < (1 << 24)) size <<= 1;
        _ring = new Slot[size];
        _mask = size - 1;
    }

    public uint Tag { get; }
    public int Capacity => _ring.Length;
    public long InFlight { get; private set; }
    public long TimedOutCount { get; private set; }
    /// <summary>Pending messages whose slot was reused before an answer or timeout (counted as timed out too).</summary>
    public long Overwritten { get; private set; }
    public uint Issued => _next;

    /// <summary>Records a message about to be sent and returns its nonce; set the send time with <see cref="SetSent"/>.</summary>
    public ulong Issue(int item, byte kind)
    {
        uint seq = _next++;
        ref var s = ref _ring[(int)(seq & (uint)_mask)];
        if (s.State == Pending)
        {
            Overwritten++;
            TimedOutCount++;
            InFlight--;
        }
        s.Seq = seq;
        s.State = Pending;
        s.Kind = kind;
        s.Item = item;
        s.SentNs = long.MaxValue;
        s.SentMono = long.MaxValue;
        InFlight++;
        return (ulong)Tag << 32 | seq;
    }

    /// <summary>
    /// Stamps the send time of the messages issued as the last <paramref name="count"/>: <paramref name="sentNs"/> on
    /// the clock the kernel stamps received datagrams with (CLOCK_REALTIME), for latency; <paramref name="sentMono"/>
    /// on a monotonic clock, for timeouts, so a wall-clock step neither expires everything nor stops expiry.
    /// </summary>
    public void SetSent(int count, long sentNs, long sentMono)
    {
        for (uint k = 1; k <= count; k++)
        {
            ref var s = ref _ring[(int)((_next - k) & (uint)_mask)];
            if (s.Seq == _next - k)
            {
                s.SentNs = sentNs;
                s.SentMono = sentMono;
            }
        }
    }

    /// <summary>
    /// Forgets a message that never left (the kernel refused it): neither in flight nor lost. Returns the kind it
    /// was issued with, or 0 when the nonce is not a pending message of this tracker.
    /// </summary>
    public byte Cancel(ulong nonce)
    {
        uint seq = (uint)nonce;
        ref var s = ref _ring[(int)(seq & (uint)_mask)];
        if ((uint)(nonce >> 32) != Tag || s.Seq != seq || s.State != Pending) return 0;
        s.State = Free;
        InFlight--;
        return s.Kind;
    }

    /// <summary>Matches a reply's nonce. On <see cref="MatchResult.Matched"/> the message is answered and its item, kind and send time are returned.</summary>
    public MatchResult Match(ulong nonce, out int item, out byte kind, out long sentNs)
    {
        item = 0;
        kind = 0;
        sentNs = 0;
        if ((uint)(nonce >> 32) != Tag) return MatchResult.Unmatched;
        uint seq = (uint)nonce;
        if ((int)(seq - _next) >= 0) return MatchResult.Unmatched; // never issued
        ref var s = ref _ring[(int)(seq & (uint)_mask)];
        if (s.Seq != seq) return MatchResult.Late; // issued long ago, slot reused since
        switch (s.State)
        {
            case Pending:
                s.State = Answered;
                InFlight--;
                item = s.Item;
                kind = s.Kind;
                sentNs = s.SentNs;
                return MatchResult.Matched;
            case Answered:
                item = s.Item;
                kind = s.Kind;
                return MatchResult.Duplicate;
            default:
                return MatchResult.Late;
        }
    }

    /// <summary>Writes off every pending message sent (monotonic clock of <see cref="SetSent"/>) before <paramref name="cutoffMono"/> as timed out; returns how many.</summary>
    public int Expire(long cutoffMono)
    {
        int n = 0;
        while (_oldest != _next)
        {
            ref var s = ref _ring[(int)(_oldest & (uint)_mask)];
            if (s.Seq == _oldest && s.State == Pending)
            {
                if (s.SentMono >= cutoffMono) break;
                s.State = TimedOut;
                InFlight--;
                TimedOutCount++;
                n++;
            }
            _oldest++;
        }
        return n;
    }
}
