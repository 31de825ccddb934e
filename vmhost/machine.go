package vmhost

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// eventBuffer is the capacity of a machine's Events channel. A VM lives
// once (stopped -> starting -> running -> stopping -> stopped|error), so
// it produces at most four state changes, and a backend sets a few notes
// (the QEMU backend two while stopping, one more for each Stop that shortens
// the wait): the buffer holds every event a VM normally emits and a send
// never blocks. Notes that nobody reads stop being queued before they could
// crowd out a state change (see maxStateChanges). Should the buffer ever be
// full anyway (a transition table that grew without this constant), the
// event is dropped and counted rather than blocking the backend; State
// always reports the current state.
const eventBuffer = 16

// maxStateChanges is the most state changes a VM's life has (see
// eventBuffer). A note is queued only while the Events buffer keeps room for
// that many more events, so notes (a backend may set a new one for every
// Stop that shortens the wait) can never crowd out a state change.
const maxStateChanges = 4

// transitions lists the legal state changes (see the table on State).
var transitions = map[State][]State{
	StateStopped:  {StateStarting},
	StateStarting: {StateRunning, StateStopping, StateStopped, StateError},
	StateRunning:  {StateStopping, StateStopped, StateError},
	StateStopping: {StateStopped, StateError},
	StateError:    nil,
}

// ValidTransition reports whether a VM may go from state from to state to:
// the transitions in the table on State, which every backend's state
// machine enforces. Staying in a state is not a transition (false), and
// nothing leaves error or, once a VM has started, stopped: a VM lives once.
// Fakes of a VM in other packages' tests obey the same rule through it.
func ValidTransition(from, to State) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// machine is the state machine every backend shares: it holds the state,
// its cause and the time of the last change, fans changes out to the
// Events channel, and closes Events and Done when the VM has ended.
//
// A VM ends when it reaches stopped after having started, or error. After
// that every transition is refused.
type machine struct {
	log logrus.FieldLogger
	now func() time.Time

	mu      sync.Mutex
	state   State
	cause   error
	note    string // what the VM waits for in state; cleared on every change
	since   time.Time
	started bool // Start was called (or a Stop ended the VM before it)
	ended   bool
	dropped int
	events  chan Event
	done    chan struct{}

	// The stop under way (see stopBy).
	stopAsked   bool          // a Stop was called
	stopAt      time.Time     // when the VM is forced off: the earliest deadline asked for
	stopTimeout time.Duration // the timeout of the Stop that set stopAt
	stopSooner  chan struct{} // a later Stop moved stopAt earlier (1-buffered)
}

func newMachine(log logrus.FieldLogger, now func() time.Time) *machine {
	if now == nil {
		now = time.Now
	}
	return &machine{
		log:        log,
		now:        now,
		state:      StateStopped,
		since:      now(),
		events:     make(chan Event, eventBuffer),
		done:       make(chan struct{}),
		stopSooner: make(chan struct{}, 1),
	}
}

// stopBy records a Stop with timeout: the VM is to be forced off timeout
// from now, unless a Stop before asked for an earlier time (the earliest
// deadline wins; a later one changes nothing). It reports whether this is
// the first Stop, which starts the backend's stop. When a later Stop moves
// the deadline earlier, the backend's stopping goroutine is told on
// stopSooner (signals pending at once are merged) and rereads stopDeadline.
func (m *machine) stopBy(timeout time.Duration) (first bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	at := m.now().Add(timeout)
	if !m.stopAsked {
		m.stopAsked, m.stopAt, m.stopTimeout = true, at, timeout
		return true
	}
	if !at.Before(m.stopAt) {
		return false
	}
	m.log.WithFields(logrus.Fields{"timeout": timeout.String(), "was": m.stopTimeout.String()}).
		Info("a new stop shortens the wait before the VM is forced off")
	m.stopAt, m.stopTimeout = at, timeout
	select {
	case m.stopSooner <- struct{}{}:
	default: // one is pending already
	}
	return false
}

// stopDeadline returns how long the stop under way still waits before it
// forces the VM off (never negative) and the timeout of the Stop that set
// that deadline. Before any Stop it returns zeros.
func (m *machine) stopDeadline() (remaining, timeout time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.stopAsked {
		return 0, 0
	}
	return max(m.stopAt.Sub(m.now()), 0), m.stopTimeout
}

