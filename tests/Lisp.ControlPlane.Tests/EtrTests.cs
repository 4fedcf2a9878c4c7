using System.Net;
using System.Text;
using Lisp.ControlPlane;
using Lisp.Wire;
using static Lisp.ControlPlane.Tests.H;

namespace Lisp.ControlPlane.Tests;

public class EtrTests
{
    private const string Key = "etr-key";
    private static readonly byte[] KeyBytes = Encoding.UTF8.GetBytes(Key);
    private static readonly IPEndPoint Ms1 = Ep("1.1.1.1:4342"), Ms2 = Ep("2.2.2.2:4342"), Ms3 = Ep("3.3.3.3:4342");

    private static DatabaseMapping Db(string eid, params string[] rlocs) => new(E(eid), rlocs.Select(r => Loc(r)).ToList());

    private static Etr Make(IMappingSystem? ms = null, AuthAlgorithm alg = AuthAlgorithm.HmacSha256_128, params DatabaseMapping[] db) =>
        new(new EtrOptions { Key = Key, Algorithm = alg, Database = db.Length > 0 ? db : [Db("[0]10.1.0.0/16", "192.0.2.1")] },
            ms ?? new StaticMappingSystem([Ms1], [Ms1]), new Random(1));

    private static (MapRegister Reg, byte[] Bytes, IPEndPoint To) FirstRegister(IReadOnlyList<ControlAction> actions)
    {
        var s = Sends(actions)[0];
        return (Decode<MapRegister>(s.Payload), s.Payload, s.To);
    }

    [Theory]
    [InlineData(AuthAlgorithm.HmacSha1_96)]
    [InlineData(AuthAlgorithm.HmacSha256_128)]
    public void Registers_at_start_signed_with_defaults(AuthAlgorithm alg)
    {
        var etr = Make(alg: alg);
        Assert.Equal(DateTimeOffset.MinValue, etr.NextDeadline);
        var actions = etr.Tick(T0);
        var send = Assert.Single(Sends(actions));
        Assert.Equal(Ms1, send.To);
        var reg = Decode<MapRegister>(send.Payload);
        Assert.True(MessageAuthentication.Verify(send.Payload, KeyBytes));
        Assert.Equal(alg, reg.Algorithm);
        Assert.Equal(0, reg.KeyId);
        Assert.Equal(MessageAuthentication.FullLength(alg), reg.AuthData!.Length);
        Assert.True(reg.WantMapNotify);
        Assert.False(reg.ProxyReply);
        Assert.NotEqual(0ul, reg.Nonce);
        var rec = Assert.Single(reg.Records);
        Assert.Equal(TimeSpan.FromMinutes(3), rec.Ttl);
        Assert.Equal("[0]10.1.0.0/16", rec.Eid.ToString());
        Assert.Equal(1, etr.Counters.Events(ControlEvent.MapRegisterSent));
    }

    [Fact]
    public void Registers_to_every_map_server_grouping_records_per_server()
    {
        var system = new FuncMappingSystem(
            e => e.ToString().Contains("10.1") ? [Ms1, Ms2] : [Ms2, Ms3],
            _ => [Ms1]);
        var etr = Make(system, AuthAlgorithm.HmacSha256_128, Db("[0]10.1.0.0/16", "192.0.2.1"), Db("[0]'dino'", "192.0.2.1"));
        var sends = Sends(etr.Tick(T0));
        Assert.Equal(3, sends.Count);
        var byServer = sends.ToDictionary(s => s.To, s => Decode<MapRegister>(s.Payload).Records.Select(r => r.Eid.ToString()).ToList());
        Assert.Equal(["[0]10.1.0.0/16"], byServer[Ms1]);
        Assert.Equal(["[0]10.1.0.0/16", "[0]'dino'"], byServer[Ms2]);
        Assert.Equal(["[0]'dino'"], byServer[Ms3]);
        Assert.Equal(3, sends.Select(s => Decode<MapRegister>(s.Payload).Nonce).Distinct().Count());
    }

    [Fact]
    public void Periodic_registration_with_jitter()
    {
        var etr = Make();
        etr.Tick(T0);
        var next = etr.NextDeadline!.Value;
        Assert.InRange(next, T0.AddSeconds(54), T0.AddSeconds(66));
        Assert.Empty(etr.Tick(next.AddMilliseconds(-1)));
        Assert.Single(Sends(etr.Tick(next)));
        Assert.InRange(etr.NextDeadline!.Value, next.AddSeconds(54), next.AddSeconds(66));
    }

