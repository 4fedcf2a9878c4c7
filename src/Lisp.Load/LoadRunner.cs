using System.Diagnostics;
using System.Net;
using Lisp.Wire;

namespace Lisp.Load;

/// <summary>
/// Runs a load scenario: builds the EIDs and message templates once, opens one socket per thread, then for
/// each rate step starts one <see cref="LoadWorker"/> per socket (own thread, own nonce ring, histogram and
/// counters; nothing shared on the per-packet path but the read-only templates) and sums their counts.
/// </summary>
public sealed class LoadRunner : IDisposable
{
    private readonly LoadOptions _o;
    private readonly List<LoadSocket> _sockets = [];

    public LoadRunner(LoadOptions options)
    {
        _o = options;
        if (options.Validate() is { } err) throw new ArgumentException(err);
        Eids = options.EidList ?? EidRange.Build(options.EidBase, options.Eids);
        bool registers = options.Scenario is LoadScenario.Register or LoadScenario.Refresh || (options.Scenario == LoadScenario.Mixed && options.RatioRegister > 0);
        bool requests = options.Scenario == LoadScenario.Request || (options.Scenario == LoadScenario.Mixed && options.RatioRequest > 0);
        try
        {
            for (int t = 0; t < options.Threads; t++)
            {
                var bind = options.Bind.Port == 0 ? options.Bind : new IPEndPoint(options.Bind.Address, options.Bind.Port + t);
                // Slots: the send batch, and at least 64 for receiving replies in bulk.
                var socket = LoadSocket.Open(bind, Math.Max(options.Batch, 64), 9216);
                _sockets.Add(socket);
                socket.SetDestinationAll(options.Target);
            }
            var local = _sockets[0].Local.Address;
            if (registers) Registers = LoadMessages.BuildRegisters(Eids, options.RecordsPerRegister, options.Rloc ?? local, options);
            if (requests) Requests = LoadMessages.BuildRequests(Eids, local);
            if (Math.Max(Registers?.MaxLength ?? 0, Requests?.MaxLength ?? 0) > 9216) throw new ArgumentException("a message is larger than 9216 bytes: use fewer --records");
        }
        catch
        {
            // The caller never gets this object, so nothing else would close the sockets opened so far.
            Dispose();
            throw;
        }
    }

    public IReadOnlyList<EidPrefix> Eids { get; }
    public TemplateSet? Registers { get; }
    public TemplateSet? Requests { get; }
    public IReadOnlyList<LoadSocket> Sockets => _sockets;

    public LoadReport Run(CancellationToken ct = default, Action<string>? progress = null)
    {
        var steps = _o.Steps ?? [_o.Rate];
        var results = new List<StepResult>();
        foreach (double rate in steps)
        {
            if (ct.IsCancellationRequested) break;
            results.Add(RunStep(rate, ct));
            progress?.Invoke($"step {rate:0}/s done: {results[^1].ReplyRate:0.0} replies/s, p99 {results[^1].P99Us:0} us");
        }
        return new LoadReport
        {
            Scenario = _o.Scenario.ToString().ToLowerInvariant(),
            Target = _o.Target.ToString(),
            Bind = _sockets[0].Local.ToString(),
            Threads = _o.Threads,
            Batch = _o.Batch,
            Window = _o.Window,
            Eids = Eids.Count,
            RecordsPerRegister = _o.RecordsPerRegister,
            Algorithm = _o.Algorithm == AuthAlgorithm.HmacSha1_96 ? "hmac-sha1" : "hmac-sha256",
            DurationSeconds = _o.Duration.TotalSeconds,
            Steps = results,
        };
    }

