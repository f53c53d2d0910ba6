#!/usr/bin/env bash
# tests/rigs/lib/qemu.sh: a QEMU with vfio-user-pci (10.1 or newer), built once from
# Debian's `qemu` source package in the unstable suite and cached outside the clone.
#
#   qemu.sh path      build if needed, then print the qemu-system-x86_64 to use
#   qemu.sh firmware  print the -L directories (Debian 12 firmware) one per line
#   qemu.sh key       print the cache key of the build that `path` would use
#
# Only the source package is taken from unstable (through the private apt configuration
# of unstable-apt.sh); it is built for x86_64-softmmu against Debian 12's libraries. The
# +ds source has no bundled meson and QEMU needs meson >= 1.5, newer than Debian 12's 1.0,
# so meson (pure Python) comes from bookworm-backports, unpacked into the cache, never
# installed. Firmware comes from Debian 12's packages (seabios, qemu-system-data).
#
# Cache: $NVGRACE_CACHE (default ~/.cache/nvgrace)/qemu/<version>-<hash of this recipe>,
# complete only when it holds the stamp file; a failed build leaves nothing behind.
# Environment: NVGRACE_QEMU_VERSION pins a source version (e.g. 1:10.2.2+ds-1);
# NVGRACE_JOBS (default 2).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NVG_LOG_PREFIX=qemu
# shellcheck source=unstable-apt.sh
source "$HERE/unstable-apt.sh"

JOBS=${NVGRACE_JOBS:-2}
MIN_VERSION=10.1
# Everything that decides what the build produces; a change here means a new cache key.
CONFIGURE_FLAGS=(--target-list=x86_64-softmmu --without-default-features --disable-docs
	--disable-werror --disable-download --disable-install-blobs --disable-rust --disable-user --disable-tools
	--disable-guest-agent --enable-trace-backends=nop)
HOST_PACKAGES=(gcc make ninja-build pkg-config flex bison python3 python3-venv
	libglib2.0-dev zlib1g-dev seabios qemu-system-data xz-utils dpkg-dev)
RECIPE_HASH=$(printf '%s\n' "${CONFIGURE_FLAGS[@]}" "recipe-4" | sha256sum | cut -c1-12)

firmware_dirs() {
	# Debian 12: qemu-system-data holds the option ROMs (pvh.bin, linuxboot_dma.bin, ...)
	# and links to seabios' bios-256k.bin.
	echo /usr/share/qemu
	echo /usr/share/seabios
}

# Source versions of `qemu` in unstable, newest first, at least MIN_VERSION.
candidate_versions() {
	if [ -n "${NVGRACE_QEMU_VERSION:-}" ]; then
		echo "$NVGRACE_QEMU_VERSION"
		return
	fi
	nvg_apt_cache sid showsrc qemu 2>/dev/null | sed -n 's/^Version: //p' | sort -u |
		while read -r v; do
			if dpkg --compare-versions "$v" ge "1:$MIN_VERSION"; then echo "$v"; fi
		done | sort -r -V
}

