# Sourced. A private apt configuration for Debian's unstable suite (sid) and for
# bookworm-backports, used only to *download* sources and arch-independent packages
# (QEMU's source, linux-source-7.2, meson for QEMU's build). The system's apt sources,
# its package state and its installed packages are never touched: the configuration has
# its own sources list, list and cache directories, and nothing fetched here is installed.
#
#   nvg_cache_root                  -> ${NVGRACE_CACHE:-~/.cache/nvgrace}
#   nvg_apt SUITE apt-get-args...   apt-get against SUITE (sid | bookworm-backports)
#   nvg_apt_cache SUITE args...     apt-cache against SUITE
#   nvg_log MSG...                  one line on stderr, prefixed with the caller's name

nvg_cache_root() {
	local root=${NVGRACE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nvgrace}
	mkdir -p "$root"
	echo "$root"
}

nvg_log() { echo "${NVG_LOG_PREFIX:-rig}: $*" >&2; }

# The mirror the system already uses for Debian (first URIs of the main archive).
nvg_mirror() {
	local uri=""
	if [ -f /etc/apt/sources.list.d/debian.sources ]; then
		uri=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
	fi
	if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
		uri=$(awk '$1 == "deb" && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list)
	fi
	echo "${uri:-http://deb.debian.org/debian}"
}

# _nvg_apt_dir SUITE: set up (once) and print the private configuration directory.
_nvg_apt_dir() {
	local suite=$1 dir mirror
	dir=$(nvg_cache_root)/apt/$suite
	mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial" "$dir/etc"
	mirror=$(nvg_mirror)
	{
		echo "deb $mirror $suite main"
		echo "deb-src $mirror $suite main"
	} >"$dir/etc/sources.list.new"
	if ! cmp -s "$dir/etc/sources.list.new" "$dir/etc/sources.list"; then
		mv "$dir/etc/sources.list.new" "$dir/etc/sources.list"
		rm -f "$dir/updated"
	else
		rm -f "$dir/etc/sources.list.new"
	fi
	echo "$dir"
}

_nvg_apt_opts() {
	local dir=$1
	echo "-o Dir::Etc::SourceList=$dir/etc/sources.list -o Dir::Etc::SourceParts=/dev/null" \
		"-o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null" \
		"-o Dir::State::Lists=$dir/lists -o Dir::Cache=$dir/cache" \
		"-o Dir::State::status=/var/lib/dpkg/status -o APT::Sandbox::User=root -o Debug::NoLocking=1" \
		"-o Acquire::Languages=none -o APT::Get::List-Cleanup=0"
}

# The index is refreshed at most once a day (and whenever it is missing).
_nvg_apt_update() {
	local dir=$1 stamp=$1/updated
	if [ -f "$stamp" ] && [ -n "$(find "$stamp" -mmin -1440 2>/dev/null)" ]; then
		return 0
	fi
	# shellcheck disable=SC2046
	apt-get $(_nvg_apt_opts "$dir") -q update >&2 && touch "$stamp"
}

# _nvg_apt_tool TOOL SUITE ARGS...: run apt-get or apt-cache against SUITE's private configuration.
_nvg_apt_tool() {
	local tool=$1 suite=$2 dir
	shift 2
	dir=$(_nvg_apt_dir "$suite")
	_nvg_apt_update "$dir" || return 1
	# shellcheck disable=SC2046
	"$tool" $(_nvg_apt_opts "$dir") "$@"
}

nvg_apt() { _nvg_apt_tool apt-get "$@"; }
nvg_apt_cache() { _nvg_apt_tool apt-cache "$@"; }

# nvg_ensure_host_packages PKG...: install missing Debian 12 (system suite) packages.
nvg_ensure_host_packages() {
	local missing=() p sudo=
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	nvg_log "installing ${missing[*]}"
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 ||
		{ $sudo apt-get update -q >&2 && $sudo env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; }
}
