package vmhost

import "time"

// Clock is the macOS backend's time source: the stop's deadline and its
// waits (the poll for the framework allowing a stop request, the repeat of
// the request, the poll of a forced stop that failed) and the times of its
// state changes (Now). Tests inject a fake clock (internal/testclock) to
// assert those waits exactly without sleeping. Its methods use only
// standard types, so a clock need not import vmhost; it has the method
// set of netlink.Clock.
type Clock interface {
	Now() time.Time
	// NewTimer returns a channel that receives the time once d has
	// passed, and stop, which releases the timer (as time.Timer.Stop).
	NewTimer(d time.Duration) (c <-chan time.Time, stop func() bool)
}

// realClock is the system clock.
type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTimer(d time.Duration) (<-chan time.Time, func() bool) {
	t := time.NewTimer(d)
	return t.C, t.Stop
}
