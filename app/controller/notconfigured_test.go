package controller

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/internal/testwait"
	"github.com/vmnetbar/vmnetbar/netlink"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

// A first launch: the configuration names no VM yet. The controller comes
// up not configured, a start answers 409 saying which file to edit and
// leaves the VM stopped (never starting), and once the file names a kernel
// the next start boots the VM, without a new controller.
func TestNotConfigured(t *testing.T) {
	var mu sync.Mutex
	kernel, reloadErr := "", error(nil)
	h := newHarness(t, nil, func(o *MachineOptions) {
		o.VMConfig = vmhost.Config{}
		o.ConfigFile = "/home/u/.config/vmnetbar/config.yaml"
		o.Reload = func() (vmhost.Config, netlink.Config, error) {
			mu.Lock()
			defer mu.Unlock()
			if reloadErr != nil {
				return vmhost.Config{}, netlink.Config{}, reloadErr
			}
			return vmhost.Config{Kernel: kernel, StopTimeout: time.Second}, netlink.Config{Socket: "/d.sock"}, nil
		}
	})
	const msg = "no VM configured: edit /home/u/.config/vmnetbar/config.yaml (vm.image), then start"
	check := func(when string, want bool) {
		t.Helper()
		vm := h.c.Status().VM
		if vm.NotConfigured != want {
			t.Fatalf("%s: NotConfigured %v, want %v (%+v)", when, vm.NotConfigured, want, vm)
		}
		if want && (vm.State != vmhost.StateStopped || vm.Note != msg || vm.Error != "") {
			t.Fatalf("%s: status %+v, want stopped with the note %q", when, vm, msg)
		}
		if !want && vm.Note == msg {
			t.Fatalf("%s: note %q", when, vm.Note)
		}
	}
	check("at first", true)

	sub, cancel := h.c.Subscribe()
	defer cancel()
	err := h.c.StartVM(context.Background())
	var ce *ConflictError
	if !errors.As(err, &ce) || ce.ErrorKind() != model.KindConflict || ce.Error() != msg {
		t.Fatalf("start without a VM: %v, want a 409 %q", err, msg)
	}
	if n := len(h.f.vms); n != 0 {
		t.Fatalf("%d VMs built without a kernel", n)
	}
	check("after a start", true)
	select {
	case st := <-sub:
		t.Fatalf("a start without a VM changed the status: %+v", st.VM)
	default:
	}

	// A broken file while editing: the error shows, not "not configured".
	mu.Lock()
	reloadErr = errors.New("config.yaml: line 3: did not find expected key")
	mu.Unlock()
	h.do(step{do: "start", code: -1, state: vmhost.StateError, errText: "line 3"})
	check("after a broken file", false)

	mu.Lock()
	kernel, reloadErr = "/k", nil
	mu.Unlock()
	h.do(step{do: "start", state: vmhost.StateStarting})
	check("after the kernel was set", false)
	if vm := h.f.vm(); vm == nil || vm.cfg.Kernel != "/k" {
		t.Fatalf("VM %+v, want one with the reloaded kernel", vm)
	}
	h.do(step{do: "run", state: vmhost.StateRunning})
	h.do(step{do: "stop", state: vmhost.StateStopped})

	// The kernel removed again, after a failed run: not configured again.
	mu.Lock()
	kernel = ""
	mu.Unlock()
	h.do(step{do: "start", code: 409, state: vmhost.StateStopped})
	check("after the kernel was removed", true)
}

