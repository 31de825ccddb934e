package vmhost

import (
	"errors"
	"fmt"
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
