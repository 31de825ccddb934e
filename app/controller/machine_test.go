package controller

import (
	"context"
	"errors"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"go.uber.org/goleak"

	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/internal/testwait"
	"github.com/vmnetbar/vmnetbar/netlink"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const waitFor = 5 * time.Second

type harness struct {
	t *testing.T
	f *factory
	c *Machine
}

func newHarness(t *testing.T, f *factory, mod func(*MachineOptions)) *harness {
	t.Helper()
	if f == nil {
		f = &factory{}
	}
	t.Cleanup(func() {
		for _, err := range f.refusedTransitions() {
			t.Error(err)
		}
	})
	log := logrus.New()
	log.SetLevel(logrus.DebugLevel)
	log.Out = testWriter{t}
	opts := MachineOptions{
		VMConfig: vmhost.Config{Kernel: "/k", StopTimeout: time.Second},
		Link:     netlink.Config{Socket: "/nonexistent/daemon.sock"},
		NewVM:    f.newVM,
		NewLink:  f.newLink,
		Logger:   log,
	}
	if mod != nil {
		mod(&opts)
	}
	c, err := NewMachine(opts)
	if err != nil {
		t.Fatal(err)
	}
	c.linkGrace = 10 * time.Millisecond
	h := &harness{t: t, f: f, c: c}
	t.Cleanup(func() { c.Close() })
	return h
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// waitState polls until the VM state is want.
func (h *harness) waitState(want vmhost.State) {
	h.t.Helper()
	testwait.ValueWithin(h.t, waitFor, "the VM to be "+want.String(), func() model.VM { return *h.c.Status().VM },
		func(v model.VM) bool { return v.State == want })
}

// waitLink polls until the link state is want.
func (h *harness) waitLink(want netlink.State) {
	h.t.Helper()
	testwait.ValueWithin(h.t, waitFor, "the link to be "+want.String(), func() netlink.State { return h.c.Status().Link.State },
		func(s netlink.State) bool { return s == want })
}

// step is one action or event and what must follow.
type step struct {
	do      string       // start, stop, reconnect, run, poweroff, vmfail, linkfail
	code    int          // 0: no error; 409: a conflict; -1: any other error
	state   vmhost.State // VM state awaited after the step (0: not checked)
	link    netlink.State
	errText string // in the VM's error, when state is error
}

func (h *harness) do(s step) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	var err error
	switch s.do {
	case "start":
		err = h.c.StartVM(ctx)
	case "stop":
		err = h.c.StopVM(ctx)
	case "reconnect":
		err = h.c.Reconnect()
	case "run":
		h.f.vm().set(vmhost.StateRunning, nil)
	case "poweroff":
		h.f.vm().set(vmhost.StateStopped, nil)
	case "vmfail":
		h.f.vm().set(vmhost.StateError, errors.New("hypervisor crashed"))
	case "linkfail":
		h.f.link().fail <- errors.New("sendmsg: broken pipe")
	case "": // only await what follows
	default:
		h.t.Fatalf("unknown step %q", s.do)
	}
	switch {
	case s.code == 0 && err != nil:
		h.t.Fatalf("%s: %v", s.do, err)
	case s.code == 409:
		var ce *ConflictError
		if !errors.As(err, &ce) || ce.ErrorKind() != model.KindConflict || ce.Error() == "" {
			h.t.Fatalf("%s: got %v, want a conflict", s.do, err)
		}
	case s.code == -1 && err == nil:
		h.t.Fatalf("%s: no error", s.do)
	}
	if s.state != 0 {
		h.waitState(s.state)
	}
	if s.link != 0 {
		h.waitLink(s.link)
	}
	if s.errText != "" {
		if got := h.c.Status().VM.Error; !strings.Contains(got, s.errText) {
			h.t.Fatalf("after %s: VM error %q does not contain %q", s.do, got, s.errText)
		}
	}
}

func TestTransitions(t *testing.T) {
	const (
		stopped  = vmhost.StateStopped
		starting = vmhost.StateStarting
		running  = vmhost.StateRunning
		errored  = vmhost.StateError
	)
	tests := []struct {
		name  string
		steps []step
	}{
		{"start, run, stop", []step{
			{do: "start", state: starting, link: netlink.StateUp},
			{do: "run", state: running, link: netlink.StateUp},
			{do: "stop", state: stopped, link: netlink.StateStopped},
		}},
		{"start while starting or running", []step{
			{do: "start", state: starting},
			{do: "start", code: 409, state: starting},
			{do: "run", state: running},
			{do: "start", code: 409, state: running},
		}},
		{"stop while stopped", []step{
			{do: "stop", code: 409, state: stopped},
			{do: "start", state: starting},
			{do: "stop", state: stopped},
			{do: "stop", code: 409, state: stopped},
		}},
		{"stop while starting", []step{
			{do: "start", state: starting},
			{do: "stop", state: stopped, link: netlink.StateStopped},
		}},
		{"reconnect without a VM", []step{
			{do: "reconnect", code: 409},
			{do: "start", state: starting},
			{do: "reconnect"},
			{do: "run", state: running},
			{do: "reconnect"},
			{do: "stop", state: stopped},
			{do: "reconnect", code: 409},
		}},
		{"guest powers off by itself", []step{
			{do: "start"},
			{do: "run", state: running},
			{do: "poweroff", state: stopped, link: netlink.StateStopped},
			{do: "start", state: starting, link: netlink.StateUp},
		}},
		{"VM fails, then starts again", []step{
			{do: "start"},
			{do: "run", state: running},
			{do: "vmfail", state: errored, link: netlink.StateStopped, errText: "hypervisor crashed"},
			{do: "reconnect", code: 409},
			{do: "stop", code: 409},
			{do: "start", state: starting},
			{do: "run", state: running},
		}},
		{"link fails on the VM side", []step{
			{do: "start"},
			{do: "run", state: running},
			{do: "linkfail", state: errored, link: netlink.StateFailed, errText: "network link failed"},
			{do: "start", state: starting, link: netlink.StateUp},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil, nil)
			for _, s := range tt.steps {
				h.do(s)
			}
		})
	}
}

