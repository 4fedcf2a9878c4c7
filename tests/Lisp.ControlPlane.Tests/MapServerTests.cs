using System.Text;
using Lisp.ControlPlane;
using Lisp.Wire;
using static Lisp.ControlPlane.Tests.H;

namespace Lisp.ControlPlane.Tests;

public class MapServerTests
{
    private const string Key = "site-key";
    private static readonly byte[] KeyBytes = Encoding.UTF8.GetBytes(Key);

    private static MapServer Server(bool moreSpecifics = false, TimeSpan? timeout = null, IReadOnlyList<AuthAlgorithm>? algs = null, params string[] prefixes)
    {
        var site = new SiteConfig("site1", Key, prefixes.Select(E).ToList()) { AcceptMoreSpecifics = moreSpecifics };
        if (algs is not null) site = site with { AllowedAlgorithms = algs };
        return new MapServer(new MapServerOptions { Sites = [site], RegistrationTimeout = timeout ?? TimeSpan.FromSeconds(180) });
    }

    private static IReadOnlyList<ControlAction> Send(MapServer ms, MapRegister reg, string key = Key, string from = "10.0.0.2:4342", DateTimeOffset? now = null)
    {
        var bytes = reg.ToSignedBytes(Encoding.UTF8.GetBytes(key));
        var decoded = Decode<MapRegister>(bytes);
        return ms.HandleMapRegister(decoded, Packet(bytes, from), now ?? T0);
    }

    [Theory]
    [InlineData(AuthAlgorithm.HmacSha1_96)]
    [InlineData(AuthAlgorithm.HmacSha256_128)]
    public void Accepts_authenticated_register_and_notifies_signed_with_site_key(AuthAlgorithm alg)
    {
        var ms = Server(false, null, null, "[0]10.1.0.0/16");
        var reg = Register(0x1122334455667788, alg, Rec("[0]10.1.0.0/16", "192.0.2.1"));
        var actions = Send(ms, reg);

        var regs = ms.Registrations(T0);
        var r = Assert.Single(regs);
        Assert.Equal("[0]10.1.0.0/16", r.Eid.ToString());
        Assert.Equal(Ep("10.0.0.2:4342"), r.Registerer);
        Assert.Equal(T0, r.FirstRegistered);
        Assert.Equal(alg, r.Algorithm);
        Assert.Equal("192.0.2.1", Assert.Single(r.Rlocs).Locator.ToText());
        Assert.Equal(1, ms.Counters.Events(ControlEvent.RegistrationAccepted));
        Assert.Contains(Logs(actions), l => l.Event == "registration-accepted");

        var send = Assert.Single(Sends(actions));
        Assert.Equal(Ep("10.0.0.2:4342"), send.To);
        Assert.Equal(Ep("10.0.0.1:4342"), send.From);
        var notify = Decode<MapNotify>(send.Payload);
        Assert.False(notify.IsAck);
        Assert.Equal(reg.Nonce, notify.Nonce);
        Assert.Equal(alg, notify.Algorithm);
        Assert.Equal(reg.Records, notify.Records);
        Assert.True(MessageAuthentication.Verify(send.Payload, KeyBytes));
        Assert.False(MessageAuthentication.Verify(send.Payload, Encoding.UTF8.GetBytes("other")));
    }

