#!/usr/bin/env bash
# TCP throughput (iperf3) through the LISP overlay of the published binary, against the kernel's VXLAN over the
# same underlay, both measured in the same run; and the UDP packet rate (sendmmsg blaster of
# perf/Lisp.DataPlane.Bench) through the overlay, against the same blaster sent straight over the underlay. Needs root. Creates namespaces ltcp<pid>a / ltcp<pid>b and
# deletes them (and everything started in them) on exit. Every iperf3 run lasts SECS seconds and is bounded.
#
#   ns A                                   underlay veth, MTU 1500                     ns B
#   u1 192.168.70.1/24  fd70::1/64  ---------------------------------------  u2 192.168.70.2/24  fd70::2/64
#   VXLAN baseline: vx0 10.77.0.1/24 (id 77, dstport 4789)          vx0 10.77.0.2/24, iperf3 server
#   LISP: xTR A (also map-server + map-resolver)                    xTR B, iperf3 server on 10.2.0.1
#         TUN lisp0 10.1.0.1/32, EID 10.1.0.0/24,                   TUN lisp0 10.2.0.1/32, EID 10.2.0.0/24,
#         route 10.2.0.0/24 -> lisp0                                route 10.1.0.0/24 -> lisp0
#
# For each underlay family in UNDERLAYS (default "4 6"): the VXLAN baseline (RLOC/VTEP addresses of that family),
# then the LISP overlay once per variant (freshly started nodes each time), each with iperf3 -P 1 and -P 4.
# With UDP=1, per family also: the blaster baseline (blast in A -> sink in B on the underlay address of that
# family, 192.168.70.2 or fd70::2), and per variant, on the same nodes after the TCP runs, the blaster in A to the
# EID 10.2.0.1 (routed into TUN lisp0 of xTR A, source 10.1.0.1) -> overlay -> xTR B -> sink bound to 10.2.0.1 in B.
# Sizes in UDP_SIZES are inner IPv4 packet sizes: 64 means a 36-byte UDP payload. The IPv6 baseline keeps that
# UDP payload (its packets are 20 bytes longer, 84 B for 64), so both families' rows compare the same payload; the
# overlay rows always carry IPv4 inner packets of exactly that size. Each UDP run lasts SECS seconds (bounded).
#
# Environment:
#   SECS=10                      seconds per iperf3 run
#   UNDERLAYS="4 6"              underlay families
#   LISP_DECENT_BINARY=artifacts/publish/lisp-decent
#   DP_EXTRA='workers = 2'       extra [data_plane] lines (newlines allowed) for the single variant
#   VARIANTS='a;b|c'             several variants in one run, ';'-separated; inside one variant '|' separates
#                                lines, e.g. VARIANTS='workers = 1;workers = 2|io = "io_uring"' (overrides DP_EXTRA)
#   STREAMS="1 4"                iperf3 -P values
#   LOGDIR=DIR                   keep each LISP run's node logs and configs there (default: deleted on exit)
#   UDP=1                        also measure the UDP packet rate (0: TCP only)
#   UDP_SIZES="64"               inner IPv4 packet sizes for the UDP runs (29..1420), e.g. "64 1400"
#   REPEAT=1                     per family, the whole sequence (VXLAN, blaster, every variant) this many times in a
#                                row; each ratio is to the VXLAN/blaster row of the same repeat (minutes apart, not a
#                                whole run apart), and a last table gives per row the median and the range over repeats
# Output: a header (machine, load), one line per measurement with the ratio to the VXLAN row (TCP) or to the
# blaster row (UDP) of the same family and streams/size, the nodes' counters and offload/io/send-mode lines per
# LISP run, and markdown tables at the end (TCP, then UDP: Mpps counted at the sink).
set -uo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-10}
UNDERLAYS=${UNDERLAYS:-4 6}
STREAMS=${STREAMS:-1 4}
BIN=${LISP_DECENT_BINARY:-artifacts/publish/lisp-decent}
DP_EXTRA=${DP_EXTRA:-}
VARIANTS=${VARIANTS:-}
LOGDIR=${LOGDIR:-}
UDP=${UDP:-1}
UDP_SIZES=${UDP_SIZES:-64}
REPEAT=${REPEAT:-1}
REP=1
UDP_PORT=9000
LOG_SEQ=0