    private StepResult RunStep(double rate, CancellationToken ct)
    {
        int T = _o.Threads;
        bool targetIsLocal = _o.KernelDrops && KernelDrops.IsLocal(_o.Target.Address);   // a remote target's drops are not in our /proc
        long? targetBefore = targetIsLocal ? KernelDrops.Read(_o.Target) : null;
        long? ownBefore = OwnDrops();
        // Register runs send each message once unless a count, a refresh or steps say otherwise.
        long count = _o.Count;
        if (count == 0 && _o.Scenario == LoadScenario.Register && _o.Steps is null) count = Registers!.Count;
        uint runTag = (uint)Random.Shared.Next() & 0xffffff00u;
        var workers = new LoadWorker[T];
        for (int t = 0; t < T; t++)
        {
            long quota = count == 0 ? 0 : count / T + (t < count % T ? 1 : 0);
            if (count != 0 && quota == 0) quota = -1; // nothing for this thread
            workers[t] = new LoadWorker(_o, this, _sockets[t], t, runTag | (uint)t, rate / T,
                _o.Window == 0 ? 0 : Math.Max(1, _o.Window / T), quota, _o.Seed + t);
        }
        var threads = workers.Select(w => new Thread(() => w.Run(ct)) { IsBackground = true, Name = "load-" + w.Index }).ToArray();
        foreach (var th in threads) th.Start();
        foreach (var th in threads) th.Join();

        var h = new LatencyHistogram();
        foreach (var w in workers) h.Add(w.Latency);
        long start = workers.Min(w => w.StartTicks);
        long lastReply = workers.Max(w => w.LastReplyTicks);
        long sendEnd = workers.Max(w => w.SendEndTicks);
        double sendS = Math.Max(1e-9, (sendEnd - start) / (double)Stopwatch.Frequency);
        double replyS = lastReply > start ? (lastReply - start) / (double)Stopwatch.Frequency : sendS;
        long Sum(Func<LoadWorker, long> f) => workers.Sum(f);
        long sent = Sum(w => w.C.Sent), replies = Sum(w => w.C.Replies), accepted = Sum(w => w.C.Accepted);
        long? targetAfter = targetIsLocal ? KernelDrops.Read(_o.Target) : null;
        long? ownAfter = OwnDrops();
        return new StepResult
        {
            OfferedRate = rate,
            SendSeconds = sendS,
            Sent = sent,
            SentRegisters = Sum(w => w.C.SentRegisters),
            SentRequests = Sum(w => w.C.SentRequests),
            SentRate = sent / sendS,
            SendErrors = _sockets.Sum(s => s.SendErrors) - workers.Sum(w => w.SendErrorsBefore),
            Replies = replies,
            ReplyRate = replies / replyS,
            Accepted = accepted,
            AcceptedRate = accepted / replyS,
            Lost = sent - replies,
            LossPercent = sent == 0 ? 0 : 100.0 * (sent - replies) / sent,
            TimedOut = Sum(w => w.C.TimedOut),
            Late = Sum(w => w.C.Late),
            Duplicate = Sum(w => w.C.Duplicate),
            Unmatched = Sum(w => w.C.Unmatched),
            Malformed = Sum(w => w.C.Malformed),
            OtherType = Sum(w => w.C.OtherType),
            Positive = Sum(w => w.C.Positive),
            Negative = Sum(w => w.C.Negative),
            WrongEid = Sum(w => w.C.WrongEid),
            RlocMismatch = Sum(w => w.C.RlocMismatch),
            AuthBad = Sum(w => w.C.AuthBad),
            RecordMismatch = Sum(w => w.C.RecordMismatch),
            AcksSent = Sum(w => w.C.AcksSent),
            LatencySamples = h.Count,
            P50Us = h.Percentile(50) / 1000.0,
            P90Us = h.Percentile(90) / 1000.0,
            P99Us = h.Percentile(99) / 1000.0,
            P999Us = h.Percentile(99.9) / 1000.0,
            MaxUs = h.Max / 1000.0,
            MeanUs = h.Mean / 1000.0,
            TargetKernelDrops = targetBefore is { } a && targetAfter is { } b ? b - a : null,
            OwnKernelDrops = ownBefore is { } c && ownAfter is { } d ? d - c : null,
        };
    }

    private long? OwnDrops()
    {
        if (!_o.KernelDrops) return null;
        long sum = 0;
        foreach (var s in _sockets)
        {
            if (KernelDrops.Read(s.Local) is not { } d) return null;
            sum += d;
        }
        return sum;
    }

    public void Dispose()
    {
        foreach (var s in _sockets) s.Dispose();
        _sockets.Clear();
    }
}

/// <summary>Plain per-thread counters (one writer: the worker's own thread; read after it is joined).</summary>
public sealed class LoadCounters
{
    public long Sent, SentRegisters, SentRequests, Replies, Accepted, TimedOut, Late, Duplicate, Unmatched, Malformed, OtherType;
    public long Positive, Negative, WrongEid, RlocMismatch, AuthBad, RecordMismatch, AcksSent;
}

/// <summary>
/// One sending/receiving loop on one socket. Per turn: send what the rate, window and count allow (one
/// sendmmsg), read what is queued (one recvmmsg), match and judge replies, ack Map-Notifies (one sendmmsg),
/// expire timeouts; sleep in ppoll only when there is nothing to send or read. Every turn is bounded by the
/// step's duration plus the timeout (drain), and by the cancellation token.
/// </summary>
internal sealed class LoadWorker
{
    private const byte KindRegister = 1, KindRequest = 2;
    private readonly LoadOptions _o;
    private readonly LoadRunner _run;
    private readonly LoadSocket _s;
    private readonly NonceTracker _tracker;
    private readonly MessageSigner _signer;
    private readonly Random _rng;
    private readonly double _rate;
    private readonly int _window;
    private readonly long _quota;
    private readonly ushort _port;
    private long _registerCursor;
    private long _cycle;
    private readonly ulong[] _batchNonces;

