using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Lisp.Wire;
using Lisp.Wire.Crypto;

namespace Lisp.Load;

/// <summary>
/// Pre-encoded messages, one per item, in one flat buffer: built once with the project's own encoders
/// (<see cref="MapRegister"/>, <see cref="EncapsulatedControlMessage"/>), then copied into a send slot and
/// patched (nonce, inner UDP port and checksum, HMAC) per send. Read-only after construction, so every
/// sending thread shares one set.
/// </summary>
public sealed class TemplateSet
{
    private readonly byte[] _blob;
    private readonly int[] _offset;
    private readonly int[] _length;

    public TemplateSet(IReadOnlyList<byte[]> messages)
    {
        _offset = new int[messages.Count];
        _length = new int[messages.Count];
        long total = messages.Sum(m => (long)m.Length);
        if (total > int.MaxValue) throw new ArgumentException("templates exceed 2 GiB");
        _blob = new byte[total];
        int at = 0;
        for (int i = 0; i < messages.Count; i++)
        {
            _offset[i] = at;
            _length[i] = messages[i].Length;
            messages[i].CopyTo(_blob, at);
            at += messages[i].Length;
            MaxLength = Math.Max(MaxLength, messages[i].Length);
        }
    }

    public int Count => _offset.Length;
    public int MaxLength { get; }
    public ReadOnlySpan<byte> this[int i] => _blob.AsSpan(_offset[i], _length[i]);
}

/// <summary>
/// HMAC of Map-Register / Map-Notify / Map-Notify-Ack (RFC 9301 5.6) with the key prepared once (Lisp.Wire.Crypto's
/// <see cref="HmacKey"/>): no allocation and no key set-up per message. Immutable, so sending threads may share one.
/// </summary>
public sealed class MessageSigner : IDisposable
{
    private readonly HmacKey _sha1, _sha256;

    public MessageSigner(ReadOnlySpan<byte> key)
    {
        _sha1 = HmacKey.Sha1(key);
        _sha256 = HmacKey.Sha256(key);
    }

    private bool TryFor(byte algorithm, out HmacKey key)
    {
        switch (algorithm)
        {
            case (byte)AuthAlgorithm.HmacSha1_96: key = _sha1; return true;
            case (byte)AuthAlgorithm.HmacSha256_128: key = _sha256; return true;
            default: key = default; return false;
        }
    }

    /// <summary>Fills the Authentication Data (algorithm and length from the message's own header) with the HMAC.</summary>
    public bool Sign(Span<byte> message)
    {
        if (message.Length < MessageAuthentication.AuthDataOffset) return false;
        int len = BinaryPrimitives.ReadUInt16BigEndian(message.Slice(14));
        if (!TryFor(message[13], out var key) || message.Length < MessageAuthentication.AuthDataOffset + len || len > 32) return false;
        var field = message.Slice(MessageAuthentication.AuthDataOffset, len);
        field.Clear();
        Span<byte> mac = stackalloc byte[32];
        int n = key.Compute(message, mac);
        if (n < len) return false;
        mac.Slice(0, len).CopyTo(field);
        return true;
    }

    /// <summary>Checks the HMAC of a received message (the field counts as zeros; the message is not changed). Fixed-time compare.</summary>
    public bool Verify(Span<byte> message)
    {
        if (message.Length < MessageAuthentication.AuthDataOffset) return false;
        var algorithm = (AuthAlgorithm)message[13];
        int len = BinaryPrimitives.ReadUInt16BigEndian(message.Slice(14));
        if (!TryFor(message[13], out var key) || !MessageAuthentication.IsAcceptedLength(algorithm, len) || message.Length < MessageAuthentication.AuthDataOffset + len) return false;
        var h = key.Start();
        h.Append(message.Slice(0, MessageAuthentication.AuthDataOffset));
        h.AppendZeros(len);
        h.Append(message.Slice(MessageAuthentication.AuthDataOffset + len));
        Span<byte> mac = stackalloc byte[32];
        int n = h.Finish(mac);
        return n >= len && FixedTime.AreEqual(mac.Slice(0, len), message.Slice(MessageAuthentication.AuthDataOffset, len));
    }

