package notify

import (
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/vmnetbar/vmnetbar/internal/testbus"
	"github.com/vmnetbar/vmnetbar/netlink"
)

// notifyCall is one Notify call a notificationServer received.
type notifyCall struct {
	appName    string
	replacesID uint32
	summary    string
	body       string
	timeout    int32
}

// notificationServer owns org.freedesktop.Notifications on a bus and
// records the calls it gets.
type notificationServer struct {
	caps []string

	mu    sync.Mutex
	calls []notifyCall
	next  uint32
}

func (s *notificationServer) GetCapabilities() ([]string, *dbus.Error) {
	return s.caps, nil
}

func (s *notificationServer) Notify(appName string, replacesID uint32, appIcon, summary, body string,
	actions []string, hints map[string]dbus.Variant, timeout int32) (uint32, *dbus.Error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, notifyCall{appName, replacesID, summary, body, timeout})
	s.next += 7
	return s.next, nil
}

func (s *notificationServer) got() []notifyCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]notifyCall(nil), s.calls...)
}

func serveNotifications(t *testing.T, addr string, caps ...string) *notificationServer {
	t.Helper()
	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	s := &notificationServer{caps: caps}
	if err := conn.Export(s, notifyPath, notifyInterface); err != nil {
		t.Fatal(err)
	}
	reply, err := conn.RequestName(notifyName, dbus.NameFlagDoNotQueue)
	if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("owning %s: %v, %v", notifyName, reply, err)
	}
	return s
}

func TestDBusSend(t *testing.T) {
	addr := testbus.Start(t)
	srv := serveNotifications(t, addr, "body")
	d := NewDBus(addr)
	if err := d.Send("first", "a < b & c"); err != nil {
		t.Fatal(err)
	}
	if err := d.Send("second", "line"); err != nil {
		t.Fatal(err)
	}
	got := srv.got()
	want := []notifyCall{
		{"vmnetbar", 0, "first", "a < b & c", -1},
		{"vmnetbar", 7, "second", "line", -1}, // replaces the first
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("server got %+v, want %+v", got, want)
	}
}

func TestDBusEscapesMarkup(t *testing.T) {
	addr := testbus.Start(t)
	srv := serveNotifications(t, addr, "body", "body-markup")
	if err := NewDBus(addr).Send("t", `<b>a</b> & "c"`); err != nil {
		t.Fatal(err)
	}
	if got := srv.got(); len(got) != 1 || got[0].body != `&lt;b&gt;a&lt;/b&gt; &amp; "c"` {
		t.Errorf("server got %+v, want the body escaped", got)
	}
}

func TestDBusWithoutServer(t *testing.T) {
	addr := testbus.Start(t)
	err := NewDBus(addr).Send("t", "b")
	if err == nil || !strings.Contains(err.Error(), "org.freedesktop.Notifications") {
		t.Errorf("Send with no notification server = %v, want an error naming the service", err)
	}
	err = NewDBus("unix:path="+filepath.Join(t.TempDir(), "nobus")).Send("t", "b")
	if err == nil || !strings.Contains(err.Error(), "connecting to the session bus") {
		t.Errorf("Send with no bus = %v, want a connection error", err)
	}
}

func TestSessionBusAddress(t *testing.T) {
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	if _, err := sessionBusAddress(getenv); err == nil || !strings.Contains(err.Error(), "DBUS_SESSION_BUS_ADDRESS is unset") {
		t.Errorf("no bus: %v", err)
	}
	run := t.TempDir()
	env["XDG_RUNTIME_DIR"] = run
	if _, err := sessionBusAddress(getenv); err == nil {
		t.Error("XDG_RUNTIME_DIR without a bus socket accepted")
	}
	l, err := net.Listen("unix", filepath.Join(run, "bus"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if a, err := sessionBusAddress(getenv); err != nil || a != "unix:path="+filepath.Join(run, "bus") {
		t.Errorf("XDG_RUNTIME_DIR/bus: %q, %v", a, err)
	}
	env["DBUS_SESSION_BUS_ADDRESS"] = "unix:path=/x"
	if a, err := sessionBusAddress(getenv); err != nil || a != "unix:path=/x" {
		t.Errorf("DBUS_SESSION_BUS_ADDRESS: %q, %v", a, err)
	}
}

// TestNotifierOverDBus runs the whole path: link updates in, notifications
// out on a real bus, the restore replacing the loss.
func TestNotifierOverDBus(t *testing.T) {
	addr := testbus.Start(t)
	srv := serveNotifications(t, addr, "body")
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", addr)
	sender, err := NewSender(nil)
	if err != nil {
		t.Fatal(err)
	}
	clock := newFakeClock()
	n, err := New(Config{Sender: sender, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	n.Update(netlink.Status{State: netlink.StateUp, Since: clock.Now()})
	n.Update(netlink.Status{State: netlink.StateReconnecting, Since: clock.Now(), LastError: "EOF"})
	clock.Advance(20 * time.Second)
	n.Update(netlink.Status{State: netlink.StateUp, Since: clock.Now(), Reconnects: 1})
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	got := srv.got()
	if len(got) != 2 || got[0].summary != TitleLost || got[1].summary != TitleRestored ||
		got[1].replacesID != 7 || got[1].body != "The VM's network is back after 20s." {
		t.Errorf("server got %+v", got)
	}
}
