# Shared by scripts/run and scripts/test (sourced, not run).
# Sets NVGRACE_ROOT, NVGRACE_JOBS and provides ensure_packages, configure, section helpers.

NVGRACE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NVGRACE_JOBS="${NVGRACE_JOBS:-2}"

# ---------------------------------------------------------------------------------------
# Debian packages. EXTEND HERE: a folder that needs another package adds it to the list
# of the script that needs it (tell the lead; one package per line, with its reason).
#
# scripts/run: build nvgrace-layout (Release, tools only).
NVGRACE_RUN_PACKAGES=(
  g++             # compiler
  cmake           # build system (3.22+)
  ninja-build     # generator
  libmsgsl-dev    # Microsoft GSL: contract checks in tools (never needed by consumers)
)
# scripts/test: every configuration and every test.
NVGRACE_TEST_PACKAGES=(
  "${NVGRACE_RUN_PACKAGES[@]}"
  clang              # second compiler, sanitizers, libFuzzer
  libclang-rt-14-dev # ASan/UBSan/TSan/libFuzzer runtimes for clang 14
  clang-format       # format_check: the tree as .clang-format says (clang-format 14)
  llvm-14            # llvm-symbolizer: readable sanitizer stack traces
  doctest-dev        # unit tests
  libbenchmark-dev   # Google Benchmark (bench/)
  pkg-config         # consumer test checks nvgrace.pc
  python3            # JSON checks of the tools' output (tests/model, tests/guest)
  systemd            # systemd-analyze and systemd-socket-activate: the sample units in docs/vfio-user-server.md
  ccache             # compiler cache outside the clone: a run on a fresh clone recompiles only what changed
  valgrind           # compile_cost: counts the instructions the compiler spends on nvgrace's headers
)
# Only when tests/guest/run.sh exists: the QEMU guest test.
NVGRACE_GUEST_PACKAGES=(
  qemu-system-x86    # boots the throw-away guest
  busybox-static     # guest userland
)
# ---------------------------------------------------------------------------------------

# ensure_packages PKG...: install whatever is missing (apt-get update at most once).
ensure_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$pkg")
    fi
  done
  ((${#missing[@]} == 0)) && return 0
  local sudo=()
  if ((EUID != 0)); then
    if command -v sudo >/dev/null 2>&1; then
      sudo=(sudo)
    else
      echo "error: missing packages: ${missing[*]} (run as root, or install them first)" >&2
      return 1
    fi
  fi
  echo "installing: ${missing[*]}"
  if [[ -z "${NVGRACE_APT_UPDATED:-}" ]]; then
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    NVGRACE_APT_UPDATED=1
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# configure BUILD_DIR CMAKE_ARGS...: configure (or re-configure) a Ninja build of nvgrace.
configure() {
  local dir="$1"
  shift
  local generator=(-G Ninja)
  # An existing build dir keeps its generator; asking again with -G would be an error.
  [[ -f "$dir/CMakeCache.txt" ]] && generator=()
  cmake -S "$NVGRACE_ROOT" -B "$dir" "${generator[@]}" "$@"
}

# section TITLE: a visible stage header.
section() {
  printf '\n==== %s ====\n' "$*"
}
