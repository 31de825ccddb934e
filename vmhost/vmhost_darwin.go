package vmhost

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	vz "github.com/Code-Hex/vz/v3"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// DefaultCmdline is the kernel command line used when Config.Cmdline is
// empty: the console on the virtio console, which is written to
// Config.ConsoleLog.
const DefaultCmdline = "console=hvc0"

// hostLimits narrows the portable limits to the Virtualization
// framework's: its CPU and memory bounds, and an MTU of at least 1500.
func hostLimits() limits {
	l := portableLimits()
	if n := int(vz.VirtualMachineConfigurationMinimumAllowedCPUCount()); n > l.minCPUs {
		l.minCPUs = n
	}
	if n := int(vz.VirtualMachineConfigurationMaximumAllowedCPUCount()); n < l.maxCPUs {
		l.maxCPUs = n
	}
	if n := vz.VirtualMachineConfigurationMinimumAllowedMemorySize(); n > l.minMemory {
		l.minMemory = n
	}
	if n := vz.VirtualMachineConfigurationMaximumAllowedMemorySize(); l.maxMemory == 0 || n < l.maxMemory {
		l.maxMemory = n
	}
	l.minMTU = 1500
	l.mtuHint = " (the Virtualization framework's range)"
	l.cpuHint = "the host's CPU count and the Virtualization framework's limits"
	l.memoryHint = "the host's memory and the Virtualization framework's limits"
	return l
}

// physicalMemory returns the host's RAM in bytes, 0 when unknown.
func physicalMemory() uint64 {
	n, err := unix.SysctlUint64("hw.memsize")
	if err != nil {
		return 0
	}
	return n
}

// kvmUsable: vm.accel is ignored on macOS.
func kvmUsable() error { return nil }

