using System.Globalization;

namespace Lisp.Wire;

/// <summary>A decoded message as a tree of labelled values: printed indented for operators, or as JSON.</summary>
public sealed class DescriptionNode
{
    public DescriptionNode(string label, string? value = null)
    {
        Label = label;
        Value = value;
    }

    public string Label { get; }
    public string? Value { get; }
    public List<DescriptionNode> Children { get; } = [];

    public DescriptionNode Add(string label, string? value = null)
    {
        var n = new DescriptionNode(label, value);
        Children.Add(n);
        return n;
    }

    public DescriptionNode Add(string label, object value) => Add(label, Convert.ToString(value, CultureInfo.InvariantCulture));

    public void WriteText(TextWriter w, int indent = 0)
    {
        w.Write(new string(' ', indent * 2));
        w.Write(Label);
        if (Value is not null)
        {
            w.Write(": ");
            w.Write(Value);
        }
        w.WriteLine();
        foreach (var c in Children) c.WriteText(w, indent + 1);
    }
}

/// <summary>Builds the operator view of control messages (used by `decode` and `lig`).</summary>
public static class MessageDescriber
{
    public static string TypeName(MessageType t) => t switch
    {
        MessageType.MapRequest => "Map-Request",
        MessageType.MapReply => "Map-Reply",
        MessageType.MapRegister => "Map-Register",
        MessageType.MapNotify => "Map-Notify",
        MessageType.MapNotifyAck => "Map-Notify-Ack",
        MessageType.EncapsulatedControl => "Encapsulated-Control-Message",
        _ => t.ToString(),
    };

    public static string Flags(params (char Name, bool Set)[] flags) =>
        string.Join("-", flags.Select(f => f.Set ? char.ToUpperInvariant(f.Name).ToString() : f.Name.ToString()));

    public static DescriptionNode Describe(ControlMessage m)
    {
        var n = new DescriptionNode(TypeName(m.Type));
        switch (m)
        {
            case EncapsulatedControlMessage ecm:
                n.Add("flags", $"S={B(ecm.Security)} D={B(ecm.DdtOriginated)} E={B(ecm.ForEtr)} M={B(ecm.ForMapServer)}");
                if (ecm.InnerHeader is { } h)
                {
                    var ip = n.Add(h.IsV4 ? "inner IPv4" : "inner IPv6", $"{h.Source} -> {h.Destination} ttl {h.TtlOrHopLimit}");
                    ip.Add("inner UDP", $"{h.SourcePort} -> {h.DestinationPort} checksum 0x{h.UdpChecksum ?? 0:x4}");
                }
                else if (ecm.InnerLayout == EcmInnerLayout.UdpOnly)
                {
                    n.Add("inner header", "UDP only, no IP header (lispers.net layout)")
                        .Add("inner UDP", $"{ecm.Inner.SourcePort} -> {ecm.Inner.DestinationPort} checksum 0x{ecm.Inner.UdpChecksum ?? 0:x4}");
                }
                else
                {
                    n.Add("inner header", "none, the control message follows the ECM header (lispers.net layout)");
                }
                n.Children.Add(Describe(ecm.Message));
                break;
            case MapRequest rq:
                n.Add("flags", $"A={B(rq.Authoritative)} M={B(rq.MapDataPresent)} P={B(rq.Probe)} S={B(rq.Smr)} p={B(rq.Pitr)} s={B(rq.SmrInvoked)} m={B(rq.MobileNode)} I={B(rq.XtrId is not null)} L={B(rq.LocalXtr)} D={B(rq.DontReply)}");
                n.Add("nonce", Hex(rq.Nonce));
                n.Add("source-eid", rq.SourceEid.ToText());
                var itr = n.Add("itr-rlocs", rq.ItrRlocs.Count.ToString(CultureInfo.InvariantCulture));
                foreach (var a in rq.ItrRlocs) itr.Add("itr-rloc", a.ToText());
                var recs = n.Add("eid-records", rq.Records.Count.ToString(CultureInfo.InvariantCulture));
                foreach (var e in rq.Records) DescribeEid(recs.Add("eid", e.ToString()), e);
                if (rq.MapReplyRecord is not null) DescribeRecord(n.Add("map-reply-record"), rq.MapReplyRecord);
                if (rq.XtrId is not null) n.Add("xtr-id", Convert.ToHexString(rq.XtrId).ToLowerInvariant());
                break;
            case MapReply rp:
                n.Add("flags", $"P={B(rp.Probe)} E={B(rp.EchoNonceCapable)} S={B(rp.Security)}");
                n.Add("nonce", Hex(rp.Nonce));
                var rr = n.Add("records", rp.Records.Count.ToString(CultureInfo.InvariantCulture));
                foreach (var r in rp.Records) DescribeRecord(rr.Add("record"), r);
                break;
            case AuthenticatedMessage am:
                if (am is MapRegister reg)
                {
                    n.Add("flags", $"P={B(reg.ProxyReply)} S={B(reg.LispSec)} I={B(reg.XtrIdPresent)} R={B(reg.Refresh)} T={B(reg.UseTtlForTimeout)} a={B(reg.Merge)} m={B(reg.MobileNode)} M={B(reg.WantMapNotify)}");
                }
                else if (am is MapNotify mn)
                {
                    n.Add("flags", $"I={B(mn.XtrIdPresent && !mn.XtrIdTrailerWithoutIBit)} R={B(mn.Rebuilt)}");
                    if (mn.XtrIdTrailerWithoutIBit) n.Add("xtr-id-trailer", "present with the I bit clear (lispers.net layout)");
                }
                n.Add("nonce", Hex(am.Nonce));
                n.Add("key-id", am.KeyId);
                n.Add("algorithm", am.Algorithm switch
                {
                    AuthAlgorithm.None => "0 (none)",
                    AuthAlgorithm.HmacSha1_96 => "1 (HMAC-SHA-1-96)",
                    AuthAlgorithm.HmacSha256_128 => "2 (HMAC-SHA-256-128)",
                    _ => ((int)am.Algorithm).ToString(CultureInfo.InvariantCulture) + " (unknown)",
                });
                n.Add("auth-data", Convert.ToHexString(am.AuthData ?? []).ToLowerInvariant());
                var ar = n.Add("records", am.Records.Count.ToString(CultureInfo.InvariantCulture));
                foreach (var r in am.Records) DescribeRecord(ar.Add("record"), r);
                if (am.XtrId is not null)
                {
                    n.Add("xtr-id", Convert.ToHexString(am.XtrId).ToLowerInvariant());
                    n.Add("site-id", Hex(am.SiteId));
                }
                break;
        }
        return n;
    }

