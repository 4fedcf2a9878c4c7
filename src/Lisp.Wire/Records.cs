namespace Lisp.Wire;

/// <summary>Map-Reply record actions (RFC 9301 section 5.4; 6 and 7 as lispers.net uses them).</summary>
public enum MapReplyAction : byte
{
    NoAction = 0,
    NativelyForward = 1,
    SendMapRequest = 2,
    Drop = 3,
    DropPolicyDenied = 4,
    DropAuthFailure = 5,
    SendPubSub = 6,
    NotRegisteredYet = 7,
}

/// <summary>
/// Locator (RLOC) record.
/// <code>
/// |    Priority   |    Weight     |  M Priority   |   M Weight    |
/// |        Unused Flags     |L|p|R|           Loc-AFI             |
/// |                             Locator                           |
/// </code>
/// Priority 255 means "do not use for unicast". L = local, p = this RLOC was probed, R = reachable.
/// </summary>
public sealed record LocatorRecord(LispAddress Locator, byte Priority = 1, byte Weight = 100,
    byte MulticastPriority = 255, byte MulticastWeight = 0, bool Local = false, bool Probed = false,
    bool Reachable = true, ushort UnusedFlags = 0)
{
    public int EncodedLength => 6 + Locator.EncodedLength;

    public void Write(ref SpanWriter w)
    {
        w.U8(Priority);
        w.U8(Weight);
        w.U8(MulticastPriority);
        w.U8(MulticastWeight);
        w.U16((ushort)((UnusedFlags << 3) | (Local ? 4 : 0) | (Probed ? 2 : 0) | (Reachable ? 1 : 0)));
        Locator.Write(ref w);
    }

    public static LocatorRecord? Read(ref SpanReader r)
    {
        byte p = r.U8("locator priority");
        byte wt = r.U8("locator weight");
        byte mp = r.U8("locator M priority");
        byte mw = r.U8("locator M weight");
        ushort flags = r.U16("locator flags");
        if (!r.Ok) return null;
        var loc = LispAddress.Read(ref r);
        if (loc is null) return null;
        return new LocatorRecord(loc, p, wt, mp, mw, (flags & 4) != 0, (flags & 2) != 0, (flags & 1) != 0, (ushort)(flags >> 3));
    }

    public override string ToString() =>
        $"{Locator.ToText()} priority {Priority} weight {Weight} mpriority {MulticastPriority} mweight {MulticastWeight}" +
        $"{(Local ? " local" : "")}{(Probed ? " probed" : "")}{(Reachable ? " up" : " down")}";
}

/// <summary>
/// EID (mapping) record, used in Map-Reply, Map-Register and Map-Notify.
/// <code>
/// |                          Record TTL                           |
/// |  Locator Count | EID mask-len |  ACT  |A|      Reserved        |
/// | Rsvd  |  Map-Version Number   |       EID-Prefix-AFI          |
/// |                          EID-Prefix                           |
/// |                  Locator Count x Locator record               |
/// </code>
/// TTL is in minutes; lispers.net sets the top bit to mean seconds (kept as given in <see cref="TtlRaw"/>).
/// </summary>
public sealed record MappingRecord(EidPrefix Eid, IReadOnlyList<LocatorRecord> Locators, uint TtlRaw = 1440,
    MapReplyAction Action = MapReplyAction.NoAction, bool Authoritative = true, ushort MapVersion = 0,
    ushort ReservedBits = 0)
{
    public const uint TtlSecondsFlag = 0x8000_0000;

    /// <summary>TTL as a time span (minutes, or seconds when the lispers.net top bit is set).</summary>
    public TimeSpan Ttl => (TtlRaw & TtlSecondsFlag) != 0
        ? TimeSpan.FromSeconds(TtlRaw & ~TtlSecondsFlag)
        : TimeSpan.FromMinutes(TtlRaw);

    public bool IsNegative => Locators.Count == 0;

    public int EncodedLength => 10 + Eid.EncodedLength + Locators.Sum(l => l.EncodedLength);

    public void Write(ref SpanWriter w)
    {
        w.U32(TtlRaw);
        w.U8((byte)Locators.Count);
        w.U8(Eid.MaskLength);
        w.U16((ushort)(((int)Action & 7) << 13 | (Authoritative ? 0x1000 : 0) | (ReservedBits & 0x0fff)));
        w.U16((ushort)(MapVersion & 0x0fff));
        Eid.Address.Write(ref w);
        foreach (var l in Locators) l.Write(ref w);
    }

    public static MappingRecord? Read(ref SpanReader r)
    {
        uint ttl = r.U32("record TTL");
        byte count = r.U8("locator count");
        byte ml = r.U8("EID mask-len");
        ushort actBits = r.U16("ACT/A bits");
        ushort version = r.U16("map-version");
        if (!r.Ok) return null;
        var eid = LispAddress.Read(ref r);
        if (eid is null || !EidPrefix.CheckMask(ref r, eid, ml, "EID mask-len")) return null;
        var locs = new List<LocatorRecord>(count);
        for (int i = 0; i < count; i++)
        {
            var l = LocatorRecord.Read(ref r);
            if (l is null) return null;
            locs.Add(l);
        }
        return new MappingRecord(new EidPrefix(eid, ml), locs, ttl, (MapReplyAction)(actBits >> 13),
            (actBits & 0x1000) != 0, (ushort)(version & 0x0fff), (ushort)(actBits & 0x0fff));
    }

    public bool Equals(MappingRecord? o) => o is not null && Eid.Equals(o.Eid) && Locators.SequenceEqual(o.Locators) &&
        TtlRaw == o.TtlRaw && Action == o.Action && Authoritative == o.Authoritative && MapVersion == o.MapVersion &&
        ReservedBits == o.ReservedBits;

    public override int GetHashCode() => HashCode.Combine(Eid, Locators.Count, TtlRaw);
}
