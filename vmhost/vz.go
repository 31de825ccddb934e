package vmhost

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// The macOS backend. Its logic lives here, compiled and tested on every OS
// against vzMachine; vmhost_darwin.go only adapts *vz.VirtualMachine to
// vzMachine and builds the framework's configuration (the vzFactory).

// vzState is the Virtualization framework's VM state
// (vz.VirtualMachineState), as the adapter reports it.
type vzState int

const (
	vzStopped vzState = iota
	vzRunning
	vzPaused
	vzError
	vzStarting
	vzPausing
	vzResuming
	vzStopping
	vzSaving
	vzRestoring
)

var vzStateNames = [...]string{"stopped", "running", "paused", "error", "starting", "pausing", "resuming", "stopping", "saving", "restoring"}

func (s vzState) String() string {
	if s >= 0 && int(s) < len(vzStateNames) {
		return vzStateNames[s]
	}
	return fmt.Sprintf("vzState(%d)", int(s))
}

// vzMachine is the part of a framework VM the backend uses. Every method
// may be called from any goroutine, but NextState from one only.
type vzMachine interface {
	// Start boots the VM; it returns when the framework has started it
	// or failed to.
	Start() error
	// CanRequestStop reports whether the guest can be asked to power
	// off now (not while the VM starts).
	CanRequestStop() bool
	// RequestStop asks the guest to power off (a power button press);
	// an error when the framework refused.
	RequestStop() error
	// CanStop reports whether Stop can work now.
	CanStop() bool
	// Stop forces the VM off; it returns when the framework has done so
	// or failed to.
	Stop() error
	// State returns the framework's current state.
	State() vzState
	// NextState returns the next state change the framework reports, in
	// order and none lost, or ok false once quit is closed.
	NextState(quit <-chan struct{}) (s vzState, ok bool)
}

// vzFactory builds the framework VM as spec describes it; errors are in
// the user's words. It is the darwin adapter (buildVZ).
type vzFactory func(spec vzSpec) (vzMachine, error)

// vzHost is what the macOS backend needs from the host.
type vzHost struct {
	limits limits     // the framework's and the host's bounds, the macOS version
	build  vzFactory  // makes the framework VM
	fw     vzFirmware // makes a VM's EFI variable store and machine identifier
	clock  Clock      // the stop's waits and the state times; nil: the system clock
}

// vzSpec is the framework configuration of a VM, decided here and built by
// the adapter (buildVZ) call for call:
//
//   - the boot loader: EFI (VZEFIBootLoader with the variable store at
//     EFIVars) when EFI, else Linux (VZLinuxBootLoader with Config's
//     Kernel, Initrd and Cmdline);
//   - the platform: VZGenericPlatformConfiguration with the machine
//     identifier MachineID (its data representation) when set, else the
//     framework's default (a new identifier);
//   - CPUs and memory, the virtio console writing to ConsoleLog, an entropy
//     device, and the virtio-net NIC on the file handle Config.NIC with
//     Config's MAC and MTU;
//   - Disks, in order, each a virtio-blk device on a disk image.
type vzSpec struct {
	Config    Config // defaults applied
	EFI       bool
	EFIVars   string // the variable store, which exists
	MachineID []byte
	Disks     []vzDisk
}

// vzDisk is a virtio-blk disk on a raw disk image.
//
// Every disk is attached with the framework's host caching on
// (VZDiskImageCachingModeCached) and the guest's flushes passed on with
// fsync (VZDiskImageSynchronizationModeFsync), as Lima does for its VM
// disks (pkg/driver/vz/vm_darwin.go, attachDisks: "diskImageCachingMode is
// set to DiskImageCachingModeCached so as to avoid disk corruption on
// ARM", citing utmapp/UTM#4840; DiskImageSynchronizationModeFsync). Full
// synchronization (F_FULLFSYNC on every flush) would be slower still;
// fsync keeps what the guest flushed across a crash of the VM or of
// vmnetbar.
type vzDisk struct {
	Path     string
	ReadOnly bool
}

