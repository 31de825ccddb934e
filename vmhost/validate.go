package vmhost

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/vmnetbar/vmnetbar/internal/filekind"
)

// Defaults applied to zero Config fields. The app's configuration file
// uses the same defaults (app/config takes them from here).
const (
	DefaultCPUs        = 2
	DefaultMemory      = 1 * GiB
	DefaultMTU         = 1500
	DefaultStopTimeout = 30 * time.Second
	// DefaultAccel is QEMUOptions.Accel's default: KVM when it is usable,
	// else TCG.
	DefaultAccel = "auto"
)

// FieldError is a problem with one field of Config. Check and Validate
// report each problem as one; an app maps Field to the name its user knows
// the setting by (a configuration file's key).
type FieldError struct {
	// Field is the Config field at fault, as a Go selector from Config:
	// "Kernel", "CPUs", "MTU", "QEMUOptions.Accel", "NIC".
	Field string
	// Msg says what is wrong and what to do, without the field's name.
	// It starts with "is " when it gives the value ("is 64: it must be
	// between 1 and 8 (the host's CPU count)"), else it is the problem
	// ("/k does not exist: set it to ...").
	Msg string
	// Err is the underlying error, if any.
	Err error
}

// fieldErrorf makes a *FieldError whose Msg is fmt.Errorf(format,
// args...) and whose Err is the error it wraps (%w), if any.
func fieldErrorf(field, format string, args ...any) *FieldError {
	err := fmt.Errorf(format, args...)
	return &FieldError{Field: field, Msg: err.Error(), Err: errors.Unwrap(err)}
}

// Error is the field and the message: "CPUs is 64: ...", "Kernel: ...".
func (e *FieldError) Error() string {
	if strings.HasPrefix(e.Msg, "is ") {
		return e.Field + " " + e.Msg
	}
	return e.Field + ": " + e.Msg
}

func (e *FieldError) Unwrap() error { return e.Err }

// Limits every backend enforces. A backend may narrow them (see limits).
const (
	// MinMemory is the smallest memory size accepted.
	MinMemory = 64 * MiB
	// MinMTU is the smallest MTU accepted: the IPv6 minimum. The macOS
	// backend raises it to 1500, the smallest the Virtualization framework
	// takes.
	MinMTU = 1280
	// MaxMTU is the largest MTU accepted: a frame, the MTU plus
	// frameOverhead, must fit in maxFrame bytes (virtio-net and the
	// Virtualization framework would take an MTU up to 65535, but its
	// frames could not be carried).
	MaxMTU = maxFrame - frameOverhead
	// maxFrame is the largest Ethernet frame the link carries.
	maxFrame = 65535
	// frameOverhead is what a frame adds to the MTU: the Ethernet header
	// (14 bytes) and a VLAN tag (4).
	frameOverhead = 18
)

// limits are the host's bounds for a VM's resources.
type limits struct {
	minCPUs, maxCPUs     int
	minMemory, maxMemory uint64 // maxMemory 0 = unknown
	minMTU, maxMTU       int
	mtuHint              string       // appended to MTU errors
	cpuHint, memoryHint  string       // what the bounds come from
	kvm                  func() error // why vm.accel kvm cannot work; nil = it can
	efi                  func() error // why BootEFI cannot work on this host (QEMU's firmware is missing); nil = it can
	goos, goarch         string       // the host, for the kernel's format
	macOS                string       // the running macOS version; "" = not macOS or unknown
}

// portableLimits are the bounds that hold on every host: 1 to
// runtime.NumCPU() CPUs, MinMemory to physical memory (when known), MTU
// MinMTU..MaxMTU.
func portableLimits() limits {
	return limits{
		minCPUs: 1, maxCPUs: runtime.NumCPU(),
		minMemory: MinMemory, maxMemory: physicalMemory(),
		minMTU: MinMTU, maxMTU: MaxMTU,
		cpuHint:    "the host's CPU count",
		memoryHint: "the host's physical memory",
		kvm:        kvmUsable,
		efi:        efiUsable,
		goos:       runtime.GOOS, goarch: runtime.GOARCH,
	}
}

// withDefaults returns c with every zero optional field set to its default.
func (c Config) withDefaults() Config {
	if c.CPUs == 0 {
		c.CPUs = DefaultCPUs
	}
	if c.Memory == 0 {
		c.Memory = DefaultMemory
	}
	if c.MTU == 0 {
		c.MTU = DefaultMTU
	}
	if c.Accel == "" {
		c.Accel = DefaultAccel
	}
	if c.Boot == "" {
		c.Boot = BootKernel
	}
	if c.Cmdline == "" && !c.efi() {
		c.Cmdline = DefaultCmdline
	}
	if c.StopTimeout == 0 {
		c.StopTimeout = DefaultStopTimeout
	}
	return c
}

