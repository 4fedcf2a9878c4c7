#!/usr/bin/env python3
"""Writes the afl++ seed corpora under fuzz/seeds/TARGET/ from inputs already in the repository.

Provenance of every seed (see FUZZING.md):
  control, ecm: the 9 ECM Map-Requests of tests/vectors/seed-map-requests.txt (lispers.net seed log, rebuilt by the
                project) and the UDP 4342 payloads of tests/vectors/captures/*.pcap (tcpdump regression captures,
                BSD) and tests/vectors/captures/golden/ipv4.pcap (ours). ecm seeds are the same ECMs in the ecm
                target's format: ECM flags nibble, then the bytes after the 4-byte ECM header.
  decap:        the UDP 4341 payload (LISP data header + ICMP echo) of tests/vectors/captures/golden/ipv4.pcap and
                ipv6.pcap, each with a few configuration bytes in front (see FuzzTargets.Decap).
  lcaf:         hand-written addresses (IPv4, IPv6, MAC, E.164, distinguished name, and LCAF types 1, 2, 9, 10, 12)
                plus the addresses cut out of the seed ECMs' ITR-RLOC fields.
  config:       packaging/examples/*.toml, verbatim.
  offload:      hand-built (offload_seeds below): TCP/UDP super-packets behind a virtio-net header for the ITR side
                (IPv4 and IPv6, NEEDS_CSUM), and runs of checksummed TCP segments / UDP datagrams of one flow for
                the ETR side (see FuzzTargets.Offload).
Run from the repository root: python3 fuzz/make-seeds.py
"""
import os, struct, glob, shutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fuzz", "seeds")

