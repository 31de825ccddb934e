package vmhost

import (
	"net"
	"os"
	"time"
)

// Config describes a VM. The zero value of each optional field means a
// sensible default (documented per field). Validate reports every problem
// before anything boots; each problem is a *FieldError naming the field.
//
// A VM boots in one of two ways (Boot): a kernel with an initrd
// (BootKernel: Kernel, Initrd, Cmdline), or its own disk with UEFI firmware
// (BootEFI: Disk, EFIVars, MachineID), which is how a distro cloud image
// boots. The fields of one way must be empty for the other.
type Config struct {
	// Boot selects how the VM boots: BootKernel (the zero value) or
	// BootEFI.
	Boot Boot

	Kernel  string // BootKernel: path to the kernel image; required. BootEFI: empty
	Initrd  string // BootKernel: path to the initrd; optional. BootEFI: empty
	Cmdline string // BootKernel: kernel command line; "" = the backend default (DefaultCmdline). BootEFI: empty
	CPUs    int    // virtual CPUs; 0 = DefaultCPUs
	Memory  uint64 // bytes; 0 = 1 GiB. ParseSize reads "1GiB", "512MiB" etc.

	// Disk is the VM's own raw disk image, attached read-write as the
	// first virtio-blk disk: required for BootEFI (the disk it boots),
	// optional for BootKernel. A regular file's size must be a multiple of
	// 512 bytes (vmhost/disk makes such disks).
	Disk string
	// Seed is a raw image attached read-only as the next virtio-blk disk,
	// such as a cloud-init NoCloud ISO (volume label cidata); optional.
	// A regular file, its size a multiple of 512 bytes.
	Seed string
	// EFIVars is the path of the VM's own UEFI variable store (BootEFI:
	// required; BootKernel: empty). It is created when missing, as New
	// builds the VM, and kept from then on: on QEMU a copy of the
	// firmware's template (OVMF_VARS), on macOS an empty store the
	// Virtualization framework makes. Its directory must exist.
	EFIVars string
	// MachineID is the path of the file that keeps the VM's machine
	// identifier on macOS (VZGenericMachineIdentifier's data), so that the
	// guest sees the same machine on every boot. BootEFI: required;
	// BootKernel: optional (then every boot gets a new identifier). It is
	// created when missing, as New builds the VM on macOS; QEMU neither
	// reads nor creates it. Its directory must exist.
	MachineID string

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

// Boot is how a VM boots (Config.Boot).
type Boot string

const (
	// BootKernel boots Config.Kernel with Config.Initrd and
	// Config.Cmdline. It is the default: the zero Boot means it too.
	BootKernel Boot = "kernel"
	// BootEFI boots Config.Disk with UEFI firmware: the boot loader the
	// disk's EFI system partition holds (with an empty variable store,
	// the fallback \EFI\BOOT\BOOTX64.EFI or BOOTAA64.EFI), as a distro
	// cloud image boots. QEMU uses OVMF (AAVMF on arm64), macOS the
	// Virtualization framework's EFI boot loader (macOS 13 or later).
	BootEFI Boot = "efi"
)

// efi reports whether c boots with EFI.
func (c Config) efi() bool { return c.Boot == BootEFI }
