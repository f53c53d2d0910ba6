#!/usr/bin/env bash
# tests/rigs/vfio-user-qemu/run.sh: a real VMM attaches nvgrace-vfio-user-server.
#
# Four servers (Hopper 2 GiB, Hopper 2 GiB + 12345 B, Hopper 3 GiB, Blackwell 3 GiB, each with
# a --memory-file) sit behind four vfio-user-pci devices (slots 0x10-0x13) of one QEMU (>= 10.1,
# from tests/rigs/lib/qemu.sh; TCG, q35, guest RAM a shared memfd). A Debian 12 kernel boots a
# busybox initramfs whose only test program is guest.cpp (static). Three boots:
#
#   1. first VMM: ids, class, BAR sizes and flags (sysfs), BAR sizing through config space,
#      mapped reads/writes in real memory, 0xFF reads / dropped writes past the real end and
#      8-byte accesses straddling it;
#   2. second VMM on the same server processes: sees the first's writes, writes its own; the
#      Hopper 2 GiB server gets SIGTERM while this VMM runs (exit 0, socket removed);
#   3. third VMM, that server restarted on its memory file: every write of both VMMs is there.
#
# After each boot the host checks the memory files (guest.cpp verify) and each server's
# per-connection line: REGION_READ/REGION_WRITE on regions 2 and 4 must equal exactly the
# trapped accesses the guest program made (zero for every access inside real memory).
# Prints PASS/FAIL lines, the console and server logs, timings; the last line is
# "vfio-user-qemu: N passed, M failed"; exit status 1 on any failure.
#
# Environment: NVGRACE_JOBS (2), NVGRACE_CACHE (~/.cache/nvgrace), NVGRACE_RIG_BUILD_DIR
# (<source>/build/rig-vfio-user), NVGRACE_RIG_KEEP=1 keeps the work directory (memory files,
# logs; its path is printed), NVGRACE_RIG_TIMEOUT (per boot, default 180 s),
# NVGRACE_RIG_SERVER (use this server binary instead of building one), NVGRACE_RIG_DEVICE_PROPS
# (extra JSON members for every -device, e.g. '"x-no-mmap":true': then every access is trapped
# and the traffic checks must fail - a way to see that they can).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/../../.." && pwd)
BUILD=${NVGRACE_RIG_BUILD_DIR:-$SRC/build/rig-vfio-user}
JOBS=${NVGRACE_JOBS:-2}
BOOT_TIMEOUT=${NVGRACE_RIG_TIMEOUT:-180}
NAME=vfio-user-qemu
# Debian 12 packages this rig needs (qemu.sh installs what building QEMU needs).
PACKAGES=(
	g++ cmake ninja-build libmsgsl-dev # the server (CMake project) and the static guest program
	busybox-static cpio                # the guest's userland and its initramfs
	linux-image-amd64 xz-utils         # the guest kernel, and unpacking its vmlinux for a PVH boot
	seabios qemu-system-data           # firmware and option ROMs for the QEMU that qemu.sh builds
)
CONFIGS=(hopper-2g hopper-2g+12345 hopper-3g blackwell-3g) # slots 0x10, 0x11, 0x12, 0x13 (guest.cpp)

T_START=$(date +%s%N)
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }
pass=0 fail=0
ok() { echo "PASS: $*"; pass=$((pass + 1)); }
ko() { echo "FAIL: $*"; fail=$((fail + 1)); }
finish() {
	stop_all_servers
	echo "$NAME: took $(ms_since "$T_START") ms"
	echo "$NAME: $pass passed, $fail failed"
	[ "$fail" -eq 0 ] && exit 0
	exit 1
}
die() {
	ko "$*"
	finish
}
section() { printf '\n---- %s: %s\n' "$NAME" "$*"; }

# ---- packages --------------------------------------------------------------------------
NVG_LOG_PREFIX=$NAME
# shellcheck source=../lib/unstable-apt.sh
source "$SRC/tests/rigs/lib/unstable-apt.sh"
nvg_ensure_host_packages "${PACKAGES[@]}" ||
	{ echo "$NAME: cannot install ${PACKAGES[*]}"; echo "$NAME: 0 passed, 1 failed"; exit 1; }

