package tray

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/vmnetbar/vmnetbar/app/control"
	"github.com/vmnetbar/vmnetbar/app/controller"
	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/internal/testwait"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

// exitFake is a controller for the stop paths: StopVM leaves the VM
// stopping until finish is called (or its ctx ends), as a guest that takes
// its time to power off.
type exitFake struct {
	mu        sync.Mutex
	state     vmhost.State
	stopCalls int
	subs      map[chan control.Status]bool
	stopped   chan struct{} // closed by finish
	once      sync.Once
}

func newExitFake(s vmhost.State) *exitFake {
	return &exitFake{state: s, subs: map[chan control.Status]bool{}, stopped: make(chan struct{})}
}

func (f *exitFake) setState(s vmhost.State) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state = s
	vm := &control.VMStatus{State: s}
	st := control.Status{VM: vm, Actions: model.Allowed(vm, 0)}
	for ch := range f.subs {
		select {
		case <-ch:
		default:
		}
		ch <- st
	}
}

// finish makes the stopping VM stopped.
func (f *exitFake) finish() {
	f.once.Do(func() {
		f.setState(vmhost.StateStopped)
		close(f.stopped)
	})
}

func (f *exitFake) Status() control.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	vm := &control.VMStatus{State: f.state}
	return control.Status{VM: vm, Actions: model.Allowed(vm, 0)}
}

func (f *exitFake) subscribers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}

func (f *exitFake) Subscribe() (<-chan control.Status, func()) {
	ch := make(chan control.Status, 1)
	f.mu.Lock()
	f.subs[ch] = true
	f.mu.Unlock()
	return ch, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.subs[ch] {
			delete(f.subs, ch)
			close(ch)
		}
	}
}

func (f *exitFake) Reconnect() error                  { return nil }
func (f *exitFake) StartVM(ctx context.Context) error { return nil }

func (f *exitFake) StopVM(ctx context.Context) error {
	f.mu.Lock()
	f.stopCalls++
	f.mu.Unlock()
	f.setState(vmhost.StateStopping)
	select {
	case <-f.stopped:
		return nil
	case <-ctx.Done():
		return ctx.Err() // the VM goes on stopping
	}
}

func (f *exitFake) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stopCalls
}

// closingFake also has Close, as the app's controller does.
type closingFake struct {
	*exitFake
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

// TestSystemExitStopsRunningVM: the system ends the app with the VM
// running: the VM is stopped and systemExit returns once it has stopped.
func TestSystemExitStopsRunningVM(t *testing.T) {
	f := newExitFake(vmhost.StateRunning)
	tr := newTray(context.Background(), f, Options{})
	done := systemExitAsync(tr)
	testwait.For(t, "StopVM", func() bool { return f.calls() == 1 })
	if returned(done) {
		t.Fatal("systemExit returned while the VM was stopping")
	}
	f.finish()
	testwait.For(t, "systemExit to return", func() bool { return returned(done) })
}

// TestSystemExitWaitsForStoppingVM: a VM already stopping (a Stop VM click
// before) is waited for, not left to die with the process.
func TestSystemExitWaitsForStoppingVM(t *testing.T) {
	f := newExitFake(vmhost.StateStopping)
	tr := newTray(context.Background(), f, Options{})
	done := systemExitAsync(tr)
	testwait.For(t, "systemExit to watch the VM", func() bool { return f.subscribers() == 1 })
	if returned(done) {
		t.Fatal("systemExit returned while the VM was stopping")
	}
	f.finish()
	testwait.For(t, "systemExit to return", func() bool { return returned(done) })
	if n := f.calls(); n != 0 {
		t.Errorf("StopVM called %d times for a VM already stopping", n)
	}
}

// TestSystemExitBounded: without Close, a VM that never stops holds the
// exit only for exitTimeout.
func TestSystemExitBounded(t *testing.T) {
	f := newExitFake(vmhost.StateRunning)
	tr := newTray(context.Background(), f, Options{})
	tr.exitTimeout = 50 * time.Millisecond
	done := systemExitAsync(tr)
	testwait.For(t, "systemExit to give up", func() bool { return returned(done) })
	if f.Status().VM.State != vmhost.StateStopping {
		t.Fatalf("VM %v, want still stopping", f.Status().VM.State)
	}
}

// TestSystemExitIdle: nothing to stop.
func TestSystemExitIdle(t *testing.T) {
	f := newExitFake(vmhost.StateStopped)
	newTray(context.Background(), f, Options{}).systemExit()
	if n := f.calls(); n != 0 {
		t.Errorf("StopVM called %d times for a stopped VM", n)
	}
}

// TestSystemExitCloses: a controller with Close is closed (it stops the VM
// and forces it off at its stop timeout) instead of a bounded StopVM.
func TestSystemExitCloses(t *testing.T) {
	f := &closingFake{exitFake: newExitFake(vmhost.StateRunning), closed: make(chan struct{})}
	newTray(context.Background(), f, Options{}).systemExit()
	if !returned(f.closed) {
		t.Fatal("Close was not called")
	}
	if n := f.calls(); n != 0 {
		t.Errorf("StopVM called %d times, want Close only", n)
	}
}

// TestSystemExitWithinLogoutTimeout: the system ending the app (logout)
// closes a GraceCloser within the logout stop timeout (default 5s), not
// the VM's full stop timeout; Close is not called on its own.
func TestSystemExitWithinLogoutTimeout(t *testing.T) {
	for _, tt := range []struct {
		opt, want time.Duration
	}{
		{0, 5 * time.Second},
		{20 * time.Second, 20 * time.Second},
	} {
		f := &graceFake{closingFake: &closingFake{exitFake: newExitFake(vmhost.StateRunning), closed: make(chan struct{})}}
		newTray(context.Background(), f, Options{LogoutStopTimeout: tt.opt}).systemExit()
		f.mu.Lock()
		got := f.grace
		f.mu.Unlock()
		if len(got) != 1 || got[0] != tt.want {
			t.Errorf("LogoutStopTimeout %v: CloseWithin called with %v, want [%v]", tt.opt, got, tt.want)
		}
		if n := f.calls(); n != 0 {
			t.Errorf("StopVM called %d times, want CloseWithin only", n)
		}
	}
}

// TestQuitClosesWithFullStopTimeout: Quit closes a controller that can
// close (so it refuses new actions while the app quits), with the VM's full
// stop timeout: not the shorter logout bound.
func TestQuitClosesWithFullStopTimeout(t *testing.T) {
	f := &graceFake{closingFake: &closingFake{exitFake: newExitFake(vmhost.StateRunning), closed: make(chan struct{})}}
	tr := newTray(context.Background(), f, Options{})
	tr.loops.Add(1)
	go tr.quit()
	if err := <-tr.quitResult; err != nil {
		t.Fatal(err)
	}
	tr.loops.Wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.grace) != 0 || !returned(f.closed) || f.calls() != 0 {
		t.Fatalf("Quit: CloseWithin %v, closed %v, StopVM calls %d; want Close only", f.grace, returned(f.closed), f.calls())
	}
}

// The app's controller is a GraceCloser.
var _ GraceCloser = (*controller.Controller)(nil)
