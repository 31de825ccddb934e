package controller

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/vmnetbar/vmnetbar/app/control"
	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/internal/testclock"
	"github.com/vmnetbar/vmnetbar/internal/testwait"
	"github.com/vmnetbar/vmnetbar/netlink"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

// spec is a VM called name whose fake VM and link say their name (kernel
// /kernel-NAME, socket /NAME.sock).
func spec(name string) Spec {
	return Spec{Name: name,
		VM:   vmhost.Config{Kernel: "/kernel-" + name, StopTimeout: time.Second, ConsoleLog: "/state/" + name + "/console.log"},
		Link: netlink.Config{Socket: "/" + name + ".sock"}, SSHUser: "u-" + name}
}

// file is a configuration file the tests edit: Load returns its specs or
// its error.
type file struct {
	mu    sync.Mutex
	specs []Spec
	err   error
	loads int
}

func (f *file) set(err error, specs ...Spec) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.specs, f.err = specs, err
}

func (f *file) load() ([]Spec, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.loads++
	return append([]Spec(nil), f.specs...), f.err
}

type setHarness struct {
	t    *testing.T
	f    *factory
	file *file
	c    *Controller
}

func newSet(t *testing.T, specs ...Spec) *setHarness {
	t.Helper()
	h := &setHarness{t: t, f: &factory{}, file: &file{}}
	t.Cleanup(func() {
		for _, err := range h.f.refusedTransitions() {
			t.Error(err)
		}
	})
	h.file.set(nil, specs...)
	log := logrus.New()
	log.SetLevel(logrus.DebugLevel)
	log.Out = testWriter{t}
	c, err := New(Options{Specs: specs, Load: h.file.load, ConfigFile: "/cfg.yaml",
		NewVM: h.f.newVM, NewLink: h.f.newLink, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	h.c = c
	t.Cleanup(func() { c.Close() })
	return h
}

// vmOf returns the latest fake VM built for the VM called name.
func (h *setHarness) vmOf(name string) *fakeVM {
	h.f.mu.Lock()
	defer h.f.mu.Unlock()
	for i := len(h.f.vms) - 1; i >= 0; i-- {
		if h.f.vms[i].cfg.Kernel == "/kernel-"+name {
			return h.f.vms[i]
		}
	}
	return nil
}

func (h *setHarness) vm(name string) model.VMStatus {
	h.t.Helper()
	v, ok := h.c.Status().Lookup(name)
	if !ok {
		h.t.Fatalf("no VM %s in %+v", name, h.c.Status().Names())
	}
	return v
}

func (h *setHarness) waitState(name string, want vmhost.State) {
	h.t.Helper()
	testwait.For(h.t, fmt.Sprintf("%s to be %s", name, want), func() bool {
		v, ok := h.c.Status().Lookup(name)
		return ok && v.VM.State == want
	})
}

func (h *setHarness) start(name string) {
	h.t.Helper()
	if err := h.c.Start(context.Background(), name); err != nil {
		h.t.Fatalf("start %s: %v", name, err)
	}
	h.vmOf(name).set(vmhost.StateRunning, nil)
	h.waitState(name, vmhost.StateRunning)
}

func kindOf(err error) model.Kind {
	var k interface{ ErrorKind() model.Kind }
	if errors.As(err, &k) {
		return k.ErrorKind()
	}
	return 0
}

func TestSeveralVMsAreIndependent(t *testing.T) {
	h := newSet(t, spec("dev"), spec("build"))
	if got := h.c.Status().Names(); strings.Join(got, ",") != "build,dev" {
		t.Fatalf("names %v, want sorted build,dev", got)
	}
	h.start("dev")
	if st := h.vm("build"); st.VM.State != vmhost.StateStopped || !st.Actions.Start {
		t.Fatalf("starting dev changed build: %+v", st)
	}
	if got := h.vm("dev").VM.ConsoleLog; got != "/state/dev/console.log" || h.vm("dev").VM.SSHUser != "u-dev" {
		t.Fatalf("dev's console log %q", got)
	}
	h.start("build")

	// A reconnect of one link touches only that one.
	if err := h.c.Reconnect("dev"); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "dev's reconnect", func() bool { return h.vm("dev").Link.Reconnects == 1 })
	if n := h.vm("build").Link.Reconnects; n != 0 {
		t.Fatalf("build's link reconnected %d times", n)
	}

	// Stopping one leaves the other running.
	if err := h.c.Stop(context.Background(), "build"); err != nil {
		t.Fatal(err)
	}
	h.waitState("build", vmhost.StateStopped)
	if st := h.vm("dev"); st.VM.State != vmhost.StateRunning || st.Link.State != netlink.StateUp {
		t.Fatalf("stopping build changed dev: %+v", st)
	}
}

func TestActionsNameTheVM(t *testing.T) {
	h := newSet(t, spec("dev"), spec("build"))
	err := h.c.Start(context.Background(), "")
	if kindOf(err) != model.KindAmbiguous || !strings.Contains(err.Error(), "build, dev") {
		t.Fatalf("start without a name among two: %v (kind %d)", err, kindOf(err))
	}
	err = h.c.Stop(context.Background(), "nope")
	if kindOf(err) != model.KindNotFound || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("stop of an unknown VM: %v", err)
	}
	err = h.c.Stop(context.Background(), "dev")
	if kindOf(err) != model.KindConflict || !strings.Contains(err.Error(), "cannot stop dev: it is stopped") {
		t.Fatalf("stop of a stopped VM: %v", err)
	}
	if err := h.c.Reconnect("build"); kindOf(err) != model.KindConflict {
		t.Fatalf("reconnect of a stopped VM: %v", err)
	}

	one := newSet(t, spec("dev"))
	if err := one.c.Start(context.Background(), ""); err != nil {
		t.Fatalf("start of the only VM without a name: %v", err)
	}
}

