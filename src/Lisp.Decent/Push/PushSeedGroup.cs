using System.Net;
using System.Net.Sockets;
using Lisp.Wire;

namespace Lisp.Decent.Push;

/// <summary>
/// Core seed-group layering (RFC 9962 section 4.4): a layer's group is registered in the seed group's mapping
/// system as <c>(0.0.0.0/0, G_layer)</c> with its members as an RLE; a new xTR finds its layer's members by
/// looking that EID up at any seed member (a Map-Request to its map-resolver) and then registers into its
/// layer. Builders and parsers here are pure; <see cref="LookupAsync"/> does the one UDP exchange.
/// </summary>
public static class PushSeedGroup
{
    /// <summary>The ECM Map-Request for <paramref name="layerGroup"/>'s peer-group EID, answered to <paramref name="replyTo"/>.</summary>
    public static byte[] LookupRequest(IPAddress layerGroup, IPEndPoint replyTo, ulong nonce)
    {
        var eid = PushGroup.PeerGroupEid(layerGroup);
        var request = new MapRequest { Nonce = nonce, ItrRlocs = [new IpAddress(replyTo.Address)], Records = [eid] };
        var inner = new IpUdpHeader(replyTo.Address, replyTo.AddressFamily == layerGroup.AddressFamily ? layerGroup : replyTo.Address,
            (ushort)replyTo.Port, DataHeader.ControlPort, TtlOrHopLimit: 64);
        return new EncapsulatedControlMessage(inner, request).ToBytes();
    }

    /// <summary>
    /// The layer's members from a Map-Reply to <see cref="LookupRequest"/>: null when the payload is not the
    /// reply with that nonce; empty when the seed group has no such layer (negative reply).
    /// </summary>
    public static IReadOnlyList<IPAddress>? MembersFromReply(ReadOnlySpan<byte> payload, ulong nonce)
    {
        if (!ControlMessage.TryDecode(payload, out var m).IsOk || m is not MapReply reply || reply.Nonce != nonce) return null;
        return reply.Records.SelectMany(PushGroup.MembersOf).Distinct().ToList();
    }

    /// <summary>
    /// Asks <paramref name="seedResolver"/> (a seed-group member's map-resolver) for the members of
    /// <paramref name="layerGroup"/>; tries <paramref name="tries"/> times, each bounded by <paramref name="timeout"/>.
    /// Returns null when no reply came.
    /// </summary>
    public static async Task<IReadOnlyList<IPAddress>?> LookupAsync(IPEndPoint seedResolver, IPAddress layerGroup, IPAddress? source,
        TimeSpan timeout, int tries = 3, CancellationToken cancellationToken = default)
    {
        using var socket = new Socket(seedResolver.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        socket.Bind(new IPEndPoint(source ?? (seedResolver.AddressFamily == AddressFamily.InterNetwork ? IPAddress.Any : IPAddress.IPv6Any), 0));
        socket.Connect(seedResolver);
        var local = (IPEndPoint)socket.LocalEndPoint!;
        var buffer = new byte[9000];
        for (int i = 0; i < tries; i++)
        {
            ulong nonce = (ulong)Random.Shared.NextInt64(1, long.MaxValue);
            await socket.SendAsync(LookupRequest(layerGroup, local, nonce), SocketFlags.None, cancellationToken).ConfigureAwait(false);
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            cts.CancelAfter(timeout);
            try
            {
                while (true)
                {
                    int n = await socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token).ConfigureAwait(false);
                    if (MembersFromReply(buffer.AsSpan(0, n), nonce) is { } members) return members;
                }
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                // this try timed out; send again
            }
            catch (SocketException)
            {
                // ICMP port unreachable: nobody there yet; wait out the try
                await Task.Delay(timeout, cancellationToken).ConfigureAwait(false);
            }
        }
        return null;
    }
}
