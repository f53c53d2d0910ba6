#!/usr/bin/env bash
# run-guest.sh - run a test program inside a throw-away QEMU guest where a real
# PCI device (QEMU ivshmem-plain, 1af4:1110, BAR2 = a host file) is bound to
# the real Linux vfio-pci driver, so the program can drive it through /dev/vfio.
#
# nvgrace's copy of the company vfio-guest rig (tests/guest/run.sh drives it).
# Changes from the original: --mode viommu is the default (stock modules, no
# kernel-source rebuild) and the image cache lives in ~/.cache/nvgrace-guest.
#
# Usage: run-guest.sh [options] TEST_BINARY [ARGS...]
#
#   --mode noiommu   vfio with enable_unsafe_noiommu_mode=1, group
#                    node /dev/vfio/noiommu-N, IOMMU type VFIO_NOIOMMU_IOMMU (8).
#                    Debian's kernel is built without CONFIG_VFIO_NOIOMMU, so
#                    vfio.ko is rebuilt once from Debian's linux-source package
#                    with that option (CRCs are checked; the result is cached).
#   --mode viommu    (default) stock modules, emulated Intel IOMMU (-device intel-iommu,
#                    intel_iommu=on), group node /dev/vfio/N, TYPE1v2 IOMMU.
#   --shm PATH       host file backing BAR2 (default /dev/shm/ivshmem); left
#                    behind after the run for inspection.
#   --shm-size SIZE  size of that file / of BAR2, power of two (default 16M).
#   --keep-shm       keep the file's current content (default: start zeroed).
#   --add PATH       copy an extra file into the guest's /test/ (repeatable).
#   --env NAME=VAL   set an environment variable for the test (repeatable).
#   --bind VID:DID   also bind devices with this PCI id to vfio-pci (repeatable;
#                    add the device itself with --qemu-arg, e.g. -device edu).
#   --qemu-arg ARG   extra QEMU argument (repeatable).
#   --mem SIZE       guest RAM (default 512M).      --smp N  vCPUs (default 1).
#   --timeout SEC    kill the guest after SEC seconds (default 300).
#   --accel tcg|kvm  (default tcg; kvm only where /dev/kvm really works).
#   --kernel-version VER   guest kernel (default: newest /boot/vmlinuz-* with
#                    vfio-pci modules; linux-image-amd64 is installed if none).
#   --verbose        kernel messages on the console, vfio dmesg at the end.
#   --cache DIR      build cache (default $XDG_CACHE_HOME/nvgrace-guest or
#                    ~/.cache/nvgrace-guest); env VFIO_GUEST_CACHE also works.
#
# Inside the guest the test runs as root in /test with:
#   VFIO_BDF     PCI address of the ivshmem device (e.g. 0000:00:01.0)
#   VFIO_GROUP   its group node (/dev/vfio/noiommu-0 or /dev/vfio/1)
#   VFIO_MODE    noiommu | type1
#   VFIO_IOMMU_TYPE  8 (VFIO_NOIOMMU_IOMMU) or 3 (VFIO_TYPE1v2_IOMMU)
#   VFIO_DEVICES every bound device as "BDF=GROUP" words
#   VFIO_SHM_SIZE BAR2 size in bytes
# Dynamically linked binaries work too: their shared libraries (as ldd lists
# them on the host) are copied into the guest.
#
# Exit status: the test program's, read from a marker line on the console;
# 124 when the guest timed out, 125 when the guest setup failed (no device,
# bind failed, no marker).
set -euo pipefail

die() { echo "run-guest: $*" >&2; exit 125; }
log() { echo "run-guest: $*" >&2; }

MODE=${VFIO_GUEST_MODE:-viommu}
SHM=${VFIO_GUEST_SHM:-/dev/shm/ivshmem}
SHM_SIZE=16M
KEEP_SHM=0
MEM=512M
SMP=1
TIMEOUT=300
ACCEL=${VFIO_GUEST_ACCEL:-tcg}
KVER=${VFIO_GUEST_KVER:-}
VERBOSE=0
CACHE=${VFIO_GUEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nvgrace-guest}
ADD=() ENVS=() BIND=("1af4:1110") QARGS=()