// Validate checks the whole configuration before anything boots and
// reports every problem at once (errors.Join): everything Check checks, and
// the NIC. New calls it.
func (c Config) Validate() error {
	return c.validate(hostLimits())
}

// Check checks everything in the configuration that does not need the NIC
// (a VM's NIC is made only when it starts), so that an app can refuse a
// bad configuration at launch, before it starts anything. It reports every
// problem at once (errors.Join): each is a *FieldError naming the Config
// field it is about (Boot, Kernel, Initrd, Cmdline, Disk, Seed, EFIVars,
// MachineID, ConsoleLog, CPUs, Memory, MAC, QEMUOptions.Accel,
// StopTimeout, MTU) and saying what to do; the exceptions are a too old
// macOS and, for BootEFI, QEMU's missing UEFI firmware, which no field can
// fix. Zero optional fields stand for their defaults and are valid. The
// kernel and initrd must be readable, non-empty regular files; the disk a
// regular file or block device the user can read and write (BootEFI: a
// regular file), a file's size a multiple of 512 bytes; the seed a
// readable regular file, its size a multiple of 512 bytes; EFIVars and
// MachineID an existing regular file that can be read and written, or a
// file that can be created in an existing directory; the console log a
// file that can be appended to or created. The fields of the other way to
// boot must be empty (Kernel, Initrd, Cmdline for BootEFI; EFIVars for
// BootKernel). The bounds are the host's: 1 to
// runtime.NumCPU() CPUs, MinMemory to the physical memory (a multiple of 1
// MiB), MTU MinMTU..MaxMTU, each narrowed by the backend (the
// Virtualization framework's own limits on macOS); Accel kvm needs a
// usable /dev/kvm on Linux. On Apple silicon the kernel must be an
// uncompressed arm64 Image (checkKernelFormat), and macOS must be MinMacOS
// or later. Check never blocks on a named pipe and changes nothing on
// disk.
func (c Config) Check() error {
	return c.check(hostLimits())
}

// validate is Validate with the limits l.
func (c Config) validate(l limits) error {
	errs := c.checks(l)
	if c.NIC == nil {
		errs = append(errs, fieldErrorf("NIC", "is not set: pass the VM end of a SOCK_DGRAM socketpair (netlink.NewSocketPair)"))
	} else if err := checkDatagramSocket(c.NIC); err != nil {
		errs = append(errs, fieldErrorf("NIC", "%w", err))
	}
	return errors.Join(errs...)
}

// check is Check with the limits l.
func (c Config) check(l limits) error { return errors.Join(c.checks(l)...) }

