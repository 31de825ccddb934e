package vmhost

import (
	"testing"
	"time"
)

// awaitDone waits for the VM to end and returns every event it emitted.
func awaitDone(t *testing.T, v VM, within time.Duration) []Event {
	t.Helper()
	select {
	case <-v.Done():
	case <-time.After(within):
		st, err := v.State()
		t.Fatalf("the VM did not end within %v (state %s, %v)", within, st, err)
	}
	var evs []Event
	for ev := range v.Events() {
		evs = append(evs, ev)
	}
	return evs
}

// states lists the state changes among evs (not the notes).
func states(evs []Event) []State {
	var s []State
	for _, e := range evs {
		if e.Note == "" {
			s = append(s, e.State)
		}
	}
	return s
}

// notes lists the notes among evs.
func notes(evs []Event) []string {
	var n []string
	for _, e := range evs {
		if e.Note != "" {
			n = append(n, e.Note)
		}
	}
	return n
}
