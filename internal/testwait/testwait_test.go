package testwait

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder is a testing.TB that records Fatalf instead of ending the
// goroutine, and counts Helper calls.
type recorder struct {
	testing.TB
	mu      sync.Mutex
	fatals  []string
	helpers int
}

func (r *recorder) Helper() { r.mu.Lock(); r.helpers++; r.mu.Unlock() }

func (r *recorder) Fatalf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fatals = append(r.fatals, fmt.Sprintf(format, args...))
}

func TestForReturnsOnceTheConditionHolds(t *testing.T) {
	var n atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 3; i++ {
			n.Add(1)
			time.Sleep(time.Millisecond)
		}
	}()
	r := &recorder{TB: t}
	For(r, "three increments", func() bool { return n.Load() >= 3 })
	<-done
	if len(r.fatals) != 0 {
		t.Fatalf("For failed: %v", r.fatals)
	}
	if r.helpers == 0 {
		t.Error("For did not call t.Helper: a failure would point into testwait")
	}
}

func TestWithinReportsWhatOnTimeout(t *testing.T) {
	r := &recorder{TB: t}
	checks := 0
	Within(r, 20*time.Millisecond, "the daemon to come back", func() bool { checks++; return false })
	if len(r.fatals) != 1 {
		t.Fatalf("%d failures, want 1: %v", len(r.fatals), r.fatals)
	}
	msg := r.fatals[0]
	if !strings.Contains(msg, "waiting for the daemon to come back") || !strings.Contains(msg, "20ms") {
		t.Errorf("failure %q: want what was awaited and the timeout", msg)
	}
	if checks < 2 {
		t.Errorf("the condition was checked %d times, want it polled", checks)
	}
	if r.helpers < 1 {
		t.Error("Within did not call t.Helper")
	}
}

func TestForChecksBeforeWaiting(t *testing.T) {
	r := &recorder{TB: t}
	// A zero timeout still checks once: a condition that already holds
	// never fails.
	Within(r, 0, "nothing", func() bool { return true })
	if len(r.fatals) != 0 {
		t.Fatalf("failed on a condition that held: %v", r.fatals)
	}
}

func TestForValueReturnsTheValueThatHeld(t *testing.T) {
	var n atomic.Int64
	r := &recorder{TB: t}
	got := ForValue(r, "n to reach 3", func() int64 { return n.Add(1) }, func(v int64) bool { return v >= 3 })
	if len(r.fatals) != 0 || got != 3 {
		t.Fatalf("ForValue returned %d (failures %v), want 3", got, r.fatals)
	}
}

func TestValueWithinReportsTheLastValue(t *testing.T) {
	type status struct{ State string }
	r := &recorder{TB: t}
	ValueWithin(r, 10*time.Millisecond, "the link to be up",
		func() status { return status{"reconnecting"} },
		func(s status) bool { return s.State == "up" })
	if len(r.fatals) != 1 {
		t.Fatalf("%d failures, want 1", len(r.fatals))
	}
	if msg := r.fatals[0]; !strings.Contains(msg, "waiting for the link to be up") || !strings.Contains(msg, "{State:reconnecting}") {
		t.Errorf("failure %q: want what was awaited and the last value", msg)
	}
}

// TestEveryChecksAtTheIntervalAndAtTheDeadline: an interval longer than
// the timeout does not stretch the wait: the condition is checked once at
// once and once more at the deadline, then the test fails.
func TestEveryChecksAtTheIntervalAndAtTheDeadline(t *testing.T) {
	r := &recorder{TB: t}
	checks := 0
	WithinEvery(r, 20*time.Millisecond, time.Hour, "the guest to boot", func() bool { checks++; return false })
	if len(r.fatals) != 1 || !strings.Contains(r.fatals[0], "waiting for the guest to boot") {
		t.Fatalf("failures %q, want one naming what was awaited", r.fatals)
	}
	if checks != 2 {
		t.Errorf("the condition was checked %d times, want 2 (at once, at the deadline)", checks)
	}

	gets := 0
	ValueEvery(r, 20*time.Millisecond, time.Hour, "the link to be up",
		func() string { gets++; return "reconnecting" }, func(s string) bool { return s == "up" })
	if len(r.fatals) != 2 || !strings.Contains(r.fatals[1], "last: reconnecting") {
		t.Fatalf("failures %q, want a second one with the last value", r.fatals)
	}
	if gets != 2 {
		t.Errorf("the value was read %d times, want 2", gets)
	}
}

// shown is a value whose failure text is its String.
type shown struct{ menu string }

func (s shown) String() string { return "menu:\n" + s.menu }

func TestValueFailureUsesString(t *testing.T) {
	r := &recorder{TB: t}
	ValueWithin(r, 0, "a submenu", func() shown { return shown{"VM: running"} }, func(shown) bool { return false })
	if len(r.fatals) != 1 || !strings.HasSuffix(r.fatals[0], "last: menu:\nVM: running") {
		t.Fatalf("failures %q, want the value's String", r.fatals)
	}
}
