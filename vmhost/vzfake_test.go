package vmhost

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
)

// fakeVZ stands in for the Virtualization framework's VM. It follows the
// framework's rules as vz v3.7.1 and Apple's documentation give them: the
// VM is stopped until Start, starting until Start returns, then running;
// the guest can be asked to power off only while it runs; Stop works on a
// running VM (not on one that is starting unless stopWhileStarting); every
// state change is reported, in order, to the one reader of NextState.
type fakeVZ struct {
	// Behaviour, set before use.
	startGate         chan struct{} // non-nil: Start keeps the VM starting until it is closed
	startErr          error         // Start fails with it after the gate; the VM goes to startFailState
	startFailState    vzState
	answerOn          int  // the guest powers off at this RequestStop (1 = the first); 0 = never
	stopWhileStarting bool // Stop works on a starting VM too

	mu       sync.Mutex
	state    vzState
	changes  []vzState // reported, not read yet
	stopErrs []error   // the next Stop calls fail with these
	starts   int
	requests int
	stops    int

	changed  chan struct{} // a change was queued
	readers  atomic.Int32  // NextState calls in progress
	twoReads atomic.Bool   // two NextState calls overlapped
}

func newFakeVZ() *fakeVZ { return &fakeVZ{changed: make(chan struct{}, 1)} }

// errFakeCannotStop is the framework refusing a stop in a state that does
// not allow it.
var errFakeCannotStop = errors.New("fake VZ: the VM cannot be stopped in this state")

// setState changes the state and reports it.
func (f *fakeVZ) setState(s vzState) {
	f.mu.Lock()
	f.state = s
	f.changes = append(f.changes, s)
	f.mu.Unlock()
	select {
	case f.changed <- struct{}{}:
	default:
	}
}

func (f *fakeVZ) Start() error {
	f.mu.Lock()
	f.starts++
	st := f.state
	f.mu.Unlock()
	if st != vzStopped {
		return fmt.Errorf("fake VZ: Start in state %s", st)
	}
	f.setState(vzStarting)
	if f.startGate != nil {
		<-f.startGate
	}
	if f.State() != vzStarting {
		return errors.New("fake VZ: the VM stopped while it started")
	}
	if f.startErr != nil {
		f.setState(f.startFailState)
		return f.startErr
	}
	f.setState(vzRunning)
	return nil
}

func (f *fakeVZ) CanRequestStop() bool { return f.State() == vzRunning }

func (f *fakeVZ) RequestStop() error {
	f.mu.Lock()
	if f.state != vzRunning {
		f.mu.Unlock()
		return errors.New("fake VZ: the guest cannot be asked to stop now")
	}
	f.requests++
	answer := f.answerOn > 0 && f.requests >= f.answerOn
	f.mu.Unlock()
	if answer {
		f.setState(vzStopped) // the guest powers off
	}
	return nil
}

func (f *fakeVZ) CanStop() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.canStopLocked()
}

func (f *fakeVZ) canStopLocked() bool {
	return f.state == vzRunning || f.state == vzPaused || (f.state == vzStarting && f.stopWhileStarting)
}

func (f *fakeVZ) Stop() error {
	f.mu.Lock()
	f.stops++
	if len(f.stopErrs) > 0 {
		err := f.stopErrs[0]
		f.stopErrs = f.stopErrs[1:]
		f.mu.Unlock()
		return err
	}
	can := f.canStopLocked()
	f.mu.Unlock()
	if !can {
		return errFakeCannotStop
	}
	f.setState(vzStopping)
	f.setState(vzStopped)
	return nil
}

func (f *fakeVZ) State() vzState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state
}

func (f *fakeVZ) NextState(quit <-chan struct{}) (vzState, bool) {
	if f.readers.Add(1) > 1 {
		f.twoReads.Store(true)
	}
	defer f.readers.Add(-1)
	for {
		f.mu.Lock()
		if len(f.changes) > 0 {
			s := f.changes[0]
			f.changes = f.changes[1:]
			f.mu.Unlock()
			return s, true
		}
		f.mu.Unlock()
		select {
		case <-f.changed:
		case <-quit:
			return 0, false
		}
	}
}

// counts returns how often Start, RequestStop and Stop were called.
func (f *fakeVZ) counts() (starts, requests, stops int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.starts, f.requests, f.stops
}

// failStops makes the next Stop calls fail with errs.
func (f *fakeVZ) failStops(errs ...error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopErrs = append(f.stopErrs, errs...)
}

// fakeFirmware stands in for the framework's EFI variable store and
// machine identifiers. A store it creates holds "store N" (N counts the
// stores made); an identifier is "machine-id-N"; CheckMachineID takes only
// data that starts with "machine-id-", as the framework takes only its own
// data representations.
type fakeFirmware struct {
	createErr  error // CreateVariableStore writes a partial store, then fails with it
	newIDErr   error // NewMachineID fails with it
	mu         sync.Mutex
	stores     []string // paths CreateVariableStore was called with
	ids        int      // identifiers made
	checks     int      // CheckMachineID calls
	checkedIDs [][]byte
}

func newFakeFirmware() *fakeFirmware { return &fakeFirmware{} }

func (f *fakeFirmware) CreateVariableStore(path string) error {
	f.mu.Lock()
	f.stores = append(f.stores, path)
	n, fail := len(f.stores), f.createErr
	f.mu.Unlock()
	if fail != nil {
		os.WriteFile(path, []byte("half a st"), 0o600)
		return fail
	}
	return os.WriteFile(path, fmt.Appendf(nil, "store %d", n), 0o600)
}

func (f *fakeFirmware) NewMachineID() ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.newIDErr != nil {
		return nil, f.newIDErr
	}
	f.ids++
	return fmt.Appendf(nil, "machine-id-%d", f.ids), nil
}

func (f *fakeFirmware) CheckMachineID(data []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checks++
	f.checkedIDs = append(f.checkedIDs, data)
	if len(data) == 0 {
		panic("CheckMachineID with no data: vz indexes its first byte")
	}
	if !bytes.HasPrefix(data, []byte("machine-id-")) {
		return errors.New("fake VZ: not a machine identifier")
	}
	return nil
}

// counts returns how many variable stores and identifiers were made.
func (f *fakeFirmware) made() (stores, ids int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.stores), f.ids
}