key_for() { # key_for DEBIAN_VERSION
	local upstream=${1#*:}
	upstream=${upstream%-*}
	echo "${upstream}-${RECIPE_HASH}"
}

# meson >= 1.5 (QEMU's configure wants it) from bookworm-backports, unpacked into the
# cache (never installed); prints the root it was unpacked into.
BACKPORTED_PYTHON=(meson)
ensure_build_python() {
	local cache root tmp deb
	cache=$(nvg_cache_root)
	root=$cache/qemu-build-python
	if [ -f "$root/.complete" ]; then
		echo "$root"
		return
	fi
	tmp=$(mktemp -d "$cache/qemu-build-python.XXXXXX")
	(cd "$tmp" && nvg_apt bookworm-backports -q download "${BACKPORTED_PYTHON[@]}" >&2) || { rm -rf "$tmp"; return 1; }
	for deb in "$tmp"/*_all.deb; do dpkg-deb -x "$deb" "$tmp/root"; done
	touch "$tmp/root/.complete"
	rm -rf "$root"
	mv "$tmp/root" "$root"
	rm -rf "$tmp"
	echo "$root"
}

build_version() { # build_version DEBIAN_VERSION DEST: 0 when DEST holds a finished build
	local version=$1 dest=$2 cache work src meson
	cache=$(nvg_cache_root)
	work=$(mktemp -d "$cache/qemu-build.XXXXXX")
	# shellcheck disable=SC2064
	trap "rm -rf '$work'" RETURN
	nvg_log "fetching the source of qemu $version from unstable"
	if ! (cd "$work" && nvg_apt sid -q source --download-only "qemu=$version" >&2); then
		nvg_log "qemu $version is not downloadable from the mirror"
		return 2
	fi
	# dpkg-source applies Debian's patches: they adapt the build to the +ds tarball
	# (no bundled firmware blobs, no pycotap).
	(cd "$work" && dpkg-source --no-check -x qemu_*.dsc src >/dev/null) || return 1
	src=$work/src
	meson=$(ensure_build_python)
	local t0=$SECONDS
	nvg_log "building qemu $version (${CONFIGURE_FLAGS[*]}) in $work; this takes a few minutes"
	mkdir -p "$src/build"
	(
		cd "$src/build"
		export PATH="$meson/usr/bin:$PATH"
		export PYTHONPATH="$meson/usr/lib/python3/dist-packages${PYTHONPATH:+:$PYTHONPATH}"
		../configure --python=/usr/bin/python3 --prefix="$dest" "${CONFIGURE_FLAGS[@]}" >configure.log 2>&1 ||
			{ tail -n 40 configure.log >&2; exit 1; }
		nice -n 5 ninja -j "$JOBS" qemu-system-x86_64 >build.log 2>&1 || { tail -n 60 build.log >&2; exit 1; }
	) || return 1
	rm -rf "$dest.tmp"
	mkdir -p "$dest.tmp/bin"
	cp "$src/build/qemu-system-x86_64" "$dest.tmp/bin/"
	strip "$dest.tmp/bin/qemu-system-x86_64" || true
	"$dest.tmp/bin/qemu-system-x86_64" -device help 2>/dev/null | grep -q '"vfio-user-pci"' ||
		{ nvg_log "the build has no vfio-user-pci device"; rm -rf "$dest.tmp"; return 1; }
	echo "$version" >"$dest.tmp/debian-version"
	printf '%s\n' "${CONFIGURE_FLAGS[@]}" >"$dest.tmp/configure-flags"
	echo "built in $((SECONDS - t0)) s on $(date -u +%FT%TZ)" >"$dest.tmp/built"
	rm -rf "$dest"
	mv "$dest.tmp" "$dest"
	nvg_log "qemu $version built in $((SECONDS - t0)) s -> $dest"
}

qemu_path() {
	local cache v dest rc
	cache=$(nvg_cache_root)
	mkdir -p "$cache/qemu"
	# A finished build for a version the suite still lists is used without any download.
	local versions
	versions=$(candidate_versions) || true
	if [ -z "$versions" ]; then
		# The index could not be read (no network, mirror down): a finished build of this
		# recipe is still good; take the newest one rather than failing.
		dest=$(printf '%s\n' "$cache/qemu/"*"-$RECIPE_HASH" | sort -V | tail -n 1)
		if [ -n "$dest" ] && [ -x "$dest/bin/qemu-system-x86_64" ]; then
			nvg_log "unstable's index is unavailable; using the cached build $dest"
			echo "$dest/bin/qemu-system-x86_64"
			return 0
		fi
		nvg_log "no qemu >= $MIN_VERSION in unstable's index"
		return 1
	fi
	for v in $versions; do
		dest=$cache/qemu/$(key_for "$v")
		if [ -x "$dest/bin/qemu-system-x86_64" ]; then
			echo "$dest/bin/qemu-system-x86_64"
			return 0
		fi
	done
	nvg_ensure_host_packages "${HOST_PACKAGES[@]}"
	for v in $versions; do
		dest=$cache/qemu/$(key_for "$v")
		rc=0
		build_version "$v" "$dest" || rc=$?
		if [ $rc -eq 0 ]; then
			echo "$dest/bin/qemu-system-x86_64"
			return 0
		fi
		[ $rc -eq 2 ] || return 1 # a real build failure is not hidden by trying another version
	done
	nvg_log "no qemu >= $MIN_VERSION source could be downloaded"
	return 1
}

case "${1:-path}" in
path) qemu_path ;;
firmware) firmware_dirs ;;
key)
	# The key `path` would use: a finished build first, else the newest candidate.
	cache=$(nvg_cache_root)
	versions=$(candidate_versions) || true
	for v in $versions; do
		if [ -x "$cache/qemu/$(key_for "$v")/bin/qemu-system-x86_64" ]; then
			key_for "$v"
			exit 0
		fi
	done
	for v in $versions; do
		key_for "$v"
		break
	done
	;;
*)
	echo "usage: qemu.sh [path|firmware|key]" >&2
	exit 2
	;;
esac
