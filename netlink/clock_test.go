package netlink

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vmnetbar/vmnetbar/internal/testclock"
	"github.com/vmnetbar/vmnetbar/internal/testwait"
)

// The tests here time the link with a fake clock (Config.Clock): the link's
// waits are asserted exactly, and no test sleeps through them.

var _ Clock = (*testclock.Fake)(nil)

// noProbe turns the VM-side probe off, so that the dialer's wait is the
// link's only timer.
func noProbe(l *Link) {
	l.newProbe = func(syscall.RawConn) (*peerProbe, error) {
		return nil, errors.New("no VM-side probe in this test")
	}
}

// dialerWait waits until the dialer of a link without probe waits on the
// clock and returns how long that wait is.
func dialerWait(t testing.TB, clock *testclock.Fake) time.Duration {
	t.Helper()
	return testwait.ForValue(t, "the dialer to wait on the clock", clock.Timers,
		func(ts []time.Duration) bool { return len(ts) == 1 })[0]
}

// TestRestartAfterFiveSeconds: the daemon is away for 5 s; the dialer's
// waits double from InitialBackoff up to the cap (DefaultMaxBackoff), so
// the link is back within the cap of the daemon's return, and the outage
// is counted as downtime to the nanosecond.
func TestRestartAfterFiveSeconds(t *testing.T) {
	clock := testclock.New(time.Time{})
	vm, host := vmPair(t)
	d := newDaemon(t, socketPath(t))
	d.start()
	l := newLink(t, host, Config{Socket: d.path, Clock: clock})
	noProbe(l)
	runLink(t, l)
	c1 := d.next()
	waitStatus(t, l, "up", func(st Status) bool { return st.State == StateUp })
	// Up for a minute: the loss is redialed at once, and fails.
	clock.Advance(time.Minute)
	d.stop() // first, so that no redial reaches the old listener
	c1.Close()
	lost := clock.Now()
	waitStatus(t, l, "reconnecting", func(st Status) bool { return st.State == StateReconnecting })

	var waits []time.Duration
	for clock.Since(lost) < 5*time.Second { // the outage under test
		w := dialerWait(t, clock)
		waits = append(waits, w)
		clock.Advance(w)
	}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond,
		800 * time.Millisecond, 1600 * time.Millisecond, DefaultMaxBackoff}
	if !slices.Equal(waits, want) {
		t.Errorf("waits between failed dials %v, want %v (doubling from the default initial backoff up to the cap)", waits, want)
	}

	// The dial after the last wait has failed and the dialer waits again
	// before the daemon comes back (else that dial could reach it).
	w := dialerWait(t, clock)
	d.start()
	restarted := clock.Now()
	clock.Advance(w)
	c2 := d.next()
	st := waitStatus(t, l, "up with one reconnect", func(st Status) bool { return st.State == StateUp && st.Reconnects == 1 })
	if took := clock.Since(restarted); took > DefaultMaxBackoff {
		t.Errorf("reconnected %v after the daemon returned, want within the %v backoff cap", took, DefaultMaxBackoff)
	}
	if down := clock.Since(lost); st.Downtime != down || down < 5*time.Second {
		t.Errorf("downtime %v, want the outage %v (>= 5s)", st.Downtime, down)
	}
	if !st.Since.Equal(clock.Now()) {
		t.Errorf("status since %v, want the reconnect time %v", st.Since, clock.Now())
	}
	// Traffic flows again.
	go sendUp(t, vm, 7, []int{100})
	newVmnetReader(c2).expect(t, 7, []int{100})
}

