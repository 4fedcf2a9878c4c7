using System.Net;
using Lisp.ControlPlane;
using Lisp.Wire;

namespace Lisp.ControlPlane.Tests.Tables;

/// <summary>
/// Registrations as a plain list scanned linearly: the oracle the map-server's tables are compared with
/// (MapServerOracleTests) and the sharded map-servers' negative replies are checked against (Sharding tests).
/// Registrant identity is RFC 9301 section 8.2's (MapServer.FindRegistrant); the table and site limits apply.
/// </summary>
internal sealed class RegistrationModel(TimeSpan registrationTimeout, int maxRegistrations = int.MaxValue)
{
    /// <summary>One registration as the model holds it (the registrant identity rule is MapServer.FindRegistrant's).</summary>
    public sealed class Reg
    {
        public required string Site;
        public required byte[]? Xtr;
        public required IPEndPoint Registerer;
        public required List<IPAddress> Rlocs;
        public required DateTimeOffset First;
        public DateTimeOffset Last;
        public DateTimeOffset Expires;
    }

    /// <summary>A site's limit when it sets none: its share of the table when there are several sites (MapServer's rule).</summary>
    public int DefaultSiteLimit { get; init; }

    public static int ShareOf(int maxRegistrations, int sites) => sites > 1 ? (int)(((long)maxRegistrations + sites - 1) / sites) : 0;

    /// <summary>By EID text: the canonical EID and its registrations, in the order they were first made.</summary>
    public readonly Dictionary<string, (EidPrefix Eid, List<Reg> Regs)> Entries = new(StringComparer.Ordinal);

    public int Total => Entries.Values.Sum(e => e.Regs.Count);

    public static bool SiteCovers(SiteConfig s, EidPrefix eid)
    {
        if (s.AcceptAnyEid) return true;
        var c = eid.Canonical();
        return s.EidPrefixes.Any(p => p.Canonical().ToString() == c.ToString() || (s.AcceptMoreSpecifics && p.Canonical().Covers(c)));
    }

    /// <summary>Applies a Map-Register signed with <paramref name="site"/>'s key; returns (accepted, records confirmed).</summary>
    public (bool Accepted, int Confirmed) Apply(SiteConfig site, MapRegister reg, IPEndPoint from, DateTimeOffset now)
    {
        // The site is found by the first record (only the signing site's key verifies); every record must be inside it.
        if (!reg.Records.All(r => SiteCovers(site, r.Eid))) return (false, 0);
        int confirmed = 0;
        foreach (var rec in reg.Records)
        {
            var eid = rec.Eid.Canonical();
            string text = eid.ToString();
            var regs = Entries.TryGetValue(text, out var e) ? e.Regs : null;
            var r = regs is null ? null : Find(regs, site.Name, reg.XtrId, from);
            if (rec.TtlRaw == 0)
            {
                if (r is not null)
                {
                    regs!.Remove(r);
                    if (regs.Count == 0) Entries.Remove(text);
                }
                confirmed++;
                continue;
            }
            var timeout = reg.UseTtlForTimeout ? rec.Ttl : registrationTimeout;
            if (r is null)
            {
                // Refused past the map-server's or the site's limit (counted by the site that made each registration).
                int siteCount = Entries.Values.Sum(x => x.Regs.Count(y => y.Site == site.Name));
                int siteLimit = site.MaxRegistrations > 0 ? site.MaxRegistrations : DefaultSiteLimit;
                if (Total >= maxRegistrations || (siteLimit > 0 && siteCount >= siteLimit)) continue;
                if (regs is null) Entries[text] = (eid, regs = []);
                r = new Reg { Site = site.Name, Xtr = reg.XtrId, Registerer = from, Rlocs = [], First = now };
                regs.Add(r);
            }
            r.Registerer = from;
            r.Rlocs = rec.Locators.Select(l => ((IpAddress)l.Locator).Address).ToList();
            r.Last = now;
            r.Expires = now + timeout;
            confirmed++;
        }
        return (true, confirmed);
    }

    /// <summary>
    /// The registration a Map-Register speaks for: same xTR-ID when it carries one; else one of the same site
    /// without an xTR-ID whose last source address, or one of whose RLOCs, is the packet's source address.
    /// The UDP port never matters.
    /// </summary>
    private static Reg? Find(List<Reg> regs, string site, byte[]? xtr, IPEndPoint from)
    {
        foreach (var r in regs)
        {
            if (xtr is not null)
            {
                if (r.Xtr is not null && r.Xtr.AsSpan().SequenceEqual(xtr)) return r;
                continue;
            }
            if (r.Xtr is not null || r.Site != site) continue;
            if (r.Registerer.Address.Equals(from.Address) || r.Rlocs.Contains(from.Address)) return r;
        }
        return null;
    }

    public void Sweep(DateTimeOffset now)
    {
        foreach (var (text, (_, regs)) in Entries.ToList())
        {
            regs.RemoveAll(r => r.Expires <= now);
            if (regs.Count == 0) Entries.Remove(text);
        }
    }

    private static (int, int) Rank(EidPrefix p, EidPrefix query)
    {
        if (query.IsSourceGroup)
        {
            var (s, g) = p.SourceGroup()!.Value;
            return (g.MaskLength, s.MaskLength);
        }
        return (p.MaskLength, 0);
    }

    /// <summary>The most specific registered prefix covering the EID that has a live registration, and those live registrations.</summary>
    public (EidPrefix Eid, List<Reg> Live)? Lookup(EidPrefix query, DateTimeOffset now)
    {
        var q = query.Canonical();
        (EidPrefix Eid, List<Reg> Live)? best = null;
        foreach (var (eid, regs) in Entries.Values)
        {
            if (!eid.Covers(q)) continue;
            var live = regs.Where(r => r.Expires > now).ToList();
            if (live.Count == 0) continue;
            if (best is null || Rank(eid, q).CompareTo(Rank(best.Value.Eid, q)) > 0) best = (eid, live);
        }
        return best;
    }

    public IEnumerable<(EidPrefix Eid, Reg Reg)> Live(DateTimeOffset now) =>
        Entries.Values.SelectMany(e => e.Regs.Where(r => r.Expires > now).Select(r => (e.Eid, r)));

    /// <summary>Prefixes with a live registration.</summary>
    public List<EidPrefix> LivePrefixes(DateTimeOffset now) =>
        Entries.Values.Where(e => e.Regs.Any(r => r.Expires > now)).Select(e => e.Eid).ToList();
}
