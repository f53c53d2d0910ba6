#!/bin/sh
# /init of the real-driver rig's guest (busybox): bind Linux's nvgrace-gpu driver to
# the emulated Grace GPU, then run the steps the host asked for (/rig/run.conf).
# Everything the host parses is a line starting with "RIG".
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /tmp && mount -t tmpfs tmpfs /tmp
. /rig/run.conf

say() { echo "RIG: $*"; }
uptime_s() { cut -d' ' -f1 /proc/uptime; }
finish() {
	echo "RIG-DONE"
	sync
	poweroff -f
}

say "init at $(uptime_s) s of uptime"
dev=/sys/bus/pci/devices/$RIG_BDF
if [ ! -d "$dev" ]; then
	say "no PCI device at $RIG_BDF"
	finish
fi
say "device $(cat $dev/vendor):$(cat $dev/device) class $(cat $dev/class)" \
	"firmware_node $(cat $dev/firmware_node/path 2>/dev/null || echo none)"
channel=/sys/bus/pci/devices/$RIG_CHANNEL_BDF
echo 1 >"$channel/enable" 2>/dev/null

# The function's config space as the guest's platform left it (BAR addresses from the
# firmware, QEMU's view of the PCIe capability): the inputs the model is not given.
nvgrace-rig-guest put --channel "$channel/resource2" config "$dev/config" >/dev/null

if [ "$RIG_BIND" = yes ]; then
	t0=$(uptime_s)
	echo nvgrace_gpu_vfio_pci >"$dev/driver_override"
	echo "$RIG_BDF" >/sys/bus/pci/drivers_probe
	drv=$(readlink "$dev/driver")
	drv=${drv##*/}
	say "bind: driver ${drv:-none}, $(ls /dev/vfio 2>/dev/null | tr '\n' ' ')(from $t0 to $(uptime_s) s)"
	echo "RIG-BIND ${drv:-none}"
fi
# Behind an IOMMU (RIG_CDEV=yes) the device also has a cdev: the conformance suite and the
# probe go through it (iommufd) instead of the group.
cdev_node=
if [ "${RIG_CDEV:-no}" = yes ]; then
	n=$(ls "$dev/vfio-dev" 2>/dev/null | head -n 1)
	[ -n "$n" ] && cdev_node=/dev/vfio/devices/$n
	say "cdev ${cdev_node:-none}, iommu group $(readlink "$dev/iommu_group" 2>/dev/null | sed 's|.*/||')"
fi
dmesg | grep -i -E 'nvgrace|vfio|DMAR|iommu|ACPI.*(upgrade|Override|Truncat|SSDT|DSDT)|RAMDISK|BIOS-e820|user-defined' |
	sed 's/^/RIG-DMESG: /'

for step in $RIG_STEPS; do
	case $step in
	dump)
		nvgrace-rig-guest put --channel "$channel/resource2" dsdt /sys/firmware/acpi/tables/DSDT
		rc=$?
		;;
	diff)
		nvgrace-rig-guest diff --channel "$channel/resource2" --bdf "$RIG_BDF" $RIG_PROFILE \
			--seed "$RIG_SEED" --ops "$RIG_OPS"
		rc=$?
		;;
	conformance)
		NVGRACE_RIG_BDF=$RIG_BDF NVGRACE_RIG_PROFILE="$RIG_PROFILE" NVGRACE_RIG_ONE_OPEN=$RIG_ONE_OPEN \
			NVGRACE_RIG_CDEV=$cdev_node nvgrace-rig-conformance --no-colors=true
		rc=$?
		;;
	cdev)
		nvgrace-rig-guest cdev --bdf "$RIG_BDF" ${cdev_node:+--attach}
		rc=$?
		;;
	probe)
		nvgrace-probe "${cdev_node:-$RIG_BDF}"
		rc=$?
		echo "RIG-PROBE-TEXT-RC $rc"
		nvgrace-probe --json "${cdev_node:-$RIG_BDF}" | sed 's/^/RIG-PROBE-JSON: /'
		;;
	*)
		say "unknown step $step"
		rc=125
		;;
	esac
	echo "RIG-STEP $step rc=$rc at $(uptime_s) s"
done
dmesg | grep -i -E 'nvgrace|vfio' | tail -n 20 | sed 's/^/RIG-DMESG-END: /'
finish