func TestNewWithoutKernel(t *testing.T) {
	if _, err := NewMachine(MachineOptions{}); err == nil || !strings.Contains(err.Error(), "Kernel") {
		t.Fatalf("New without a kernel or Reload: %v", err)
	}
	c, err := NewMachine(MachineOptions{Reload: func() (vmhost.Config, netlink.Config, error) { return vmhost.Config{}, netlink.Config{}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if vm := c.Status().VM; !vm.NotConfigured || vm.Note != "no VM configured: set vm.image in the configuration file, then start" {
		t.Fatalf("status %+v", vm)
	}
}

// CloseWithin (the system ends the app) bounds the graceful stop by its
// grace, but never beyond the stop timeout; Close keeps the stop timeout.
func TestCloseWithinBoundsGracefulStop(t *testing.T) {
	for _, tt := range []struct {
		name  string
		close func(*Machine) error
		want  time.Duration
	}{
		{"Close", (*Machine).Close, 30 * time.Second},
		{"CloseWithin 5s", func(c *Machine) error { return c.CloseWithin(5 * time.Second) }, 5 * time.Second},
		{"CloseWithin longer than the stop timeout", func(c *Machine) error { return c.CloseWithin(time.Hour) }, 30 * time.Second},
		{"CloseWithin 0", func(c *Machine) error { return c.CloseWithin(0) }, 30 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil, func(o *MachineOptions) { o.VMConfig.StopTimeout = 30 * time.Second })
			h.do(step{do: "start"})
			h.do(step{do: "run", state: vmhost.StateRunning})
			if err := tt.close(h.c); err != nil {
				t.Fatal(err)
			}
			if got := h.f.vm().stopTimeouts(); !reflect.DeepEqual(got, []time.Duration{tt.want}) {
				t.Fatalf("Stop timeouts %v, want [%v]", got, tt.want)
			}
			if st := h.c.Status().VM.State; st != vmhost.StateStopped {
				t.Fatalf("VM %s after closing", st)
			}
		})
	}
}

// A stop already under way with the full stop timeout (the menu's Stop VM
// or Quit, whose StopVM holds the action slot until the VM has ended) is
// asked again with the grace when the system ends the app: the logout is
// not held up for the stop timeout.
func TestCloseWithinHastensStopUnderWay(t *testing.T) {
	h := newHarness(t, &factory{deafGuest: true}, func(o *MachineOptions) { o.VMConfig.StopTimeout = time.Hour })
	h.do(step{do: "start"})
	h.do(step{do: "run", state: vmhost.StateRunning})
	stopped := make(chan error, 1)
	go func() { stopped <- h.c.StopVM(context.Background()) }()
	h.waitState(vmhost.StateStopping)
	vm := h.f.vm()
	testwait.Within(t, waitFor, "StopVM to stop the VM", func() bool { return len(vm.stopTimeouts()) > 0 })

	closed := make(chan error, 1)
	go func() { closed <- h.c.CloseWithin(20 * time.Millisecond) }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitFor):
		got := vm.stopTimeouts()
		vm.set(vmhost.StateStopped, nil) // let StopVM and the cleanup's Close end
		t.Fatalf("CloseWithin waited for the full stop timeout (Stop timeouts %v)", got)
	}
	if got := vm.stopTimeouts(); len(got) < 2 || got[0] != time.Hour || got[1] != 20*time.Millisecond {
		t.Fatalf("Stop timeouts %v, want [1h 20ms ...]", got)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("StopVM: %v", err)
	}
	if st := h.c.Status().VM.State; st != vmhost.StateStopped {
		t.Fatalf("VM %s", st)
	}
}

// TestCloseWithinHastensCloseUnderWay: the system ending the app while the
// menu's Quit closes the controller (full stop timeout) still bounds the
// stop by the grace; actions meanwhile fail at once.
func TestCloseWithinHastensCloseUnderWay(t *testing.T) {
	h := newHarness(t, &factory{deafGuest: true}, func(o *MachineOptions) { o.VMConfig.StopTimeout = time.Hour })
	h.do(step{do: "start"})
	h.do(step{do: "run", state: vmhost.StateRunning})
	quit := make(chan error, 1)
	go func() { quit <- h.c.Close() }()
	h.waitState(vmhost.StateStopping)
	vm := h.f.vm()
	testwait.For(t, "Close to stop the VM", func() bool { return len(vm.stopTimeouts()) > 0 })
	if err := h.c.StartVM(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("start while quitting: %v, want ErrClosed", err)
	}
	closed := make(chan error, 1)
	go func() { closed <- h.c.CloseWithin(20 * time.Millisecond) }()
	select {
	case <-closed:
	case <-time.After(waitFor):
		got := vm.stopTimeouts()
		vm.set(vmhost.StateStopped, nil)
		t.Fatalf("CloseWithin waited for the Close under way (Stop timeouts %v)", got)
	}
	if got := vm.stopTimeouts(); len(got) < 2 || got[0] != time.Hour || got[1] != 20*time.Millisecond {
		t.Fatalf("Stop timeouts %v, want [1h 20ms ...]", got)
	}
	<-quit
}
