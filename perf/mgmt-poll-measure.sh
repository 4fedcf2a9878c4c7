#!/usr/bin/env bash
# Issue 12: does polling the management API stall the control plane? One map-server node with N registrations
# (default 100k), Map-Requests at full rate for DUR s, once quiet and once while a client polls /api/site-table
# (first page, then every page) without pause. Reports replies/s, latency max (the control plane's longest silence
# is at most that) and the node's snapshot counters. Run after ./build.sh publish (or BIN=...).
# Usage: perf/mgmt-poll-measure.sh [OUT]     env: N=100000 DUR=10 BIN=artifacts/publish/lisp-decent
set -euo pipefail
. "$(dirname "$0")/load-node-config.sh"
BIN=${BIN:-artifacts/publish/lisp-decent}
OUT=${1:-/tmp/ld/mgmt-poll}
N=${N:-100000}; DUR=${DUR:-10}
NODE=127.0.44.1; REG=127.0.44.2; ITR=127.0.44.3; MGMT=$NODE:18082
mkdir -p "$OUT"
write_node_config "$OUT/node.toml" $NODE $MGMT
$BIN run --config "$OUT/node.toml" > "$OUT/node.log" 2>&1 &
NPID=$!
trap 'kill $NPID 2>/dev/null || true; kill $PPID2 2>/dev/null || true' EXIT
sleep 2
$BIN load register --target $NODE --bind $REG:24342 --eid-base "[0]10.0.0.0/32" --eids $N --ttl 1440 --window 256 --key load-key --timeout 2s --duration 600 > "$OUT/reg.txt" 2>&1 || true
grep -E '^accepted' "$OUT/reg.txt" || true
req() { $BIN load request --target $NODE --bind $ITR --eids $N --rloc $REG --window 128 --duration $DUR --timeout 2s > "$1" 2>&1 || true; }
req "$OUT/req-quiet.txt"
echo "quiet:   $(grep -E '^replies' "$OUT/req-quiet.txt")"; echo "         $(grep -E '^latency' "$OUT/req-quiet.txt")"
poll() {
  while true; do
    next=$(curl -s "http://$MGMT/api/site-table" | python3 -c "import json,sys;print(json.load(sys.stdin).get('next') or '')")
    while [ -n "$next" ]; do
      next=$(curl -s "http://$MGMT/api/site-table?limit=10000&after=$next" | python3 -c "import json,sys;print(json.load(sys.stdin).get('next') or '')")
    done
  done
}
poll & PPID2=$!
req "$OUT/req-polled.txt"
kill $PPID2 2>/dev/null || true
echo "polled:  $(grep -E '^replies' "$OUT/req-polled.txt")"; echo "         $(grep -E '^latency' "$OUT/req-polled.txt")"
curl -s http://$MGMT/api/counters | python3 -c "import json,sys;m=json.load(sys.stdin)['management'];print('snapshots', m['snapshots'], 'longest control-thread read', m['longest-snapshot-read-ms'], 'ms; requests', m['events']['requests'])"
