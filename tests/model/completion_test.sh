#!/usr/bin/env bash
# The bash completion (tools/completion/nvgrace.bash) against the tools it completes.
#   completion_test.sh COMPLETION_SCRIPT NVGRACE_LAYOUT NVGRACE_PROBE NVGRACE_VFIO_USER_SERVER
# 1. The options it offers are the tools' options: every option listed in a
#    tool's --help is offered, and every option offered appears in the --help.
# 2. Completing option names, option values (also after --opt=), and nothing
#    but operands after "--".
set -uo pipefail
script=$1
declare -A binary=([nvgrace-layout]=$2 [nvgrace-probe]=$3 [nvgrace-vfio-user-server]=$4)
# shellcheck source=/dev/null
source "$script"
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

for tool in "${!binary[@]}"; do
  help=$("${binary[$tool]}" --help) || fail "$tool --help"
  listed=$(grep -E '^  -' <<<"$help" | grep -oE -- '--[a-z][a-z0-9-]*' | sort -u)
  var=_nvgrace_options_${tool//-/_}
  offered=$(tr ' ' '\n' <<<"${!var}" | sort -u)
  missing=$(comm -23 <(echo "$listed") <(echo "$offered"))
  [[ -z $missing ]] || fail "$tool: --help lists options the completion does not offer: $missing"
  for option in $offered; do
    grep -qE -- "$option([^a-z0-9-]|$)" <<<"$help" || fail "$tool: the completion offers $option, which --help does not mention"
  done
done

# complete TOOL WORD...: COMPREPLY for the last word, as one line.
complete_words() {
  local tool=$1
  shift
  COMP_WORDS=("$tool" "$@")
  COMP_CWORD=$#
  local fn=_${tool//-/_}
  "$fn"
  echo "${COMPREPLY[*]}"
}
expect() {  # expect "WANT" TOOL WORD...
  local want=$1
  shift
  local got
  got=$(complete_words "$@")
  [[ $got == "$want" ]] || fail "complete '$*': got '$got', expected '$want'"
}

expect "--generation" nvgrace-layout --gen
expect "hopper blackwell" nvgrace-layout --generation ""
expect "blackwell" nvgrace-layout --generation b
expect "--generation=blackwell" nvgrace-layout --generation=b
expect "blackwell" nvgrace-layout --generation = b
expect "current 7.1 6.18 6.13" nvgrace-layout --kernel-rule ""
expect "" nvgrace-layout --base ""
expect "--no-bar-sizing --no-rules" nvgrace-probe --no
expect "--socket-path --socket --socket-mode --socket-group" nvgrace-vfio-user-server --sock
expect "--size" nvgrace-vfio-user-server --si
expect "hopper" nvgrace-vfio-user-server --generation h
expect "--verbose" nvgrace-vfio-user-server --verb
expect "--no-share-fds --no-flr --no-dvsec" nvgrace-vfio-user-server --no-
expect "--handshake-timeout" nvgrace-vfio-user-server --hand
expect "--idle-timeout" nvgrace-vfio-user-server --idle
expect "0 10000" nvgrace-vfio-user-server --send-timeout ""
expect "--message-timeout=10000" nvgrace-vfio-user-server --message-timeout=1
expect "0" nvgrace-vfio-user-server --idle-timeout ""
expect "" nvgrace-layout -- --gen
tmp=$(mktemp -d)
touch "$tmp/memory.img"
expect "$tmp/memory.img" nvgrace-vfio-user-server --memory-file "$tmp/mem"
expect "--memory-file=$tmp/memory.img" nvgrace-vfio-user-server "--memory-file=$tmp/mem"
rm -rf "$tmp"
group=$(id -gn)
got=$(complete_words nvgrace-vfio-user-server --socket-group "$group")
[[ " $got " == *" $group "* ]] || fail "--socket-group $group: got '$got'"

if ((failures)); then
  echo "$failures completion check(s) failed" >&2
  exit 1
fi
echo "completion: all checks passed"
