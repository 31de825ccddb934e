//go:build linux || darwin

package vmhost

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmnetbar/vmnetbar/internal/testclock"
	"github.com/vmnetbar/vmnetbar/internal/testwait"
)

// The macOS backend's logic, run against fakeVZ.

// vzTest is a backend VM on a fake framework and a fake clock.
type vzTest struct {
	v     *vzVM
	f     *fakeVZ
	clock *testclock.Fake // time moves only when the test advances it
	nic   *os.File
	gate  func() // opens the start gate (once)
}

// newVZTest builds a vzVM on f and a fake clock, with the real timings of
// a stop (vzAskPoll, vzAskRepeat, vzForcePoll): tests advance the clock
// and assert the waits (waitTimers). Its gate, if any, is opened by the
// cleanup, which stops the VM advancing the clock as far as the stop
// waits.
func newVZTest(t *testing.T, f *fakeVZ) *vzTest {
	t.Helper()
	cfg := validConfig(t)
	lim := testLimits
	lim.macOS = "14.5"
	clock := testclock.New(time.Time{})
	v, err := newVZ(cfg, testLogger(t), vzHost{limits: lim, build: func(vzSpec) (vzMachine, error) { return f, nil }, fw: newFakeFirmware(), clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	gate := func() {
		if f.startGate != nil {
			once.Do(func() { close(f.startGate) })
		}
	}
	t.Cleanup(func() {
		// Whatever happened, the test leaves no goroutine behind.
		gate()
		stopped := stopAsync(v, time.Millisecond)
		testwait.For(t, "the cleanup stop to end the VM", func() bool {
			select {
			case <-v.Done():
				return true
			default:
			}
			if ts := clock.Timers(); len(ts) > 0 {
				clock.Advance(ts[0]) // whatever the stop waits for
			}
			return false
		})
		if err := recvErr(t, stopped, "the cleanup Stop"); err != nil {
			t.Errorf("cleanup Stop: %v", err)
		}
		v.running.Wait() // they log to t
		if f.twoReads.Load() {
			t.Error("two goroutines read the framework's state changes at once")
		}
	})
	return &vzTest{v: v, f: f, clock: clock, nic: cfg.NIC, gate: gate}
}

// waitTimers waits until the timers pending on the fake clock are want,
// shortest first: what the stop waits for once it has done what it does
// before waiting (each wait is armed after that).
func (vt *vzTest) waitTimers(t *testing.T, want ...time.Duration) {
	t.Helper()
	testwait.ForValue(t, fmt.Sprintf("the stop to wait for %v", want), vt.clock.Timers,
		func(ts []time.Duration) bool { return slices.Equal(ts, want) })
}

// elapsed is how far the test has advanced the fake clock.
func (vt *vzTest) elapsed() time.Duration { return vt.clock.Since(testclock.Start) }

// waitNICClosed waits for the backend to close the NIC: it does so right
// after the VM has ended.
func waitNICClosed(t *testing.T, nic *os.File) {
	t.Helper()
	testwait.For(t, "the NIC to be closed", func() bool { return isClosed(nic) })
}

// startAsync calls Start in a goroutine (the framework's Start blocks
// while the VM starts) and returns its result channel.
func startAsync(v *vzVM) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- v.Start(context.Background()) }()
	return ch
}

// stopAsync calls Stop in a goroutine and returns its result channel.
func stopAsync(v *vzVM, timeout time.Duration) <-chan error {
	ch := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		ch <- v.Stop(ctx, timeout)
	}()
	return ch
}

func recvErr(t *testing.T, ch <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not return", what)
		return nil
	}
}

// waitState waits until the VM is in s.
func waitState(t *testing.T, v VM, s State) {
	t.Helper()
	testwait.For(t, "state "+s.String(), func() bool { st, _ := v.State(); return st == s })
}

func TestVZStartThenGuestPowersOff(t *testing.T) {
	vt := newVZTest(t, newFakeVZ())
	if err := vt.v.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitState(t, vt.v, StateRunning)
	if isClosed(vt.nic) {
		t.Fatal("the NIC is closed while the VM runs")
	}
	vt.f.setState(vzStopped) // the guest powered off by itself
	evs := awaitDone(t, vt.v, 10*time.Second)
	if got := states(evs); !slices.Equal(got, []State{StateStarting, StateRunning, StateStopped}) {
		t.Errorf("events %v", got)
	}
	waitNICClosed(t, vt.nic)
	if err := vt.v.Start(context.Background()); err == nil {
		t.Error("a second Start worked")
	}
}

