package tray

import (
	"context"
	"fmt"
	"os"
	"time"

	"fyne.io/systray"
	"github.com/godbus/dbus/v5"
)

// daemonHelp: see daemonHelpFor.
func daemonHelp() DaemonHelp { return daemonHelpFor("linux") }

// openCommand: see openCommandFor.
func openCommand(path string, text bool) []string { return openCommandFor("linux", path, text) }

// watcherName is the bus name of the tray host (the panel) that shows
// StatusNotifierItems.
const watcherName = "org.kde.StatusNotifierWatcher"

// probeTimeout bounds the session bus check.
const probeTimeout = 5 * time.Second

// probe reports ErrUnavailable unless a D-Bus session bus answers and a
// tray host owns org.kde.StatusNotifierWatcher on it. It uses a private
// connection and closes it.
func probe(ctx context.Context) error {
	addr := os.Getenv("DBUS_SESSION_BUS_ADDRESS")
	if addr == "" {
		return fmt.Errorf("%w: no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is not set); run vmnetbar in a desktop session, or use --headless", ErrUnavailable)
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	conn, err := dbus.Connect(addr, dbus.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("%w: cannot connect to the D-Bus session bus at %s: %v; run vmnetbar in a desktop session, or use --headless", ErrUnavailable, addr, err)
	}
	defer conn.Close()
	var has bool
	err = conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.NameHasOwner", 0, watcherName).Store(&has)
	if err != nil {
		return fmt.Errorf("%w: asking the D-Bus session bus for a tray host failed: %v", ErrUnavailable, err)
	}
	if !has {
		return fmt.Errorf("%w: no tray host on the D-Bus session bus (nobody owns %s); start a panel with a StatusNotifier tray (KDE, Xfce with its status tray plugin, GNOME with the AppIndicator extension), or use --headless", ErrUnavailable, watcherName)
	}
	return nil
}

// setAppTitle names the StatusNotifierItem (hosts show it in lists).
func setAppTitle() { systray.SetTitle("vmnetbar") }
