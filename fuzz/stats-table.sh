#!/usr/bin/env bash
# Prints a Markdown row per target from afl's fuzzer_stats under artifacts/fuzz/TARGET/default/.
cd "$(dirname "$0")/.."
echo "| target | run_time (s) | execs_done | execs_per_sec | corpus_count (paths) | edges_found | stability | saved_crashes | saved_hangs |"
echo "|---|---|---|---|---|---|---|---|---|"
for t in control ecm lcaf decap config; do
  f=artifacts/fuzz/$t/default/fuzzer_stats
  [ -e "$f" ] || { echo "| $t | not run | | | | | | | |"; continue; }
  g() { sed -n "s/^$1 *: //p" "$f"; }
  echo "| $t | $(g run_time) | $(g execs_done) | $(g execs_per_sec) | $(g corpus_count) | $(g edges_found) | $(g stability) | $(g saved_crashes) | $(g saved_hangs) |"
done