// States the VM does not use (pause, save) change nothing.
func TestVZIgnoresOtherFrameworkStates(t *testing.T) {
	vt := newVZTest(t, newFakeVZ())
	if err := vt.v.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitState(t, vt.v, StateRunning)
	for _, s := range []vzState{vzPausing, vzPaused, vzResuming, vzSaving, vzRestoring, vzStarting, vzState(42)} {
		vt.f.setState(s)
	}
	vt.f.setState(vzRunning)
	vt.f.setState(vzStopping) // the guest is shutting down
	waitState(t, vt.v, StateStopping)
	vt.f.setState(vzStopped)
	evs := awaitDone(t, vt.v, 10*time.Second)
	if got := states(evs); !slices.Equal(got, []State{StateStarting, StateRunning, StateStopping, StateStopped}) {
		t.Errorf("events %v", got)
	}
}

func TestVZFrameworkErrorEndsTheVM(t *testing.T) {
	vt := newVZTest(t, newFakeVZ())
	if err := vt.v.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitState(t, vt.v, StateRunning)
	vt.f.setState(vzError)
	evs := awaitDone(t, vt.v, 10*time.Second)
	if got := states(evs); !slices.Equal(got, []State{StateStarting, StateRunning, StateError}) {
		t.Errorf("events %v", got)
	}
	st, err := vt.v.State()
	if st != StateError || err == nil || !strings.Contains(err.Error(), "internal error") {
		t.Errorf("state %s, %v", st, err)
	}
	waitNICClosed(t, vt.nic)
}

// The framework's own reason for a failed Start wins over the state it
// reported meanwhile, and the NIC is closed.
func TestVZStartFailure(t *testing.T) {
	for _, after := range []vzState{vzStopped, vzError} {
		t.Run(after.String(), func(t *testing.T) {
			f := newFakeVZ()
			f.startErr, f.startFailState = errors.New("no entitlement"), after
			vt := newVZTest(t, f)
			err := vt.v.Start(context.Background())
			if err == nil || !strings.Contains(err.Error(), "starting the VM: no entitlement") {
				t.Fatalf("Start: %v", err)
			}
			awaitDone(t, vt.v, 10*time.Second)
			st, cause := vt.v.State()
			if st != StateError || cause == nil || !strings.Contains(cause.Error(), "no entitlement") {
				t.Errorf("state %s, %v", st, cause)
			}
			waitNICClosed(t, vt.nic)
		})
	}
}

func TestVZStartWithCanceledContext(t *testing.T) {
	vt := newVZTest(t, newFakeVZ())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := vt.v.Start(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Start: %v", err)
	}
	awaitDone(t, vt.v, 10*time.Second)
	if starts, _, _ := vt.f.counts(); starts != 0 {
		t.Error("the framework was asked to start")
	}
	waitNICClosed(t, vt.nic)
}

func TestVZStopBeforeStart(t *testing.T) {
	vt := newVZTest(t, newFakeVZ())
	if err := vt.v.Stop(context.Background(), time.Second); err != nil {
		t.Fatal(err)
	}
	if evs := awaitDone(t, vt.v, 10*time.Second); len(evs) != 0 {
		t.Errorf("events %v", evs)
	}
	waitNICClosed(t, vt.nic)
	if err := vt.v.Start(context.Background()); err == nil {
		t.Error("Start after Stop worked")
	}
	if starts, _, _ := vt.f.counts(); starts != 0 {
		t.Error("the framework was asked to start")
	}
}

