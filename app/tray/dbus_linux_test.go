package tray

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/assets"
	"github.com/vmnetbar/vmnetbar/internal/testbin"
	"github.com/vmnetbar/vmnetbar/internal/testbus"
	"github.com/vmnetbar/vmnetbar/internal/testwait"
	"github.com/vmnetbar/vmnetbar/netlink"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

// child is a process showing a tray on the test bus: the test helper with
// its fake controller (startChild) or the vmnetbar app (startApp).
type child struct {
	t       *testing.T
	cmd     *exec.Cmd
	dest    string // the tray's bus name
	conn    *dbus.Conn
	stderr  *testLog
	exited  chan struct{} // closed when the process has ended
	exitErr error         // its exit status, once exited is closed

	// The helper's protocol (startChild only).
	stdin  io.WriteCloser
	events chan string
}

// start starts cmd, whose tray will be on conn's bus, and kills it at the
// end of the test if it still runs. Data races the process reports in this
// module's code fail the test.
func start(t *testing.T, cmd *exec.Cmd, conn *dbus.Conn) *child {
	t.Helper()
	// Under -race, data races make a process exit with status 66.
	// fyne.io/systray has races of its own (its menu revision counter), so
	// the exit status ignores races and checkRaces fails the test for any
	// in this module.
	cmd.Env = append(cmd.Env, testbin.RaceEnv)
	c := &child{t: t, cmd: cmd, conn: conn, stderr: &testLog{t: t}, exited: make(chan struct{})}
	cmd.Stderr = c.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c.dest = fmt.Sprintf("org.kde.StatusNotifierItem-%d-1", cmd.Process.Pid)
	go func() {
		c.exitErr = cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-c.exited
		c.stderr.checkRaces()
	})
	return c
}

// startChild runs the test helper: the tray with a fake controller.
func startChild(t *testing.T, addr string, conn *dbus.Conn, extraEnv ...string) *child {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1", "DBUS_SESSION_BUS_ADDRESS="+addr)
	cmd.Env = append(cmd.Env, extraEnv...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = w
	c := start(t, cmd, conn)
	w.Close() // the child holds the write end now
	c.stdin = stdin
	c.events = make(chan string, 256)
	go func() {
		defer r.Close()
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			c.events <- sc.Text()
		}
		close(c.events)
	}()
	return c
}

// testLog copies the child's stderr into the test log and keeps it.
type testLog struct {
	t      *testing.T
	prefix string // "" = "child: "
	mu     sync.Mutex
	all    strings.Builder
}

// checkRaces fails the test for a data race in this module's code and
// logs the others (see testbin.CheckRaces).
func (l *testLog) checkRaces() {
	l.t.Helper()
	testbin.CheckRaces(l.t, l.String())
}

func (l *testLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all.String()
}

func (l *testLog) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all.Write(b)
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if l.prefix == "" {
			l.t.Log("child: " + line)
		} else {
			l.t.Log(l.prefix + line)
		}
	}
	return len(b), nil
}

// send makes the fake's VMs those of o.
func (c *child) send(o model.Overview) { c.sendLine("", o) }

// sendVMs makes the fake's VMs vms.
func (c *child) sendVMs(vms ...model.VMStatus) { c.send(model.Overview{VMs: vms}) }

// sendQuiet changes the fake's status without an update to subscribers.
func (c *child) sendQuiet(vms ...model.VMStatus) { c.sendLine("quiet ", model.Overview{VMs: vms}) }

func (c *child) sendLine(prefix string, o model.Overview) {
	c.t.Helper()
	b, err := json.Marshal(o)
	if err != nil {
		c.t.Fatal(err)
	}
	c.write(prefix + string(b))
}

// write sends one line to the child.
func (c *child) write(line string) {
	c.t.Helper()
	if _, err := c.stdin.Write([]byte(line + "\n")); err != nil {
		c.t.Fatalf("writing to the tray process: %v", err)
	}
}

// expectEvent waits for the child's next event line and checks it.
func (c *child) expectEvent(want string) {
	c.t.Helper()
	select {
	case ev, ok := <-c.events:
		if !ok {
			c.t.Fatalf("the tray process ended while waiting for %q", want)
		}
		if ev != want {
			c.t.Fatalf("event %q, want %q", ev, want)
		}
	case <-time.After(10 * time.Second):
		c.t.Fatalf("no %q event within 10s", want)
	}
}