    [Fact]
    public void Retries_soon_when_mapping_system_has_no_answer_yet()
    {
        var etr = Make(new StaticMappingSystem([], []));
        var actions = etr.Tick(T0);
        Assert.Empty(Sends(actions));
        Assert.Contains(Logs(actions), l => l.Event == "no-map-server");
        Assert.Equal(T0.AddSeconds(5), etr.NextDeadline);
    }

    [Fact]
    public void Many_records_are_split_over_several_registers()
    {
        var db = Enumerable.Range(0, 200).Select(i => Db($"[0]10.{i}.0.0/16", "192.0.2.1")).ToArray();
        var etr = Make(null, AuthAlgorithm.HmacSha256_128, db);
        var sends = Sends(etr.Tick(T0));
        Assert.True(sends.Count > 1);
        Assert.All(sends, s => Assert.True(s.Payload.Length <= 1200));
        Assert.Equal(200, sends.Sum(s => Decode<MapRegister>(s.Payload).Records.Count));
    }

    private static byte[] NotifyFor(MapRegister reg, string key = Key, ulong? nonce = null, IReadOnlyList<MappingRecord>? records = null) =>
        new MapNotify { Nonce = nonce ?? reg.Nonce, Algorithm = reg.Algorithm, Records = records ?? reg.Records }.ToSignedBytes(Encoding.UTF8.GetBytes(key));

    [Fact]
    public void Accepts_the_map_notify_answering_its_register_without_an_ack()
    {
        // RFC 9301 section 5.7: the Map-Notify answering a Map-Register (M bit) is the acknowledgement; no Ack back.
        var etr = Make();
        var (reg, _, _) = FirstRegister(etr.Tick(T0));
        var bytes = NotifyFor(reg);
        var actions = etr.HandleMapNotify(Decode<MapNotify>(bytes), Packet(bytes, "1.1.1.1:4342", "10.0.0.2:4342"), T0.AddSeconds(1));
        Assert.Empty(Sends(actions));
        Assert.Contains(Logs(actions), l => l.Event == "map-notify-accepted");
        Assert.Equal(T0.AddSeconds(1), Assert.Single(etr.RegistrationStates).LastNotified);
        Assert.Equal(1, etr.Counters.Events(ControlEvent.MapNotifyAccepted));
        // The same Map-Notify again (a map-server that retransmits) is neither acked nor counted as a new registration.
        Assert.Empty(Sends(etr.HandleMapNotify(Decode<MapNotify>(bytes), Packet(bytes, "1.1.1.1:4342"), T0.AddSeconds(2))));
        Assert.Equal(1, etr.Counters.Events(ControlEvent.MapNotifyAccepted));
        Assert.Equal(0, etr.Counters.Events(ControlEvent.MapNotifyAckSent));
    }

    [Fact]
    public void Acks_an_authenticated_unsolicited_map_notify_and_drops_a_forged_one()
    {
        var etr = Make();
        var (reg, _, _) = FirstRegister(etr.Tick(T0));
        // A nonce no Map-Register of ours used: a map-server telling us of a change.
        var bytes = NotifyFor(reg, nonce: reg.Nonce + 1);
        var actions = etr.HandleMapNotify(Decode<MapNotify>(bytes), Packet(bytes, "1.1.1.1:4342", "10.0.0.2:4342"), T0.AddSeconds(1));
        var ack = Assert.Single(Sends(actions));
        Assert.Equal(Ep("1.1.1.1:4342"), ack.To);
        var m = Decode<MapNotify>(ack.Payload);
        Assert.True(m.IsAck);
        Assert.Equal(reg.Nonce + 1, m.Nonce);
        Assert.True(MessageAuthentication.Verify(ack.Payload, KeyBytes));
        Assert.Equal(1, etr.Counters.Events(ControlEvent.MapNotifyUnsolicited));
        Assert.Contains(Logs(actions), l => l.Event == "map-notify-unsolicited");
        // Forged (wrong key): no Ack, counted.
        var forged = NotifyFor(reg, nonce: reg.Nonce + 2, key: "wrong");
        Assert.Empty(Sends(etr.HandleMapNotify(Decode<MapNotify>(forged), Packet(forged, "1.1.1.1:4342"), T0.AddSeconds(1))));
        Assert.Equal(1, etr.Counters.Drops(DropReason.AuthFailure));
    }