// A guest that misses the first requests (it is still booting) is asked
// again: the stop ends when it answers, long before the stop timeout, and
// the VM says what it waits for meanwhile.
func TestVZStopAsksAgain(t *testing.T) {
	f := newFakeVZ()
	f.answerOn = 3
	vt := newVZTest(t, f)
	if err := vt.v.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitState(t, vt.v, StateRunning)
	// A timeout the test never reaches: the stop can only end if the
	// guest answers.
	stopped := stopAsync(vt.v, time.Hour)
	// Asked at once, then again every vzAskRepeat.
	vt.waitTimers(t, vzAskRepeat, time.Hour)
	if _, requests, _ := f.counts(); requests != 1 {
		t.Fatalf("%d requests before the first repeat, want 1", requests)
	}
	vt.clock.Advance(vzAskRepeat - 1)
	vt.waitTimers(t, 1, time.Hour-vzAskRepeat+1)
	if _, requests, _ := f.counts(); requests != 1 {
		t.Fatalf("%d requests before a full vzAskRepeat, want 1", requests)
	}
	vt.clock.Advance(1)
	vt.waitTimers(t, vzAskRepeat, time.Hour-vzAskRepeat)
	if _, requests, _ := f.counts(); requests != 2 {
		t.Fatalf("%d requests after one vzAskRepeat, want 2", requests)
	}
	vt.clock.Advance(vzAskRepeat) // the third request: the guest answers
	if err := recvErr(t, stopped, "Stop"); err != nil {
		t.Fatal(err)
	}
	evs := awaitDone(t, vt.v, 10*time.Second)
	vt.waitTimers(t) // the stopper released its timers
	if got := states(evs); !slices.Equal(got, []State{StateStarting, StateRunning, StateStopping, StateStopped}) {
		t.Errorf("events %v", got)
	}
	if _, requests, stops := f.counts(); requests != 3 || stops != 0 {
		t.Errorf("%d requests and %d forced stops, want 3 and 0", requests, stops)
	}
	n := notes(evs)
	if len(n) != 1 || !strings.HasPrefix(n[0], noteWaitButton) || !strings.Contains(n[0], "forced off after 1h0m0s") {
		t.Errorf("notes %q, want one that starts %q and names the timeout", n, noteWaitButton)
	}
	for _, ev := range evs {
		if ev.Note != "" && ev.State != StateStopping {
			t.Errorf("note %q in state %s", ev.Note, ev.State)
		}
	}
	waitNICClosed(t, vt.nic)
}

// A stop while the VM starts waits (with a note) until the guest can be
// asked, then asks it.
func TestVZStopWhileStartingAsksOnceRunning(t *testing.T) {
	f := newFakeVZ()
	f.startGate = make(chan struct{})
	f.answerOn = 1
	vt := newVZTest(t, f)
	started := startAsync(vt.v)
	testwait.For(t, "the framework to start", func() bool { return f.State() == vzStarting })
	stopped := stopAsync(vt.v, time.Hour)
	testwait.For(t, "the note about the start", func() bool { return vt.v.m.getNote() == noteWaitVZStart })
	// It checks every vzAskPoll whether the guest can be asked.
	vt.waitTimers(t, vzAskPoll, time.Hour)
	vt.clock.Advance(vzAskPoll)
	vt.waitTimers(t, vzAskPoll, time.Hour-vzAskPoll)
	if _, requests, _ := f.counts(); requests != 0 {
		t.Fatalf("the guest was asked %d times while the VM started", requests)
	}
	vt.gate()
	if err := recvErr(t, started, "Start"); err != nil {
		t.Fatal(err)
	}
	// Running now, but the guest is asked at the next check only.
	if _, requests, _ := f.counts(); requests != 0 {
		t.Fatalf("the guest was asked %d times before the next check", requests)
	}
	vt.clock.Advance(vzAskPoll)
	if err := recvErr(t, stopped, "Stop"); err != nil {
		t.Fatal(err)
	}
	evs := awaitDone(t, vt.v, 10*time.Second)
	if got := states(evs); !slices.Equal(got, []State{StateStarting, StateStopping, StateStopped}) {
		t.Errorf("events %v", got)
	}
	if got := notes(evs); !slices.Equal(got, []string{noteWaitVZStart}) {
		t.Errorf("notes %q", got)
	}
	if _, requests, stops := f.counts(); requests != 1 || stops != 0 {
		t.Errorf("%d requests and %d forced stops, want 1 and 0", requests, stops)
	}
}