# ---- servers (started per boot; see below) -------------------------------------------------
declare -A SERVER_PID=() SERVER_LOG=()
stop_all_servers() {
	local n
	for n in "${!SERVER_PID[@]}"; do
		kill -TERM "${SERVER_PID[$n]}" 2>/dev/null
		wait "${SERVER_PID[$n]}" 2>/dev/null
		unset "SERVER_PID[$n]"
	done
}

# ---- builds ------------------------------------------------------------------------------
section "builds"
T0=$(date +%s%N)
generator=()
[ -f "$BUILD/CMakeCache.txt" ] || generator=(-G Ninja)
mkdir -p "$BUILD"
# -O2: GCC 12's -O3 reports false stringop-overflow warnings, and warnings are errors.
[ -n "${NVGRACE_RIG_SERVER:-}" ] || cmake -S "$SRC" -B "$BUILD" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O2 -DNDEBUG" \
	-DCMAKE_CXX_COMPILER=g++ -DNVGRACE_BUILD_TESTS=OFF -DNVGRACE_BUILD_EXAMPLES=OFF -DNVGRACE_BUILD_BENCHMARKS=OFF \
	-DNVGRACE_BUILD_TOOLS=ON -DNVGRACE_BUILD_FUZZERS=OFF -DNVGRACE_INSTALL=OFF -DNVGRACE_WERROR=ON >"$BUILD/configure.log" 2>&1 ||
	{ cat "$BUILD/configure.log"; die "cmake configure of $BUILD"; }
if [ -n "${NVGRACE_RIG_SERVER:-}" ]; then
	SERVER=$NVGRACE_RIG_SERVER # a server built elsewhere (another build type, an older commit)
else
	nice cmake --build "$BUILD" -j "$JOBS" --target nvgrace-vfio-user-server >"$BUILD/build.log" 2>&1 ||
		{ tail -n 60 "$BUILD/build.log"; die "building nvgrace-vfio-user-server"; }
	SERVER=$BUILD/tools/nvgrace-vfio-user-server/nvgrace-vfio-user-server
fi
[ -x "$SERVER" ] || die "$SERVER was not built"
GUEST=$BUILD/guest/nvgrace-vfio-user-qemu-guest
mkdir -p "$BUILD/guest"
if [ ! -x "$GUEST" ] || [ -n "$(find "$HERE/guest.cpp" "$SRC/include" -newer "$GUEST" -print -quit)" ]; then
	nice g++ -std=c++20 -O2 -Wall -Wextra -Wpedantic -Werror -static -I "$SRC/include" \
		"$HERE/guest.cpp" -o "$GUEST.tmp" || die "building the static guest program"
	mv "$GUEST.tmp" "$GUEST"
fi
if ldd "$GUEST" >/dev/null 2>&1; then die "$GUEST is not statically linked"; fi
ok "built nvgrace-vfio-user-server and the static guest program ($(ms_since "$T0") ms)"

T0=$(date +%s%N)
QEMU=$(bash "$SRC/tests/rigs/lib/qemu.sh" path) || die "no QEMU with vfio-user-pci (tests/rigs/lib/qemu.sh path)"
mapfile -t FIRMWARE < <(bash "$SRC/tests/rigs/lib/qemu.sh" firmware)
QEMU_VERSION=$("$QEMU" --version | head -n 1)
ok "QEMU: $QEMU_VERSION ($QEMU, $(ms_since "$T0") ms)"

