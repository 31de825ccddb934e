package cli

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/vmnetbar/vmnetbar/internal/testbus"
	"github.com/vmnetbar/vmnetbar/internal/testguest"
	"github.com/vmnetbar/vmnetbar/internal/testwait"
)

// trayDesktop starts a private session bus with a tray host on it and
// makes it the session bus of the vmnetbar processes the test starts.
func trayDesktop(t *testing.T) (*dbus.Conn, *testbus.Watcher) {
	t.Helper()
	addr := testbus.Start(t)
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", addr)
	conn := testbus.Connect(t, addr)
	return conn, testbus.ServeWatcher(t, conn)
}

// clickMenu clicks the tray menu item whose label starts with prefix once
// it is enabled.
func clickMenu(t *testing.T, conn *dbus.Conn, pid int, prefix string) {
	t.Helper()
	obj := conn.Object(fmt.Sprintf("org.kde.StatusNotifierItem-%d-1", pid), "/StatusNotifierItem/menu")
	var id int32 = -1
	testwait.For(t, "menu item "+prefix, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		call := obj.CallWithContext(ctx, "com.canonical.dbusmenu.GetLayout", 0, int32(0), int32(-1), []string{})
		if call.Err != nil {
			return false
		}
		var rev uint32
		var root struct {
			ID       int32
			Props    map[string]dbus.Variant
			Children []dbus.Variant
		}
		if call.Store(&rev, &root) != nil {
			return false
		}
		for _, v := range root.Children {
			f, ok := v.Value().([]interface{})
			if !ok || len(f) != 3 {
				continue
			}
			props, _ := f[1].(map[string]dbus.Variant)
			label, _ := props["label"].Value().(string)
			enabled := true
			if p, ok := props["enabled"]; ok {
				enabled, _ = p.Value().(bool)
			}
			if strings.HasPrefix(label, prefix) && enabled {
				id, _ = f[0].(int32)
				return true
			}
		}
		return false
	})
	call := obj.Call("com.canonical.dbusmenu.Event", 0, id, "clicked", dbus.MakeVariant(""), uint32(time.Now().Unix()))
	if call.Err != nil {
		t.Fatalf("clicking %q: %v", prefix, call.Err)
	}
}

// TestTrayQuit runs the app with a tray host on a private session bus: the
// icon is registered, no headless lines are printed, and Quit exits 0.
func TestTrayQuit(t *testing.T) {
	d := isolate(t)
	d.idleConfig(t)
	conn, host := trayDesktop(t)

	p := startCLI(t, nil, true)
	lines := statusLines(p)
	d.waitServing(t, p)
	testwait.For(t, "the tray icon registered", func() bool { return len(host.Registered()) > 0 })
	clickMenu(t, conn, p.cmd.Process.Pid, "Quit")
	if took := p.wait(t, 20*time.Second); p.code != ExitOK {
		t.Fatalf("exit %d %v after Quit; stderr:\n%s", p.code, took, p.stderr.String())
	}
	if strings.Contains(p.stderr.String(), "no tray available") {
		t.Fatalf("fell back to headless:\n%s", p.stderr.String())
	}
	for l := range lines {
		t.Fatalf("tray mode printed a status line: %q", l)
	}
}

// TestTrayQuitStopsGuest boots the test guest with the tray and clicks
// Quit: the guest powers off (not forced) and the app exits 0.
func TestTrayQuitStopsGuest(t *testing.T) {
	testTrayStopsGuest(t, func(p *proc, conn *dbus.Conn) { clickMenu(t, conn, p.cmd.Process.Pid, "Quit") })
}

// TestTraySIGTERMStopsGuest boots the test guest with the tray and sends
// SIGTERM: the tray stops the guest (powered off, not forced) before it
// removes its icon, and the app exits 0.
func TestTraySIGTERMStopsGuest(t *testing.T) {
	p := testTrayStopsGuest(t, func(p *proc, _ *dbus.Conn) {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	})
	log := p.stderr.String()
	off := strings.Index(log, "the guest powered off")
	trayGone := strings.Index(log, "stopping vmnetbar: shutting the VM down if it runs")
	if !strings.Contains(log, "stopping the VMs before removing the tray") || off < 0 || trayGone < off {
		t.Fatalf("the tray was removed before the guest powered off:\n%s", log)
	}
}

// TestTraySecondSignalKeepsGracefulStop: while the tray stops the guest
// after a SIGTERM, a second SIGTERM is logged and changes nothing: the
// guest still powers off gracefully and the app exits 0.
func TestTraySecondSignalKeepsGracefulStop(t *testing.T) {
	p := testTrayStopsGuest(t, func(p *proc, _ *dbus.Conn) {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		testwait.For(t, "the tray to stop the VM", func() bool {
			return strings.Contains(p.stderr.String(), "stopping the VMs before removing the tray")
		})
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	})
	if !strings.Contains(p.stderr.String(), "already stopping the VM gracefully") {
		t.Fatalf("the second SIGTERM was not logged:\n%s", p.stderr.String())
	}
}

// startTrayGuest runs the app with its tray and the test guest and returns
// once the guest is ready to power off.
func startTrayGuest(t *testing.T) (p *proc, conn *dbus.Conn, console string) {
	t.Helper()
	d, _, console := guestApp(t, testguest.Options{}, false)
	conn, host := trayDesktop(t)

	p = startCLI(t, nil, false, "tray")
	d.waitServing(t, p)
	testwait.For(t, "the tray icon registered", func() bool { return len(host.Registered()) > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if _, err := testguest.WaitLog(ctx, console, p.done, "the guest ready", func(l testguest.Log) bool { return l.ACPID && l.Ready }); err != nil {
		t.Fatalf("%v; stderr:\n%s", err, p.stderr.String())
	}
	return p, conn, console
}

// testTrayStopsGuest runs the app with its tray and the test guest, calls
// stop once the guest is ready and checks that the guest powered off
// cleanly and the app exited 0.
func testTrayStopsGuest(t *testing.T, stop func(*proc, *dbus.Conn)) *proc {
	t.Helper()
	p, conn, console := startTrayGuest(t)
	stop(p, conn)
	if took := p.wait(t, 60*time.Second); p.code != ExitOK {
		t.Fatalf("exit %d %v after the stop; stderr:\n%s", p.code, took, p.stderr.String())
	}
	if l, _ := testguest.ReadLog(console); l.PowerOff == "" {
		t.Fatalf("the guest did not power off cleanly: %s", l.Summary())
	}
	if strings.Contains(p.stderr.String(), "killing QEMU") {
		t.Fatalf("the VM was forced off:\n%s", p.stderr.String())
	}
	return p
}
