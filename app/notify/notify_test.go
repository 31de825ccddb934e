package notify

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"go.uber.org/goleak"

	"github.com/vmnetbar/vmnetbar/internal/testwait"
	"github.com/vmnetbar/vmnetbar/netlink"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeClock runs timers synchronously in Advance.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c       *fakeClock
	at      time.Time
	f       func()
	stopped bool
	fired   bool
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.stopped && !t.fired
	t.stopped = true
	return was
}

// Advance moves the clock and runs the timers that came due, in order.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*fakeTimer
	for _, t := range c.timers {
		if !t.stopped && !t.fired && !t.at.After(c.now) {
			t.fired = true
			due = append(due, t)
		}
	}
	c.mu.Unlock()
	sort.Slice(due, func(i, j int) bool { return due[i].at.Before(due[j].at) })
	for _, t := range due {
		t.f()
	}
}

// pending counts timers that have neither fired nor been stopped.
func (c *fakeClock) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if !t.stopped && !t.fired {
			n++
		}
	}
	return n
}

// recorder is a Sender that records what it is asked to show.
type recorder struct {
	mu    sync.Mutex
	notes []note
	err   error
	gate  chan struct{} // when set, Send waits until it is closed
	// entered, when set, gets a value each time Send starts.
	entered chan struct{}
}

func (r *recorder) Send(title, body string) error {
	if r.entered != nil {
		r.entered <- struct{}{}
	}
	if r.gate != nil {
		<-r.gate
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notes = append(r.notes, note{title, body})
	return r.err
}

func (r *recorder) titles() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ts []string
	for _, n := range r.notes {
		ts = append(ts, n.title)
	}
	return ts
}

func (r *recorder) bodies() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var bs []string
	for _, n := range r.notes {
		bs = append(bs, n.body)
	}
	return bs
}

type setup struct {
	n     *Notifier
	clock *fakeClock
	rec   *recorder
}

func newSetup(t *testing.T, cfg Config) *setup {
	t.Helper()
	s := &setup{clock: newFakeClock(), rec: &recorder{}}
	if cfg.Sender == nil {
		cfg.Sender = s.rec
	}
	cfg.Clock = s.clock
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.n = n
	t.Cleanup(func() { n.Close() })
	return s
}

// update feeds a status whose state changed now.
func (s *setup) update(state netlink.State, lastErr string) {
	s.n.Update(netlink.Status{State: state, Since: s.clock.Now(), LastError: lastErr})
}

// finish closes the Notifier (delivering what is queued) and returns the
// titles shown.
func (s *setup) finish(t *testing.T) []string {
	t.Helper()
	if err := s.n.Close(); err != nil {
		t.Fatal(err)
	}
	return s.rec.titles()
}

func equal(a, b []string) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

func TestShortOutageShowsNothing(t *testing.T) {
	s := newSetup(t, Config{})
	s.update(netlink.StateUp, "")
	s.update(netlink.StateReconnecting, "EOF")
	s.clock.Advance(DefaultLostAfter - time.Millisecond)
	s.update(netlink.StateUp, "")
	s.clock.Advance(time.Hour)
	if got := s.finish(t); len(got) != 0 {
		t.Errorf("shown %q, want nothing", got)
	}
	if p := s.clock.pending(); p != 0 {
		t.Errorf("%d timers left running", p)
	}
}

func TestLongOutageShowsLostThenRestored(t *testing.T) {
	s := newSetup(t, Config{})
	s.update(netlink.StateUp, "")
	s.update(netlink.StateReconnecting, "read unix ->/var/run/socket_vmnet: EOF")
	s.clock.Advance(DefaultLostAfter - time.Millisecond)
	if got := s.rec.titles(); len(got) != 0 {
		t.Fatalf("shown %q before LostAfter", got)
	}
	// Later errors of the same outage update the text, not the count.
	s.update(netlink.StateReconnecting, "dial unix /var/run/socket_vmnet: connect: connection refused")
	s.clock.Advance(time.Millisecond)
	s.clock.Advance(time.Minute)
	s.update(netlink.StateReconnecting, "still refused")
	s.clock.Advance(2 * time.Second) // 67 s after the loss
	s.update(netlink.StateUp, "")
	got := s.finish(t)
	if want := []string{TitleLost, TitleRestored}; !equal(got, want) {
		t.Fatalf("shown %q, want %q", got, want)
	}
	bodies := s.rec.bodies()
	if want := "The VM has had no connection to socket_vmnet for 5s; reconnecting. Last error: dial unix /var/run/socket_vmnet: connect: connection refused"; bodies[0] != want {
		t.Errorf("lost body %q, want %q", bodies[0], want)
	}
	if want := "The VM's network is back after 1m7s."; bodies[1] != want {
		t.Errorf("restored body %q, want %q", bodies[1], want)
	}
}

