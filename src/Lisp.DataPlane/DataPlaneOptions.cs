using System.Net;

namespace Lisp.DataPlane;

/// <summary>What the ITR does with a packet whose destination has no map-cache entry (a Map-Request is asked for either way).</summary>
public enum MissPolicy
{
    /// <summary>Drop it (counted as <see cref="DropReason.Miss"/>).</summary>
    Drop,
    /// <summary>Hold it in a small per-worker queue and send it when the entry arrives (dropped after the hold time).</summary>
    Queue,
}

/// <summary>Settings shared by the ITR and ETR workers.</summary>
public sealed record DataPlaneOptions
{
    /// <summary>Instance-id of the TUN: the ITR looks up and encapsulates in it; the ETR accepts it.</summary>
    public uint InstanceId { get; init; }
    /// <summary>Local IPv4 RLOC (outer source); null = IPv4 RLOCs unreachable from here.</summary>
    public IPAddress? LocalRlocV4 { get; init; }
    public IPAddress? LocalRlocV6 { get; init; }
    public ushort DataPort { get; init; } = Lisp.Wire.DataHeader.Port;
    /// <summary>
    /// Segmentation and checksum offloads (issue 13): the TUN with virtio-net headers (TSO4/TSO6/USO, checksum), UDP GSO on
    /// the underlay in UDP send mode, UDP GRO and TCP coalescing on the ETR. Each is probed at start; what the kernel
    /// refuses falls back to the plain path with a logged reason. False: the plain path throughout.
    /// </summary>
    public bool Offload { get; init; } = true;
    /// <summary>
    /// Receive buffer the ETR asks for on each underlay socket, in bytes (the kernel grants twice that). Asked past
    /// net.core.rmem_max when the process has CAP_NET_ADMIN; what was granted is logged at start.
    /// </summary>
    public int ReceiveBufferBytes { get; init; } = DefaultReceiveBufferBytes;
    /// <summary>16 MiB: with 32 MiB granted, four TCP streams at 10 Gbit/s through a 2-core node lost nothing (8 MiB lost GRO buffers).</summary>
    public const int DefaultReceiveBufferBytes = 16 << 20;
    /// <summary>Underlay MTU: an encapsulated packet larger than this is fragmented or answered with ICMP too-big.</summary>
    public int UnderlayMtu { get; init; } = 1500;
    public MissPolicy MissPolicy { get; init; } = MissPolicy.Drop;
    /// <summary>Packets each worker may hold on misses (MissPolicy.Queue).</summary>
    public int HoldPackets { get; init; } = 64;
    public TimeSpan HoldTime { get; init; } = TimeSpan.FromSeconds(1);
    /// <summary>A destination is posted to the miss queue at most once per this interval per worker.</summary>
    public TimeSpan MissRepeatInterval { get; init; } = TimeSpan.FromSeconds(1);
    /// <summary>Packets per batch (TUN reads, sendmmsg, recvmmsg).</summary>
    public int BatchSize { get; init; } = 64;
    /// <summary>Largest inner packet a slot holds (TUN MTU or more).</summary>
    public int MaxPacket { get; init; } = 9000;
    /// <summary>How long a worker waits for input before checking for stop and held packets.</summary>
    public int PollMs { get; init; } = 100;

    /// <summary>
    /// Map-Version (RFC 9302) of this node's own EID mappings, 1..4095; 0 = map-versioning off. When set the ITR
    /// sends the V bit with it as the source version and the destination mapping's version (0 when it has none),
    /// and the ETR compares the destination version of V-bit packets with it (counted, see DataPlaneCounters).
    /// </summary>
    public ushort MapVersion { get; init; }
    /// <summary>accept_from = "known": the ETR decapsulates only from the RLOCs this filter knows (null: from any source).</summary>
    public DecapFilter? AcceptFrom { get; init; }
    /// <summary>ETR: a source EID whose V-bit packets name a newer version than the map-cache's is refreshed at most this often.</summary>
    public TimeSpan VersionRefreshInterval { get; init; } = TimeSpan.FromSeconds(5);

    public uint LocalV4Value => LocalRlocV4 is { } a ? System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(a.GetAddressBytes()) : 0;
}
