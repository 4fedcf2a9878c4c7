#!/usr/bin/env bash
# First measurement with `lisp-decent load` (and cpload beside it): generator ceiling against the sink, then a
# node (map-server + map-resolver) at 1k, 10k, 100k registrations. Results into $OUT (default /tmp/ld/results).
# Usage: perf/load-measure.sh [OUT]   (run from the repository root after ./build.sh publish)
set -euo pipefail
. "$(dirname "$0")/load-node-config.sh"
BIN=${BIN:-artifacts/publish/lisp-decent}
CPLOAD=${CPLOAD:-/tmp/cpload}
OUT=${1:-/tmp/ld/results}
DUR=${DUR:-10}
mkdir -p "$OUT"
NODE=127.0.42.1; REG=127.0.42.2; ITR=127.0.42.3; SINK=127.0.42.9

stat_cpu() { awk '{print $14+$15}' /proc/$1/stat; }           # utime+stime, clock ticks
rss() { awk '/VmRSS/{print $2" "$3}' /proc/$1/status; }
phase() {  # phase NAME PID CMD...  : run CMD, record target and generator CPU (% of one core), RSS, load average
  local name=$1 pid=$2; shift 2
  local c0 t0 c1 t1 la0 la1
  c0=$(stat_cpu "$pid"); t0=$(date +%s.%N); la0=$(cut -d' ' -f1-3 /proc/loadavg)
  # The generator's own CPU (user + system, from GNU time) shows whether it, not the target, was the limit.
  /usr/bin/time -f "generator-cpu %U %S" "$@" > "$OUT/$name.txt" 2>&1 || echo "($name exited $?)" >> "$OUT/$name.txt"
  c1=$(stat_cpu "$pid"); t1=$(date +%s.%N); la1=$(cut -d' ' -f1-3 /proc/loadavg)
  local tck; tck=$(getconf CLK_TCK)
  local gen; gen=$(awk '/^generator-cpu/{print $2 + $3}' "$OUT/$name.txt" | tail -1)
  echo "$name: wall $(echo "$t1 - $t0" | bc) s, target CPU $(echo "scale=1; ($c1 - $c0) * 100 / $tck / ($t1 - $t0)" | bc) %, generator CPU $(echo "scale=1; ${gen:-0} * 100 / ($t1 - $t0)" | bc) %, RSS $(rss "$pid"), loadavg $la0 -> $la1" | tee -a "$OUT/summary.txt"
  echo "  \$ $*" >> "$OUT/summary.txt"
}
: > "$OUT/summary.txt"

# 1. Generator ceiling: sink on CPU 1, generator on CPU 0.
# The sink stops by itself after its --duration and prints its counts (a background job of a script ignores SIGINT).
taskset -c 1 "$BIN" load sink --listen $SINK:4342 --echo --key load-key --duration $((3 * DUR + 8)) > "$OUT/sink.txt" 2>&1 &
SPID=$!; sleep 1
phase ceiling-request $SPID taskset -c 0 "$BIN" load request --target $SINK --bind $ITR --eids 100000 --window 512 --batch 64 --duration $DUR
phase ceiling-register $SPID taskset -c 0 "$BIN" load refresh --target $SINK --bind $REG:24342 --eids 100000 --window 512 --batch 64 --duration $DUR --key load-key
phase ceiling-request-cpload $SPID taskset -c 0 "$CPLOAD" request --target $SINK --bind $ITR --eids 100000 --window 512 --batch 64 --duration $DUR --progress 0
wait $SPID || true

# 2. The node on CPU 1.
write_node_config "$OUT/node.toml" $NODE "$NODE:18080"
taskset -c 1 "$BIN" run --config "$OUT/node.toml" > "$OUT/node.log" 2>&1 &
NPID=$!; sleep 2
for n in 1000 10000 100000; do
  phase reg-$n $NPID taskset -c 0 "$BIN" load register --target $NODE --bind $REG:24342 --eids $n --ttl 1440 --window 64 --key load-key --timeout 2s --duration 300
  # Steady-state register rate at this table size: re-registration of the same set for DUR seconds (the first
  # pass above is too short at 1k to be a rate).
  phase refresh-$n $NPID taskset -c 0 "$BIN" load refresh --target $NODE --bind $REG:24342 --eids $n --ttl 1440 --window 64 --key load-key --timeout 2s --duration $DUR
  phase req-$n $NPID taskset -c 0 "$BIN" load request --target $NODE --bind $ITR --eids $n --rloc $REG --window 16 --duration $DUR --timeout 2s
  if [ $n = 10000 ]; then
    # Same shape with cpload, side by side: a refresh of the 10k set from the same port, then requests.
    phase reg-$n-cpload $NPID taskset -c 0 "$CPLOAD" register --target $NODE --bind $REG:24342 --eids $n --window 64 --key load-key --timeout 2 --duration 300 --progress 0
    phase reg-$n-refresh $NPID taskset -c 0 "$BIN" load register --target $NODE --bind $REG:24342 --eids $n --ttl 1440 --window 64 --key load-key --timeout 2s --duration 300
    phase req-$n-cpload $NPID taskset -c 0 "$CPLOAD" request --target $NODE --bind $ITR --eids $n --rloc $REG --window 16 --duration $DUR --timeout 2 --progress 0
  fi
done
curl -s http://$NODE:18080/api/counters > "$OUT/node-counters.json" || true
kill $NPID; wait $NPID || true
