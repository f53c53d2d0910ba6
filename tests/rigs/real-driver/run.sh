#!/usr/bin/env bash
# tests/rigs/real-driver/run.sh: Linux's own nvgrace-gpu driver as the judge of the model.
#
# Boots the rig's Linux 7.2 (tests/rigs/lib/kernel.sh) in the rig's QEMU
# (tests/rigs/lib/qemu.sh, vfio-user-pci) on q35 under TCG. The "hardware" is
# nvgrace-vfio-user-server --physical (the GPU's PCI function before the variant
# driver) at slot 0x10; the "firmware" is an SSDT the server prints (--print-ssdt)
# with the GPU memory's _DSD properties; the GPU memory itself is guest RAM the
# kernel does not use, backed by a host file. The guest binds nvgrace_gpu_vfio_pci
# and runs, through /dev/vfio/noiommu-0 and the project's /dev/vfio backend:
#   - the differential: a seeded stream of operations; every record goes back to the
#     host through ivshmem, where nvgrace-rig-host applies the same stream to
#     shim::device built from the same ACPI inputs and memory, and compares;
#   - (a second boot) the shared conformance suite and nvgrace-probe.
#
# Usage: run.sh [options]
#   --profiles "P ..."  profiles to run (default: "low big blackwell nodvsec cxl fallback notready iommu"):
#                         low        Hopper, 0x72C00123 bytes at 0x20000000 (resmem not
#                                    page-aligned), GPU memory reserved with memmap=
#                         big        Hopper, 65 GiB + 100 MiB + 0x123 at 0x200000000 on a
#                                    66 GiB sparse pc-dimm; needs 64-bit _DSD values, so the
#                                    guest gets a revision-2 DSDT through the initrd
#                         blackwell  Grace Blackwell (no carve-out), 0x52C00123 bytes at 0x20000000
#                         nodvsec    a Blackwell id without the NVIDIA DVSEC: the driver takes it
#                                    for Hopper (carve-out), memory as low
#                         cxl        as low, plus a CXL device DVSEC: 7.2 polls its memory-active
#                                    status instead of BAR0, at probe and after every reset
#                         fallback   no _DSD: the driver's plain vfio-pci variant
#                         notready   the readiness registers never read ready: the probe
#                                    must fail with ETIME after its 30 s wait, as the model's
#                         iommu      as low, behind an emulated Intel IOMMU: a real IOMMU group
#                                    (type1 container on the group path) and a device cdev, over
#                                    which the conformance suite and nvgrace-probe run (iommufd,
#                                    an IOAS attached); a VF token on the bind is refused
#   --ops N             operations per profile (default 10000; $NVGRACE_RIG_OPS)
#   --nightly           100000 operations per profile
#   --seed N            stream seed (default 1; $NVGRACE_RIG_SEED)
#   --no-diff | --no-checks   skip the differential | the conformance + probe boot
#   --work DIR          keep every file of the run in DIR (default: a temporary dir, removed)
#   --timeout S         per boot (default 600 s plus 1 s per 20 operations: the stream runs at
#                       400-500 operations per second here, the allowance is 20 times that)
#   --verbose           show the guest consoles
# Any mismatch fails the run.
# Environment: NVGRACE_KERNEL_TREE (build and boot your own kernel tree instead of
# Debian's linux-source-7.2, see docs/real-driver.md), NVGRACE_JOBS (2),
# NVGRACE_RIG_BUILD_DIR (default <source>/build/rig-real-driver), NVGRACE_CACHE.
#
# Output: per profile the differential's report (operation classes, op and mismatch
# counts, each mismatch in detail), the conformance and probe verdicts; last line
# "real-driver: N passed, N failed". Exit 0 only when nothing failed or differed.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/../../.." && pwd)
LIB=$HERE/../lib
NVG_LOG_PREFIX=rig
# shellcheck source=../lib/unstable-apt.sh
source "$LIB/unstable-apt.sh"

