#!/usr/bin/env bash
# Build, test, publish and run lisp-decent.
#   ./build.sh            build everything (Release)
#   ./build.sh test       install test dependencies if missing, publish the native-AOT binary, run every test
#                         (process tests run that binary; LISP_TEST_JIT=1 runs them on the JIT build), print "N passed, N failed"
#   ./build.sh publish [x64|arm64|all]
#                         fully static native-AOT binaries: linux-x64 into artifacts/publish/lisp-decent, linux-arm64
#                         into artifacts/publish-arm64/lisp-decent (skipped with a warning without the cross toolchain)
#   ./build.sh run [ARGS] publish (if needed) and run the appliance; no ARGS = `run` on the embedded default config
#   ./build.sh package    .debs for amd64 (and arm64 when artifacts/publish-arm64 has its binary) in artifacts/package,
#                         then lintian, systemd-analyze verify/security, contents (README "Installing the .deb")
#   ./build.sh deps       install the Debian packages the tests, publish and package use (tshark, dnsmasq, tcpdump, iproute2,
#                         ping, nc, chromium, lld-16, gcc-aarch64-linux-gnu, qemu-user-static, lintian)
#   ./build.sh fuzz TARGET MINUTES
#                         coverage-guided fuzzing (afl++ + SharpFuzz, FUZZING.md): installs afl++ and the sharpfuzz tool
#                         if missing, builds and instruments the harness, runs afl-fuzz for MINUTES on TARGET
#                         (control, ecm, lcaf, decap, config), prints afl's stats and where the findings are
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
PUBLISH_DIR="$ROOT/artifacts/publish"
PUBLISH_ARM64_DIR="$ROOT/artifacts/publish-arm64"
RESULTS_DIR="$ROOT/artifacts/test-results"

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"; else return 1; fi
}

