package vmhost

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// eventBuffer is the capacity of a machine's Events channel. A VM lives
// once (stopped -> starting -> running -> stopping -> stopped|error), so
// it produces at most four state changes, and a backend sets at most a few
// notes (the QEMU backend two, while stopping): the buffer holds every event
// a VM can ever emit and a send never blocks. Should it ever be full anyway (a
// transition table that grew without this constant), the event is dropped
// and counted rather than blocking the backend; State always reports the
// current state.
const eventBuffer = 16

// transitions lists the legal state changes (see the table on State).
var transitions = map[State][]State{
	StateStopped:  {StateStarting},
	StateStarting: {StateRunning, StateStopping, StateStopped, StateError},
	StateRunning:  {StateStopping, StateStopped, StateError},
	StateStopping: {StateStopped, StateError},
	StateError:    nil,
}

// nextState reports whether from -> to is a legal transition.
func nextState(from, to State) bool {
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
	ended   bool
	dropped int
	events  chan Event
	done    chan struct{}
}

func newMachine(log logrus.FieldLogger, now func() time.Time) *machine {
	if now == nil {
		now = time.Now
	}
	return &machine{
		log:    log,
		now:    now,
		state:  StateStopped,
		since:  now(),
		events: make(chan Event, eventBuffer),
		done:   make(chan struct{}),
	}
}

// set moves the machine to state s with cause err (kept for StateError
// only). An illegal transition, or any after the VM has ended, is refused
// and returns an error naming both states; nothing changes.
func (m *machine) set(s State, err error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.setLocked(s, err)
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
	if !nextState(m.state, s) {
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
	m.emitLocked(Event{State: m.state, At: m.now(), Note: note})
	return true
}

// getNote returns the note about the current state, "" for none.
func (m *machine) getNote() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.note
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

// snapshot returns the state, its cause and when it was entered.
func (m *machine) snapshot() (State, error, time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state, m.cause, m.since
}

// isEnded reports whether the VM has ended.
func (m *machine) isEnded() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ended
}
