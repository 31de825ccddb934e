package controller

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/netlink"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

// blockingPrepare is a MachineOptions.Prepare that blocks until its ctx
// ends (as making a disk from a cloud image does for minutes), or, once
// let go, returns at once.
type blockingPrepare struct {
	entered chan struct{} // receives when a Prepare has begun
	mu      sync.Mutex
	letGo   bool
	calls   int
	ctxErrs []error       // ctx.Err() of the Prepares that ended
	release chan struct{} // closed at the end of the test: no Prepare outlives it
}

func newBlockingPrepare() *blockingPrepare {
	return &blockingPrepare{entered: make(chan struct{}, 8), release: make(chan struct{})}
}

// newPrepareHarness is newHarness with p as the Prepare. p's Prepares end
// when the test does, before the harness closes the Machine: a Machine
// that does not cancel them fails the test instead of hanging in Close.
func newPrepareHarness(t *testing.T, p *blockingPrepare, mod func(*MachineOptions)) *harness {
	t.Helper()
	h := newHarness(t, nil, func(o *MachineOptions) {
		o.Prepare = p.prepare
		if mod != nil {
			mod(o)
		}
	})
	t.Cleanup(func() { close(p.release) }) // runs before the harness's Close
	return h
}

func (p *blockingPrepare) prepare(ctx context.Context, cfg vmhost.Config, progress func(done, total int64)) (vmhost.Config, error) {
	p.mu.Lock()
	p.calls++
	letGo := p.letGo
	p.mu.Unlock()
	if letGo {
		return cfg, nil
	}
	progress(1, 4)
	p.entered <- struct{}{}
	select {
	case <-ctx.Done():
	case <-p.release:
	}
	p.mu.Lock()
	p.ctxErrs = append(p.ctxErrs, ctx.Err())
	p.mu.Unlock()
	// What a real Prepare does here: remove the half-made disk.
	return cfg, errors.Join(errors.New("making the disk"), ctx.Err())
}

func (p *blockingPrepare) ended() []error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]error(nil), p.ctxErrs...)
}

// awaitEntered waits for a Prepare to begin.
func (p *blockingPrepare) awaitEntered(t *testing.T) {
	t.Helper()
	select {
	case <-p.entered:
	case <-time.After(waitFor):
		t.Fatal("Prepare was not called")
	}
}

// startInBackground runs StartVM and returns its result channel.
func startInBackground(c *Machine) <-chan error {
	started := make(chan error, 1)
	go func() { started <- c.StartVM(context.Background()) }()
	return started
}

// stopWhilePreparing stops c while the start that answers on started
// prepares, and awaits that start's (cancelled) end.
func stopWhilePreparing(t *testing.T, c *Machine, started <-chan error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := c.StopVM(ctx); err != nil {
		t.Fatalf("StopVM while preparing: %v", err)
	}
	if err := awaitStart(t, started); err == nil {
		t.Fatal("the cancelled start returned no error")
	}
}

func awaitStart(t *testing.T, started <-chan error) error {
	t.Helper()
	select {
	case err := <-started:
		return err
	case <-time.After(waitFor):
		t.Fatal("StartVM did not return")
		return nil
	}
}

