package tray

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/vmnetbar/vmnetbar/app/controller"
	"github.com/vmnetbar/vmnetbar/internal/testwait"
	"github.com/vmnetbar/vmnetbar/netlink"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

// newRunning returns a fake whose VMs run with their links up, and whose
// Stop leaves them stopping until Release (as a guest that takes its time
// to power off).
func newRunning(names ...string) *testMachines {
	m := newTestMachines(names...)
	for _, n := range names {
		m.setVM(n, vmhost.StateRunning, netlink.StateUp)
		m.HoldStop(n)
	}
	return m
}

// closingFake also has Close, as the app's controller does.
type closingFake struct {
	*testMachines
	closed chan struct{}
}

func (f *closingFake) Close() error {
	close(f.closed)
	return nil
}

// graceFake also has CloseWithin, as the app's controller does.
type graceFake struct {
	*closingFake
	mu    sync.Mutex
	grace []time.Duration // CloseWithin's arguments
}

func (f *graceFake) CloseWithin(grace time.Duration) error {
	f.mu.Lock()
	f.grace = append(f.grace, grace)
	f.mu.Unlock()
	return f.Close()
}

func newClosing(names ...string) *closingFake {
	return &closingFake{testMachines: newRunning(names...), closed: make(chan struct{})}
}

// systemExitAsync runs systemExit in a goroutine and returns a channel
// closed when it returns.
func systemExitAsync(tr *tray) chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		tr.systemExit()
	}()
	return done
}

func returned(done chan struct{}) bool {
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// TestSystemExitStopsRunningVMs: the system ends the app with VMs
// running: every VM is stopped and systemExit returns once all have
// stopped.
func TestSystemExitStopsRunningVMs(t *testing.T) {
	f := newRunning("build", "dev")
	tr := newTray(context.Background(), f, Options{})
	done := systemExitAsync(tr)
	testwait.For(t, "Stop all", func() bool { return f.called("stopall") })
	testwait.For(t, "both VMs stopping", func() bool { return activeVMs(f.Status()) == 2 && !anyRuns(f.Status()) })
	f.Release("dev")
	if returned(done) {
		t.Fatal("systemExit returned while a VM was stopping")
	}
	f.Release("build")
	testwait.For(t, "systemExit to return", func() bool { return returned(done) })
}

// TestSystemExitWaitsForStoppingVM: a VM already stopping (a Stop VM click
// before) is waited for, not left to die with the process.
func TestSystemExitWaitsForStoppingVM(t *testing.T) {
	f := newRunning("default")
	if err := f.Machines.Stop(context.Background(), "default"); err != nil {
		t.Fatal(err)
	}
	tr := newTray(context.Background(), f, Options{})
	done := systemExitAsync(tr)
	testwait.For(t, "systemExit to watch the VM", func() bool { return f.Subscribers() == 1 })
	if returned(done) {
		t.Fatal("systemExit returned while the VM was stopping")
	}
	f.Release("default")
	testwait.For(t, "systemExit to return", func() bool { return returned(done) })
	if calls := f.Calls(); len(calls) != 0 {
		t.Errorf("calls %q for a VM already stopping, want none", calls)
	}
}

// TestSystemExitBounded: without Close, a VM that never stops holds the
// exit only for exitTimeout.
func TestSystemExitBounded(t *testing.T) {
	f := newRunning("default")
	tr := newTray(context.Background(), f, Options{})
	tr.exitTimeout = 50 * time.Millisecond
	done := systemExitAsync(tr)
	testwait.For(t, "systemExit to give up", func() bool { return returned(done) })
	if s := f.Status().VMs[0].VM.State; s != vmhost.StateStopping {
		t.Fatalf("VM %v, want still stopping", s)
	}
}

// TestSystemExitIdle: nothing to stop.
func TestSystemExitIdle(t *testing.T) {
	f := newTestMachines("default", "dev")
	newTray(context.Background(), f, Options{}).systemExit()
	if calls := f.Calls(); len(calls) != 0 {
		t.Errorf("calls %q for stopped VMs, want none", calls)
	}
}

// TestSystemExitCloses: a controller with Close is closed (it stops every
// VM and forces them off at their stop timeout) instead of a bounded Stop
// all.
func TestSystemExitCloses(t *testing.T) {
	f := newClosing("default")
	newTray(context.Background(), f, Options{}).systemExit()
	if !returned(f.closed) {
		t.Fatal("Close was not called")
	}
	if calls := f.Calls(); len(calls) != 0 {
		t.Errorf("calls %q, want Close only", calls)
	}
}

// TestSystemExitWithinLogoutTimeout: the system ending the app (logout)
// closes a GraceCloser within the logout stop timeout (default 5s), not
// the VMs' full stop timeout; Close is not called on its own.
func TestSystemExitWithinLogoutTimeout(t *testing.T) {
	for _, tt := range []struct {
		opt, want time.Duration
	}{
		{0, 5 * time.Second},
		{20 * time.Second, 20 * time.Second},
	} {
		f := &graceFake{closingFake: newClosing("default")}
		newTray(context.Background(), f, Options{LogoutStopTimeout: tt.opt}).systemExit()
		f.mu.Lock()
		got := f.grace
		f.mu.Unlock()
		if len(got) != 1 || got[0] != tt.want {
			t.Errorf("LogoutStopTimeout %v: CloseWithin called with %v, want [%v]", tt.opt, got, tt.want)
		}
		if calls := f.Calls(); len(calls) != 0 {
			t.Errorf("calls %q, want CloseWithin only", calls)
		}
	}
}

// TestQuitClosesWithFullStopTimeout: Quit closes a controller that can
// close (so it refuses new actions while the app quits), with the VMs' full
// stop timeout: not the shorter logout bound.
func TestQuitClosesWithFullStopTimeout(t *testing.T) {
	f := &graceFake{closingFake: newClosing("default")}
	tr := newTray(context.Background(), f, Options{})
	tr.loops.Add(1)
	go tr.quit()
	if err := <-tr.quitResult; err != nil {
		t.Fatal(err)
	}
	tr.loops.Wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.grace) != 0 || !returned(f.closed) || len(f.Calls()) != 0 {
		t.Fatalf("Quit: CloseWithin %v, closed %v, calls %q; want Close only", f.grace, returned(f.closed), f.Calls())
	}
}

// TestQuitStopsEveryVM: without Close, Quit stops every VM with Stop all
// and ends once all have stopped.
func TestQuitStopsEveryVM(t *testing.T) {
	f := newRunning("build", "dev")
	tr := newTray(context.Background(), f, Options{})
	tr.loops.Add(1)
	go tr.quit()
	testwait.For(t, "both VMs stopping", func() bool { return f.called("stopall") && !anyRuns(f.Status()) })
	select {
	case err := <-tr.quitResult:
		t.Fatalf("Quit ended (%v) while the VMs were stopping", err)
	default:
	}
	f.Release("build")
	f.Release("dev")
	if err := <-tr.quitResult; err != nil {
		t.Fatal(err)
	}
	tr.loops.Wait()
}

// The app's controller is the tray's Controller, and a GraceCloser.
var (
	_ Controller  = (*controller.Controller)(nil)
	_ GraceCloser = (*controller.Controller)(nil)
)
