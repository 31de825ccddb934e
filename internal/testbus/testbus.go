// Package testbus runs a private D-Bus session bus for one test, and a fake
// tray host (org.kde.StatusNotifierWatcher) on it, so tests can show and
// drive a real StatusNotifierItem or send real notifications without a
// desktop.
//
// It is test infrastructure, never part of the vmnetbar binary. It imports
// the standard library and godbus.
package testbus

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/prop"
)

// startTimeout bounds the wait for dbus-daemon's address.
const startTimeout = 10 * time.Second

// Start starts a private session bus (dbus-daemon --session) and returns its
// address. The bus stops when the test ends. Without dbus-daemon the test is
// skipped, or fails when the environment has CI=true.
func Start(t testing.TB) string {
	t.Helper()
	daemon, err := exec.LookPath("dbus-daemon")
	if err != nil {
		skipOrFatal(t, fmt.Errorf("dbus-daemon not installed (%v); install the dbus package to run the D-Bus tests", err))
	}
	cmd := exec.Command(daemon, "--session", "--nofork", "--nopidfile", "--print-address=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logWriter{t: t}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting dbus-daemon: %v", err)
	}
	done := make(chan struct{})
	addrc := make(chan string, 1)
	go func() {
		defer close(done)
		br := bufio.NewReader(stdout)
		line, _ := br.ReadString('\n')
		addrc <- strings.TrimSpace(line)
		io.Copy(io.Discard, br)
		cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	select {
	case addr := <-addrc:
		if addr == "" {
			t.Fatal("dbus-daemon printed no address")
		}
		return addr
	case <-time.After(startTimeout):
		t.Fatalf("dbus-daemon printed no address within %v", startTimeout)
		return ""
	}
}

func skipOrFatal(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(err)
	}
	t.Skip(err)
}

// logWriter copies dbus-daemon's stderr into the test log.
type logWriter struct{ t testing.TB }

func (w logWriter) Write(b []byte) (int, error) {
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			w.t.Log("dbus-daemon: " + line)
		}
	}
	return len(b), nil
}

// Connect opens a private connection to the bus at addr, closed when the
// test ends.
func Connect(t testing.TB, addr string) *dbus.Conn {
	t.Helper()
	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatalf("connecting to the test bus: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// WatcherName is the bus name of the tray host.
const WatcherName = "org.kde.StatusNotifierWatcher"

// Watcher is a minimal StatusNotifierWatcher, the tray host: it accepts
// items and says a host is registered. A fair stand-in for a desktop panel.
type Watcher struct {
	mu    sync.Mutex
	items []string // "sender service" per registration
}

// RegisterStatusNotifierItem is the D-Bus method items call.
func (w *Watcher) RegisterStatusNotifierItem(sender dbus.Sender, service string) *dbus.Error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.items = append(w.items, string(sender)+" "+service)
	return nil
}

// RegisterStatusNotifierHost is the D-Bus method hosts call.
func (w *Watcher) RegisterStatusNotifierHost(string) *dbus.Error { return nil }

// Registered returns one "sender service" string per item registration.
func (w *Watcher) Registered() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.items...)
}

// ServeWatcher serves a Watcher on conn and makes it own WatcherName.
func ServeWatcher(t testing.TB, conn *dbus.Conn) *Watcher {
	t.Helper()
	w := &Watcher{}
	const path = "/StatusNotifierWatcher"
	if err := conn.Export(w, path, WatcherName); err != nil {
		t.Fatal(err)
	}
	_, err := prop.Export(conn, path, map[string]map[string]*prop.Prop{
		WatcherName: {
			"IsStatusNotifierHostRegistered": {Value: true, Emit: prop.EmitTrue},
			"RegisteredStatusNotifierItems":  {Value: []string{}, Emit: prop.EmitTrue},
			"ProtocolVersion":                {Value: int32(0), Emit: prop.EmitTrue},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	reply, err := conn.RequestName(WatcherName, dbus.NameFlagDoNotQueue)
	if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("owning %s: reply %v, %v", WatcherName, reply, err)
	}
	return w
}