    [Fact]
    public void Past_the_registration_cap_records_are_refused_counted_and_left_out_of_the_map_notify()
    {
        var site = new SiteConfig("site1", Key, [E("[0]10.0.0.0/8")]) { AcceptMoreSpecifics = true };
        var ms = new MapServer(new MapServerOptions { Sites = [site], MaxRegistrations = 2 });
        // One register with three records at a cap of two: the third is refused, the Notify confirms only two.
        var reg = Register(0x51, AuthAlgorithm.HmacSha256_128,
            Rec("[0]10.1.0.0/16", "192.0.2.1"), Rec("[0]10.2.0.0/16", "192.0.2.1"), Rec("[0]10.3.0.0/16", "192.0.2.1"));
        var actions = Send(ms, reg);
        Assert.Equal(["[0]10.1.0.0/16", "[0]10.2.0.0/16"], ms.Registrations(T0).Select(r => r.Eid.ToString()).Order().ToArray());
        Assert.Equal(1, ms.Counters.Drops(DropReason.RegistrationTableFull));
        Assert.Contains(Logs(actions), l => l.Event == "registration-refused" && l.Message.Contains("[0]10.3.0.0/16", StringComparison.Ordinal));
        var notify = Decode<MapNotify>(Assert.Single(Sends(actions)).Payload);
        Assert.Equal(["[0]10.1.0.0/16", "[0]10.2.0.0/16"], notify.Records.Select(r => r.Eid.ToString()).ToArray());
        Assert.True(MessageAuthentication.Verify(Assert.Single(Sends(actions)).Payload, KeyBytes));

        // A register whose only record is refused gets no Map-Notify at all and is not counted as accepted.
        long acceptedBefore = ms.Counters.Events(ControlEvent.RegistrationAccepted);
        var refused = Send(ms, Register(0x52, AuthAlgorithm.HmacSha256_128, Rec("[0]10.4.0.0/16", "192.0.2.1")));
        Assert.Empty(Sends(refused));
        Assert.Equal(acceptedBefore, ms.Counters.Events(ControlEvent.RegistrationAccepted));
        Assert.Equal(2, ms.Counters.Drops(DropReason.RegistrationTableFull));
        Assert.Equal(2, ms.Registrations(T0).Count);

        // Refreshing a registration already held is not refused at the cap.
        var refresh = Send(ms, Register(0x53, AuthAlgorithm.HmacSha256_128, Rec("[0]10.1.0.0/16", "192.0.2.1")));
        Assert.Equal("[0]10.1.0.0/16", Assert.Single(Decode<MapNotify>(Assert.Single(Sends(refresh)).Payload).Records).Eid.ToString());
        Assert.Equal(2, ms.Counters.Drops(DropReason.RegistrationTableFull));
    }

    [Fact]
    public void No_map_notify_without_M_bit()
    {
        var ms = Server(false, null, null, "[0]10.1.0.0/16");
        var reg = Register(1, AuthAlgorithm.HmacSha256_128, Rec("[0]10.1.0.0/16", "192.0.2.1")) with { WantMapNotify = false };
        var actions = Send(ms, reg);
        Assert.Empty(Sends(actions));
        Assert.Single(ms.Registrations(T0));
    }

    [Theory]
    [InlineData(AuthAlgorithm.HmacSha1_96)]
    [InlineData(AuthAlgorithm.HmacSha256_128)]
    public void Wrong_key_is_rejected_without_map_notify(AuthAlgorithm alg)
    {
        var ms = Server(false, null, null, "[0]10.1.0.0/16");
        var actions = Send(ms, Register(7, alg, Rec("[0]10.1.0.0/16", "192.0.2.1")), key: "wrong-key");
        Assert.Empty(Sends(actions));
        Assert.Empty(ms.Registrations(T0));
        Assert.Equal(1, ms.Counters.Drops(DropReason.AuthFailure));
        var log = Assert.Single(Logs(actions));
        Assert.Equal("registration-rejected", log.Event);
        Assert.Contains("auth-failure", log.Message);
    }

    [Fact]
    public void Unauthenticated_register_with_algorithm_none_is_rejected()
    {
        var ms = Server(false, null, null, "[0]10.1.0.0/16");
        var actions = Send(ms, Register(7, AuthAlgorithm.None, Rec("[0]10.1.0.0/16", "192.0.2.1")));
        Assert.Empty(Sends(actions));
        Assert.Empty(ms.Registrations(T0));
        Assert.Equal(1, ms.Counters.Drops(DropReason.AuthFailure));
    }

