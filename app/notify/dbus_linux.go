package notify

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/godbus/dbus/v5"
	"github.com/sirupsen/logrus"
)

// The Desktop Notifications Specification's service.
const (
	notifyName      = "org.freedesktop.Notifications"
	notifyPath      = dbus.ObjectPath("/org/freedesktop/Notifications")
	notifyInterface = "org.freedesktop.Notifications"
)

// NewSender returns the Linux Sender: org.freedesktop.Notifications on
// the D-Bus session bus ($DBUS_SESSION_BUS_ADDRESS, else
// $XDG_RUNTIME_DIR/bus).
func NewSender(log logrus.FieldLogger) (Sender, error) {
	addr, err := sessionBusAddress(os.Getenv)
	if err != nil {
		return nil, err
	}
	return NewDBus(addr), nil
}

// sessionBusAddress finds the session bus without starting one.
func sessionBusAddress(getenv func(string) string) (string, error) {
	if a := getenv("DBUS_SESSION_BUS_ADDRESS"); a != "" && a != "autolaunch:" {
		return a, nil
	}
	if dir := getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(dir) {
		p := filepath.Join(dir, "bus")
		if st, err := os.Stat(p); err == nil && st.Mode().Type() == os.ModeSocket {
			return "unix:path=" + p, nil
		}
	}
	return "", errors.New("notify: no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is unset and $XDG_RUNTIME_DIR/bus does not exist); notifications need a desktop session")
}

// DBus shows notifications through org.freedesktop.Notifications. It
// connects for each notification (they are rare), so it holds no
// connection and needs no Close, and it survives a restarted bus. A
// notification replaces the previous one, so "restored" takes the place of
// "lost".
type DBus struct {
	addr string

	mu     sync.Mutex
	lastID uint32 // id of the last notification shown, 0 if none
}

var _ Sender = (*DBus)(nil)

// NewDBus returns a Sender that talks to the bus at addr.
func NewDBus(addr string) *DBus { return &DBus{addr: addr} }

// Send shows one notification.
func (d *DBus) Send(title, body string) error {
	ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
	defer cancel()
	conn, err := dbus.Connect(d.addr, dbus.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("notify: connecting to the session bus %s: %w", d.addr, err)
	}
	defer conn.Close()
	obj := conn.Object(notifyName, notifyPath)

	// Servers with body-markup parse the body as markup: escape it.
	var caps []string
	if err := obj.CallWithContext(ctx, notifyInterface+".GetCapabilities", 0).Store(&caps); err != nil {
		return fmt.Errorf("notify: %s.GetCapabilities: %w", notifyInterface, err)
	}
	if slices.Contains(caps, "body-markup") {
		body = markupEscaper.Replace(body)
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	var id uint32
	err = obj.CallWithContext(ctx, notifyInterface+".Notify", 0,
		"vmnetbar",                // app_name
		d.lastID,                  // replaces_id
		"",                        // app_icon: the server's default
		title,                     // summary
		body,                      // body
		[]string{},                // actions
		map[string]dbus.Variant{}, // hints
		int32(-1),                 // expire_timeout: the server's default
	).Store(&id)
	if err != nil {
		return fmt.Errorf("notify: %s.Notify: %w", notifyInterface, err)
	}
	d.lastID = id
	return nil
}

// markupEscaper escapes the characters the notification markup reserves.
var markupEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")
