#!/bin/sh
# A QEMU that records its arguments (one a line) and whether fds 3 (the NIC)
# and 4 (QMP) are sockets into $VMNETBAR_FAKE_OUT, then exits 0 as a guest
# that powered off.
out=$VMNETBAR_FAKE_OUT
: >"$out"
for a in "$@"; do printf '%s\n' "$a" >>"$out"; done
for fd in 3 4; do
	if [ -S /dev/fd/$fd ]; then echo "fd$fd=socket" >>"$out"; else echo "fd$fd=missing" >>"$out"; fi
done
exit 0