// expectEventLike waits for the child's next event line and checks that
// it matches re.
func (c *child) expectEventLike(re *regexp.Regexp) {
	c.t.Helper()
	select {
	case ev, ok := <-c.events:
		if !ok {
			c.t.Fatalf("the tray process ended while waiting for an event like %s", re)
		}
		if !re.MatchString(ev) {
			c.t.Fatalf("event %q, want one like %s", ev, re)
		}
	case <-time.After(10 * time.Second):
		c.t.Fatalf("no event like %s within 10s", re)
	}
}

// entry is one menu item as read over D-Bus.
type entry struct {
	ID      int32
	Label   string
	Enabled bool
	Visible bool
	Checked bool
	Sep     bool
	Sub     []entry // a submenu's entries
}

// menu reads the tray's menu with com.canonical.dbusmenu.GetLayout.
func (c *child) menu() ([]entry, error) {
	obj := c.conn.Object(c.dest, "/StatusNotifierItem/menu")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	call := obj.CallWithContext(ctx, "com.canonical.dbusmenu.GetLayout", 0, int32(0), int32(-1), []string{})
	if call.Err != nil {
		return nil, call.Err
	}
	var rev uint32
	var root struct {
		ID       int32
		Props    map[string]dbus.Variant
		Children []dbus.Variant
	}
	if err := call.Store(&rev, &root); err != nil {
		return nil, err
	}
	return entries(root.Children)
}

// entries parses dbusmenu layout items, with their submenus.
func entries(children []dbus.Variant) ([]entry, error) {
	var out []entry
	for _, v := range children {
		f, ok := v.Value().([]interface{})
		if !ok || len(f) != 3 {
			return nil, fmt.Errorf("unexpected menu item %v", v)
		}
		id, _ := f[0].(int32)
		props, _ := f[1].(map[string]dbus.Variant)
		e := entry{ID: id, Enabled: true, Visible: true}
		if kids, ok := f[2].([]dbus.Variant); ok && len(kids) > 0 {
			sub, err := entries(kids)
			if err != nil {
				return nil, err
			}
			e.Sub = sub
		}
		if p, ok := props["label"]; ok {
			e.Label, _ = p.Value().(string)
		}
		if p, ok := props["enabled"]; ok {
			e.Enabled, _ = p.Value().(bool)
		}
		if p, ok := props["visible"]; ok {
			e.Visible, _ = p.Value().(bool)
		}
		if p, ok := props["toggle-state"]; ok {
			n, _ := p.Value().(int32)
			e.Checked = n == 1
		}
		if p, ok := props["type"]; ok {
			e.Sep = p.Value() == "separator"
		}
		out = append(out, e)
	}
	return out, nil
}

// waitMenu polls the menu until cond holds and returns it with the time it
// took.
func (c *child) waitMenu(what string, cond func([]entry) bool) ([]entry, time.Duration) {
	c.t.Helper()
	start := time.Now()
	type read struct {
		menu []entry
		err  error
	}
	r := testwait.ValueEvery(c.t, 10*time.Second, 10*time.Millisecond, "the menu to show "+what,
		func() read { m, err := c.menu(); return read{m, err} },
		func(r read) bool { return r.err == nil && cond(r.menu) })
	return r.menu, time.Since(start)
}

// find returns the top-level entry whose label starts with prefix, a
// visible one first.
func find(m []entry, prefix string) (entry, bool) {
	var first entry
	found := false
	for _, e := range m {
		if strings.HasPrefix(e.Label, prefix) && !e.Sep {
			if e.Visible {
				return e, true
			}
			if !found {
				first, found = e, true
			}
		}
	}
	return first, found
}

// findIn returns the entry whose label starts with prefix in the submenu
// of the visible top-level entry whose label starts with line.
func findIn(m []entry, line, prefix string) (entry, bool) {
	l, ok := find(m, line)
	if !ok || !l.Visible {
		return entry{}, false
	}
	return find(l.Sub, prefix)
}

// visible is m's shown entries and separators.
func visible(m []entry) []entry {
	var out []entry
	for _, e := range m {
		if e.Visible || e.Sep {
			out = append(out, e)
		}
	}
	return out
}

// hasLabel is a menu condition: an item's label starts with prefix.
func hasLabel(prefix string) func([]entry) bool {
	return func(m []entry) bool { _, ok := find(m, prefix); return ok }
}

// enabled is a menu condition: the item is shown and enabled (or not).
func enabled(prefix string, want bool) func([]entry) bool {
	return func(m []entry) bool {
		e, ok := find(m, prefix)
		return ok && e.Visible && e.Enabled == want
	}
}