// set moves the machine to state s with cause err (kept for StateError
// only). An illegal transition, or any after the VM has ended, is refused
// and returns an error naming both states; nothing changes.
func (m *machine) set(s State, err error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.setLocked(s, err)
}

// beginStop records a Stop with timeout (stopBy) and, for the first one,
// moves a starting or running VM to stopping. It reports whether this Stop
// is the first, which the backend then carries out.
func (m *machine) beginStop(timeout time.Duration) bool {
	if !m.stopBy(timeout) {
		return false
	}
	for _, from := range []State{StateStarting, StateRunning} {
		if m.setIf(from, StateStopping, nil) {
			break
		}
	}
	return true
}

// wait returns nil once the VM has ended, or ctx's error when it ends
// first.
func (m *machine) wait(ctx context.Context) error {
	select {
	case <-m.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// setIf moves to s only when the current state is from; it reports
// whether it did.
func (m *machine) setIf(from, s State, err error) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state != from || m.ended {
		return false
	}
	return m.setLocked(s, err) == nil
}

func (m *machine) setLocked(s State, err error) error {
	if m.ended {
		return fmt.Errorf("VM has ended (%s): it cannot become %s", m.state, s)
	}
	if !ValidTransition(m.state, s) {
		return fmt.Errorf("VM cannot go from %s to %s", m.state, s)
	}
	old := m.state
	m.state, m.since = s, m.now()
	m.cause, m.note = nil, ""
	if s == StateError {
		m.cause = err
		if m.cause == nil {
			m.cause = errors.New("the VM failed for an unknown reason")
		}
	}
	entry := m.log.WithFields(logrus.Fields{"from": old.String(), "to": s.String()})
	if m.cause != nil {
		entry.WithError(m.cause).Warn("VM state changed")
	} else {
		entry.Info("VM state changed")
	}
	m.emitLocked(Event{State: s, At: m.since, Err: m.cause})
	if s == StateStopped || s == StateError {
		m.endLocked()
	}
	return nil
}

// emitLocked queues ev on Events without ever blocking.
func (m *machine) emitLocked(ev Event) {
	select {
	case m.events <- ev:
	default:
		m.dropped++
		m.log.WithFields(logrus.Fields{"state": ev.State.String(), "note": ev.Note}).Warn("VM event dropped: Events channel full")
	}
}

// setNote sets the note about the current state when the state is in
// (and the VM has not ended) and emits it as an event when it changed. It
// reports whether the note is now set.
func (m *machine) setNote(in State, note string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ended || m.state != in {
		return false
	}
	if m.note == note {
		return true
	}
	m.note = note
	if note != "" {
		m.log.WithField("state", m.state.String()).Info(note)
	}
	if cap(m.events)-len(m.events) <= maxStateChanges {
		// Nobody has read the events for a while: keep the room for
		// the state changes to come.
		m.log.WithField("note", note).Debug("VM note not queued: the Events channel is nearly full")
		return true
	}
	m.emitLocked(Event{State: m.state, At: m.now(), Note: note})
	return true
}

// getNote returns the note about the current state, "" for none.
func (m *machine) getNote() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.note
}

// errAlreadyUsed: Start on a VM that was started or stopped before.
var errAlreadyUsed = errors.New("the VM was already started or stopped: make a new one with New")

// claimStart records that the VM starts; false when it was started or
// ended before (a VM starts once).
func (m *machine) claimStart() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started || m.ended {
		return false
	}
	m.started = true
	return true
}

// endUnstarted ends a VM that was never started (Stop before Start) and
// reports whether it did; the caller then closes the NIC. A VM that was
// started is left to its stop.
func (m *machine) endUnstarted() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started {
		return false
	}
	m.started = true
	if !m.ended && m.state == StateStopped {
		m.endLocked()
	}
	return true
}

// end marks a VM that never started as ended: Done and Events close
// without an event. It does nothing when the VM has already ended and
// refuses (returns false) when it is past stopped.
func (m *machine) end() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ended {
		return true
	}
	if m.state != StateStopped {
		return false
	}
	m.endLocked()
	return true
}

func (m *machine) endLocked() {
	m.ended = true
	close(m.events)
	close(m.done)
}

// get returns the state and its cause.
func (m *machine) get() (State, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state, m.cause
}

// snapshot returns the state, when it was entered and its cause.
func (m *machine) snapshot() (State, time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state, m.since, m.cause
}

// isEnded reports whether the VM has ended.
func (m *machine) isEnded() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ended
}
