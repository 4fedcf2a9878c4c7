#!/usr/bin/env bash
# Copies up to N (default 60) of afl's queue entries for TARGET, at most 1 KiB each and spread over the queue, into
# tests/fuzz-corpus/TARGET/ as queue-<afl id>, for the corpus replay test. Run after ./build.sh fuzz TARGET MINUTES.
set -euo pipefail
cd "$(dirname "$0")/.."
target=$1 n=${2:-60}
q=artifacts/fuzz/$target/default/queue
dest=tests/fuzz-corpus/$target
mkdir -p "$dest"
mapfile -t files < <(find "$q" -maxdepth 1 -type f -name 'id:*' -size -1025c | sort)
total=${#files[@]}
[ "$total" -gt 0 ] || { echo "no queue entries in $q" >&2; exit 1; }
step=$(( (total + n - 1) / n ))
kept=0
for ((i = 0; i < total; i += step)); do
  id=$(basename "${files[$i]}" | sed -n 's/^id:\([0-9]*\).*/\1/p')
  cp "${files[$i]}" "$dest/queue-$id"
  kept=$((kept + 1))
done
echo "kept $kept of $total queue entries of $target in $dest"