// A guest that never answers is forced off at the timeout.
func TestVZForcedStop(t *testing.T) {
	f := newFakeVZ()
	vt := newVZTest(t, f)
	if err := vt.v.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitState(t, vt.v, StateRunning)
	stopped := stopAsync(vt.v, 20*time.Millisecond)
	vt.waitTimers(t, 20*time.Millisecond, vzAskRepeat)
	vt.clock.Advance(20*time.Millisecond - 1)
	vt.waitTimers(t, 1, vzAskRepeat-20*time.Millisecond+1)
	if _, _, stops := f.counts(); stops != 0 {
		t.Fatalf("forced off %d times before the timeout", stops)
	}
	vt.clock.Advance(1)
	if err := recvErr(t, stopped, "Stop"); err != nil {
		t.Fatal(err)
	}
	evs := awaitDone(t, vt.v, 10*time.Second)
	vt.waitTimers(t) // the stopper released its timers
	if got := vt.elapsed(); got != 20*time.Millisecond {
		t.Errorf("forced off after %v, want the timeout 20ms", got)
	}
	if got := states(evs); !slices.Equal(got, []State{StateStarting, StateRunning, StateStopping, StateStopped}) {
		t.Errorf("events %v", got)
	}
	if _, requests, stops := f.counts(); requests != 1 || stops != 1 {
		t.Errorf("%d requests and %d forced stops, want 1 and 1", requests, stops)
	}
	if f.State() != vzStopped {
		t.Errorf("the framework's VM is %s", f.State())
	}
}

// A forced stop the framework refuses is tried again, and the NIC stays
// open until the framework reports the VM stopped.
func TestVZForcedStopRetries(t *testing.T) {
	f := newFakeVZ()
	f.failStops(errors.New("busy"), errors.New("still busy"))
	vt := newVZTest(t, f)
	if err := vt.v.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitState(t, vt.v, StateRunning)
	stopped := stopAsync(vt.v, 10*time.Millisecond)
	vt.waitTimers(t, 10*time.Millisecond, vzAskRepeat)
	vt.clock.Advance(10 * time.Millisecond)
	// The first retry is at once: a state change (running) is pending
	// from before the stop, and the framework says it can stop. The
	// second waits for the poll.
	testwait.For(t, "the second forced stop", func() bool { _, _, stops := f.counts(); return stops == 2 })
	vt.waitTimers(t, vzForcePoll)
	vt.clock.Advance(vzForcePoll - 1)
	vt.waitTimers(t, 1)
	if _, _, stops := f.counts(); stops != 2 {
		t.Fatalf("%d forced stops before the poll, want 2", stops)
	}
	vt.clock.Advance(1)
	if err := recvErr(t, stopped, "Stop"); err != nil {
		t.Fatal(err)
	}
	evs := awaitDone(t, vt.v, 10*time.Second)
	vt.waitTimers(t) // the forced stop released its poll
	if got := states(evs); !slices.Equal(got, []State{StateStarting, StateRunning, StateStopping, StateStopped}) {
		t.Errorf("events %v", got)
	}
	if _, _, stops := f.counts(); stops != 3 {
		t.Errorf("%d forced stops, want 3", stops)
	}
	if n := notes(evs); len(n) == 0 || !strings.HasPrefix(n[len(n)-1], noteForceRetry) || !strings.Contains(n[len(n)-1], "busy") {
		t.Errorf("notes %q, want the last one to start %q and give the reason", n, noteForceRetry)
	}
}

// A VM still starting when the forced stop fails is stopped again as soon
// as the framework reports a new state, until it has stopped: no guest is
// left running, and until then the VM is stopping (not ended) with its NIC
// open.
func TestVZForcedStopWhileStarting(t *testing.T) {
	f := newFakeVZ()
	f.startGate = make(chan struct{})
	vt := newVZTest(t, f)
	started := startAsync(vt.v)
	testwait.For(t, "the framework to start", func() bool { return f.State() == vzStarting })
	stopped := stopAsync(vt.v, 5*time.Millisecond)
	vt.waitTimers(t, 5*time.Millisecond, vzAskPoll)
	vt.clock.Advance(5 * time.Millisecond)
	testwait.For(t, "the forced stop to fail", func() bool { return strings.HasPrefix(vt.v.m.getNote(), noteForceRetry) })
	// The clock stays: only the framework's state change may wake the
	// retry.
	vt.waitTimers(t, vzForcePoll)
	if st, err := vt.v.State(); st != StateStopping {
		t.Fatalf("state %s (%v) while the framework's VM is still starting, want stopping", st, err)
	}
	select {
	case <-vt.v.Done():
		t.Fatal("the VM ended while the framework's VM is still starting")
	default:
	}
	if isClosed(vt.nic) {
		t.Fatal("the NIC was closed while the framework may use it")
	}
	vt.gate() // the framework's VM is running now
	if err := recvErr(t, started, "Start"); err != nil {
		t.Fatal(err)
	}
	if err := recvErr(t, stopped, "Stop"); err != nil {
		t.Fatal(err)
	}
	evs := awaitDone(t, vt.v, 10*time.Second)
	if got := states(evs); !slices.Equal(got, []State{StateStarting, StateStopping, StateStopped}) {
		t.Errorf("events %v", got)
	}
	if f.State() != vzStopped {
		t.Errorf("the framework's VM is %s: a guest was left behind", f.State())
	}
	if _, _, stops := f.counts(); stops != 2 {
		t.Errorf("%d forced stops, want 2", stops)
	}
	waitNICClosed(t, vt.nic)
}

