#!/usr/bin/env bash
# tests/rigs/lib/kernel.sh: the guest kernel of the real-driver rig, built once and cached.
#
#   kernel.sh path     build if needed, then print the vmlinux to boot (PVH entry)
#   kernel.sh key      print the cache key
#
# Source: Debian's linux-source-7.2 from the unstable suite (an arch-independent package
# holding the kernel tarball), fetched through the private apt configuration of
# unstable-apt.sh and unpacked, never installed. Configuration: `make ARCH=x86_64
# tinyconfig`, then the fragment tests/rigs/real-driver/kernel.config, then olddefconfig.
# The build fails unless the result really has CONFIG_NVGRACE_GPU_VFIO_PCI=y.
#
# Cache: $NVGRACE_CACHE (default ~/.cache/nvgrace)/kernel/<version>-<hash of fragment
# and recipe>/{vmlinux,config}.
#
# To test a driver change without Grace hardware, point the rig at your own tree:
#   NVGRACE_KERNEL_TREE=~/src/linux tests/rigs/lib/kernel.sh path
# builds that tree out of tree (O= in the cache, incremental on every call) with the same
# configuration. NVGRACE_LINUX_SOURCE_VERSION pins the Debian version; NVGRACE_JOBS (2).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NVG_LOG_PREFIX=kernel
# shellcheck source=unstable-apt.sh
source "$HERE/unstable-apt.sh"

JOBS=${NVGRACE_JOBS:-2}
PACKAGE=linux-source-7.2
FRAGMENT=$HERE/../real-driver/kernel.config
HOST_PACKAGES=(gcc make bc flex bison libelf-dev libssl-dev xz-utils dpkg-dev cpio)
RECIPE_HASH=$( (cat "$FRAGMENT"; echo "recipe-1") | sha256sum | cut -c1-12)

# configure_and_build SRC OUT: tinyconfig + fragment + olddefconfig, then vmlinux.
configure_and_build() {
	local src=$1 out=$2
	mkdir -p "$out"
	make -C "$src" O="$out" ARCH=x86_64 tinyconfig >"$out/config.log" 2>&1 ||
		{ tail -n 30 "$out/config.log" >&2; return 1; }
	(cd "$out" && "$src/scripts/kconfig/merge_config.sh" -m -O "$out" "$out/.config" "$FRAGMENT") \
		>>"$out/config.log" 2>&1 || { tail -n 30 "$out/config.log" >&2; return 1; }
	make -C "$src" O="$out" ARCH=x86_64 olddefconfig >>"$out/config.log" 2>&1 ||
		{ tail -n 30 "$out/config.log" >&2; return 1; }
	# Every line of the fragment must have survived olddefconfig (a missing dependency
	# silently drops a symbol).
	local line missing=0
	while IFS= read -r line; do
		case $line in CONFIG_*=*) ;; *) continue ;; esac
		grep -qx "$line" "$out/.config" || { nvg_log "not in the final .config: $line"; missing=1; }
	done <"$FRAGMENT"
	[ $missing -eq 0 ] || return 1
	nvg_log "building vmlinux in $out ($JOBS jobs)"
	nice -n 5 make -C "$src" O="$out" ARCH=x86_64 -j "$JOBS" vmlinux >"$out/build.log" 2>&1 ||
		{ tail -n 60 "$out/build.log" >&2; return 1; }
}

debian_version() {
	if [ -n "${NVGRACE_LINUX_SOURCE_VERSION:-}" ]; then
		echo "$NVGRACE_LINUX_SOURCE_VERSION"
		return
	fi
	nvg_apt_cache sid policy "$PACKAGE" 2>/dev/null | sed -n 's/^ *Candidate: //p'
}

kernel_key() {
	local v
	v=$(debian_version)
	[ -n "$v" ] && [ "$v" != "(none)" ] || { nvg_log "$PACKAGE is not in unstable's index"; return 1; }
	echo "${v}-${RECIPE_HASH}"
}

custom_tree() {
	local tree out
	tree=$(cd "$NVGRACE_KERNEL_TREE" && pwd)
	out=$(nvg_cache_root)/kernel/tree-$(printf '%s' "$tree" | sha256sum | cut -c1-12)-$RECIPE_HASH
	nvg_ensure_host_packages "${HOST_PACKAGES[@]}"
	configure_and_build "$tree" "$out" || return 1
	echo "$out/vmlinux"
}

kernel_path() {
	[ -z "${NVGRACE_KERNEL_TREE:-}" ] || { custom_tree; return; }
	local cache key dest work src t0
	cache=$(nvg_cache_root)
	key=$(kernel_key) || return 1
	dest=$cache/kernel/$key
	if [ -f "$dest/vmlinux" ]; then
		echo "$dest/vmlinux"
		return 0
	fi
	nvg_ensure_host_packages "${HOST_PACKAGES[@]}"
	mkdir -p "$cache/kernel"
	work=$(mktemp -d "$cache/kernel/build.XXXXXX")
	# shellcheck disable=SC2064
	trap "rm -rf '$work'" EXIT
	t0=$SECONDS
	nvg_log "fetching $PACKAGE ${key%-*} from unstable"
	(cd "$work" && nvg_apt sid -q download "$PACKAGE=${key%-*}" >&2) || return 1
	dpkg-deb --fsys-tarfile "$work"/${PACKAGE}_*_all.deb |
		tar -x -C "$work" --wildcards './usr/src/linux-source-*.tar.xz'
	tar -C "$work" -xJf "$work"/usr/src/linux-source-*.tar.xz
	rm -rf "$work/usr" "$work"/*.deb
	src=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'linux-source-*' | head -n 1)
	[ -n "$src" ] || { nvg_log "no kernel tree in the package"; return 1; }
	nvg_log "unpacked in $((SECONDS - t0)) s; configuring (tinyconfig + $(basename "$FRAGMENT"))"
	configure_and_build "$src" "$work/out" || return 1
	grep -qx 'CONFIG_NVGRACE_GPU_VFIO_PCI=y' "$work/out/.config" || { nvg_log "driver not configured"; return 1; }
	rm -rf "$dest.tmp"
	mkdir -p "$dest.tmp"
	cp "$work/out/vmlinux" "$dest.tmp/vmlinux"
	strip --strip-debug "$dest.tmp/vmlinux" 2>/dev/null || true
	cp "$work/out/.config" "$dest.tmp/config"
	echo "built in $((SECONDS - t0)) s on $(date -u +%FT%TZ)" >"$dest.tmp/built"
	rm -rf "$dest"
	mv "$dest.tmp" "$dest"
	nvg_log "$PACKAGE ${key%-*} built in $((SECONDS - t0)) s -> $dest"
	echo "$dest/vmlinux"
}

case "${1:-path}" in
path) kernel_path ;;
key) kernel_key ;;
*)
	echo "usage: kernel.sh [path|key]" >&2
	exit 2
	;;
esac
