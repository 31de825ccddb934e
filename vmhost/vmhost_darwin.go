package vmhost

// The adapter between the macOS backend (vz.go, where its logic lives and
// is tested) and Apple's Virtualization framework: it builds the
// framework's configuration and maps *vz.VirtualMachine onto vzMachine.

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"

	vz "github.com/Code-Hex/vz/v3"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// DefaultCmdline is the kernel command line used when Config.Cmdline is
// empty: the console on the virtio console, which is written to
// Config.ConsoleLog.
const DefaultCmdline = "console=hvc0"

// New validates cfg and builds a VM on Apple's Virtualization framework:
// the Linux boot loader (BootKernel) or the EFI boot loader with the VM's
// own variable store and a generic platform with its persistent machine
// identifier (BootEFI), virtio console to Config.ConsoleLog, entropy
// device, virtio-blk disks (Config.Disk read-write, Config.Seed read-only)
// and a virtio-net NIC on Config.NIC. It needs macOS 13 or later. The
// framework validates the configuration before the VM is created.
func New(cfg Config, log logrus.FieldLogger) (VM, error) {
	return newVZ(cfg, log, vzHost{limits: hostLimits(), build: buildVZ, fw: vzFramework{}})
}

// vzFramework is the vzFirmware of the Virtualization framework.
type vzFramework struct{}

func (vzFramework) CreateVariableStore(path string) error {
	_, err := vz.NewEFIVariableStore(path, vz.WithCreatingEFIVariableStore())
	return vzErr(err)
}

func (vzFramework) NewMachineID() ([]byte, error) {
	id, err := vz.NewGenericMachineIdentifier()
	if err != nil {
		return nil, vzErr(err)
	}
	// The slice points into the identifier's NSData: copy it.
	data := bytes.Clone(id.DataRepresentation())
	runtime.KeepAlive(id)
	return data, nil
}

func (vzFramework) CheckMachineID(data []byte) error {
	_, err := machineIdentifier(data)
	return err
}

// machineIdentifier makes the identifier whose data representation is
// data (not empty: vz indexes its first byte). The framework answers data
// it does not take with no identifier, which vz returns as one with an
// empty data representation.
func machineIdentifier(data []byte) (*vz.GenericMachineIdentifier, error) {
	if len(data) == 0 {
		return nil, errors.New("no data")
	}
	id, err := vz.NewGenericMachineIdentifierWithData(data)
	if err != nil {
		return nil, vzErr(err)
	}
	if len(id.DataRepresentation()) == 0 {
		return nil, errors.New("the Virtualization framework does not take it as a machine identifier")
	}
	return id, nil
}