func TestStatusJoinsVMAndLink(t *testing.T) {
	now := time.Date(2026, 11, 25, 22, 30, 0, 0, time.UTC)
	h := newHarness(t, nil, func(o *MachineOptions) { o.Now = func() time.Time { return now } })
	st := h.c.Status()
	if st.VM == nil || st.VM.State != vmhost.StateStopped || !st.VM.Since.Equal(now) || st.Link.State != netlink.StateStopped {
		t.Fatalf("initial status %+v %+v", st.VM, st.Link)
	}
	h.do(step{do: "start", state: vmhost.StateStarting, link: netlink.StateUp})
	h.do(step{do: "reconnect"})
	h.do(step{do: "reconnect"})
	if got := h.c.Status().Link.Reconnects; got != 2 {
		t.Fatalf("reconnects %d, want the live link's 2", got)
	}
	h.do(step{do: "stop", state: vmhost.StateStopped})
	if got := h.c.Status().Link; got.State != netlink.StateStopped || got.Reconnects != 2 {
		t.Fatalf("after stop the link status is %+v, want the last run's", got)
	}
}

func TestRunWiring(t *testing.T) {
	h := newHarness(t, nil, func(o *MachineOptions) {
		o.VMConfig.MAC = []byte{0x52, 0x54, 0, 1, 2, 3}
		o.VMConfig.StopTimeout = 7 * time.Second
	})
	h.do(step{do: "start", state: vmhost.StateStarting})
	vm, link := h.f.vm(), h.f.link()
	if vm.cfg.NIC == nil || link.host == nil {
		t.Fatal("the VM or the link got no end of the socketpair")
	}
	// The two ends are a connected SOCK_DGRAM pair: a datagram written on
	// the VM end arrives whole on the host end.
	if _, err := vm.cfg.NIC.Write([]byte("frame")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	link.host.SetReadDeadline(time.Now().Add(waitFor))
	n, err := link.host.Read(buf)
	if err != nil || string(buf[:n]) != "frame" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	if vm.cfg.StopTimeout != 7*time.Second || vm.cfg.Kernel != "/k" || vm.cfg.MAC.String() != "52:54:00:01:02:03" {
		t.Fatalf("VM config %+v", vm.cfg)
	}
	if link.cfg.Socket != "/nonexistent/daemon.sock" || link.cfg.Logger == nil || link.cfg.Now == nil {
		t.Fatalf("link config %+v", link.cfg)
	}
	h.do(step{do: "stop", state: vmhost.StateStopped})
	// Both ends are closed once the run has ended.
	if _, err := link.host.Write([]byte("x")); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("host end still open: %v", err)
	}
	if _, err := vm.cfg.NIC.Write([]byte("x")); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("VM end still open: %v", err)
	}
}

