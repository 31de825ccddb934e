package vmhost

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"
)

// Defaults applied to zero Config fields.
const (
	DefaultCPUs        = 1
	DefaultMemory      = 1 * GiB
	DefaultMTU         = 1500
	DefaultStopTimeout = 30 * time.Second
)

// Limits every backend enforces. A backend may narrow them (see limits).
const (
	// MinMemory is the smallest memory size accepted.
	MinMemory = 64 * MiB
	// MinMTU is the smallest MTU accepted: the IPv6 minimum. The macOS
	// backend raises it to 1500, the smallest the Virtualization framework
	// takes.
	MinMTU = 1280
	// MaxMTU is the largest MTU accepted (the largest virtio-net and the
	// Virtualization framework take).
	MaxMTU = 65535
)

// limits are the host's bounds for a VM's resources.
type limits struct {
	minCPUs, maxCPUs     int
	minMemory, maxMemory uint64 // maxMemory 0 = unknown
	minMTU, maxMTU       int
	mtuHint              string // appended to MTU errors
	cpuHint, memoryHint  string // what the bounds come from
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
		c.Accel = "auto"
	}
	if c.Cmdline == "" {
		c.Cmdline = DefaultCmdline
	}
	if c.StopTimeout == 0 {
		c.StopTimeout = DefaultStopTimeout
	}
	return c
}

// Validate checks the whole configuration before anything boots and
// reports every problem at once (errors.Join). Each message starts with the
// configuration key it is about (vm.kernel, vm.initrd, vm.disk,
// vm.console_log, vm.cpus, vm.memory, vm.mac, vm.accel, vm.stop_timeout,
// network.mtu; nic for the socket) and says what to do. Zero optional
// fields stand for their defaults and are valid. The bounds are the
// host's: 1 to runtime.NumCPU() CPUs, MinMemory to the physical memory (a
// multiple of 1 MiB), MTU MinMTU..MaxMTU, each narrowed by the backend
// (the Virtualization framework's own limits on macOS, /dev/kvm for
// vm.accel kvm on Linux).
func (c Config) Validate() error {
	return c.validate(hostLimits())
}

func (c Config) validate(l limits) error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	if c.Kernel == "" {
		add("vm.kernel is not set: set it to the path of the guest's Linux kernel image")
	} else if err := checkReadable(c.Kernel); err != nil {
		add("vm.kernel: %w: set it to the path of a readable Linux kernel image", err)
	}
	if c.Initrd != "" {
		if err := checkReadable(c.Initrd); err != nil {
			add("vm.initrd: %w: set it to a readable initrd, or leave it out", err)
		}
	}
	if c.Disk != "" {
		if err := checkWritable(c.Disk); err != nil {
			add("vm.disk: %w: set it to a raw disk image you can read and write, or leave it out", err)
		}
	}
	if c.ConsoleLog != "" {
		if err := checkLogFile(c.ConsoleLog); err != nil {
			add("vm.console_log: %w: choose a file in a directory you can write to", err)
		}
	}

	cpus := c.CPUs
	if cpus == 0 {
		cpus = DefaultCPUs
	}
	if cpus < l.minCPUs || cpus > l.maxCPUs {
		add("vm.cpus is %d: it must be between %d and %d (%s)", c.CPUs, l.minCPUs, l.maxCPUs, l.cpuHint)
	}

	mem := c.Memory
	if mem == 0 {
		mem = DefaultMemory
	}
	switch {
	case mem%MiB != 0:
		add("vm.memory is %d bytes, not a whole number of MiB: use a size like %s", mem, FormatSize((mem/MiB+1)*MiB))
	case mem < l.minMemory:
		add("vm.memory is %s: the smallest allowed is %s", FormatSize(mem), FormatSize(l.minMemory))
	case l.maxMemory != 0 && mem > l.maxMemory:
		add("vm.memory is %s: the largest allowed is %s (%s)", FormatSize(mem), FormatSize(l.maxMemory), l.memoryHint)
	}

	if c.MAC == nil {
		add("vm.mac is not set: set a unicast MAC address such as 52:54:00:12:34:56 (RandomMAC generates one)")
	} else if err := checkMAC(c.MAC); err != nil {
		add("vm.mac: %w", err)
	}

	mtu := c.MTU
	if mtu == 0 {
		mtu = DefaultMTU
	}
	if mtu < l.minMTU || mtu > l.maxMTU {
		add("network.mtu is %d: it must be between %d and %d%s", c.MTU, l.minMTU, l.maxMTU, l.mtuHint)
	}

	switch c.Accel {
	case "", "auto", "tcg":
	case "kvm":
		if err := kvmUsable(); err != nil {
			add("vm.accel is kvm but %v: use auto or tcg", err)
		}
	default:
		add("vm.accel is %q: use auto, kvm or tcg", c.Accel)
	}

	if c.StopTimeout < 0 {
		add("vm.stop_timeout is %v: use a positive duration such as 30s, or leave it out", c.StopTimeout)
	}

	if c.NIC == nil {
		add("nic is not set: pass the VM end of a SOCK_DGRAM socketpair (netlink.NewSocketPair)")
	} else if err := checkDatagramSocket(c.NIC); err != nil {
		add("nic: %w", err)
	}
	return errors.Join(errs...)
}

// checkReadable reports why path cannot be read as a regular file.
func checkReadable(path string) error {
	return checkOpen(path, os.O_RDONLY, "a file")
}

// checkWritable reports why path cannot be opened for reading and writing.
func checkWritable(path string) error {
	return checkOpen(path, os.O_RDWR, "a disk image")
}

// checkOpen reports why path cannot be opened with flag as what (a regular
// file, not a directory).
func checkOpen(path string, flag int, what string) error {
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return pathError(path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return pathError(path, err)
	}
	if fi.IsDir() {
		return fmt.Errorf("%s is a directory, not %s", path, what)
	}
	return nil
}

// checkLogFile reports why path cannot be appended to (or created). It
// changes nothing on disk.
func checkLogFile(path string) error {
	fi, err := os.Stat(path)
	if err == nil {
		if fi.IsDir() {
			return fmt.Errorf("%s is a directory, not a file", path)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return pathError(path, err)
		}
		return f.Close()
	}
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
