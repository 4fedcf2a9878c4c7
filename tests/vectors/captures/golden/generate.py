#!/usr/bin/env python3
"""Regenerates the golden captures of this folder with Wireshark's own tools (text2pcap, mergecap, editcap).

Frame bytes are assembled here by hand (python, independent of the project's code); the capture container
(pcap/pcapng headers, records, blocks) is written by text2pcap/mergecap/editcap. Run from this folder:
    python3 generate.py     (needs text2pcap, mergecap, editcap from Wireshark 4.x)
Every capture holds frame 1: a LISP Encapsulated Control Message carrying a Map-Request for [0]1.1.1.1/32 (the
first seed vector, tests/vectors/seed-map-requests.txt), UDP 61000 -> 4342; frame 2: a LISP data packet
(N+I flags, nonce 0x123456, instance-id 7) carrying an ICMP echo 10.0.0.1 -> 10.0.0.2, UDP 61001 -> 4341.
"""
import os, struct, subprocess, tempfile

SEED = bytes.fromhex(open("../../seed-map-requests.txt").read().split("\n")[
    [i for i, l in enumerate(open("../../seed-map-requests.txt").read().split("\n")) if l and not l.startswith("#")][0]
].split("\t")[-1])

def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff

def ipv4(src, dst, proto, payload):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0, bytes(src), bytes(dst))
    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + payload

def ipv6(src, dst, proto, payload):
    return struct.pack("!IHBB", 0x60000000, len(payload), proto, 64) + bytes(src) + bytes(dst) + payload

def udp(sp, dp, payload, v6=None):
    u = struct.pack("!HHHH", sp, dp, 8 + len(payload), 0) + payload
    if v6:  # IPv6 UDP checksum is mandatory: pseudo header + datagram
        c = csum(bytes(v6[0]) + bytes(v6[1]) + struct.pack("!IxxxB", len(u), 17) + u) or 0xffff
        u = u[:6] + struct.pack("!H", c) + u[8:]
    return u

V4 = ([192, 0, 2, 1], [192, 0, 2, 2])
V6 = (bytes.fromhex("20010db8000000000000000000000001"), bytes.fromhex("20010db8000000000000000000000002"))
icmp = struct.pack("!BBHHH", 8, 0, 0, 0x1234, 1) + b"lisp-decode-golden"
icmp = icmp[:2] + struct.pack("!H", csum(icmp)) + icmp[4:]
inner = ipv4([10, 0, 0, 1], [10, 0, 0, 2], 1, icmp)
data = bytes([0x88, 0x12, 0x34, 0x56, 0x00, 0x00, 0x07, 0x00]) + inner  # N+I, nonce 0x123456, IID 7, LSBs 0

def packets(v6=False):
    if v6:
        return [ipv6(V6[0], V6[1], 17, udp(61000, 4342, SEED, V6)), ipv6(V6[0], V6[1], 17, udp(61001, 4341, data, V6))]
    return [ipv4(V4[0], V4[1], 17, udp(61000, 4342, SEED)), ipv4(V4[0], V4[1], 17, udp(61001, 4341, data))]

MAC = bytes.fromhex("020000000001")
def ether(ip, vlan=False):
    et = 0x86dd if ip[0] >> 4 == 6 else 0x0800
    tag = struct.pack("!HH", 0x8100, 42) if vlan else b""
    return bytes.fromhex("020000000002") + MAC + tag + struct.pack("!H", et) + ip

def ethertype(ip): return 0x86dd if ip[0] >> 4 == 6 else 0x0800
FRAMES = {  # name -> (link type, frames)
    "null": (0, [struct.pack("<I", 2) + p for p in packets()]),                    # AF_INET, little-endian host
    "ethernet-vlan": (1, [ether(p, vlan=True) for p in packets()]),                 # 802.1Q tag, VLAN 42
    "raw101": (101, packets(v6=True)),
    "sll": (113, [struct.pack("!HHH", 0, 1, 6) + MAC + b"\0\0" + struct.pack("!H", ethertype(p)) + p for p in packets()]),
    "ipv4": (228, packets()),
    "ipv6": (229, packets(v6=True)),
    "sll2": (276, [struct.pack("!HHIHBB", ethertype(p), 0, 2, 1, 0, 6) + MAC + b"\0\0" + p for p in packets()]),
}

def text2pcap(frames, linktype, out, ng):
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as t:
        for i, f in enumerate(frames):
            t.write("%d.000001\n" % (1700000000 + i))
            for off in range(0, len(f), 16):
                t.write("%06x  %s\n" % (off, " ".join("%02x" % b for b in f[off:off + 16])))
            t.write("\n")
    subprocess.run(["text2pcap", "-q", "-t", "%s.", "-l", str(linktype), "-F", "pcapng" if ng else "pcap", t.name, out], check=True)
    os.unlink(t.name)

for name, (lt, frames) in FRAMES.items():
    text2pcap(frames, lt, "%s.pcap" % name, False)
text2pcap(FRAMES["sll2"][1], 276, "sll2.pcapng", True)
# Two interfaces of different link types (Ethernet and Linux SLL2) in one pcapng: mergecap writes an IDB for each.
subprocess.run(["mergecap", "-w", "two-interfaces.pcapng", "-F", "pcapng", "ethernet-vlan.pcap", "sll2.pcap"], check=True)
# Nanosecond-resolution pcap of the raw-IP capture.
subprocess.run(["editcap", "-F", "nsecpcap", "raw101.pcap", "raw101-nsec.pcap"], check=True)
# text2pcap writes DLT 12 as LINKTYPE_RAW (101); libpcap files from some BSDs carry 12 itself. raw12.pcap is
# raw-IPv4 frames with the header's link type patched to 12 (little-endian, bytes 20..23), which tshark reads too.
with open("ipv4.pcap", "rb") as f: b = bytearray(f.read())
b[20:24] = struct.pack("<I", 12)
with open("raw12.pcap", "wb") as f: f.write(bytes(b))