func all(conds ...func([]entry) bool) func([]entry) bool {
	return func(m []entry) bool {
		for _, c := range conds {
			if !c(m) {
				return false
			}
		}
		return true
	}
}

// click sends a dbusmenu "clicked" event to the item whose label starts
// with prefix.
func (c *child) click(prefix string) {
	c.t.Helper()
	m, err := c.menu()
	if err != nil {
		c.t.Fatal(err)
	}
	e, ok := find(m, prefix)
	if !ok {
		c.t.Fatalf("no menu item %q in %+v", prefix, m)
	}
	c.clickID(e.ID)
}

func (c *child) clickID(id int32) {
	c.t.Helper()
	obj := c.conn.Object(c.dest, "/StatusNotifierItem/menu")
	call := obj.Call("com.canonical.dbusmenu.Event", 0, id, "clicked", dbus.MakeVariant(""), uint32(time.Now().Unix()))
	if call.Err != nil {
		c.t.Fatalf("clicking item %d: %v", id, call.Err)
	}
}

// icon reads the StatusNotifierItem's icon pixmap; it must be one 22x22
// image.
func (c *child) icon() ([]byte, error) {
	v, err := c.conn.Object(c.dest, "/StatusNotifierItem").GetProperty("org.kde.StatusNotifierItem.IconPixmap")
	if err != nil {
		return nil, err
	}
	var px []struct {
		W, H int32
		Pix  []byte
	}
	if err := dbus.Store([]interface{}{v.Value()}, &px); err != nil {
		return nil, err
	}
	if len(px) != 1 || px[0].W != 22 || px[0].H != 22 {
		return nil, fmt.Errorf("icon pixmap %d images, want one 22x22", len(px))
	}
	return px[0].Pix, nil
}

// argb converts a PNG to the StatusNotifierItem pixmap format the way
// systray does, to compare the icon shown with the embedded files.
func argb(t *testing.T, b []byte) []byte {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	r := img.Bounds()
	out := make([]byte, 0, r.Dx()*r.Dy()*4)
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			cr, cg, cb, ca := img.At(x, y).RGBA()
			out = append(out, byte(ca), byte(cr), byte(cg), byte(cb))
		}
	}
	return out
}

// waitIcon waits until the tray shows icon i (its coloured 22x22 image).
func (c *child) waitIcon(i assets.Icon) {
	c.t.Helper()
	imgs, err := assets.Tray(i)
	if err != nil {
		c.t.Fatal(err)
	}
	want := argb(c.t, imgs.Regular)
	var got []byte
	testwait.For(c.t, "the "+string(i)+" icon", func() bool {
		got, err = c.icon()
		return err == nil && bytes.Equal(got, want)
	})
}

func (c *child) waitExit() error {
	c.t.Helper()
	select {
	case <-c.exited:
		return c.exitErr
	case <-time.After(60 * time.Second):
		c.t.Fatal("the tray process did not exit within 60s")
		return nil
	}
}