while [ $# -gt 0 ]; do
	case $1 in
	--mode) MODE=$2; shift 2 ;;
	--mode=*) MODE=${1#*=}; shift ;;
	--shm) SHM=$2; shift 2 ;;
	--shm-size) SHM_SIZE=$2; shift 2 ;;
	--keep-shm) KEEP_SHM=1; shift ;;
	--add) ADD+=("$2"); shift 2 ;;
	--env) ENVS+=("$2"); shift 2 ;;
	--bind) BIND+=("$2"); shift 2 ;;
	--qemu-arg) QARGS+=("$2"); shift 2 ;;
	--mem) MEM=$2; shift 2 ;;
	--smp) SMP=$2; shift 2 ;;
	--timeout) TIMEOUT=$2; shift 2 ;;
	--accel) ACCEL=$2; shift 2 ;;
	--kernel-version) KVER=$2; shift 2 ;;
	--verbose) VERBOSE=1; shift ;;
	--cache) CACHE=$2; shift 2 ;;
	-h|--help) sed -n '2,/^set -e/p' "$0" | sed 's/^# \{0,1\}//; /^set -e/d'; exit 0 ;;
	--) shift; break ;;
	-*) die "unknown option $1 (see --help)" ;;
	*) break ;;
	esac
done
[ $# -ge 1 ] || die "usage: run-guest.sh [options] TEST_BINARY [ARGS...] (see --help)"
TEST_BIN=$1; shift
[ -f "$TEST_BIN" ] && [ -x "$TEST_BIN" ] || die "not an executable file: $TEST_BIN"
case $MODE in noiommu|viommu) ;; *) die "--mode must be noiommu or viommu" ;; esac
case $ACCEL in tcg|kvm) ;; *) die "--accel must be tcg or kvm" ;; esac
for id in "${BIND[@]}"; do
	[[ $id =~ ^[0-9a-fA-F]{4}:[0-9a-fA-F]{4}$ ]] || die "--bind wants VID:DID in hex, got $id"
done
for e in "${ENVS[@]}"; do
	[[ $e =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "--env wants NAME=VALUE, got $e"
done

to_bytes() {
	local v=${1^^}
	case $v in
	*K) echo $(( ${v%K} << 10 )) ;; *M) echo $(( ${v%M} << 20 )) ;;
	*G) echo $(( ${v%G} << 30 )) ;; *) echo $(( v )) ;;
	esac
}
SHM_BYTES=$(to_bytes "$SHM_SIZE")
(( SHM_BYTES >= 4096 && (SHM_BYTES & (SHM_BYTES - 1)) == 0 )) ||
	die "--shm-size must be a power of two >= 4K (ivshmem BAR), got $SHM_SIZE"

# ---- Debian packages ---------------------------------------------------------
APT_UPDATED=0
apt_install() {
	local missing=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get"
	local sudo=
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	log "installing ${missing[*]}"
	if [ $APT_UPDATED = 0 ]; then
		$sudo apt-get update -q >&2 || die "apt-get update failed"
		APT_UPDATED=1
	fi
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends \
		"${missing[@]}" >&2 || die "apt-get install ${missing[*]} failed"
}

apt_install qemu-system-x86 qemu-system-data cpio kmod xz-utils

kernel_ok() { [ -f "/boot/vmlinuz-$1" ] && modinfo -k "$1" -n vfio-pci >/dev/null 2>&1; }
pick_kernel() {
	local v best=
	for v in $(ls /boot/vmlinuz-* 2>/dev/null | sed 's|^/boot/vmlinuz-||' | sort -V); do
		kernel_ok "$v" && best=$v
	done
	echo "$best"
}
if [ -z "$KVER" ]; then
	KVER=$(pick_kernel)
	if [ -z "$KVER" ]; then
		apt_install linux-image-amd64
		KVER=$(pick_kernel)
	fi
	[ -n "$KVER" ] || die "no /boot/vmlinuz-* with vfio-pci modules found"
