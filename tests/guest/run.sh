#!/usr/bin/env bash
# tests/guest/run.sh - nvgrace's /dev/vfio backend and nvgrace-probe against a
# real Linux kernel: boots a throw-away QEMU guest (tests/guest/run-guest.sh)
# with ivshmem-plain (BAR2 = a host file) and virtio-rng-pci bound to
# vfio-pci, runs the static test binary and nvgrace-probe in it, then checks
# on the host the bytes the guest wrote into the BAR2 file and the probe's
# output. Last line: "guest: N passed, N failed"; exit status 0 only if all passed.
#
# Environment (all optional):
#   NVGRACE_SOURCE_DIR       source tree (default: two levels up)
#   NVGRACE_GUEST_BUILD_DIR  static build tree (default: <source>/build/guest)
#   NVGRACE_JOBS             build jobs (default 2)
#   NVGRACE_GUEST_MODE       viommu (default) or noiommu (rebuilds vfio.ko once)
#   NVGRACE_GUEST_KEEP_LOG   keep the console log and BAR2 file (their paths are printed)
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=${NVGRACE_SOURCE_DIR:-$(cd "$HERE/../.." && pwd)}
BUILD=${NVGRACE_GUEST_BUILD_DIR:-$SRC/build/guest}
JOBS=${NVGRACE_JOBS:-2}
MODE=${NVGRACE_GUEST_MODE:-viommu}
SHM_SIZE=$((16 << 20))
T_START=$(date +%s%N)

pass=0 fail=0
ok() { echo "PASS: $*"; pass=$((pass + 1)); }
ko() { echo "FAIL: $*"; fail=$((fail + 1)); }
finish() {
	echo "guest: took $((($(date +%s%N) - T_START) / 1000000)) ms"
	echo "guest: $pass passed, $fail failed"
	[ "$fail" -eq 0 ] && exit 0
	exit 1
}
die() { ko "$*"; finish; }

# ---- packages ----------------------------------------------------------------------
missing=()
for p in qemu-system-x86 qemu-system-data busybox-static cpio kmod xz-utils linux-image-amd64 python3 \
	cmake g++ doctest-dev libmsgsl-dev; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	sudo=
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	echo "guest: installing ${missing[*]}"
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" ||
		{ $sudo apt-get update -q && $sudo env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -q --no-install-recommends "${missing[@]}"; } ||
		die "cannot install ${missing[*]}"
fi

# ---- static build of the test binary and nvgrace-probe -----------------------------------
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
mkdir -p "$BUILD"
# -O2, not CMake's Release -O3: GCC 12's -O3 reports false stringop-overflow
# warnings in inlined copy paths, and warnings are errors here.
cmake -S "$SRC" -B "$BUILD" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O2 -DNDEBUG" \
	-DCMAKE_CXX_COMPILER=g++ -DCMAKE_EXE_LINKER_FLAGS=-static -DNVGRACE_BUILD_BENCHMARKS=OFF \
	-DNVGRACE_BUILD_EXAMPLES=OFF -DNVGRACE_INSTALL=OFF -DNVGRACE_WERROR=ON >"$BUILD/configure.log" 2>&1 ||
	{ cat "$BUILD/configure.log"; die "cmake configure of $BUILD failed"; }
cmake --build "$BUILD" -j "$JOBS" --target nvgrace_guest_test nvgrace-probe ||
	die "building nvgrace_guest_test and nvgrace-probe failed"
TEST_BIN=$BUILD/tests/guest/nvgrace_guest_test
PROBE_BIN=$BUILD/tools/nvgrace-probe/nvgrace-probe
for b in "$TEST_BIN" "$PROBE_BIN"; do
	[ -x "$b" ] || die "$b was not built"
	# The guest has no shared libraries besides what run-guest.sh copies for the main program.
	if ldd "$b" >/dev/null 2>&1; then die "$b is not statically linked"; fi
done
ok "static build of nvgrace_guest_test and nvgrace-probe"

# ---- boot the guest ------------------------------------------------------------------
WORK=$(mktemp -d)
SHM=/dev/shm/nvgrace-guest-$$
LOG=$WORK/console.log
cleanup() {
	if [ -n "${NVGRACE_GUEST_KEEP_LOG:-}" ]; then
		echo "guest: console log $LOG, BAR2 file $SHM"
	else
		rm -rf "$WORK" "$SHM"
	fi
}
trap cleanup EXIT
python3 "$HERE/check_host.py" seed "$SHM" "$SHM_SIZE" || die "cannot seed $SHM"

T0=$(date +%s%N)
"$HERE/run-guest.sh" --mode "$MODE" --shm "$SHM" --shm-size "$SHM_SIZE" --keep-shm --timeout 240 \
	--add "$TEST_BIN" --add "$PROBE_BIN" \
	--qemu-arg -device --qemu-arg virtio-rng-pci --bind 1af4:1005 \
	"$HERE/guest-main.sh" >"$LOG" 2>&1
rc=$?
GUEST_MS=$((($(date +%s%N) - T0) / 1000000))
# The test's own output (everything but the probe's JSON lines, which are long).
grep -v -E '^\{"schema"|^\[ +[0-9.]+\] reboot' "$LOG"
echo "guest: guest cycle took $GUEST_MS ms (boot, tests, power-off)"

if [ $rc -eq 0 ]; then ok "guest run: exit status 0"; else ko "guest run: exit status $rc"; fi
summary=$(grep -a -E '^\[doctest\] test cases:' "$LOG" | tail -1)
if [[ $summary =~ ([0-9]+)\ passed\ \|\ ([0-9]+)\ failed ]]; then
	pass=$((pass + BASH_REMATCH[1]))
	fail=$((fail + BASH_REMATCH[2]))
	echo "guest: test binary: ${BASH_REMATCH[1]} test cases passed, ${BASH_REMATCH[2]} failed"
else
	ko "guest test binary printed no doctest summary"
fi
grep -q -a '^NVGRACE-TEST-RC:0$' "$LOG" && ok "guest test binary: exit status 0" ||
	ko "guest test binary: $(grep -a '^NVGRACE-TEST-RC:' "$LOG" || echo 'did not finish')"

# ---- host-side checks -----------------------------------------------------------------
checks=$(python3 "$HERE/check_host.py" check "$SHM" "$SHM_SIZE" "$LOG")
echo "$checks" | grep -E '^(PASS|FAIL): '
pass=$((pass + $(echo "$checks" | grep -c '^PASS: ')))
fail=$((fail + $(echo "$checks" | grep -c '^FAIL: ')))
echo "$checks" | grep -q '^host checks: ' || ko "check_host.py did not finish"
finish
