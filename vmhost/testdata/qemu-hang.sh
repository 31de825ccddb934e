#!/bin/sh
# A QEMU that never opens its QMP socket and ignores every signal but
# SIGKILL (ignored signals stay ignored across exec).
trap '' TERM INT HUP
exec sleep 3600
