package vmhost

import (
	"errors"
	"testing"
	"time"
)

var allStates = []State{StateStopped, StateStarting, StateRunning, StateStopping, StateError}

// fakeClock advances one second per reading.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time {
	c.t = c.t.Add(time.Second)
	return c.t
}

// machineAt drives a fresh machine along a legal path to s.
func machineAt(t *testing.T, s State, clock *fakeClock) *machine {
	t.Helper()
	m := newMachine(discardLogger(), clock.now)
	path := map[State][]State{
		StateStopped:  nil,
		StateStarting: {StateStarting},
		StateRunning:  {StateStarting, StateRunning},
		StateStopping: {StateStarting, StateRunning, StateStopping},
		StateError:    {StateStarting, StateError},
	}[s]
	for _, p := range path {
		if err := m.set(p, errors.New("boom")); err != nil {
			t.Fatalf("driving to %s: %v", s, err)
		}
	}
	for range path {
		<-m.events
	}
	return m
}

// legalTransitions is the table on State, written out again: the rule's
// tests check the code against it.
var legalTransitions = map[[2]State]bool{
	{StateStopped, StateStarting}:  true,
	{StateStarting, StateRunning}:  true,
	{StateStarting, StateStopping}: true,
	{StateStarting, StateStopped}:  true,
	{StateStarting, StateError}:    true,
	{StateRunning, StateStopping}:  true,
	{StateRunning, StateStopped}:   true,
	{StateRunning, StateError}:     true,
	{StateStopping, StateStopped}:  true,
	{StateStopping, StateError}:    true,
}

// TestValidTransition: the exported rule is the table on State, for every
// pair of states; unknown states have no transitions.
func TestValidTransition(t *testing.T) {
	states := append([]State{0, State(9)}, allStates...)
	for _, from := range states {
		for _, to := range states {
			if got, want := ValidTransition(from, to), legalTransitions[[2]State{from, to}]; got != want {
				t.Errorf("ValidTransition(%s, %s) = %v, want %v", from, to, got, want)
			}
		}
	}
}

func TestMachineTransitions(t *testing.T) {
	legal := legalTransitions
	for _, from := range allStates {
		for _, to := range allStates {
			name := from.String() + "->" + to.String()
			t.Run(name, func(t *testing.T) {
				clock := &fakeClock{t: time.Unix(1000, 0)}
				m := machineAt(t, from, clock)
				_, before, _ := m.snapshot()
				cause := errors.New("the cause")
				err := m.set(to, cause)
				if got := err == nil; got != legal[[2]State{from, to}] {
					t.Fatalf("set(%s) from %s: err = %v, want legal=%v", to, from, err, legal[[2]State{from, to}])
				}
				st, since, gotCause := m.snapshot()
				if err != nil {
					if st != from || !since.Equal(before) {
						t.Fatalf("refused transition changed the state: %s since %v", st, since)
					}
					select {
					case ev, ok := <-m.events:
						if ok {
							t.Fatalf("refused transition emitted %+v", ev)
						}
					default:
					}
					return
				}
				if st != to || !since.After(before) {
					t.Fatalf("state %s since %v, want %s after %v", st, since, to, before)
				}
				ev := <-m.events
				if ev.State != to || !ev.At.Equal(since) {
					t.Fatalf("event %+v, want %s at %v", ev, to, since)
				}
				wantCause := to == StateError
				if (gotCause != nil) != wantCause || (ev.Err != nil) != wantCause {
					t.Fatalf("cause %v / event cause %v for %s", gotCause, ev.Err, to)
				}
				final := to == StateStopped || to == StateError
				select {
				case <-m.done:
					if !final {
						t.Fatalf("Done closed in %s", to)
					}
					if _, ok := <-m.events; ok {
						t.Fatal("Events not closed after the final state")
					}
					if m.set(StateStarting, nil) == nil {
						t.Fatal("transition accepted after the end")
					}
				default:
					if final {
						t.Fatalf("Done not closed in %s", to)
					}
				}
			})
		}
	}
}

func TestMachineErrorWithoutCause(t *testing.T) {
	m := machineAt(t, StateStarting, &fakeClock{})
	if err := m.set(StateError, nil); err != nil {
		t.Fatal(err)
	}
	if _, cause := m.get(); cause == nil {
		t.Fatal("StateError without a cause")
	}
}

func TestMachineSetIf(t *testing.T) {
	m := machineAt(t, StateStarting, &fakeClock{})
	if m.setIf(StateRunning, StateStopping, nil) {
		t.Fatal("setIf applied from the wrong state")
	}
	if !m.setIf(StateStarting, StateRunning, nil) {
		t.Fatal("setIf refused a legal transition")
	}
	if st, _ := m.get(); st != StateRunning {
		t.Fatalf("state %s", st)
	}
}

func TestMachineEndBeforeStart(t *testing.T) {
	m := newMachine(discardLogger(), nil)
	if !m.end() {
		t.Fatal("end refused on a fresh machine")
	}
	<-m.done
	if _, ok := <-m.events; ok {
		t.Fatal("event emitted by end")
	}
	if !m.end() {
		t.Fatal("second end refused")
	}
	if m.set(StateStarting, nil) == nil {
		t.Fatal("started after the end")
	}

	m = machineAt(t, StateRunning, &fakeClock{})
	if m.end() {
		t.Fatal("end accepted for a running machine")
	}
}