func TestStartFailures(t *testing.T) {
	tests := []struct {
		name    string
		f       *factory
		pair    func() (*os.File, *os.File, error)
		errText string
	}{
		{"socketpair", &factory{}, func() (*os.File, *os.File, error) { return nil, nil, errors.New("EMFILE") },
			"creating the VM's network socketpair: EMFILE"},
		{"link", &factory{linkErr: errors.New("bad socket path")}, nil, "setting up the network link: bad socket path"},
		{"VM config", &factory{vmErr: errors.New("invalid VM configuration: vm.kernel missing")}, nil, "vm.kernel missing"},
		{"VM start", &factory{startErr: errors.New("qemu: no such file")}, nil, "qemu: no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.f, func(o *MachineOptions) {
				if tt.pair != nil {
					o.NewSocketPair = tt.pair
				}
			})
			err := h.c.StartVM(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.errText) {
				t.Fatalf("StartVM: %v, want %q", err, tt.errText)
			}
			h.waitState(vmhost.StateError)
			if got := h.c.Status().VM.Error; !strings.Contains(got, tt.errText) {
				t.Fatalf("status error %q, want %q", got, tt.errText)
			}
			if l := h.f.link(); l != nil {
				h.waitLink(netlink.StateStopped)
			}
			// A failed start is not fatal: fix the cause and start again.
			h.f.mu.Lock()
			h.f.vmErr, h.f.linkErr, h.f.startErr = nil, nil, nil
			h.f.mu.Unlock()
			if tt.pair == nil {
				h.do(step{do: "start", state: vmhost.StateStarting})
			}
		})
	}
}

func TestLinkFailureStopsVM(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.do(step{do: "start"})
	h.do(step{do: "run", state: vmhost.StateRunning})
	vm := h.f.vm()
	h.do(step{do: "linkfail", state: vmhost.StateError})
	if vm.stopCount() == 0 {
		t.Fatal("the VM was not stopped after the link failed")
	}
	msg := h.c.Status().VM.Error
	if !strings.Contains(msg, "network link failed") || !strings.Contains(msg, "broken pipe") {
		t.Fatalf("error %q", msg)
	}
}

// graceTimer replaces the controller's clock for the link grace: every
// grace started is sent on started, and fires when the test sends on it.
// Other waits (the SSH check's) stay on the system clock; the harness's
// linkGrace is unlike any of theirs.
func graceTimer(c *Machine) (started chan chan time.Time) {
	started = make(chan chan time.Time, 4)
	grace := c.linkGrace
	c.after = func(d time.Duration) <-chan time.Time {
		if d != grace {
			return time.After(d)
		}
		ch := make(chan time.Time, 1)
		started <- ch
		return ch
	}
	return started
}

func awaitGrace(t *testing.T, started chan chan time.Time) chan time.Time {
	t.Helper()
	select {
	case ch := <-started:
		return ch
	case <-time.After(waitFor):
		t.Fatal("the link failure did not start the grace")
		return nil
	}
}

// TestLinkEndsBeforeCleanPowerOff: the VM end of the socketpair closes as
// the guest powers off, and the link sees it first. The run ends stopped,
// without an error, and the controller does not stop the VM itself.
func TestLinkEndsBeforeCleanPowerOff(t *testing.T) {
	h := newHarness(t, nil, nil)
	started := graceTimer(h.c)
	h.do(step{do: "start"})
	h.do(step{do: "run", state: vmhost.StateRunning})
	vm := h.f.vm()
	h.do(step{do: "linkfail"})
	awaitGrace(t, started)
	if st := h.c.Status().VM; st.State != vmhost.StateRunning || st.Error != "" {
		t.Fatalf("during the grace the VM is %s (error %q), want running", st.State, st.Error)
	}
	h.do(step{do: "poweroff", state: vmhost.StateStopped})
	if msg := h.c.Status().VM.Error; msg != "" {
		t.Fatalf("clean power-off reported error %q", msg)
	}
	if n := vm.stopCount(); n != 0 {
		t.Fatalf("the controller stopped a VM that powered off by itself (%d Stop calls)", n)
	}
}

