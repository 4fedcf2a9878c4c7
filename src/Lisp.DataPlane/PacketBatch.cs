using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Lisp.DataPlane;

/// <summary>
/// A fixed set of packet slots in one native (unmoving) block, so the kernel can be handed pointers in a
/// sendmmsg/recvmmsg vector without pinning. Each slot has <see cref="Headroom"/> bytes in front of where a
/// packet is read, so the ITR writes the outer IP + UDP + LISP header (36 or 56 bytes) in place and the ETR
/// strips it by moving an offset: no packet is copied on the forwarding path. Each slot also carries a
/// socket address (32 bytes: sockaddr_in or sockaddr_in6) — the destination for a send, the source after a
/// receive. Owned by one worker thread; not thread-safe.
/// </summary>
public sealed unsafe class PacketBatch : IDisposable
{
    /// <summary>Room in front of each packet: the IPv6 outer header (56) rounded up to a cache-friendly 64.</summary>
    public const int Headroom = 64;
    public const int AddressSize = 32;

    private byte* _memory;
    private byte* _addresses;

    public PacketBatch(int capacity, int packetSize)
    {
        if (capacity < 1 || capacity > 1024) throw new ArgumentOutOfRangeException(nameof(capacity), "1..1024 slots");
        if (packetSize < 64 || packetSize > 65535) throw new ArgumentOutOfRangeException(nameof(packetSize), "64..65535 bytes");
        Capacity = capacity;
        // Slot = headroom + packet, rounded up to 64 bytes so every slot starts on a cache line.
        SlotSize = (Headroom + packetSize + 63) & ~63;
        _memory = (byte*)NativeMemory.AlignedAlloc((nuint)(SlotSize * capacity), 64);
        _addresses = (byte*)NativeMemory.AlignedAlloc((nuint)(AddressSize * capacity), 64);
        NativeMemory.Clear(_addresses, (nuint)(AddressSize * capacity));
        Offset = new int[capacity];
        Length = new int[capacity];
        SegmentSize = new int[capacity];
        Flow = new uint[capacity];
    }

    public int Capacity { get; }
    /// <summary>Bytes per slot, headroom included.</summary>
    public int SlotSize { get; }
    /// <summary>The most bytes a packet read at <see cref="Headroom"/> can have.</summary>
    public int MaxPacket => SlotSize - Headroom;
    /// <summary>Number of slots in use (0..Capacity).</summary>
    public int Count;
    /// <summary>Where each slot's packet starts (Headroom after a TUN read; the outer header's start after encapsulation).</summary>
    public readonly int[] Offset;
    public readonly int[] Length;
    /// <summary>After a receive on a UDP_GRO socket: the size of each datagram coalesced into the slot (0: the slot holds one datagram).</summary>
    public readonly int[] SegmentSize;
    /// <summary>The inner flow hash of each slot the ITR encapsulated (a source-port pool sends a flow through one port).</summary>
    public readonly uint[] Flow;

    // Slot accessors are called per packet by the ITR/ETR workers: forced inline (the native-AOT binary kept
    // them as calls otherwise; perf/inspect-codegen.sh shows the call sites).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public byte* SlotPointer(int i) => _memory + (nint)i * SlotSize;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Span<byte> Slot(int i) => new(SlotPointer(i), SlotSize);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Span<byte> Packet(int i) => new(SlotPointer(i) + Offset[i], Length[i]);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public byte* AddressPointer(int i) => _addresses + (nint)i * AddressSize;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Span<byte> AddressBytes(int i) => new(AddressPointer(i), AddressSize);

    /// <summary>Copies <paramref name="packet"/> into slot <paramref name="i"/> at the headroom.</summary>
    public void Set(int i, ReadOnlySpan<byte> packet)
    {
        if (packet.Length > MaxPacket) throw new ArgumentException($"packet of {packet.Length} bytes does not fit a {MaxPacket}-byte slot");
        packet.CopyTo(Slot(i).Slice(Headroom));
        Offset[i] = Headroom;
        Length[i] = packet.Length;
    }

    /// <summary>Writes a sockaddr_in for slot <paramref name="i"/> (address host order).</summary>
    public void SetV4Address(int i, uint address, ushort port) => WriteV4Address(AddressBytes(i), address, port);

    /// <summary>Writes a sockaddr_in (address host order) into <paramref name="a"/> (at least 16 bytes).</summary>
    public static void WriteV4Address(Span<byte> a, uint address, ushort port)
    {
        a.Clear();
        BinaryPrimitives.WriteUInt16LittleEndian(a, Native.AF_INET); // sa_family is host order (little-endian here)
        BinaryPrimitives.WriteUInt16BigEndian(a.Slice(2), port);
        BinaryPrimitives.WriteUInt32BigEndian(a.Slice(4), address);
    }

    /// <summary>Writes a sockaddr_in6 for slot <paramref name="i"/>.</summary>
    public void SetV6Address(int i, ReadOnlySpan<byte> address, ushort port) => WriteV6Address(AddressBytes(i), address, port);

    /// <summary>Writes a sockaddr_in6 into <paramref name="a"/> (at least 28 bytes).</summary>
    public static void WriteV6Address(Span<byte> a, ReadOnlySpan<byte> address, ushort port)
    {
        a.Clear();
        BinaryPrimitives.WriteUInt16LittleEndian(a, Native.AF_INET6);
        BinaryPrimitives.WriteUInt16BigEndian(a.Slice(2), port);
        address.CopyTo(a.Slice(8, 16));
    }

    /// <summary>The socket address stored in slot <paramref name="i"/> (null when none).</summary>
    public IPEndPoint? Address(int i)
    {
        var a = AddressBytes(i);
        int family = BinaryPrimitives.ReadUInt16LittleEndian(a);
        int port = BinaryPrimitives.ReadUInt16BigEndian(a.Slice(2));
        return family switch
        {
            Native.AF_INET => new IPEndPoint(new IPAddress(a.Slice(4, 4)), port),
            Native.AF_INET6 => new IPEndPoint(new IPAddress(a.Slice(8, 16)), port),
            _ => null,
        };
    }

    public static int AddressLength(AddressFamily f) => f == AddressFamily.InterNetwork ? 16 : 28;

    public void Dispose()
    {
        if (_memory != null)
        {
            NativeMemory.AlignedFree(_memory);
            NativeMemory.AlignedFree(_addresses);
            _memory = null;
            _addresses = null;
        }
        GC.SuppressFinalize(this);
    }

    ~PacketBatch() => Dispose();
}
