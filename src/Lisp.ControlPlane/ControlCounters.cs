using Lisp.Wire;

namespace Lisp.ControlPlane;

/// <summary>
/// Why a received control message was dropped. Each value is a counter in <see cref="ControlCounters"/>. The data
/// plane has its own Lisp.DataPlane.DropReason for data packets; its remarks say why the two stay apart.
/// </summary>
public enum DropReason
{
    /// <summary>The codec refused it; <see cref="ControlCounters.Malformed(WireError)"/> has the kind.</summary>
    Malformed,
    /// <summary>HMAC did not verify with the key of any site (or the ETR's key), or the algorithm was None.</summary>
    AuthFailure,
    /// <summary>The message authenticated but with an algorithm the site does not allow.</summary>
    AlgorithmNotAllowed,
    /// <summary>No configured site covers the first record of a Map-Register.</summary>
    UnknownSite,
    /// <summary>A record of an authenticated Map-Register lies outside its site (or is more specific when that is not allowed).</summary>
    NotCovered,
    /// <summary>A Map-Register/Map-Notify/Map-Request with no records.</summary>
    NoRecords,
    /// <summary>A message type this node has no role for (e.g. a Map-Reply at a node without an ITR).</summary>
    UnexpectedType,
    /// <summary>
    /// A Map-Request suppressed by the ITR's per-EID or global rate limit, or a received Map-Request over its
    /// source's or reply address's token bucket (<see cref="RequestAdmission"/>).
    /// </summary>
    RateLimited,
    /// <summary>A Map-Reply, Map-Notify or Map-Notify-Ack whose nonce matches nothing outstanding.</summary>
    StaleNonce,
    /// <summary>A Map-Notify whose nonce matched but whose records differ from the Map-Register sent.</summary>
    RecordMismatch,
    /// <summary>An ETR was asked about an EID it does not own.</summary>
    NotOurEid,
    /// <summary>An SMR for an EID the ITR does not have cached.</summary>
    SmrNotCached,
    /// <summary>No address to answer to (no usable ITR-RLOC).</summary>
    NoReplyPath,
    /// <summary>A request the ITR could not place: no map-resolver known (or known too late).</summary>
    NoResolver,
    /// <summary>A request the ITR did not send: its in-flight limit (ItrOptions.MaxOutstanding) was reached.</summary>
    RequestsInFlight,
    /// <summary>A Map-Reply record or a glean not installed: the ITR's map-cache is at ItrOptions.MaxCacheEntries.</summary>
    MapCacheFull,
    /// <summary>A Map-Reply record that does not overlap the EID that was asked for.</summary>
    UnrequestedRecord,
    /// <summary>Something threw while handling a message (a bug; logged at Error).</summary>
    HandlerFault,
    /// <summary>
    /// A Map-Register for an EID this map-server is not responsible for (LISP-Decent pull: the EID hashes to a
    /// set this map-server address is not in); see <see cref="MapServerOptions.EidFilter"/>.
    /// </summary>
    NotServedHere,
    /// <summary>
    /// A record of an authenticated Map-Register refused because the registration table is at
    /// <see cref="MapServerOptions.MaxRegistrations"/>: not registered, not in the Map-Notify.
    /// </summary>
    RegistrationTableFull,
    /// <summary>
    /// A record of an authenticated Map-Register refused because its site holds its own limit
    /// (<see cref="SiteConfig.MaxRegistrations"/>): not registered, not in the Map-Notify.
    /// </summary>
    SiteRegistrationLimit,
    /// <summary>
    /// A record of an authenticated Map-Register refused because its EID already has
    /// <see cref="MapServerOptions.MaxRegistrantsPerEid"/> registrants (issue 12, item 7): not registered, not in the Map-Notify.
    /// </summary>
    RegistrantsPerEid,
    /// <summary>
    /// A record of an authenticated Map-Register refused as a replay (issue 12, item 5): its registrant (or the
    /// tombstone it left when withdrawn or expired) already accepted a Map-Register with this nonce.
    /// </summary>
    ReplayedNonce,
    /// <summary>
    /// A Map-Notify whose xTR-ID/site-ID trailer (I bit clear, lispers.net layout) is not the xTR-ID/site-ID this
    /// ETR registered with (or the ETR registered none).
    /// </summary>
    XtrIdMismatch,
    /// <summary>
    /// A Map-Request dropped because no ITR-RLOC is a usable reply address (multicast, broadcast, unspecified, or
    /// loopback from elsewhere); the event.itr-rloc-refused-* counters say which (<see cref="RequestAdmission"/>).
    /// </summary>
    ItrRlocRefused,
    /// <summary>
    /// A Map-Reply not sent: larger than RequestAdmissionOptions.AmplificationFactor x its request, to an address
    /// that is not the request's outer source (<see cref="RequestAdmission"/>).
    /// </summary>
    AmplificationBound,
}

