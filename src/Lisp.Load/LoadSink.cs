using System.Diagnostics;
using System.Net;
using Lisp.Wire;

namespace Lisp.Load;

public sealed record SinkOptions
{
    public required IPEndPoint Listen { get; init; }
    /// <summary>Answer Map-Request ECMs with a canned Map-Reply and Map-Registers with a Map-Notify (same nonce).</summary>
    public bool Echo { get; init; }
    /// <summary>Key to sign the echoed Map-Notifies with (null: sent with the register's own auth bytes, which will not verify).</summary>
    public byte[]? Key { get; init; }
    /// <summary>RLOC in echoed Map-Replies; default the listen address.</summary>
    public IPAddress? Rloc { get; init; }
    public int Threads { get; init; } = 1;
    public int Batch { get; init; } = 64;
}

public sealed record SinkReport
{
    public string Listen { get; init; } = "";
    public double Seconds { get; init; }
    public long Received { get; init; }
    public double ReceivedRate { get; init; }
    public long MapRequests { get; init; }
    public long MapRegisters { get; init; }
    public long MapNotifyAcks { get; init; }
    public long Other { get; init; }
    public long Malformed { get; init; }
    public long RepliesSent { get; init; }
    public long? KernelDrops { get; init; }
}

/// <summary>
/// A counting sink: receives with recvmmsg and counts by message type; with echo it answers from the request's own
/// bytes (no table, no lookup), so the generator's ceiling can be measured with nothing else in the way.
/// One socket per thread (SO_REUSEPORT on one address:port).
/// </summary>
public sealed class LoadSink : IDisposable
{
    private readonly SinkOptions _o;
    private readonly List<LoadSocket> _sockets = [];
    private readonly List<Thread> _threads = [];
    private readonly long[][] _counts;
    private volatile bool _stop;
    private long _started, _stopped;
    private long? _dropsBefore;

    private const int Received = 0, Requests = 1, Registers = 2, Acks = 3, Other = 4, Malformed = 5, Replies = 6;

    public LoadSink(SinkOptions options)
    {
        _o = options;
        if (options.Threads is < 1 or > LoadOptions.MaxThreads) throw new ArgumentException($"--threads must be 1..{LoadOptions.MaxThreads}");
        try
        {
            var first = LoadSocket.Open(options.Listen, Math.Clamp(options.Batch, 1, LoadOptions.MaxBatch), 9216, reusePort: true, bufferBytes: 16 << 20);
            _sockets.Add(first);
            for (int t = 1; t < options.Threads; t++)
            {
                _sockets.Add(LoadSocket.Open(first.Local, first.Slots, 9216, reusePort: true, bufferBytes: 16 << 20));
            }
        }
        catch
        {
            Dispose();
            throw;
        }
        _counts = new long[options.Threads][];
        for (int t = 0; t < options.Threads; t++) _counts[t] = new long[8];
    }

    public IPEndPoint Local => _sockets[0].Local;

    public void Start()
    {
        _dropsBefore = KernelDrops.Read(Local);
        _started = Stopwatch.GetTimestamp();
        for (int t = 0; t < _sockets.Count; t++)
        {
            int i = t;
            var th = new Thread(() => Loop(i)) { IsBackground = true, Name = "sink-" + i };
            _threads.Add(th);
            th.Start();
        }
    }

    /// <summary>Stops the threads (each notices within 50 ms) and returns the counts.</summary>
    public SinkReport Stop()
    {
        _stop = true;
        foreach (var th in _threads) th.Join();
        _threads.Clear();
        if (_stopped == 0) _stopped = Stopwatch.GetTimestamp();
        return Report();
    }

    public SinkReport Report()
    {
        long Sum(int k) => _counts.Sum(c => Volatile.Read(ref c[k]));
        double s = ((_stopped != 0 ? _stopped : Stopwatch.GetTimestamp()) - _started) / (double)Stopwatch.Frequency;
        long? after = KernelDrops.Read(Local);
        return new SinkReport
        {
            Listen = Local.ToString(),
            Seconds = s,
            Received = Sum(Received),
            ReceivedRate = s > 0 ? Sum(Received) / s : 0,
            MapRequests = Sum(Requests),
            MapRegisters = Sum(Registers),
            MapNotifyAcks = Sum(Acks),
            Other = Sum(Other),
            Malformed = Sum(Malformed),
            RepliesSent = Sum(Replies),
            KernelDrops = _dropsBefore is { } a && after is { } b ? b - a : null,
        };
    }

    private void Loop(int t)
    {
        var s = _sockets[t];
        var c = _counts[t];
        using var signer = _o.Key is null ? null : new MessageSigner(_o.Key);
        var rlocAddress = new IpAddress(_o.Rloc ?? (s.Local.Address.Equals(IPAddress.Any) || s.Local.Address.Equals(IPAddress.IPv6Any) ? IPAddress.Loopback : s.Local.Address));
        var rloc = rlocAddress.ToBytes();
        while (!_stop)
        {
            if (!s.WaitReadable(50_000_000)) continue;
            int r = s.Receive();
            int n = 0;
            for (int k = 0; k < r; k++)
            {
                Volatile.Write(ref c[Received], c[Received] + 1);
                var d = s.RecvSlot(k);
                if (s.RecvLength[k] < 4)
                {
                    Volatile.Write(ref c[Malformed], c[Malformed] + 1);
                    continue;
                }
                var type = (MessageType)(d[0] >> 4);
                int len = -1;
                switch (type)
                {
                    case MessageType.EncapsulatedControl:
                        Volatile.Write(ref c[Requests], c[Requests] + 1);
                        if (_o.Echo) len = LoadMessages.SinkMapReply(d, rloc, s.SendSlot(n));
                        break;
                    case MessageType.MapRegister:
                        Volatile.Write(ref c[Registers], c[Registers] + 1);
                        if (_o.Echo) len = LoadMessages.SinkMapNotify(d, s.SendSlot(n), signer);
                        break;
                    case MessageType.MapNotifyAck:
                        Volatile.Write(ref c[Acks], c[Acks] + 1);
                        continue;
                    default:
                        Volatile.Write(ref c[Other], c[Other] + 1);
                        continue;
                }
                if (!_o.Echo) continue;
                if (len < 0)
                {
                    Volatile.Write(ref c[Malformed], c[Malformed] + 1);
                    continue;
                }
                s.SetSendLength(n, len);
                s.ReplyTo(n, k);
                n++;
            }
            if (n > 0) Volatile.Write(ref c[Replies], c[Replies] + s.Send(n));
        }
    }

    public void Dispose()
    {
        if (_threads.Count > 0) Stop();
        foreach (var s in _sockets) s.Dispose();
        _sockets.Clear();
    }
}