func TestStartAllStopAll(t *testing.T) {
	names := []string{"a", "b", "c", "d", "e"}
	var specs []Spec
	for _, n := range names {
		specs = append(specs, spec(n))
	}
	h := newSet(t, specs...)
	if err := h.c.StartAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		h.vmOf(n).set(vmhost.StateRunning, nil)
		h.waitState(n, vmhost.StateRunning)
	}
	if err := h.c.StopAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		h.waitState(n, vmhost.StateStopped)
	}
}

// Five VMs with autostart start together with the app; one without stays
// stopped.
func TestAutostartStartsThoseThatAskForIt(t *testing.T) {
	var specs []Spec
	for i := 0; i < 5; i++ {
		s := spec(fmt.Sprintf("vm%d", i))
		s.Autostart = true
		specs = append(specs, s)
	}
	specs = append(specs, spec("manual"))
	h := newSet(t, specs...)
	if err := h.c.Autostart(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if st := h.vm(fmt.Sprintf("vm%d", i)).VM.State; st != vmhost.StateStarting {
			t.Fatalf("vm%d is %s after Autostart", i, st)
		}
	}
	if st := h.vm("manual").VM.State; st != vmhost.StateStopped {
		t.Fatalf("manual is %s after Autostart", st)
	}
}

func TestReload(t *testing.T) {
	h := newSet(t, spec("dev"), spec("old"), spec("idle"))
	h.start("dev")
	h.start("old")
	sub, cancel := h.c.Subscribe()
	defer cancel()

	changedDev := spec("dev")
	changedDev.VM.CPUs = 4
	changedIdle := spec("idle")
	changedIdle.VM.Memory = 2 << 30
	added := spec("new")
	added.Autostart = true
	h.file.set(nil, changedDev, changedIdle, added)
	if err := h.c.Reload(); err != nil {
		t.Fatal(err)
	}
	o := h.c.Status()
	if got := strings.Join(o.Names(), ","); got != "dev,idle,new" {
		t.Fatalf("VMs after the reload: %s", got)
	}
	// The removed VM was stopped (gracefully) before it went.
	if v := h.vmOf("old"); v.stopCount() == 0 {
		t.Fatal("the removed VM was not stopped")
	}
	if st, _ := h.vmOf("old").State(); st != vmhost.StateStopped {
		t.Fatalf("the removed VM is %s", st)
	}
	// The running VM keeps its configuration until its next start.
	dev := h.vm("dev")
	if !dev.VM.ConfigChanged || dev.VM.State != vmhost.StateRunning {
		t.Fatalf("dev after the reload: %+v", dev.VM)
	}
	// The stopped one takes the change at once.
	if h.vm("idle").VM.ConfigChanged {
		t.Fatal("idle, stopped, shows a pending change")
	}
	// The new one has autostart.
	if st := h.vm("new").VM.State; st != vmhost.StateStarting {
		t.Fatalf("the added VM is %s", st)
	}
	select {
	case <-sub:
	default:
		t.Fatal("no status update after the reload")
	}

	// Restarting dev applies the change and clears the mark.
	if err := h.c.Stop(context.Background(), "dev"); err != nil {
		t.Fatal(err)
	}
	h.waitState("dev", vmhost.StateStopped)
	h.start("dev")
	if h.vm("dev").VM.ConfigChanged {
		t.Fatal("dev still shows the change after its restart")
	}
	if cpus := h.vmOf("dev").cfg.CPUs; cpus != 4 {
		t.Fatalf("dev restarted with %d CPUs, want 4", cpus)
	}

	// A file with errors changes nothing, and says why.
	h.file.set(errors.New("/cfg.yaml:3: vms.dev.cpus: not a number"))
	if err := h.c.Reload(); err == nil {
		t.Fatal("a reload of a broken file succeeded")
	}
	o = h.c.Status()
	if got := strings.Join(o.Names(), ","); got != "dev,idle,new" || !strings.Contains(o.ConfigError, "not a number") {
		t.Fatalf("after a broken reload: %s, config error %q", got, o.ConfigError)
	}
	h.file.set(nil, changedDev, changedIdle, added)
	if err := h.c.Reload(); err != nil {
		t.Fatal(err)
	}
	if e := h.c.Status().ConfigError; e != "" {
		t.Fatalf("config error %q after a good reload", e)
	}
}

