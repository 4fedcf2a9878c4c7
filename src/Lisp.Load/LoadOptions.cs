using System.Net;
using Lisp.Wire;

namespace Lisp.Load;

public enum LoadScenario
{
    Register,
    Request,
    Mixed,
    Refresh,
}

/// <summary>Everything one `lisp-decent load` run needs; the CLI fills it, tests build it directly.</summary>
public sealed record LoadOptions
{
    public LoadScenario Scenario { get; init; } = LoadScenario.Register;
    public required IPEndPoint Target { get; init; }
    /// <summary>Local address (and first port; thread i uses port + i) to send from. Port 0 = ephemeral.</summary>
    public required IPEndPoint Bind { get; init; }
    /// <summary>RLOC registered (register) or expected in replies (request, when set). Null: our bound address (register) / no check (request).</summary>
    public IPAddress? Rloc { get; init; }
    /// <summary>First EID of the range; EID i is this prefix + i (IP) or 'name-i' (distinguished name).</summary>
    public EidPrefix EidBase { get; init; } = EidPrefix.Parse("[0]10.0.0.0/32");
    public int Eids { get; init; } = 1000;
    /// <summary>Explicit EIDs (from --eid-file): used instead of the range when not null.</summary>
    public IReadOnlyList<EidPrefix>? EidList { get; init; }
    public int RecordsPerRegister { get; init; } = 1;
    public AuthAlgorithm Algorithm { get; init; } = AuthAlgorithm.HmacSha256_128;
    public byte[] Key { get; init; } = "load-key"u8.ToArray();
    public bool ProxyReply { get; init; } = true;
    public bool WantMapNotify { get; init; } = true;
    /// <summary>
    /// Answer each Map-Notify with a Map-Notify-Ack. Off by default: a Map-Notify answering a Map-Register is the
    /// acknowledgement and awaits no Ack (RFC 9301 section 5.7); on for map-servers that still expect one.
    /// </summary>
    public bool Ack { get; init; }
    /// <summary>Check Map-Notify HMACs and Map-Reply records.</summary>
    public bool Verify { get; init; } = true;
    /// <summary>Record TTL in minutes in Map-Registers.</summary>
    public uint RecordTtlMinutes { get; init; } = 3;
    /// <summary>Mixed: registers per cycle and requests per cycle.</summary>
    public int RatioRegister { get; init; } = 1;
    public int RatioRequest { get; init; } = 9;
    /// <summary>Open loop: messages/s in all, paced; 0 = as fast as allowed.</summary>
    public double Rate { get; init; }
    /// <summary>Closed loop: at most this many unanswered in all; 0 = no limit.</summary>
    public int Window { get; init; }
    /// <summary>A run per rate, each <see cref="Duration"/> long (replaces <see cref="Rate"/>).</summary>
    public IReadOnlyList<double>? Steps { get; init; }
    public TimeSpan Duration { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>Messages to send in all (per step); 0 = register: each message once, others: until the duration ends.</summary>
    public long Count { get; init; }
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(1);
    public int Threads { get; init; } = 1;
    public int Batch { get; init; } = 32;
    public int Seed { get; init; } = Environment.TickCount;
    /// <summary>Read /proc/net/udp(6) drop counters of the target (when local) and our sockets.</summary>
    public bool KernelDrops { get; init; } = true;

    public const int MaxEids = 2_000_000;
    public const int MaxThreads = 64;
    public const int MaxBatch = 1024;
    public static readonly TimeSpan MaxDuration = TimeSpan.FromHours(2);

    /// <summary>Null when the options are consistent, else what is wrong.</summary>
    public string? Validate()
    {
        int n = EidList?.Count ?? Eids;
        if (n < 1 || n > MaxEids) return $"--eids must be 1..{MaxEids}";
        if (RecordsPerRegister < 1 || RecordsPerRegister > 255) return "--records must be 1..255";
        if (Threads < 1 || Threads > MaxThreads) return $"--threads must be 1..{MaxThreads}";
        if (Batch < 1 || Batch > MaxBatch) return $"--batch must be 1..{MaxBatch}";
        if (Rate < 0 || double.IsNaN(Rate)) return "--rate must be >= 0";
        if (Window < 0) return "--window must be >= 0";
        if (Count < 0) return "--count must be >= 0";
        if (Duration <= TimeSpan.Zero || Duration > MaxDuration) return "--duration must be > 0 and at most 2h";
        if (Timeout <= TimeSpan.Zero || Timeout > TimeSpan.FromMinutes(1)) return "--timeout must be > 0 and at most 60s";
        if (Steps is { } s && (s.Count == 0 || s.Count > 100 || s.Any(r => r <= 0 || double.IsNaN(r)))) return "--steps needs 1..100 rates > 0";
        if (RatioRegister < 0 || RatioRequest < 0 || RatioRegister + RatioRequest == 0) return "--ratio must be A:B with A + B > 0";
        if (Target.AddressFamily != Bind.AddressFamily) return "--target and --bind must be the same address family";
        if (Algorithm is not (AuthAlgorithm.HmacSha1_96 or AuthAlgorithm.HmacSha256_128)) return "--algorithm must be hmac-sha1 or hmac-sha256";
        if (Bind.Port != 0 && Bind.Port + Threads - 1 > 65535) return "--bind port + threads exceeds 65535";
        return null;
    }
}