    public LoadWorker(LoadOptions o, LoadRunner run, LoadSocket socket, int index, uint tag, double ratePerThread, int window, long quota, int seed)
    {
        _o = o;
        _run = run;
        _s = socket;
        Index = index;
        _rate = ratePerThread;
        _window = window;
        _quota = quota;
        _rng = new Random(seed);
        _port = (ushort)socket.Local.Port;
        _signer = new MessageSigner(o.Key);
        // Enough slots for everything that can be in flight: the window, or rate x timeout, with room to spare.
        // Without a rate, sequence numbers advance as fast as replies come back (a closed loop at 200k/s walks a
        // 1k ring in 5 ms), so a ring sized by the window alone would write off a slow reply long before --timeout.
        long need = Math.Max(window, (long)(ratePerThread * o.Timeout.TotalSeconds * 2)) + 4L * o.Batch;
        if (ratePerThread == 0) need = 1 << 20;
        _tracker = new NonceTracker(tag, (int)Math.Min(need, 1 << 22));
        _registerCursor = index;
        _batchNonces = new ulong[o.Batch];
        SendErrorsBefore = socket.SendErrors;
    }

    public int Index { get; }
    public LoadCounters C { get; } = new();
    public LatencyHistogram Latency { get; } = new();
    public long StartTicks { get; private set; }
    public long SendEndTicks { get; private set; }
    public long LastReplyTicks { get; private set; }
    public long SendErrorsBefore { get; }

    public void Run(CancellationToken ct)
    {
        try
        {
            Loop(ct);
        }
        finally
        {
            _signer.Dispose();
        }
    }

    private void Loop(CancellationToken ct)
    {
        long freq = Stopwatch.Frequency;
        StartTicks = Stopwatch.GetTimestamp();
        long end = StartTicks + (long)(_o.Duration.TotalSeconds * freq);
        long timeoutTicks = (long)(_o.Timeout.TotalSeconds * freq);
        long drainTicks = timeoutTicks;
        bool sending = _quota >= 0;
        if (!sending) SendEndTicks = StartTicks;
        while (true)
        {
            long now = Stopwatch.GetTimestamp();
            if (sending && (now >= end || (_quota > 0 && C.Sent >= _quota) || ct.IsCancellationRequested))
            {
                sending = false;
                SendEndTicks = now;
            }
            if (!sending)
            {
                _tracker.Expire(Stopwatch.GetTimestamp() - timeoutTicks);
                if (_tracker.InFlight == 0 || now - SendEndTicks >= drainTicks || now >= end + drainTicks) break;
            }
            int allowed = 0;
            if (sending)
            {
                allowed = _o.Batch;
                if (_rate > 0)
                {
                    long due = (long)((now - StartTicks) / (double)freq * _rate) + 1 - C.Sent;
                    allowed = (int)Math.Min(allowed, due);
                }
                if (_window > 0) allowed = (int)Math.Min(allowed, _window - _tracker.InFlight);
                if (_quota > 0) allowed = (int)Math.Min(allowed, _quota - C.Sent);
                if (allowed > 0) SendBatch(allowed);
            }
            int got = ReceiveBatch();
            if (sending) _tracker.Expire(Stopwatch.GetTimestamp() - timeoutTicks);
            if (allowed <= 0 && got == 0)
            {
                long waitNs = 1_000_000;
                if (sending && _rate > 0)
                {
                    double nextAt = C.Sent / _rate;
                    long untilNext = (long)((nextAt - (Stopwatch.GetTimestamp() - StartTicks) / (double)freq) * 1e9);
                    waitNs = Math.Clamp(untilNext, 0, 1_000_000);
                }
                if (waitNs > 0) _s.WaitReadable(waitNs);
            }
        }
        C.TimedOut = _tracker.TimedOutCount + _tracker.InFlight;
    }

    private bool NextIsRegister()
    {
        switch (_o.Scenario)
        {
            case LoadScenario.Register or LoadScenario.Refresh:
                return true;
            case LoadScenario.Request:
                return false;
            default:
                long p = _cycle++ % (_o.RatioRegister + _o.RatioRequest);
                return p < _o.RatioRegister;
        }
    }