PROFILES="low big blackwell nodvsec cxl fallback notready iommu"
OPS=${NVGRACE_RIG_OPS:-10000}
SEED=${NVGRACE_RIG_SEED:-1}
DO_DIFF=1 DO_CHECKS=1 WORK= TIMEOUT= VERBOSE=0
BUILD=${NVGRACE_RIG_BUILD_DIR:-$SRC/build/rig-real-driver}
JOBS=${NVGRACE_JOBS:-2}
while [ $# -gt 0 ]; do
	case $1 in
	--profiles) PROFILES=$2; shift 2 ;;
	--ops) OPS=$2; shift 2 ;;
	--nightly) OPS=100000; shift ;;
	--seed) SEED=$2; shift 2 ;;
	--no-diff) DO_DIFF=0; shift ;;
	--no-checks) DO_CHECKS=0; shift ;;
	--work) WORK=$2; shift 2 ;;
	--timeout) TIMEOUT=$2; shift 2 ;;
	--verbose) VERBOSE=1; shift ;;
	-h | --help) sed -n '2,/^set -uo/{/^set -uo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
	*) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
done
TIMEOUT=${TIMEOUT:-$((600 + OPS / 20))}

T_START=$SECONDS
pass=0 fail=0
ok() { echo "PASS: $*"; pass=$((pass + 1)); }
ko() { echo "FAIL: $*"; fail=$((fail + 1)); }
finish() {
	echo "real-driver: took $((SECONDS - T_START)) s"
	echo "real-driver: $pass passed, $fail failed"
	[ "$fail" -eq 0 ]
	exit
}
die() { ko "$*"; finish; }

# ---- host packages, QEMU, kernel, programs --------------------------------------------------
nvg_ensure_host_packages acpica-tools busybox-static cpio cmake g++ ninja-build doctest-dev libmsgsl-dev ||
	die "cannot install the host packages"
QEMU=$("$LIB/qemu.sh" path) || die "no QEMU with vfio-user-pci (tests/rigs/lib/qemu.sh)"
VMLINUX=$("$LIB/kernel.sh" path) || die "no guest kernel (tests/rigs/lib/kernel.sh)"
FIRMWARE=()
while read -r d; do FIRMWARE+=(-L "$d"); done < <("$LIB/qemu.sh" firmware)
echo "rig: QEMU $QEMU"
echo "rig: kernel $VMLINUX"

T0=$SECONDS
mkdir -p "$BUILD"
if [ ! -f "$BUILD/build.ninja" ]; then
	# -O2: GCC 12's -O3 warns falsely in inlined copy paths (warnings are errors). Static:
	# the guest has no shared libraries.
	cmake -S "$SRC" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O2 -DNDEBUG" \
		-DCMAKE_CXX_COMPILER=g++ -DCMAKE_EXE_LINKER_FLAGS=-static -DNVGRACE_BUILD_BENCHMARKS=OFF \
		-DNVGRACE_BUILD_EXAMPLES=OFF -DNVGRACE_INSTALL=OFF -DNVGRACE_WERROR=ON >"$BUILD/configure.log" 2>&1 ||
		{ cat "$BUILD/configure.log"; die "cmake configure of $BUILD failed"; }
fi
nice cmake --build "$BUILD" -j "$JOBS" --target nvgrace-vfio-user-server nvgrace-rig-guest nvgrace-rig-host \
	nvgrace-rig-conformance nvgrace-probe >"$BUILD/rig-build.log" 2>&1 ||
	{ tail -n 40 "$BUILD/rig-build.log"; die "building the rig's programs failed"; }
SERVER=$BUILD/tools/nvgrace-vfio-user-server/nvgrace-vfio-user-server
RIG_HOST=$BUILD/tests/rigs/real-driver/nvgrace-rig-host
GUEST_BINS=("$BUILD/tests/rigs/real-driver/nvgrace-rig-guest" "$BUILD/tests/rigs/real-driver/nvgrace-rig-conformance"
	"$BUILD/tools/nvgrace-probe/nvgrace-probe")