    [Fact]
    public void Tampered_register_fails_authentication()
    {
        var ms = Server(false, null, null, "[0]10.1.0.0/16");
        var bytes = Register(7, AuthAlgorithm.HmacSha256_128, Rec("[0]10.1.0.0/16", "192.0.2.1")).ToSignedBytes(KeyBytes);
        bytes[^1] ^= 1; // flip a bit of the RLOC
        var actions = ms.HandleMapRegister(Decode<MapRegister>(bytes), Packet(bytes, "10.0.0.2:4342"), T0);
        Assert.Empty(Sends(actions));
        Assert.Equal(1, ms.Counters.Drops(DropReason.AuthFailure));
    }

    [Fact]
    public void Algorithm_not_allowed_by_site_is_rejected()
    {
        var ms = Server(false, null, [AuthAlgorithm.HmacSha256_128], "[0]10.1.0.0/16");
        var actions = Send(ms, Register(7, AuthAlgorithm.HmacSha1_96, Rec("[0]10.1.0.0/16", "192.0.2.1")));
        Assert.Empty(Sends(actions));
        Assert.Equal(1, ms.Counters.Drops(DropReason.AlgorithmNotAllowed));
    }

    [Fact]
    public void Unknown_site_and_not_covered_are_rejected()
    {
        var ms = Server(false, null, null, "[0]10.1.0.0/16");
        // No site covers 10.9.0.0/16 at all.
        Assert.Empty(Sends(Send(ms, Register(1, AuthAlgorithm.HmacSha256_128, Rec("[0]10.9.0.0/16", "192.0.2.1")))));
        Assert.Equal(1, ms.Counters.Drops(DropReason.UnknownSite));
        // More-specific when the site does not accept more-specifics.
        Assert.Empty(Sends(Send(ms, Register(2, AuthAlgorithm.HmacSha256_128, Rec("[0]10.1.0.0/16", "192.0.2.1"), Rec("[0]10.1.1.0/24", "192.0.2.1")))));
        Assert.Equal(1, ms.Counters.Drops(DropReason.NotCovered));
        // Other instance-id.
        Assert.Empty(Sends(Send(ms, Register(3, AuthAlgorithm.HmacSha256_128, Rec("[5]10.1.0.0/16", "192.0.2.1")))));
        Assert.Equal(2, ms.Counters.Drops(DropReason.UnknownSite));
        Assert.Empty(ms.Registrations(T0));
    }

    [Fact]
    public void Accept_more_specifics()
    {
        var ms = Server(true, null, null, "[0]10.0.0.0/8", "[0]2001:db8::/32");
        var actions = Send(ms, Register(1, AuthAlgorithm.HmacSha256_128, Rec("[0]10.1.2.0/24", "192.0.2.1"), Rec("[0]2001:db8:1::/48", "192.0.2.1")));
        Assert.Single(Sends(actions));
        Assert.Equal(2, ms.Registrations(T0).Count);
        // Still refuses what lies outside.
        Assert.Empty(Sends(Send(ms, Register(2, AuthAlgorithm.HmacSha256_128, Rec("[0]10.1.2.0/24", "192.0.2.1"), Rec("[0]11.0.0.0/24", "192.0.2.1")))));
        Assert.Equal(1, ms.Counters.Drops(DropReason.NotCovered));
    }

    [Fact]
    public void Registration_expires_after_three_register_intervals()
    {
        var ms = Server(false, null, null, "[0]10.1.0.0/16");
        Send(ms, Register(1, AuthAlgorithm.HmacSha256_128, Rec("[0]10.1.0.0/16", "192.0.2.1")) with { WantMapNotify = false });
        Assert.Equal(T0.AddSeconds(180), ms.NextDeadline);
        Assert.Empty(ms.Tick(T0.AddSeconds(179)));
        Assert.Single(ms.Registrations(T0.AddSeconds(179)));
        var actions = ms.Tick(T0.AddSeconds(180));
        Assert.Contains(Logs(actions), l => l.Event == "registration-timeout");
        Assert.Empty(ms.Registrations(T0.AddSeconds(180)));
        Assert.Equal(1, ms.Counters.Events(ControlEvent.RegistrationExpired));
        // Its tombstone (replay protection) stays one lifetime more, then nothing is left to do.
        Assert.Equal(T0.AddSeconds(360), ms.NextDeadline);
        Assert.Empty(ms.Tick(T0.AddSeconds(360)));
        Assert.Null(ms.NextDeadline);
    }

