package netlink

import "time"

// Clock is the link's time source: Status times and how long a connection
// lasted (Now), and every wait of the link (NewTimer): the backoff between
// dials, the wait before redialing a short-lived connection and the pause
// between checks of the VM side. Tests inject a fake clock
// (internal/testclock) to assert those waits exactly without sleeping.
// Its methods use only standard types, so a clock need not import
// netlink.
type Clock interface {
	Now() time.Time
	// NewTimer returns a channel that receives the time once d has
	// passed, and stop, which releases the timer (as time.Timer.Stop).
	NewTimer(d time.Duration) (c <-chan time.Time, stop func() bool)
}

// realClock is the system clock. now is Config.Now when set.
type realClock struct{ now func() time.Time }

func (c realClock) Now() time.Time { return c.now() }

func (realClock) NewTimer(d time.Duration) (<-chan time.Time, func() bool) {
	t := time.NewTimer(d)
	return t.C, t.Stop
}

// nowClock is Clock with its Now replaced by Config.Now.
type nowClock struct {
	Clock
	now func() time.Time
}

func (c nowClock) Now() time.Time { return c.now() }