for b in "$SERVER" "$RIG_HOST" "${GUEST_BINS[@]}"; do
	[ -x "$b" ] || die "$b was not built"
done
echo "rig: programs ready in $((SECONDS - T0)) s ($BUILD)"

if [ -z "$WORK" ]; then
	WORK=$(mktemp -d /tmp/nvgrace-rig.XXXXXX)
	trap 'rm -rf "$WORK"' EXIT
fi
mkdir -p "$WORK"
CACHE=$(nvg_cache_root)/rig-real-driver
mkdir -p "$CACHE"

# ---- the guest's userland: busybox, /init, the programs (uncompressed cpio) --------------------
BASE_CPIO=$WORK/base.cpio
build_base_cpio() {
	local root=$WORK/root p
	rm -rf "$root"
	mkdir -p "$root"/{bin,dev,proc,sys,tmp,rig}
	cp /bin/busybox "$root/bin/busybox"
	for p in $("$root/bin/busybox" --list); do
		[ "$p" = busybox ] || ln -s busybox "$root/bin/$p"
	done
	cp "$HERE/init.sh" "$root/init"
	chmod +x "$root/init"
	for p in "${GUEST_BINS[@]}"; do cp "$p" "$root/bin/"; done
	(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) >"$BASE_CPIO"
	rm -rf "$root"
}
build_base_cpio || die "cannot build the guest's initramfs"

# ---- profiles ---------------------------------------------------------------------------------
# Sets: GEN BASE SIZE DEVICE_ID BAR2 BAR4 READY DVSEC CXL IOMMU MEMORY(ram|dimm|none) RAM RESERVE
# DIMM_SIZE DIMM_ADDR, and PROFILE_ARGS (the rig programs' profile options) and SERVER_ARGS (the server's).
set_profile() {
	GEN=hopper BASE=0 SIZE=0 DEVICE_ID= BAR2=1M BAR4=1M READY=yes DVSEC=yes CXL=no IOMMU=no MEMORY=none RAM=512M RESERVE=0
	DIMM_SIZE=0 DIMM_ADDR=0
	case $1 in
	low) BASE=0x20000000 SIZE=0x72C00123 MEMORY=ram RAM=2560M RESERVE=0x73000000 ;;
	big)
		BASE=0x200000000 SIZE=$(printf '0x%x' $(((65 << 30) + (100 << 20) + 0x123)))
		MEMORY=dimm RAM=4G DIMM_SIZE=66G DIMM_ADDR=0x200000000
		;;
	blackwell) GEN=blackwell BASE=0x20000000 SIZE=0x52C00123 MEMORY=ram RAM=2560M RESERVE=0x53000000 ;;
	nodvsec)
		GEN=blackwell DVSEC=no BASE=0x20000000 SIZE=0x72C00123 MEMORY=ram RAM=2560M RESERVE=0x73000000
		;;
	cxl) CXL=yes BASE=0x20000000 SIZE=0x72C00123 MEMORY=ram RAM=2560M RESERVE=0x73000000 ;;
	fallback) BAR2=2M BAR4=4M ;;
	notready) BASE=0x20000000 SIZE=0x72C00123 MEMORY=ram RAM=2560M RESERVE=0x73000000 READY=never ;;
	iommu) IOMMU=yes BASE=0x20000000 SIZE=0x72C00123 MEMORY=ram RAM=2560M RESERVE=0x73000000 ;;
	*) return 1 ;;
	esac
	[ -n "$DEVICE_ID" ] || { [ "$GEN" = hopper ] && DEVICE_ID=0x2342 || DEVICE_ID=0x2941; }
	local fn="--generation $GEN --device-id $DEVICE_ID --bar2-size $BAR2 --bar4-size $BAR4 --ready $READY"
	[ "$DVSEC" = yes ] || fn="$fn --no-dvsec"
	[ "$CXL" = yes ] && fn="$fn --cxl"
	PROFILE_ARGS="$fn --base $BASE --size $SIZE"
	SERVER_ARGS="--physical $fn"
}

