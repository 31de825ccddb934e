#!/bin/sh
# A QEMU that rejects its configuration: complains on stderr and exits 1.
echo "qemu-system-x86_64: -device virtio-net-pci: something is wrong" >&2
echo "qemu-system-x86_64: fake failure for the test" >&2
exit 1