// A VM whose forced stop failed while it started ends in error when the
// framework reports one.
func TestVZForcedStopRetryEndsInError(t *testing.T) {
	f := newFakeVZ()
	f.startGate = make(chan struct{})
	f.startErr, f.startFailState = errors.New("boot failed"), vzError
	vt := newVZTest(t, f)
	started := startAsync(vt.v)
	testwait.For(t, "the framework to start", func() bool { return f.State() == vzStarting })
	stopped := stopAsync(vt.v, time.Millisecond)
	vt.waitTimers(t, time.Millisecond, vzAskPoll)
	vt.clock.Advance(time.Millisecond)
	testwait.For(t, "the forced stop to fail", func() bool { return strings.HasPrefix(vt.v.m.getNote(), noteForceRetry) })
	vt.gate()
	if err := recvErr(t, started, "Start"); err == nil || !strings.Contains(err.Error(), "boot failed") {
		t.Errorf("Start: %v", err)
	}
	if err := recvErr(t, stopped, "Stop"); err != nil {
		t.Fatal(err)
	}
	awaitDone(t, vt.v, 10*time.Second)
	if st, err := vt.v.State(); st != StateError || err == nil || !strings.Contains(err.Error(), "boot failed") {
		t.Errorf("state %s, %v", st, err)
	}
	waitNICClosed(t, vt.nic)
}

// A forced stop the framework carries out while the VM starts makes its
// Start fail: that is a stop, not an error.
func TestVZForcedStopDuringFrameworkStart(t *testing.T) {
	f := newFakeVZ()
	f.startGate = make(chan struct{})
	f.stopWhileStarting = true
	vt := newVZTest(t, f)
	started := startAsync(vt.v)
	testwait.For(t, "the framework to start", func() bool { return f.State() == vzStarting })
	stopped := stopAsync(vt.v, time.Millisecond)
	vt.waitTimers(t, time.Millisecond, vzAskPoll)
	vt.clock.Advance(time.Millisecond)
	testwait.For(t, "the forced stop", func() bool { return f.State() == vzStopped })
	vt.gate()
	if err := recvErr(t, started, "Start"); err != nil {
		t.Errorf("Start: %v", err)
	}
	if err := recvErr(t, stopped, "Stop"); err != nil {
		t.Fatal(err)
	}
	evs := awaitDone(t, vt.v, 10*time.Second)
	if got := states(evs); !slices.Equal(got, []State{StateStarting, StateStopping, StateStopped}) {
		t.Errorf("events %v", got)
	}
}

// On a macOS without a forced stop the VM ends in error at once, saying
// what is needed.
func TestVZForcedStopUnsupported(t *testing.T) {
	f := newFakeVZ()
	f.failStops(fmt.Errorf("%w: %w", errMacOSTooOld, errors.New("unsupported macOS version")))
	vt := newVZTest(t, f)
	if err := vt.v.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitState(t, vt.v, StateRunning)
	stopped := stopAsync(vt.v, time.Millisecond)
	vt.waitTimers(t, time.Millisecond, vzAskRepeat)
	vt.clock.Advance(time.Millisecond)
	if err := recvErr(t, stopped, "Stop"); err != nil {
		t.Fatal(err)
	}
	st, err := vt.v.State()
	if st != StateError || err == nil || !strings.Contains(err.Error(), "forcing the VM off: vmnetbar needs macOS 13 or later and this Mac runs macOS 14.5") {
		t.Errorf("state %s, %v", st, err)
	}
	if _, _, stops := f.counts(); stops != 1 {
		t.Errorf("%d forced stops, want 1", stops)
	}
	if isClosed(vt.nic) {
		t.Error("the NIC was closed while the framework's VM may still run")
	}
	f.setState(vzStopped)
	waitNICClosed(t, vt.nic)
}