# The file behind the GPU memory, and where the GPU memory starts in it.
memory_file_offset() {
	case $MEMORY in
	ram) echo $((BASE)) ;;
	dimm) echo $((BASE - DIMM_ADDR)) ;;
	*) echo 0 ;;
	esac
}

# ---- one boot ---------------------------------------------------------------------------------
# boot NAME STEPS BIND ONE_OPEN EXTRA_INITRD: server up, QEMU, server down; console in $WORK/NAME.log
boot() {
	local name=$1 steps=$2 bind=$3 one_open=$4 extra_initrd=$5
	local sock=$WORK/$name.sock log=$WORK/$name.log slog=$WORK/$name.server.log
	local run=$WORK/$name.run qemu_args=() append
	rm -rf "$run" "$sock"
	mkdir -p "$run/rig"
	cat >"$run/rig/run.conf" <<-EOF
		RIG_BDF=0000:00:10.0
		RIG_CHANNEL_BDF=0000:00:04.0
		RIG_STEPS="$steps"
		RIG_BIND=$bind
		RIG_ONE_OPEN=$one_open
		RIG_PROFILE="$PROFILE_ARGS"
		RIG_SEED=$SEED
		RIG_OPS=$OPS
		RIG_CDEV=$IOMMU
	EOF
	(cd "$run" && find rig | cpio -o -H newc --quiet) >"$run/run.cpio"
	cat $extra_initrd "$BASE_CPIO" "$run/run.cpio" >"$run/initrd"

	rm -f "$CHANNEL"
	truncate -s "$CHANNEL_SIZE" "$CHANNEL"

	local ready=()
	# shellcheck disable=SC2086
	"$SERVER" --socket "$sock" $SERVER_ARGS 2>"$slog" &
	local server_pid=$!
	local i=0
	while [ ! -S "$sock" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
	[ -S "$sock" ] || { kill "$server_pid" 2>/dev/null; cat "$slog"; return 125; }

	append="console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init vfio.enable_unsafe_noiommu_mode=1"
	qemu_args=(-machine q35 -accel tcg -smp 1 -nodefaults -no-user-config -display none -no-reboot
		-chardev "file,id=con,path=$log" -serial chardev:con -monitor none "${FIRMWARE[@]}")
	# An emulated IOMMU in front of the function (before it on the command line). caching-mode:
	# QEMU must see every mapping the guest makes to forward it to the server. Without
	# interrupt remapping both VFIO IOMMU back ends refuse the device (EPERM) unless told
	# that unisolated MSIs are acceptable, which they are in a throw-away guest.
	if [ "$IOMMU" = yes ]; then
		qemu_args+=(-device intel-iommu,caching-mode=on,intremap=off)
		append="$append intel_iommu=on vfio_iommu_type1.allow_unsafe_interrupts=1 iommufd.allow_unsafe_interrupts=1"
	fi
	case $MEMORY in
	ram)
		qemu_args+=(-m "$RAM" -object "memory-backend-file,id=ram0,size=$RAM,mem-path=$MEMFILE,share=on"
			-machine memory-backend=ram0)
		append="$append memmap=$(printf '0x%x' $((RESERVE)))\$$BASE"
		;;
	dimm)
		qemu_args+=(-m "$RAM,slots=1,maxmem=80G"
			-object "memory-backend-file,id=gpumem,size=$DIMM_SIZE,mem-path=$MEMFILE,share=on"
			-device "pc-dimm,id=gpudimm,memdev=gpumem,addr=$DIMM_ADDR")
		;;
	*) qemu_args+=(-m "$RAM") ;;
	esac
	[ -n "$SSDT" ] && qemu_args+=(-acpitable "file=$SSDT")
	qemu_args+=(-object "memory-backend-file,id=chan,size=$CHANNEL_SIZE,mem-path=$CHANNEL,share=on"
		-device "ivshmem-plain,memdev=chan,addr=0x4"
		-device "{\"driver\":\"vfio-user-pci\",\"id\":\"gpu\",\"addr\":\"0x10\",\"socket\":{\"type\":\"unix\",\"path\":\"$sock\"}}"
		-kernel "$VMLINUX" -initrd "$run/initrd" -append "$append")
	echo "$QEMU ${qemu_args[*]}" >"$WORK/$name.cmdline"
	local t0 rc
	t0=$(date +%s%N)
	timeout -k 5 "$TIMEOUT" "$QEMU" "${qemu_args[@]}" </dev/null >"$WORK/$name.qemu.log" 2>&1
	rc=$?
	BOOT_MS=$((($(date +%s%N) - t0) / 1000000))
	kill "$server_pid" 2>/dev/null
	wait "$server_pid" 2>/dev/null
	[ -f "$log" ] && sed -i 's/\r$//' "$log"
	[ $VERBOSE = 1 ] && sed "s/^/[$name] /" "$log"
	if [ $rc -ne 0 ]; then
		echo "rig: QEMU ($name) exited $rc after $BOOT_MS ms:"
		tail -n 20 "$WORK/$name.qemu.log"
		tail -n 20 "$log"
	fi
	grep -q '^RIG-DONE' "$log" || return 1
	return 0
}

