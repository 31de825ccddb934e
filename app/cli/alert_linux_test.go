package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vmnetbar/vmnetbar/app/config"
)

// fakeAlerter records its alerts.
type fakeAlerter struct {
	mu     sync.Mutex
	alerts [][2]string
}

func (f *fakeAlerter) Alert(title, message string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.alerts = append(f.alerts, [2]string{title, message})
	return nil
}

// openPTY opens a pseudo-terminal and returns its terminal side, whose
// output is read and dropped until the test ends.
func openPTY(t *testing.T) *os.File {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlocking the pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pseudo-terminal number: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(io.Discard, m)
	}()
	t.Cleanup(func() { s.Close(); m.Close(); <-done })
	return s
}

func TestIsTerminal(t *testing.T) {
	if !isTerminal(openPTY(t)) {
		t.Error("a pseudo-terminal is not a terminal")
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	for name, out := range map[string]io.Writer{"a file": f, "a pipe": w, "a buffer": &bytes.Buffer{}} {
		if isTerminal(out) {
			t.Errorf("%s is a terminal", name)
		}
	}
}

// TestFailedLaunchAlerts: a launch that fails shows its message with the
// alerter when standard error is not a terminal (started from Finder or at
// login), and only then.
func TestFailedLaunchAlerts(t *testing.T) {
	d := isolate(t)
	missing := filepath.Join(d.root, "missing.yaml")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"run", "--headless"}, ExitFailure, "no VM configured: edit " + d.configFile}, // after the log opened
		{[]string{"--config", missing}, ExitUsage, missing + ": the file does not exist"},      // plain vmnetbar
		{[]string{"tray", "--log-level", "loud"}, ExitUsage, `unknown --log-level "loud"`},     // before it
	} {
		// Standard error is a pipe or a file: the alert shows.
		a := &fakeAlerter{}
		var stderr bytes.Buffer
		code := Main(tc.args, Env{Version: "test", Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: &stderr, Alerter: a})
		if code != tc.code {
			t.Errorf("%q: exit %d, want %d; stderr %q", tc.args, code, tc.code, stderr.String())
		}
		if len(a.alerts) != 1 || a.alerts[0][0] != alertTitle || !strings.Contains(a.alerts[0][1], tc.want) {
			t.Errorf("%q: alerts %q, want one with %q", tc.args, a.alerts, tc.want)
		}
		if len(a.alerts) == 1 && !strings.Contains(stderr.String(), a.alerts[0][1]) {
			t.Errorf("%q: the alert %q is not the message on stderr %q", tc.args, a.alerts[0][1], stderr.String())
		}

		// Standard error is a terminal: the user sees it there.
		a = &fakeAlerter{}
		if code := Main(tc.args, Env{Version: "test", Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: openPTY(t), Alerter: a}); code != tc.code {
			t.Errorf("%q on a terminal: exit %d, want %d", tc.args, code, tc.code)
		}
		if len(a.alerts) != 0 {
			t.Errorf("%q on a terminal: alerts %q, want none", tc.args, a.alerts)
		}
	}
	// Bad usage found by the parser is not a launch, and other commands
	// never alert.
	for _, args := range [][]string{{"status", "--bogus"}, {"status", "--control", filepath.Join(d.root, "none.sock")}} {
		a := &fakeAlerter{}
		Main(args, Env{Version: "test", Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: io.Discard, Alerter: a})
		if len(a.alerts) != 0 {
			t.Errorf("%q: alerts %q, want none", args, a.alerts)
		}
	}
}

// TestAlertWithoutSessionBus: Linux's alerter shows nothing, and says
// nothing, without a session bus; $VMNETBAR_NO_ALERT turns it off.
func TestAlertWithoutSessionBus(t *testing.T) {
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "")
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	t.Setenv(noAlertEnv, "")
	a := newAlerter()
	if a == nil {
		t.Fatal("no alerter")
	}
	if err := a.Alert("t", "m"); err != nil {
		t.Errorf("Alert without a session bus: %v", err)
	}
	t.Setenv(noAlertEnv, "1")
	if a := newAlerter(); a != nil {
		t.Errorf("alerter %T with %s set", a, noAlertEnv)
	}
}

// Another instance running is no reason for an alert: launchd starts a
// second one whenever launch at login is turned on.
func TestAlreadyRunningDoesNotAlert(t *testing.T) {
	isolate(t)
	paths, err := config.DefaultPaths()
	if err != nil {
		t.Fatal(err)
	}
	release, err := lockInstance(paths.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	a := &fakeAlerter{}
	var stderr bytes.Buffer
	code := Main([]string{"run", "--headless"}, Env{Version: "test", Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: &stderr, Alerter: a})
	if code != ExitFailure || !strings.Contains(stderr.String(), "already running") || len(a.alerts) != 0 {
		t.Fatalf("exit %d, stderr %q, alerts %q", code, stderr.String(), a.alerts)
	}
}