// hostLimits are the portable limits narrowed to the framework's, with the
// macOS version.
func hostLimits() limits {
	l := vzLimits(portableLimits(),
		int(vz.VirtualMachineConfigurationMinimumAllowedCPUCount()),
		int(vz.VirtualMachineConfigurationMaximumAllowedCPUCount()),
		vz.VirtualMachineConfigurationMinimumAllowedMemorySize(),
		vz.VirtualMachineConfigurationMaximumAllowedMemorySize())
	l.macOS = macOSVersion()
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

// kvmUsable: QEMUOptions.Accel is ignored on macOS.
func kvmUsable() error { return nil }

// efiUsable: the Virtualization framework has its own EFI firmware; the
// macOS version is checked on its own (checkMacOSEFI).
func efiUsable() error { return nil }

// macOSVersion returns the running macOS version ("13.6.1"), "" when
// unknown.
func macOSVersion() string {
	v, err := unix.Sysctl("kern.osproductversion")
	if err != nil {
		return ""
	}
	return v
}

// vzErr turns the framework's version errors into the backend's.
func vzErr(err error) error {
	switch {
	case errors.Is(err, vz.ErrUnsupportedOSVersion):
		return fmt.Errorf("%w: %w", errMacOSTooOld, err)
	case errors.Is(err, vz.ErrBuildTargetOSVersion):
		return fmt.Errorf("%w: %w", errMacOSSDK, err)
	}
	return err
}

// buildVZ is the vzFactory: it builds the framework's configuration as
// spec says and the VM.
func buildVZ(spec vzSpec) (vzMachine, error) {
	cfg := spec.Config
	version := macOSVersion()
	fail := func(err error, what string) error { return macOSError(vzErr(err), what, version) }

	var boot vz.BootLoader
	if spec.EFI {
		store, err := vz.NewEFIVariableStore(spec.EFIVars)
		if err != nil {
			return nil, fail(err, "the EFI variable store (EFIVars)")
		}
		efi, err := vz.NewEFIBootLoader(vz.WithEFIVariableStore(store))
		if err != nil {
			return nil, fail(err, "the EFI boot loader")
		}
		boot = efi
	} else {
		opts := []vz.LinuxBootLoaderOption{vz.WithCommandLine(cfg.Cmdline)}
		if cfg.Initrd != "" {
			opts = append(opts, vz.WithInitrd(cfg.Initrd))
		}
		linux, err := vz.NewLinuxBootLoader(cfg.Kernel, opts...)
		if err != nil {
			return nil, fail(err, "the Linux boot loader (Kernel, Initrd)")
		}
		boot = linux
	}
	c, err := vz.NewVirtualMachineConfiguration(boot, uint(cfg.CPUs), cfg.Memory)
	if err != nil {
		return nil, fail(err, "the VM configuration")
	}

	if spec.MachineID != nil {
		id, err := machineIdentifier(spec.MachineID)
		if err != nil {
			return nil, fail(err, "the machine identifier (MachineID)")
		}
		platform, err := vz.NewGenericPlatformConfiguration(vz.WithGenericMachineIdentifier(id))
		if err != nil {
			return nil, fail(err, "the generic platform (MachineID)")
		}
		c.SetPlatformVirtualMachineConfiguration(platform)
	}

	if cfg.ConsoleLog != "" { // newVZ has created it
		att, err := vz.NewFileSerialPortAttachment(cfg.ConsoleLog, true)
		if err != nil {
			return nil, fail(err, "the console log (ConsoleLog)")
		}
		con, err := vz.NewVirtioConsoleDeviceSerialPortConfiguration(att)
		if err != nil {
			return nil, fail(err, "the virtio console")
		}
		c.SetSerialPortsVirtualMachineConfiguration([]*vz.VirtioConsoleDeviceSerialPortConfiguration{con})
	}

	ent, err := vz.NewVirtioEntropyDeviceConfiguration()
	if err != nil {
		return nil, fail(err, "the entropy device")
	}
	c.SetEntropyDevicesVirtualMachineConfiguration([]*vz.VirtioEntropyDeviceConfiguration{ent})

	var disks []vz.StorageDeviceConfiguration
	for _, d := range spec.Disks {
		// Cached and fsync: see vzDisk.
		att, err := vz.NewDiskImageStorageDeviceAttachmentWithCacheAndSync(d.Path, d.ReadOnly,
			vz.DiskImageCachingModeCached, vz.DiskImageSynchronizationModeFsync)
		if err != nil {
			return nil, fail(err, "the disk image "+d.Path)
		}
		blk, err := vz.NewVirtioBlockDeviceConfiguration(att)
		if err != nil {
			return nil, fail(err, "the virtio-blk disk "+d.Path)
		}
		disks = append(disks, blk)
	}
	if len(disks) > 0 {
		c.SetStorageDevicesVirtualMachineConfiguration(disks)
	}

	// vz keeps the descriptor, not a duplicate: cfg.NIC stays referenced
	// by the vzVM and open until the VM has ended.
	nic, err := vz.NewFileHandleNetworkDeviceAttachment(cfg.NIC)
	if err != nil {
		return nil, fail(err, "the network attachment (NIC)")
	}
	if cfg.MTU != DefaultMTU {
		if err := nic.SetMaximumTransmissionUnit(cfg.MTU); err != nil {
			return nil, fail(err, "an MTU other than 1500 (MTU)")
		}
	}
	net, err := vz.NewVirtioNetworkDeviceConfiguration(nic)
	if err != nil {
		return nil, fail(err, "the virtio-net device")
	}
	mac, err := vz.NewMACAddress(cfg.MAC)
	if err != nil {
		return nil, fail(err, "the MAC address (MAC)")
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
		return nil, fail(err, "creating the VM")
	}
	return &vzAdapter{vm: vm, notify: vm.StateChangedNotify()}, nil
}

// vzAdapter maps *vz.VirtualMachine onto vzMachine.
type vzAdapter struct {
	vm     *vz.VirtualMachine
	notify <-chan vz.VirtualMachineState // read by NextState only
}

func (a *vzAdapter) Start() error         { return vzErr(a.vm.Start()) }
func (a *vzAdapter) CanRequestStop() bool { return a.vm.CanRequestStop() }
func (a *vzAdapter) CanStop() bool        { return a.vm.CanStop() }
func (a *vzAdapter) Stop() error          { return vzErr(a.vm.Stop()) }
func (a *vzAdapter) State() vzState       { return vzStateOf(a.vm.State()) }

func (a *vzAdapter) RequestStop() error {
	ok, err := a.vm.RequestStop()
	if err == nil && !ok {
		err = errors.New("the Virtualization framework refused the request")
	}
	return vzErr(err)
}

func (a *vzAdapter) NextState(quit <-chan struct{}) (vzState, bool) {
	select {
	case s := <-a.notify:
		return vzStateOf(s), true
	case <-quit:
		return 0, false
	}
}

// vzStateOf maps the framework's state onto vzState.
func vzStateOf(s vz.VirtualMachineState) vzState {
	switch s {
	case vz.VirtualMachineStateStopped:
		return vzStopped
	case vz.VirtualMachineStateRunning:
		return vzRunning
	case vz.VirtualMachineStatePaused:
		return vzPaused
	case vz.VirtualMachineStateError:
		return vzError
	case vz.VirtualMachineStateStarting:
		return vzStarting
	case vz.VirtualMachineStatePausing:
		return vzPausing
	case vz.VirtualMachineStateResuming:
		return vzResuming
	case vz.VirtualMachineStateStopping:
		return vzStopping
	case vz.VirtualMachineStateSaving:
		return vzSaving
	case vz.VirtualMachineStateRestoring:
		return vzRestoring
	}
	return vzState(100 + int(s)) // unknown: logged, otherwise ignored
}