# A DSDT of revision 2 for the big profile: ACPI integers are 32-bit under QEMU's
# revision-1 DSDT, which truncates the 64-bit _DSD values. The DSDT depends on the exact
# machine, so it is dumped from a guest with the same command line, recompiled with
# revision 2 and a higher OEM revision, and given to the kernel as an initrd table
# upgrade (kernel/firmware/acpi/dsdt.aml in an uncompressed cpio placed first).
dsdt_upgrade() {
	local key out dir=$WORK/dsdt
	# The DSDT describes the machine: QEMU, the memory layout and the devices this script
	# adds (so any change to the script makes a new dump).
	key=$( (echo "$QEMU"; sha256sum "$QEMU" "$0" | cut -c1-16; echo "$RAM $MEMORY $DIMM_SIZE $DIMM_ADDR dsdt-recipe-2") |
		sha256sum | cut -c1-12)
	out=$CACHE/dsdt-$key.cpio
	if [ ! -f "$out" ]; then
		echo "rig: dumping the DSDT of this machine (one boot, cached as $out)"
		local saved_ssdt=$SSDT
		SSDT=
		boot dsdt-dump "dump" no 0 "" || { SSDT=$saved_ssdt; return 1; }
		SSDT=$saved_ssdt
		rm -rf "$dir"
		mkdir -p "$dir/kernel/firmware/acpi"
		"$RIG_HOST" extract --channel "$CHANNEL" dsdt "$dir/dsdt.dat" || return 1
		(cd "$dir" && iasl -d dsdt.dat >iasl-d.log 2>&1) || { cat "$dir/iasl-d.log"; return 1; }
		# DefinitionBlock ("", "DSDT", 1, "BOCHS ", "BXPC    ", 0x00000001): revision 2, OEM revision + 1.
		sed -E -i '0,/DefinitionBlock/s/(DefinitionBlock \([^,]*, "DSDT", )1(, .*, )0x([0-9A-Fa-f]+)\)/\12\20x7F000001)/' \
			"$dir/dsdt.dsl"
		grep -q 'DefinitionBlock.*"DSDT", 2,.*0x7F000001' "$dir/dsdt.dsl" || { echo "rig: cannot patch the DSDT"; return 1; }
		(cd "$dir" && iasl -p dsdt-v2 dsdt.dsl >iasl.log 2>&1) || { tail -n 20 "$dir/iasl.log"; return 1; }
		cp "$dir/dsdt-v2.aml" "$dir/kernel/firmware/acpi/dsdt.aml"
		(cd "$dir" && find kernel | LC_ALL=C sort | cpio -o -H newc --quiet) >"$out.tmp" && mv "$out.tmp" "$out"
	fi
	DSDT_CPIO=$out
}