func TestLostAfterCountsFromSince(t *testing.T) {
	s := newSetup(t, Config{LostAfter: 10 * time.Second})
	// The update arrives 8 s after the link went down.
	s.n.Update(netlink.Status{State: netlink.StateReconnecting, Since: s.clock.Now().Add(-8 * time.Second)})
	s.clock.Advance(2*time.Second - time.Millisecond)
	if got := s.rec.titles(); len(got) != 0 {
		t.Fatalf("shown %q too early", got)
	}
	s.clock.Advance(time.Millisecond)
	// An update older than LostAfter shows at once.
	s.update(netlink.StateUp, "")
	s.n.Update(netlink.Status{State: netlink.StateReconnecting, Since: s.clock.Now().Add(-time.Minute)})
	s.clock.Advance(0)
	if got, want := s.finish(t), []string{TitleLost, TitleRestored, TitleLost}; !equal(got, want) {
		t.Errorf("shown %q, want %q", got, want)
	}
}

func TestRateLimit(t *testing.T) {
	s := newSetup(t, Config{MaxLostPerMinute: 2})
	outage := func() {
		s.update(netlink.StateReconnecting, "EOF")
		s.clock.Advance(6 * time.Second)
		s.update(netlink.StateUp, "")
		s.clock.Advance(time.Second)
	}
	for range 4 { // four outages in 28 s: only two are shown
		outage()
	}
	waitTitles(t, s.rec, []string{TitleLost, TitleRestored, TitleLost, TitleRestored})
	s.clock.Advance(time.Minute) // the window has passed
	outage()
	want := []string{TitleLost, TitleRestored, TitleLost, TitleRestored, TitleLost, TitleRestored}
	if got := s.finish(t); !equal(got, want) {
		t.Errorf("shown %q, want %q", got, want)
	}
}

// waitTitles waits for the recorder to have shown exactly the titles
// want, failing the test with the titles shown last.
func waitTitles(t *testing.T, r *recorder, want []string) {
	t.Helper()
	testwait.ForValue(t, fmt.Sprintf("the titles shown to be %q", want), r.titles,
		func(got []string) bool { return equal(got, want) })
}

func TestStopOrFailEndsOutageSilently(t *testing.T) {
	for _, end := range []netlink.State{netlink.StateStopped, netlink.StateFailed} {
		t.Run(end.String(), func(t *testing.T) {
			s := newSetup(t, Config{})
			// Before LostAfter: the timer goes, nothing is shown.
			s.update(netlink.StateReconnecting, "EOF")
			s.clock.Advance(time.Second)
			s.update(end, "")
			if p := s.clock.pending(); p != 0 {
				t.Errorf("%d timers left running", p)
			}
			s.clock.Advance(time.Minute)
			// After "lost": no "restored".
			s.update(netlink.StateReconnecting, "EOF")
			s.clock.Advance(time.Minute)
			s.update(end, "")
			s.update(netlink.StateUp, "")
			if got, want := s.finish(t), []string{TitleLost}; !equal(got, want) {
				t.Errorf("shown %q, want %q", got, want)
			}
		})
	}
}

func TestConnectingIsNotAnOutage(t *testing.T) {
	s := newSetup(t, Config{})
	s.update(netlink.StateConnecting, "dial: no such file")
	s.clock.Advance(time.Hour)
	s.update(netlink.StateUp, "")
	if got := s.finish(t); len(got) != 0 {
		t.Errorf("shown %q, want nothing", got)
	}
}

