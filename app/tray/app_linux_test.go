package tray

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/assets"
	"github.com/vmnetbar/vmnetbar/internal/testbin"
	"github.com/vmnetbar/vmnetbar/internal/testbus"
	"github.com/vmnetbar/vmnetbar/internal/testdaemon"
	"github.com/vmnetbar/vmnetbar/internal/testguest"
	"github.com/vmnetbar/vmnetbar/internal/testwait"
	"github.com/vmnetbar/vmnetbar/netlink"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

// labelLog records every label the tray sets, from its dbusmenu
// ItemsPropertiesUpdated signals, so short-lived labels are seen too.
type labelLog struct {
	mu     sync.Mutex
	labels []string
}

func (l *labelLog) seen(re *regexp.Regexp) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.labels {
		if re.MatchString(s) {
			return s, true
		}
	}
	return "", false
}

func (l *labelLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.labels = nil
}

func recordLabels(t *testing.T, conn *dbus.Conn) *labelLog {
	t.Helper()
	err := conn.AddMatchSignal(dbus.WithMatchInterface("com.canonical.dbusmenu"), dbus.WithMatchMember("ItemsPropertiesUpdated"))
	if err != nil {
		t.Fatal(err)
	}
	l := &labelLog{}
	ch := make(chan *dbus.Signal, 256)
	conn.Signal(ch)
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case sig := <-ch:
				var updated []struct {
					ID    int32
					Props map[string]dbus.Variant
				}
				var removed []struct {
					ID    int32
					Names []string
				}
				if sig == nil || dbus.Store(sig.Body, &updated, &removed) != nil {
					continue
				}
				l.mu.Lock()
				for _, u := range updated {
					if v, ok := u.Props["label"]; ok {
						if s, ok := v.Value().(string); ok {
							l.labels = append(l.labels, s)
						}
					}
				}
				l.mu.Unlock()
			case <-done:
				return
			}
		}
	}()
	t.Cleanup(func() {
		conn.RemoveSignal(ch)
		close(done)
		<-stopped
	})
	return l
}

