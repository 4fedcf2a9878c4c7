#!/usr/bin/env bash
# Side by side at 10k registrations: `lisp-decent load` and cpload alternately, same shape (register refresh of the
# 10k set from the same port, 50k messages, window 64; requests window 16 for 10 s), node on CPU 1, tools on CPU 0.
set -euo pipefail
. "$(dirname "$0")/load-node-config.sh"
BIN=${BIN:-artifacts/publish/lisp-decent}; CPLOAD=${CPLOAD:-/tmp/cpload}; OUT=${1:-/tmp/ld/side}
mkdir -p "$OUT"; NODE=127.0.42.1; REG=127.0.42.2; ITR=127.0.42.3
# CPLOAD: the independent C generator (tools/cpload of the team's workspace, built with
#   gcc -O2 -Wall -o /tmp/cpload cpload.c -lcrypto -lpthread -lm); it is not part of this project.
[ -x "$CPLOAD" ] || { echo "load-vs-cpload.sh: no cpload at $CPLOAD (set CPLOAD=PATH)" >&2; exit 2; }
write_node_config "$OUT/node.toml" $NODE
taskset -c 1 "$BIN" run --config "$OUT/node.toml" > "$OUT/node.log" 2>&1 &
NPID=$!; sleep 2
cpu() { awk '{print $14+$15}' /proc/$NPID/stat; }
run() { local name=$1; shift; local c0; c0=$(cpu); local t0; t0=$(date +%s.%N)
  "$@" > "$OUT/$name.txt" 2>&1 || true
  echo "$name node-cpu $(echo "scale=1; ($(cpu) - $c0) * 100 / $(getconf CLK_TCK) / ($(date +%s.%N) - $t0)" | bc)% rss $(awk '/VmRSS/{print $2}' /proc/$NPID/status)kB load $(cut -d' ' -f1 /proc/loadavg)" | tee -a "$OUT/summary.txt"; }
: > "$OUT/summary.txt"
taskset -c 0 "$BIN" load register --target $NODE --bind $REG:24342 --eids 10000 --ttl 1440 --window 64 --key load-key --timeout 2s > "$OUT/initial.txt"
for trial in 1 2; do
  run ours-reg-$trial taskset -c 0 "$BIN" load register --target $NODE --bind $REG:24342 --eids 10000 --count 50000 --ttl 1440 --window 64 --key load-key --timeout 2s --duration 60
  run cpload-reg-$trial taskset -c 0 "$CPLOAD" register --target $NODE --bind $REG:24342 --eids 10000 --count 50000 --window 64 --key load-key --timeout 2 --duration 60 --progress 0
  run ours-req-$trial taskset -c 0 "$BIN" load request --target $NODE --bind $ITR --eids 10000 --rloc $REG --window 16 --duration 10 --timeout 2s
  run cpload-req-$trial taskset -c 0 "$CPLOAD" request --target $NODE --bind $ITR --eids 10000 --rloc $REG --window 16 --duration 10 --timeout 2 --progress 0
done
kill $NPID; wait $NPID || true
