// Package testwait waits in tests for something another goroutine does: it
// polls a condition until it holds or a deadline passes, then fails the test
// naming what it waited for. It never sleeps to assert timing: a test that
// is about time injects a clock (see internal/testclock).
//
// testwait imports only the standard library and holds no global state.
package testwait

import (
	"testing"
	"time"
)

// DefaultTimeout is how long For waits: long enough for a loaded machine,
// short enough that a hung test fails well before the test binary's own
// timeout.
const DefaultTimeout = 10 * time.Second

// pollInterval is the pause between two checks of the condition.
const pollInterval = time.Millisecond

// For polls cond until it returns true. After DefaultTimeout it fails the
// test with "timed out after 10s waiting for WHAT".
func For(t testing.TB, what string, cond func() bool) {
	t.Helper()
	Within(t, DefaultTimeout, what, cond)
}

// Within is For with its own timeout (at most timeout between the first
// check and the failure).
func Within(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	WithinEvery(t, timeout, pollInterval, what, cond)
}

// WithinEvery is Within checking cond every interval instead of every
// millisecond: for a condition that is costly to check (a request to a
// running app, a D-Bus call) while the machine is busy (a guest booting
// under TCG). The last check is at the deadline at the latest.
func WithinEvery(t testing.TB, timeout, interval time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
			return // Fatalf returns only from a fake testing.TB
		}
		time.Sleep(min(interval, left))
	}
}

// ForValue polls get until ok holds for its value and returns that value.
// After DefaultTimeout it fails the test naming what and the last value
// seen ("timed out after 10s waiting for WHAT; last: VALUE"; a value
// with a String method is shown by it).
func ForValue[T any](t testing.TB, what string, get func() T, ok func(T) bool) T {
	t.Helper()
	return ValueWithin(t, DefaultTimeout, what, get, ok)
}

// ValueWithin is ForValue with its own timeout.
func ValueWithin[T any](t testing.TB, timeout time.Duration, what string, get func() T, ok func(T) bool) T {
	t.Helper()
	return ValueEvery(t, timeout, pollInterval, what, get, ok)
}

// ValueEvery is ValueWithin calling get every interval (see WithinEvery).
func ValueEvery[T any](t testing.TB, timeout, interval time.Duration, what string, get func() T, ok func(T) bool) T {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		v := get()
		if ok(v) {
			return v
		}
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("timed out after %v waiting for %s; last: %+v", timeout, what, v)
			return v // Fatalf returns only from a fake testing.TB
		}
		time.Sleep(min(interval, left))
	}
}
