using System.Net;
using System.Text;
using Lisp.ControlPlane;
using Lisp.Wire;
using static Lisp.ControlPlane.Tests.H;

namespace Lisp.ControlPlane.Tests;

/// <summary>
/// Issue 12, item 6, at the node: a keyed Map-Register holding 10.1.1.1/33 and an ECM Map-Request for 10.1.1.1/33
/// are malformed (counted malformed, kind bad-value), nothing is stored and nothing is answered.
/// </summary>
public class MaskLengthNodeTests
{
    private const string Key = "node-key";
    private static readonly IPEndPoint Self = Ep("10.0.0.1:4342");

    private static ControlNode MsMr() => new(new ControlNodeOptions
    {
        Name = "msmr",
        LocalEndpoints = [Self],
        MapServer = new MapServerOptions { Sites = [new SiteConfig("s", Key, [E("[0]10.0.0.0/8")]) { AcceptMoreSpecifics = true }] },
        MapResolver = new MapResolverOptions(),
    }, new StaticMappingSystem([Self], [Self]), new Random(3));

    /// <summary>10.1.1.1 with mask-len 33: what the encoder writes as given (EidPrefix does not check), the decoder refuses.</summary>
    private static EidPrefix Slash33 => new(IpAddress.Parse("10.1.1.1"), 33);

    [Fact]
    public void A_keyed_map_register_with_an_ipv4_slash_33_is_malformed_and_not_stored()
    {
        var node = MsMr();
        var bytes = Register(7, AuthAlgorithm.HmacSha256_128, new MappingRecord(Slash33, [Loc("192.0.2.1")], 3)).ToSignedBytes(Encoding.UTF8.GetBytes(Key));
        var actions = node.Handle(Packet(bytes, "192.0.2.1:4342"), T0);
        Assert.Empty(Sends(actions));
        Assert.Equal(1, node.Counters.Drops(DropReason.Malformed));
        Assert.Equal(1, node.Counters.Malformed(WireError.BadValue));
        Assert.Empty(node.MapServer!.Registrations(T0));
    }

    [Fact]
    public void An_ecm_map_request_for_an_ipv4_slash_33_is_malformed_and_gets_no_negative_reply()
    {
        var node = MsMr();
        var request = new MapRequest { Nonce = 9, ItrRlocs = [IpAddress.Parse("192.0.2.9")], Records = [Slash33] };
        var actions = node.Handle(Packet(Ecm(request, "192.0.2.9", forMs: true), "192.0.2.9:4342"), T0);
        Assert.Empty(Sends(actions));
        Assert.Equal(1, node.Counters.Drops(DropReason.Malformed));
        Assert.Equal(1, node.Counters.Malformed(WireError.BadValue));
        Assert.Equal(0, node.Counters.Events(ControlEvent.NegativeMapReplySent));
    }
}
