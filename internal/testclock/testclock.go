// Package testclock is a fake clock for tests of code that waits on time:
// time moves only when the test says so, and the test can see what the
// code under test is waiting for, so backoff and timeouts are asserted
// exactly, without sleeping.
//
// Fake has the method set of the clocks this module injects (netlink.Clock:
// Now and NewTimer, with only standard types in their signatures), so it
// plugs in without this package importing theirs.
//
// testclock imports only the standard library and holds no global state.
package testclock

import (
	"slices"
	"sync"
	"time"
)

// Start is the time a Fake made by New(time.Time{}) starts at.
var Start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Fake is a clock that moves only on Advance. It is safe for concurrent
// use.
type Fake struct {
	mu     sync.Mutex
	now    time.Time
	timers map[*timer]struct{} // pending: neither fired nor stopped
}

type timer struct {
	at time.Time
	ch chan time.Time
}

// New returns a Fake reading start (Start when start is zero).
func New(start time.Time) *Fake {
	if start.IsZero() {
		start = Start
	}
	return &Fake{now: start, timers: map[*timer]struct{}{}}
}

// Now returns the fake time.
func (c *Fake) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Since returns the fake time elapsed since t.
func (c *Fake) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

// NewTimer returns a channel that receives the fake time once the clock has
// advanced by d, and a stop function that, as time.Timer.Stop, reports
// whether it stopped the timer before it fired. A timer of d <= 0 has fired
// already.
func (c *Fake) NewTimer(d time.Duration) (<-chan time.Time, func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &timer{at: c.now.Add(d), ch: make(chan time.Time, 1)}
	if d <= 0 {
		t.ch <- c.now
		return t.ch, func() bool { return false }
	}
	c.timers[t] = struct{}{}
	return t.ch, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		_, pending := c.timers[t]
		delete(c.timers, t)
		return pending
	}
}

// After is NewTimer's channel alone.
func (c *Fake) After(d time.Duration) <-chan time.Time {
	ch, _ := c.NewTimer(d)
	return ch
}

// Advance moves the clock forward by d and fires, earliest first, every
// timer that is then due. A fired timer is no longer pending when Advance
// returns (the receiver may not have run yet).
func (c *Fake) Advance(d time.Duration) {
	if d < 0 {
		panic("testclock: Advance with a negative duration")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	var due []*timer
	for t := range c.timers {
		if !t.at.After(c.now) {
			due = append(due, t)
		}
	}
	slices.SortFunc(due, func(a, b *timer) int { return a.at.Compare(b.at) })
	for _, t := range due {
		delete(c.timers, t)
		t.ch <- t.at // a fresh buffer of one: never blocks
	}
}

// Timers returns how long each pending timer has still to run, shortest
// first: what the code under test is waiting for.
func (c *Fake) Timers() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]time.Duration, 0, len(c.timers))
	for t := range c.timers {
		out = append(out, t.at.Sub(c.now))
	}
	slices.Sort(out)
	return out
}