// TestAppTrayOverDBus runs the real app (vmnetbar run, not headless) with
// the test guest under QEMU and gvproxy as the daemon, and drives its tray
// over D-Bus: reconnect by click, a daemon crash, Stop VM, Start VM and Quit.
func TestAppTrayOverDBus(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM; skipped with -short")
	}
	g := testguest.Ensure(t)
	if _, err := testguest.FindQEMU(); err != nil {
		testguest.SkipOrFatal(t, err)
	}
	root, err := os.MkdirTemp("", "vmnbt-") // short: socket paths live here
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	daemon := testdaemon.Start(t, root)
	bin := testbin.Path(t)

	addr := testbus.Start(t)
	conn := testbus.Connect(t, addr)
	testbus.ServeWatcher(t, conn)
	labels := recordLabels(t, conn)

	console := filepath.Join(root, "console.log")
	cfgFile := filepath.Join(root, "config.yaml")
	cfg := testbin.GuestConfig{Guest: g, Options: testguest.Options{Forever: true, Interval: 200 * time.Millisecond},
		ConsoleLog: console, Socket: daemon.SocketPath(), FastReconnect: true}.YAML()
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(),
		"XDG_CONFIG_HOME="+filepath.Join(root, "c"),
		"XDG_STATE_HOME="+filepath.Join(root, "s"),
		"XDG_RUNTIME_DIR="+filepath.Join(root, "r"),
		"DBUS_SESSION_BUS_ADDRESS="+addr,
	)
	// The one VM's status, from `vmnetbar status --json` in any of its
	// forms: {"vms": [...]}, a VM's {"name", "vm", "link"} or {"vm", "link"}.
	statusJSON := func() model.VMStatus {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "status", "--json")
		cmd.Env = env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("vmnetbar status --json: %v; stderr: %s", err, stderr.String())
		}
		var st struct {
			VMs  []model.VMStatus `json:"vms"`
			VM   *model.VM        `json:"vm"`
			Link netlink.Status   `json:"link"`
		}
		if err := json.Unmarshal(stdout.Bytes(), &st); err != nil {
			t.Fatalf("vmnetbar status --json printed %q: %v", stdout.String(), err)
		}
		switch {
		case len(st.VMs) == 1:
			return st.VMs[0]
		case st.VM != nil && st.VMs == nil:
			return model.VMStatus{VM: *st.VM, Link: st.Link}
		}
		t.Fatalf("vmnetbar status --json printed %q: want one VM", stdout.String())
		return model.VMStatus{}
	}

	cmd := exec.Command(bin, "run", "--config", cfgFile, "--log-level", "debug")
	cmd.Env = env
	app := start(t, cmd, conn)

	// waitMenu with a boot-sized deadline: the guest boots under TCG.
	waitMenu := func(what string, cond func([]entry) bool) []entry {
		t.Helper()
		var last []entry
		read := testwait.ValueEvery(t, 90*time.Second, 20*time.Millisecond, "the menu to show "+what,
			func() menuRead {
				select {
				case <-app.exited:
					t.Fatalf("vmnetbar exited (%v) while waiting for %s", app.exitErr, what)
				default:
				}
				m, err := app.menu()
				if err == nil {
					last = m
				}
				return menuRead{menu: last, fresh: err == nil}
			},
			func(r menuRead) bool { return r.fresh && cond(r.menu) })
		return read.menu
	}
	reconnects := func(m []entry) int {
		e, _ := find(m, "Link: up · ")
		n, _ := strconv.Atoi(strings.Fields(strings.TrimPrefix(e.Label, "Link: up · "))[0])
		return n
	}

	m := waitMenu("the VM running and the link up", all(hasLabel("VM: running"), hasLabel("Link: up · 0 reconnects"),
		enabled("Stop VM", true), enabled("Start VM", false), enabled("Reconnect now", true),
		enabled("Open console log", true), enabled("Open config", true)))
	t.Logf("menu: %+v", m)
	app.waitIcon(assets.IconUp)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if _, err := testguest.WaitLog(ctx, console, app.exited, "pings through the link", func(l testguest.Log) bool { return l.OKPings() >= 2 }); err != nil {
		t.Fatal(err)
	}

	// Reconnect now: the count goes up in the menu and in the status.
	// (With gvproxy one manual reconnect may count two: the redial can
	// land in the backlog of the gvproxy that is exiting.)
	app.click("Reconnect now")
	m = waitMenu("a reconnect", func(m []entry) bool { _, ok := find(m, "Link: up · "); return ok && reconnects(m) >= 1 })
	n := reconnects(m)
	// The second, gvproxy-made reconnect may be under way: wait for up.
	var st model.VMStatus
	testwait.For(t, "status --json to show the link up again", func() bool {
		st = statusJSON()
		return st.Link.State == netlink.StateUp
	})
	if st.Link.Reconnects < uint64(n) {
		t.Fatalf("status --json after Reconnect now: link %+v, the menu said %d reconnects", st.Link, n)
	}
	n = int(st.Link.Reconnects)
	t.Logf("after Reconnect now: %d reconnect(s)", n)
	if n > 2 {
		t.Errorf("one click on Reconnect now counted %d reconnects, want 1 (or 2 with gvproxy's restart)", n)
	}

	// The daemon crashes and stays away for 3 s: the menu says
	// reconnecting, then up with more reconnects. Only this outage lasts
	// long enough for the label to count a second ("reconnecting 1s"; the
	// menu is refreshed every 2 s), which tells it apart from the short one
	// gvproxy may add after the manual reconnect.
	labels.reset()
	if err := daemon.KillAndPause(3 * time.Second); err != nil {
		t.Fatal(err)
	}
	outage := regexp.MustCompile(`^Link: reconnecting [1-9][0-9]*(\.[0-9])?s`)
	testwait.For(t, "the menu to say reconnecting", func() bool { _, ok := labels.seen(outage); return ok })
	waitMenu("the link back up", func(m []entry) bool { _, ok := find(m, "Link: up · "); return ok && reconnects(m) > n })
	app.waitIcon(assets.IconUp)
	if st := statusJSON(); st.Link.Reconnects <= uint64(n) {
		t.Errorf("status --json after the daemon crash: %d reconnects, want more than %d", st.Link.Reconnects, n)
	}

	// Stop VM: the guest powers off and the menu offers Start VM.
	app.click("Stop VM")
	waitMenu("the VM stopped", all(hasLabel("VM: stopped"), enabled("Start VM", true), enabled("Stop VM", false),
		enabled("Reconnect now", false)))
	app.waitIcon(assets.IconStopped)
	if st := statusJSON(); st.VM.State != vmhost.StateStopped {
		t.Fatalf("status --json after Stop VM: %+v", st.VM)
	}
	if l, _ := testguest.ReadLog(console); l.PowerOff == "" {
		t.Errorf("the guest did not power off cleanly: %s", l.Summary())
	}

	// Start VM again, then Quit: the app stops the VM and exits 0.
	before, _ := testguest.ReadLog(console)
	app.click("Start VM")
	waitMenu("the VM running again", all(hasLabel("VM: running"), hasLabel("Link: up")))
	// The guest powers off on request once its userspace runs: wait for
	// its pings through the link after the second boot.
	if _, err := testguest.WaitLog(ctx, console, app.exited, "pings after the second boot", func(l testguest.Log) bool {
		return l.Boots >= 2 && l.OKPings() >= before.OKPings()+2
	}); err != nil {
		t.Fatal(err)
	}
	app.click("Quit")
	select {
	case <-app.exited:
	case <-time.After(90 * time.Second):
		t.Fatal("vmnetbar did not exit within 90s of Quit")
	}
	if app.exitErr != nil {
		t.Fatalf("vmnetbar exited with %v after Quit, want exit status 0", app.exitErr)
	}
	if l, _ := testguest.ReadLog(console); l.Boots < 2 || l.PowerOff == "" {
		t.Errorf("console after Quit: %s; want two boots and a clean power-off", l.Summary())
	}
	if strings.Contains(app.stderr.String(), "killing QEMU") {
		t.Errorf("the VM was forced off:\n%s", app.stderr.String())
	}
}

// menuRead is one read of the menu by a wait, shown when the wait fails.
type menuRead struct {
	menu  []entry // the last menu read
	fresh bool    // menu was read now (a failed read leaves the last one)
}

func (r menuRead) String() string { return fmt.Sprintf("menu %+v", r.menu) }