# ---- run the profiles -------------------------------------------------------------------------
SUMMARY=()
for P in $PROFILES; do
	set_profile "$P" || die "unknown profile $P"
	echo
	echo "==== profile $P: $GEN, $PROFILE_ARGS, device $DEVICE_ID, readiness $READY"
	MEMFILE=$WORK/$P.memory
	CHANNEL=$WORK/$P.channel
	# Records: 48 bytes plus config payloads; a power of two (an ivshmem BAR).
	CHANNEL_SIZE=$((1 << 22))
	while [ $CHANNEL_SIZE -lt $((OPS * 96 + (1 << 20))) ]; do CHANNEL_SIZE=$((CHANNEL_SIZE * 2)); done
	SSDT= DSDT_CPIO=
	rm -f "$MEMFILE"
	case $MEMORY in
	ram) truncate -s "$RAM" "$MEMFILE" ;;
	dimm) truncate -s "$DIMM_SIZE" "$MEMFILE" ;;
	esac
	if [ "$SIZE" != 0 ]; then
		"$SERVER" --print-ssdt --base "$BASE" --size "$SIZE" --slot 0x10 >"$WORK/$P.ssdt.asl" &&
			(cd "$WORK" && iasl -p "$P-ssdt" "$P.ssdt.asl" >"$P.iasl.log" 2>&1) ||
			{ ko "$P: SSDT: $(tail -n 5 "$WORK/$P.iasl.log")"; continue; }
		SSDT=$WORK/$P-ssdt.aml
	fi
	if [ $((BASE)) -gt $((0xFFFFFFFF)) ] || [ $((SIZE)) -gt $((0xFFFFFFFF)) ]; then
		dsdt_upgrade || { ko "$P: no revision-2 DSDT for the 64-bit _DSD values"; continue; }
	fi

	if [ "$P" = notready ]; then
		boot "$P" "" yes 0 "$DSDT_CPIO"
		if grep -q '^RIG-BIND none' "$WORK/$P.log" && grep -q 'failed with error -62' "$WORK/$P.log"; then
			ok "$P: the driver's probe fails with ETIME (-62) when the GPU never reports ready ($BOOT_MS ms boot)"
		else
			ko "$P: expected a probe failure with ETIME; $(grep -E '^RIG-BIND|error -' "$WORK/$P.log" | head -3 | tr '\n' ' ')"
		fi
		# The model's probe on the same function: its errno, how often it read the C2C
		# register (the server counted the driver's reads: nothing else touches BAR0
		# here) and how long it waited, against the guest's measurement of the bind.
		derrno=$(sed -n 's/.*failed with error -\([0-9]*\).*/\1/p' "$WORK/$P.log" | head -n 1)
		dreads=$(sed -n 's/.*(region 0: \([0-9]*\).*/\1/p' "$WORK/$P.server.log" | head -n 1)
		gms=$(sed -n 's/^RIG: bind: .*(from \([0-9.]*\) to \([0-9.]*\) s)$/\1 \2/p' "$WORK/$P.log" |
			awk '{printf "%d", ($2 - $1) * 1000}')
		if line=$("$RIG_HOST" probe-wait $PROFILE_ARGS --driver-errno "${derrno:-0}" --driver-reads "${dreads:-0}" \
			--guest-ms "${gms:-0}"); then
			ok "$P: the model's probe waits as the driver's: ${line#RIG-WAIT }"
		else
			ko "$P: the model's probe: ${line#RIG-WAIT }"
		fi
		SUMMARY+=("real-driver: $P probe $( [ "${derrno:-0}" = 62 ] && echo ETIME || echo "errno ${derrno:-none}"), model $(grep -q 'errno same, reads same' <<<"$line" && echo same || echo DIFFERENT): ${line#RIG-WAIT }")
		continue
	fi

	if [ $DO_DIFF = 1 ]; then
		if [ "$SIZE" != 0 ]; then
			"$RIG_HOST" seed --file "$MEMFILE" --offset "$(memory_file_offset)" $PROFILE_ARGS --seed "$SEED" --ops "$OPS" ||
				{ ko "$P: seeding the GPU memory failed"; continue; }
		fi
		if boot "$P-diff" "diff" yes 0 "$DSDT_CPIO"; then
			grep -E '^RIG(:|-BIND|-STEP)|^nvgrace-rig-guest' "$WORK/$P-diff.log"
			grep -E '^RIG-DMESG' "$WORK/$P-diff.log" | grep -i -E 'nvgrace|vfio|Truncat|upgrade|Override' | head -n 12
			echo "rig: $P: differential boot took $BOOT_MS ms"
			if grep -q '^RIG-BIND nvgrace-gpu-vfio-pci\|^RIG-BIND nvgrace_gpu_vfio_pci' "$WORK/$P-diff.log"; then
				ok "$P: nvgrace_gpu_vfio_pci bound to the emulated GPU"
			else
				ko "$P: the driver did not bind: $(grep -E '^RIG-BIND' "$WORK/$P-diff.log")"
			fi
			diff_args=(diff --channel "$CHANNEL" --name "$P" $PROFILE_ARGS --seed "$SEED"
				--ops "$OPS")
			[ "$MEMORY" != none ] && diff_args+=(--memory-file "$MEMFILE" --memory-offset "$(memory_file_offset)")
			[ "$MEMORY" = ram ] && diff_args+=(--untouched "$RESERVE")
			"$RIG_HOST" "${diff_args[@]}" >"$WORK/$P.report"
			diff_rc=$?
			cat "$WORK/$P.report"
			line=$(grep '^RIG-RESULT' "$WORK/$P.report")
			SUMMARY+=("$(sed -E 's/^RIG-RESULT ([^ ]*) ops=([0-9]*) mismatches=([0-9]*) memory_diffs=([0-9]*) complete=(.*)/real-driver: \1 \2 ops \3 mismatches, \4 memory diffs, complete \5/' <<<"$line"), boot+run ${BOOT_MS} ms")
			if [ $diff_rc -eq 0 ] && grep -q ' mismatches=0 ' <<<"$line"; then
				ok "$P: differential, no mismatch"
			else
				ko "$P: differential: ${line:-no result}"
			fi
		else
			ko "$P: the differential boot did not finish (console: $WORK/$P-diff.log)"
			tail -n 30 "$WORK/$P-diff.log"
		fi
	fi

	if [ $DO_CHECKS = 1 ]; then
		# The fallback refuses every open after the first: one boot per program there.
		if [ "$SIZE" = 0 ]; then check_boots=("conformance" "probe"); one_open=1
		else check_boots=("conformance probe cdev"); one_open=0; fi
		for steps in "${check_boots[@]}"; do
			name=$P-${steps// /-}
			if ! boot "$name" "$steps" yes "$one_open" "$DSDT_CPIO"; then
				ko "$P: the $steps boot did not finish (console: $WORK/$name.log)"
				tail -n 30 "$WORK/$name.log"
				continue
			fi
			echo "rig: $P: $steps boot took $BOOT_MS ms"
			if [[ $steps == *conformance* ]]; then
				grep -a -E '^\[doctest\] (test cases|assertions)|ERROR|CHECK|REQUIRE|^  [A-Z_]+\(|^tests/|values:|logged:' \
					"$WORK/$name.log" | head -n 80
				if grep -q '^RIG-STEP conformance rc=0' "$WORK/$name.log"; then
					ok "$P: conformance suite against the driver"
				else
					ko "$P: conformance suite against the driver ($(grep -a '^\[doctest\] assertions' "$WORK/$name.log"))"
				fi
			fi
			if [[ $steps == *probe* ]]; then
				sed -n '/^RIG-STEP conformance/,/^RIG-PROBE-TEXT-RC/p' "$WORK/$name.log" | grep -v '^RIG-STEP' | head -n 80
				rc=$(sed -n 's/^RIG-PROBE-TEXT-RC //p' "$WORK/$name.log")
				fails=$(grep -E '^  FAIL ' "$WORK/$name.log" | tr -s ' ')
				if [ "$SIZE" = 0 ]; then
					# Without _DSD the probe must diagnose the fallback: the "emulated" rule of
					# regions 2 and 4 fails (no sparse area), and nothing else.
					if [ "$rc" = 1 ] && [ "$(grep -c ' emulated ' <<<"$fails")" = 2 ] &&
						[ "$(grep -c . <<<"$fails")" = 2 ]; then
						ok "$P: nvgrace-probe diagnoses the fallback (regions 2 and 4 not emulated) and nothing else"
					else
						ko "$P: nvgrace-probe exit status ${rc:-none}: $(tr '\n' ';' <<<"$fails")"
					fi
				elif [ "$rc" = 0 ]; then ok "$P: nvgrace-probe: every rule passes"
				else ko "$P: nvgrace-probe exit status ${rc:-none}: $(head -n 5 <<<"$fails" | tr '\n' ';')"; fi
				# The same checks on the model: every rule line (verdict and detail) and the exit status.
				"$RIG_HOST" probe-compare --log "$WORK/$name.log" $PROFILE_ARGS >"$WORK/$name.probe-compare"
				prc=$?
				cat "$WORK/$name.probe-compare"
				line=$(grep '^RIG-PROBE-COMPARE' "$WORK/$name.probe-compare")
				if [ $prc -eq 0 ]; then ok "$P: nvgrace-probe on the driver and on the model: ${line#RIG-PROBE-COMPARE }"
				else ko "$P: nvgrace-probe on the driver and on the model: ${line#RIG-PROBE-COMPARE }"; fi
			fi
			if [[ $steps == *cdev* ]]; then
				grep '^RIG-CDEV' "$WORK/$name.log"
				if [ "$IOMMU" = yes ]; then
					# Behind an IOMMU the device has a cdev: bound to an iommufd with an IOAS of its
					# own it must answer as the group path does, and a VF token (this function is
					# neither a PF with VFs nor a VF) must be refused with EINVAL.
					if grep -q '^RIG-CDEV group open=ok' "$WORK/$name.log" &&
						grep -q '^RIG-CDEV compare=same' "$WORK/$name.log" &&
						grep -q '^RIG-CDEV vf_token=EINVAL' "$WORK/$name.log"; then
						ok "$P: the device cdev on iommufd answers as the group path; a VF token is EINVAL"
					else
						ko "$P: the device cdev: $(grep '^RIG-CDEV' "$WORK/$name.log" | cut -c1-120 | tr '\n' ';')"
					fi
				# Linux 7.2 registers a noiommu device without a cdev (the core's rule, not the
				# driver's): /dev/vfio/devices has no node for it. Should a kernel give it one,
				# the cdev must answer as the group path does.
				elif grep -q '^RIG-CDEV group open=ok' "$WORK/$name.log" &&
					{ grep -q '^RIG-CDEV cdev open=ENOENT' "$WORK/$name.log" ||
						grep -q '^RIG-CDEV compare=same' "$WORK/$name.log"; }; then
					ok "$P: the device cdev: $(sed -n 's/^RIG-CDEV cdev open=\([A-Z]*\).*/\1/p; s/^RIG-CDEV compare=//p' "$WORK/$name.log" | tr '\n' ' ')"
				else
					ko "$P: the device cdev: $(grep '^RIG-CDEV' "$WORK/$name.log" | cut -c1-120 | tr '\n' ';')"
				fi
			fi
		done
	fi
done

echo
echo "==== summary (seed $SEED, $OPS operations per profile)"
printf '%s\n' "${SUMMARY[@]}"
finish
