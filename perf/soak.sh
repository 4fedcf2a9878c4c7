#!/usr/bin/env bash
# Soak (issue 12; not in CI): one map-server + map-resolver node under mixed load at half capacity for DURATION
# seconds (default 3600): its table of EIDS registrations refreshed once a minute (`load refresh`, paced), ECM
# Map-Requests at half the rate the node answered unpaced at the start (`load request --rate`, one 60 s run per
# minute, so each minute has its own latency percentiles), and management reads every 10 s (/api/site-table,
# /metrics, `show status`). Each minute: node RSS (/proc/PID/status), CPU, table size, request p50/p99/p99.9 and
# loss into soak.csv. At the end a verdict compares the last 10 minutes with minutes 5-15 (RSS growth %, p99
# change); runs shorter than 25 minutes compare their second half with their first half and say so.
# Node on cpu 1, generators and reads on cpu 0 (as perf/scale-measure.sh). Run after ./build.sh publish.
# Usage: perf/soak.sh [OUT]    env: DURATION=3600 EIDS=100000 REQ_RATE=(half the measured ceiling) RSS_LIMIT=10 P99_LIMIT=50
set -euo pipefail
BIN=${BIN:-artifacts/publish/lisp-decent}
OUT=${1:-/tmp/ld/soak}
DURATION=${DURATION:-3600}
EIDS=${EIDS:-100000}
RSS_LIMIT=${RSS_LIMIT:-10}   # % RSS growth allowed between the windows
P99_LIMIT=${P99_LIMIT:-50}   # % p99 growth allowed between the windows
NODE=127.0.45.1; REG=127.0.45.2; ITR=127.0.45.3; MGMT=127.0.45.1:18095
NODE_CPUS=${NODE_CPUS:-1}; GEN_CPUS=${GEN_CPUS:-0}
mkdir -p "$OUT"; rm -f "$OUT"/*.json "$OUT"/soak.csv
rss_kb() { awk '/VmRSS/{print $2}' /proc/$1/status; }
cpu_ticks() { awk '{print $14+$15}' /proc/$1/stat; }
: > "$OUT/summary.txt"
say() { echo "$*" | tee -a "$OUT/summary.txt"; }
jget() { python3 -c "import json,sys;d=json.load(open('$1'))['steps'][-1];print(d.get('$2',''))"; }

cat > "$OUT/node.toml" <<TOML
[node]
name = "soak-node"
roles = ["map-server", "map-resolver"]
listen = ["$NODE"]
log_level = "warning"
# The generator is one address standing for many ITRs: per-source Map-Request admission off (see perf/load-node-config.sh).
request_rate_per_source = 0

[map_server]
registration_timeout = "3m"

[[site]]
name = "load"
key = "load-key"
eid_prefixes = ["[0]10.0.0.0/8"]
accept_more_specifics = true

[management]
listen = "$MGMT"
TOML
taskset -c $NODE_CPUS "$BIN" run --config "$OUT/node.toml" > "$OUT/node.log" 2>&1 &
NPID=$!
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; kill $NPID 2>/dev/null || true; }
trap cleanup EXIT
sleep 2
RSS0=$(rss_kb $NPID)
say "soak: node pid $NPID on cpus $NODE_CPUS, generators on cpus $GEN_CPUS; $(nproc) cores, $(uname -r); DURATION=${DURATION}s EIDS=$EIDS; RSS at start ${RSS0} kB; $(date -u +%FT%TZ)"

# 1. The table: every EID registered once (record TTL 3 min, registration_timeout 3 min: a missed refresh expires).
taskset -c $GEN_CPUS "$BIN" load register --target $NODE --bind $REG:24342 --eids $EIDS --ttl 3 --window 256 --key load-key \
  --timeout 2s --duration 600 --json > "$OUT/register.json"
say "registered: accepted $(jget "$OUT/register.json" accepted) of $EIDS in $(jget "$OUT/register.json" send-seconds) s"

# 2. Capacity: Map-Requests unpaced (window 128) for 10 s; the soak runs at half of it unless REQ_RATE is given.
taskset -c $GEN_CPUS "$BIN" load request --target $NODE --bind $ITR --eids $EIDS --rloc $REG --window 128 --duration 10 --timeout 2s --json > "$OUT/ceiling.json"
CEIL=$(jget "$OUT/ceiling.json" reply-rate | awk '{printf "%d", $1}')
REQ_RATE=${REQ_RATE:-$((CEIL / 2))}
REG_RATE=$(( (EIDS + 59) / 60 ))   # each EID refreshed once a minute
say "ceiling: $CEIL Map-Replies/s unpaced (p99 $(jget "$OUT/ceiling.json" p99-us) us); soak: requests ${REQ_RATE}/s paced, refreshes ${REG_RATE}/s"

# 3. Refreshes for the whole soak (same --bind: the map-server sees refreshes, not new registrants).
taskset -c $GEN_CPUS "$BIN" load refresh --target $NODE --bind $REG:24342 --eids $EIDS --ttl 3 --key load-key --rate $REG_RATE \
  --duration $((DURATION + 30)) --timeout 2s --json > "$OUT/refresh.json" 2> "$OUT/refresh.err" &
PIDS+=($!)

# 4. Management reads every 10 s; failures counted.
( fails=0; reads=0
  while true; do
    for path in "/api/site-table?limit=1000" /metrics; do
      reads=$((reads + 1)); taskset -c $GEN_CPUS curl -sf -m 5 -o /dev/null "http://$MGMT$path" || fails=$((fails + 1))
    done
    reads=$((reads + 1)); taskset -c $GEN_CPUS "$BIN" show status --management $MGMT > /dev/null 2>&1 || fails=$((fails + 1))
    echo "$reads $fails" > "$OUT/mgmt-reads.txt"
    sleep 10
  done ) &
PIDS+=($!)

# 5. One paced request run per minute; a sample row after each.
echo "minute,elapsed_s,rss_kb,node_cpu_pct,registrations,sent,replies,loss_pct,p50_us,p99_us,p999_us,max_us" > "$OUT/soak.csv"
MINUTES=$(( DURATION / 60 )); [ "$MINUTES" -ge 1 ] || MINUTES=1
T0=$(date +%s.%N)
for m in $(seq 1 $MINUTES); do
  c0=$(cpu_ticks $NPID); t0=$(date +%s.%N)
  taskset -c $GEN_CPUS "$BIN" load request --target $NODE --bind $ITR --eids $EIDS --rloc $REG --rate $REQ_RATE --window 4096 \
    --duration 58 --timeout 1s --json > "$OUT/req-$m.json" 2>/dev/null || true
  sleep 0.5
  c1=$(cpu_ticks $NPID); t1=$(date +%s.%N)
  regs=$(curl -s -m 5 "http://$MGMT/api/counters" | python3 -c "import json,sys;print(json.load(sys.stdin)['control'][0]['registrations'])" 2>/dev/null || echo "")
  row=$(python3 - "$OUT/req-$m.json" <<'PY'
import json, sys
try: d = json.load(open(sys.argv[1]))['steps'][-1]
except Exception: print(",,,,,,"); sys.exit()
print(",".join(str(d.get(k, "")) for k in ("sent", "replies", "loss-percent", "p50-us", "p99-us", "p999-us", "max-us")))
PY
)
  cpu=$(echo "scale=1; ($c1 - $c0) * 100 / $(getconf CLK_TCK) / ($t1 - $t0)" | bc)
  echo "$m,$(echo "$t1 - $T0" | bc | cut -d. -f1),$(rss_kb $NPID),$cpu,$regs,$row" >> "$OUT/soak.csv"
  tail -1 "$OUT/soak.csv"
done

# 6. Verdict.
for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
wait "${PIDS[@]}" 2>/dev/null || true
curl -s -m 5 "http://$MGMT/metrics" > "$OUT/metrics-end.txt" || true
say "management reads (total, failed): $(cat "$OUT/mgmt-reads.txt" 2>/dev/null || echo 'none')"
say "log lines suppressed: $(grep -E '^lisp_log_lines_suppressed_total' "$OUT/metrics-end.txt" | awk '{print $2}'); control queue drops: $(grep -E '^lisp_control_queue_drops_total' "$OUT/metrics-end.txt" | awk '{print $2}'); registration-refused: $(grep -E 'event="registration-refused"' "$OUT/metrics-end.txt" | awk '{print $2}'); registration-expired: $(grep -E 'event="registration-expired"' "$OUT/metrics-end.txt" | awk '{print $2}')"
python3 - "$OUT/soak.csv" "$RSS_LIMIT" "$P99_LIMIT" <<'PY' | tee -a "$OUT/summary.txt"
import csv, sys, statistics as st
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["p99_us"]]
rss_limit, p99_limit = float(sys.argv[2]), float(sys.argv[3])
n = len(rows)
if n < 2:
    print(f"verdict: INCONCLUSIVE ({n} minute(s) sampled)"); sys.exit()
if n >= 25:
    base, last, how = rows[4:15], rows[-10:], "minutes 5-15 vs the last 10"
else:
    h = n // 2
    base, last, how = rows[:h], rows[h:], f"SHORT RUN: minutes 1-{h} vs {h+1}-{n} (not the 1-hour windows)"
rss = lambda rs: st.mean(float(r["rss_kb"]) for r in rs)
p99 = lambda rs: st.median(float(r["p99_us"]) for r in rs)
g_rss = (rss(last) / rss(base) - 1) * 100
g_p99 = (p99(last) / p99(base) - 1) * 100
flat = g_rss <= rss_limit and g_p99 <= p99_limit
print(f"verdict: {'FLAT' if flat else 'NOT FLAT'} ({how}): RSS {rss(base):.0f} -> {rss(last):.0f} kB ({g_rss:+.1f} %, limit {rss_limit:g} %), "
      f"median per-minute p99 {p99(base):.0f} -> {p99(last):.0f} us ({g_p99:+.1f} %, limit {p99_limit:g} %)")
PY