# Installs what the tests need when it is missing. A failure is reported, not fatal: the tests that need a
# missing tool skip and print why.
deps() {
  local missing=()
  command -v tshark  >/dev/null 2>&1 || missing+=(tshark)
  command -v dnsmasq >/dev/null 2>&1 && [ -x "$(command -v dnsmasq)" ] || missing+=(dnsmasq-base)
  command -v tcpdump >/dev/null 2>&1 || missing+=(tcpdump)
  command -v ip      >/dev/null 2>&1 || missing+=(iproute2)
  command -v ping    >/dev/null 2>&1 || missing+=(iputils-ping)     # data-plane netns tests
  command -v nc      >/dev/null 2>&1 || missing+=(netcat-openbsd)   # data-plane netns TCP transfer
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)        # management web page, rendered headless
  command -v lintian >/dev/null 2>&1 || missing+=(lintian)          # ./build.sh package: lint the .debs (PackageTests)
  command -v ld.lld-16 >/dev/null 2>&1 || missing+=(lld-16)         # publish: static-pie link
  command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || missing+=(gcc-aarch64-linux-gnu)   # publish: linux-arm64 cross link
  [ -e /usr/aarch64-linux-gnu/lib/libc.a ] || missing+=(libc6-dev-arm64-cross)          # publish: arm64 static glibc
  command -v qemu-aarch64-static >/dev/null 2>&1 || missing+=(qemu-user-static)         # tests: run the arm64 binary
  if [ ${#missing[@]} -eq 0 ]; then return 0; fi
  echo "build.sh: installing ${missing[*]}"
  echo "wireshark-common wireshark-common/install-setuid boolean false" | as_root debconf-set-selections 2>/dev/null || true
  if ! { as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
         as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; then
    echo "build.sh: WARNING: could not install ${missing[*]}; tests that need them will be skipped" >&2
  fi
}

build() { dotnet build LispDecentAppliance.sln -c Release -nologo -v quiet "$@"; }

# Static linking (src/Lisp.Appliance/Lisp.Appliance.csproj): static-pie through lld when it is installed (ASLR for
# the binary's own code and data too), else plain static non-PIE through the default ld.bfd (ld.bfd's static-pie
# link hits an assertion in binutils 2.40). The driver finds lld by the names ld.lld and, when cross-linking,
# aarch64-linux-gnu-ld.lld: links to Debian's ld.lld-16 under artifacts/toolchain/bin, put first on PATH.
TOOLCHAIN_DIR="$ROOT/artifacts/toolchain/bin"
lld_setup() {
  local lld
  lld=$(command -v ld.lld-16 || command -v ld.lld || true)
  [ -n "$lld" ] || return 1
  mkdir -p "$TOOLCHAIN_DIR"
  ln -sf "$lld" "$TOOLCHAIN_DIR/ld.lld"
  ln -sf "$lld" "$TOOLCHAIN_DIR/aarch64-linux-gnu-ld.lld"
}

# publish_rid RID OUTDIR [MSBUILD ARGS]: one native-AOT publish; fails on a trim/AOT warning, on a binary over the
# 12 MB budget, or on a binary that is not fully static (a program interpreter or a needed shared library).
publish_rid() {
  local rid=$1 out=$2
  shift 2
  rm -rf "$out"
  local log="$ROOT/artifacts/publish-$rid.log"
  mkdir -p "$ROOT/artifacts"
  PATH="$TOOLCHAIN_DIR:$PATH" dotnet publish src/Lisp.Appliance/Lisp.Appliance.csproj -c Release -r "$rid" -o "$out" -nologo \
    "-p:LispCommit=$LISP_COMMIT" "-p:LispBuildDate=$LISP_BUILD_DATE" "$@" 2>&1 | tee "$log" | grep -E "warning|error|->" || true
  [ -x "$out/lisp-decent" ] || { echo "build.sh: $rid publish failed (see $log)" >&2; return 1; }
  local warnings size
  warnings=$(grep -cE "warning (IL|CS|NU)[0-9]+" "$log" || true)
  size=$(stat -c %s "$out/lisp-decent")
  echo "build.sh: $out/lisp-decent ($rid, $LISP_LINK) $size bytes, ${warnings} trim/AOT warnings"
  [ "$warnings" = 0 ] || { echo "build.sh: trim/AOT warnings are errors (see $log)" >&2; return 1; }
  [ "$size" -le $((12 * 1024 * 1024)) ] || { echo "build.sh: $rid binary is $size bytes, over the 12 MiB budget" >&2; return 1; }
  if command -v readelf >/dev/null 2>&1; then
    if readelf -lW "$out/lisp-decent" | grep -q "INTERP" || readelf -dW "$out/lisp-decent" | grep -q "(NEEDED)"; then
      echo "build.sh: $rid binary is not fully static (readelf shows a program interpreter or NEEDED libraries)" >&2
      return 1
    fi
  fi
}

# publish [x64|arm64|all]: one fully static executable per architecture (default all):
#   artifacts/publish/lisp-decent        linux-x64   (CPU floor x86-64-v2, see the csproj)
#   artifacts/publish-arm64/lisp-decent  linux-arm64 (armv8.0-a), cross-linked with gcc-aarch64-linux-gnu;
#                                        without that toolchain: a warning, and x64 only
publish() {
  local which=${1:-all}
  case "$which" in x64|arm64|all) ;; *) echo "usage: ./build.sh publish [x64|arm64|all]" >&2; return 2 ;; esac
  LISP_COMMIT=unknown
  if command -v git >/dev/null 2>&1 && git rev-parse --git-dir >/dev/null 2>&1; then
    LISP_COMMIT=$(git rev-parse --short=12 HEAD)
    git diff --quiet HEAD -- src 2>/dev/null || LISP_COMMIT="$LISP_COMMIT-dirty"
  fi
  LISP_BUILD_DATE=$(date -u ${SOURCE_DATE_EPOCH:+-d "@$SOURCE_DATE_EPOCH"} +%Y-%m-%dT%H:%M:%SZ)
  local link=()
  if lld_setup; then
    link=(-p:LispStaticPie=true); LISP_LINK="static-pie, lld"
  else
    LISP_LINK="static non-PIE, ld.bfd"
    echo "build.sh: note: lld not found (apt-get install lld-16): linking static non-PIE (no ASLR for the binary image)" >&2
  fi
  if [ "$which" != arm64 ]; then
    publish_rid linux-x64 "$PUBLISH_DIR" "${link[@]}" || return 1
  fi
  if [ "$which" != x64 ]; then
    if command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 && command -v aarch64-linux-gnu-objcopy >/dev/null 2>&1 &&
       [ -e /usr/aarch64-linux-gnu/lib/libc.a ]; then
      publish_rid linux-arm64 "$PUBLISH_ARM64_DIR" "${link[@]}" \
        "-p:CppCompilerAndLinker=$ROOT/native/toolchain/aarch64-gcc-wrapper.sh" -p:ObjCopyName=aarch64-linux-gnu-objcopy || return 1
    else
      rm -rf "$PUBLISH_ARM64_DIR"
      echo "build.sh: WARNING: no linux-arm64 binary: the cross toolchain is missing (./build.sh deps installs gcc-aarch64-linux-gnu and libc6-dev-arm64-cross)" >&2
      [ "$which" = arm64 ] && return 1
    fi
  fi
  return 0
}