// TestLinkFailsWhileVMRuns: the VM end failed but the VM goes on running
// past the grace: the link is blamed and the VM stopped.
func TestLinkFailsWhileVMRuns(t *testing.T) {
	h := newHarness(t, nil, nil)
	started := graceTimer(h.c)
	h.do(step{do: "start"})
	h.do(step{do: "run", state: vmhost.StateRunning})
	vm := h.f.vm()
	h.do(step{do: "linkfail"})
	fire := awaitGrace(t, started)
	if n := vm.stopCount(); n != 0 {
		t.Fatalf("the VM was stopped before the grace ended (%d Stop calls)", n)
	}
	fire <- time.Now()
	h.do(step{do: "", state: vmhost.StateError, link: netlink.StateFailed, errText: "network link failed"})
	if vm.stopCount() == 0 {
		t.Fatal("the VM was not stopped after the grace")
	}
	if st, _ := vm.State(); st != vmhost.StateStopped {
		t.Fatalf("VM is %s, want stopped", st)
	}
}

// TestLinkEndsWhileVMStops: a link failure while the guest is already
// powering off is no failure; the VM is still made to end.
func TestLinkEndsWhileVMStops(t *testing.T) {
	h := newHarness(t, nil, nil)
	started := graceTimer(h.c)
	h.do(step{do: "start"})
	h.do(step{do: "run", state: vmhost.StateRunning})
	h.f.vm().set(vmhost.StateStopping, nil)
	h.waitState(vmhost.StateStopping)
	h.do(step{do: "linkfail", state: vmhost.StateStopped})
	if msg := h.c.Status().VM.Error; msg != "" {
		t.Fatalf("error %q after a link failure while stopping", msg)
	}
	select {
	case <-started:
		t.Fatal("a grace was started for a VM that was stopping")
	default:
	}
}

func TestCloseStopsVMGracefully(t *testing.T) {
	h := newHarness(t, nil, nil)
	sub, cancel := h.c.Subscribe()
	defer cancel()
	h.do(step{do: "start"})
	h.do(step{do: "run", state: vmhost.StateRunning})
	vm := h.f.vm()
	if err := h.c.Close(); err != nil {
		t.Fatal(err)
	}
	if vm.stopCount() != 1 {
		t.Fatalf("Stop called %d times", vm.stopCount())
	}
	if st, _ := vm.State(); st != vmhost.StateStopped {
		t.Fatalf("VM %s after Close", st)
	}
	if got := h.c.Status(); got.VM.State != vmhost.StateStopped || got.Link.State != netlink.StateStopped {
		t.Fatalf("status after Close %+v %+v", got.VM, got.Link)
	}
	// The subscription is closed after its last update.
	deadline := time.After(waitFor)
	for open := true; open; {
		select {
		case _, open = <-sub:
		case <-deadline:
			t.Fatal("subscription not closed by Close")
		}
	}
	for name, err := range map[string]error{
		"start":     h.c.StartVM(context.Background()),
		"stop":      h.c.StopVM(context.Background()),
		"reconnect": h.c.Reconnect(),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v", name, err)
		}
	}
	if err := h.c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if ch, _ := h.c.Subscribe(); ch != nil {
		if _, ok := <-ch; ok {
			t.Fatal("Subscribe after Close gave an open channel")
		}
	}
}

func TestCloseBoundedWhenVMHangs(t *testing.T) {
	h := newHarness(t, &factory{hangStop: true}, func(o *MachineOptions) { o.VMConfig.StopTimeout = 50 * time.Millisecond })
	h.c.closeGrace = 50 * time.Millisecond
	h.do(step{do: "start"})
	h.do(step{do: "run", state: vmhost.StateRunning})
	done := make(chan error, 1)
	go func() { done <- h.c.Close() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Close reported success for a VM that never stopped")
		}
	case <-time.After(waitFor):
		t.Fatal("Close hung on a VM that never stops")
	}
	if st := h.c.Status(); st.VM.State != vmhost.StateError || !strings.Contains(st.VM.Error, "did not stop") {
		t.Fatalf("status %+v", st.VM)
	}
	// The VM still owns its end of the socketpair: it may still use it.
	vm := h.f.vm()
	if _, err := vm.cfg.NIC.Write([]byte("x")); errors.Is(err, os.ErrClosed) {
		t.Fatal("the VM end was closed under a VM that did not stop")
	}
	// Let the fake end so nothing stays blocked.
	vm.set(vmhost.StateStopped, nil)
}