die() { echo "overlay-tcp-bench: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (network namespaces, TUN)"
[ -x "$BIN" ] || die "no binary at $BIN (set LISP_DECENT_BINARY)"
[ -e /dev/net/tun ] || die "/dev/net/tun is missing"
[ -z "$LOGDIR" ] || mkdir -p "$LOGDIR" || die "cannot create LOGDIR $LOGDIR"
{ [[ "$REPEAT" =~ ^[0-9]+$ ]] && [ "$REPEAT" -ge 1 ] && [ "$REPEAT" -le 20 ]; } || die "REPEAT: '$REPEAT' is not 1..20"
BIN=$(readlink -f "$BIN")
if [ "$UDP" = 1 ]; then
  for z in $UDP_SIZES; do
    { [[ "$z" =~ ^[0-9]+$ ]] && [ "$z" -ge 29 ] && [ "$z" -le 1420 ]; } || die "UDP_SIZES: '$z' is not a size in 29..1420"
  done
  command -v dotnet >/dev/null || die "UDP=1 needs dotnet to build perf/Lisp.DataPlane.Bench (or set UDP=0)"
  nice -n 10 dotnet build perf/Lisp.DataPlane.Bench -c Release -nologo -v quiet >"/tmp/ltcp-build.$$.log" 2>&1 \
    || { cat "/tmp/ltcp-build.$$.log" >&2; rm -f "/tmp/ltcp-build.$$.log"; die "dotnet build perf/Lisp.DataPlane.Bench failed"; }
  rm -f "/tmp/ltcp-build.$$.log"
  DPB=$(readlink -f perf/Lisp.DataPlane.Bench/bin/Release/net10.0/Lisp.DataPlane.Bench.dll)
  [ -f "$DPB" ] || die "no $DPB after the build"
fi
if ! command -v iperf3 >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y iperf3 >/dev/null || die "apt-get install iperf3 failed"
fi
if command -v python3 >/dev/null; then
  bps_of() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"])' "$1" 2>/dev/null; }
elif command -v jq >/dev/null; then
  bps_of() { jq -er '.end.sum_received.bits_per_second' "$1" 2>/dev/null; }
else
  die "needs python3 or jq to read iperf3 -J"
fi

A=ltcp$$a; B=ltcp$$b
WORK=$(mktemp -d /tmp/ltcp.$$.XXXXXX)
NODE_PIDS=()
cleanup() {
  for p in "${NODE_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for n in $A $B; do
    ip netns pids $n 2>/dev/null | xargs -r kill 2>/dev/null || true
  done
  sleep 0.3
  for n in $A $B; do
    ip netns pids $n 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del $n 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- lab ---------------------------------------------------------------------------------------------------------
for n in $A $B; do
  ip netns add $n || die "ip netns add $n failed"
  ip -n $n link set lo up
  ip netns exec $n sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
done
ip link add u1 netns $A mtu 1500 type veth peer name u2 netns $B mtu 1500
ip -n $A addr add 192.168.70.1/24 dev u1; ip -n $A addr add fd70::1/64 dev u1 nodad; ip -n $A link set u1 up
ip -n $B addr add 192.168.70.2/24 dev u2; ip -n $B addr add fd70::2/64 dev u2 nodad; ip -n $B link set u2 up

underlay_addr() { # family side(1|2)
  if [ "$1" = 6 ]; then echo "fd70::$2"; else echo "192.168.70.$2"; fi
}

# --- measurement helpers -------------------------------------------------------------------------------------------
# UDP: sink in B bound to $1, blaster in A to $1 (--src $2 when given), inner size $3, SECS seconds.
# Prints "<Mpps at the sink> <Mpps offered by the blaster>" or "FAIL FAIL"; details go to stderr.
udp_mpps() { # dst src size tag
  local dst=$1 src=$2 size=$3 tag=$4 i
  local sinkout="$WORK/sink-$tag.out" blastout="$WORK/blast-$tag.out"
  # The sink stops by itself SECS + 4 s after binding; timeout is the outer bound (dotnet start included).
  ip netns exec $B timeout $((SECS + 30)) dotnet "$DPB" sink --bind "$dst" --port $UDP_PORT --seconds $((SECS + 4)) \
    >"$sinkout" 2>&1 &
  local sp=$!
  local bound=0
  for i in $(seq 150); do
    if ip netns exec $B ss -Huln "sport = :$UDP_PORT" 2>/dev/null | grep -q .; then bound=1; break; fi
    kill -0 $sp 2>/dev/null || break
    sleep 0.1
  done
  if [ $bound = 0 ]; then
    echo "  udp $tag: the sink never bound $dst port $UDP_PORT: $(head -c 300 "$sinkout")" >&2
    kill $sp 2>/dev/null; wait $sp 2>/dev/null; echo "FAIL FAIL"; return
  fi
  local sopt=(); [ -n "$src" ] && sopt=(--src "$src")
  ip netns exec $A timeout $((SECS + 20)) dotnet "$DPB" blast --dst "$dst" --port $UDP_PORT --size "$size" \
    --seconds "$SECS" "${sopt[@]}" >"$blastout" 2>&1
  local rc=$?
  wait $sp 2>/dev/null
  echo "  udp $tag: $(head -1 "$blastout")" >&2
  echo "  udp $tag: $(head -1 "$sinkout")" >&2
  local got offered
  got=$(sed -n 's/^sink: .* = \([0-9.]*\) Mpps.*/\1/p' "$sinkout" | head -1)
  offered=$(sed -n 's/^blast: .* = \([0-9.]*\) Mpps offered.*/\1/p' "$blastout" | head -1)
  if [ $rc -ne 0 ] || [ -z "$got" ]; then
    echo "  udp $tag failed (blast rc $rc)" >&2
    echo "FAIL FAIL"; return
  fi
  echo "$got ${offered:-?}"
}

# iperf3 server one-off in B on $1, client in A (-B $2 when given) for SECS with -P $3; prints Gbit/s or FAIL.
iperf_gbps() { # dst bind streams tag
  local dst=$1 bind=$2 p=$3 tag=$4 port=5201 json="$WORK/iperf-$4.json" i
  ip netns exec $B timeout $((SECS + 30)) iperf3 -s -1 -B "$dst" -p $port >"$WORK/iperf-server-$tag.log" 2>&1 &
  local sp=$!
  for i in $(seq 50); do
    ip netns exec $B ss -Htln "sport = :$port" 2>/dev/null | grep -q . && break
    sleep 0.1
  done
  local bopt=(); [ -n "$bind" ] && bopt=(-B "$bind")
  timeout $((SECS + 20)) ip netns exec $A iperf3 -c "$dst" "${bopt[@]}" -p $port -t "$SECS" -P "$p" -J >"$json" 2>"$WORK/iperf-client-$tag.err"
  local rc=$?
  wait $sp 2>/dev/null
  local bps; bps=$(bps_of "$json")
  if [ $rc -ne 0 ] || [ -z "$bps" ]; then
    echo "  iperf3 to $dst -P $p failed (rc $rc): $(head -c 300 "$WORK/iperf-client-$tag.err") $(jq -r '.error // empty' "$json" 2>/dev/null)" >&2
    echo FAIL; return
  fi
  awk -v b="$bps" 'BEGIN { printf "%.2f", b / 1e9 }'
}

declare -A VXLAN          # "family,streams" -> Gbit/s
ROWS=()                   # family, variant, streams, gbps, ratio, repeat joined by the unit separator (labels may hold '|')
US=$'\x1f'
ratio_of() { # gbps family streams
  local base=${VXLAN["$2,$3"]:-FAIL}
  if [ "$1" = FAIL ] || [ "$base" = FAIL ]; then echo "-"; return; fi
  awk -v a="$1" -v b="$base" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'
}
report() { # family variant streams gbps
  local r; r=$(ratio_of "$4" "$1" "$3")
  printf 'result: underlay IPv%s  %-28s  -P %s  %8s Gbit/s  ratio-to-vxlan %s  (repeat %s/%s)\n' "$1" "$2" "$3" "$4" "$r" "$REP" "$REPEAT"
  ROWS+=("$1$US$2$US$3$US$4$US$r$US$REP")
}

declare -A BLASTER        # "family,size" -> Mpps at the sink, blaster straight over the underlay
UROWS=()                  # family, path, size, Mpps, offered, ratio joined by the unit separator
udp_report() { # family path size "mpps offered"
  local f=$1 l=$2 z=$3 m o r base
  read -r m o <<<"$4"
  base=${BLASTER["$f,$z"]:-FAIL}
  if [ "$m" = FAIL ] || [ "$base" = FAIL ]; then r="-"
  else r=$(awk -v a="$m" -v b="$base" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'); fi
  printf 'result: underlay IPv%s  %-28s  UDP %4s B (payload %s B)  %8s Mpps at sink (offered %s)  ratio-to-blaster %s  (repeat %s/%s)\n' \
    "$f" "$l" "$z" $((z - 28)) "$m" "$o" "$r" "$REP" "$REPEAT"
  UROWS+=("$f$US$l$US$z$US$m$US$o$US$r")
}

run_udp_blaster() { # family
  local f=$1 z res
  for z in $UDP_SIZES; do
    res=$(udp_mpps "$(underlay_addr "$f" 2)" "" "$z" "blaster$f-$z")
    BLASTER["$f,$z"]=${res%% *}
    udp_report "$f" "udp-blaster" "$z" "$res"
  done
}

run_vxlan() { # family
  local f=$1 l r dev=u1 rdev=u2
  l=$(underlay_addr "$f" 1); r=$(underlay_addr "$f" 2)
  ip -n $A link add vx0 type vxlan id 77 dstport 4789 local "$l" remote "$r" dev $dev
  ip -n $B link add vx0 type vxlan id 77 dstport 4789 local "$r" remote "$l" dev $rdev
  ip -n $A addr add 10.77.0.1/24 dev vx0; ip -n $A link set vx0 up
  ip -n $B addr add 10.77.0.2/24 dev vx0; ip -n $B link set vx0 up
  local i
  for i in $(seq 20); do ip netns exec $A ping -c 1 -W 1 10.77.0.2 >/dev/null 2>&1 && break; sleep 0.2; done
  echo "vxlan IPv$f underlay: vx0 mtu $(ip -n $A -o link show vx0 | sed -n 's/.* mtu \([0-9]*\).*/\1/p')"
  local p g
  for p in $STREAMS; do
    g=$(iperf_gbps 10.77.0.2 "" "$p" "vx$f-$p")
    VXLAN["$f,$p"]=$g
    report "$f" "kernel-vxlan" "$p" "$g"
  done
  ip -n $A link del vx0; ip -n $B link del vx0
}

write_node_configs() { # family variant-lines
  local f=$1 extra=$2 ra rb
  ra=$(underlay_addr "$f" 1); rb=$(underlay_addr "$f" 2)
  # xTR A is also the map-server / map-resolver: one process, the same underlay address.
  cat >"$WORK/a.toml" <<EOF
[node]
name = "xtr-a"
roles = ["itr", "etr", "map-server", "map-resolver"]
rlocs = ["$ra"]
listen = ["$ra"]
[mapping]
map_servers = ["$ra"]
map_resolvers = ["$ra"]
key = "ka"
[etr]
register_interval = "3s"
[[site]]
name = "site-a"
key = "ka"
eid_prefixes = ["[0]10.1.0.0/24"]
[[site]]
name = "site-b"
key = "kb"
eid_prefixes = ["[0]10.2.0.0/24"]
[[database]]
eid = "[0]10.1.0.0/24"
[data_plane]
tun = "lisp0"
addresses = ["10.1.0.1/32"]
routes = ["10.2.0.0/24"]
miss_policy = "queue"
$extra
EOF
  cat >"$WORK/b.toml" <<EOF
[node]
name = "xtr-b"
roles = ["itr", "etr"]
rlocs = ["$rb"]
listen = ["$rb"]
[mapping]
map_servers = ["$ra"]
map_resolvers = ["$ra"]
key = "kb"
[etr]
register_interval = "3s"
[[database]]
eid = "[0]10.2.0.0/24"
[data_plane]
tun = "lisp0"
addresses = ["10.2.0.1/32"]
routes = ["10.1.0.0/24"]
miss_policy = "queue"
$extra
EOF
}

wait_log() { # file pattern seconds
  local i
  for i in $(seq $(($3 * 10))); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

stop_node() { # pid log
  kill -TERM "$1" 2>/dev/null || return 0
  local i
  for i in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

node_notes() { # label log
  echo "  node $1:"
  grep -E 'offload|io:|send mode' "$2" | sed 's/^/    /' | head -20
  grep -E 'data-plane-stopped' "$2" | sed 's/^/    /' | tail -2
}

run_lisp() { # family label variant-lines
  local f=$1 label=$2 extra=$3
  write_node_configs "$f" "$extra"
  local s
  for s in a b; do
    if ! "$BIN" run --check --config "$WORK/$s.toml" >"$WORK/check-$s.log" 2>&1; then
      echo "  config $s refused for variant '$label':" >&2; sed 's/^/    /' "$WORK/check-$s.log" >&2
      for p in $STREAMS; do report "$f" "$label" "$p" FAIL; done
      if [ "$UDP" = 1 ]; then for z in $UDP_SIZES; do udp_report "$f" "$label" "$z" "FAIL FAIL"; done; fi
      return
    fi
  done
  : >"$WORK/a.log"; : >"$WORK/b.log"
  ip netns exec $A "$BIN" run --config "$WORK/a.toml" >"$WORK/a.log" 2>&1 &
  local pa=$!; NODE_PIDS+=($pa)
  wait_log "$WORK/a.log" "node-started" 20 || true
  ip netns exec $B "$BIN" run --config "$WORK/b.toml" >"$WORK/b.log" 2>&1 &
  local pb=$!; NODE_PIDS+=($pb)
  local ok=1
  wait_log "$WORK/a.log" "data-plane-started" 30 || { echo "  xTR A: no data-plane-started in 30 s" >&2; ok=0; }
  wait_log "$WORK/b.log" "data-plane-started" 30 || { echo "  xTR B: no data-plane-started in 30 s" >&2; ok=0; }
  if [ $ok = 1 ]; then
    ok=0
    local i
    for i in $(seq 30); do  # the first packets wait for Map-Replies in both directions (miss_policy queue)
      if ip netns exec $A ping -c 1 -W 1 -I 10.1.0.1 10.2.0.1 >/dev/null 2>&1; then ok=1; break; fi
      sleep 0.5
    done
    [ $ok = 1 ] || echo "  LISP IPv$f underlay, variant '$label': ping 10.1.0.1 -> 10.2.0.1 never succeeded (30 tries)" >&2
  fi
  local p g
  for p in $STREAMS; do
    if [ $ok = 1 ]; then g=$(iperf_gbps 10.2.0.1 10.1.0.1 "$p" "lisp$f-$p"); else g=FAIL; fi
    report "$f" "$label" "$p" "$g"
  done
  if [ "$UDP" = 1 ]; then  # the same nodes, after the TCP runs
    local z res
    for z in $UDP_SIZES; do
      if [ $ok = 1 ]; then res=$(udp_mpps 10.2.0.1 10.1.0.1 "$z" "lisp$f-$z"); else res="FAIL FAIL"; fi
      udp_report "$f" "$label" "$z" "$res"
    done
  fi
  stop_node $pb "$WORK/b.log"; stop_node $pa "$WORK/a.log"
  node_notes A "$WORK/a.log"; node_notes B "$WORK/b.log"
  if [ $ok = 0 ]; then
    echo "  --- xTR A log (tail) ---"; tail -40 "$WORK/a.log" | sed 's/^/    /'
    echo "  --- xTR B log (tail) ---"; tail -40 "$WORK/b.log" | sed 's/^/    /'
  fi
  if [ -n "$LOGDIR" ]; then
    local n=$((++LOG_SEQ))
    cp "$WORK/a.log" "$LOGDIR/ipv$f-run$n-xtr-a.log"; cp "$WORK/a.toml" "$LOGDIR/ipv$f-run$n-xtr-a.toml"
    cp "$WORK/b.log" "$LOGDIR/ipv$f-run$n-xtr-b.log"; cp "$WORK/b.toml" "$LOGDIR/ipv$f-run$n-xtr-b.toml"
    echo "  logs and configs: $LOGDIR/ipv$f-run$n-xtr-{a,b}.{log,toml}"
  fi
}

# --- variants ------------------------------------------------------------------------------------------------------
LABELS=(); EXTRAS=()
if [ -n "$VARIANTS" ]; then
  IFS=';' read -r -a vs <<<"$VARIANTS"
  for v in "${vs[@]}"; do
    v=$(echo "$v" | sed 's/^ *//; s/ *$//')
    LABELS+=("lisp ${v:-default}"); EXTRAS+=("$(echo "$v" | tr '|' '\n')")
  done
else
  one_line=$(printf '%s' "$DP_EXTRA" | paste -sd'|')
  LABELS+=("lisp ${one_line:-default}"); EXTRAS+=("$DP_EXTRA")
fi

# --- run -----------------------------------------------------------------------------------------------------------
echo "overlay-tcp-bench: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1), kernel $(uname -r)"
echo "binary: $BIN ($("$BIN" version 2>/dev/null | head -1))"
echo "iperf3: $(iperf3 --version | head -1); SECS=$SECS; underlays: $UNDERLAYS; streams: $STREAMS"
if [ "$UDP" = 1 ]; then
  echo "udp: sendmmsg blaster/recvmmsg sink of perf/Lisp.DataPlane.Bench (dotnet $(dotnet --version 2>/dev/null)); sizes: $UDP_SIZES" \
    "(inner IPv4 packet bytes; the UDP payload, size - 28, is the same in the IPv6-underlay blaster rows)"
fi
echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
for f in $UNDERLAYS; do
  for REP in $(seq "$REPEAT"); do
    run_vxlan "$f"
    [ "$UDP" = 1 ] && run_udp_blaster "$f"
    for i in "${!LABELS[@]}"; do
      run_lisp "$f" "${LABELS[$i]}" "${EXTRAS[$i]}"
    done
  done
done
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| underlay | path | streams | repeat | Gbit/s | ratio to VXLAN |"
echo "|---|---|---|---|---|---|"
for r in "${ROWS[@]}"; do
  IFS=$US read -r f l p g q k <<<"$r"
  echo "| IPv$f | ${l//|/ + } | $p | $k | $g | $q |"
done
if [ "$REPEAT" -gt 1 ]; then
  # Per row: the median (middle value; the lower middle for an even count) and the range of the Gbit/s and of the
  # ratios over the repeats that did not fail.
  echo
  echo "Over $REPEAT repeats (each ratio to the VXLAN row of its own repeat):"
  echo
  echo "| underlay | path | streams | median Gbit/s | median ratio | ratio range | repeats |"
  echo "|---|---|---|---|---|---|---|"
  for r in "${ROWS[@]}"; do
    IFS=$US read -r f l p _ <<<"$r"
    echo "$f$US$l$US$p"
  done | awk '!seen[$0]++' | while IFS=$US read -r f l p; do
    gs=(); qs=()
    for r in "${ROWS[@]}"; do
      IFS=$US read -r f2 l2 p2 g q _ <<<"$r"
      [ "$f2" = "$f" ] && [ "$l2" = "$l" ] && [ "$p2" = "$p" ] || continue
      [ "$g" = FAIL ] || gs+=("$g")
      [ "$q" = "-" ] || qs+=("$q")
    done
    med() { if [ $# -eq 0 ]; then echo "-"; else printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; fi; }
    range() { if [ $# -eq 0 ]; then echo "-"; else printf '%s\n' "$@" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { print lo "-" hi }'; fi; }
    echo "| IPv$f | ${l//|/ + } | $p | $(med "${gs[@]}") | $(med "${qs[@]}") | $(range "${qs[@]}") | ${#gs[@]} |"
  done
fi
if [ "$UDP" = 1 ]; then
  echo
  echo "UDP packet rate, Mpps counted at the sink; size = inner IPv4 packet bytes, the UDP payload (size - 28) is the"
  echo "same in every row (udp-blaster over an IPv6 underlay sends IPv6 packets 20 bytes longer with that payload)."
  echo
  echo "| underlay | path | size (UDP payload) | Mpps at sink | Mpps offered | ratio to blaster |"
  echo "|---|---|---|---|---|---|"
  for r in "${UROWS[@]}"; do
    IFS=$US read -r f l z m o q <<<"$r"
    echo "| IPv$f | ${l//|/ + } | $z B ($((z - 28)) B) | $m | $o | $q |"
  done
fi