run_tests() {
  deps
  rm -rf "$RESULTS_DIR"
  mkdir -p "$RESULTS_DIR"
  local rc=0
  dotnet build LispDecentAppliance.sln -c Release -nologo -v quiet || return 1
  # The process-level tests run the artifact users run: the native-AOT binary, published once here.
  # LISP_TEST_JIT=1 runs them on the JIT build instead (for debugging) and skips the publish.
  if [ "${LISP_TEST_JIT:-}" = 1 ]; then
    echo "build.sh: LISP_TEST_JIT=1: process tests run 'dotnet lisp-decent.dll' (the JIT build)"
    unset LISP_DECENT_BINARY
  else
    publish || return 1
    export LISP_DECENT_BINARY="$PUBLISH_DIR/lisp-decent"
    echo "build.sh: process tests run $LISP_DECENT_BINARY (native AOT)"
  fi
  # One project at a time, each with its own results file: parallel runs on 2 cores made the process-level
  # tests slow, and trx names by timestamp collided when two projects finished in the same second.
  local projects=() p name
  for p in tests/*/*.Tests.csproj; do projects+=("$p"); done
  for p in "${projects[@]}"; do
    name=$(basename "$p" .csproj)
    echo "=== $name"
    dotnet test "$p" -c Release --no-build -nologo \
      --logger "trx;LogFileName=$name.trx" --logger "console;verbosity=normal" --results-directory "$RESULTS_DIR" "$@" || rc=$?
  done
  local passed=0 failed=0 skipped=0 total=0 files=0
  for p in "${projects[@]}"; do
    name=$(basename "$p" .csproj)
    local f="$RESULTS_DIR/$name.trx"
    if [ ! -e "$f" ]; then echo "build.sh: $name wrote no results (crashed or did not run)" >&2; rc=1; continue; fi
    files=$((files + 1))
    local counters
    counters=$(grep -o '<Counters [^>]*>' "$f" | head -1)
    get() { echo "$counters" | sed -n "s/.* $1=\"\([0-9]*\)\".*/\1/p"; }
    total=$((total + $(get total)))
    passed=$((passed + $(get passed)))
    failed=$((failed + $(get failed)))
    skipped=$((skipped + $(get notExecuted)))
  done
  # A skipped test is never silent: list each with its reason (trx records skips as NotExecuted).
  grep -ho 'testName="[^"]*"[^>]*outcome="NotExecuted"' "$RESULTS_DIR"/*.trx 2>/dev/null | sed 's/testName="\([^"]*\)".*/skipped: \1/' || true
  grep -ho 'testName="[^"]*"[^>]*outcome="Failed"' "$RESULTS_DIR"/*.trx 2>/dev/null | sed 's/testName="\([^"]*\)".*/FAILED: \1/' || true
  echo "test projects: $files of ${#projects[@]}, tests: $total, skipped: $skipped"
  echo "$passed passed, $failed failed"
  if [ "$failed" != 0 ]; then rc=1; fi
  return $rc
}