/// <summary>Things that happened (not drops), counted for `show` and metrics.</summary>
public enum ControlEvent
{
    Received,
    RegistrationAccepted,
    /// <summary>A record of an authenticated Map-Register not taken (table, site or per-EID limit, or a replay); the drop reason says which.</summary>
    RegistrationRefused,
    RegistrationExpired,
    MapNotifySent,
    MapRegisterSent,
    MapNotifyAccepted,
    MapNotifyAckSent,
    /// <summary>An authenticated Map-Notify that answers no Map-Register of ours (acknowledged with a Map-Notify-Ack).</summary>
    MapNotifyUnsolicited,
    MapRequestSent,
    MapRequestRetransmitted,
    MapRequestTimedOut,
    MapRequestForwarded,
    MapReplySent,
    ProxyMapReplySent,
    NegativeMapReplySent,
    MapCacheInstalled,
    MapCacheExpired,
    SmrSent,
    SmrHonoured,
    /// <summary>
    /// An ECM Map-Request with no inner IP header (lispers.net, for name EIDs; a UDP header alone or none at all):
    /// answered to an ITR-RLOC (at the inner UDP source port when there is one, else 4342), forwarded in the
    /// layout it came in.
    /// </summary>
    EcmWithoutInnerHeader,
    /// <summary>
    /// A Map-Notify accepted whose xTR-ID/site-ID trailer came with the I bit clear (lispers.net's answer to a
    /// Map-Register with the I bit), the trailer matching what this ETR registered.
    /// </summary>
    MapNotifyXtrIdWithoutIBit,
    /// <summary>A host EID -> RLOC learned from a decapsulated packet (gleaning, RFC 9300 section 9) installed in the map-cache.</summary>
    MapCacheGleaned,
    /// <summary>A glean not installed: an entry (from the mapping system or an earlier glean) covers the EID.</summary>
    GleanCovered,
    /// <summary>A gleaned entry removed because the mapping system answered for a prefix covering it.</summary>
    GleanReplaced,
    /// <summary>A due RLOC-probe deferred to a later slot: the probe budget (ItrOptions.ProbeBudgetPerSecond) was spent.</summary>
    RlocProbeDeferred,
    /// <summary>A locator of an installed entry not probed: beyond the per-record cap (ItrOptions.MaxProbedLocatorsPerRecord).</summary>
    RlocProbeLocatorNotProbed,
    /// <summary>A Map-Reply record installed with the TTL ceiling (ItrOptions.MaxTtl) instead of its larger TTL.</summary>
    TtlCapped,
    /// <summary>An ITR-RLOC of a received Map-Request skipped as a reply address: multicast (<see cref="RequestAdmission"/>).</summary>
    ItrRlocRefusedMulticast,
    /// <summary>An ITR-RLOC skipped: the limited broadcast 255.255.255.255.</summary>
    ItrRlocRefusedBroadcast,
    /// <summary>An ITR-RLOC skipped: unspecified (0.0.0.0/8, ::).</summary>
    ItrRlocRefusedUnspecified,
    /// <summary>An ITR-RLOC skipped: loopback, in a request from a non-loopback source.</summary>
    ItrRlocRefusedLoopback,
    /// <summary>A config reload (SIGHUP) applied (counted on the host's primary node).</summary>
    ConfigReloaded,
    /// <summary>A config reload refused (the file did not validate, or applying it failed): the old config stays.</summary>
    ConfigReloadFailed,
}

/// <summary>
/// Per-reason drop counts, per-kind malformed counts and event counts of one <see cref="ControlNode"/>.
/// Written by the single control thread, read by anyone (Interlocked/Volatile), so `show` and metrics may
/// read it from another thread.
/// </summary>
public sealed class ControlCounters
{
    private readonly long[] _drops = new long[Enum.GetValues<DropReason>().Length];
    private readonly long[] _malformed = new long[Enum.GetValues<WireError>().Length];
    private readonly long[] _events = new long[Enum.GetValues<ControlEvent>().Length];

    public long Drops(DropReason reason) => Volatile.Read(ref _drops[(int)reason]);
    public long Malformed(WireError error) => Volatile.Read(ref _malformed[(int)error]);
    public long Events(ControlEvent e) => Volatile.Read(ref _events[(int)e]);

    /// <summary>Sum of every drop reason.</summary>
    public long TotalDrops
    {
        get
        {
            long s = 0;
            for (int i = 0; i < _drops.Length; i++) s += Volatile.Read(ref _drops[i]);
            return s;
        }
    }

    public void Drop(DropReason reason) => Interlocked.Increment(ref _drops[(int)reason]);

    public void DropMalformed(WireError error)
    {
        Interlocked.Increment(ref _drops[(int)DropReason.Malformed]);
        if ((int)error < _malformed.Length) Interlocked.Increment(ref _malformed[(int)error]);
    }

    public void Count(ControlEvent e) => Interlocked.Increment(ref _events[(int)e]);
    public void Count(ControlEvent e, long n) => Interlocked.Add(ref _events[(int)e], n);

    /// <summary>Every non-zero counter as ("drop.auth-failure", 3), ("malformed.truncated", 1), ("event.map-reply-sent", 9).</summary>
    public IReadOnlyList<KeyValuePair<string, long>> Snapshot()
    {
        var list = new List<KeyValuePair<string, long>>();
        foreach (var r in Enum.GetValues<DropReason>())
        {
            long v = Drops(r);
            if (v != 0) list.Add(new("drop." + Kebab(r.ToString()), v));
        }
        foreach (var e in Enum.GetValues<WireError>())
        {
            long v = Malformed(e);
            if (v != 0) list.Add(new("malformed." + Kebab(e.ToString()), v));
        }
        foreach (var e in Enum.GetValues<ControlEvent>())
        {
            long v = Events(e);
            if (v != 0) list.Add(new("event." + Kebab(e.ToString()), v));
        }
        return list;
    }

    internal static string Kebab(string name)
    {
        var sb = new System.Text.StringBuilder(name.Length + 4);
        for (int i = 0; i < name.Length; i++)
        {
            char c = name[i];
            if (char.IsUpper(c))
            {
                if (i > 0) sb.Append('-');
                sb.Append(char.ToLowerInvariant(c));
            }
            else sb.Append(c);
        }
        return sb.ToString();
    }
}