// Stops, states and events from many goroutines at once (run with -race).
func TestVZConcurrentStops(t *testing.T) {
	f := newFakeVZ()
	f.answerOn = 2
	vt := newVZTest(t, f)
	if err := vt.v.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if i%2 == 0 {
				vt.v.State()
			}
			errs <- vt.v.Stop(ctx, time.Hour)
		}()
	}
	// One stop: asked once, the second request (answered) after
	// vzAskRepeat.
	vt.waitTimers(t, vzAskRepeat, time.Hour)
	vt.clock.Advance(vzAskRepeat)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	awaitDone(t, vt.v, 10*time.Second)
	if st, _ := vt.v.State(); st != StateStopped {
		t.Errorf("state %s", st)
	}
	if _, requests, stops := f.counts(); requests != 2 || stops != 0 {
		t.Errorf("%d requests and %d forced stops, want 2 and 0", requests, stops)
	}
}

// newVZ checks in order: the logger, the macOS version, the configuration;
// only then does it create the console log and build the framework's VM.
func TestNewVZValidationOrder(t *testing.T) {
	built := 0
	build := func(vzSpec) (vzMachine, error) { built++; return newFakeVZ(), nil }
	h := vzHost{limits: testLimits, build: build, fw: newFakeFirmware()}
	h.limits.macOS = "13.0"
	cfg := validConfig(t)

	if _, err := newVZ(cfg, nil, h); err == nil || !strings.Contains(err.Error(), "logger") {
		t.Errorf("no logger: %v", err)
	}
	old := h
	old.limits.macOS = "12.7.4"
	bad := cfg
	bad.CPUs = 99
	if _, err := newVZ(bad, discardLogger(), old); err == nil || !strings.HasPrefix(err.Error(), "vmnetbar needs macOS 13 or later and this Mac runs macOS 12.7.4") || strings.Contains(err.Error(), "CPUs is") {
		t.Errorf("macOS 12: %v (want the version alone)", err)
	}
	// Check (at launch) says so too, with the rest.
	if err := bad.check(old.limits); err == nil || !strings.Contains(err.Error(), "vmnetbar needs macOS 13 or later") || !strings.Contains(err.Error(), "CPUs is 99") {
		t.Errorf("Check on macOS 12: %v", err)
	}
	if _, err := newVZ(bad, discardLogger(), h); err == nil || !strings.Contains(err.Error(), "invalid VM configuration") || !strings.Contains(err.Error(), "CPUs is 99") {
		t.Errorf("bad config: %v", err)
	}
	if built != 0 {
		t.Fatalf("the framework's VM was built %d times for a refused configuration", built)
	}
	if _, err := os.Stat(cfg.ConsoleLog); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the console log was created for a refused configuration (%v)", err)
	}

	h.build = func(s vzSpec) (vzMachine, error) {
		c := s.Config
		if _, err := os.Stat(c.ConsoleLog); err != nil {
			t.Errorf("the console log does not exist when the framework attaches it: %v", err)
		}
		if c.CPUs != 2 || c.MTU != DefaultMTU || c.Cmdline != DefaultCmdline || c.StopTimeout != DefaultStopTimeout {
			t.Errorf("defaults not applied: %+v", c)
		}
		return nil, errors.New("the framework said no")
	}
	if _, err := newVZ(cfg, discardLogger(), h); err == nil || err.Error() != "the framework said no" {
		t.Errorf("build error: %v", err)
	}

	fresh := cfg
	fresh.ConsoleLog = filepath.Join(t.TempDir(), "console.log")
	h.build = build
	if _, err := newVZ(fresh, discardLogger(), h); err != nil {
		t.Fatal(err)
	}
	if built != 1 {
		t.Errorf("built %d times", built)
	}
}