# Coverage-guided fuzzing (FUZZING.md). The harness (fuzz/Lisp.Fuzz) is a JIT build of its own, never published:
# built into artifacts/fuzz/bin, its assemblies under test instrumented in place by `sharpfuzz`, then run by afl-fuzz.
fuzz() {
  local target=${1:-} minutes=${2:-}
  case "$target" in control|ecm|lcaf|decap|config|offload) ;; *) echo "usage: ./build.sh fuzz control|ecm|lcaf|decap|config|offload MINUTES" >&2; return 2 ;; esac
  [[ "$minutes" =~ ^[0-9]+$ ]] && [ "$minutes" -gt 0 ] || { echo "usage: ./build.sh fuzz $target MINUTES (a whole number > 0)" >&2; return 2; }
  if ! command -v afl-fuzz >/dev/null 2>&1; then
    echo "build.sh: installing afl++"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends afl++ >/dev/null ||
      { echo "build.sh: could not install afl++" >&2; return 1; }
  fi
  export PATH="$PATH:$HOME/.dotnet/tools"
  if ! command -v sharpfuzz >/dev/null 2>&1; then
    echo "build.sh: installing the sharpfuzz tool (SharpFuzz.CommandLine 2.3.0)"
    dotnet tool install --global SharpFuzz.CommandLine --version 2.3.0 >/dev/null || { echo "build.sh: could not install sharpfuzz" >&2; return 1; }
  fi
  local bin="$ROOT/artifacts/fuzz/bin" out="$ROOT/artifacts/fuzz/$target"
  # Rebuilt and re-instrumented only when a source changed since the last instrumentation (sharpfuzz edits the
  # dlls in place, so an instrumented dll is never instrumented twice).
  if [ ! -e "$bin/.instrumented" ] || [ -n "$(find src fuzz -newer "$bin/.instrumented" \( -name '*.cs' -o -name '*.csproj' \) -not -path '*/obj/*' -not -path '*/bin/*' -print -quit)" ]; then
    rm -rf "$bin"
    dotnet build fuzz/Lisp.Fuzz/Lisp.Fuzz.csproj -c Release -nologo -v quiet -o "$bin" || return 1
    # The assemblies under test; the harness, the targets and the runtime stay uninstrumented.
    local dll
    for dll in Lisp.Wire.dll Lisp.DataPlane.dll lisp-decent.dll Tomlyn.dll; do
      sharpfuzz "$bin/$dll" >/dev/null || { echo "build.sh: sharpfuzz could not instrument $dll" >&2; return 1; }
    done
    touch "$bin/.instrumented"
  fi
  echo "build.sh: instrumented Lisp.Wire, Lisp.DataPlane, lisp-decent (config loader), Tomlyn in $bin"
  rm -rf "$out"
  mkdir -p "$out"
  # afl: -t 5000 ms per input (the .NET runtime is slow to warm up), no memory limit (the CLR reserves a lot),
  # -V stops after MINUTES. The binary is dotnet, not an afl-instrumented ELF: AFL_SKIP_BIN_CHECK.
  local rc=0
  AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_AFFINITY=1 \
    timeout $((minutes * 60 + 120)) afl-fuzz -i "$ROOT/fuzz/seeds/$target" -o "$out" -t 5000 -m none -V $((minutes * 60)) \
    -- dotnet "$bin/Lisp.Fuzz.dll" "$target" >"$out/afl.log" 2>&1 || rc=$?
  local stats="$out/default/fuzzer_stats"
  if [ ! -e "$stats" ]; then
    echo "build.sh: afl-fuzz wrote no stats (exit $rc); its log:" >&2
    tail -40 "$out/afl.log" >&2
    return 1
  fi
  grep -E '^(start_time|last_update|run_time|execs_done|execs_per_sec|corpus_count|corpus_found|edges_found|total_edges|bitmap_cvg|stability|saved_crashes|saved_hangs|afl_version|command_line) ' "$stats"
  local crashes hangs
  crashes=$(find "$out/default/crashes" -type f -name 'id:*' 2>/dev/null | wc -l)
  hangs=$(find "$out/default/hangs" -type f -name 'id:*' 2>/dev/null | wc -l)
  echo "build.sh: fuzz $target: ${minutes} min, $crashes crashes in $out/default/crashes, $hangs hangs in $out/default/hangs, queue in $out/default/queue, log $out/afl.log"
  if [ "$crashes" != 0 ] || [ "$hangs" != 0 ]; then
    echo "build.sh: triage: dotnet $bin/Lisp.Fuzz.dll $target $out/default/crashes (prints each exception); minimize with"
    echo "  AFL_SKIP_BIN_CHECK=1 afl-tmin -t 5000 -m none -i FILE -o tests/fuzz-corpus/$target/NAME -- dotnet $bin/Lisp.Fuzz.dll $target"
  fi
}

