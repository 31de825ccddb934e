package tray

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/vmnetbar/vmnetbar/app/loginitem"
	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/internal/fakeapp"
	"github.com/vmnetbar/vmnetbar/netlink"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

// helperEnv makes the test binary run the tray with a fake controller
// instead of the tests (systray is process-global, so the D-Bus tests run
// the tray in a child process).
//
// Protocol: the child's fake has the VMs VMNETBAR_TRAY_TEST_VMS names
// (comma-separated; default "default"), stopped. It reads lines from stdin:
//   - a model.Overview as JSON: the fake's VMs become those (their VM and
//     link; actions by model.Allowed), and its config error that one;
//   - "quiet " and an Overview: the VMs' traffic counters become those,
//     without an update to subscribers (as traffic counters change);
//   - "release": held stops end (VMNETBAR_TRAY_TEST_HOLD_STOP names VMs
//     whose Stop leaves them stopping until then);
//   - "reloaderr MSG": later Reloads fail with MSG ("": they succeed).
//
// It writes one line per controller, opener, clipboard or notifier call to
// stdout ("start NAME", "stop NAME", "reconnect NAME", "startall",
// "stopall", "reload", "open PATH", "login on|off", "copy TEXT", "notify
// TITLE: BODY" with the body on one line) and, when Run returns, "exit
// <error or nil>". With VMNETBAR_TRAY_TEST_LOGIN_PLACE=translocated, the login
// item's program is an App Translocation copy.
const helperEnv = "VMNETBAR_TRAY_TEST_HELPER"

// runHelper runs the child's tray if this process is one; it reports
// whether it did.
func runHelper() bool {
	if os.Getenv(helperEnv) != "1" {
		return false
	}
	out := &lineWriter{}
	names := []string{"default"}
	if v := os.Getenv("VMNETBAR_TRAY_TEST_VMS"); v != "" {
		names = strings.Split(v, ",")
	}
	c := newTestMachines(names...)
	c.out = out.line
	for _, n := range strings.Split(os.Getenv("VMNETBAR_TRAY_TEST_HOLD_STOP"), ",") {
		if n != "" {
			c.HoldStop(n)
		}
	}
	go c.readCommands(os.Stdin)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	log := logrus.New()
	log.SetOutput(os.Stderr)
	log.SetLevel(logrus.DebugLevel)
	login := &fakeLogin{out: out}
	if place := os.Getenv("VMNETBAR_TRAY_TEST_LOGIN_PLACE"); place == "translocated" {
		login.where = &loginitem.LocationProblem{Kind: loginitem.PlaceTranslocated,
			Exe: "/private/var/folders/zz/x/T/AppTranslocation/1/d/vmnetbar.app/Contents/MacOS/vmnetbar"}
	}
	err := Run(ctx, c, Options{
		ConsoleLog: os.Getenv("VMNETBAR_TRAY_TEST_CONSOLE"),
		ConfigFile: os.Getenv("VMNETBAR_TRAY_TEST_CONFIG"),
		LoginItem:  login,
		Logger:     log,
		Opener: func(path string) error {
			out.line("open " + path)
			return nil
		},
		Clipboard: lineClipboard{out},
		Notifier:  lineSender{out},
	})
	out.line(fmt.Sprintf("exit %v", err))
	if err != nil {
		fmt.Fprintln(os.Stderr, "tray:", err)
		os.Exit(1) // a test helper process: report the failure as its exit code
	}
	return true
}

// lineClipboard is the child's clipboard: it prints "copy TEXT".
type lineClipboard struct{ out *lineWriter }

func (c lineClipboard) Copy(_ context.Context, text string) error {
	c.out.line("copy " + text)
	return nil
}

// lineSender is the child's notifier: it prints "notify TITLE: BODY".
type lineSender struct{ out *lineWriter }

func (s lineSender) Send(title, body string) error {
	s.out.line("notify " + title + ": " + strings.ReplaceAll(body, "\n", " "))
	return nil
}

type lineWriter struct{ mu sync.Mutex }

func (w *lineWriter) line(s string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	fmt.Fprintln(os.Stdout, s)
}

// testMachines is the tray's Controller in tests: fakeapp.Machines (the
// one fake of the VMs) with Start all, Stop all and Reload, recording
// every call.
type testMachines struct {
	*fakeapp.Machines
	out func(string) // receives each call too; nil: none

	mu        sync.Mutex
	calls     []string
	reloadErr error
	onReload  func()                    // what a good Reload does; nil: nothing
	quiet     map[string]netlink.Status // Status shows these traffic counters, until the next apply
	errs      []error                   // fixture steps the fake refused (see fixture)
}

var _ Controller = (*testMachines)(nil)

func newTestMachines(names ...string) *testMachines {
	return &testMachines{Machines: fakeapp.New(names...)}
}

func (m *testMachines) event(s string) {
	m.mu.Lock()
	m.calls = append(m.calls, s)
	m.mu.Unlock()
	if m.out != nil {
		m.out(s)
	}
}

// Calls returns the calls so far: "start NAME", "stop NAME", "reconnect
// NAME", "startall", "stopall", "reload".
func (m *testMachines) Calls() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.calls...)
}

func (m *testMachines) called(s string) bool {
	for _, c := range m.Calls() {
		if c == s {
			return true
		}
	}
	return false
}

func (m *testMachines) Status() model.Overview {
	o := m.Machines.Status()
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, v := range o.VMs {
		if q, ok := m.quiet[v.Name]; ok {
			l := &o.VMs[i].Link
			l.TxBytes, l.RxBytes, l.TxFrames, l.RxFrames = q.TxBytes, q.RxBytes, q.TxFrames, q.RxFrames
		}
	}
	return o
}

