using Lisp.Wire;

namespace Lisp.Appliance.Cli;

/// <summary>`lisp-decent demo`: decodes the seed's Map-Requests (embedded) and prints each EID.</summary>
public static class DemoCommand
{
    public const string Help = """
        Usage: lisp-decent demo

        Decodes the 9 Map-Request packets of the seed's pull-based LISP-Decent demo (embedded in the binary)
        and prints, per packet, the map-resolver it went to and the EID it asked for.
        """;

    /// <summary>Seed ITR log packets: (map-resolver, hex of the ECM). Same bytes as tests/vectors/seed-map-requests.txt.</summary>
    internal static readonly (string MapResolver, string Hex)[] SeedPackets =
    [
        ("4.4.4.4", "800000004500004e0000000080114699f002020201010101e9f510f6003a0000100001018e090d5488990ab90001f00202020001ac1100070002fe0000000000000000000002000200020020000101010101"),
        ("1.1.1.1", "800000004500004e0000000080114497f002020202020202e9f510f6003a000010000101c9a7dd71aac2a3cc0001f00202020001ac1100070002fe0000000000000000000002000200020020000102020202"),
        ("7.7.7.7", "800000004500004e0000000080114295f002020203030303e9f510f6003a000010000101a686b8078323e29e0001f00202020001ac1100070002fe0000000000000000000002000200020020000103030303"),
        ("2.2.2.2", "800000004500004e0000000080114093f002020204040404e9f510f6003a000010000101aa2de2e282e346db0001f00202020001ac1100070002fe0000000000000000000002000200020020000104040404"),
        ("6.6.6.6", "800000004500004e000000008011f042f00202022c2c2c2ce9f510f6003a000010000101f38c5956793007c90001f00202020001ac1100070002fe000000000000000000000200020002002000012c2c2c2c"),
        ("5.5.5.5", "800000004500004e000000008011c798f002020280010101e9f510f6003a000010000101b0e4ff28d700b86c0001f00202020001ac1100070002fe0000000000000000000002000200020020000180010101"),
        ("6.6.6.6", "800000006000000000521180fe00000000000000000000020002000220010000000000000000000000000001e9f510f60052000010000101a61f661088e7992d0002fe0000000000000000000002000200020001ac1100070002fe0000000000000000000002000200020080000220010000000000000000000000000001"),
        ("8.8.8.8", "800000006000000000661180fe000000000000000000000200020002ff0200000000000000000001ff000002e9f510f6006600001000010163f676edb3be841700000001ac1100070002fe0000000000000000000002000200020080400300000900002c000000000000000080800002fe0000000000000000000002000200020002ff0200000000000000000001ff000002"),
        ("1.1.1.1", "800000006000000000521180fe000000000000000000000200020002dfdf0000000000000000000000000002e9f510f60052000010000101827db308c22dcfff0002fe0000000000000000000002000200020001ac1100070002fe00000000000000000000020002000200800002dfdf0000000000000000000000000002"),
    ];

    public static int Run(IReadOnlyList<string> args, TextWriter stdout, TextWriter stderr)
    {
        var cl = CommandLine.Parse(args, [], []);
        if (cl.Has("help"))
        {
            stdout.WriteLine(Help);
            return 0;
        }
        if (cl.Error is not null || cl.Positional.Count > 0)
        {
            stderr.WriteLine($"demo: {cl.Error ?? "takes no arguments"} (see lisp-decent demo --help)");
            return 2;
        }
        stdout.WriteLine("Seed pull-demo Map-Requests (ECM -> Map-Request), decoded:");
        int bad = 0;
        foreach (var (mr, hex) in SeedPackets)
        {
            var st = ControlMessage.TryDecode(Convert.FromHexString(hex), out var msg);
            if (msg is EncapsulatedControlMessage { Message: MapRequest rq } ecm)
            {
                stdout.WriteLine($"  to map-resolver {mr,-8} inner {ecm.Inner.Source} -> {ecm.Inner.Destination}  nonce 0x{rq.Nonce:x16}  EID {string.Join(", ", rq.Records)}");
            }
            else
            {
                bad++;
                stdout.WriteLine($"  to map-resolver {mr,-8} malformed: {st}");
            }
        }
        return bad == 0 ? 0 : 1;
    }
}