// vzFirmware is the part of the framework that makes a VM's persistent
// EFI state. The darwin adapter implements it with vz; tests with a fake.
type vzFirmware interface {
	// CreateVariableStore creates a new, empty EFI variable store at
	// path, overwriting what is there (VZEFIVariableStore
	// initCreatingVariableStoreAtURL).
	CreateVariableStore(path string) error
	// NewMachineID returns the data representation of a new, unique
	// machine identifier (VZGenericMachineIdentifier).
	NewMachineID() ([]byte, error)
	// CheckMachineID reports why data is not the data representation of
	// a machine identifier. data is never empty.
	CheckMachineID(data []byte) error
}

// vzSpecFor decides the framework configuration for cfg (defaults
// applied) and makes the VM's persistent EFI state when it is missing:
// the variable store at EFIVars (made by the framework under a temporary
// name and renamed into place, so that it is never half-made) and the
// machine identifier, whose data is saved to MachineID the same way and
// read back on every later boot. An empty MachineID file (a copied VM, a
// crash before the first save in an older version) is replaced by a new
// identifier; a file the framework does not take is an error saying to
// delete it.
func vzSpecFor(cfg Config, fw vzFirmware, macOS string, log logrus.FieldLogger) (vzSpec, error) {
	spec := vzSpec{Config: cfg, EFI: cfg.efi(), EFIVars: cfg.EFIVars}
	if cfg.efi() {
		created, err := createOnce(cfg.EFIVars, func(tmp string) error {
			if err := fw.CreateVariableStore(tmp); err != nil {
				return macOSError(err, "creating the EFI variable store "+cfg.EFIVars, macOS)
			}
			return nil
		})
		if err != nil {
			return vzSpec{}, fieldErrorf("EFIVars", "%w", err)
		}
		if created {
			log.WithField("path", cfg.EFIVars).Info("created the VM's EFI variable store")
		}
	}
	if cfg.MachineID != "" {
		id, err := machineID(cfg.MachineID, fw, macOS, log)
		if err != nil {
			return vzSpec{}, err
		}
		spec.MachineID = id
	}
	if cfg.Disk != "" {
		spec.Disks = append(spec.Disks, vzDisk{Path: cfg.Disk})
	}
	if cfg.Seed != "" {
		spec.Disks = append(spec.Disks, vzDisk{Path: cfg.Seed, ReadOnly: true})
	}
	return spec, nil
}

// machineID returns the machine identifier kept in path, after making and
// saving a new one when path is missing or empty.
func machineID(path string, fw vzFirmware, macOS string, log logrus.FieldLogger) ([]byte, error) {
	data, err := os.ReadFile(path)
	switch {
	case err == nil && len(data) > 0:
		if err := fw.CheckMachineID(data); err != nil {
			return nil, fieldErrorf("MachineID", "%s does not hold a machine identifier the Virtualization framework takes (%v): delete it, and a new one is made at the next start (the guest then sees a new machine)", path, macOSError(err, "reading it", macOS))
		}
		return data, nil
	case err == nil:
		log.WithField("path", path).Warn("the machine identifier file is empty: making a new one")
		if err := os.Remove(path); err != nil {
			return nil, fieldErrorf("MachineID", "%w", pathError(path, err))
		}
	case !errors.Is(err, os.ErrNotExist):
		return nil, fieldErrorf("MachineID", "%w: choose a file in a directory you can write to", pathError(path, err))
	}
	data, err = fw.NewMachineID()
	if err != nil {
		return nil, fieldErrorf("MachineID", "%w", macOSError(err, "making a machine identifier", macOS))
	}
	if len(data) == 0 {
		return nil, fieldErrorf("MachineID", "the Virtualization framework made an empty machine identifier")
	}
	if _, err := createOnce(path, func(tmp string) error { return os.WriteFile(tmp, data, 0o600) }); err != nil {
		return nil, fieldErrorf("MachineID", "%w", err)
	}
	log.WithField("path", path).Info("saved the VM's new machine identifier")
	return data, nil
}

// vzLimits narrows the portable limits l to the framework's CPU and memory
// bounds, and an MTU of at least 1500 (the smallest it takes).
func vzLimits(l limits, minCPUs, maxCPUs int, minMemory, maxMemory uint64) limits {
	l.minCPUs = max(l.minCPUs, minCPUs)
	l.maxCPUs = min(l.maxCPUs, maxCPUs)
	l.minMemory = max(l.minMemory, minMemory)
	if l.maxMemory == 0 || maxMemory < l.maxMemory {
		l.maxMemory = maxMemory
	}
	l.minMTU = max(l.minMTU, 1500)
	l.mtuHint = " (1500 is the smallest the Virtualization framework takes)"
	l.cpuHint = "the host's CPU count and the Virtualization framework's limits"
	l.memoryHint = "the host's memory and the Virtualization framework's limits"
	return l
}