    [Fact]
    public void Refresh_extends_soft_state_and_keeps_first_registered()
    {
        var ms = Server(false, null, null, "[0]10.1.0.0/16");
        var reg = Register(1, AuthAlgorithm.HmacSha256_128, Rec("[0]10.1.0.0/16", "192.0.2.1")) with { WantMapNotify = false };
        Send(ms, reg);
        Send(ms, reg with { Nonce = 2 }, now: T0.AddSeconds(60));
        ms.Tick(T0.AddSeconds(200));
        var r = Assert.Single(ms.Registrations(T0.AddSeconds(200)));
        Assert.Equal(T0, r.FirstRegistered);
        Assert.Equal(T0.AddSeconds(60), r.LastRegistered);
        Assert.Equal(T0.AddSeconds(240), r.ExpiresAt);
    }

    [Fact]
    public void T_bit_uses_record_ttl_as_timeout_and_ttl_zero_withdraws()
    {
        var ms = Server(false, null, null, "[0]10.1.0.0/16");
        var rec = Rec("[0]10.1.0.0/16", "192.0.2.1") with { TtlRaw = 10 }; // 10 minutes
        Send(ms, Register(1, AuthAlgorithm.HmacSha256_128, rec) with { UseTtlForTimeout = true });
        var r = Assert.Single(ms.Registrations(T0));
        Assert.Equal(T0.AddMinutes(10), r.ExpiresAt);
        Assert.Equal("p-s-i-T-r-m-N", r.FlagsText);
        Send(ms, Register(2, AuthAlgorithm.HmacSha256_128, rec with { TtlRaw = 0 }));
        Assert.Empty(ms.Registrations(T0));
    }

    [Fact]
    public void A_map_notify_answering_a_map_register_is_sent_once_and_awaits_no_ack()
    {
        // RFC 9301 section 5.7: the solicited Map-Notify is the Map-Register's acknowledgement; only an unsolicited
        // Map-Notify is acknowledged. Nothing is retransmitted, and an Ack (an older ETR's) is a counted stale nonce.
        var ms = Server(false, null, null, "[0]10.1.0.0/16");
        var reg = Register(42, AuthAlgorithm.HmacSha256_128, Rec("[0]10.1.0.0/16", "192.0.2.1"));
        Assert.Single(Sends(Send(ms, reg)));
        Assert.Equal(T0.AddSeconds(180), ms.NextDeadline);   // the registration's expiry, no retransmission timer
        Assert.Empty(Sends(ms.Tick(T0.AddSeconds(2))));
        Assert.Empty(Sends(ms.Tick(T0.AddSeconds(10))));
        var ack = new MapNotify { IsAck = true, Nonce = 42, Records = reg.Records }.ToSignedBytes(KeyBytes);
        Assert.Empty(Sends(ms.HandleMapNotifyAck(Decode<MapNotify>(ack), Packet(ack, "10.0.0.2:4342"), T0.AddSeconds(3))));
        Assert.Equal(1, ms.Counters.Drops(DropReason.StaleNonce));
    }