func TestStopHonoursContext(t *testing.T) {
	h := newHarness(t, &factory{hangStop: true}, func(o *MachineOptions) { o.VMConfig.StopTimeout = 50 * time.Millisecond })
	h.c.closeGrace = 10 * time.Millisecond
	h.do(step{do: "start"})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := h.c.StopVM(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("StopVM: %v", err)
	}
	h.waitState(vmhost.StateStopping)
	h.f.vm().set(vmhost.StateStopped, nil)
	h.waitState(vmhost.StateStopped)
}

func TestSubscribeCoalesces(t *testing.T) {
	h := newHarness(t, nil, nil)
	sub, cancel := h.c.Subscribe()
	// Nobody reads while the state changes many times: the controller
	// must not block, and exactly one status waits, the latest one.
	for i := 0; i < 20; i++ {
		h.do(step{do: "start", state: vmhost.StateStarting})
		h.do(step{do: "run", state: vmhost.StateRunning})
		h.do(step{do: "stop", state: vmhost.StateStopped})
	}
	// The link winding down after the last stop may publish more statuses;
	// each replaces the pending one, so every status read from here on is
	// one from after the last stop, until the reader has the current one.
	deadline := time.After(waitFor)
	for n := 1; ; n++ {
		var st model.Status
		select {
		case st = <-sub:
		case <-deadline:
			t.Fatalf("no status pending after 60 changes (read %d)", n-1)
		}
		if st.VM == nil || st.VM.State != vmhost.StateStopped {
			t.Fatalf("status %d read after the changes is %+v, want the latest (VM stopped), not an older one", n, st.VM)
		}
		if len(sub) == 0 && reflect.DeepEqual(st, h.c.Status()) {
			break
		}
	}
	cancel()
	cancel() // idempotent
	// A status published after the loop's last look (the SSH watch ends
	// after the VM) may still wait in the channel; then it is closed.
	closed := make(chan struct{})
	go func() {
		for range sub {
		}
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(waitFor):
		t.Fatal("channel open after cancel")
	}
}

func TestSubscribeSeesEveryChangeWhenReading(t *testing.T) {
	h := newHarness(t, nil, nil)
	sub, cancel := h.c.Subscribe()
	defer cancel()
	seen := make(chan vmhost.State)
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for st := range sub {
			select {
			case seen <- st.VM.State:
			case <-quit:
			}
		}
	}()
	// A reader that keeps up sees each VM state before the next change.
	await := func(want vmhost.State) {
		t.Helper()
		deadline := time.After(waitFor)
		for {
			select {
			case got := <-seen:
				if got == want {
					return
				}
			case <-deadline:
				t.Fatalf("the subscriber never saw %s", want)
			}
		}
	}
	h.do(step{do: "start", state: vmhost.StateStarting})
	await(vmhost.StateStarting)
	h.do(step{do: "run", state: vmhost.StateRunning})
	await(vmhost.StateRunning)
	h.do(step{do: "stop", state: vmhost.StateStopped})
	await(vmhost.StateStopped)
	close(quit)
	cancel()
	<-done
}

func TestConcurrentActions(t *testing.T) {
	h := newHarness(t, nil, nil)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 30; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), waitFor)
				var err error
				switch (g + i) % 4 {
				case 0:
					err = h.c.StartVM(ctx)
				case 1:
					err = h.c.StopVM(ctx)
				case 2:
					err = h.c.Reconnect()
				case 3:
					_ = h.c.Status()
				}
				cancel()
				var ce *ConflictError
				if err != nil && !errors.As(err, &ce) {
					t.Errorf("unexpected error: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	if err := h.c.Close(); err != nil {
		t.Fatal(err)
	}
	if st := h.c.Status(); st.VM.State != vmhost.StateStopped {
		t.Fatalf("after Close: %+v", st.VM)
	}
}

func TestNewRequiresKernel(t *testing.T) {
	if _, err := NewMachine(MachineOptions{}); err == nil || !strings.Contains(err.Error(), "Kernel") {
		t.Fatalf("New without a kernel: %v", err)
	}
}