func TestVZLimits(t *testing.T) {
	l := vzLimits(limits{minCPUs: 1, maxCPUs: 8, minMemory: MinMemory, maxMemory: 16 * GiB, minMTU: MinMTU, maxMTU: MaxMTU},
		2, 4, 128*MiB, 8*GiB)
	if l.minCPUs != 2 || l.maxCPUs != 4 || l.minMemory != 128*MiB || l.maxMemory != 8*GiB || l.minMTU != 1500 || l.maxMTU != MaxMTU {
		t.Errorf("narrowed: %+v", l)
	}
	l = vzLimits(limits{minCPUs: 1, maxCPUs: 2, minMemory: MinMemory, minMTU: MinMTU, maxMTU: MaxMTU}, 1, 64, 1*MiB, 64*GiB)
	if l.minCPUs != 1 || l.maxCPUs != 2 || l.minMemory != MinMemory || l.maxMemory != 64*GiB {
		t.Errorf("unknown host memory: %+v", l)
	}
	c := Config{Kernel: "/nonexistent", MAC: net.HardwareAddr{0x52, 0x54, 0, 1, 2, 3}, MTU: 1400}
	if err := c.check(l); err == nil || !strings.Contains(err.Error(), "MTU is 1400: it must be between 1500 and 65517 (1500 is the smallest the Virtualization framework takes)") {
		t.Errorf("MTU 1400: %v", err)
	}
}

func TestVZStateNames(t *testing.T) {
	for s, want := range map[vzState]string{vzStopped: "stopped", vzRestoring: "restoring", vzStarting: "starting", vzState(-1): "vzState(-1)", vzState(10): "vzState(10)"} {
		if got := s.String(); got != want {
			t.Errorf("%d: %q, want %q", int(s), got, want)
		}
	}
}

// A Stop with a shorter timeout while a stop waits for a guest that never
// answers (the controller's CloseWithin after a Quit) forces the VM off at
// the shorter deadline, and both Stop calls return.
func TestVZSecondStopShortensTheWait(t *testing.T) {
	f := newFakeVZ() // the guest never answers
	vt := newVZTest(t, f)
	t.Cleanup(func() {
		// Should the stop keep its hour, the test fails without
		// waiting for it (this runs before newVZTest's cleanup).
		if f.State() != vzStopped {
			f.setState(vzStopped)
		}
	})
	if err := vt.v.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitState(t, vt.v, StateRunning)
	first := stopAsync(vt.v, time.Hour)
	vt.waitTimers(t, vzAskRepeat, time.Hour)
	vt.clock.Advance(vzAskRepeat)
	testwait.For(t, "the stop to wait with the hour", func() bool {
		return strings.Contains(vt.v.m.getNote(), "forced off after 1h0m0s")
	})
	vt.waitTimers(t, vzAskRepeat, time.Hour-vzAskRepeat)
	second := stopAsync(vt.v, 200*time.Millisecond)
	// The deadline moves to 200ms from now; the repeat keeps its time.
	vt.waitTimers(t, 200*time.Millisecond, vzAskRepeat)
	vt.clock.Advance(200*time.Millisecond - 1)
	vt.waitTimers(t, 1, vzAskRepeat-200*time.Millisecond+1)
	if _, _, stops := f.counts(); stops != 0 {
		t.Fatalf("forced off %d times before the second timeout", stops)
	}
	vt.clock.Advance(1)
	evs := awaitDone(t, vt.v, 5*time.Second)
	if got := vt.elapsed(); got != vzAskRepeat+200*time.Millisecond {
		t.Errorf("forced off %v after the first stop, want %v (the second stop's 200ms after it)", got, vzAskRepeat+200*time.Millisecond)
	}
	if err := recvErr(t, first, "the first Stop"); err != nil {
		t.Error(err)
	}
	if err := recvErr(t, second, "the second Stop"); err != nil {
		t.Error(err)
	}
	if got := states(evs); !slices.Equal(got, []State{StateStarting, StateRunning, StateStopping, StateStopped}) {
		t.Errorf("events %v", got)
	}
	if _, _, stops := f.counts(); stops != 1 {
		t.Errorf("%d forced stops, want 1", stops)
	}
	if f.State() != vzStopped {
		t.Errorf("the framework's VM is %s", f.State())
	}
}
