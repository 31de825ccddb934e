package tray

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/vmnetbar/vmnetbar/internal/testwait"
	"github.com/vmnetbar/vmnetbar/netlink"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

// newUp returns a fake whose VMs run with their links up.
func newUp(names ...string) *testMachines {
	m := newTestMachines(names...)
	for _, n := range names {
		m.setVM(n, vmhost.StateRunning, netlink.StateUp)
	}
	return m
}

// lineShown waits until a VM line whose label starts with prefix is shown
// (or, with want false, none is).
func lineShown(t *testing.T, sh *fakeShell, prefix string, want bool) {
	t.Helper()
	testwait.For(t, fmt.Sprintf("the VM line %q shown: %v", prefix, want), func() bool {
		_, _, vis, _ := sh.item(prefix)
		return vis == want
	})
}

// TestTrayVMsComeAndGo: a reload adds and removes VMs at runtime; the menu
// switches between the one-VM and several-VM layouts both ways, shows one
// line per VM and reuses the hidden lines and their submenus.
func TestTrayVMsComeAndGo(t *testing.T) {
	f := newTestMachines("dev")
	_, sh := startFakeTray(t, f, Options{}, false)
	oneVM := func(want bool) {
		t.Helper()
		testwait.For(t, fmt.Sprintf("the one-VM layout: %v", want), func() bool {
			_, _, vm, _ := sh.item("VM: ")
			_, _, start, _ := sh.item("Start VM")
			_, _, all, _ := sh.item("Start all")
			return vm == want && start == want && all == !want
		})
	}
	oneVM(true)

	f.setVM("build", vmhost.StateRunning, netlink.StateUp)
	oneVM(false)
	lineShown(t, sh, "build · running", true)
	lineShown(t, sh, "dev · stopped", true)
	if label, en, vis := sh.sub("dev ·", "Start VM"); !en || !vis {
		t.Errorf("dev's Start VM %q enabled %v visible %v", label, en, vis)
	}
	made := sh.countItems()

	f.setVM("web", vmhost.StateStopped, 0)
	lineShown(t, sh, "web · stopped", true)
	f.Remove("build")
	lineShown(t, sh, "build ·", false)
	lineShown(t, sh, "web · stopped", true)
	f.Remove("web")
	oneVM(true)
	if label, _, vis, _ := sh.item("VM: "); !vis || label != "VM: stopped" {
		t.Errorf("the one-VM layout shows %q", label)
	}
	f.setVM("build", vmhost.StateStopped, 0)
	oneVM(false)
	lineShown(t, sh, "build · stopped", true)
	f.setVM("web", vmhost.StateStopped, 0)
	lineShown(t, sh, "web · stopped", true)
	// Three VMs at most at once: three lines' submenus, the third made
	// when web first came; nothing more since.
	perSubmenu := int(numSubItems)
	if n := sh.countItems(); n != made+perSubmenu {
		t.Errorf("%d items made, want %d: the lines and submenus are not reused", n, made+perSubmenu)
	}
}

// TestTrayClickActsOnShownVM: a click in a VM's submenu acts on the VM its
// line shows at the time, and on that VM only.
func TestTrayClickActsOnShownVM(t *testing.T) {
	f := newUp("a", "b", "c")
	_, sh := startFakeTray(t, f, Options{}, false)
	lineShown(t, sh, "b · running", true)
	sh.clickIn(t, "b ·", "Reconnect now")
	testwait.For(t, "b's reconnect", func() bool { return f.called("reconnect b") })
	lineShown(t, sh, "b · running · 1 reconnect", true)

	// a goes: the first line now shows b, the second c.
	f.Remove("a")
	lineShown(t, sh, "a ·", false)
	sh.clickIn(t, "c ·", "Stop VM")
	testwait.For(t, "c stopping", func() bool { return f.called("stop c") })
	sh.clickIn(t, "b ·", "Reconnect now")
	testwait.For(t, "b's second reconnect", func() bool {
		n := 0
		for _, c := range f.Calls() {
			if c == "reconnect b" {
				n++
			}
		}
		return n == 2
	})
	for _, c := range f.Calls() {
		if c != "reconnect b" && c != "stop c" {
			t.Errorf("unexpected call %q", c)
		}
	}
}