    /// <summary>Nothing to release any more (there is no crypto-library context); kept so callers' using blocks stay as they are.</summary>
    public void Dispose()
    {
    }
}

/// <summary>What a reply turned out to be.</summary>
public enum ReplyOutcome
{
    Positive,
    Negative,
    WrongEid,
    RlocMismatch,
    Malformed,
    OtherType,
}

/// <summary>
/// Building and checking the load generator's messages: pure functions over spans, no I/O, no clocks.
/// </summary>
public static class LoadMessages
{
    public const int NonceOffset = 4;

    /// <summary>
    /// One Map-Register per <paramref name="recordsPerMessage"/> EIDs (the last may hold fewer): nonce 0, Authentication
    /// Data zeroed, one locator (<paramref name="rloc"/>, priority 1, weight 100, reachable) per record.
    /// </summary>
    public static TemplateSet BuildRegisters(IReadOnlyList<EidPrefix> eids, int recordsPerMessage, IPAddress rloc, LoadOptions o)
    {
        var locator = new LocatorRecord(new IpAddress(rloc));
        var list = new List<byte[]>((eids.Count + recordsPerMessage - 1) / recordsPerMessage);
        for (int i = 0; i < eids.Count; i += recordsPerMessage)
        {
            var records = new List<MappingRecord>();
            for (int j = i; j < Math.Min(eids.Count, i + recordsPerMessage); j++)
            {
                records.Add(new MappingRecord(eids[j], [locator], o.RecordTtlMinutes));
            }
            var reg = new MapRegister
            {
                ProxyReply = o.ProxyReply,
                WantMapNotify = o.WantMapNotify,
                Algorithm = o.Algorithm,
                Records = records,
            };
            list.Add(reg.ToBytes());
        }
        return new TemplateSet(list);
    }

    /// <summary>
    /// One ECM Map-Request per EID: inner IPv4/IPv6 header from <paramref name="itr"/> to the EID (to the
    /// unspecified address for non-IP EIDs or another family), inner UDP from port 0 (patched per sender) to
    /// 4342, Map-Request with source EID AFI 0, ITR-RLOC = <paramref name="itr"/>, one record = the EID.
    /// </summary>
    public static TemplateSet BuildRequests(IReadOnlyList<EidPrefix> eids, IPAddress itr)
    {
        var list = new List<byte[]>(eids.Count);
        var any = itr.AddressFamily == AddressFamily.InterNetwork ? IPAddress.Any : IPAddress.IPv6Any;
        foreach (var eid in eids)
        {
            var request = new MapRequest { SourceEid = NoAddress.Instance, ItrRlocs = [new IpAddress(itr)], Records = [eid] };
            var dst = eid.Inner is IpAddress ip && ip.Address.AddressFamily == itr.AddressFamily ? ip.Address : any;
            var inner = new IpUdpHeader(itr, dst, 0, DataHeader.ControlPort, 64, UdpChecksum: 0);
            list.Add(new EncapsulatedControlMessage(inner, request).ToBytes());
        }
        return new TemplateSet(list);
    }

    /// <summary>Length of the IP header inside an ECM (20 or 40), or -1.</summary>
    public static int EcmInnerHeaderLength(ReadOnlySpan<byte> ecm) =>
        ecm.Length < 5 ? -1 : (ecm[4] >> 4) switch { 4 => 20, 6 => 40, _ => -1 };

    /// <summary>Offset of the Map-Request nonce inside an ECM.</summary>
    public static int EcmNonceOffset(ReadOnlySpan<byte> ecm) => 4 + EcmInnerHeaderLength(ecm) + 8 + 4;