// macOSError puts vz.ErrUnsupportedOSVersion in plain words.
func macOSError(err error, version, what string) error {
	if errors.Is(err, vz.ErrUnsupportedOSVersion) {
		return fmt.Errorf("%s needs macOS %s or newer", what, version)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// New validates cfg and builds a VM on Apple's Virtualization framework:
// Linux boot loader, virtio console to Config.ConsoleLog, entropy device,
// optional virtio-blk raw disk and a virtio-net NIC on Config.NIC. The
// configuration is validated by the framework before the VM is created.
func New(cfg Config, log logrus.FieldLogger) (VM, error) {
	if log == nil {
		return nil, errors.New("vmhost.New: a logger is required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid VM configuration:\n%w", err)
	}
	cfg = cfg.withDefaults()
	vm, err := buildVZ(cfg)
	if err != nil {
		return nil, err
	}
	log = log.WithField("vm", "vz")
	return &vzVM{cfg: cfg, vm: vm, log: log, m: newMachine(log, nil),
		nicClosed: make(chan struct{}), startDone: make(chan struct{})}, nil
}

func buildVZ(cfg Config) (*vz.VirtualMachine, error) {
	opts := []vz.LinuxBootLoaderOption{vz.WithCommandLine(cfg.Cmdline)}
	if cfg.Initrd != "" {
		opts = append(opts, vz.WithInitrd(cfg.Initrd))
	}
	boot, err := vz.NewLinuxBootLoader(cfg.Kernel, opts...)
	if err != nil {
		return nil, macOSError(err, "11", "the Linux boot loader (vm.kernel, vm.initrd)")
	}
	c, err := vz.NewVirtualMachineConfiguration(boot, uint(cfg.CPUs), cfg.Memory)
	if err != nil {
		return nil, macOSError(err, "11", "the VM configuration")
	}

	if cfg.ConsoleLog != "" {
		// Create the log first: the attachment appends to an existing file.
		f, err := os.OpenFile(cfg.ConsoleLog, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("the console log (vm.console_log): %w", err)
		}
		f.Close()
		att, err := vz.NewFileSerialPortAttachment(cfg.ConsoleLog, true)
		if err != nil {
			return nil, macOSError(err, "11", "the console log (vm.console_log)")
		}
		con, err := vz.NewVirtioConsoleDeviceSerialPortConfiguration(att)
		if err != nil {
			return nil, macOSError(err, "11", "the virtio console")
		}
		c.SetSerialPortsVirtualMachineConfiguration([]*vz.VirtioConsoleDeviceSerialPortConfiguration{con})
	}

	ent, err := vz.NewVirtioEntropyDeviceConfiguration()
	if err != nil {
		return nil, macOSError(err, "11", "the entropy device")
	}
	c.SetEntropyDevicesVirtualMachineConfiguration([]*vz.VirtioEntropyDeviceConfiguration{ent})

	if cfg.Disk != "" {
		att, err := vz.NewDiskImageStorageDeviceAttachment(cfg.Disk, false)
		if err != nil {
			return nil, macOSError(err, "11", "the disk (vm.disk)")
		}
		blk, err := vz.NewVirtioBlockDeviceConfiguration(att)
		if err != nil {
			return nil, macOSError(err, "11", "the virtio-blk disk")
		}
		c.SetStorageDevicesVirtualMachineConfiguration([]vz.StorageDeviceConfiguration{blk})
	}

	// vz keeps the descriptor, not a duplicate: cfg.NIC stays referenced
	// by the vzVM and open until the VM has ended.
	nic, err := vz.NewFileHandleNetworkDeviceAttachment(cfg.NIC)
	if err != nil {
		return nil, macOSError(err, "11", "the network attachment (nic)")
	}
	if cfg.MTU != DefaultMTU {
		if err := nic.SetMaximumTransmissionUnit(cfg.MTU); err != nil {
			return nil, macOSError(err, "13", "an MTU other than 1500 (network.mtu)")
		}
	}
	net, err := vz.NewVirtioNetworkDeviceConfiguration(nic)
	if err != nil {
		return nil, macOSError(err, "11", "the virtio-net device")
	}
	mac, err := vz.NewMACAddress(cfg.MAC)
	if err != nil {
		return nil, macOSError(err, "11", "the MAC address (vm.mac)")
	}
	net.SetMACAddress(mac)
	c.SetNetworkDevicesVirtualMachineConfiguration([]*vz.VirtioNetworkDeviceConfiguration{net})

	// An invalid configuration raises an Objective-C exception in
	// NewVirtualMachine, which aborts the process: validate first.
	if ok, err := c.Validate(); err != nil || !ok {
		if err == nil {
			err = errors.New("rejected without a reason")
		}
		return nil, fmt.Errorf("the Virtualization framework rejected the VM configuration (is the app signed with the com.apple.security.virtualization entitlement?): %w", err)
	}
	vm, err := vz.NewVirtualMachine(c)
	if err != nil {
		return nil, macOSError(err, "11", "creating the VM")
	}
	return vm, nil
}

// requestStopPoll is how often a stop asks again whether the guest can be
// asked to power off (it cannot while it boots).
const requestStopPoll = 100 * time.Millisecond

// vzVM is a VM on the Virtualization framework.
//
// Goroutines: Start launches watch, the only reader of the VM's
// StateChangedNotify channel; it returns when the NIC is closed, that is
// when Start failed or the framework reported the VM stopped or failed.
// The first Stop launches stopper, which returns when the VM has ended or
// after it tried to force the VM off.
//
// The NIC is closed only when the framework is done with it: after Start
// failed, or when the framework reports stopped or error. A forced stop that
// fails makes the state error but leaves the NIC to watch.
type vzVM struct {
	cfg Config // defaults applied; keeps cfg.NIC referenced
	vm  *vz.VirtualMachine
	log logrus.FieldLogger
	m   *machine

	mu        sync.Mutex
	started   bool
	stopOnce  sync.Once
	nicOnce   sync.Once
	nicClosed chan struct{} // closed with the NIC: watch returns
	startDone chan struct{} // closed when the framework's Start has returned
}

var _ VM = (*vzVM)(nil)

// Start boots the VM and returns when the framework has started it (or
// failed to).
func (v *vzVM) Start(ctx context.Context) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.started {
		return errors.New("the VM was already started or stopped: make a new one with New")
	}
	v.started = true
	if err := ctx.Err(); err != nil {
		v.m.end()
		v.closeNIC()
		return err
	}
	if err := v.m.set(StateStarting, nil); err != nil {
		return err
	}
	go v.watch()
	err := v.vm.Start()
	if err != nil {
		// Before startDone: this error, the framework's reason, wins
		// over the stopped or error state watch may have seen.
		err = fmt.Errorf("starting the VM: %w", err)
		v.end(StateError, err)
	}
	close(v.startDone)
	return err
}

// watch maps the framework's state changes onto the machine.
func (v *vzVM) watch() {
	notify := v.vm.StateChangedNotify()
	for {
		select {
		case <-v.nicClosed:
			return
		case s := <-notify:
			v.log.WithField("vz_state", s.String()).Debug("framework state")
			switch s {
			case vz.VirtualMachineStateRunning:
				v.m.setIf(StateStarting, StateRunning, nil)
			case vz.VirtualMachineStateStopping:
				v.m.setIf(StateRunning, StateStopping, nil)
			case vz.VirtualMachineStateStopped:
				<-v.startDone // a failed Start reports its own error
				v.end(StateStopped, nil)
				return
			case vz.VirtualMachineStateError:
				<-v.startDone
				v.end(StateError, errors.New("the Virtualization framework stopped the VM with an internal error"))
				return
			}
		}
	}
}

// end makes the state final (the first caller wins), then closes the NIC:
// a link that sees the NIC close finds the VM already ended.
func (v *vzVM) end(s State, err error) {
	if e := v.m.set(s, err); e != nil {
		v.log.WithError(e).Debug("final state already set")
	}
	v.closeNIC()
}

func (v *vzVM) closeNIC() {
	v.nicOnce.Do(func() {
		if err := v.cfg.NIC.Close(); err != nil {
			v.log.WithError(err).Debug("closing the NIC")
		}
		close(v.nicClosed)
	})
}

// Stop asks the guest to power off (RequestStop), waits up to timeout (0 =
// Config.StopTimeout) and then forces the VM off (Stop). The force
// happens at the deadline even when ctx ends first. Stopping a VM that was
// never started ends it (and closes the NIC).
func (v *vzVM) Stop(ctx context.Context, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = v.cfg.StopTimeout
	}
	v.mu.Lock()
	if !v.started {
		v.started = true
		v.m.end()
		v.mu.Unlock()
		v.closeNIC()
		return nil
	}
	v.mu.Unlock()
	v.stopOnce.Do(func() {
		v.m.setIf(StateStarting, StateStopping, nil)
		v.m.setIf(StateRunning, StateStopping, nil)
		// Also when the guest was already stopping by itself: it is
		// forced off should it not finish in time.
		if !v.m.isEnded() {
			go v.stopper(timeout)
		}
	})
	select {
	case <-v.m.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stopper asks the guest to power off as soon as the framework allows it
// (not while the guest boots), then forces the VM off after timeout.
func (v *vzVM) stopper(timeout time.Duration) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	poll := time.NewTicker(requestStopPoll)
	defer poll.Stop()
	tick := poll.C
	for {
		if tick != nil && v.vm.CanRequestStop() {
			tick = nil // ask once
			if _, err := v.vm.RequestStop(); err != nil {
				v.log.WithError(err).Warn("asking the guest to power off failed: it is forced off after the stop timeout")
			} else {
				v.log.Info("asked the guest to power off")
			}
		}
		select {
		case <-v.m.done:
			return
		case <-deadline.C:
			v.forceStop()
			return
		case <-tick:
		}
	}
}

// forceStop stops the VM without asking the guest.
func (v *vzVM) forceStop() {
	v.log.Warn("the guest did not power off in time: forcing the VM off")
	err := v.vm.Stop()
	if err == nil {
		return // watch sees the framework report stopped
	}
	if s := v.vm.State(); s == vz.VirtualMachineStateStopped || s == vz.VirtualMachineStateError {
		v.log.WithError(err).Debug("forcing the VM off failed, but it has ended")
		return // watch records it
	}
	// The framework may still use the NIC: it stays open until watch
	// sees the VM stopped or failed.
	if e := v.m.set(StateError, macOSError(err, "12", "forcing the VM off")); e != nil {
		v.log.WithError(e).Debug("final state already set")
	}
}

// State returns the current state and, for StateError, its cause.
func (v *vzVM) State() (State, error) { return v.m.get() }

// Events delivers every state change; see VM.
func (v *vzVM) Events() <-chan Event { return v.m.events }

// Done is closed when the VM has ended.
func (v *vzVM) Done() <-chan struct{} { return v.m.done }