func TestSenderErrorsAreLogged(t *testing.T) {
	log, hook := logtest.NewNullLogger()
	rec := &recorder{err: errors.New("no notification daemon")}
	s := newSetup(t, Config{Sender: rec, Log: log})
	s.rec = rec
	s.update(netlink.StateReconnecting, "EOF")
	s.clock.Advance(time.Minute)
	s.update(netlink.StateUp, "")
	if got, want := s.finish(t), []string{TitleLost, TitleRestored}; !equal(got, want) {
		t.Fatalf("shown %q, want %q", got, want)
	}
	var warned int
	for _, e := range hook.AllEntries() {
		if e.Level == logrus.WarnLevel && strings.Contains(fmt.Sprint(e.Data[logrus.ErrorKey]), "no notification daemon") {
			warned++
		}
	}
	if warned != 2 {
		t.Errorf("%d warnings about the failed sends, want 2: %v", warned, hook.AllEntries())
	}
}

// TestStuckSenderDoesNotBlockUpdates shows that Update never waits for the
// Sender, and that a stuck one loses notifications instead of queueing
// them without bound.
func TestStuckSenderDoesNotBlockUpdates(t *testing.T) {
	log, hook := logtest.NewNullLogger()
	rec := &recorder{gate: make(chan struct{}), entered: make(chan struct{}, 100)}
	s := newSetup(t, Config{Sender: rec, Log: log, MaxLostPerMinute: 100})
	s.rec = rec
	outages := queueLen + 3
	s.update(netlink.StateReconnecting, "EOF")
	s.clock.Advance(6 * time.Second)
	select { // the first "lost" is in Send, stuck
	case <-rec.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the Sender was never called")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.update(netlink.StateUp, "")
		for range outages - 1 {
			s.update(netlink.StateReconnecting, "EOF")
			s.clock.Advance(6 * time.Second)
			s.update(netlink.StateUp, "")
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Update blocked on a stuck Sender")
	}
	close(rec.gate) // unstick: every Send passes now
	got := s.finish(t)
	// One in Send when the gate closed, queueLen queued, the rest dropped.
	if len(got) != queueLen+1 {
		t.Errorf("shown %d notifications, want %d", len(got), queueLen+1)
	}
	dropped := 0
	for _, e := range hook.AllEntries() {
		if strings.Contains(e.Message, "notification dropped") {
			dropped++
		}
	}
	if dropped != 2*outages-len(got) {
		t.Errorf("%d drops logged, want %d", dropped, 2*outages-len(got))
	}
}

func TestClose(t *testing.T) {
	s := newSetup(t, Config{})
	s.update(netlink.StateReconnecting, "EOF")
	if err := s.n.Close(); err != nil {
		t.Fatal(err)
	}
	if p := s.clock.pending(); p != 0 {
		t.Errorf("%d timers left running after Close", p)
	}
	if err := s.n.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	s.update(netlink.StateReconnecting, "EOF") // ignored, no panic
	s.clock.Advance(time.Hour)
	if got := s.rec.titles(); len(got) != 0 {
		t.Errorf("shown %q after Close", got)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{Sender: &recorder{}, LostAfter: -time.Second},
		{Sender: &recorder{}, MaxLostPerMinute: -1},
	} {
		if n, err := New(cfg); err == nil {
			n.Close()
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

func TestSystemClock(t *testing.T) {
	fired := make(chan struct{})
	SystemClock{}.AfterFunc(time.Millisecond, func() { close(fired) })
	select {
	case <-fired:
	case <-time.After(10 * time.Second):
		t.Fatal("SystemClock.AfterFunc never fired")
	}
	var clock Clock = SystemClock{}
	if !clock.AfterFunc(time.Hour, func() {}).Stop() {
		t.Error("Stop of a pending timer returned false")
	}
}

// With several VMs each notification names its VM.
func TestNotificationsNameTheVM(t *testing.T) {
	s := newSetup(t, Config{VM: "dev"})
	s.update(netlink.StateUp, "")
	s.update(netlink.StateReconnecting, "EOF")
	s.clock.Advance(DefaultLostAfter)
	s.update(netlink.StateUp, "")
	s.finish(t)
	for _, b := range s.rec.bodies() {
		if !strings.HasPrefix(b, "dev: ") {
			t.Errorf("body %q does not name the VM", b)
		}
	}
	if n := len(s.rec.bodies()); n != 2 {
		t.Fatalf("%d notifications, want lost and restored", n)
	}
}
