using System.Net;
using System.Net.Sockets;
using System.Text;
using Lisp.ControlPlane;
using Lisp.Wire;

namespace Lisp.Decent.Push;

/// <summary>
/// What turns a plain <see cref="ControlNode"/> into a push-group member: the group's site (any EID from
/// anyone holding the key), the peer-group registration <c>(0.0.0.0/0, G)</c> with the members as an RLE,
/// a map-resolver that always answers locally, and SMRs from the map-server when a mapping changes.
/// </summary>
public static class PushGroup
{
    public static bool IsMulticast(IPAddress a) => a.AddressFamily switch
    {
        AddressFamily.InterNetwork => (a.GetAddressBytes()[0] & 0xf0) == 0xe0,
        AddressFamily.InterNetworkV6 => a.IsIPv6Multicast,
        _ => false,
    };

    private static IPAddress AnySource(IPAddress group) =>
        group.AddressFamily == AddressFamily.InterNetwork ? IPAddress.Any : IPAddress.IPv6Any;

    /// <summary>The peer-group EID <c>[iid](0.0.0.0/0, G/32)</c> (or <c>(::/0, G/128)</c>) that names the group's members.</summary>
    public static EidPrefix PeerGroupEid(IPAddress group, uint instanceId = 0)
    {
        int host = group.AddressFamily == AddressFamily.InterNetwork ? 32 : 128;
        var mi = new MulticastInfoAddress(instanceId, 0, (byte)host, new IpAddress(AnySource(group)), new IpAddress(group));
        return new EidPrefix(mi, (byte)host);
    }

    /// <summary>The site's configured prefix, as the seed shows it: <c>(0.0.0.0/0, 224.0.0.0/4)</c> or <c>(::/0, ff00::/8)</c>.</summary>
    public static EidPrefix AllGroupsEid(IPAddress group)
    {
        bool v4 = group.AddressFamily == AddressFamily.InterNetwork;
        var g = v4 ? IPAddress.Parse("224.0.0.0") : IPAddress.Parse("ff00::");
        byte len = (byte)(v4 ? 4 : 8);
        return new EidPrefix(new MulticastInfoAddress(0, 0, len, new IpAddress(AnySource(group)), new IpAddress(g)), len);
    }

    /// <summary>The group's registration site: accepts any EID kind from whoever signs with the group key.</summary>
    public static SiteConfig Site(PushOptions o) =>
        new(o.SiteName, o.Key, [AllGroupsEid(o.Group)])
        {
            AcceptAnyEid = true,
            AcceptMoreSpecifics = true,
            Description = $"LISP-Decent push group {o.Group}",
        };

    /// <summary>The replication list of <paramref name="rlocs"/> (all at level 0).</summary>
    public static ReplicationListAddress Rle(IEnumerable<IPAddress> rlocs) =>
        new(rlocs.Select(a => new RleEntry(0, new IpAddress(a))).ToList());

    /// <summary><c>(0.0.0.0/0, G)</c> with one RLE locator listing the members (lispers.net's peer-group entry).</summary>
    public static DatabaseMapping PeerGroupMapping(IPAddress group, IEnumerable<IPAddress> memberRlocs) =>
        new(PeerGroupEid(group), [new LocatorRecord(Rle(memberRlocs), Priority: 1, Weight: 100)]);

    /// <summary>
    /// The member addresses a mapping record names: the entries of its RLE locators, plus plain IP locators
    /// (a seed group may list members either way).
    /// </summary>
    public static IReadOnlyList<IPAddress> MembersOf(MappingRecord record)
    {
        var list = new List<IPAddress>();
        foreach (var l in record.Locators)
        {
            switch (l.Locator)
            {
                case ReplicationListAddress rle:
                    foreach (var e in rle.Entries)
                    {
                        if (e.Address is IpAddress ip && !list.Contains(ip.Address)) list.Add(ip.Address);
                    }
                    break;
                case IpAddress ip when !list.Contains(ip.Address):
                    list.Add(ip.Address);
                    break;
            }
        }
        return list;
    }

    /// <summary>
    /// Which member a peer-group registration is from, by its RLOC, never by the UDP source alone (issue 11, item 4):
    /// the source address when the registration names it among its RLOCs (our members register from their RLOC and
    /// list it in their RLE); else the one RLOC a registration names when it names exactly one (lispers.net registers
    /// its own RLOC, possibly from another local address, e.g. from 127.0.0.1 for RLOC 127.0.0.2); else none: an
    /// address that was never registered must not enter the member list.
    /// </summary>
    public static IPAddress? RegisteringMember(IPAddress source, IReadOnlyList<IPAddress> namedRlocs)
    {
        foreach (var a in namedRlocs)
        {
            if (a.Equals(source)) return a;
        }
        return namedRlocs.Count == 1 ? namedRlocs[0] : null;
    }

    /// <summary>A stable 16-byte xTR-ID from the node name: the registerer identity survives an RLOC change.</summary>
    public static byte[] XtrIdFor(string nodeName) => Lisp.Wire.Crypto.Sha256.HashData(Encoding.UTF8.GetBytes("lisp-decent-push:" + nodeName))[..16];

    /// <summary>
    /// Makes <paramref name="options"/> a member of <paramref name="push"/>'s group: adds the group site to the
    /// map-server, has the map-resolver answer locally, makes the map-server send SMRs on changes, adds the
    /// peer-group registration to the ETR database and signs with the group key under a stable xTR-ID.
    /// </summary>
    public static ControlNodeOptions Apply(ControlNodeOptions options, PushMappingSystem push)
    {
        var o = options;
        var site = Site(push.Options);
        var ms = o.MapServer ?? new MapServerOptions();
        o = o with
        {
            MapServer = ms with
            {
                Sites = [.. ms.Sites.Where(s => s.Name != site.Name), site],
                SmrOnChange = true,
            },
            MapResolver = (o.MapResolver ?? new MapResolverOptions()) with { AnswerLocally = true },
        };
        if (o.Etr is { } etr)
        {
            var peer = PeerGroupMapping(push.Group, push.MemberRlocs);
            o = o with
            {
                Etr = etr with
                {
                    Key = push.Options.Key,
                    Database = [.. etr.Database.Where(d => !d.Eid.SameKey(peer.Eid)), peer],
                    XtrId = etr.XtrId ?? XtrIdFor(o.Name),
                    ProxyReply = true,
                },
            };
        }
        return o;
    }
}