// checks returns every problem but the NIC's.
func (c Config) checks(l limits) []error {
	var errs []error
	add := func(field, format string, a ...any) { errs = append(errs, fieldErrorf(field, format, a...)) }

	if err := checkMacOS(l.macOS); err != nil {
		errs = append(errs, err)
	} else if c.efi() {
		if err := checkMacOSEFI(l.macOS); err != nil {
			errs = append(errs, err)
		}
	}

	switch c.Boot {
	case "", BootKernel:
		errs = append(errs, c.checkKernelBoot(l)...)
	case BootEFI:
		errs = append(errs, c.checkEFIBoot(l)...)
	default:
		add("Boot", "is %q: use %q (a kernel and initrd) or %q (the disk's own boot loader)", c.Boot, BootKernel, BootEFI)
	}
	if c.Seed != "" {
		if err := checkReadable(c.Seed, "a disk image"); err != nil {
			add("Seed", "%w: set it to a readable raw image (such as a cloud-init ISO), or leave it out", err)
		} else if err := checkSectors(c.Seed); err != nil {
			add("Seed", "%w", err)
		}
	}
	if c.MachineID != "" {
		if err := checkStateFile(c.MachineID); err != nil {
			add("MachineID", "%w: choose a file in a directory you can write to", err)
		}
	}
	if c.ConsoleLog != "" {
		if err := checkLogFile(c.ConsoleLog); err != nil {
			add("ConsoleLog", "%w: choose a file in a directory you can write to", err)
		}
	}

	cpus := c.CPUs
	if cpus == 0 {
		cpus = DefaultCPUs
	}
	if cpus < l.minCPUs || cpus > l.maxCPUs {
		add("CPUs", "is %d: it must be between %d and %d (%s)", cpus, l.minCPUs, l.maxCPUs, l.cpuHint)
	}

	mem := c.Memory
	if mem == 0 {
		mem = DefaultMemory
	}
	switch {
	case mem%MiB != 0:
		add("Memory", "is %d bytes, not a whole number of MiB: use a size like %s", mem, FormatSize(suggestSize(mem, false)))
	case mem < l.minMemory:
		add("Memory", "is %s: the smallest allowed is %s: use %s or more",
			FormatSize(mem), FormatSize(l.minMemory), FormatSize(roundSize(l.minMemory, niceStep(l.minMemory), false)))
	case l.maxMemory != 0 && mem > l.maxMemory:
		add("Memory", "is %s: the largest allowed is %s (%s): use %s or less",
			FormatSize(mem), FormatSize(l.maxMemory), l.memoryHint, FormatSize(roundSize(l.maxMemory, niceStep(l.maxMemory), true)))
	}

	if c.MAC == nil {
		add("MAC", "is not set: set a unicast MAC address such as 52:54:00:12:34:56 (RandomMAC generates one)")
	} else if err := checkMAC(c.MAC); err != nil {
		add("MAC", "%w", err)
	}

	mtu := c.MTU
	if mtu == 0 {
		mtu = DefaultMTU
	}
	switch {
	case mtu > MaxMTU:
		add("MTU", "is %d: it must be between %d and %d, since a frame (the MTU plus %d bytes of Ethernet header and VLAN tag) must fit in %d bytes",
			mtu, l.minMTU, l.maxMTU, frameOverhead, maxFrame)
	case mtu < l.minMTU || mtu > l.maxMTU:
		add("MTU", "is %d: it must be between %d and %d%s", mtu, l.minMTU, l.maxMTU, l.mtuHint)
	}

	switch c.Accel {
	case "", "auto", "tcg":
	case "kvm":
		if l.kvm != nil {
			if err := l.kvm(); err != nil {
				add("QEMUOptions.Accel", "is kvm but %w: use auto or tcg", err)
			}
		}
	default:
		add("QEMUOptions.Accel", "is %q: use auto, kvm or tcg", c.Accel)
	}

	if c.StopTimeout < 0 {
		add("StopTimeout", "is %v: use a positive duration such as 30s, or leave it out", c.StopTimeout)
	}
	return errs
}

// checkKernelBoot returns the problems of a VM that boots a kernel.
func (c Config) checkKernelBoot(l limits) []error {
	var errs []error
	add := func(field, format string, a ...any) { errs = append(errs, fieldErrorf(field, format, a...)) }
	if c.Kernel == "" {
		add("Kernel", "is not set: set it to the path of the guest's Linux kernel image")
	} else if err := checkReadable(c.Kernel, "a kernel image"); err != nil {
		add("Kernel", "%w: set it to the path of a readable Linux kernel image", err)
	} else if err := checkKernelFile(c.Kernel, l.goos, l.goarch); err != nil {
		errs = append(errs, err)
	}
	if c.Initrd != "" {
		if err := checkReadable(c.Initrd, "an initrd"); err != nil {
			add("Initrd", "%w: set it to a readable initrd, or leave it out", err)
		}
	}
	if c.Disk != "" {
		if err := checkWritable(c.Disk); err != nil {
			add("Disk", "%w: set it to a raw disk image you can read and write, or leave it out", err)
		} else if err := checkSectors(c.Disk); err != nil {
			add("Disk", "%w", err)
		}
	}
	if c.EFIVars != "" {
		add("EFIVars", "is set, but the VM boots a kernel (Boot is %q): an EFI variable store is for a VM that boots its disk with EFI: leave it out, or boot with EFI", BootKernel)
	}
	return errs
}