// A StopVM while the start prepares (the menu offers Stop while the VM is
// starting) cancels the Prepare at once: the start ends with the VM
// stopped (not error) and says it was cancelled, nothing was built, and
// the StopVM returns as soon as that is done. The next start works.
func TestStopWhilePreparingCancelsTheStart(t *testing.T) {
	p := newBlockingPrepare()
	hook := logtest.NewLocal(logrus.New())
	h := newPrepareHarness(t, p, func(o *MachineOptions) {
		o.Name = "dev"
		o.Logger.(*logrus.Logger).AddHook(hook)
	})
	started := startInBackground(h.c)
	p.awaitEntered(t)
	if st := h.c.Status(); st.VM.State != vmhost.StateStarting || !st.Actions.Stop {
		t.Fatalf("while preparing: VM %s, actions %+v; want starting with Stop offered", st.VM.State, st.Actions)
	}

	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := h.c.StopVM(ctx); err != nil {
		t.Fatalf("StopVM while preparing: %v", err)
	}
	if st := h.c.Status().VM; st.State != vmhost.StateStopped || st.Error != "" {
		t.Fatalf("after StopVM returned: VM %s (error %q), want stopped", st.State, st.Error)
	}
	err := awaitStart(t, started)
	var ce *ConflictError
	if !errors.As(err, &ce) || !errors.Is(err, model.ErrStartCancelled) || !strings.Contains(err.Error(), "the start of dev was cancelled") {
		t.Fatalf("the cancelled start returned %v, want a conflict saying it was cancelled", err)
	}
	if ends := p.ended(); len(ends) != 1 || !errors.Is(ends[0], context.Canceled) {
		t.Fatalf("Prepare's ctx at its end: %v, want cancelled", ends)
	}
	if h.f.vm() != nil || h.f.link() != nil {
		t.Fatal("a VM or a link was built for a cancelled start")
	}
	if st := h.c.Status(); st.VM.Progress != nil {
		t.Fatalf("progress %+v after the cancelled start", st.VM.Progress)
	}
	logged := false
	for _, e := range hook.AllEntries() {
		logged = logged || strings.Contains(e.Message, "the start of dev was cancelled")
	}
	if !logged {
		t.Fatal("the log does not say that the start was cancelled")
	}

	// A stop now is a conflict again, and the next start boots.
	h.do(step{do: "stop", code: 409})
	p.mu.Lock()
	p.letGo = true
	p.mu.Unlock()
	h.do(step{do: "start", state: vmhost.StateStarting})
	h.do(step{do: "run", state: vmhost.StateRunning})
	h.do(step{do: "stop", state: vmhost.StateStopped})
}

// Close and CloseWithin while the start prepares cancel it too, instead
// of waiting minutes for the disk: the start answers ErrClosed and the VM
// is stopped.
func TestCloseWhilePreparingCancelsTheStart(t *testing.T) {
	for _, tt := range []struct {
		name  string
		close func(*Machine) error
	}{
		{"Close", (*Machine).Close},
		{"CloseWithin", func(c *Machine) error { return c.CloseWithin(time.Second) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := newBlockingPrepare()
			h := newPrepareHarness(t, p, nil)
			started := startInBackground(h.c)
			p.awaitEntered(t)
			closed := make(chan error, 1)
			go func() { closed <- tt.close(h.c) }()
			select {
			case err := <-closed:
				if err != nil {
					t.Fatalf("%s while preparing: %v", tt.name, err)
				}
			case <-time.After(waitFor):
				t.Fatalf("%s waits for the Prepare", tt.name)
			}
			if err := awaitStart(t, started); !errors.Is(err, ErrClosed) {
				t.Fatalf("the start cancelled by %s returned %v, want ErrClosed", tt.name, err)
			}
			if ends := p.ended(); len(ends) != 1 || !errors.Is(ends[0], context.Canceled) {
				t.Fatalf("Prepare's ctx at its end: %v, want cancelled", ends)
			}
			if st := h.c.Status().VM; st.State != vmhost.StateStopped || st.Error != "" {
				t.Fatalf("after %s: VM %s (error %q), want stopped", tt.name, st.State, st.Error)
			}
			if h.f.vm() != nil {
				t.Fatal("a VM was built for a cancelled start")
			}
		})
	}
}

// Once Prepare has returned, a StopVM no longer cancels the start: it
// waits for the boot call and stops the VM, as before.
func TestStopAfterPrepareStopsTheVM(t *testing.T) {
	h := newHarness(t, nil, func(o *MachineOptions) {
		o.Prepare = func(_ context.Context, cfg vmhost.Config, _ func(done, total int64)) (vmhost.Config, error) {
			return cfg, nil
		}
	})
	h.do(step{do: "start", state: vmhost.StateStarting})
	h.do(step{do: "stop", state: vmhost.StateStopped})
	if n := h.f.vm().stopCount(); n == 0 {
		t.Fatal("the VM was not stopped")
	}
}