// TestTrayClickOnStaleLineIgnored: a click on a line acts on the VM the
// line showed; when that VM is gone, or the one-VM layout showed another
// VM, the click acts on none.
func TestTrayClickOnStaleLineIgnored(t *testing.T) {
	f := newRunning("a", "b")
	tr := newTray(context.Background(), f, Options{})
	tr.screen.slots[0], tr.screen.slots[1] = "gone", "a"
	tr.handle(target{slot: 0, sub: SubStop})
	tr.handle(target{slot: 1, sub: SubReconnect})
	tr.ops.Wait()
	if got := fmt.Sprint(f.Calls()); got != "[reconnect a]" {
		t.Errorf("calls %s, want [reconnect a]", got)
	}

	g := newRunning("b")
	tr = newTray(context.Background(), g, Options{})
	tr.screen.single = "a" // a reload renamed the VM since
	tr.handle(target{slot: -1, item: ItemStop})
	tr.screen.single = "b"
	tr.handle(target{slot: -1, item: ItemReconnect})
	tr.ops.Wait()
	if got := fmt.Sprint(g.Calls()); got != "[reconnect b]" {
		t.Errorf("calls %s, want [reconnect b]", got)
	}
}

// TestTrayStartAllStopAll: Start all and Stop all call the controller's
// and are enabled when any VM allows it.
func TestTrayStartAllStopAll(t *testing.T) {
	f := newTestMachines("a", "b")
	_, sh := startFakeTray(t, f, Options{}, false)
	testwait.For(t, "Start all enabled, Stop all disabled", func() bool {
		_, start, _, _ := sh.item("Start all")
		_, stop, _, _ := sh.item("Stop all")
		return start && !stop
	})
	sh.click(t, "Start all")
	testwait.For(t, "Stop all enabled, Start all disabled", func() bool {
		_, start, _, _ := sh.item("Start all")
		_, stop, _, _ := sh.item("Stop all")
		return !start && stop
	})
	sh.click(t, "Stop all")
	testwait.For(t, "Start all enabled again", func() bool {
		_, start, _, _ := sh.item("Start all")
		return start
	})
	if got := fmt.Sprint(f.Calls()); got != "[startall stopall]" {
		t.Errorf("calls %s, want [startall stopall]", got)
	}
}

type recordSender struct {
	mu   sync.Mutex
	sent []string
}

func (s *recordSender) Send(title, body string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent = append(s.sent, title+": "+body)
	return nil
}

func (s *recordSender) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.sent...)
}

// TestTrayReloadConfig: Reload config reloads; a failure changes nothing,
// shows the config error line and notifies; a good reload clears it and
// shows the new VMs.
func TestTrayReloadConfig(t *testing.T) {
	f := newTestMachines("dev")
	n := &recordSender{}
	_, sh := startFakeTray(t, f, Options{Notifier: n}, false)
	const msg = "config.yaml:3: vms.Dev: a VM name is lowercase letters, digits and '-'"
	f.failReload(errors.New(msg))
	testwait.For(t, "Reload config enabled", func() bool { _, en, _, _ := sh.item("Reload config"); return en })
	sh.click(t, "Reload config")
	testwait.For(t, "the config error line", func() bool {
		label, _, vis, _ := sh.item("Config error: ")
		return vis && label == "Config error: "+truncate(msg, maxErrorLen)
	})
	testwait.For(t, "the notification", func() bool { return len(n.all()) == 1 })
	if got := n.all()[0]; got != "vmnetbar: config not reloaded: "+msg {
		t.Errorf("notification %q", got)
	}

	f.failReload(nil)
	f.onReload = func() { f.setVM("build", vmhost.StateStopped, 0) }
	testwait.For(t, "Reload config enabled", func() bool { _, en, _, _ := sh.item("Reload config"); return en })
	sh.click(t, "Reload config")
	lineShown(t, sh, "build · stopped", true)
	testwait.For(t, "the config error line gone", func() bool { _, _, vis, _ := sh.item("Config error: "); return !vis })
	if got := f.Calls(); fmt.Sprint(got) != "[reload reload]" {
		t.Errorf("calls %q", got)
	}
	if len(n.all()) != 1 {
		t.Errorf("notifications %q, want one for the failed reload", n.all())
	}
}
