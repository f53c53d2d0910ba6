#!/bin/sh
# The vfio-user examples together: start the server example, run the client example
# against it, check the client's lines, stop the server with SIGTERM (exit 0, socket gone).
set -u
server=$1 client=$2
dir=$(mktemp -d)
sock=$dir/grace.sock
trap 'kill "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
"$server" "$sock" hopper >"$dir/server.out" 2>&1 &
pid=$!
i=0
while [ ! -S "$sock" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
out=$("$client" "$sock") || { echo "client failed: $out"; exit 1; }
echo "$out"
fail=0
for line in \
  "region 2: size 0x40000000 flags 0xf mapped 1" \
  "region 4: size 0x80000000 flags 0xf mapped 1" \
  'usemem at 0x1000: "hello, Grace"' \
  "usemem at real end - 4: 8 bytes: 00 00 00 00 ff ff ff ff"; do
  printf '%s\n' "$out" | grep -qxF "$line" || { echo "missing: $line"; fail=1; }
done
kill -TERM "$pid"
wait "$pid"; rc=$?
[ $rc -eq 0 ] || { echo "server exited with $rc"; fail=1; }
[ ! -e "$sock" ] || { echo "socket left behind"; fail=1; }
exit $fail