// A VM a reload removes stays in the overview, stopping, with a note and
// no actions, until it has stopped; meanwhile actions on it say why they
// are refused, and it is no candidate for "the only VM".
func TestReloadShowsARemovedVMUntilItHasStopped(t *testing.T) {
	h := newSet(t, spec("dev"), spec("old"))
	h.start("dev")
	h.start("old")
	v := h.vmOf("old")
	v.mu.Lock()
	v.deafGuest = true // forced off after its stop timeout (1 s)
	v.mu.Unlock()
	h.file.set(nil, spec("dev"))
	done := make(chan error, 1)
	go func() { done <- h.c.Reload() }()
	h.waitState("old", vmhost.StateStopping)
	if old := h.vm("old"); old.VM.Note != removingNote || old.Actions != (model.Actions{}) {
		t.Fatalf("the VM being removed: note %q, actions %+v", old.VM.Note, old.Actions)
	}
	err := h.c.Start(context.Background(), "old")
	if kindOf(err) != model.KindConflict || !strings.Contains(err.Error(), "no longer names the VM old") {
		t.Fatalf("start of the VM being removed: %v", err)
	}
	if err := h.c.Reconnect(""); err != nil {
		t.Fatalf("an action on the only VM left: %v", err)
	}
	select {
	case err := <-done:
		t.Fatalf("the reload returned (%v) before the removed VM stopped", err)
	default:
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(h.c.Status().Names(), ","); got != "dev" {
		t.Fatalf("VMs after the removed one stopped: %s", got)
	}
}

// Every setting of a VM counts for a reload, its SSH user and the
// settings its start prepares from included: a running VM keeps showing
// what it was started with, marked changed, until its next start; a
// stopped one takes them at once.
func TestReloadKeepsARunningVMsSettingsUntilItsNextStart(t *testing.T) {
	h := newSet(t, spec("dev"), spec("idle"))
	h.start("dev")
	dev, idle := spec("dev"), spec("idle")
	dev.SSHUser, idle.SSHUser = "bob", "carol"
	h.file.set(nil, dev, idle)
	if err := h.c.Reload(); err != nil {
		t.Fatal(err)
	}
	if d := h.vm("dev").VM; !d.ConfigChanged || d.SSHUser != "u-dev" {
		t.Fatalf("running dev after the reload: changed %v, ssh user %q; want the user it was started with, marked changed", d.ConfigChanged, d.SSHUser)
	}
	if i := h.vm("idle").VM; i.ConfigChanged || i.SSHUser != "carol" {
		t.Fatalf("stopped idle after the reload: changed %v, ssh user %q", i.ConfigChanged, i.SSHUser)
	}
	if err := h.c.Stop(context.Background(), "dev"); err != nil {
		t.Fatal(err)
	}
	h.waitState("dev", vmhost.StateStopped)
	h.start("dev")
	if d := h.vm("dev").VM; d.ConfigChanged || d.SSHUser != "bob" {
		t.Fatalf("dev after its restart: changed %v, ssh user %q", d.ConfigChanged, d.SSHUser)
	}

	// The settings its start prepares from (image, disk size, keys...).
	dev.Settings = struct{ DiskSize int64 }{40 << 30}
	h.file.set(nil, dev, idle)
	if err := h.c.Reload(); err != nil {
		t.Fatal(err)
	}
	if !h.vm("dev").VM.ConfigChanged {
		t.Fatal("a change of the prepared settings does not show")
	}
	dev.Settings = nil // and back
	h.file.set(nil, dev, idle)
	if err := h.c.Reload(); err != nil {
		t.Fatal(err)
	}
	if h.vm("dev").VM.ConfigChanged {
		t.Fatal("the file as dev was started still shows a change")
	}
}

// A start reads the file again and takes its VM's part; a VM the file no
// longer names cannot start until a reload removes it.
func TestStartReadsTheFileAgain(t *testing.T) {
	h := newSet(t, spec("dev"))
	changed := spec("dev")
	changed.VM.CPUs = 3
	h.file.set(nil, changed)
	h.start("dev")
	if cpus := h.vmOf("dev").cfg.CPUs; cpus != 3 {
		t.Fatalf("started with %d CPUs, want the file's 3", cpus)
	}
	if err := h.c.Stop(context.Background(), "dev"); err != nil {
		t.Fatal(err)
	}
	h.waitState("dev", vmhost.StateStopped)
	h.file.set(nil, spec("other"))
	err := h.c.Start(context.Background(), "dev")
	if err == nil || !strings.Contains(err.Error(), "no longer names the VM dev") {
		t.Fatalf("start of a VM gone from the file: %v", err)
	}
}

// A first launch: no VM configured. The one VM shown says so; a start
// reads the file, and once it names a VM, that VM starts.
func TestNotConfiguredUntilTheFileNamesAVM(t *testing.T) {
	h := newSet(t)
	o := h.c.Status()
	if len(o.VMs) != 1 || o.VMs[0].Name != "default" || !o.VMs[0].VM.NotConfigured || !o.VMs[0].Actions.Start ||
		!strings.Contains(o.VMs[0].VM.Note, "/cfg.yaml") {
		t.Fatalf("first launch status %+v", o)
	}
	err := h.c.Start(context.Background(), "")
	if kindOf(err) != model.KindConflict || !strings.Contains(err.Error(), "no VM configured") {
		t.Fatalf("start while not configured: %v", err)
	}
	h.file.set(nil, spec("default"))
	if err := h.c.Start(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	h.vmOf("default").set(vmhost.StateRunning, nil)
	h.waitState("default", vmhost.StateRunning)
	if st := h.vm("default"); st.VM.NotConfigured || st.VM.State != vmhost.StateRunning {
		t.Fatalf("after the file was filled in: %+v", st.VM)
	}
	if _, err := New(Options{}); err == nil {
		t.Fatal("New without VMs and without Load succeeded")
	}
	if _, err := New(Options{Specs: []Spec{spec("a"), spec("a")}}); err == nil {
		t.Fatal("New with a name twice succeeded")
	}
}

// Close stops every VM in parallel: two deaf guests take one stop timeout
// together, not two.
func TestCloseStopsAllInParallel(t *testing.T) {
	h := newSet(t, spec("a"), spec("b"))
	h.start("a")
	h.start("b")
	for _, n := range []string{"a", "b"} {
		h.vmOf(n).mu.Lock()
		h.vmOf(n).deafGuest = true
		h.vmOf(n).mu.Unlock()
	}
	done := make(chan error, 1)
	go func() { done <- h.c.Close() }()
	// Both are asked to stop before either has ended.
	testwait.For(t, "both VMs asked to stop", func() bool {
		return h.vmOf("a").stopCount() > 0 && h.vmOf("b").stopCount() > 0
	})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := h.c.Start(context.Background(), "a"); !errors.Is(err, ErrClosed) {
		t.Fatalf("start after Close: %v", err)
	}
}

// Twenty start/stop cycles of two VMs leave no goroutine behind (goleak
// checks the whole package at exit; this checks the count in between).
func TestStartStopCyclesLeakNothing(t *testing.T) {
	h := newSet(t, spec("a"), spec("b"))
	before := runtime.NumGoroutine()
	for i := 0; i < 20; i++ {
		for _, n := range []string{"a", "b"} {
			h.start(n)
		}
		if err := h.c.StopAll(context.Background()); err != nil {
			t.Fatal(err)
		}
		h.waitState("a", vmhost.StateStopped)
		h.waitState("b", vmhost.StateStopped)
	}
	testwait.For(t, "the goroutines of the runs to end", func() bool { return runtime.NumGoroutine() <= before })
}

// TestControlAPI serves the controller over the real control API: the
// actions a VM's status allows are the ones the API performs, others
// answer 409, unknown names 404, and a first launch says what to edit.
func TestControlAPI(t *testing.T) {
	serve := func(h *setHarness) *control.Client {
		t.Helper()
		dir, err := os.MkdirTemp("", "ctl")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		l, err := control.Listen(dir + "/control.sock")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		served := make(chan error, 1)
		go func() { served <- control.NewServer(h.c, logrus.New()).Serve(ctx, l) }()
		t.Cleanup(func() {
			cancel()
			if err := <-served; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
		return control.NewClient(dir + "/control.sock")
	}
	code := func(err error) int {
		var ce *control.Error
		if errors.As(err, &ce) {
			return ce.Code
		}
		return 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	h := newSet(t, spec("dev"), spec("build"))
	cl := serve(h)
	for _, tc := range []struct {
		what string
		err  error
		code int
	}{
		{"stop of a stopped VM", cl.Stop(ctx, "dev"), http.StatusConflict},
		{"reconnect of a stopped VM", cl.Reconnect(ctx, "dev"), http.StatusConflict},
		{"start of an unknown VM", cl.Start(ctx, "nope"), http.StatusNotFound},
		{"start without a name among two", cl.Start(ctx, ""), http.StatusConflict},
	} {
		if c := code(tc.err); c != tc.code {
			t.Errorf("%s: %v (HTTP %d), want HTTP %d", tc.what, tc.err, c, tc.code)
		}
	}
	if err := cl.Start(ctx, "dev"); err != nil {
		t.Fatal(err)
	}
	h.vmOf("dev").set(vmhost.StateRunning, nil)
	h.waitState("dev", vmhost.StateRunning)
	o, err := cl.Overview(ctx)
	if err != nil || strings.Join(o.Names(), ",") != "build,dev" {
		t.Fatalf("overview %+v, %v", o, err)
	}
	dev, _ := o.Lookup("dev")
	if dev.VM.State != vmhost.StateRunning || dev.Link.State != netlink.StateUp || !dev.Actions.Stop || dev.Actions.Start {
		t.Fatalf("dev over the API: %+v", dev)
	}
	if err := cl.Start(ctx, "dev"); code(err) != http.StatusConflict || !strings.Contains(err.Error(), "cannot start dev: it is running") {
		t.Fatalf("start while running: %v", err)
	}
	if err := cl.Stop(ctx, "dev"); err != nil {
		t.Fatal(err)
	}
	if v, _ := cl.VM(ctx, "dev"); v.VM.State != vmhost.StateStopped {
		t.Fatalf("after stop: %+v", v.VM)
	}

	// A first launch: one VM, not configured; its start says what to edit.
	first := serve(newSet(t))
	v, err := first.VM(ctx, "")
	if err != nil || !v.VM.NotConfigured || v.Name != "default" {
		t.Fatalf("first launch: %+v, %v", v, err)
	}
	if err := first.Start(ctx, ""); code(err) != http.StatusConflict || !strings.Contains(err.Error(), "no VM configured: edit /cfg.yaml") {
		t.Fatalf("start while not configured: %v", err)
	}
}

// A VM's Prepare runs at every start, after the file is read again: its
// progress shows in the status, the VM boots what it returns, and its
// failure fails the start.
func TestPrepareRunsBeforeTheBoot(t *testing.T) {
	h := newSet(t)
	release := make(chan struct{})
	var calls int
	var mu sync.Mutex
	s := spec("dev")
	s.Prepare = func(ctx context.Context, cfg vmhost.Config, progress func(done, total int64)) (vmhost.Config, error) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		if n == 2 {
			return cfg, errors.New("image /x.qcow2: not a disk image")
		}
		progress(0, 200)
		progress(84, 200)
		<-release
		cfg.Disk = "/state/dev/disk.raw"
		return cfg, nil
	}
	h.file.set(nil, s)
	if err := h.c.Reload(); err != nil {
		t.Fatal(err)
	}
	started := make(chan error, 1)
	go func() { started <- h.c.Start(context.Background(), "dev") }()
	testwait.For(t, "the progress in the status", func() bool {
		p := h.vm("dev").VM.Progress
		return p != nil && p.Percent == 42 && p.Task == "preparing disk"
	})
	if st := h.vm("dev").VM.State; st != vmhost.StateStarting {
		t.Fatalf("VM %s while preparing", st)
	}
	close(release)
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	if d := h.vmOf("dev").cfg.Disk; d != "/state/dev/disk.raw" {
		t.Fatalf("the VM was built with disk %q, not the prepared one", d)
	}
	if p := h.vm("dev").VM.Progress; p != nil {
		t.Fatalf("progress %+v after the preparation", p)
	}
	if err := h.c.Stop(context.Background(), "dev"); err != nil {
		t.Fatal(err)
	}
	h.waitState("dev", vmhost.StateStopped)
	err := h.c.Start(context.Background(), "dev")
	if err == nil || !strings.Contains(err.Error(), "preparing the VM: image /x.qcow2: not a disk image") {
		t.Fatalf("start with a failing preparation: %v", err)
	}
	if v := h.vm("dev").VM; v.State != vmhost.StateError || !strings.Contains(v.Error, "not a disk image") {
		t.Fatalf("after a failed preparation: %+v", v)
	}
}

// The SSH check: "waiting" while the VM runs and its SSH address does not
// accept, "ready" once it does, "unknown" once the VM stopped. It looks
// every sshEvery until the guest answers, then every sshReadyEvery, and
// every sshEvery again once the guest stops answering (a reboot).
func TestSSHReadiness(t *testing.T) {
	var mu sync.Mutex
	accept, dials, dialed := false, 0, ""
	h := &setHarness{t: t, f: &factory{}, file: &file{}}
	t.Cleanup(func() {
		for _, err := range h.f.refusedTransitions() {
			t.Error(err)
		}
	})
	s := spec("dev")
	s.SSHAddress = "127.0.0.1:2222"
	h.file.set(nil, s)
	c, err := New(Options{Specs: []Spec{s}, Load: h.file.load, NewVM: h.f.newVM, NewLink: h.f.newLink,
		DialSSH: func(_ context.Context, addr string) error {
			mu.Lock()
			defer mu.Unlock()
			dials++
			dialed = addr
			if !accept {
				return errors.New("connection refused")
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	h.c = c
	t.Cleanup(func() { c.Close() })
	clock := testclock.New(time.Time{})
	c.machines["dev"].m.after = clock.After
	setAccept := func(a bool) {
		mu.Lock()
		defer mu.Unlock()
		accept = a
	}
	dialCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		return dials
	}
	// waitCheck waits until the check waits for want on the clock and
	// has dialed n times.
	waitCheck := func(want time.Duration, n int) {
		t.Helper()
		testwait.ForValue(t, fmt.Sprintf("the SSH check to wait %v after %d dials", want, n), clock.Timers,
			func(ts []time.Duration) bool { return slices.Equal(ts, []time.Duration{want}) && dialCount() == n })
	}
	if st := h.vm("dev").VM.SSH; st != model.SSHUnknown {
		t.Fatalf("ssh %q while stopped", st)
	}
	h.start("dev")
	waitCheck(sshEvery, 0)
	clock.Advance(sshEvery - 1)
	waitCheck(1, 0) // not before sshEvery
	clock.Advance(1)
	waitCheck(sshEvery, 1)
	mu.Lock()
	if dialed != "127.0.0.1:2222" {
		t.Errorf("dialed %q, want the SSH address", dialed)
	}
	mu.Unlock()
	if st := h.vm("dev").VM.SSH; st != model.SSHWaiting {
		t.Fatalf("ssh %q while the address refuses, want waiting", st)
	}
	setAccept(true)
	clock.Advance(sshEvery)
	waitCheck(sshReadyEvery, 2)
	if st := h.vm("dev").VM.SSH; st != model.SSHReady {
		t.Fatalf("ssh %q once the address answers, want ready", st)
	}
	setAccept(false) // the guest reboots
	clock.Advance(sshReadyEvery)
	waitCheck(sshEvery, 3)
	if st := h.vm("dev").VM.SSH; st != model.SSHWaiting {
		t.Fatalf("ssh %q once the address refuses again, want waiting", st)
	}
	if err := c.Stop(context.Background(), "dev"); err != nil {
		t.Fatal(err)
	}
	h.waitState("dev", vmhost.StateStopped)
	if st := h.vm("dev").VM.SSH; st != model.SSHUnknown {
		t.Fatalf("ssh %q after the stop", st)
	}
}

// Reset runs the VM's Reset only while it is stopped; a VM without one
// (it boots a kernel) cannot be reset.
func TestReset(t *testing.T) {
	h := newSet(t, spec("kernel"))
	var resets int
	img := spec("img")
	img.Image = "/images/debian.qcow2"
	img.Reset = func() error { resets++; return nil }
	h.file.set(nil, spec("kernel"), img)
	if err := h.c.Reload(); err != nil {
		t.Fatal(err)
	}
	if v := h.vm("img").VM; v.Image != "/images/debian.qcow2" {
		t.Fatalf("status image %q", v.Image)
	}
	if err := h.c.Reset(context.Background(), "kernel"); kindOf(err) != model.KindConflict || !strings.Contains(err.Error(), "boots a kernel") {
		t.Fatalf("reset of a kernel VM: %v", err)
	}
	h.start("img")
	if err := h.c.Reset(context.Background(), "img"); kindOf(err) != model.KindConflict || !strings.Contains(err.Error(), "stop it first") || resets != 0 {
		t.Fatalf("reset of a running VM: %v (%d resets)", err, resets)
	}
	if err := h.c.Stop(context.Background(), "img"); err != nil {
		t.Fatal(err)
	}
	h.waitState("img", vmhost.StateStopped)
	if err := h.c.Reset(context.Background(), "img"); err != nil || resets != 1 {
		t.Fatalf("reset of a stopped VM: %v (%d resets)", err, resets)
	}
}

// The real SSH check wants the server's identification: a port that only
// accepts (a forwarder whose guest does not listen yet) is not ready.
func TestSSHAnswersWantsTheBanner(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	banner := make(chan bool, 4)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if <-banner {
				c.Write([]byte("SSH-2.0-OpenSSH_9.2\r\n"))
			}
			c.Close()
		}
	}()
	defer func() { l.Close(); <-done }()
	check := func(withBanner bool) error {
		banner <- withBanner
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return sshAnswers(ctx, l.Addr().String())
	}
	if err := check(false); err == nil {
		t.Fatal("a port that closes without a word counts as an SSH server")
	}
	if err := check(true); err != nil {
		t.Fatalf("an SSH server's identification: %v", err)
	}
}