// checkEFIBoot returns the problems of a VM that boots its disk with EFI.
func (c Config) checkEFIBoot(l limits) []error {
	var errs []error
	add := func(field, format string, a ...any) { errs = append(errs, fieldErrorf(field, format, a...)) }
	for _, f := range []struct{ field, val string }{{"Kernel", c.Kernel}, {"Initrd", c.Initrd}, {"Cmdline", c.Cmdline}} {
		if f.val != "" {
			add(f.field, "is set, but the VM boots its disk with EFI (Boot is %q), whose boot loader chooses the kernel: a VM boots either a kernel or its disk: leave it out, or boot the kernel", BootEFI)
		}
	}
	if c.Disk == "" {
		add("Disk", "is not set: a VM that boots with EFI boots its own disk: set it to a raw disk image with an EFI system partition")
	} else if err := checkDiskFile(c.Disk); err != nil {
		add("Disk", "%w: set it to a raw disk image (a regular file) you can read and write", err)
	} else if err := checkSectors(c.Disk); err != nil {
		add("Disk", "%w", err)
	}
	if c.EFIVars == "" {
		add("EFIVars", "is not set: a VM that boots with EFI needs its own EFI variable store: set it to a file in the VM's directory (it is created on the first boot)")
	} else if err := checkStateFile(c.EFIVars); err != nil {
		add("EFIVars", "%w: choose a file in a directory you can write to", err)
	}
	if c.MachineID == "" {
		add("MachineID", "is not set: a VM that boots with EFI keeps its machine identifier: set it to a file in the VM's directory (it is created on the first boot)")
	}
	if l.efi != nil {
		if err := l.efi(); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// checkDiskFile reports why path cannot be a VM's own disk: it must be a
// regular file that opens for reading and writing.
func checkDiskFile(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return pathError(path, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is %s, not a disk image (a regular file)", path, filekind.Of(fi.Mode()))
	}
	return checkOpen(path, os.O_RDWR)
}

// sectorSize is the unit of a raw disk image's size: the Virtualization
// framework takes only whole sectors.
const sectorSize = 512

// checkSectors reports why the regular file path is not a whole number
// of 512-byte sectors. Anything else (a block device) passes.
func checkSectors(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return pathError(path, err)
	}
	if n := fi.Size(); fi.Mode().IsRegular() && n%sectorSize != 0 {
		up := (n/sectorSize + 1) * sectorSize
		return fmt.Errorf("%s is %d bytes, not a whole number of 512-byte sectors, which a raw disk image must be: grow it to %d bytes (truncate -s %d %s)", path, n, up, up, path)
	}
	return nil
}

// checkStateFile reports why path cannot hold a VM's own state (its EFI
// variables, its machine identifier): an existing one must be a regular
// file that opens for reading and writing; a missing one must be
// creatable (its directory exists and is writable). It changes nothing on
// disk.
func checkStateFile(path string) error {
	fi, err := os.Stat(path)
	if err == nil {
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s is %s, not a file", path, filekind.Of(fi.Mode()))
		}
		return checkOpen(path, os.O_RDWR)
	}
	return creatable(path, err)
}

// checkReadable reports why path cannot be read as what: it must be a
// non-empty regular file (not a directory, device or pipe) that opens for
// reading.
func checkReadable(path, what string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return pathError(path, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is %s, not %s (a regular file)", path, filekind.Of(fi.Mode()), what)
	}
	if fi.Size() == 0 {
		return fmt.Errorf("%s is empty (0 bytes), not %s", path, what)
	}
	return checkOpen(path, os.O_RDONLY)
}

// checkWritable reports why path cannot be used as a disk: it must be a
// regular file or a block device that opens for reading and writing.
func checkWritable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return pathError(path, err)
	}
	if m := fi.Mode(); !m.IsRegular() && (m&os.ModeDevice == 0 || m&os.ModeCharDevice != 0) {
		return fmt.Errorf("%s is %s, not a disk image (a regular file or block device)", path, filekind.Of(m))
	}
	return checkOpen(path, os.O_RDWR)
}

// checkOpen reports why path cannot be opened with flag. It never waits
// (O_NONBLOCK: a pipe swapped in after the caller's stat does not block).
func checkOpen(path string, flag int) error {
	f, err := os.OpenFile(path, flag|syscall.O_NONBLOCK, 0)
	if err != nil {
		return pathError(path, err)
	}
	return f.Close()
}

// checkLogFile reports why path cannot be appended to (or created). It
// changes nothing on disk.
func checkLogFile(path string) error {
	fi, err := os.Stat(path)
	if err == nil {
		// A character device (/dev/null) can be written to; a pipe
		// would block the guest's console.
		if m := fi.Mode(); !m.IsRegular() && m&os.ModeCharDevice == 0 {
			return fmt.Errorf("%s is %s, not a file", path, filekind.Of(m))
		}
		return checkOpen(path, os.O_WRONLY|os.O_APPEND)
	}
	return creatable(path, err)
}

// creatable checks that path, which Stat failed on with err, can be
// created: it does not exist and its directory is a writable directory.
func creatable(path string, err error) error {
	if !errors.Is(err, os.ErrNotExist) {
		return pathError(path, err)
	}
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil {
		return pathError(dir, err)
	} else if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	return dirWritable(dir)
}

// pathError turns an os error into a short message naming the path.
func pathError(path string, err error) error {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%s does not exist", path)
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("%s is not accessible (permission denied)", path)
	}
	return err
}
