//go:build !linux && !darwin

package vmhost

import (
	"fmt"
	"os"
	"runtime"

	"github.com/sirupsen/logrus"
)

// DefaultCmdline is the kernel command line used when Config.Cmdline is
// empty.
const DefaultCmdline = "console=ttyS0"

// New fails: vmnetbar runs VMs on macOS and Linux only.
func New(cfg Config, log logrus.FieldLogger) (VM, error) {
	return nil, fmt.Errorf("running a VM is not supported on %s: vmnetbar runs VMs on macOS (Virtualization framework) and Linux (QEMU)", runtime.GOOS)
}

func hostLimits() limits { return portableLimits() }

func physicalMemory() uint64 { return 0 }

func kvmUsable() error { return fmt.Errorf("KVM is Linux only") }

func efiUsable() error { return nil }

func checkDatagramSocket(f *os.File) error { return nil }

func dirWritable(dir string) error { return nil }
