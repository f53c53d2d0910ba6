#!/bin/sh
# Runs as the guest's test program (tests/guest/run.sh passes it to
# run-guest.sh): the doctest binary, then nvgrace-probe in text and JSON form.
# Sections are framed by marker lines so the host can cut them out of the
# console log. The exit status is the test binary's.
cd /test || exit 125
./nvgrace_guest_test --order-by=file --no-colors=true --no-version=true
rc=$?
echo "NVGRACE-TEST-RC:$rc"

rng=
for w in $VFIO_DEVICES; do
	b=${w%%=*}
	[ "$(cat /sys/bus/pci/devices/$b/device)" = 0x1005 ] && rng=$b
done

probe() { # tag args...
	tag=$1; shift
	echo "NVGRACE-PROBE-BEGIN:$tag"
	./nvgrace-probe "$@" 2>&1
	echo "NVGRACE-PROBE-END:$tag:$?"
}
probe text "$VFIO_BDF"
probe json --json "$VFIO_BDF"
probe group-json --json "$VFIO_GROUP"
[ -n "$rng" ] && probe rng-json --json "$rng"
probe missing 0000:00:1f.7
probe bad-address 0000:00:1f
probe cdev /dev/vfio/devices/vfio0
exit $rc