else
	kernel_ok "$KVER" || apt_install "linux-image-$KVER"
	kernel_ok "$KVER" || die "kernel $KVER: /boot/vmlinuz-$KVER or its vfio-pci module missing"
fi
[ -r "/boot/vmlinuz-$KVER" ] || die "/boot/vmlinuz-$KVER is not readable (run as root?)"

# busybox must be static: use busybox-static if installed, else unpack its .deb
BUSYBOX=
if dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed'; then
	BUSYBOX=/bin/busybox
elif ! dpkg-query -W -f='${Status}' busybox 2>/dev/null | grep -q 'ok installed'; then
	apt_install busybox-static
	BUSYBOX=/bin/busybox
fi

# ---- cached build: kernel image, modules, base initramfs ----------------------
SELF_HASH=$(sha256sum "$0" | cut -c1-12)
BUILD=$CACHE/$KVER-$MODE-$SELF_HASH
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9

config_has() { grep -q "^$1=[ym]" "/boot/config-$KVER" 2>/dev/null; }

# Extract the uncompressed ELF vmlinux from the bzImage: with CONFIG_PVH QEMU
# boots it directly, skipping the slow in-guest decompression under TCG.
extract_vmlinux() {
	local img=/boot/vmlinuz-$KVER out=$1 off magic cmd
	for magic in '\xfd7zXZ\x00:xz -dc' '\x28\xb5\x2f\xfd:zstd -dc' '\x1f\x8b\x08:gzip -dc'; do
		cmd=${magic#*:}
		command -v "${cmd%% *}" >/dev/null || continue
		for off in $(LC_ALL=C grep -aboP "${magic%%:*}" "$img" | cut -d: -f1 | head -5); do
			tail -c +$((off + 1)) "$img" | $cmd > "$out.tmp" 2>/dev/null || true
			if [ "$(head -c 4 "$out.tmp" 2>/dev/null)" = $'\x7fELF' ]; then
				mv "$out.tmp" "$out"
				return 0
			fi
		done
	done
	rm -f "$out.tmp"
	return 1
}

# Rebuild vfio.ko with CONFIG_VFIO_NOIOMMU from Debian's kernel source.
build_noiommu_vfio() {
	local out=$1 series pkgver srcver tarball tmp crc_ok
	series=$(echo "$KVER" | sed -E 's/^([0-9]+\.[0-9]+).*/\1/')
	log "kernel $KVER lacks CONFIG_VFIO_NOIOMMU: building vfio.ko with it (one-time)"
	apt_install "linux-source-$series" "linux-headers-$KVER" make gcc binutils
	pkgver=$(dpkg-query -W -f='${Version}' "linux-image-$KVER" 2>/dev/null || true)
	srcver=$(dpkg-query -W -f='${Version}' "linux-source-$series" 2>/dev/null || true)
	[ "$pkgver" = "$srcver" ] ||
		log "warning: linux-source-$series $srcver != linux-image-$KVER $pkgver (symbol CRCs are checked below)"
	tarball=$(ls /usr/src/linux-source-"$series".tar.* 2>/dev/null | head -1)
	[ -n "$tarball" ] || die "no /usr/src/linux-source-$series.tar.*"
	tmp=$(mktemp -d)
	tar -xf "$tarball" -C "$tmp" "linux-source-$series/drivers/vfio" ||
		die "cannot extract drivers/vfio from $tarball"
	local src=$tmp/linux-source-$series/drivers/vfio bdir=$tmp/build
	mkdir -p "$bdir"
	cp "$src"/*.c "$src"/*.h "$bdir"/
	cp "$src/Makefile" "$bdir/Makefile.vfio"
	# The kernel's own object list for vfio.ko, then only that module.
	cat > "$bdir/Kbuild" <<-'EOF'
		include $(src)/Makefile.vfio
		obj-y :=
		obj-m := vfio.o
		ccflags-y += -DCONFIG_VFIO_NOIOMMU=1
	EOF
	make -s -C "/lib/modules/$KVER/build" M="$bdir" CONFIG_VFIO_NOIOMMU=y modules >&2 ||
		die "building vfio.ko failed (try --mode viommu)"
	# Exported symbol CRCs must equal the shipped vfio.ko's, or vfio-pci won't load.
	crc_ok=1
	diff <(awk '$3 ~ /drivers\/vfio\/vfio$/ {print $2, $1}' "/lib/modules/$KVER/build/Module.symvers" | sort) \
		<(awk '{print $2, $1}' "$bdir/Module.symvers" | sort) >&2 || crc_ok=0
	[ $crc_ok = 1 ] || die "rebuilt vfio.ko exports different symbol CRCs than $KVER's (try --mode viommu)"
	modinfo -p "$bdir/vfio.ko" | grep -q enable_unsafe_noiommu_mode || die "rebuilt vfio.ko has no noiommu parameter"
	strip --strip-debug -o "$out" "$bdir/vfio.ko"
	rm -rf "$tmp"
}

copy_module() { # name-or-path dest-dir
	local f=$1 base
	base=$(basename "$f"); base=${base%.xz}; base=${base%.zst}; base=${base%.gz}
	case $f in
	*.xz) xz -dc "$f" > "$2/$base" ;;
	*.zst) zstd -qdc "$f" > "$2/$base" ;;
	*.gz) gzip -dc "$f" > "$2/$base" ;;
	*) cp "$f" "$2/$base" ;;
	esac
	echo "${base%.ko}"
}

build_base() {
	local root=$BUILD/root mods order=() p name line
	rm -rf "$BUILD"; mkdir -p "$root"/{bin,dev,proc,sys,tmp,run,lib/vfio-modules,test}
	if [ -n "$BUSYBOX" ]; then
		cp "$BUSYBOX" "$root/bin/busybox"
	else
		( cd "$BUILD" && apt-get download busybox-static >&2 && dpkg-deb -x busybox-static_*.deb bb ) ||
			die "cannot get busybox-static"
		cp "$BUILD/bb/bin/busybox" "$root/bin/busybox"
	fi
	for p in $("$root/bin/busybox" --list); do
		[ "$p" = busybox ] || ln -s busybox "$root/bin/$p"
	done

	# modules in dependency order (vfio_iommu_type1 is only a soft dependency)
	mods=$root/lib/vfio-modules
	while read -r line; do
		set -- $line
		[ "${1:-}" = insmod ] || continue
		name=$(basename "$2"); name=${name%.xz}; name=${name%.zst}; name=${name%.gz}; name=${name%.ko}
		[[ " ${order[*]:-} " == *" $name "* ]] && continue
		order+=("$(copy_module "$2" "$mods")")
	done < <(modprobe -S "$KVER" --show-depends vfio-pci; modprobe -S "$KVER" --show-depends vfio_iommu_type1)
	printf '%s\n' "${order[@]}" > "$mods/order"

	local vfio_param=
	if [ "$MODE" = noiommu ]; then
		vfio_param=enable_unsafe_noiommu_mode=1
		if ! config_has CONFIG_VFIO_NOIOMMU; then
			build_noiommu_vfio "$mods/vfio.ko"
		fi
	fi

	cat > "$root/init" <<-EOF
		#!/bin/sh
		# generated by run-guest.sh
		MODE=$MODE
		VFIO_PARAM=$vfio_param
	EOF
	cat >> "$root/init" <<-'EOF'
		export PATH=/bin HOME=/test
		mount -t proc proc /proc
		mount -t sysfs sysfs /sys
		mount -t devtmpfs devtmpfs /dev
		mkdir -p /dev/shm && mount -t tmpfs tmpfs /dev/shm
		mount -t tmpfs tmpfs /tmp
		. /test/run.conf
		result() {
			[ "$VERBOSE" = 1 ] && dmesg | grep -i -E 'vfio|iommu|dmar' >&2
			echo "VFIO-GUEST-RESULT:$NONCE:$1"
			poweroff -f
		}
		fail() { echo "vfio-guest init: $*" >&2; result 125; }
		for m in $(cat /lib/vfio-modules/order); do
			p=
			[ "$m" = vfio ] && p=$VFIO_PARAM
			insmod /lib/vfio-modules/$m.ko $p || fail "insmod $m failed"
		done
		DEVICES=
		for id in $BIND_IDS; do
			for d in /sys/bus/pci/devices/*; do
				[ "$(cat $d/vendor):$(cat $d/device)" = "0x${id%:*}:0x${id#*:}" ] || continue
				bdf=${d##*/}
				echo vfio-pci > $d/driver_override
				[ -e $d/driver ] && echo $bdf > $d/driver/unbind
				echo $bdf > /sys/bus/pci/drivers_probe
				drv=$(readlink $d/driver); drv=${drv##*/}
				[ "$drv" = vfio-pci ] || fail "$bdf: not bound to vfio-pci (driver: ${drv:-none}; dmesg: $(dmesg | tail -3))"
				g=$(readlink $d/iommu_group); g=${g##*/}
				node=/dev/vfio/$g
				[ "$MODE" = noiommu ] && node=/dev/vfio/noiommu-$g
				i=0
				while [ ! -c $node ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
				[ -c $node ] || fail "$bdf: $node did not appear"
				DEVICES="$DEVICES${DEVICES:+ }$bdf=$node"
			done
		done
		first=${DEVICES%% *}
		[ -n "$first" ] || fail "no device with id ${BIND_IDS%% *} found"
		export VFIO_DEVICES="$DEVICES" VFIO_BDF=${first%%=*} VFIO_GROUP=${first#*=}
		if [ "$MODE" = noiommu ]; then
			export VFIO_MODE=noiommu VFIO_IOMMU_TYPE=8
		else
			export VFIO_MODE=type1 VFIO_IOMMU_TYPE=3
		fi
		cd /test
		sh /test/run.sh
		result $?
	EOF
	chmod +x "$root/init"

	local kimg=/boot/vmlinuz-$KVER
	if config_has CONFIG_PVH && extract_vmlinux "$BUILD/vmlinux"; then
		kimg=$BUILD/vmlinux
	fi
	echo "$kimg" > "$BUILD/kernel-image"
	( cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet ) > "$BUILD/base.cpio"
	rm -rf "$root"
	touch "$BUILD/.done"
}

if [ ! -f "$BUILD/.done" ]; then
	# drop stale builds of this kernel+mode from older versions of this script
	rm -rf "$CACHE/$KVER-$MODE-"*
	T0=$(date +%s%N)
	build_base
	log "built guest image in $(( ($(date +%s%N) - T0) / 1000000 )) ms ($BUILD)"
fi
flock -u 9
KIMG=$(cat "$BUILD/kernel-image")

# ---- per-run initramfs part: the test, its libraries, its arguments ----------
RUN=$(mktemp -d)
trap 'rm -rf "$RUN"' EXIT
mkdir -p "$RUN/root/test"
NONCE=$(od -An -N8 -tx8 /dev/urandom | tr -d ' \n')
BIN_NAME=$(basename "$TEST_BIN")
cp "$TEST_BIN" "$RUN/root/test/$BIN_NAME"
for f in "${ADD[@]}"; do
	[ -e "$f" ] || die "--add: no such file $f"
	cp -r "$f" "$RUN/root/test/"
done
# shared libraries of a dynamically linked test binary
if ldd "$TEST_BIN" >/dev/null 2>&1; then
	for lib in $(ldd "$TEST_BIN" | grep -o '/[^ ]*' | sort -u); do
		mkdir -p "$RUN/root$(dirname "$lib")"
		cp -L "$lib" "$RUN/root$lib"
	done
fi
sq() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }
{
	echo "NONCE=$NONCE"
	echo "VERBOSE=$VERBOSE"
	echo "BIND_IDS=$(sq "${BIND[*],,}")"
} > "$RUN/root/test/run.conf"
{
	echo "export VFIO_SHM_SIZE=$SHM_BYTES"
	for e in "${ENVS[@]}"; do echo "export ${e%%=*}=$(sq "${e#*=}")"; done
	printf 'exec ./%s' "$(sq "$BIN_NAME")"
	for a in "$@"; do printf ' %s' "$(sq "$a")"; done
	echo
} > "$RUN/root/test/run.sh"
( cd "$RUN/root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet ) > "$RUN/run.cpio"
cat "$BUILD/base.cpio" "$RUN/run.cpio" > "$RUN/initrd"

# ---- shared memory file ----------------------------------------------------------
mkdir -p "$(dirname "$SHM")"
if [ $KEEP_SHM = 0 ]; then
	rm -f "$SHM"
fi
[ -e "$SHM" ] || : > "$SHM"
[ "$(stat -c %s "$SHM")" -ge "$SHM_BYTES" ] || truncate -s "$SHM_BYTES" "$SHM"

# ---- boot ---------------------------------------------------------------------------
APPEND="console=ttyS0 panic=-1 oops=panic rdinit=/init"
[ $VERBOSE = 1 ] && APPEND="$APPEND loglevel=7" || APPEND="$APPEND quiet loglevel=3"
MACHINE=q35
QEMU=(qemu-system-x86_64 -no-user-config -nodefaults -display none -no-reboot
	-accel "$ACCEL" -m "$MEM" -smp "$SMP" -serial stdio)
if [ "$MODE" = viommu ]; then
	APPEND="$APPEND intel_iommu=on"
	[ "$ACCEL" = kvm ] && MACHINE="$MACHINE,kernel-irqchip=split"
	QEMU+=(-device intel-iommu)   # must precede the PCI devices it translates for
fi
[ -f /usr/share/qemu/qboot.rom ] && QEMU+=(-bios /usr/share/qemu/qboot.rom)
# shellcheck disable=SC2054  # commas inside QEMU option values
QEMU+=(-machine "$MACHINE" -kernel "$KIMG" -initrd "$RUN/initrd" -append "$APPEND"
	-object "memory-backend-file,id=vfioguestmem,share=on,mem-path=$SHM,size=$SHM_BYTES"
	-device ivshmem-plain,memdev=vfioguestmem
	"${QARGS[@]}")

T0=$(date +%s%N)
set +e
timeout -k 5 "$TIMEOUT" "${QEMU[@]}" < /dev/null 2>&1 | sed -u 's/\r$//' | tee "$RUN/console.log"
QRC=${PIPESTATUS[0]}
set -e
T1=$(date +%s%N)
ELAPSED=$(( (T1 - T0) / 1000000 ))

RC=$(grep -a -o "^VFIO-GUEST-RESULT:$NONCE:[0-9]*" "$RUN/console.log" | tail -1 | cut -d: -f3 || true)
if [ -z "$RC" ]; then
	if [ "$QRC" = 124 ] || [ "$QRC" = 137 ]; then
		log "guest timed out after ${TIMEOUT}s"
		exit 124
	fi
	log "no result marker from the guest (qemu exit $QRC) after ${ELAPSED} ms"
	exit 125
fi
log "guest ($MODE, $ACCEL, kernel $KVER) finished in ${ELAPSED} ms, test exit status $RC; BAR2 file: $SHM"
exit "$RC"