// Timing of a stop on the framework.
const (
	// vzAskPoll is how often a stop checks whether the guest can be asked
	// to power off yet (it cannot while the VM starts).
	vzAskPoll = 100 * time.Millisecond
	// vzAskRepeat is how often a stop asks the guest again: a guest that
	// is still booting misses the request (no ACPI button driver yet).
	vzAskRepeat = time.Second
	// vzForcePoll is how often a forced stop that failed (the framework
	// cannot stop a VM that is starting) checks whether it can try again.
	// A state change makes it try at once.
	vzForcePoll = 100 * time.Millisecond
)

// Notes (Event.Note) while a stop waits, in addition to noteWaitButton.
const (
	noteWaitVZStart = "waiting for the VM to finish starting before asking the guest to power off"
	noteForceRetry  = "forcing the VM off failed: trying again as soon as the Virtualization framework allows"
)

// newVZ validates cfg and builds a VM on the framework with h.build. The
// order: the logger, the macOS version, the whole configuration (every
// problem at once), then the console log is created (the framework appends
// only to an existing file), the VM's EFI state is made where missing
// (vzSpecFor) and h.build runs the framework's own validation.
func newVZ(cfg Config, log logrus.FieldLogger, h vzHost) (*vzVM, error) {
	if log == nil {
		return nil, errors.New("vmhost.New: a logger is required")
	}
	if err := checkMacOS(h.limits.macOS); err != nil {
		return nil, err
	}
	if err := cfg.validate(h.limits); err != nil {
		return nil, fmt.Errorf("invalid VM configuration:\n%w", err)
	}
	cfg = cfg.withDefaults()
	if cfg.ConsoleLog != "" {
		// The framework's attachment appends to an existing file only.
		f, err := os.OpenFile(cfg.ConsoleLog, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fieldErrorf("ConsoleLog", "%w: choose a file in a directory you can write to", pathError(cfg.ConsoleLog, err))
		}
		f.Close()
	}
	log = log.WithField("vm", "vz")
	spec, err := vzSpecFor(cfg, h.fw, h.limits.macOS, log)
	if err != nil {
		return nil, err
	}
	vm, err := h.build(spec)
	if err != nil {
		return nil, err
	}
	clock := h.clock
	if clock == nil {
		clock = realClock{}
	}
	return &vzVM{
		cfg:        cfg,
		vm:         vm,
		macOS:      h.limits.macOS,
		log:        log,
		clock:      clock,
		m:          newMachine(log, clock.Now),
		nicClosed:  make(chan struct{}),
		startDone:  make(chan struct{}),
		stateKicks: make(chan struct{}, 1),
	}, nil
}

// vzVM is a VM on the Virtualization framework.
//
// Goroutines (both in running): Start launches watch, the only reader of
// the framework's state changes; it returns when the NIC is closed, that is
// when Start failed or the framework reported the VM stopped or failed. The
// first Stop of a started VM launches stopper, which returns when the VM has
// ended (or a forced stop failed for good: see forceStop). Both return
// promptly once the VM has ended and the framework has reported it stopped
// or failed.
//
// The NIC is closed only when the framework is done with it: after its
// Start failed, or when it reports the VM stopped or failed (or when a VM
// that never started is stopped). A forced stop that fails leaves it open.
type vzVM struct {
	cfg   Config // defaults applied; keeps cfg.NIC referenced
	vm    vzMachine
	macOS string
	log   logrus.FieldLogger
	clock Clock // every wait of a stop, and the machine's times
	m     *machine

	running sync.WaitGroup // watch and stopper

	mu     sync.Mutex
	forced bool // a forced stop was tried (under mu)

	nicOnce    sync.Once
	nicClosed  chan struct{} // closed with the NIC: watch returns
	startDone  chan struct{} // closed when the framework's Start has returned
	stateKicks chan struct{} // watch -> stopper: the framework's state changed
}

var _ VM = (*vzVM)(nil)