# Debian packages (packaging/debian, packaging/systemd; README "Installing the .deb"): one .deb per architecture
# whose binary is published (amd64: artifacts/publish, arm64: artifacts/publish-arm64), built offline with
# dpkg-deb --root-owner-group (every file root:root; postinst gives the conffile its group, lisp-decent, through
# dpkg-statoverride). Then the checks, printed: contents and conffiles, lintian, systemd-analyze verify and
# security (exposure must be <= 2.5). The same checks run as a test (PackageTests).
PACKAGE_DIR="$ROOT/artifacts/package"
package() {
  local version
  version=$(sed -n '1s/^lisp-decent (\([^)]*\)).*/\1/p' packaging/debian/changelog)
  [ -n "$version" ] || { echo "build.sh: no version in packaging/debian/changelog" >&2; return 1; }
  command -v dpkg-deb >/dev/null 2>&1 || { echo "build.sh: dpkg-deb is missing" >&2; return 1; }
  [ -x "$PUBLISH_DIR/lisp-decent" ] || publish || return 1
  rm -rf "$PACKAGE_DIR"
  mkdir -p "$PACKAGE_DIR"
  local arch bin machine built=() rc=0
  for arch in amd64 arm64; do
    case $arch in
      amd64) bin="$PUBLISH_DIR/lisp-decent"; machine="X86-64" ;;
      arm64) bin="$ROOT/artifacts/publish-arm64/lisp-decent"; machine="AArch64" ;;
    esac
    if [ ! -x "$bin" ]; then
      echo "build.sh: package: $arch skipped: no $arch binary at ${bin#"$ROOT"/} (publish it first)"
      continue
    fi
    if ! readelf -h "$bin" | grep -q "Machine:.*$machine"; then
      echo "build.sh: package: ${bin#"$ROOT"/} is not an $arch ($machine) executable" >&2; return 1
    fi
    package_one "$arch" "$bin" "$version" || return 1
    built+=("$PACKAGE_DIR/lisp-decent_${version}_$arch.deb")
  done
  local deb
  for deb in "${built[@]}"; do package_check "$deb" || rc=1; done
  echo "build.sh: package: ${#built[@]} package(s) in ${PACKAGE_DIR#"$ROOT"/}"
  return $rc
}

