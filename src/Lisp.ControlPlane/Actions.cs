using System.Net;
using Lisp.Wire;

namespace Lisp.ControlPlane;

/// <summary>Severity of a <see cref="LogAction"/>.</summary>
public enum LogLevel
{
    Debug,
    Info,
    Warning,
    Error,
}

/// <summary>
/// What a role asks its host to do. The roles never touch sockets, threads or clocks: they return these and
/// the host (UDP transport, management API, data-plane map-cache publisher) carries them out.
/// </summary>
public abstract record ControlAction;

/// <summary>
/// Send <paramref name="Payload"/> (a complete LISP control message, UDP payload) to <paramref name="To"/>.
/// <paramref name="From"/> names the local endpoint that should send it (the one a request arrived on), or
/// null for "any socket of the right family".
/// </summary>
public sealed record SendAction(IPEndPoint To, byte[] Payload, IPEndPoint? From = null) : ControlAction
{
    public override string ToString() => $"send {Payload.Length} bytes to {To}{(From is null ? "" : " from " + From)}";
}

/// <summary>One log line: <paramref name="Event"/> is a short stable kebab-case key ("registration-accepted").</summary>
public sealed record LogAction(LogLevel Level, string Event, string Message) : ControlAction
{
    public override string ToString() => $"{Level} {Event}: {Message}";
}

/// <summary>
/// The ITR's map-cache changed: <paramref name="Entry"/> is the new entry for <paramref name="Eid"/>, or null
/// when the entry was removed (expired, replaced by TTL 0). The host mirrors these into the data plane.
/// </summary>
public sealed record MapCacheChanged(EidPrefix Eid, MapCacheEntry? Entry) : ControlAction;

/// <summary>A datagram the transport received on UDP 4342: its payload, who sent it, and on which local endpoint.</summary>
public sealed record ReceivedPacket(byte[] Payload, IPEndPoint From, IPEndPoint Local);