// Start boots the VM and returns when the framework has started it (or
// failed to). A Stop meanwhile does not wait for it.
func (v *vzVM) Start(ctx context.Context) error {
	v.mu.Lock()
	if !v.m.claimStart() {
		v.mu.Unlock()
		return errAlreadyUsed
	}
	if err := ctx.Err(); err != nil {
		v.mu.Unlock()
		v.m.end()
		v.closeNIC()
		return err
	}
	err := v.m.set(StateStarting, nil)
	v.mu.Unlock()
	if err != nil {
		return err
	}
	v.running.Go(v.watch)
	err = v.vm.Start()
	if err != nil {
		if st, _ := v.m.get(); st == StateStopping && v.vm.State() == vzStopped {
			// A stop forced the VM off before it had started.
			v.log.WithError(err).Info("the VM was stopped while it started")
			v.end(StateStopped, nil)
			err = nil
		} else {
			// Before startDone: this error, the framework's reason,
			// wins over the stopped or error state watch may have
			// seen.
			err = fmt.Errorf("starting the VM: %w", err)
			v.end(StateError, err)
		}
	}
	close(v.startDone)
	return err
}

// watch maps the framework's state changes onto the machine and tells the
// stopper about each.
func (v *vzVM) watch() {
	for {
		s, ok := v.vm.NextState(v.nicClosed)
		if !ok {
			return
		}
		v.log.WithField("vz_state", s.String()).Debug("framework state")
		select {
		case v.stateKicks <- struct{}{}:
		default: // the stopper has one pending already
		}
		switch s {
		case vzRunning:
			v.m.setIf(StateStarting, StateRunning, nil)
		case vzStopping:
			v.m.setIf(StateRunning, StateStopping, nil)
		case vzStopped:
			<-v.startDone // a failed Start reports its own error
			if v.wasForced() {
				v.log.Info("the VM was forced off")
			}
			v.end(StateStopped, nil)
			return
		case vzError:
			<-v.startDone
			v.end(StateError, errors.New("the Virtualization framework stopped the VM with an internal error"))
			return
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

func (v *vzVM) wasForced() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.forced
}

// Stop asks the guest to power off (RequestStop) as soon as the framework
// allows it, and again every second while it waits, since a guest that is
// still booting misses the request; it notes that on the stopping state
// (Event.Note). After timeout (0 = Config.StopTimeout) it forces the VM off
// (Stop), and when that fails (the framework cannot stop a VM that is still
// starting) it tries again as soon as the framework allows, until the VM
// has stopped: it never leaves a guest running. The force happens at the
// deadline even when ctx ends first. A Stop while a stop is under way forces
// the VM off at its own deadline when that is earlier (the earliest
// deadline wins). Stopping a VM that was never started ends it (and closes
// the NIC).
func (v *vzVM) Stop(ctx context.Context, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = v.cfg.StopTimeout
	}
	v.mu.Lock() // a Start under way reaches the framework first
	unstarted := v.m.endUnstarted()
	v.mu.Unlock()
	if unstarted {
		v.closeNIC()
		return nil
	}
	if v.m.beginStop(timeout) {
		// Also when the guest was already stopping by itself: it is
		// forced off should it not finish in time.
		if !v.m.isEnded() {
			v.running.Go(v.stopper)
		}
	}
	return v.m.wait(ctx)
}

// stopper asks the guest to power off as soon as the framework allows it,
// and again every vzAskRepeat, then forces the VM off at the stop's deadline,
// which a later Stop may bring forward.
func (v *vzVM) stopper() {
	if v.askUntilDeadline() {
		v.forceStop()
	}
}

// askUntilDeadline is the stopper's wait: it asks the guest to power off
// as soon as the framework allows it (checking every vzAskPoll until then),
// and again vzAskRepeat after each request, until the VM has ended (false)
// or the stop's deadline, which a later Stop may bring forward, has come
// (true). Every wait is on the clock; its timers are released on return.
func (v *vzVM) askUntilDeadline() (force bool) {
	remaining, _ := v.m.stopDeadline()
	deadline, stopDeadline := v.clock.NewTimer(remaining)
	var (
		asked     bool             // the guest was asked once: then again, not poll
		poll      <-chan time.Time // armed while the guest cannot be asked yet
		again     <-chan time.Time // armed once it was asked
		stopPoll  = func() bool { return false }
		stopAgain = func() bool { return false }
	)
	defer func() {
		stopDeadline()
		stopPoll()
		stopAgain()
	}()
	for {
		if !asked {
			if v.vm.CanRequestStop() {
				v.askGuest(true)
				asked = true
				stopPoll()
				poll = nil
				again, stopAgain = v.clock.NewTimer(vzAskRepeat)
			} else {
				if v.vm.State() == vzStarting {
					v.m.setNote(StateStopping, noteWaitVZStart)
				}
				if poll == nil {
					poll, stopPoll = v.clock.NewTimer(vzAskPoll)
				}
			}
		}
		select {
		case <-v.m.done:
			return false
		case <-deadline:
			return true
		case <-v.m.stopSooner:
			// A later Stop asked for an earlier force.
			stopDeadline()
			remaining, _ := v.m.stopDeadline()
			deadline, stopDeadline = v.clock.NewTimer(remaining)
		case <-poll:
			poll = nil // armed again above while the guest cannot be asked
		case <-again:
			// The guest is still up: it may have missed the request.
			_, timeout := v.m.stopDeadline()
			v.m.setNote(StateStopping, noteWaitButton+"; it is forced off after "+timeout.String())
			v.askGuest(false)
			again, stopAgain = v.clock.NewTimer(vzAskRepeat)
		}
	}
}

// askGuest asks the guest to power off; first says whether this is the
// stop's first request.
func (v *vzVM) askGuest(first bool) {
	if err := v.vm.RequestStop(); err != nil {
		e := v.log.WithError(err)
		if first {
			e.Warn("asking the guest to power off failed: asking again every second; it is forced off after the stop timeout")
		} else {
			e.Debug("asking the guest to power off again failed")
		}
		return
	}
	if first {
		v.log.Info("asked the guest to power off")
	} else {
		v.log.Debug("asked the guest to power off again")
	}
}

// forceStop forces the VM off without asking the guest. When the framework
// refuses (a VM that is still starting cannot be stopped), it tries again
// as soon as the framework allows it (CanStop) or its state changes, until
// the VM has ended. The NIC stays open meanwhile: the framework may still
// use it. Only a macOS that lacks Stop altogether ends the VM in error at
// once (New refuses such a macOS).
func (v *vzVM) forceStop() {
	v.mu.Lock()
	v.forced = true
	v.mu.Unlock()
	v.log.Warn("the guest did not power off in time: forcing the VM off")
	err := v.vm.Stop()
	if err == nil {
		return // watch sees the framework report stopped
	}
	// The poll: armed before each wait unless still pending from the
	// last one (a state change does not restart it), released on return.
	var poll <-chan time.Time
	stopPoll := func() bool { return false }
	defer func() { stopPoll() }()
	for attempt := 1; ; attempt++ {
		if s := v.vm.State(); s == vzStopped || s == vzError {
			v.log.WithError(err).Debug("forcing the VM off failed, but it has ended")
			return // watch records it
		}
		if errors.Is(err, errMacOSTooOld) || errors.Is(err, errMacOSSDK) {
			if e := v.m.set(StateError, macOSError(err, "forcing the VM off", v.macOS)); e != nil {
				v.log.WithError(e).Debug("final state already set")
			}
			return
		}
		if attempt == 1 {
			v.log.WithError(err).Warn("forcing the VM off failed: trying again as soon as the Virtualization framework allows")
			v.m.setNote(StateStopping, noteForceRetry+" ("+err.Error()+")")
		} else {
			v.log.WithError(err).Debug("forcing the VM off failed again")
		}
		for {
			if poll == nil {
				poll, stopPoll = v.clock.NewTimer(vzForcePoll)
			}
			select {
			case <-v.m.done:
				return
			case <-v.stateKicks:
			case <-poll:
				poll = nil
			}
			if s := v.vm.State(); s == vzStopped || s == vzError {
				return // watch records it
			}
			if v.vm.CanStop() {
				break
			}
		}
		if err = v.vm.Stop(); err == nil {
			v.log.Info("forced the VM off on a later try")
			return
		}
	}
}

// State returns the current state and, for StateError, its cause.
func (v *vzVM) State() (State, error) { return v.m.get() }

// Events delivers every state change; see VM.
func (v *vzVM) Events() <-chan Event { return v.m.events }

// Done is closed when the VM has ended.
func (v *vzVM) Done() <-chan struct{} { return v.m.done }