// TestTrayOverDBus runs the tray against a fake controller in a child
// process on a private session bus, with a fake tray host, and drives it as
// a panel would: it reads the menu, clicks items and checks what the
// controller was asked to do and what the menu shows.
func TestTrayOverDBus(t *testing.T) {
	addr := testbus.Start(t)
	conn := testbus.Connect(t, addr)
	w := testbus.ServeWatcher(t, conn)

	dir := t.TempDir()
	consoleLog := filepath.Join(dir, "console.log")
	configFile := filepath.Join(dir, "config.yaml")
	c := startChild(t, addr, conn, "VMNETBAR_TRAY_TEST_CONSOLE="+consoleLog, "VMNETBAR_TRAY_TEST_CONFIG="+configFile)

	// Initial menu: the fake starts with a stopped VM.
	m, took := c.waitMenu("the stopped VM", all(hasLabel("VM: stopped"), enabled("Start VM", true),
		enabled("Stop VM", false), enabled("Reconnect now", false), enabled("Quit", true),
		enabled("Launch at login", true)))
	t.Logf("menu served %v after the first poll; items: %d", took, len(m))
	// "-" is a separator. Hidden entries (the VM lines of the several-VM
	// layout, the note line, Start all, …) are left out.
	wantOrder := []string{"VM:", "Link:", "↑", "-", "Start VM", "Stop VM", "Reconnect now", "Copy SSH command", "Open Terminal", "-",
		"Open console log", "Open config", "Reload config", "Launch at login", "-", "Quit"}
	shown := visible(m)
	if len(shown) != len(wantOrder) {
		t.Fatalf("menu shows %d entries, want %d: %+v", len(shown), len(wantOrder), shown)
	}
	for i, p := range wantOrder {
		switch e := shown[i]; p {
		case "-":
			if !e.Sep {
				t.Errorf("menu entry %d is %+v, want a separator", i, e)
			}
		default:
			if e.Sep || !strings.HasPrefix(e.Label, p) {
				t.Errorf("menu entry %d is %+v, want %q", i, e, p)
			}
		}
	}
	if e, _ := find(m, "⚠"); e.Visible {
		t.Errorf("the problem line is visible without a problem: %+v", e)
	}
	testwait.For(t, "the tray to register with the tray host", func() bool { return len(w.Registered()) > 0 })
	if regs := w.Registered(); !strings.HasSuffix(regs[0], " /StatusNotifierItem") {
		t.Errorf("the tray registered %q with the tray host, want /StatusNotifierItem", regs)
	}
	c.waitIcon(assets.IconStopped)

	// A click on a disabled item does nothing: the next event is the
	// one from the enabled item clicked after it.
	c.click("Stop VM")
	c.click("Start VM")
	c.expectEvent("start default")
	c.waitMenu("the running VM", all(hasLabel("VM: running"), hasLabel("Link: up · 0 reconnects"),
		enabled("Stop VM", true), enabled("Start VM", false), enabled("Reconnect now", true)))
	c.waitIcon(assets.IconUp)

	c.click("Reconnect now")
	c.expectEvent("reconnect default")
	c.waitMenu("one reconnect", hasLabel("Link: up · 1 reconnect"))

	// Status pushed by the controller shows without a click.
	now := time.Now()
	st := model.VMStatus{
		Name: "default",
		VM:   model.VM{State: vmhost.StateRunning, Since: now.Add(-2*time.Hour - 14*time.Minute)},
		Link: netlink.Status{State: netlink.StateReconnecting, Since: now.Add(-5 * time.Second), Reconnects: 3,
			TxBytes: 1_234_567_890, RxBytes: 3_400_000_000},
	}
	c.sendVMs(st)
	_, took = c.waitMenu("the reconnecting link", all(hasLabel("VM: running 2h 14m"),
		hasLabel("Link: reconnecting"), hasLabel("↑ 1.2 GB ↓ 3.4 GB")))
	t.Logf("status change shown after %v", took)
	c.waitIcon(assets.IconReconnecting)
	tip, err := c.conn.Object(c.dest, "/StatusNotifierItem").GetProperty("org.kde.StatusNotifierItem.ToolTip")
	if err != nil || !strings.Contains(fmt.Sprint(tip.Value()), "vmnetbar: VM running 2h 14m · link reconnecting") {
		t.Errorf("tooltip %v (%v), want the one-line status", tip, err)
	}

	// A burst of updates: the tray shows the last one.
	for i := 1; i <= 200; i++ {
		st.Link = netlink.Status{State: netlink.StateUp, Since: now, Reconnects: uint64(3 + i)}
		c.sendVMs(st)
	}
	_, took = c.waitMenu("the last of 200 updates", hasLabel("Link: up · 203 reconnects"))
	t.Logf("last of a burst of 200 updates shown after %v", took)

	// The VM host's note shows under the VM line while there is one.
	const note = "waiting for the guest to answer the power button (it may still be booting)"
	noted := st
	noted.VM = model.VM{State: vmhost.StateStopping, Since: now, Note: note}
	c.sendVMs(noted)
	// shownLine, not hasLabel: systray sets an item's label and its
	// visibility one after the other, and the menu may be read between.
	m, _ = c.waitMenu("the VM note", all(hasLabel("VM: stopping"), shownLine(note, true)))
	for i, e := range m {
		if strings.HasPrefix(e.Label, "VM: stopping") && (i+1 >= len(m) || m[i+1].Label != note || !m[i+1].Visible || m[i+1].Enabled) {
			t.Errorf("the note is not the line under the VM line, shown and not clickable: %+v", m)
		}
	}
	c.sendVMs(st)
	c.waitMenu("the note gone", func(m []entry) bool {
		e, ok := find(m, note)
		return hasLabel("VM: running")(m) && (!ok || !e.Visible)
	})

	// Traffic counters change without an update: the periodic refresh
	// shows them.
	st.Link.TxBytes, st.Link.RxBytes = 5_000_000, 7_000
	c.sendQuiet(st)
	_, took = c.waitMenu("the new traffic counters", hasLabel("↑ 5.0 MB ↓ 7.0 kB"))
	t.Logf("traffic counters refreshed after %v", took)

	// Every click is received: a burst of clicks on an item without a
	// busy state opens the file each time.
	m, _ = c.waitMenu("Open config", enabled("Open config", true))
	cfg, _ := find(m, "Open config")
	const clicks = 30
	for range clicks {
		c.clickID(cfg.ID)
	}
	for range clicks {
		c.expectEvent("open " + configFile)
	}
	c.click("Open console log")
	c.expectEvent("open " + consoleLog)

	// The login checkbox.
	c.click("Launch at login")
	c.expectEvent("login on")
	c.waitMenu("the checked login item", func(m []entry) bool {
		e, ok := find(m, "Launch at login")
		return ok && e.Checked && e.Enabled
	})
	c.click("Launch at login")
	c.expectEvent("login off")
	c.waitMenu("the unchecked login item", func(m []entry) bool {
		e, ok := find(m, "Launch at login")
		return ok && !e.Checked && e.Enabled
	})

	c.click("Stop VM")
	c.expectEvent("stop default")
	c.waitMenu("the stopped VM", all(hasLabel("VM: stopped"), enabled("Start VM", true), enabled("Stop VM", false),
		enabled("Reconnect now", false)))
	c.click("Start VM")
	c.expectEvent("start default")
	c.waitMenu("the running VM", enabled("Stop VM", true))

	// Quit stops the running VM first, then the process exits cleanly.
	c.click("Quit")
	c.expectEvent("stopall")
	c.expectEvent("exit <nil>")
	if err := c.waitExit(); err != nil {
		t.Fatalf("the tray process exited with %v, want exit status 0", err)
	}
}