    [Fact]
    public void Xtr_id_and_flags_are_kept_and_site_table_lists_configured_and_more_specific()
    {
        var ms = Server(true, null, null, "[0]10.0.0.0/8", "[0]'dino'");
        var xtr = Enumerable.Range(1, 16).Select(i => (byte)i).ToArray();
        var reg = Register(9, AuthAlgorithm.HmacSha1_96, Rec("[0]10.1.0.0/16", "192.0.2.1")) with { ProxyReply = true, XtrId = xtr, SiteId = 77 };
        Send(ms, reg, from: "10.0.0.9:4342");
        var r = Assert.Single(ms.Registrations(T0));
        Assert.Equal(xtr, r.XtrId);
        Assert.Equal(77ul, r.SiteId);
        Assert.Equal("P-s-I-t-r-m-N", r.FlagsText);
        var table = ms.SiteTable(T0);
        Assert.Equal(3, table.Count);
        Assert.False(table[0].Registered);
        Assert.Equal("[0]10.0.0.0/8", table[0].Eid.ToString());
        Assert.Equal("[0]'dino'", table[1].Eid.ToString());
        Assert.False(table[1].Registered);
        Assert.True(table[2].Registered);
        Assert.False(table[2].Configured);
        Assert.Equal(Ep("10.0.0.9:4342"), table[2].LastRegisterer);
        Assert.Contains("[0]10.1.0.0/16", MapServer.Format(table));
    }

    [Fact]
    public void Empty_register_is_counted()
    {
        var ms = Server(false, null, null, "[0]10.1.0.0/16");
        Assert.Empty(Sends(Send(ms, Register(1, AuthAlgorithm.HmacSha256_128))));
        Assert.Equal(1, ms.Counters.Drops(DropReason.NoRecords));
    }

    // ------------------------------------------------------------ Map-Request handling

    [Fact]
    public void Proxy_reply_when_registered_with_P_bit()
    {
        var ms = Server(false, null, null, "[0]10.1.0.0/16");
        Send(ms, Register(1, AuthAlgorithm.HmacSha256_128, Rec("[0]10.1.0.0/16", "192.0.2.1")) with { ProxyReply = true });
        var req = H.Request(0xabc, "[0]10.1.2.3/32", "192.0.2.99");
        var ecmBytes = H.Ecm(req, "192.0.2.99", port: 5000);
        var ecm = Decode<EncapsulatedControlMessage>(ecmBytes);
        var actions = ms.HandleMapRequest(ecm, (MapRequest)ecm.Message, Packet(ecmBytes, "192.0.2.99:4342"), T0);
        var send = Assert.Single(Sends(actions));
        Assert.Equal(Ep("192.0.2.99:5000"), send.To);
        var reply = Decode<MapReply>(send.Payload);
        Assert.Equal(0xabcul, reply.Nonce);
        var rec = Assert.Single(reply.Records);
        Assert.Equal("[0]10.1.0.0/16", rec.Eid.ToString());
        Assert.False(rec.Authoritative);
        Assert.Equal("192.0.2.1", Assert.Single(rec.Locators).Locator.ToText());
    }

    [Fact]
    public void Forwards_to_registered_etr_without_P_bit()
    {
        var ms = Server(false, null, null, "[0]10.1.0.0/16");
        Send(ms, Register(1, AuthAlgorithm.HmacSha256_128, Rec("[0]10.1.0.0/16", "192.0.2.1")), from: "10.0.0.2:4342");
        var req = H.Request(0xabc, "[0]10.1.2.3/32", "192.0.2.99");
        var ecmBytes = H.Ecm(req, "192.0.2.99", forMs: true);
        var ecm = Decode<EncapsulatedControlMessage>(ecmBytes);
        var send = Assert.Single(Sends(ms.HandleMapRequest(ecm, (MapRequest)ecm.Message, Packet(ecmBytes, "10.0.0.5:4342"), T0)));
        Assert.Equal(Ep("192.0.2.1:4342"), send.To);   // the registered RLOC on the control port, not the register's source
        var fwd = Decode<EncapsulatedControlMessage>(send.Payload);
        Assert.True(fwd.ForEtr);
        Assert.False(fwd.ForMapServer);
        Assert.Equal(req.ToBytes(), fwd.Message.ToBytes());
        Assert.Equal(ecm.Inner, fwd.Inner);
        Assert.Equal(1, ms.Counters.Events(ControlEvent.MapRequestForwarded));
    }

