# bash completion for the nvgrace tools: nvgrace-layout, nvgrace-probe and
# nvgrace-vfio-user-server. Installed once per tool name under
# share/bash-completion/completions/, or source it from ~/.bashrc.
#
# The option lists below are the tools' --help (tests/model/completion_test.sh
# checks that they stay the same).

_nvgrace_options_nvgrace_layout="--base --generation --kernel-rule --json --help --version"
_nvgrace_options_nvgrace_probe="--json --kernel-rule --device --no-bar-sizing --no-rules --container --iommufd --sysfs --help --version"
_nvgrace_options_nvgrace_vfio_user_server="--socket-path --socket --fd --socket-mode --socket-group --size --generation --memory-file --no-share-fds --no-flr --physical --device-id --bar2-size --bar4-size --ready --no-dvsec --cxl --print-ssdt --base --slot --function --acpi-name --handshake-timeout --message-timeout --idle-timeout --send-timeout --verbose --quiet --help --version"

# PCI addresses of devices bound to vfio-pci (or a variant driver built on it).
_nvgrace_vfio_devices() {
  local dev driver
  for dev in /sys/bus/pci/devices/*; do
    [[ -e $dev/iommu_group ]] || continue
    driver=$(readlink "$dev/driver" 2>/dev/null) || continue
    case ${driver##*/} in
      vfio-pci | *vfio-pci* | nvgrace-gpu*) printf '%s\n' "${dev##*/}" ;;
    esac
  done
}

# _nvgrace_complete TOOL: the completion of COMP_WORDS[COMP_CWORD] for TOOL.
_nvgrace_complete() {
  local tool=$1 cur=${COMP_WORDS[COMP_CWORD]} prev=
  ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
  local options_var=_nvgrace_options_${tool//-/_}
  local options=${!options_var}
  COMPREPLY=()

  # After "--" only operands follow.
  local i
  for ((i = 1; i < COMP_CWORD; i++)); do
    [[ ${COMP_WORDS[i]} == -- ]] && { _nvgrace_operand "$tool" "$cur"; return 0; }
  done

  # --option=value is completed like "--option value".
  local prefix=
  if [[ $cur == --*=* ]]; then
    prev=${cur%%=*}
    prefix=$prev=
    cur=${cur#*=}
  elif [[ $prev == = && COMP_CWORD -ge 2 ]]; then  # bash splits "--opt=" at '=' with the default COMP_WORDBREAKS
    prev=${COMP_WORDS[COMP_CWORD - 2]}
  elif [[ $cur == = ]]; then
    cur=
  fi

  local values=
  case $tool:$prev in
    *:--generation) values="hopper blackwell" ;;
    *:--kernel-rule) values="current 7.1 6.18 6.13" ;;
    nvgrace-layout:--base | nvgrace-vfio-user-server:--size) values= ;;
    nvgrace-probe:--device) values=$(_nvgrace_vfio_devices) ;;
    nvgrace-probe:--container | nvgrace-probe:--iommufd | nvgrace-vfio-user-server:--memory-file | \
      nvgrace-vfio-user-server:--socket-path | nvgrace-vfio-user-server:--socket)
      mapfile -t COMPREPLY < <(compgen -f -- "$cur")
      [[ -n $prefix ]] && COMPREPLY=("${COMPREPLY[@]/#/$prefix}")
      return 0 ;;
    nvgrace-probe:--sysfs)
      mapfile -t COMPREPLY < <(compgen -d -- "$cur")
      return 0 ;;
    nvgrace-vfio-user-server:--socket-group)
      mapfile -t COMPREPLY < <(compgen -g -- "$cur")
      return 0 ;;
    nvgrace-vfio-user-server:--socket-mode) values="0600 0660 0666" ;;
    nvgrace-vfio-user-server:--fd) values=3 ;;
    nvgrace-vfio-user-server:--ready) values="yes never" ;;
    nvgrace-vfio-user-server:--handshake-timeout | nvgrace-vfio-user-server:--message-timeout | \
      nvgrace-vfio-user-server:--send-timeout) values="0 10000" ;;
    nvgrace-vfio-user-server:--idle-timeout) values=0 ;;
    nvgrace-vfio-user-server:--device-id) values="0x2342 0x2345 0x2348 0x2941 0x31c2" ;;
    nvgrace-vfio-user-server:--bar2-size | nvgrace-vfio-user-server:--bar4-size | \
      nvgrace-vfio-user-server:--base | nvgrace-vfio-user-server:--slot | nvgrace-vfio-user-server:--function | \
      nvgrace-vfio-user-server:--acpi-name) values= ;;
    *)
      if [[ $cur == -* ]]; then
        mapfile -t COMPREPLY < <(compgen -W "$options" -- "$cur")
      else
        _nvgrace_operand "$tool" "$cur"
      fi
      return 0 ;;
  esac
  mapfile -t COMPREPLY < <(compgen -W "$values" -- "$cur")
  [[ -n $prefix ]] && COMPREPLY=("${COMPREPLY[@]/#/$prefix}")
  return 0
}

# Operands: the probe's TARGET (PCI addresses of vfio devices, /dev/vfio nodes);
# a SIZE for the layout tool (nothing to offer); none for the server.
_nvgrace_operand() {
  local tool=$1 cur=$2
  COMPREPLY=()
  if [[ $tool == nvgrace-probe ]]; then
    local nodes
    nodes=$(compgen -f -- "${cur:-/dev/vfio/}" 2>/dev/null)
    mapfile -t COMPREPLY < <(compgen -W "$(_nvgrace_vfio_devices) $nodes" -- "$cur")
  fi
}

_nvgrace_layout() { _nvgrace_complete nvgrace-layout; }
_nvgrace_probe() { _nvgrace_complete nvgrace-probe; }
_nvgrace_vfio_user_server() { _nvgrace_complete nvgrace-vfio-user-server; }
complete -F _nvgrace_layout nvgrace-layout
complete -F _nvgrace_probe nvgrace-probe
complete -F _nvgrace_vfio_user_server nvgrace-vfio-user-server
