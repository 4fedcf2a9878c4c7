#!/usr/bin/env bash
# Shows that the native-AOT binary takes the hardware paths on its hot lookup/hash functions.
#
#   perf/inspect-codegen.sh                 use artifacts/publish/lisp-decent (publish first if missing)
#   perf/inspect-codegen.sh --publish       publish again (./build.sh publish), then inspect
#   LISP_DECENT_BINARY=/path/lisp-decent perf/inspect-codegen.sh     inspect another build (its .dbg beside it)
#   perf/inspect-codegen.sh --full          also print the full disassembly of each function
#
# The published binary is stripped (StripSymbols=true); lisp-decent.dbg beside it keeps the symbol table, so
# each function's address range comes from `nm -S` on the .dbg and `objdump -d --start-address --stop-address`
# disassembles that range of the binary. Every `call` target is named by looking its address up in the same
# symbol table. Checked per function:
#   - the CRC32-C hash is the `crc32` instruction, inline (Crc32C.Lookup32/64 leave no symbol of their own);
#   - the exact-table probe (ExactTable.TryGet, inlined into V4Lpm.LookupLonger/LookupHash and V6Lpm.Lookup)
#     compares tags with pcmpeqd (x86-64-v2: two xmm compares) or vpcmpeqd (x86-64-v3: one ymm compare);
#   - no `call` into the tiny helpers (Crc32C.*, ExactTable TryGet, RlocTable.V4, PacketBatch.Slot/
#     SlotPointer/Packet/AddressPointer/AddressBytes, DataPlaneCounters.Drop, FlowHash.SourcePort, V6Lpm.Mask).
# Exit status 1 when a check fails. tests/Lisp.Appliance.Tests/Codegen/AotCodegenTests.cs checks the same.
set -euo pipefail
cd "$(dirname "$0")/.."
FULL=0
for a in "$@"; do
  case "$a" in
    --publish) ./build.sh publish ;;
    --full) FULL=1 ;;
    *) echo "usage: $0 [--publish] [--full]" >&2; exit 2 ;;
  esac
done
BIN=${LISP_DECENT_BINARY:-artifacts/publish/lisp-decent}
if [ ! -x "$BIN" ]; then ./build.sh publish; fi
DBG="$BIN.dbg"
[ -f "$DBG" ] || { echo "inspect-codegen: $DBG missing (needs StripSymbols=true's side file)" >&2; exit 1; }
command -v objdump >/dev/null || { echo "inspect-codegen: objdump missing (apt-get install binutils)" >&2; exit 1; }

SYMS=$(mktemp)
trap 'rm -f "$SYMS"' EXIT
# address size name (hex, hex, name) plus start/end in decimal, code symbols only (call-target lookup)
nm -S --defined-only "$DBG" | awk '
  function hex(h,   i, c, v) { v = 0; h = tolower(h); for (i = 1; i <= length(h); i++) { c = index("0123456789abcdef", substr(h, i, 1)) - 1; v = v * 16 + c } return v }
  $3 ~ /^[tT]$/ && NF >= 4 { s = hex($1); printf "%s %s %s %.0f %.0f\n", $1, $2, $4, s, s + hex($2) }' > "$SYMS"

echo "binary: $BIN ($(stat -c %s "$BIN") bytes)"

HELPERS='Crc32C__|ExactTable_2<[^>]*>__TryGet|RlocTable__V4|RlocTable__IsV4|PacketBatch__Slot|PacketBatch__SlotPointer|PacketBatch__Packet|PacketBatch__Address(Pointer|Bytes)|DataPlaneCounters__Drop|FlowHash__SourcePort|FlowHash__Finish|V6Lpm__Mask'
fail=0

# check NAME_REGEX WANT_CRC WANT_SIMD
check() {
  local pattern=$1 want_crc=$2 want_simd=$3 line addr size name start stop asm
  line=$(awk -v p="$pattern" '$3 ~ p"$"' "$SYMS" | head -1)
  if [ -z "$line" ]; then echo "MISSING  $pattern (no such symbol: inlined everywhere or renamed)"; fail=1; return; fi
  read -r addr size name _ <<<"$line"
  start=$((16#$addr)); stop=$((16#$addr + 16#$size))
  asm=$(objdump -d --no-show-raw-insn -M intel --start-address=$start --stop-address=$stop "$BIN" | awk '/^ *[0-9a-f]+:/')
  local crc simd calls helper_calls
  crc=$(grep -cE '\bcrc32\b' <<<"$asm" || true)
  simd=$(grep -cE '\bv?pcmpeq[bdq]\b' <<<"$asm" || true)
  # call targets -> symbol names
  calls=$(grep -oE 'call +[0-9a-f]+' <<<"$asm" | awk '{print $2}' | sort -u | while read -r t; do
      awk -v t=$((16#$t)) '$4 <= t && t < $5 { print $3; found = 1; exit } END { if (!found) printf "0x%x (no symbol)\n", t }' "$SYMS"
    done | sort -u)
  helper_calls=$(grep -E "$HELPERS" <<<"$calls" || true)
  local verdict=ok
  if [ "$want_crc" = 1 ] && [ "$crc" = 0 ]; then verdict=FAIL; fi
  if [ "$want_simd" = 1 ] && [ "$simd" = 0 ]; then verdict=FAIL; fi
  if [ -n "$helper_calls" ]; then verdict=FAIL; fi
  [ "$verdict" = ok ] || fail=1
  printf '%-4s %s\n     %d bytes, %d instructions; crc32: %d, pcmpeq*/vpcmpeq*: %d; calls: %s\n' \
    "$verdict" "$name" $((16#$size)) "$(wc -l <<<"$asm")" "$crc" "$simd" "$(echo "$calls" | grep -c . || true)"
  { grep -E '\bcrc32\b|\bv?pcmpeq[bdq]\b|\bv?movmskps\b|\bv?ptest\b' <<<"$asm" || true; } | sed 's/^/       /' | head -12
  if [ -n "$calls" ]; then echo "$calls" | sed 's/^/       call -> /'; fi
  if [ -n "$helper_calls" ]; then echo "$helper_calls" | sed 's/^/       HELPER CALL (should be inlined) -> /'; fi
  if [ "$FULL" = 1 ]; then echo "$asm"; fi
}

echo
echo "== exact-table probe (CRC32-C + 8-lane tag compare), inlined into the LPM lookups"
check 'V4Lpm__LookupLonger' 1 1
check 'V4Lpm__LookupHash' 1 1
check 'V6Lpm__Lookup' 1 1
echo
echo "== flow hash (CRC32-C of the 5-tuple)"
check 'FlowHash__FromPacket' 1 0
echo
echo "== per-packet data-plane code: no calls to the tiny helpers"
check 'ItrWorker__Encapsulate' 0 0
check 'ItrWorker__Process' 0 0
check 'EtrWorker__Decapsulate' 0 0
echo
echo "helper symbols still emitted out of line (fine when nothing hot calls them):"
awk '{print $3}' "$SYMS" | grep -E "$HELPERS" | sed 's/^/  /' || echo "  none"
echo
if [ "$fail" = 0 ]; then echo "inspect-codegen: all checks passed"; else echo "inspect-codegen: some checks FAILED"; fi
exit $fail
