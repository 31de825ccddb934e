package tray

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/vmnetbar/vmnetbar/app/control"
	"github.com/vmnetbar/vmnetbar/app/loginitem"
	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/netlink"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

// helperEnv makes the test binary run the tray with a fake controller
// instead of the tests (systray is process-global, so the D-Bus tests run
// the tray in a child process).
//
// Protocol: the child reads control.Status JSON lines from stdin and shows
// them; it writes one line per controller or opener call to stdout
// ("StartVM", "StopVM", "Reconnect", "open PATH", "login on|off") and, when
// Run returns, "exit <error or nil>". With VMNETBAR_TRAY_TEST_HOLD_STOP=1,
// StopVM leaves the VM stopping until the line "release" comes. With
// VMNETBAR_TRAY_TEST_LOGIN_PLACE=translocated, the login item's program is
// an App Translocation copy.
const helperEnv = "VMNETBAR_TRAY_TEST_HELPER"

// runHelper runs the child's tray if this process is one; it reports
// whether it did.
func runHelper() bool {
	if os.Getenv(helperEnv) != "1" {
		return false
	}
	out := &lineWriter{}
	c := newFakeController(out)
	if os.Getenv("VMNETBAR_TRAY_TEST_HOLD_STOP") == "1" {
		c.release = make(chan struct{})
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
	})
	out.line(fmt.Sprintf("exit %v", err))
	if err != nil {
		fmt.Fprintln(os.Stderr, "tray:", err)
		os.Exit(1) // a test helper process: report the failure as its exit code
	}
	return true
}

type lineWriter struct{ mu sync.Mutex }

func (w *lineWriter) line(s string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	fmt.Fprintln(os.Stdout, s)
}

// fakeController is a controller whose status the test sets; its actions
// change the status the way the real controller would.
type fakeController struct {
	out  *lineWriter
	mu   sync.Mutex
	st   control.Status
	subs map[chan control.Status]bool

	release     chan struct{} // nil: StopVM stops at once; else when closed
	releaseOnce sync.Once
}

func newFakeController(out *lineWriter) *fakeController {
	return &fakeController{
		out:  out,
		st:   control.Status{VM: &control.VMStatus{State: vmhost.StateStopped, Since: time.Now()}, Actions: model.Actions{Start: true}},
		subs: map[chan control.Status]bool{},
	}
}

// readCommands reads status lines; a line starting with "quiet " changes
// the status without an update to subscribers (as traffic counters do).
func (c *fakeController) readCommands(f *os.File) {
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if sc.Text() == "release" && c.release != nil {
			c.releaseOnce.Do(func() { close(c.release) })
			continue
		}
		line, quiet := strings.CutPrefix(sc.Text(), "quiet ")
		var st control.Status
		if err := json.Unmarshal([]byte(line), &st); err != nil {
			fmt.Fprintln(os.Stderr, "helper: bad status line:", err)
			continue
		}
		if quiet {
			c.mu.Lock()
			st.Actions = model.Allowed(st.VM, st.Link.State)
			c.st = st
			c.mu.Unlock()
			continue
		}
		c.set(func(s *control.Status) { *s = st })
	}
}

func (c *fakeController) set(f func(*control.Status)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.st.VM != nil {
		vm := *c.st.VM
		c.st.VM = &vm
	}
	f(&c.st)
	c.st.Actions = model.Allowed(c.st.VM, c.st.Link.State) // as the controller decides them
	for ch := range c.subs {
		select {
		case ch <- c.st:
		default:
			select {
			case <-ch:
			default:
			}
			ch <- c.st
		}
	}
}

func (c *fakeController) Status() control.Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st
}

func (c *fakeController) Subscribe() (<-chan control.Status, func()) {
	ch := make(chan control.Status, 1)
	c.mu.Lock()
	c.subs[ch] = true
	c.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			c.mu.Lock()
			delete(c.subs, ch)
			c.mu.Unlock()
			close(ch)
		})
	}
}

func (c *fakeController) Reconnect() error {
	c.out.line("Reconnect")
	c.set(func(s *control.Status) { s.Link.Reconnects++; s.Link.Since = time.Now() })
	return nil
}

func (c *fakeController) StartVM(ctx context.Context) error {
	c.out.line("StartVM")
	c.set(func(s *control.Status) {
		s.VM = &control.VMStatus{State: vmhost.StateRunning, Since: time.Now()}
		s.Link = netlink.Status{State: netlink.StateUp, Since: time.Now()}
	})
	return nil
}

func (c *fakeController) StopVM(ctx context.Context) error {
	c.out.line("StopVM")
	if c.release != nil {
		c.set(func(s *control.Status) { s.VM = &control.VMStatus{State: vmhost.StateStopping, Since: time.Now()} })
		select {
		case <-c.release:
		case <-ctx.Done():
			return ctx.Err() // the VM goes on stopping
		}
	}
	c.set(func(s *control.Status) {
		s.VM = &control.VMStatus{State: vmhost.StateStopped, Since: time.Now()}
		s.Link.State = netlink.StateStopped
	})
	return nil
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