// The SSH state is "waiting" from the moment a start begins (model.VM.SSH:
// "waiting" while the VM starts or runs), during Prepare too, and
// "unknown" again once the VM has stopped.
func TestSSHWaitingFromTheStart(t *testing.T) {
	p := newBlockingPrepare()
	h := newPrepareHarness(t, p, func(o *MachineOptions) {
		o.DialSSH = func(context.Context, string) error { return errors.New("connection refused") }
		o.SSHAddress = func() string { return "127.0.0.1:2222" }
	})
	h.c.sshEvery, h.c.sshReadyEvery = time.Hour, time.Hour // the check never looks
	if s := h.c.Status().VM.SSH; s != model.SSHUnknown {
		t.Fatalf("ssh %q while stopped", s)
	}
	started := startInBackground(h.c)
	p.awaitEntered(t)
	if s := h.c.Status().VM.SSH; s != model.SSHWaiting {
		t.Fatalf("ssh %q while the disk is prepared, want waiting", s)
	}
	stopWhilePreparing(t, h.c, started)
	if s := h.c.Status().VM.SSH; s != model.SSHUnknown {
		t.Fatalf("ssh %q after the cancelled start, want unknown", s)
	}

	// A start without a long Prepare: waiting before the check has looked.
	p.mu.Lock()
	p.letGo = true
	p.mu.Unlock()
	h.do(step{do: "start", state: vmhost.StateStarting})
	if s := h.c.Status().VM.SSH; s != model.SSHWaiting {
		t.Fatalf("ssh %q while the VM boots, want waiting", s)
	}
	h.do(step{do: "stop", state: vmhost.StateStopped})
	if s := h.c.Status().VM.SSH; s != model.SSHUnknown {
		t.Fatalf("ssh %q after the stop, want unknown", s)
	}
}

// The SSH check of an ended run never overwrites the state of a later
// start (it may end after that start has begun).
func TestOldSSHCheckDoesNotOverwriteANewStart(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.c.mu.Lock()
	h.c.sshSeq = 2 // a second start has begun
	h.c.ssh = model.SSHWaiting
	h.c.state = vmhost.StateStarting
	h.c.mu.Unlock()
	h.c.setSSH(1, model.SSHUnknown) // the first run's check ends
	h.c.setSSH(1, model.SSHReady)
	if s := h.c.Status().VM.SSH; s != model.SSHWaiting {
		t.Fatalf("ssh %q after an old check's answers, want the new start's waiting", s)
	}
	h.c.mu.Lock()
	h.c.state = vmhost.StateStopped
	h.c.mu.Unlock()
}

// A stopped or failed VM's status carries no guest addresses (they are
// stale: `vmnetbar ip` must not print them), nor does a start's while it
// prepares; the MAC stays.
func TestStoppedVMHasNoGuestAddress(t *testing.T) {
	p := newBlockingPrepare()
	p.letGo = true
	h := newPrepareHarness(t, p, nil)
	g := netlink.Guest{IPv4: netip.MustParseAddr("192.168.127.2"), Gateway: netip.MustParseAddr("192.168.127.1"),
		Source: netlink.GuestSourceDHCP, Since: time.Now()}
	g.IPv6[0] = netip.MustParseAddr("fe80::5054:ff:fe01:203")
	g.MAC = netlink.MACAddr{0x52, 0x54, 0, 1, 2, 3}
	noAddress := func(when string) {
		t.Helper()
		got := h.c.Status().Link.Guest
		if got.IPv4.IsValid() || len(got.IPv6Addrs()) != 0 || got.Gateway.IsValid() || got.Source != "" {
			t.Fatalf("%s: the status has the guest %+v, want no address", when, got)
		}
		if got.MAC != g.MAC {
			t.Fatalf("%s: MAC %v, want the last one, %v", when, got.MAC, g.MAC)
		}
	}

	h.do(step{do: "start", state: vmhost.StateStarting})
	h.do(step{do: "run", state: vmhost.StateRunning})
	h.f.link().learn(g)
	if got := h.c.Status().Link.Guest; got.IPv4 != g.IPv4 || got.IPv6 != g.IPv6 || got.Gateway != g.Gateway {
		t.Fatalf("running: guest %+v, want the link's %+v", got, g)
	}
	h.do(step{do: "stop", state: vmhost.StateStopped})
	noAddress("stopped")
	if got := h.c.Status().Link.Reconnects; got != 0 {
		t.Fatalf("reconnects %d", got)
	}

	// While the next start prepares, the last run's address is stale too.
	p.mu.Lock()
	p.letGo = false
	p.mu.Unlock()
	started := startInBackground(h.c)
	p.awaitEntered(t)
	noAddress("while preparing")
	stopWhilePreparing(t, h.c, started)
	noAddress("after the cancelled start")

	// A VM that failed.
	p.mu.Lock()
	p.letGo = true
	p.mu.Unlock()
	h.do(step{do: "start", state: vmhost.StateStarting})
	h.do(step{do: "run", state: vmhost.StateRunning})
	h.f.link().learn(g)
	h.do(step{do: "vmfail", state: vmhost.StateError})
	noAddress("failed")
}
