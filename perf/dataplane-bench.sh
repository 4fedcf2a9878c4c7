#!/usr/bin/env bash
# Data-plane throughput through the kernel between network namespaces (results: perf/RESULTS.md (data-plane section)).
# Needs root. Creates namespaces ldpb<pid>{a,b,r} and deletes them on exit. Every run is bounded by SECS.
#   a (sender)  --u1/u2 underlay 192.168.60.0/24--  b (receiver)
#   a --f1/r1-- r (kernel forwarding, ip_forward=1) --r2/f2-- b
# For 64- and 1400-byte inner IP packets it measures, in one run:
#   1. underlay: sendmmsg UDP blaster a -> b on the underlay addresses, recvmmsg sink in b (the ceiling)
#   2. kernel forwarding: the same blaster a -> r -> b (10.3.0.2), sink in b
#   3. LISP: blaster a -> 10.2.0.2 routed into TUN t1 -> ITR (raw sendmmsg, UDP 4341) -> ETR in b (recvmmsg)
#      -> TUN t2 -> sink in b on 10.2.0.2, once per io mode in IOS (default "syscalls io_uring": the TUN side
#      with read()/write() per packet, then batched through io_uring), each with freshly started xTRs
# REPS=N repeats the whole sequence (baselines, then each io mode) N times to expose drift and noise.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-5}
IOS=${IOS:-syscalls io_uring}
REPS=${REPS:-1}
dotnet build perf/Lisp.DataPlane.Bench -c Release -nologo -v quiet >/dev/null
B="dotnet perf/Lisp.DataPlane.Bench/bin/Release/net10.0/Lisp.DataPlane.Bench.dll"
A=ldpb$$a; X=ldpb$$b; R=ldpb$$r
cleanup() { for n in $A $X $R; do ip netns pids $n 2>/dev/null | xargs -r kill 2>/dev/null || true; ip netns del $n 2>/dev/null || true; done; }
trap cleanup EXIT
for n in $A $X $R; do ip netns add $n; ip -n $n link set lo up; ip netns exec $n sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0; done
ip link add u1 netns $A type veth peer name u2 netns $X
ip -n $A addr add 192.168.60.1/24 dev u1; ip -n $A link set u1 up
ip -n $X addr add 192.168.60.2/24 dev u2; ip -n $X link set u2 up
ip link add f1 netns $A type veth peer name r1 netns $R
ip link add f2 netns $X type veth peer name r2 netns $R
ip -n $A addr add 192.168.61.1/24 dev f1; ip -n $A link set f1 up
ip -n $R addr add 192.168.61.2/24 dev r1; ip -n $R link set r1 up
ip -n $R addr add 192.168.62.2/24 dev r2; ip -n $R link set r2 up
ip -n $X addr add 192.168.62.1/24 dev f2; ip -n $X link set f2 up
ip netns exec $R sysctl -qw net.ipv4.ip_forward=1
ip -n $A route add 10.3.0.0/16 via 192.168.61.2
ip -n $X addr add 10.3.0.2/32 dev lo
ip -n $X route add 192.168.61.0/24 via 192.168.62.2
ip -n $R route add 10.3.0.0/16 via 192.168.62.1

run_pair() { # name dst port size
  ip netns exec $X $B sink --bind "$2" --port "$3" --seconds $((SECS + 3)) > /tmp/ldpb-sink.$$ &
  local sp=$!
  sleep 1.5
  ip netns exec $A $B blast --dst "$2" --port "$3" --size "$4" --seconds "$SECS"
  wait $sp
  echo "$1 size=$4: $(cat /tmp/ldpb-sink.$$)"
}

echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
for rep in $(seq "$REPS"); do
  for size in 64 1400; do
    run_pair "underlay-udp-blaster" 192.168.60.2 9000 $size
    run_pair "kernel-forwarding   " 10.3.0.2 9001 $size
  done
  for io in $IOS; do
    life=$((2 * (SECS + 6) + 4))
    ip netns exec $A $B xtr --tun t1 --local 192.168.60.1 --remote 192.168.60.2 --eid 10.2.0.0/16 --addr 10.1.0.1/32 --seconds $life --io $io > /tmp/ldpb-xtr1.$$ &
    x1=$!
    ip netns exec $X $B xtr --tun t2 --local 192.168.60.2 --remote 192.168.60.1 --eid 10.1.0.0/16 --addr 10.2.0.2/32 --seconds $life --io $io > /tmp/ldpb-xtr2.$$ &
    x2=$!
    sleep 3
    grep -h "xtr: io:" /tmp/ldpb-xtr1.$$ | head -1 || true
    for size in 64 1400; do
      run_pair "lisp-overlay io=$(printf %-8s $io)" 10.2.0.2 9002 $size
    done
    wait $x1 $x2  # the two xTRs print their counters when their --seconds are up
    cat /tmp/ldpb-xtr1.$$ /tmp/ldpb-xtr2.$$ | grep "^xtr t" || true
  done
  echo "load now $(cut -d' ' -f1-3 /proc/loadavg)"
done
rm -f /tmp/ldpb-*.$$