// subEnabled is a menu condition: in the submenu of the shown line
// starting with line, the item starting with prefix is shown and enabled
// (or not).
func subEnabled(line, prefix string, want bool) func([]entry) bool {
	return func(m []entry) bool {
		e, ok := findIn(m, line, prefix)
		return ok && e.Visible && e.Enabled == want
	}
}

// shownLine is a menu condition: a top-level line starting with prefix is
// shown (or not).
func shownLine(prefix string, want bool) func([]entry) bool {
	return func(m []entry) bool {
		e, ok := find(m, prefix)
		return (ok && e.Visible) == want
	}
}

// TestTraySeveralVMsOverDBus (issue 10): with two VMs the tray shows a
// line with a submenu for each over D-Bus, "Reconnect now" in one VM's
// submenu reconnects that VM only, and the menu goes back to the one-VM
// layout when a VM is removed.
func TestTraySeveralVMsOverDBus(t *testing.T) {
	addr := testbus.Start(t)
	conn := testbus.Connect(t, addr)
	testbus.ServeWatcher(t, conn)
	c := startChild(t, addr, conn, "VMNETBAR_TRAY_TEST_VMS=build,dev")

	now := time.Now()
	running := func(name string) model.VMStatus {
		return model.VMStatus{Name: name,
			VM:   model.VM{State: vmhost.StateRunning, Since: now, ConsoleLog: "/state/vms/" + name + "/console.log"},
			Link: netlink.Status{State: netlink.StateUp, Since: now}}
	}
	c.waitMenu("two stopped VMs", all(shownLine("build · stopped", true), shownLine("dev · stopped", true),
		enabled("Start all", true), enabled("Stop all", false), shownLine("VM:", false)))
	c.sendVMs(running("build"), running("dev"))
	m, _ := c.waitMenu("two running VMs, each with its submenu", all(
		shownLine("build · running · 0 reconnects", true), shownLine("dev · running · 0 reconnects", true),
		subEnabled("build ·", "Stop VM", true), subEnabled("build ·", "Start VM", false), subEnabled("build ·", "Reconnect now", true),
		subEnabled("dev ·", "Stop VM", true), subEnabled("dev ·", "Start VM", false), subEnabled("dev ·", "Reconnect now", true),
		subEnabled("dev ·", "Open console log", true),
		enabled("Start all", false), enabled("Stop all", true), enabled("Reload config", true), enabled("Quit", true),
		shownLine("VM:", false), shownLine("Start VM", false), shownLine("Reconnect now", false)))
	for _, name := range []string{"build", "dev"} {
		line, _ := find(m, name+" ·")
		var labels []string
		for _, e := range visible(line.Sub) {
			if e.Sep {
				labels = append(labels, "-")
			} else {
				labels = append(labels, e.Label)
			}
		}
		want := []string{"VM: running", "Link: up · 0 reconnects", "↑ 0 B ↓ 0 B", "-", "Start VM", "Stop VM", "Reconnect now", "Copy SSH command", "Open Terminal", "-", "Open console log"}
		ok := len(labels) == len(want)
		for i := range want {
			ok = ok && strings.HasPrefix(labels[i], want[i])
		}
		if !ok {
			t.Errorf("%s's submenu shows %q, want %q", name, labels, want)
		}
	}
	// The top level: the VM lines, then Start all and Stop all, then the
	// app's items.
	var top []string
	for _, e := range visible(m) {
		if e.Sep {
			top = append(top, "-")
		} else {
			top = append(top, strings.SplitN(e.Label, " ·", 2)[0])
		}
	}
	if got, want := strings.Join(top, "|"), "build|dev|-|Start all|Stop all|-|Open config|Reload config|Launch at login|-|Quit"; got != want {
		t.Errorf("top-level menu %s, want %s", got, want)
	}

	e, _ := findIn(m, "dev ·", "Reconnect now")
	c.clickID(e.ID)
	c.expectEvent("reconnect dev")
	c.waitMenu("dev's reconnect counted, not build's", all(shownLine("dev · running · 1 reconnect", true),
		shownLine("build · running · 0 reconnects", true)))
	e, _ = findIn(m, "dev ·", "Open console log")
	c.clickID(e.ID)
	c.expectEvent("open /state/vms/dev/console.log")

	// A reload removed build: back to the one-VM layout.
	c.sendVMs(running("dev"))
	c.waitMenu("the one-VM layout", all(shownLine("build ·", false), shownLine("dev ·", false), hasLabel("VM: running"),
		enabled("Stop VM", true), enabled("Reconnect now", true), shownLine("Start all", false)))
	c.click("Reconnect now")
	c.expectEvent("reconnect dev")

	c.click("Quit")
	c.expectEvent("stopall")
	c.expectEvent("exit <nil>")
	if err := c.waitExit(); err != nil {
		t.Fatalf("the tray process exited with %v, want exit status 0", err)
	}
}

