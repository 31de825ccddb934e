package vmhost

import (
	"net"
	"os"
	"time"
)

// Config describes a VM. The zero value of each optional field means a
// sensible default (documented per field). Validate reports every problem
// before anything boots; each problem is a *FieldError naming the field.
type Config struct {
	Kernel  string // path to the kernel image; required
	Initrd  string // path to the initrd; optional
	Cmdline string // kernel command line; "" = the backend default (DefaultCmdline)
	CPUs    int    // virtual CPUs; 0 = DefaultCPUs
	Memory  uint64 // bytes; 0 = 1 GiB. ParseSize reads "1GiB", "512MiB" etc.
	Disk    string // raw disk image attached as virtio-blk; optional

	// MAC is the NIC's address. It must be a unicast, 6-byte address;
	// callers generate one (RandomMAC) and persist it when the user set none.
	MAC net.HardwareAddr
	// ConsoleLog is the file the guest console is written to (appended).
	ConsoleLog string
	// MTU of the NIC; 0 = 1500.
	MTU int

	// QEMUOptions are the options only the QEMU backend (Linux) uses; the
	// macOS backend ignores them. Embedded, so c.Accel reads them too.
	QEMUOptions

	// NIC is the VM end of the netlink socketpair (SOCK_DGRAM). The VM
	// host keeps it referenced and open for the VM's whole life and closes
	// it when the VM has ended.
	NIC *os.File

	// StopTimeout bounds a graceful stop before the VM is forced off;
	// 0 = 30s. (Stop's own argument overrides it when non-zero.)
	StopTimeout time.Duration
}

// QEMUOptions are the options of the QEMU backend only.
type QEMUOptions struct {
	// Accel selects QEMU's accelerator: "auto" (or ""), "kvm" or "tcg".
	Accel string
}