// A whole life fits the Events buffer without a reader: the backend never
// blocks on a slow subscriber.
func TestMachineNeverBlocks(t *testing.T) {
	m := newMachine(discardLogger(), nil)
	for _, s := range []State{StateStarting, StateRunning, StateStopping, StateStopped} {
		if err := m.set(s, nil); err != nil {
			t.Fatal(err)
		}
	}
	var got []State
	for ev := range m.events {
		got = append(got, ev.State)
	}
	if len(got) != 4 || m.dropped != 0 {
		t.Fatalf("events %v, dropped %d", got, m.dropped)
	}
}

// A note about the current state is emitted once when it changes and
// cleared by the next state change; it never applies to another state.
func TestMachineNotes(t *testing.T) {
	m := machineAt(t, StateStopping, &fakeClock{})
	if m.setNote(StateRunning, "wrong state") {
		t.Fatal("note set for a state the VM is not in")
	}
	first := m.setNote(StateStopping, "waiting")
	again := m.setNote(StateStopping, "waiting") // the same note again is taken too
	if !first || !again {
		t.Fatal("note refused")
	}
	if m.getNote() != "waiting" {
		t.Fatalf("note %q", m.getNote())
	}
	ev := <-m.events
	if ev.State != StateStopping || ev.Note != "waiting" || ev.Err != nil {
		t.Fatalf("note event %+v", ev)
	}
	select {
	case ev := <-m.events:
		t.Fatalf("the same note was emitted again: %+v", ev)
	default:
	}
	if err := m.set(StateStopped, nil); err != nil {
		t.Fatal(err)
	}
	if ev := <-m.events; ev.State != StateStopped || ev.Note != "" {
		t.Fatalf("state change %+v", ev)
	}
	if m.getNote() != "" {
		t.Fatalf("note %q kept after the state changed", m.getNote())
	}
	if m.setNote(StateStopped, "late") {
		t.Fatal("note set after the end")
	}
}

// manualClock reads the time it is set to.
type manualClock struct{ t time.Time }

func (c *manualClock) now() time.Time { return c.t }

// The first Stop sets the deadline; a later one with an earlier deadline
// brings it forward and tells the backend once; one with a later deadline
// changes nothing.
func TestMachineStopDeadline(t *testing.T) {
	clk := &manualClock{t: time.Unix(1000, 0)}
	m := newMachine(discardLogger(), clk.now)
	sooner := func() bool {
		select {
		case <-m.stopSooner:
			return true
		default:
			return false
		}
	}
	if r, to := m.stopDeadline(); r != 0 || to != 0 {
		t.Fatalf("deadline before any Stop: %v, %v", r, to)
	}
	if !m.stopBy(30 * time.Second) {
		t.Fatal("the first Stop was not first")
	}
	if sooner() {
		t.Fatal("the first Stop signalled an earlier deadline")
	}
	clk.t = clk.t.Add(10 * time.Second)
	if m.stopBy(time.Hour) {
		t.Fatal("a second Stop was first")
	}
	if r, to := m.stopDeadline(); r != 20*time.Second || to != 30*time.Second {
		t.Fatalf("after a longer Stop: %v left of %v, want 20s of 30s", r, to)
	}
	if sooner() {
		t.Fatal("a longer Stop signalled an earlier deadline")
	}
	// 25s from now is later than the first Stop's deadline (20s from now).
	if m.stopBy(25*time.Second) || sooner() {
		t.Fatal("a Stop whose deadline is later than the first's changed it")
	}
	m.stopBy(5 * time.Second)
	m.stopBy(2 * time.Second)
	if r, to := m.stopDeadline(); r != 2*time.Second || to != 2*time.Second {
		t.Fatalf("after shorter Stops: %v left of %v, want 2s of 2s", r, to)
	}
	if !sooner() {
		t.Fatal("a shorter Stop did not signal an earlier deadline")
	}
	if sooner() {
		t.Fatal("two signals pending: they should merge")
	}
	clk.t = clk.t.Add(time.Minute)
	if r, _ := m.stopDeadline(); r != 0 {
		t.Fatalf("remaining %v past the deadline, want 0", r)
	}
}

// Notes nobody reads never crowd the state changes out of the Events
// buffer.
func TestMachineNotesLeaveRoomForStates(t *testing.T) {
	m := machineAt(t, StateStopping, &fakeClock{})
	for i := range 3 * eventBuffer {
		if !m.setNote(StateStopping, "waiting "+time.Duration(i).String()) {
			t.Fatal("note refused")
		}
	}
	if m.getNote() != "waiting "+time.Duration(3*eventBuffer-1).String() {
		t.Fatalf("note %q: the latest note is not kept", m.getNote())
	}
	if err := m.set(StateStopped, nil); err != nil {
		t.Fatal(err)
	}
	var last Event
	n := 0
	for ev := range m.events {
		last = ev
		n++
	}
	if last.State != StateStopped || last.Note != "" || m.dropped != 0 {
		t.Fatalf("last event %+v after %d, %d dropped: the state change was lost", last, n, m.dropped)
	}
}
