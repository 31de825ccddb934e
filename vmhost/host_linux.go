package vmhost

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// hostLimits are the portable limits: QEMU adds none of its own.
func hostLimits() limits { return portableLimits() }

// physicalMemory returns the host's RAM in bytes, 0 when unknown.
func physicalMemory() uint64 {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return 0
	}
	return uint64(si.Totalram) * uint64(si.Unit)
}

// kvmUsable reports why QEMU cannot use KVM, nil when /dev/kvm can be
// opened for reading and writing.
func kvmUsable() error {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("/dev/kvm is not usable (%v)", err)
	}
	return f.Close()
}