// TestBackoffDoublesAndCaps: failed dials wait InitialBackoff, doubling up
// to MaxBackoff, and the dials happen exactly then.
func TestBackoffDoublesAndCaps(t *testing.T) {
	clock := testclock.New(time.Time{})
	_, host := vmPair(t)
	var mu sync.Mutex
	var at []time.Time
	l := newLink(t, host, Config{
		Dial: func(ctx context.Context) (net.Conn, error) {
			mu.Lock()
			at = append(at, clock.Now())
			mu.Unlock()
			return nil, errors.New("refused")
		},
		InitialBackoff: 40 * time.Millisecond,
		MaxBackoff:     160 * time.Millisecond,
		Clock:          clock,
	})
	noProbe(l)
	stop, _ := runLink(t, l)
	var waits []time.Duration
	for len(waits) < 5 {
		w := dialerWait(t, clock)
		waits = append(waits, w)
		clock.Advance(w)
	}
	testwait.For(t, "the sixth dial", func() bool { mu.Lock(); defer mu.Unlock(); return len(at) == 6 })
	stop()
	want := []time.Duration{40 * time.Millisecond, 80 * time.Millisecond, 160 * time.Millisecond, 160 * time.Millisecond, 160 * time.Millisecond}
	if !slices.Equal(waits, want) {
		t.Errorf("waits %v, want %v", waits, want)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, w := range want {
		if gap := at[i+1].Sub(at[i]); gap != w {
			t.Errorf("dial %d came %v after the one before, want %v", i+1, gap, w)
		}
	}
}

// TestFlappingDaemonBacksOff: a daemon that accepts and closes at once is
// redialed after InitialBackoff each time (each connection resets the
// backoff, so the wait does not grow), never in a tight loop.
func TestFlappingDaemonBacksOff(t *testing.T) {
	clock := testclock.New(time.Time{})
	_, host := vmPair(t)
	d := newDaemon(t, socketPath(t))
	var mu sync.Mutex
	var at []time.Time
	d.onAccept = func(c *net.UnixConn) bool {
		mu.Lock()
		at = append(at, clock.Now())
		mu.Unlock()
		c.Close()
		return false
	}
	d.start()
	const initial = 50 * time.Millisecond
	l := newLink(t, host, Config{Socket: d.path, InitialBackoff: initial, MaxBackoff: 2 * time.Second, Clock: clock})
	noProbe(l)
	stop, _ := runLink(t, l)
	for i := 0; i < 5; i++ {
		// A doubling wait would be 100ms, 200ms, ... by now.
		if w := dialerWait(t, clock); w != initial {
			t.Fatalf("redial %d waits %v, want InitialBackoff %v", i+1, w, initial)
		}
		clock.Advance(initial)
	}
	testwait.For(t, "six connections", func() bool { return d.accepted.Load() == 6 })
	stop()
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < len(at); i++ {
		if gap := at[i].Sub(at[i-1]); gap != initial {
			t.Errorf("connection %d came %v after the one before, want %v", i+1, gap, initial)
		}
	}
}

// TestVMSideProbeWaitsOnTheClock: the checks of the VM side are paced by
// the link's clock, one per probeInterval.
func TestVMSideProbeWaitsOnTheClock(t *testing.T) {
	clock := testclock.New(time.Time{})
	_, _, l, _ := linked(t, Config{Clock: clock})
	probeWaiting := func(ts []time.Duration) bool { return slices.Contains(ts, probeInterval) }
	for i := 0; i < 3; i++ {
		testwait.ForValue(t, "the VM-side probe to wait on the clock", clock.Timers, probeWaiting)
		n := l.probes.Load()
		clock.Advance(probeInterval - 1)
		if got := l.probes.Load(); got != n {
			t.Fatalf("probe %d ran before probeInterval had passed", got)
		}
		clock.Advance(1)
		testwait.For(t, "the next probe", func() bool { return l.probes.Load() > n })
	}
}

// TestManualReconnectCutsTheClockWait: a manual reconnect during a backoff
// wait dials at once and releases the wait's timer.
func TestManualReconnectCutsTheClockWait(t *testing.T) {
	clock := testclock.New(time.Time{})
	_, host := vmPair(t)
	var dials atomic.Int64
	l := newLink(t, host, Config{
		Dial: func(ctx context.Context) (net.Conn, error) {
			dials.Add(1)
			return nil, errors.New("refused")
		},
		Clock: clock,
	})
	noProbe(l)
	stop, _ := runLink(t, l)
	if w := dialerWait(t, clock); w != DefaultInitialBackoff {
		t.Fatalf("first wait %v, want %v", w, DefaultInitialBackoff)
	}
	clock.Advance(DefaultInitialBackoff)
	if w := dialerWait(t, clock); w != 2*DefaultInitialBackoff {
		t.Fatalf("second wait %v, want %v", w, 2*DefaultInitialBackoff)
	}
	l.Reconnect()
	testwait.For(t, "the dial of the manual reconnect", func() bool { return dials.Load() == 3 })
	// The reset backoff: the next wait is InitialBackoff again, and the
	// cut wait's timer is gone (one timer pending, not two).
	if w := dialerWait(t, clock); w != DefaultInitialBackoff {
		t.Fatalf("wait after the manual reconnect %v, want the reset %v", w, DefaultInitialBackoff)
	}
	stop()
	if ts := clock.Timers(); len(ts) != 0 {
		t.Errorf("timers %v still pending after Run returned", ts)
	}
}

// TestNowOverridesTheClocksTime: with both Now and Clock set, Status
// times come from Now and the waits from Clock.
func TestNowOverridesTheClocksTime(t *testing.T) {
	clock := testclock.New(time.Time{})
	other := time.Date(2030, 6, 1, 0, 0, 0, 0, time.UTC)
	_, host := vmPair(t)
	l := newLink(t, host, Config{
		Dial:  func(ctx context.Context) (net.Conn, error) { return nil, errors.New("refused") },
		Now:   func() time.Time { return other },
		Clock: clock,
	})
	noProbe(l)
	if st := l.Status(); !st.Since.Equal(other) {
		t.Errorf("since %v, want Now's %v", st.Since, other)
	}
	runLink(t, l)
	if w := dialerWait(t, clock); w != DefaultInitialBackoff {
		t.Errorf("the backoff waits %v on Clock, want %v", w, DefaultInitialBackoff)
	}
}