    public static void DescribeRecord(DescriptionNode n, MappingRecord r)
    {
        n.Add("eid", r.Eid.ToString());
        DescribeEid(n, r.Eid);
        n.Add("ttl", (r.TtlRaw & MappingRecord.TtlSecondsFlag) != 0 ? $"{r.TtlRaw & ~MappingRecord.TtlSecondsFlag} seconds" : $"{r.TtlRaw} minutes");
        n.Add("action", $"{(int)r.Action} ({r.Action})");
        n.Add("authoritative", B(r.Authoritative));
        n.Add("map-version", r.MapVersion);
        var l = n.Add("locators", r.Locators.Count.ToString(CultureInfo.InvariantCulture));
        foreach (var loc in r.Locators) l.Add("rloc", loc.ToString());
    }

    private static void DescribeEid(DescriptionNode n, EidPrefix e)
    {
        string kind = e.Inner switch
        {
            IpAddress ip => ip.IsV4 ? "IPv4 (AFI 1)" : "IPv6 (AFI 2)",
            DistinguishedName => "distinguished-name (AFI 17)",
            MacAddress m => $"MAC (AFI {m.Afi})",
            E164Address => "E.164 (AFI 8)",
            GeoCoordinates => "geo-coordinates (LCAF 5)",
            MulticastInfoAddress mi => mi.ReceivedLispersPadding ? "(S,G) multicast-info (LCAF 9, lispers.net padded form)" : "(S,G) multicast-info (LCAF 9)",
            SourceDestAddress => "(S,G) source-dest (LCAF 12)",
            ReplicationListAddress => "replication-list (LCAF 13)",
            AfiListAddress => "afi-list (LCAF 1)",
            UnknownLcafAddress u => $"LCAF type {u.Type} (kept as bytes)",
            _ => $"AFI {e.Inner.Afi}",
        };
        n.Add("eid-kind", e.Address is InstanceIdAddress ? kind + " in instance-id LCAF" : kind);
    }

    private static string B(bool b) => b ? "1" : "0";
    private static string Hex(ulong v) => "0x" + v.ToString("x16", CultureInfo.InvariantCulture);
}
