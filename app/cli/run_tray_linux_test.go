package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/prop"

	"github.com/vmnetbar/vmnetbar/internal/testdaemon"
	"github.com/vmnetbar/vmnetbar/internal/testguest"
)

const watcherName = "org.kde.StatusNotifierWatcher"

// startSessionBus starts a private D-Bus session bus for one test and
// returns its address. Without dbus-daemon the test is skipped, or fails
// when CI=true.
func startSessionBus(t *testing.T) string {
	t.Helper()
	daemon, err := exec.LookPath("dbus-daemon")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("dbus-daemon is required: %v", err)
		}
		t.Skipf("dbus-daemon not installed (%v); install the dbus package to run the tray tests", err)
	}
	cmd := exec.Command(daemon, "--session", "--nofork", "--nopidfile", "--print-address=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
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
	case <-time.After(10 * time.Second):
		t.Fatal("dbus-daemon printed no address within 10s")
	}
	return ""
}

// trayHost is a minimal StatusNotifierWatcher: it makes the bus look like a
// desktop with a tray.
type trayHost struct {
	mu    sync.Mutex
	items []string
}

func (h *trayHost) RegisterStatusNotifierItem(sender dbus.Sender, service string) *dbus.Error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.items = append(h.items, service)
	return nil
}

func (h *trayHost) RegisterStatusNotifierHost(string) *dbus.Error { return nil }

func (h *trayHost) registered() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.items)
}

// startTrayHost connects to the bus at addr and serves a watcher there.
func startTrayHost(t *testing.T, addr string) (*dbus.Conn, *trayHost) {
	t.Helper()
	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatalf("connecting to the test bus: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	h := &trayHost{}
	const path = "/StatusNotifierWatcher"
	if err := conn.Export(h, path, watcherName); err != nil {
		t.Fatal(err)
	}
	if _, err := prop.Export(conn, path, map[string]map[string]*prop.Prop{watcherName: {
		"IsStatusNotifierHostRegistered": {Value: true, Emit: prop.EmitTrue},
		"RegisteredStatusNotifierItems":  {Value: []string{}, Emit: prop.EmitTrue},
		"ProtocolVersion":                {Value: int32(0), Emit: prop.EmitTrue},
	}}); err != nil {
		t.Fatal(err)
	}
	reply, err := conn.RequestName(watcherName, dbus.NameFlagDoNotQueue)
	if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("owning %s: reply %v, %v", watcherName, reply, err)
	}
	return conn, h
}

// clickMenu clicks the tray menu item whose label starts with prefix once
// it is enabled.
func clickMenu(t *testing.T, conn *dbus.Conn, pid int, prefix string) {
	t.Helper()
	obj := conn.Object(fmt.Sprintf("org.kde.StatusNotifierItem-%d-1", pid), "/StatusNotifierItem/menu")
	var id int32 = -1
	waitFor(t, "menu item "+prefix, func() bool {
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
	addr := startSessionBus(t)
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", addr)
	conn, host := startTrayHost(t, addr)

	p := startCLI(t, nil, true)
	lines := statusLines(p)
	d.waitServing(t, p)
	waitFor(t, "the tray icon registered", func() bool { return host.registered() > 0 })
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
	g := testguest.Ensure(t)
	if _, err := testguest.FindQEMU(); err != nil {
		testguest.SkipOrFatal(t, err)
	}
	d := isolate(t)
	daemon := testdaemon.Start(t, d.root)
	console := filepath.Join(d.root, "console.log")
	d.writeConfig(t, fmt.Sprintf("vm:\n  kernel: %s\n  initrd: %s\n  cmdline: %q\n  cpus: 1\n  memory: 256MiB\n  console_log: %s\n  accel: tcg\nnetwork:\n  socket: %s\n",
		g.Kernel, g.Initrd, testguest.Cmdline(testguest.Options{}), console, daemon.SocketPath()))
	addr := startSessionBus(t)
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", addr)
	conn, host := startTrayHost(t, addr)

	p := startCLI(t, nil, false, "tray")
	d.waitServing(t, p)
	waitFor(t, "the tray icon registered", func() bool { return host.registered() > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if _, err := testguest.WaitLog(ctx, console, p.done, "the guest ready", func(l testguest.Log) bool { return l.ACPID && l.Ready }); err != nil {
		t.Fatalf("%v; stderr:\n%s", err, p.stderr.String())
	}
	clickMenu(t, conn, p.cmd.Process.Pid, "Quit")
	if took := p.wait(t, 60*time.Second); p.code != ExitOK {
		t.Fatalf("exit %d %v after Quit; stderr:\n%s", p.code, took, p.stderr.String())
	}
	if l, _ := testguest.ReadLog(console); l.PowerOff == "" {
		t.Fatalf("the guest did not power off cleanly: %s", l.Summary())
	}
	if strings.Contains(p.stderr.String(), "killing QEMU") {
		t.Fatalf("the VM was forced off:\n%s", p.stderr.String())
	}
}
