using System.Security.Cryptography;
using System.Text;
using Lisp.ControlPlane;
using Lisp.Wire;
using static Lisp.ControlPlane.Tests.H;

namespace Lisp.ControlPlane.Tests;

/// <summary>
/// Issue 11 item 6: a Map-Notify echoes each record exactly as the Map-Register carried it. The peer here writes its
/// (S,G) EID in lispers.net's padded Multicast-Info LCAF layout (which we read but never write); re-encoding it in
/// the RFC 8060 layout would give the sender records it cannot match against what it sent.
/// </summary>
public class MapNotifyEchoTests
{
    private const string Key = "group-key";

    // lispers.net's padded Multicast-Info LCAF for ([0]fe00::2:2:2, ff02::1:ff00:2), 54 bytes, taken verbatim from the
    // seed's captured Map-Request (tests/vectors/seed-map-requests.txt, the ff02::1:ff00:2/128 line):
    // AFI 16387 | rsvd1 00 | flags 00 | type 9 | rsvd2 00 | length 0x002c (44) | 44 body bytes | 2 uncounted zero bytes.
    private const string PaddedSgLcaf =
        "4003" + "00" + "00" + "09" + "00" + "002c" +
        "000000000000000080800002fe0000000000000000000002000200020002ff0200000000000000000001ff000002";

    private static byte[] HandBuiltRegister()
    {
        var b = new List<byte>();
        b.AddRange(Convert.FromHexString("38" + "00" + "01" + "01"));     // type 3, P; reserved; M; 1 record
        b.AddRange(Convert.FromHexString("0102030405060708"));             // nonce
        b.AddRange(Convert.FromHexString("00" + "02" + "0020"));           // key-id 0, HMAC-SHA-256, 32 bytes
        b.AddRange(new byte[32]);                                          // authentication data (filled below)
        b.AddRange(Convert.FromHexString("00000003" + "01" + "80" + "0000" + "0000")); // TTL 3 min, 1 locator, mask-len 128, ACT/A, version
        b.AddRange(Convert.FromHexString(PaddedSgLcaf));                   // the EID, as the peer writes it
        b.AddRange(Convert.FromHexString("01" + "64" + "ff" + "00" + "0005" + "0001" + "ac110007")); // p1 w100 mp255 mw0, L+R, IPv4 172.17.0.7
        var bytes = b.ToArray();
        // HMAC-SHA-256 over the message with the authentication data zeroed (independent of the code under test).
        HMACSHA256.HashData(Encoding.UTF8.GetBytes(Key), bytes).CopyTo(bytes, 16);
        return bytes;
    }

    [Fact]
    public void The_map_notify_carries_the_registers_record_bytes_unchanged_and_verifies()
    {
        var register = HandBuiltRegister();
        var decoded = Decode<MapRegister>(register);
        Assert.True(((MulticastInfoAddress)decoded.Records[0].Eid.Address).ReceivedLispersPadding);
        var ms = new MapServer(new MapServerOptions { Sites = [new SiteConfig("group", Key, []) { AcceptAnyEid = true }] });
        var send = Assert.Single(Sends(ms.HandleMapRegister(decoded, Packet(register, "172.17.0.7:4342"), T0)));
        var notify = send.Payload;

        Assert.Equal(register.Length, notify.Length);
        Assert.Equal(Convert.FromHexString("40000001"), notify[..4]);                 // type 4, no I, 1 record
        Assert.Equal(register.AsSpan(4, 12).ToArray(), notify.AsSpan(4, 12).ToArray()); // nonce, key-id, algorithm, length
        Assert.Equal(register.AsSpan(48).ToArray(), notify.AsSpan(48).ToArray());      // the record, byte for byte
        // Its HMAC, computed independently over the Map-Notify with the field zeroed.
        var zeroed = (byte[])notify.Clone();
        Array.Clear(zeroed, 16, 32);
        Assert.Equal(HMACSHA256.HashData(Encoding.UTF8.GetBytes(Key), zeroed), notify.AsSpan(16, 32).ToArray());
        var back = Decode<MapNotify>(notify);
        Assert.Equal(decoded.Records, back.Records);
    }
}