    [Fact]
    public void Rejects_map_notify_with_wrong_records_or_key()
    {
        var etr = Make(null, AuthAlgorithm.HmacSha256_128, Db("[0]10.1.0.0/16", "192.0.2.1"));
        var (reg, _, _) = FirstRegister(etr.Tick(T0));
        void Expect(byte[] bytes, DropReason reason)
        {
            long before = etr.Counters.Drops(reason);
            Assert.Empty(Sends(etr.HandleMapNotify(Decode<MapNotify>(bytes), Packet(bytes, "1.1.1.1:4342"), T0)));
            Assert.Equal(before + 1, etr.Counters.Drops(reason));
        }
        Expect(NotifyFor(reg, key: "wrong"), DropReason.AuthFailure);
        Expect(NotifyFor(reg, records: [Rec("[0]10.1.0.0/16", "203.0.113.66")]), DropReason.RecordMismatch);
        Expect(new MapNotify { Nonce = reg.Nonce, Algorithm = AuthAlgorithm.None, Records = reg.Records }.ToSignedBytes(KeyBytes), DropReason.AuthFailure);
        Assert.Null(Assert.Single(etr.RegistrationStates).LastNotified);
    }

    [Fact]
    public void Answers_plain_map_request_and_rloc_probe()
    {
        var etr = Make();
        var req = H.Request(0x77, "[0]10.1.2.3/32", "198.51.100.7") with { Probe = true };
        var bytes = req.ToBytes();
        var actions = etr.HandleMapRequest(req, null, Packet(bytes, "198.51.100.7:61000", "192.0.2.1:4342"), T0);
        var send = Assert.Single(Sends(actions));
        Assert.Equal(Ep("198.51.100.7:61000"), send.To);
        var reply = Decode<MapReply>(send.Payload);
        Assert.True(reply.Probe);
        Assert.Equal(0x77ul, reply.Nonce);
        var rec = Assert.Single(reply.Records);
        Assert.Equal("[0]10.1.0.0/16", rec.Eid.ToString());
        Assert.True(rec.Authoritative);
        Assert.Equal(TimeSpan.FromMinutes(1440), rec.Ttl);
        // Not ours.
        var other = H.Request(1, "[0]10.9.9.9/32", "198.51.100.7");
        Assert.Empty(Sends(etr.HandleMapRequest(other, null, Packet(other.ToBytes(), "198.51.100.7:4342"), T0)));
        Assert.Equal(1, etr.Counters.Drops(DropReason.NotOurEid));
    }

    [Fact]
    public void Answers_ecm_forwarded_request_to_itr_rloc_at_inner_port()
    {
        var etr = Make();
        // The first ITR-RLOC is IPv6 but the request arrived over IPv4: answer the IPv4 one.
        var req = H.Request(0x99, "[0]10.1.2.3/32", "2001:db8::7", "198.51.100.7");
        var ecmBytes = H.Ecm(req, "198.51.100.7", forEtr: true, port: 40000);
        var ecm = Decode<EncapsulatedControlMessage>(ecmBytes);
        var send = Assert.Single(Sends(etr.HandleMapRequest((MapRequest)ecm.Message, ecm, Packet(ecmBytes, "1.1.1.1:4342", "192.0.2.1:4342"), T0)));
        Assert.Equal(Ep("198.51.100.7:40000"), send.To);
        Assert.Equal(0x99ul, Decode<MapReply>(send.Payload).Nonce);
        Assert.False(Decode<MapReply>(send.Payload).Probe);
    }

    [Fact]
    public void Database_change_sends_smr_to_recent_requesters_and_reregisters()
    {
        var etr = Make();
        etr.Tick(T0);
        var req = H.Request(1, "[0]10.1.2.3/32", "198.51.100.7");
        etr.HandleMapRequest(req, null, Packet(req.ToBytes(), "198.51.100.7:4342"), T0);
        var req2 = H.Request(2, "[0]10.1.2.3/32", "198.51.100.8");
        etr.HandleMapRequest(req2, null, Packet(req2.ToBytes(), "198.51.100.8:4342"), T0.AddMinutes(-20)); // too old by the time of the change
        Assert.Equal(2, etr.RecentRequesters.Count);

        var actions = etr.UpdateDatabase([Db("[0]10.1.0.0/16", "192.0.2.2")], T0.AddSeconds(5));
        var sends = Sends(actions);
        var smr = sends.Where(s => s.To.Equals(Ep("198.51.100.7:4342"))).Select(s => Decode<MapRequest>(s.Payload)).Single();
        Assert.True(smr.Smr);
        Assert.Equal("[0]10.1.2.3/32", Assert.Single(smr.Records).ToString());
        Assert.DoesNotContain(sends, s => s.To.Equals(Ep("198.51.100.8:4342")));
        var reg = sends.Where(s => s.To.Equals(Ms1)).Select(s => Decode<MapRegister>(s.Payload)).Single();
        Assert.Equal("192.0.2.2", reg.Records[0].Locators[0].Locator.ToText());
        // No change, no SMR.
        Assert.Empty(etr.UpdateDatabase([Db("[0]10.1.0.0/16", "192.0.2.2")], T0.AddSeconds(6)));
    }
}