func (m *testMachines) Start(ctx context.Context, name string) error {
	m.event("start " + name)
	return m.Machines.Start(ctx, name)
}

func (m *testMachines) Stop(ctx context.Context, name string) error {
	m.event("stop " + name)
	return m.Machines.Stop(ctx, name)
}

func (m *testMachines) Reconnect(name string) error {
	m.event("reconnect " + name)
	return m.Machines.Reconnect(name)
}

// StartAll starts every VM that may start, in parallel.
func (m *testMachines) StartAll(ctx context.Context) error {
	m.event("startall")
	return m.each(func(v model.VMStatus) bool { return v.Actions.Start }, func(n string) error { return m.Machines.Start(ctx, n) })
}

// StopAll stops every VM that may stop, in parallel.
func (m *testMachines) StopAll(ctx context.Context) error {
	m.event("stopall")
	return m.each(func(v model.VMStatus) bool { return v.Actions.Stop }, func(n string) error { return m.Machines.Stop(ctx, n) })
}

func (m *testMachines) each(pick func(model.VMStatus) bool, do func(string) error) error {
	var wg sync.WaitGroup
	errs := make(chan error, len(m.Machines.Status().VMs))
	for _, v := range m.Machines.Status().VMs {
		if !pick(v) {
			continue
		}
		wg.Add(1)
		go func(name string) {
			defer wg.Done()
			errs <- do(name)
		}(v.Name)
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

// Reload fails after failReload, setting the overview's config error as
// the controller does; else it runs onReload and clears the error.
func (m *testMachines) Reload() error {
	m.event("reload")
	m.mu.Lock()
	err, f := m.reloadErr, m.onReload
	m.mu.Unlock()
	if err != nil {
		m.SetConfigError(err.Error())
		return err
	}
	if f != nil {
		f()
	}
	m.SetConfigError("")
	return nil
}

func (m *testMachines) failReload(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reloadErr = err
}

// setVM sets a VM's state and link (adding the VM), stepping through the
// states between (fakeapp's Drive).
func (m *testMachines) setVM(name string, s vmhost.State, l netlink.State) {
	m.fixture(m.Drive(name, s, func(v *model.VMStatus) {
		v.VM.Since = time.Now()
		v.Link.State, v.Link.Since = l, time.Now()
	}))
}

// put makes the VM v.Name show v (adding it), stepping through the states
// between (fakeapp's Drive).
func (m *testMachines) put(v model.VMStatus) {
	m.fixture(m.Drive(v.Name, v.VM.State, func(s *model.VMStatus) { *s = v }))
}

// fixture keeps err, a change the fake refused (fakeapp.Legal), for
// startFakeTray to fail the test with; in the helper process it is also
// printed to standard error.
func (m *testMachines) fixture(err error) {
	if err == nil {
		return
	}
	if m.out != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.errs = append(m.errs, err)
}

// fixtureErrors returns the errors kept by fixture and forgets them.
func (m *testMachines) fixtureErrors() []error {
	m.mu.Lock()
	defer m.mu.Unlock()
	errs := m.errs
	m.errs = nil
	return errs
}

// apply makes the fake's VMs those of o; quiet: only their traffic
// counters, shown by Status but not published.
func (m *testMachines) apply(o model.Overview, quiet bool) {
	if quiet {
		q := map[string]netlink.Status{}
		for _, v := range o.VMs {
			q[v.Name] = v.Link
		}
		m.mu.Lock()
		m.quiet = q
		m.mu.Unlock()
		return
	}
	m.mu.Lock()
	m.quiet = nil
	m.mu.Unlock()
	keep := map[string]bool{}
	for _, v := range o.VMs {
		keep[v.Name] = true
		m.fixture(m.Drive(v.Name, v.VM.State, func(s *model.VMStatus) { s.VM, s.Link = v.VM, v.Link }))
	}
	for _, n := range m.Machines.Status().Names() {
		if !keep[n] {
			m.Remove(n)
		}
	}
	if o.ConfigError != m.Machines.Status().ConfigError {
		m.SetConfigError(o.ConfigError)
	}
}

// readCommands reads the helper's stdin lines (see helperEnv).
func (m *testMachines) readCommands(f *os.File) {
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "release" {
			for _, n := range m.Machines.Status().Names() {
				m.Release(n)
			}
			continue
		}
		if msg, ok := strings.CutPrefix(line, "reloaderr"); ok {
			var err error
			if msg = strings.TrimSpace(msg); msg != "" {
				err = errors.New(msg)
			}
			m.failReload(err)
			continue
		}
		line, quiet := strings.CutPrefix(line, "quiet ")
		var o model.Overview
		if err := json.Unmarshal([]byte(line), &o); err != nil {
			fmt.Fprintln(os.Stderr, "helper: bad status line:", err)
			continue
		}
		m.apply(o, quiet)
	}
}

type fakeLogin struct {
	out   *lineWriter
	mu    sync.Mutex
	on    bool
	where *loginitem.LocationProblem // what CheckLocation reports
}

func (l *fakeLogin) CheckLocation() *loginitem.LocationProblem { return l.where }

func (l *fakeLogin) Enable() error  { return l.setOn(true) }
func (l *fakeLogin) Disable() error { return l.setOn(false) }

func (l *fakeLogin) setOn(on bool) error {
	l.mu.Lock()
	l.on = on
	l.mu.Unlock()
	if on {
		l.out.line("login on")
	} else {
		l.out.line("login off")
	}
	return nil
}

func (l *fakeLogin) Enabled() (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.on, nil
}