    private void SendBatch(int n)
    {
        var regs = _run.Registers;
        var reqs = _run.Requests;
        for (int i = 0; i < n; i++)
        {
            bool register = NextIsRegister();
            int item;
            if (register)
            {
                // Thread t sends messages t, t+T, t+2T ... (cycling): each EID always leaves from the same port.
                item = (int)(_registerCursor % regs!.Count);
                _registerCursor += _o.Threads;
            }
            else
            {
                item = _rng.Next(reqs!.Count);
            }
            var tpl = register ? regs![item] : reqs![item];
            var message = _s.SendSlot(i).Slice(0, tpl.Length);
            tpl.CopyTo(message);
            ulong nonce = _tracker.Issue(item, register ? KindRegister : KindRequest);
            _batchNonces[i] = nonce;
            if (register)
            {
                LoadMessages.PatchRegister(message, nonce, _signer);
                C.SentRegisters++;
            }
            else
            {
                LoadMessages.PatchRequest(message, nonce, _port);
                C.SentRequests++;
            }
            _s.SetSendLength(i, tpl.Length);
        }
        _tracker.SetSent(n, LoadNative.RealtimeNs(), Stopwatch.GetTimestamp());
        int sent = _s.Send(n);
        // A datagram the kernel refused never left: it is a send error (counted by the socket), not sent, not in
        // flight (it would hold a window slot for the whole --timeout) and not lost.
        foreach (int i in _s.LastFailed)
        {
            switch (_tracker.Cancel(_batchNonces[i]))
            {
                case KindRegister: C.SentRegisters--; break;
                case KindRequest: C.SentRequests--; break;
            }
        }
        C.Sent += sent;
    }

    private int ReceiveBatch()
    {
        int r = _s.Receive();
        if (r == 0) return 0;
        long nowNs = LoadNative.RealtimeNs();
        int acks = 0;
        for (int k = 0; k < r; k++)
        {
            int len = _s.RecvLength[k];
            if (len < 0)
            {
                C.Malformed++;
                continue;
            }
            var d = _s.RecvSlot(k);
            if (!LoadMessages.TryPeekNonce(d, out var type, out ulong nonce))
            {
                if (d.Length < 12 && type is MessageType.MapReply or MessageType.MapNotify) C.Malformed++;
                else C.OtherType++;
                continue;
            }
            if (type is not (MessageType.MapReply or MessageType.MapNotify))
            {
                C.OtherType++;
                continue;
            }
            bool notifyGood = false;
            if (type == MessageType.MapNotify)
            {
                notifyGood = !_o.Verify || _signer.Verify(d);
                if (!notifyGood)
                {
                    // Not matched: a forged or corrupted Notify must not use up the nonce the genuine one will carry.
                    C.AuthBad++;
                    continue;
                }
                if (_o.Ack && acks < _s.Slots)
                {
                    var slot = _s.SendSlot(acks);
                    d.CopyTo(slot);
                    if (LoadMessages.MakeAck(slot.Slice(0, d.Length), _signer))
                    {
                        _s.ReplyTo(acks, k);   // the ack goes where the Notify came from, as an ETR's would
                        _s.SetSendLength(acks++, d.Length);
                    }
                }
            }
            var m = _tracker.Match(nonce, out int item, out byte kind, out long sentNs);
            switch (m)
            {
                case MatchResult.Unmatched:
                    C.Unmatched++;
                    continue;
                case MatchResult.Late:
                    C.Late++;
                    continue;
                case MatchResult.Duplicate:
                    C.Duplicate++;
                    continue;
            }
            if (type == MessageType.MapNotify && kind == KindRegister)
            {
                C.Replies++;
                C.Accepted++;
                if (_o.Verify && d.Length > 3 && d[3] != _run.Registers![item][3]) C.RecordMismatch++;
            }
            else if (type == MessageType.MapReply && kind == KindRequest)
            {
                var outcome = _o.Verify ? LoadMessages.ClassifyMapReply(d, _run.Eids[item], _o.Rloc) : ReplyOutcome.Positive;
                switch (outcome)
                {
                    case ReplyOutcome.Positive: C.Positive++; break;
                    case ReplyOutcome.Negative: C.Negative++; break;
                    case ReplyOutcome.WrongEid: C.WrongEid++; break;
                    case ReplyOutcome.RlocMismatch: C.RlocMismatch++; break;
                    case ReplyOutcome.Malformed: C.Malformed++; continue;
                    default: C.OtherType++; continue;
                }
                C.Replies++;
            }
            else
            {
                C.OtherType++;
                continue;
            }
            long ts = _s.RecvTimestampNs[k];
            Latency.Record((ts != 0 ? ts : nowNs) - sentNs);
            LastReplyTicks = Stopwatch.GetTimestamp();
        }
        if (acks > 0)
        {
            C.AcksSent += _s.Send(acks);
            _s.RestoreDestination(acks);
        }
        return r;
    }
}