    /// <summary>Writes nonce and inner UDP source port into a copied ECM template and recomputes the inner UDP checksum.</summary>
    public static void PatchRequest(Span<byte> ecm, ulong nonce, ushort sourcePort)
    {
        int ihl = EcmInnerHeaderLength(ecm);
        var udp = ecm.Slice(4 + ihl);
        BinaryPrimitives.WriteUInt16BigEndian(udp, sourcePort);
        BinaryPrimitives.WriteUInt64BigEndian(udp.Slice(8 + 4), nonce);
        int udpLength = BinaryPrimitives.ReadUInt16BigEndian(udp.Slice(4));
        BinaryPrimitives.WriteUInt16BigEndian(udp.Slice(6), 0);
        uint sum = ihl == 20
            ? InternetChecksum.Add(0, ecm.Slice(4 + 12, 8))
            : InternetChecksum.Add(0, ecm.Slice(4 + 8, 32));
        sum += 17u + (uint)udpLength;
        sum = InternetChecksum.Add(sum, udp.Slice(0, udpLength));
        ushort c = InternetChecksum.Finish(sum);
        BinaryPrimitives.WriteUInt16BigEndian(udp.Slice(6), c == 0 ? (ushort)0xffff : c);
    }

    /// <summary>Writes the nonce into a copied Map-Register template and signs it.</summary>
    public static void PatchRegister(Span<byte> register, ulong nonce, MessageSigner signer)
    {
        BinaryPrimitives.WriteUInt64BigEndian(register.Slice(NonceOffset), nonce);
        signer.Sign(register);
    }

    /// <summary>Message type and nonce of a datagram (types 1-5 carry the nonce at byte 4); false when too short or of another type.</summary>
    public static bool TryPeekNonce(ReadOnlySpan<byte> datagram, out MessageType type, out ulong nonce)
    {
        type = datagram.Length > 0 ? (MessageType)(datagram[0] >> 4) : 0;
        nonce = 0;
        if (datagram.Length < 12) return false;
        if (type is not (MessageType.MapRequest or MessageType.MapReply or MessageType.MapRegister or MessageType.MapNotify or MessageType.MapNotifyAck)) return false;
        nonce = BinaryPrimitives.ReadUInt64BigEndian(datagram.Slice(4));
        return true;
    }

    /// <summary>
    /// Judges a Map-Reply to a request for <paramref name="asked"/>: decoded with the project's decoder; a record
    /// must cover the EID; positive (locators) or negative; with <paramref name="expectedRloc"/> one locator must be it.
    /// </summary>
    public static ReplyOutcome ClassifyMapReply(ReadOnlySpan<byte> datagram, EidPrefix asked, IPAddress? expectedRloc)
    {
        var st = ControlMessage.TryDecode(datagram, out var msg);
        if (!st.IsOk || msg is null) return ReplyOutcome.Malformed;
        if (msg is not MapReply reply) return ReplyOutcome.OtherType;
        MappingRecord? hit = null;
        foreach (var r in reply.Records)
        {
            if (r.Eid.Covers(asked))
            {
                hit = r;
                break;
            }
        }
        if (hit is null) return ReplyOutcome.WrongEid;
        if (hit.IsNegative) return ReplyOutcome.Negative;
        if (expectedRloc is not null && !hit.Locators.Any(l => l.Locator is IpAddress a && a.Address.Equals(expectedRloc))) return ReplyOutcome.RlocMismatch;
        return ReplyOutcome.Positive;
    }

    /// <summary>Turns a received (verified) Map-Notify into its Map-Notify-Ack in place: type 5, same body, re-signed.</summary>
    public static bool MakeAck(Span<byte> notify, MessageSigner signer)
    {
        if (notify.Length < MessageAuthentication.AuthDataOffset) return false;
        notify[0] = (byte)(((int)MessageType.MapNotifyAck << 4) | (notify[0] & 0x0f));
        return signer.Sign(notify);
    }