package_one() {
  local arch=$1 bin=$2 version=$3
  local root="$PACKAGE_DIR/root-$arch" deb="$PACKAGE_DIR/lisp-decent_${version}_$arch.deb"
  local doc="$root/usr/share/doc/lisp-decent"
  rm -rf "$root"
  install -d -m 0755 "$root/DEBIAN" "$root/usr/sbin" "$root/etc/lisp-decent" "$root/usr/lib/systemd/system" \
    "$root/usr/lib/sysusers.d" "$doc/examples" "$root/usr/share/man/man8" "$root/usr/share/lintian/overrides"
  install -m 0755 "$bin" "$root/usr/sbin/lisp-decent"
  install -m 0640 packaging/debian/lisp-decent.toml "$root/etc/lisp-decent/lisp-decent.toml"
  install -m 0644 packaging/systemd/lisp-decent.service "$root/usr/lib/systemd/system/lisp-decent.service"
  install -m 0644 packaging/systemd/lisp-decent.sysusers "$root/usr/lib/sysusers.d/lisp-decent.conf"
  install -m 0644 packaging/debian/copyright packaging/debian/README "$doc/"
  install -m 0644 packaging/examples/*.toml "$doc/examples/"
  gzip -9n -c packaging/debian/changelog >"$doc/changelog.gz"
  gzip -9n -c packaging/debian/lisp-decent.8 >"$root/usr/share/man/man8/lisp-decent.8.gz"
  chmod 0644 "$doc/changelog.gz" "$root/usr/share/man/man8/lisp-decent.8.gz"
  # Lintian overrides, each with the reason; those about a static binary only when it is one (else lintian
  # would report them unused).
  cp packaging/debian/lintian-overrides "$root/usr/share/lintian/overrides/lisp-decent"
  if ! readelf -d "$bin" | grep -q '(NEEDED)'; then
    if readelf -h "$bin" | grep -q 'Type:.*DYN'; then
      cat packaging/debian/lintian-overrides.static-pie >>"$root/usr/share/lintian/overrides/lisp-decent"
    else
      cat packaging/debian/lintian-overrides.static >>"$root/usr/share/lintian/overrides/lisp-decent"
    fi
  fi
  chmod 0644 "$root/usr/share/lintian/overrides/lisp-decent"
  # A dynamically linked binary needs glibc at least as new as the newest symbol version it uses; a static one
  # depends on nothing.
  local depends="" glibc
  if readelf -d "$bin" | grep -q '(NEEDED)'; then
    glibc=$(readelf -V "$bin" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -Vu | tail -1)
    depends="Depends: libc6 (>= ${glibc:-2.34})"$'\n'
  fi
  local size
  size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
  sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@INSTALLED_SIZE@/$size/" packaging/debian/control.in |
    awk -v d="$depends" '{ if (index($0, "@DEPENDS@") == 1) { printf "%s", d; sub(/^@DEPENDS@/, "") } print }' >"$root/DEBIAN/control"
  install -m 0644 packaging/debian/conffiles "$root/DEBIAN/conffiles"
  install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$root/DEBIAN/"
  (cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
  chmod 0644 "$root/DEBIAN/md5sums"
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s) \
    dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null || return 1
  echo "build.sh: package: ${deb#"$ROOT"/} $(stat -c %s "$deb") bytes (binary $(stat -c %s "$bin") bytes)"
}

# The checks of one .deb, printed; fails on a lintian error or warning not overridden, a unit systemd rejects,
# or an exposure above 2.5. A missing tool is reported and skipped.
package_check() {
  local deb=$1 rc=0 tmp out
  echo "=== $(basename "$deb")"
  dpkg-deb -f "$deb" Package Version Architecture Depends Installed-Size
  echo "--- contents (dpkg-deb -c)"
  dpkg-deb -c "$deb" | awk '{ print $1, $2, $6 }'
  echo "--- conffiles: $(dpkg-deb -I "$deb" conffiles | tr '\n' ' ')"
  if command -v lintian >/dev/null 2>&1; then
    echo "--- lintian"
    local lrc=0
    # Verdict from the tags themselves (E: error, W: warning; O: overridden with the reason shown as N: lines):
    # with --show-overrides lintian's own --fail-on counts overridden tags too.
    out=$(lintian --fail-on none --display-info --show-overrides "$deb" 2>/dev/null) || lrc=$?
    [ -n "$out" ] && echo "$out"
    if [ "$lrc" != 0 ]; then echo "lintian: FAILED (exit $lrc)"; rc=1
    elif echo "$out" | grep -qE '^(E|W):'; then echo "lintian: FAILED (an error or warning that is not overridden)"; rc=1; fi
    echo "lintian: $(echo "$out" | grep -c '^E:') errors, $(echo "$out" | grep -c '^W:') warnings, $(echo "$out" | grep -c '^I:') info, $(echo "$out" | grep -c '^O:') overridden"
  else
    echo "--- lintian: skipped (not installed; ./build.sh deps installs it)"
  fi
  if command -v systemd-analyze >/dev/null 2>&1; then
    tmp=$(mktemp -d)
    dpkg-deb -x "$deb" "$tmp"
    echo "--- systemd-analyze verify"
    # Offline (no systemd as PID 1 needed): the unit file from the package, its commands resolved in the
    # unpacked tree (--root), its man page found there; the targets its default dependencies name are the host's.
    # Clean means exit 0 and nothing printed (an unknown key is only a warning).
    cp -n /usr/lib/systemd/system/*.target "$tmp/usr/lib/systemd/system/" 2>/dev/null || true
    out=$(cd "$tmp" && MANPATH="$tmp/usr/share/man" systemd-analyze verify --root="$tmp" --man=yes \
          "$tmp/usr/lib/systemd/system/lisp-decent.service" 2>&1) && [ -z "$out" ] && echo "verify: ok" ||
      { echo "$out"; echo "verify: FAILED"; rc=1; }
    echo "--- systemd-analyze security --offline=yes"
    out=$(systemd-analyze security --offline=yes --root="$tmp" --threshold=25 lisp-decent.service 2>&1) || true
    echo "$out" | grep -E '^✗|Overall'
    local level
    level=$(echo "$out" | sed -n 's/.*Overall exposure level for lisp-decent.service: \([0-9.]*\).*/\1/p')
    echo "exposure: ${level:-unknown} (limit 2.5)"
    if [ -z "$level" ] || ! awk -v l="$level" 'BEGIN { exit !(l <= 2.5) }'; then rc=1; fi
    rm -rf "$tmp"
  else
    echo "--- systemd-analyze: skipped (not installed)"
  fi
  return $rc
}

cmd=${1:-build}
[ $# -gt 0 ] && shift
case "$cmd" in
  build) build "$@" ;;
  test) run_tests "$@" ;;
  publish) publish "$@" ;;
  deps) deps ;;
  package) package ;;
  fuzz) fuzz "$@" ;;
  run)
    if [ ! -x "$PUBLISH_DIR/lisp-decent" ] || [ -n "$(find src -newer "$PUBLISH_DIR/lisp-decent" -name '*.cs' -print -quit)" ]; then publish x64; fi
    if [ $# -eq 0 ]; then set -- run; fi
    exec "$PUBLISH_DIR/lisp-decent" "$@" ;;
  *) echo "usage: ./build.sh [build|test|publish [x64|arm64|all]|package|run [ARGS]|deps|fuzz TARGET MINUTES]" >&2; exit 2 ;;
esac