// TestTrayGuestOverDBus (issue 11): the guest's address shows as "IP: …"
// under the link line, and a click copies it; Copy SSH command copies
// `ssh USER@IP`; a silent link reads "not forwarding" in amber with the
// hint, and is notified once. Then the same in a VM's submenu.
func TestTrayGuestOverDBus(t *testing.T) {
	addr := testbus.Start(t)
	conn := testbus.Connect(t, addr)
	testbus.ServeWatcher(t, conn)
	c := startChild(t, addr, conn, "VMNETBAR_TRAY_TEST_VMS=dev")

	now := time.Now()
	dev := model.VMStatus{Name: "dev",
		VM:   model.VM{State: vmhost.StateRunning, Since: now, SSHUser: "alice"},
		Link: netlink.Status{State: netlink.StateUp, Since: now, Health: netlink.HealthOK, LastRx: now}}
	c.waitMenu("the stopped VM", all(hasLabel("VM: stopped"), shownLine("IP:", false), enabled("Copy SSH command", false)))
	c.sendVMs(dev)
	c.waitMenu("the running VM, its address unknown", all(hasLabel("VM: running"), shownLine("IP:", false),
		enabled("Copy SSH command", false)))
	dev.Link.Guest.IPv4 = netip.MustParseAddr("192.168.127.3")
	dev.Link.Guest.Source = netlink.GuestSourceDHCP
	c.sendVMs(dev)
	m, _ := c.waitMenu("the address", all(enabled("IP: 192.168.127.3", true), enabled("Copy SSH command", true)))
	var order []string
	for _, e := range visible(m)[:4] {
		order = append(order, strings.SplitN(e.Label, " ", 2)[0])
	}
	if got := strings.Join(order, " "); got != "VM: Link: IP: ↑" {
		t.Errorf("the menu starts %q, want the IP line under the link line", got)
	}
	c.click("IP: ")
	c.expectEvent("copy 192.168.127.3")
	c.click("Copy SSH command")
	c.expectEvent("copy ssh alice@192.168.127.3")

	// Silent: amber, the line and the hint (Linux: not clickable), one
	// notification for the spell.
	dev.Link.Health, dev.Link.LastRx = netlink.HealthSilent, now.Add(-30*time.Second)
	c.sendVMs(dev)
	c.waitMenu("the silent link", all(hasLabel("Link: up · not forwarding (no reply from the gateway for 3"),
		enabled("Restart the network daemon", false)))
	c.waitIcon(assets.IconReconnecting)
	// The status's times go over JSON in whole seconds: 30 or 31 s.
	c.expectEventLike(regexp.MustCompile(`^notify vmnetbar: network not answering: the network daemon is connected but nothing has come back for 3[01] s\. Restart it\.$`))
	c.sendVMs(dev)
	dev.Link.Health, dev.Link.LastRx = netlink.HealthOK, time.Now()
	c.sendVMs(dev)
	c.waitMenu("the link ok again", all(hasLabel("Link: up · 0 reconnects"), shownLine("Restart the network daemon", false)))
	c.waitIcon(assets.IconUp)

	// Several VMs: the IP line is in dev's submenu.
	build := model.VMStatus{Name: "build", VM: model.VM{State: vmhost.StateStopped}, Link: netlink.Status{State: netlink.StateStopped}}
	c.sendVMs(build, dev)
	c.waitMenu("dev's submenu with its address", all(shownLine("dev · running", true), subEnabled("dev ·", "IP: 192.168.127.3", true),
		subEnabled("dev ·", "Copy SSH command", true), shownLine("IP:", false)))
	m, _ = c.menu()
	e, _ := findIn(m, "dev ·", "IP: ")
	c.clickID(e.ID)
	c.expectEvent("copy 192.168.127.3")

	// Nothing else happened: the next event is the exit after Quit.
	c.click("Quit")
	c.expectEvent("stopall")
	c.expectEvent("exit <nil>")
	if err := c.waitExit(); err != nil {
		t.Fatalf("the tray process exited with %v, want exit status 0", err)
	}
}

