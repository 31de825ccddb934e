package testclock

import (
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func fired(ch <-chan time.Time) (time.Time, bool) {
	select {
	case at := <-ch:
		return at, true
	default:
		return time.Time{}, false
	}
}

func TestTimersFireOnlyWhenAdvancedPastThem(t *testing.T) {
	c := New(time.Time{})
	if !c.Now().Equal(Start) {
		t.Fatalf("starts at %v, want %v", c.Now(), Start)
	}
	short, _ := c.NewTimer(time.Second)
	long, _ := c.NewTimer(3 * time.Second)
	if got := c.Timers(); !slices.Equal(got, []time.Duration{time.Second, 3 * time.Second}) {
		t.Fatalf("pending %v, want [1s 3s]", got)
	}
	c.Advance(999 * time.Millisecond)
	if _, ok := fired(short); ok {
		t.Fatal("a 1s timer fired after 999ms")
	}
	c.Advance(time.Millisecond)
	if at, ok := fired(short); !ok || !at.Equal(Start.Add(time.Second)) {
		t.Fatalf("1s timer: fired %v at %v, want at %v", ok, at, Start.Add(time.Second))
	}
	if got := c.Timers(); !slices.Equal(got, []time.Duration{2 * time.Second}) {
		t.Fatalf("pending %v, want [2s]: a fired timer must not stay pending", got)
	}
	c.Advance(time.Hour)
	if _, ok := fired(long); !ok {
		t.Fatal("3s timer did not fire after an hour")
	}
	if got := c.Since(Start); got != time.Hour+time.Second {
		t.Errorf("Since(Start) = %v, want 1h0m1s", got)
	}
}

func TestStopRemovesTheTimer(t *testing.T) {
	c := New(time.Time{})
	ch, stop := c.NewTimer(time.Second)
	if !stop() {
		t.Error("stop of a pending timer reported false")
	}
	if stop() {
		t.Error("a second stop reported true")
	}
	if n := len(c.Timers()); n != 0 {
		t.Fatalf("%d timers pending after stop", n)
	}
	c.Advance(time.Minute)
	if _, ok := fired(ch); ok {
		t.Error("a stopped timer fired")
	}
	ch, stop = c.NewTimer(time.Second)
	c.Advance(time.Second)
	if stop() {
		t.Error("stop of a fired timer reported true")
	}
	if _, ok := fired(ch); !ok {
		t.Error("stop after firing took the value away")
	}
}

func TestZeroTimerHasFired(t *testing.T) {
	c := New(Start.Add(time.Hour))
	if at, ok := fired(c.After(0)); !ok || !at.Equal(Start.Add(time.Hour)) {
		t.Fatalf("After(0): fired %v at %v, want at once", ok, at)
	}
	if n := len(c.Timers()); n != 0 {
		t.Errorf("%d timers pending", n)
	}
}