// TestLinkFailsWhileStarting covers a link that fails before or while the
// VM boots: whichever comes first, the run ends in error naming the link.
func TestLinkFailsWhileStarting(t *testing.T) {
	for i := 0; i < 20; i++ {
		h := newHarness(t, &factory{failLink: errors.New("recvmsg: bad file descriptor")}, nil)
		_ = h.c.StartVM(context.Background()) // fails if the stop came first
		h.waitState(vmhost.StateError)
		if msg := h.c.Status().VM.Error; !strings.Contains(msg, "network link failed") || !strings.Contains(msg, "bad file descriptor") {
			t.Fatalf("error %q", msg)
		}
		h.waitLink(netlink.StateFailed)
		if err := h.c.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// Actions that arrive while Close stops the VM fail at once with
// ErrClosed (503) instead of waiting for the shutdown to finish.
func TestActionsDuringCloseFailAtOnce(t *testing.T) {
	h := newHarness(t, &factory{hangStop: true}, func(o *MachineOptions) { o.VMConfig.StopTimeout = time.Hour })
	h.c.closeGrace = time.Hour
	h.do(step{do: "start"})
	h.do(step{do: "run", state: vmhost.StateRunning})
	closed := make(chan error, 1)
	go func() { closed <- h.c.Close() }()
	h.waitState(vmhost.StateStopping) // Close holds the action slot now
	for name, act := range map[string]func(context.Context) error{"start": h.c.StartVM, "stop": h.c.StopVM} {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		err := act(ctx)
		cancel()
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s while closing: %v, want ErrClosed at once", name, err)
		}
	}
	// Let the fake VM end so Close returns.
	h.f.vm().set(vmhost.StateStopped, nil)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
}

// Every start reads the configuration again (Options.Reload): a start
// after the user fixed the file uses the fix, and a broken file fails the
// start with the VM in error, saying why.
func TestStartReloadsConfiguration(t *testing.T) {
	var mu sync.Mutex
	cpus, reloadErr := 1, error(nil)
	h := newHarness(t, nil, func(o *MachineOptions) {
		o.Reload = func() (vmhost.Config, netlink.Config, error) {
			mu.Lock()
			defer mu.Unlock()
			if reloadErr != nil {
				return vmhost.Config{}, netlink.Config{}, reloadErr
			}
			return vmhost.Config{Kernel: "/k2", CPUs: cpus, StopTimeout: time.Second}, netlink.Config{Socket: "/other/daemon.sock"}, nil
		}
	})
	h.do(step{do: "start", state: vmhost.StateStarting})
	if vm, link := h.f.vm(), h.f.link(); vm.cfg.Kernel != "/k2" || vm.cfg.CPUs != 1 || link.cfg.Socket != "/other/daemon.sock" || link.cfg.Logger == nil {
		t.Fatalf("start used VM %+v, link %+v, not the reloaded configuration", vm.cfg, link.cfg)
	}
	h.do(step{do: "stop", state: vmhost.StateStopped})

	mu.Lock()
	reloadErr = errors.New("config.yaml:3: vm.cpus is 99: it must be between 1 and 2")
	mu.Unlock()
	h.do(step{do: "start", code: -1, state: vmhost.StateError, errText: "vm.cpus is 99"})
	if n := len(h.f.vms); n != 1 {
		t.Fatalf("%d VMs built; a start with a broken configuration built one", n)
	}

	mu.Lock()
	reloadErr, cpus = nil, 2
	mu.Unlock()
	h.do(step{do: "start", state: vmhost.StateStarting})
	if vm := h.f.vm(); vm.cfg.CPUs != 2 {
		t.Fatalf("second start used %d CPUs, want the fixed 2", vm.cfg.CPUs)
	}
}

// A note from the VM host about the current state (what a stopping VM
// waits for) shows in the status until the next state change.
func TestVMNoteShowsUntilStateChanges(t *testing.T) {
	h := newHarness(t, &factory{hangStop: true}, func(o *MachineOptions) { o.VMConfig.StopTimeout = time.Hour })
	h.do(step{do: "start"})
	h.do(step{do: "run", state: vmhost.StateRunning})
	vm := h.f.vm()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- h.c.StopVM(ctx) }()
	h.waitState(vmhost.StateStopping)
	// A note about another state than the current one is ignored.
	vm.events <- vmhost.Event{State: vmhost.StateRunning, Note: "stale"}
	const note = "waiting for the guest to answer the power button (it may still be booting)"
	vm.events <- vmhost.Event{State: vmhost.StateStopping, Note: note}
	testwait.ValueWithin(t, waitFor, "the note "+note, func() string { return h.c.Status().VM.Note },
		func(n string) bool { return n == note })
	vm.set(vmhost.StateStopped, nil)
	h.waitState(vmhost.StateStopped)
	if n := h.c.Status().VM.Note; n != "" {
		t.Fatalf("note %q after the VM stopped", n)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
}