// TestTrayImageVMOverDBus (issue 12): a VM made from an image shows the
// progress of its disk, then offers Copy SSH command and Open Terminal
// once its SSH server accepts, says "dev is ready" once, and Open
// Terminal starts the desktop's terminal (a fake x-terminal-emulator on
// PATH, a real process) running ssh with the VM's key and known_hosts.
func TestTrayImageVMOverDBus(t *testing.T) {
	addr := testbus.Start(t)
	conn := testbus.Connect(t, addr)
	testbus.ServeWatcher(t, conn)
	bin, out := t.TempDir(), t.TempDir()
	fakeTerminalProgram(t, bin, out, "x-terminal-emulator")
	fakeSSH(t, bin, out, "0")
	c := startChild(t, addr, conn, "VMNETBAR_TRAY_TEST_VMS=dev", "PATH="+bin)

	now := time.Now()
	dev := model.VMStatus{Name: "dev",
		VM: model.VM{State: vmhost.StateStarting, Since: now, SSHUser: "debian", SSH: model.SSHWaiting,
			Image: "/images/debian-12.qcow2", SSHKey: "/state/vms/dev/ssh/id_ed25519", KnownHosts: "/state/vms/dev/ssh/known hosts",
			Progress: &model.Progress{Task: "preparing disk", Percent: 42}},
		Link: netlink.Status{State: netlink.StateStopped}}
	c.sendVMs(dev)
	c.waitMenu("the disk's progress", all(hasLabel("VM: preparing disk 42 %"), enabled("Copy SSH command", false),
		enabled("Open Terminal", false)))

	dev.VM.State, dev.VM.Progress = vmhost.StateRunning, nil
	dev.Link = netlink.Status{State: netlink.StateUp, Since: now, Health: netlink.HealthOK, LastRx: now}
	dev.Link.Guest.IPv4 = netip.MustParseAddr("192.168.127.3")
	c.sendVMs(dev)
	c.waitMenu("the booting guest: its address, no SSH yet", all(hasLabel("VM: running"), enabled("IP: 192.168.127.3", true),
		enabled("Copy SSH command", false), enabled("Open Terminal", false)))

	dev.VM.SSH = model.SSHReady
	c.sendVMs(dev)
	c.waitMenu("SSH ready", all(enabled("Copy SSH command", true), enabled("Open Terminal", true)))
	const cmdline = "ssh -i /state/vms/dev/ssh/id_ed25519 -o IdentitiesOnly=yes -o 'UserKnownHostsFile=\"/state/vms/dev/ssh/known hosts\"' " +
		"-o StrictHostKeyChecking=accept-new debian@192.168.127.3"
	c.expectEvent("notify dev is ready: " + cmdline)
	c.sendVMs(dev)

	c.click("Open Terminal")
	var ssh []string
	testwait.For(t, "the terminal to run ssh", func() bool {
		var ok bool
		ssh, ok = readLines(t, filepath.Join(out, "ssh.args"))
		return ok
	})
	want := []string{"-i", "/state/vms/dev/ssh/id_ed25519", "-o", "IdentitiesOnly=yes", "-o", `UserKnownHostsFile="/state/vms/dev/ssh/known hosts"`,
		"-o", "StrictHostKeyChecking=accept-new", "debian@192.168.127.3"}
	if strings.Join(ssh, "\n") != strings.Join(want, "\n") {
		t.Errorf("the terminal ran ssh %q, want %q", ssh, want)
	}
	c.click("Copy SSH command")
	c.expectEvent("copy " + cmdline)

	// Nothing else happened (no second notification): the next event is
	// the exit after Quit.
	c.click("Quit")
	c.expectEvent("stopall")
	c.expectEvent("exit <nil>")
	if err := c.waitExit(); err != nil {
		t.Fatalf("the tray process exited with %v, want exit status 0", err)
	}
}