    /// <summary>Bytes an encoded address takes (AFI included), or -1 when it cannot be told or does not fit.</summary>
    public static int AddressLength(ReadOnlySpan<byte> p)
    {
        if (p.Length < 2) return -1;
        int afi = BinaryPrimitives.ReadUInt16BigEndian(p);
        int n = afi switch
        {
            Afi.None => 2,
            Afi.IPv4 => 6,
            Afi.IPv6 => 18,
            Afi.Mac48 or Afi.Ieee802Legacy => 8,
            Afi.E164 => 10,
            Afi.DistinguishedName => p.Slice(2).IndexOf((byte)0) is int z and >= 0 ? 3 + z : -1,
            Afi.Lcaf => p.Length >= 8 ? 8 + BinaryPrimitives.ReadUInt16BigEndian(p.Slice(6)) : -1,
            _ => -1,
        };
        return n <= p.Length ? n : -1;
    }

    /// <summary>
    /// The sink's canned answer to an ECM Map-Request: a Map-Reply with the same nonce and one record for the EID
    /// asked (copied as it came), TTL 1 day, authoritative, one locator <paramref name="rloc"/> (AFI + address
    /// bytes). Returns the length written, or -1 when the request cannot be read (no table, nothing looked up).
    /// </summary>
    public static int SinkMapReply(ReadOnlySpan<byte> ecm, ReadOnlySpan<byte> rloc, Span<byte> dest)
    {
        int ihl = EcmInnerHeaderLength(ecm);
        if (ihl < 0 || ecm.Length < 4 + ihl + 8 + 12 || ecm[0] >> 4 != (int)MessageType.EncapsulatedControl) return -1;
        var mr = ecm.Slice(4 + ihl + 8);
        if (mr[0] >> 4 != (int)MessageType.MapRequest || mr[3] == 0) return -1;
        int at = 12;
        int n = AddressLength(mr.Slice(at));
        if (n < 0) return -1;
        at += n;
        int irc = (mr[2] & 0x1f) + 1;
        for (int i = 0; i < irc; i++)
        {
            n = AddressLength(mr.Slice(at));
            if (n < 0) return -1;
            at += n;
        }
        if (mr.Length < at + 2) return -1;
        byte mask = mr[at + 1];
        at += 2;
        n = AddressLength(mr.Slice(at));
        if (n < 0) return -1;
        var eid = mr.Slice(at, n);
        int total = 12 + 10 + eid.Length + 6 + rloc.Length;
        if (dest.Length < total) return -1;
        dest[0] = 0x20;
        dest[1] = 0;
        dest[2] = 0;
        dest[3] = 1;
        mr.Slice(4, 8).CopyTo(dest.Slice(4));
        BinaryPrimitives.WriteUInt32BigEndian(dest.Slice(12), 1440);
        dest[16] = 1;
        dest[17] = mask;
        BinaryPrimitives.WriteUInt16BigEndian(dest.Slice(18), 0x1000);
        BinaryPrimitives.WriteUInt16BigEndian(dest.Slice(20), 0);
        eid.CopyTo(dest.Slice(22));
        var loc = dest.Slice(22 + eid.Length);
        loc[0] = 1;
        loc[1] = 100;
        loc[2] = 255;
        loc[3] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(loc.Slice(4), 1);
        rloc.CopyTo(loc.Slice(6));
        return total;
    }

    /// <summary>
    /// The sink's canned answer to a Map-Register: the same bytes as a Map-Notify (type 4, same nonce and records),
    /// re-signed when a signer is given. Returns the length, or -1.
    /// </summary>
    public static int SinkMapNotify(ReadOnlySpan<byte> register, Span<byte> dest, MessageSigner? signer)
    {
        if (register.Length < MessageAuthentication.AuthDataOffset || register.Length > dest.Length || register[0] >> 4 != (int)MessageType.MapRegister) return -1;
        register.CopyTo(dest);
        bool xtrId = (register[0] & 2) != 0;
        dest[0] = (byte)(((int)MessageType.MapNotify << 4) | (xtrId ? 8 : 0));
        dest[1] = 0;
        dest[2] = 0;
        var m = dest.Slice(0, register.Length);
        if (signer is not null) signer.Sign(m);
        return register.Length;
    }
}