# ---- the guest kernel and the base initramfs (cached) -----------------------------------
# Debian 12's stock kernel, the one linux-image-amd64 depends on (never a rig-built one).
KVER=$(dpkg-query -W -f='${Depends}' linux-image-amd64 2>/dev/null | grep -o 'linux-image-[^ ,]*' | head -n 1)
KVER=${KVER#linux-image-}
if [ -z "$KVER" ] || [ ! -r "/boot/vmlinuz-$KVER" ]; then die "no readable /boot/vmlinuz-$KVER (linux-image-amd64)"; fi
IMAGE_KEY=$( (echo "$KVER"; stat -c '%s %Y' "/boot/vmlinuz-$KVER" /bin/busybox; echo image-1) | sha256sum | cut -c1-12)
IMAGE=$(nvg_cache_root)/vfio-user-qemu/$KVER-$IMAGE_KEY
if [ ! -f "$IMAGE/.done" ]; then
	T0=$(date +%s%N)
	rm -rf "$(nvg_cache_root)/vfio-user-qemu"/"$KVER"-* && mkdir -p "$IMAGE/root"/{bin,dev,proc,sys,tmp}
	# The uncompressed ELF vmlinux boots through PVH: no in-guest decompression under TCG.
	kimg=/boot/vmlinuz-$KVER
	if grep -q '^CONFIG_PVH=y' "/boot/config-$KVER" 2>/dev/null; then
		for off in $(LC_ALL=C grep -aboP '\xfd7zXZ\x00' "$kimg" | cut -d: -f1 | head -n 3); do
			tail -c +$((off + 1)) "$kimg" | xz -dc >"$IMAGE/vmlinux.tmp" 2>/dev/null
			if [ "$(head -c 4 "$IMAGE/vmlinux.tmp")" = $'\x7fELF' ]; then
				mv "$IMAGE/vmlinux.tmp" "$IMAGE/vmlinux"
				kimg=$IMAGE/vmlinux
				break
			fi
		done
		rm -f "$IMAGE/vmlinux.tmp"
	fi
	echo "$kimg" >"$IMAGE/kernel-image"
	cp /bin/busybox "$IMAGE/root/bin/busybox"
	for p in $("$IMAGE/root/bin/busybox" --list); do
		[ "$p" = busybox ] || ln -s busybox "$IMAGE/root/bin/$p"
	done
	(cd "$IMAGE/root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) >"$IMAGE/base.cpio"
	rm -rf "$IMAGE/root"
	touch "$IMAGE/.done"
	echo "$NAME: guest image built in $(ms_since "$T0") ms ($IMAGE)"
fi
KIMG=$(cat "$IMAGE/kernel-image")
ok "guest kernel $KVER ($KIMG)"

# ---- work directory --------------------------------------------------------------------------
WORK=$(mktemp -d /tmp/nvgrace-vfio-user-qemu.XXXXXX)
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	if [ -n "${BOOT_PID:-}" ] && kill -0 "$BOOT_PID" 2>/dev/null; then
		kill -TERM "$BOOT_PID"
		wait "$BOOT_PID" 2>/dev/null
	fi
	stop_all_servers
	if [ -n "${NVGRACE_RIG_KEEP:-}" ]; then echo "$NAME: work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

sock() { echo "$WORK/$1.sock"; }
memfile() { echo "$WORK/$1.mem"; }
slot_of() { # slot_of CONFIG -> 10..13
	local i
	for i in "${!CONFIGS[@]}"; do [ "${CONFIGS[$i]}" = "$1" ] && echo $((10 + i)); done
}

# start_server CONFIG LOGFILE: start it (stopping an earlier one of CONFIG first), wait for its socket.
start_server() {
	local n=$1 log=$2 i
	if [ -n "${SERVER_PID[$n]:-}" ]; then
		kill -TERM "${SERVER_PID[$n]}" 2>/dev/null
		wait "${SERVER_PID[$n]}" 2>/dev/null
		unset "SERVER_PID[$n]"
	fi
	# shellcheck disable=SC2046
	"$SERVER" --socket "$(sock "$n")" $("$GUEST" server-args "$n") --memory-file "$(memfile "$n")" 2>"$log" &
	SERVER_PID[$n]=$!
	SERVER_LOG[$n]=$log
	for i in $(seq 100); do
		[ -S "$(sock "$n")" ] && return 0
		kill -0 "${SERVER_PID[$n]}" 2>/dev/null || break
		sleep 0.05
	done
	cat "$log"
	die "server $n did not start listening on $(sock "$n")"
}

# disconnect_line CONFIG CONNECTION: the server's "connection K closed ..." line (waits up to 2 s).
disconnect_line() {
	local i line
	for i in $(seq 40); do
		line=$(grep -a "connection $2 closed after" "${SERVER_LOG[$1]}" | tail -n 1)
		[ -n "$line" ] && { echo "$line"; return 0; }
		sleep 0.05
	done
	return 1
}
# region_count LINE COMMAND REGION: how many COMMAND messages were for REGION (0 when absent).
region_count() {
	local group n
	group=$(grep -o "$2 [0-9]* ([^)]*)" <<<"$1")
	n=$(grep -o "region $3: [0-9]*" <<<"$group" | grep -o '[0-9]*$')
	echo "${n:-0}"
}

# check_traffic CONFIG CONNECTION CONSOLE: the server's REGION_READ/WRITE counts for regions
# 2 and 4 equal what the guest program reported as trapped (the TRAPPED lines; none = 0).
check_traffic() {
	local n=$1 conn=$2 console=$3 line r want_r want_w got_r got_w t
	line=$(disconnect_line "$n" "$conn") || { ko "$n: server logged no end of connection $conn"; return; }
	for r in 2 4; do
		t=$(grep -a "^TRAPPED $n region $r " "$console" | tail -n 1)
		want_r=$(sed -n 's/.* reads \([0-9]*\) .*/\1/p' <<<"$t")
		want_w=$(sed -n 's/.* writes \([0-9]*\)$/\1/p' <<<"$t")
		got_r=$(region_count "$line" REGION_READ "$r")
		got_w=$(region_count "$line" REGION_WRITE "$r")
		if [ "${want_r:-0}" = "$got_r" ] && [ "${want_w:-0}" = "$got_w" ]; then
			ok "$n connection $conn: region $r served $got_r REGION_READ / $got_w REGION_WRITE = the guest's trapped accesses (all others mapped, no message)"
		else
			ko "$n connection $conn: region $r served $got_r REGION_READ / $got_w REGION_WRITE, the guest expects ${want_r:-0} / ${want_w:-0}"
		fi
	done
}

# ---- one boot ----------------------------------------------------------------------------------
# boot TAG GUEST-COMMAND-LINE...: every line is run by the guest's init (sh), its status logged.
# Runs QEMU in the background; $BOOT_PID, $BOOT_LOG, $BOOT_ERR are set; wait_boot finishes it.
boot() {
	local tag=$1 run=$WORK/$1 n
	shift
	mkdir -p "$run/root/bin"
	cp "$GUEST" "$run/root/bin/guest"
	{
		echo '#!/bin/sh'
		echo 'export PATH=/bin'
		echo 'mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev'
		for line in "$@"; do
			echo "$line"
			echo "echo \"GUEST-STATUS \$? $line\""
		done
		echo 'echo GUEST-DONE'
		echo 'poweroff -f'
	} >"$run/root/init"
	chmod +x "$run/root/init"
	(cd "$run/root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet) >"$run/run.cpio"
	cat "$IMAGE/base.cpio" "$run/run.cpio" >"$run/initrd"
	local devices=()
	for n in "${CONFIGS[@]}"; do
		devices+=(-device "{\"driver\":\"vfio-user-pci\",\"id\":\"gpu$(slot_of "$n")\",\"addr\":\"0x$(slot_of "$n")\",\"socket\":{\"type\":\"unix\",\"path\":\"$(sock "$n")\"}${NVGRACE_RIG_DEVICE_PROPS:+,$NVGRACE_RIG_DEVICE_PROPS}}")
	done
	local fw=() d
	for d in "${FIRMWARE[@]}"; do fw+=(-L "$d"); done
	# shellcheck disable=SC2054 # commas inside QEMU option values
	QEMU_ARGS=("${fw[@]}" -nodefaults -nographic -no-user-config -no-reboot -machine q35,memory-backend=ram
		-accel tcg -m 256M -object memory-backend-memfd,id=ram,size=256M,share=on -serial stdio
		-kernel "$KIMG" -initrd "$run/initrd" -append "console=ttyS0 panic=-1 quiet loglevel=3 rdinit=/init"
		"${devices[@]}")
	BOOT_LOG=$run/console.log
	BOOT_ERR=$run/qemu.stderr
	BOOT_T0=$(date +%s%N)
	timeout -k 5 "$BOOT_TIMEOUT" "$QEMU" "${QEMU_ARGS[@]}" </dev/null >"$run/console.raw" 2>"$BOOT_ERR" &
	BOOT_PID=$!
	BOOT_RAW=$run/console.raw
}

wait_boot() { # wait_boot TAG: wait for QEMU, print the transcript, check the guest's statuses.
	local tag=$1 rc ms
	wait "$BOOT_PID"
	rc=$?
	ms=$(ms_since "$BOOT_T0")
	# The console without SeaBIOS' terminal control sequences.
	sed -e 's/\x1bc//g; s/\x1b\[[0-9;?]*[a-zA-Z]//g; s/\r$//' "$BOOT_RAW" >"$BOOT_LOG"
	echo "-- console of boot '$tag':"
	grep -a -v -E '^(SeaBIOS|Booting from ROM|$)' "$BOOT_LOG" | sed 's/^/   | /'
	if [ -s "$BOOT_ERR" ]; then
		echo "-- QEMU stderr:"
		sed 's/^/   ! /' "$BOOT_ERR"
	fi
	echo "-- boot '$tag': QEMU exit status $rc after $ms ms"
	BOOT_MS+=("$tag $ms")
	if [ "$rc" -eq 0 ]; then ok "boot '$tag': QEMU exit status 0 ($ms ms)"; else ko "boot '$tag': QEMU exit status $rc after $ms ms"; fi
	if grep -a -q '^GUEST-DONE$' "$BOOT_LOG"; then ok "boot '$tag': the guest ran every step"; else ko "boot '$tag': the guest did not finish"; fi
	local bad
	bad=$(grep -a '^GUEST-STATUS [1-9]' "$BOOT_LOG")
	[ -z "$bad" ] || ko "boot '$tag': a guest step failed: $(tr '\n' ';' <<<"$bad")"
	pass=$((pass + $(grep -a -c '^PASS: ' "$BOOT_LOG")))
	fail=$((fail + $(grep -a -c '^FAIL: ' "$BOOT_LOG")))
}

declare -A PRINTED=() # log file -> lines already shown
print_server_logs() {  # the server log lines not shown yet
	local n log from
	echo "-- server logs (new lines):"
	for n in "${CONFIGS[@]}"; do
		log=${SERVER_LOG[$n]}
		from=$((${PRINTED[$log]:-0} + 1))
		sed -n "$from,\$p" "$log" | sed "s/^/   [$n] /"
		PRINTED[$log]=$(wc -l <"$log")
	done
}

verify_files() { # verify_files STAGE: the guest program checks each memory file on the host
	local n out
	for n in "${CONFIGS[@]}"; do
		out=$("$GUEST" verify "$n" "$(memfile "$n")" "$1")
		echo "$out"
		pass=$((pass + $(grep -c '^PASS: ' <<<"$out")))
		fail=$((fail + $(grep -c '^FAIL: ' <<<"$out")))
	done
}

BOOT_MS=()
section "QEMU command line (boot 1; later boots differ only in the initramfs)"

# ---- boot 1: the first VMM --------------------------------------------------------------------
for n in "${CONFIGS[@]}"; do
	"$GUEST" seed "$n" "$(memfile "$n")" >/dev/null || die "seeding $(memfile "$n")"
	start_server "$n" "$WORK/$n.server1.log"
done
steps=()
for n in "${CONFIGS[@]}"; do steps+=("guest run $n 0000:00:$(slot_of "$n").0 first"); done
boot first "${steps[@]}"
printf '%q ' "$QEMU" "${QEMU_ARGS[@]}"
echo
section "boot 1: the first VMM (ids, BARs, config sizing, mapped and trapped accesses)"
wait_boot first
print_server_logs
for n in "${CONFIGS[@]}"; do check_traffic "$n" 1 "$BOOT_LOG"; done
verify_files first

# ---- boot 2: a second VMM on the same servers; SIGTERM to one of them during the run ----------
section "boot 2: a second VMM on the same server processes; SIGTERM to hopper-2g during it"
VICTIM=hopper-2g
steps=()
for n in "${CONFIGS[@]}"; do steps+=("guest run $n 0000:00:$(slot_of "$n").0 second"); done
steps+=("guest server-gone $VICTIM 0000:00:$(slot_of $VICTIM).0")
boot second "${steps[@]}"
waited=0
for i in $(seq $((BOOT_TIMEOUT * 10))); do
	grep -a -q "^WAITING-FOR-SIGTERM $VICTIM" "$BOOT_RAW" 2>/dev/null && { waited=1; break; }
	kill -0 "$BOOT_PID" 2>/dev/null || break
	sleep 0.1
done
if [ "$waited" = 1 ]; then
	T0=$(date +%s%N)
	kill -TERM "${SERVER_PID[$VICTIM]}"
	wait "${SERVER_PID[$VICTIM]}"
	rc=$?
	unset "SERVER_PID[$VICTIM]"
	if [ "$rc" -eq 0 ]; then
		ok "$VICTIM: SIGTERM while a VMM is attached: exit status 0 ($(ms_since "$T0") ms)"
	else
		ko "$VICTIM: SIGTERM while a VMM is attached: exit status $rc"
	fi
	if [ ! -e "$(sock $VICTIM)" ]; then ok "$VICTIM: socket removed at exit"; else ko "$VICTIM: socket $(sock $VICTIM) left behind"; fi
	if grep -q 'stopped$' "${SERVER_LOG[$VICTIM]}"; then ok "$VICTIM: logged its stop"; else ko "$VICTIM: no 'stopped' line"; fi
else
	ko "the guest never said it was waiting for the SIGTERM"
fi
wait_boot second
print_server_logs
for n in "${CONFIGS[@]}"; do check_traffic "$n" 2 "$BOOT_LOG"; done
verify_files second

# ---- boot 3: the stopped server restarted on its memory file; a third VMM ---------------------
section "boot 3: $VICTIM restarted on its memory file; a third VMM reads everything back"
start_server "$VICTIM" "$WORK/$VICTIM.server2.log"
steps=()
for n in "${CONFIGS[@]}"; do steps+=("guest run $n 0000:00:$(slot_of "$n").0 third"); done
boot third "${steps[@]}"
wait_boot third
print_server_logs
for n in "${CONFIGS[@]}"; do
	conn=3
	[ "$n" = "$VICTIM" ] && conn=1
	check_traffic "$n" "$conn" "$BOOT_LOG"
done
verify_files second

# ---- the end: every server stops cleanly ---------------------------------------------------------
section "SIGTERM to every server"
for n in "${CONFIGS[@]}"; do
	pid=${SERVER_PID[$n]:-}
	[ -n "$pid" ] || { ko "$n: server not running any more"; continue; }
	kill -TERM "$pid"
	wait "$pid"
	rc=$?
	unset "SERVER_PID[$n]"
	if [ "$rc" -eq 0 ] && [ ! -e "$(sock "$n")" ]; then
		ok "$n: SIGTERM: exit status 0, socket removed"
	else
		ko "$n: SIGTERM: exit status $rc, socket $(if [ -e "$(sock "$n")" ]; then echo left; else echo removed; fi)"
	fi
done

section "timings"
for b in "${BOOT_MS[@]}"; do echo "boot ${b% *}: ${b#* } ms (QEMU start, guest boot, checks, power-off)"; done
finish