// TestTrayLoginLocationOverDBus: "Launch at login" from an App
// Translocation copy is not turned on, and the menu says why.
func TestTrayLoginLocationOverDBus(t *testing.T) {
	addr := testbus.Start(t)
	conn := testbus.Connect(t, addr)
	testbus.ServeWatcher(t, conn)
	c := startChild(t, addr, conn, "VMNETBAR_TRAY_TEST_LOGIN_PLACE=translocated")
	c.waitMenu("the login checkbox", enabled("Launch at login", true))
	c.click("Launch at login")
	c.waitMenu("why launch at login is off", func(m []entry) bool {
		p, ok := find(m, "⚠ Launch at login off: macOS runs a temporary copy")
		e, _ := find(m, "Launch at login")
		return ok && p.Visible && e.Enabled && !e.Checked
	})
	// Nothing was enabled: the next event is the exit after Quit.
	c.click("Quit")
	c.expectEvent("exit <nil>")
	if err := c.waitExit(); err != nil {
		t.Fatalf("the tray process exited with %v, want exit status 0", err)
	}
}

// TestTrayEndsWithContext checks that when the tray's context ends
// (SIGTERM in the child) it stops the VM the way Quit does, with the icon
// and menu still served and saying so, and leaves only after the VM has
// stopped.
func TestTrayEndsWithContext(t *testing.T) {
	addr := testbus.Start(t)
	conn := testbus.Connect(t, addr)
	testbus.ServeWatcher(t, conn)
	c := startChild(t, addr, conn, "VMNETBAR_TRAY_TEST_HOLD_STOP=default")
	c.waitMenu("the stopped VM", enabled("Start VM", true))
	c.click("Start VM")
	c.expectEvent("start default")
	c.waitMenu("the running VM", enabled("Stop VM", true))
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	c.expectEvent("stopall")
	c.waitMenu("the tray stopping the VM", all(hasLabel("Stopping VM and quitting…"), hasLabel("VM: stopping"),
		enabled("Start VM", false), enabled("Stop VM", false), enabled("Stopping VM and quitting…", false)))
	c.waitIcon(assets.IconBooting)
	select {
	case <-c.exited:
		t.Fatalf("the tray process exited (%v) while the VM was stopping", c.exitErr)
	default:
	}
	c.write("release")
	c.expectEvent("exit context canceled")
	var ee *exec.ExitError
	if err := c.waitExit(); !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("the tray process exited with %v, want exit status 1 (Run's error)", err)
	}
}

// TestUnavailableWithoutBus checks the error without a session bus.
func TestUnavailableWithoutBus(t *testing.T) {
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "")
	err := Run(context.Background(), newTestMachines("default"), Options{})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "DBUS_SESSION_BUS_ADDRESS") {
		t.Fatalf("Run without a bus: %v, want ErrUnavailable naming DBUS_SESSION_BUS_ADDRESS", err)
	}
}

// TestUnavailableUnreachableBus checks the error for a bus address nobody
// serves.
func TestUnavailableUnreachableBus(t *testing.T) {
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path="+filepath.Join(t.TempDir(), "nobus"))
	err := Run(context.Background(), newTestMachines("default"), Options{})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "cannot connect") {
		t.Fatalf("Run with an unreachable bus: %v, want ErrUnavailable saying it cannot connect", err)
	}
}

// TestUnavailableWithoutTrayHost checks the error on a bus without a
// StatusNotifierWatcher.
func TestUnavailableWithoutTrayHost(t *testing.T) {
	addr := testbus.Start(t)
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", addr)
	err := Run(context.Background(), newTestMachines("default"), Options{})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), watcherName) {
		t.Fatalf("Run without a tray host: %v, want ErrUnavailable naming %s", err, watcherName)
	}
}