    [Fact]
    public void Forwarding_goes_to_a_registered_rloc_by_priority_and_weight_never_to_the_registers_source_port()
    {
        var ms = Server(false, null, null, "[0]10.1.0.0/16");
        // Registered from an ephemeral port of another address (as lispers.net's ETR does); RLOCs: .1 priority 1
        // weight 75, .2 priority 1 weight 25, .3 priority 1 weight 0 (no share beside non-zero weights), .4 priority 2
        // (only if the first two go), .5 unreachable, .6 priority 255 (never).
        var rec = new MappingRecord(E("[0]10.1.0.0/16"),
        [
            Loc("192.0.2.1", 1, 75), Loc("192.0.2.2", 1, 25), Loc("192.0.2.3", 1, 0), Loc("192.0.2.4", 2, 100),
            Loc("192.0.2.5", 1, 100) with { Reachable = false }, Loc("192.0.2.6", 255, 100),
        ], 3);
        Send(ms, Register(1, AuthAlgorithm.HmacSha256_128, rec), from: "127.0.0.1:51234");
        var counts = new Dictionary<string, int>();
        for (ulong nonce = 1; nonce <= 400; nonce++)
        {
            var req = H.Request(nonce, "[0]10.1.2.3/32", "192.0.2.99");
            var bytes = H.Ecm(req, "192.0.2.99", forMs: true);
            var ecm = Decode<EncapsulatedControlMessage>(bytes);
            var send = Assert.Single(Sends(ms.HandleMapRequest(ecm, (MapRequest)ecm.Message, Packet(bytes, "10.0.0.5:4342"), T0)));
            Assert.Equal(4342, send.To.Port);
            counts[send.To.Address.ToString()] = counts.GetValueOrDefault(send.To.Address.ToString()) + 1;
        }
        // Nonces 1..400 modulo the total weight 100: exactly 300 to .1 and 100 to .2.
        Assert.Equal(new Dictionary<string, int> { ["192.0.2.1"] = 300, ["192.0.2.2"] = 100 }, counts);
    }

    [Fact]
    public void Forwarding_falls_back_to_the_registering_address_on_the_control_port_when_no_rloc_is_usable()
    {
        var ms = Server(false, null, null, "[0]10.1.0.0/16");
        var rec = new MappingRecord(E("[0]10.1.0.0/16"), [Loc("192.0.2.6", 255, 100)], 3);
        Send(ms, Register(1, AuthAlgorithm.HmacSha256_128, rec), from: "10.0.0.2:40000");
        var req = H.Request(7, "[0]10.1.2.3/32", "192.0.2.99");
        var bytes = H.Ecm(req, "192.0.2.99", forMs: true);
        var ecm = Decode<EncapsulatedControlMessage>(bytes);
        var send = Assert.Single(Sends(ms.HandleMapRequest(ecm, (MapRequest)ecm.Message, Packet(bytes, "10.0.0.5:4342"), T0)));
        Assert.Equal(Ep("10.0.0.2:4342"), send.To);
    }

    [Fact]
    public void Expired_registration_gets_negative_reply()
    {
        var ms = Server(false, null, null, "[0]10.1.0.0/16");
        Send(ms, Register(1, AuthAlgorithm.HmacSha256_128, Rec("[0]10.1.0.0/16", "192.0.2.1")) with { ProxyReply = true });
        var req = H.Request(5, "[0]10.1.2.3/32", "192.0.2.99");
        var ecmBytes = H.Ecm(req, "192.0.2.99");
        var ecm = Decode<EncapsulatedControlMessage>(ecmBytes);
        var send = Assert.Single(Sends(ms.HandleMapRequest(ecm, req, Packet(ecmBytes, "192.0.2.99:4342"), T0.AddSeconds(181))));
        var rec = Assert.Single(Decode<MapReply>(send.Payload).Records);
        Assert.True(rec.IsNegative);
        Assert.Equal("[0]10.1.0.0/16", rec.Eid.ToString()); // the configured site prefix bounds it
        Assert.Equal(TimeSpan.FromMinutes(1), rec.Ttl);
    }
}
