using Lisp.Wire;
using Xunit;

namespace Lisp.Wire.Tests;

/// <summary>
/// Issue 12, item 6: a mask-len longer than its address (IPv4 /33, IPv6 /129, MAC /49, E.164 /65, an Instance-ID
/// mask-len over 32, an (S,G) group /33) makes the message malformed (BadValue); it never reaches a table.
/// Hand-built vectors, every byte commented.
/// </summary>
public class MaskLengthTests
{
    /// <summary>Map-Register (no authentication), one record with the given mask-len and EID bytes (AFI first), no locators.</summary>
    private static byte[] Register(byte maskLen, params byte[] eid) =>
    [
        0x30, 0x00, 0x00, 0x01,                         // type 3, no flags; reserved; no M bit; record count 1
        0, 0, 0, 0, 0, 0, 0, 7,                         // nonce 7
        0x00, 0x00, 0x00, 0x00,                         // key-id 0, algorithm 0 (none), authentication data length 0
        0x00, 0x00, 0x00, 0x03,                         // record TTL 3 minutes
        0x00, maskLen, 0x00, 0x00,                      // locator count 0, EID mask-len, ACT 0 / A 0 / reserved
        0x00, 0x00,                                     // reserved, map-version 0
        .. eid,                                         // EID-Prefix-AFI and EID-Prefix
    ];

    /// <summary>ECM-less Map-Request asking for one EID-prefix with the given mask-len; ITR-RLOC 192.0.2.1.</summary>
    private static byte[] Request(byte maskLen, params byte[] eid) =>
    [
        0x10, 0x00, 0x00, 0x01,                         // type 1, no flags; no flags; IRC 0 (one ITR-RLOC); record count 1
        0, 0, 0, 0, 0, 0, 0, 9,                         // nonce 9
        0x00, 0x00,                                     // source EID AFI 0 (none)
        0x00, 0x01, 192, 0, 2, 1,                       // ITR-RLOC AFI 1: 192.0.2.1
        0x00, maskLen,                                  // record reserved, EID mask-len
        .. eid,                                         // EID-Prefix-AFI and EID-Prefix
    ];

    private static readonly byte[] V4 = [0x00, 0x01, 10, 1, 1, 1];                                   // AFI 1, 10.1.1.1
    private static readonly byte[] V6 = [0x00, 0x02, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]; // AFI 2, 2001:db8::1
    private static readonly byte[] Mac = [0x40, 0x05, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55];          // AFI 16389, 0011-2233-4455
    private static readonly byte[] E164 = [0x00, 0x08, 0, 0, 0x01, 0x22, 0x33, 0x44, 0x55, 0x66];    // AFI 8, +0001223344556
    /// <summary>Instance-ID LCAF, IID 5, IID mask-len <paramref name="iidMask"/>, around 10.1.1.1.</summary>
    private static byte[] Iid(byte iidMask) =>
    [
        0x40, 0x03,                                     // AFI 16387 (LCAF)
        0x00, 0x00,                                     // rsvd1, flags
        0x02, iidMask,                                  // LCAF type 2 (Instance-ID), rsvd2 = IID mask-len
        0x00, 0x0a,                                     // length 10: IID + AFI + IPv4
        0x00, 0x00, 0x00, 0x05,                         // Instance ID 5
        0x00, 0x01, 10, 1, 1, 1,                        // AFI 1, 10.1.1.1
    ];
    /// <summary>Multicast-Info LCAF (S,G) = (10.1.1.1/32, 224.1.1.1/<paramref name="groupMask"/>), IID 0.</summary>
    private static byte[] SourceGroup(byte groupMask) =>
    [
        0x40, 0x03,                                     // AFI 16387 (LCAF)
        0x00, 0x00,                                     // rsvd1, flags
        0x09, 0x00,                                     // LCAF type 9 (Multicast-Info), rsvd2 (R/L/J) 0
        0x00, 0x14,                                     // length 20: IID 4 + reserved 2 + masks 2 + two IPv4 AFI-addresses
        0x00, 0x00, 0x00, 0x00,                         // Instance ID 0
        0x00, 0x00,                                     // reserved
        32, groupMask,                                  // source mask-len 32, group mask-len
        0x00, 0x01, 10, 1, 1, 1,                        // source: AFI 1, 10.1.1.1
        0x00, 0x01, 224, 1, 1, 1,                       // group: AFI 1, 224.1.1.1
    ];

    public static TheoryData<string, byte[], bool> Cases() => new()
    {
        { "IPv4 /32", Register(32, V4), true },
        { "IPv4 /33", Register(33, V4), false },
        { "IPv4 /255", Register(255, V4), false },
        { "IPv6 /128", Register(128, V6), true },
        { "IPv6 /129", Register(129, V6), false },
        { "MAC /48", Register(48, Mac), true },
        { "MAC /49", Register(49, Mac), false },
        { "E.164 /64", Register(64, E164), true },
        { "E.164 /65", Register(65, E164), false },
        { "[5]10.1.1.1 /33 (mask of the inner IPv4)", Register(33, Iid(0)), false },
        { "[5]10.1.1.1 /32, IID mask-len 32", Register(32, Iid(32)), true },
        { "[5]10.1.1.1 /32, IID mask-len 33", Register(32, Iid(33)), false },
        { "(S,G) group /33", Register(32, SourceGroup(33)), false },
        { "(S,G) record /33", Register(33, SourceGroup(32)), false },
        { "(S,G) /32", Register(32, SourceGroup(32)), true },
        { "Map-Request IPv4 /32", Request(32, V4), true },
        { "Map-Request IPv4 /33", Request(33, V4), false },
        { "Map-Request IPv6 /200", Request(200, V6), false },
        { "Map-Request MAC /49", Request(49, Mac), false },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void A_mask_longer_than_its_address_is_malformed(string name, byte[] bytes, bool valid)
    {
        var status = ControlMessage.TryDecode(bytes, out var message);
        if (valid)
        {
            Assert.True(status.IsOk, $"{name}: {status}");
            Assert.NotNull(message);
            return;
        }
        Assert.False(status.IsOk, name);
        Assert.Equal(WireError.BadValue, status.Error);
        Assert.Contains("mask-len", status.Detail);
        Assert.Null(message);
    }

    [Fact]
    public void A_map_reply_record_with_a_bad_mask_is_malformed()
    {
        byte[] reply =
        [
            0x20, 0x00, 0x00, 0x01,                     // type 2 (Map-Reply), no flags; record count 1
            0, 0, 0, 0, 0, 0, 0, 1,                     // nonce 1
            0x00, 0x00, 0x00, 0x0f,                     // record TTL 15 minutes
            0x00, 33, 0x20, 0x00,                       // locator count 0, EID mask-len 33, ACT 1 (natively forward)
            0x00, 0x00,                                 // reserved, map-version 0
            0x00, 0x01, 10, 1, 1, 1,                    // AFI 1, 10.1.1.1  -> "10.1.1.1/33"
        ];
        var status = ControlMessage.TryDecode(reply, out _);
        Assert.Equal(WireError.BadValue, status.Error);
    }
}
