#!/bin/sh
# A QEMU that records its arguments (one a line) and whether fd 3 is a
# socket into $VMNETBAR_FAKE_OUT, then exits 0 as a guest that powered off.
out=$VMNETBAR_FAKE_OUT
: >"$out"
for a in "$@"; do printf '%s\n' "$a" >>"$out"; done
if [ -S /dev/fd/3 ]; then echo "fd3=socket" >>"$out"; else echo "fd3=missing" >>"$out"; fi
exit 0