def write(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

def udp_payloads(path):
    """(dport, payload) of each UDP datagram in a classic pcap with link type 1 (Ethernet), 101/228 (raw IPv4/6) or 229."""
    with open(path, "rb") as f:
        blob = f.read()
    magic = blob[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    link = struct.unpack(endian + "I", blob[20:24])[0]
    at = 24
    while at + 16 <= len(blob):
        incl = struct.unpack(endian + "I", blob[at + 8:at + 12])[0]
        frame = blob[at + 16:at + 16 + incl]
        at += 16 + incl
        if link == 1:
            etype = struct.unpack(">H", frame[12:14])[0]
            ip = frame[14:]
            if etype == 0x8100:
                ip = frame[18:]
        elif link in (101, 228, 229):
            ip = frame
        else:
            continue
        if not ip:
            continue
        if ip[0] >> 4 == 4:
            ihl = (ip[0] & 15) * 4
            if ip[9] != 17:
                continue
            udp = ip[ihl:]
        elif ip[0] >> 4 == 6:
            if ip[6] != 17:
                continue
            udp = ip[40:]
        else:
            continue
        dport = struct.unpack(">H", udp[2:4])[0]
        yield dport, udp[8:]

def main():
    shutil.rmtree(OUT, ignore_errors=True)
    ecms = []
    with open(os.path.join(ROOT, "tests", "vectors", "seed-map-requests.txt")) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            cols = line.rstrip("\n").split("\t")
            ecms.append(bytes.fromhex(cols[-1]))
    for i, m in enumerate(ecms):
        write("control", f"seed-map-request-{i}", m)
    caps = sorted(glob.glob(os.path.join(ROOT, "tests", "vectors", "captures", "*.pcap")))
    caps.append(os.path.join(ROOT, "tests", "vectors", "captures", "golden", "ipv4.pcap"))
    caps.append(os.path.join(ROOT, "tests", "vectors", "captures", "golden", "ipv6.pcap"))
    for cap in caps:
        stem = os.path.splitext(os.path.basename(cap))[0]
        for j, (dport, payload) in enumerate(udp_payloads(cap)):
            if dport == 4342:
                write("control", f"{stem}-{j}", payload)
                if payload and payload[0] >> 4 == 8:
                    ecms.append(payload)
            elif dport == 4341 and stem in ("ipv4", "ipv6"):
                for mode in (0x00, 0x01, 0x0e, 0x36):
                    write("decap", f"{stem}-{j}-mode{mode:02x}", bytes([mode]) + payload)
    for i, m in enumerate(ecms):
        write("ecm", f"ecm-{i}", bytes([m[0] & 15]) + m[4:])
    ip4 = struct.pack(">H", 1) + bytes([10, 0, 0, 1])
    ip6 = struct.pack(">H", 2) + bytes.fromhex("20010db8000000000000000000000001")
    def lcaf(typ, body, rsvd2=0, flags=0):
        return struct.pack(">HBBBBH", 16387, 0, flags, typ, rsvd2, len(body)) + body
    raw = {
        "ipv4": ip4, "ipv6": ip6,
        "mac": struct.pack(">H", 16389) + bytes.fromhex("0200005e0001"),
        "e164": struct.pack(">H", 8) + struct.pack(">Q", 0x15551234567),
        "dn": struct.pack(">H", 17) + b"host.example\x00",
    }
    lcafs = {
        "afi-list": lcaf(1, ip4 + ip6),
        "iid-v4": lcaf(2, struct.pack(">I", 7) + ip4, rsvd2=24),
        "iid-v6": lcaf(2, struct.pack(">I", 0xffffff) + ip6),
        "multicast": lcaf(9, struct.pack(">IHBB", 7, 0, 32, 32) + ip4 + struct.pack(">H", 1) + bytes([224, 1, 1, 1])),
        "elp": lcaf(10, struct.pack(">H", 1) + ip4 + struct.pack(">H", 6) + ip6),
        "src-dst": lcaf(12, struct.pack(">HBB", 0, 32, 8) + ip4 + struct.pack(">H", 1) + bytes([10, 0, 0, 0])),
        "nested-iid-afi-list": lcaf(2, struct.pack(">I", 3) + lcaf(1, ip4 + ip6)),
    }
    for name, b in raw.items():
        write("lcaf", name, b"\x00" + b)       # even first byte: the bytes as they are
    for name, b in lcafs.items():
        write("lcaf", name, b"\x00" + b)
        write("lcaf", name + "-body", b"\x01" + b[2:])  # odd first byte: an LCAF body after AFI 16387
    for toml in sorted(glob.glob(os.path.join(ROOT, "packaging", "examples", "*.toml"))):
        with open(toml, "rb") as f:
            write("config", os.path.basename(toml), f.read())

def csum(data):
    if len(data) % 2: data += b"\x00"
    s = sum(struct.unpack(">%dH" % (len(data) // 2), data))
    while s > 0xffff: s = (s & 0xffff) + (s >> 16)
    return s

def ip_packet(v6, proto, l4):
    if v6:
        return struct.pack(">IHBB", 0x60000000, len(l4), proto, 64) + bytes.fromhex("fd000001" + "00" * 11 + "01") + bytes.fromhex("fd000002" + "00" * 11 + "09") + l4
    h = bytearray(struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0x1234, 0x4000, 64, proto, 0, bytes([10, 1, 0, 1]), bytes([10, 2, 0, 9])))
    h[10:12] = struct.pack(">H", 0xffff - csum(bytes(h)))
    return bytes(h) + l4

def pseudo(v6, proto, pkt, l4len):
    src, dst = (pkt[8:24], pkt[24:40]) if v6 else (pkt[12:16], pkt[16:20])
    return src + dst + (struct.pack(">IxxxB", l4len, proto) if v6 else struct.pack(">xBH", proto, l4len))

def segment(v6, proto, payload, seq=1000, partial=False):
    """One TCP (flags ACK) or UDP packet; full checksum, or the pseudo-header sum only (NEEDS_CSUM form)."""
    l4 = struct.pack(">HHIIBBHHH", 40000, 5001, seq, 1, 0x50, 0x10, 65535, 0, 0) if proto == 6 else struct.pack(">HHHH", 40000, 5001, 8 + len(payload), 0)
    l4 += payload
    pkt = bytearray(ip_packet(v6, proto, l4))
    ip = 40 if v6 else 20
    field = ip + (16 if proto == 6 else 6)
    ph = csum(pseudo(v6, proto, bytes(pkt), len(l4)))
    value = ph if partial else 0xffff - csum(pseudo(v6, proto, bytes(pkt), len(l4)) + bytes(pkt[ip:]))
    pkt[field:field + 2] = struct.pack(">H", value or (0xffff if proto == 17 else 0))
    return bytes(pkt)

def vnet(flags, gso, hdr_len, gso_size, csum_start, csum_offset):
    return struct.pack("<BBHHHH", flags, gso, hdr_len, gso_size, csum_start, csum_offset)

def offload_seeds():
    pattern = bytes(range(256)) * 40
    for v6 in (False, True):
        ip, fam = (40, "v6") if v6 else (20, "v4")
        tcp = segment(v6, 6, pattern[:6000], partial=True)
        udp = segment(v6, 17, pattern[:3000], partial=True)
        for mode in (0, 2):
            write("offload", f"itr-tso-{fam}-mode{mode}", bytes([mode]) + vnet(1, 4 if v6 else 1, ip + 20, 1400, ip, 16) + tcp)
            write("offload", f"itr-uso-{fam}-mode{mode}", bytes([mode]) + vnet(1, 5, ip + 8, 1000, ip, 6) + udp)
            write("offload", f"itr-csum-{fam}-mode{mode}", bytes([mode]) + vnet(1, 0, 0, 0, ip, 6) + segment(v6, 17, pattern[:200], partial=True))
        run = b"".join(struct.pack(">H", len(p)) + p for p in (segment(v6, 6, pattern[k * 1000:(k + 1) * 1000], seq=1000 + k * 1000) for k in range(5)))
        write("offload", f"etr-tcp-run-{fam}", b"\x01" + run)
        run = b"".join(struct.pack(">H", len(p)) + p for p in (segment(v6, 17, pattern[k * 500:(k + 1) * 500]) for k in range(6)))
        write("offload", f"etr-udp-run-{fam}", b"\x01" + run)

main()
offload_seeds()
