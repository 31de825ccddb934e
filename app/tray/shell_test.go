package tray

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/vmnetbar/vmnetbar/app/loginitem"
	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/internal/testwait"
)

// fakeShell stands in for fyne.io/systray and models when a user can
// click: on macOS, once the status item has an icon (before, it has no
// width), every shown and enabled item. With autoClick, after every call
// that may make an item clickable it clicks each item that has just become
// clickable, the way systray delivers clicks: a send that fails unless the
// item's channel takes it at once. A click an item gets before the tray
// has given it a channel goes to systray's own unbuffered channel, which
// nobody reads.
type fakeShell struct {
	mu        sync.Mutex
	autoClick bool
	shown     bool // the icon is set
	items     []*fakeItem
	clicked   map[*fakeItem]bool // clicked once already
	lost      []string           // clicks that were dropped
	sent      []string           // clicks an item's channel took
	quit      chan struct{}
	calls     []string // the order of calls, for the log
}

func newFakeShell() *fakeShell {
	return &fakeShell{clicked: map[*fakeItem]bool{}, quit: make(chan struct{})}
}

type fakeItem struct {
	sh               *fakeShell
	parent           *fakeItem // nil: a top-level item
	label            string
	enabled, visible bool
	checked          bool
	clicks           chan struct{}
}

// clickNewLocked clicks every item that is clickable and was never
// clicked.
func (f *fakeShell) clickNewLocked() {
	if !f.shown || !f.autoClick {
		return
	}
	for _, it := range f.items {
		if f.clicked[it] || !it.clickableLocked() {
			continue
		}
		f.clicked[it] = true
		select {
		case it.clicks <- struct{}{}:
			f.sent = append(f.sent, it.label)
		default:
			f.lost = append(f.lost, it.label+": its channel did not take the click")
		}
	}
}

// clickableLocked reports whether a user can click it: shown and
// enabled, in a shown and enabled submenu.
func (it *fakeItem) clickableLocked() bool {
	for i := it; i != nil; i = i.parent {
		if !i.enabled || !i.visible {
			return false
		}
	}
	return true
}

func (f *fakeShell) do(call string, change func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	if change != nil {
		change()
	}
	f.clickNewLocked()
}

func (f *fakeShell) SetIcon(template, regular []byte) {
	f.do("SetIcon", func() { f.shown = true })
}
func (f *fakeShell) SetTooltip(string) { f.do("SetTooltip", nil) }
func (f *fakeShell) SetAppTitle()      { f.do("SetAppTitle", nil) }
func (f *fakeShell) AddSeparator()     { f.do("AddSeparator", nil) }
func (f *fakeShell) Quit() {
	f.do("Quit", nil)
	close(f.quit)
}

func (f *fakeShell) AddItem(label string, checkbox, checked bool, clicks chan struct{}) menuItem {
	it := &fakeItem{sh: f, label: label, enabled: true, visible: true, checked: checked}
	f.do("AddItem "+label, func() {
		f.items = append(f.items, it)
		if f.shown && f.autoClick {
			// systray shows the item, enabled, before AddItem can
			// give it the tray's channel.
			f.clicked[it] = true
			f.lost = append(f.lost, label+": clickable before it had the tray's click channel")
		}
		if clicks == nil {
			f.lost = append(f.lost, label+": no click channel")
		}
		it.clicks = clicks
	})
	return it
}

func (f *fakeShell) AddSubItem(parent menuItem, label string, clicks chan struct{}) menuItem {
	p := parent.(*fakeItem)
	it := &fakeItem{sh: f, parent: p, label: label, enabled: true, visible: true}
	f.do("AddSubItem "+p.label+" > "+label, func() {
		f.items = append(f.items, it)
		if f.shown && f.autoClick && it.clickableLocked() {
			f.clicked[it] = true
			f.lost = append(f.lost, label+": clickable before it had the tray's click channel")
		}
		if clicks == nil {
			f.lost = append(f.lost, label+": no click channel")
		}
		it.clicks = clicks
	})
	return it
}

func (f *fakeShell) AddSubSeparator(parent menuItem) {
	f.do("AddSubSeparator "+parent.(*fakeItem).label, func() {
		for _, it := range f.items {
			if it.parent == parent {
				return
			}
		}
		f.lost = append(f.lost, "a separator in an empty submenu")
	})
}

func (it *fakeItem) set(call string, change func()) { it.sh.do(it.label+" "+call, change) }
func (it *fakeItem) SetTitle(s string)              { it.set("SetTitle", func() { it.label = s }) }
func (it *fakeItem) Enable()                        { it.set("Enable", func() { it.enabled = true }) }
func (it *fakeItem) Disable()                       { it.set("Disable", func() { it.enabled = false }) }
func (it *fakeItem) Show()                          { it.set("Show", func() { it.visible = true }) }
func (it *fakeItem) Hide()                          { it.set("Hide", func() { it.visible = false }) }
func (it *fakeItem) Check()                         { it.set("Check", func() { it.checked = true }) }
func (it *fakeItem) Uncheck()                       { it.set("Uncheck", func() { it.checked = false }) }

// item returns the first top-level item whose label starts with prefix.
func (f *fakeShell) item(prefix string) (label string, enabled, visible, checked bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if it := f.findLocked("", prefix); it != nil {
		return it.label, it.enabled, it.visible, it.checked
	}
	return "", false, false, false
}

// findLocked returns the item whose label starts with prefix, a shown one
// first: at the top level when line is "", else in the submenu of the
// top-level item whose label starts with line.
func (f *fakeShell) findLocked(line, prefix string) *fakeItem {
	var parent *fakeItem
	if line != "" {
		if parent = f.findLocked("", line); parent == nil {
			return nil
		}
	}
	var first *fakeItem
	for _, it := range f.items {
		if it.parent != parent || !strings.HasPrefix(it.label, prefix) {
			continue
		}
		if it.visible {
			return it
		}
		if first == nil {
			first = it
		}
	}
	return first
}

// sub returns the item whose label starts with prefix in the submenu of
// the top-level item whose label starts with line.
func (f *fakeShell) sub(line, prefix string) (label string, enabled, visible bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if it := f.findLocked(line, prefix); it != nil {
		return it.label, it.enabled, it.visible
	}
	return "", false, false
}

// click clicks the top-level item whose label starts with prefix, as
// systray does.
func (f *fakeShell) click(t *testing.T, prefix string) {
	t.Helper()
	f.clickIn(t, "", prefix)
}

// clickIn clicks the item whose label starts with prefix in the submenu
// of the top-level item whose label starts with line ("": the top level).
func (f *fakeShell) clickIn(t *testing.T, line, prefix string) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	it := f.findLocked(line, prefix)
	if it == nil {
		t.Fatalf("no item %q in %q", prefix, line)
	}
	select {
	case it.clicks <- struct{}{}:
	default:
		t.Fatalf("click on %q dropped", it.label)
	}
}

// countItems counts the items made so far.
func (f *fakeShell) countItems() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.items)
}

// startFakeTray runs a tray on a fake shell as Run would run it on
// systray, and stops it at the end of the test.
func startFakeTray(t *testing.T, c Controller, opts Options, autoClick bool) (*tray, *fakeShell) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tr := newTray(ctx, c, opts)
	sh := newFakeShell()
	sh.autoClick = autoClick
	tr.sh = sh
	tr.onReady()
	// The fixture's changes the fake refused fail the test.
	fixture := func() {
		if m, ok := c.(*testMachines); ok {
			for _, err := range m.fixtureErrors() {
				t.Error(err)
			}
		}
	}
	fixture()
	t.Cleanup(func() {
		cancel()
		<-tr.finished
		fixture()
	})
	return tr, sh
}

// TestClicksNeverLost clicks every item the moment a user could click it,
// from the first instant the menu can be opened: each click must reach
// the item's channel. Quit is among them, so the tray must then end. With
// several VMs, the items of each VM's submenu are among them.
func TestClicksNeverLost(t *testing.T) {
	for _, tc := range []struct {
		vms  []string
		want []string
	}{
		{[]string{"default"}, []string{"Start VM", "Open console log", "Open config", "Reload config", "Quit"}},
		{[]string{"a", "b"}, []string{"a · stopped", "b · stopped", "Start VM", "Open console log", "Start all",
			"Open config", "Reload config", "Quit"}},
	} {
		t.Run(strings.Join(tc.vms, ","), func(t *testing.T) {
			f := newTestMachines(tc.vms...)
			for _, n := range tc.vms {
				f.fixture(f.Change(n, func(v *model.VMStatus) { v.VM.ConsoleLog = "/" + n + ".log" }))
			}
			tr, sh := startFakeTray(t, f, Options{
				ConfigFile: "/config.yaml",
				Opener:     func(string) error { return nil },
			}, true)
			// onReady has returned: the menu is built and every item
			// that was clickable has been clicked.
			sh.mu.Lock()
			lost, sent := append([]string(nil), sh.lost...), append([]string(nil), sh.sent...)
			t.Logf("calls: %q", sh.calls)
			sh.mu.Unlock()
			if len(lost) > 0 {
				t.Fatalf("clicks lost: %q", lost)
			}
			want := map[string]bool{}
			for _, w := range tc.want {
				want[w] = true
			}
			for _, l := range sent {
				delete(want, l)
			}
			if len(want) > 0 {
				t.Errorf("items never clickable: %v (clicked: %q)", want, sent)
			}
			testwait.For(t, "the tray to end after the early Quit click", func() bool { return returned(tr.finished) })
			if tr.result != nil {
				t.Errorf("the tray ended with %v", tr.result)
			}
		})
	}
}

// locatedLogin is a login item whose program is in a bad place.
type locatedLogin struct {
	mu      sync.Mutex
	on      bool
	enables int
	where   *loginitem.LocationProblem
}

func (l *locatedLogin) Enable() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.on = true
	l.enables++
	return nil
}

func (l *locatedLogin) Disable() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.on = false
	return nil
}

func (l *locatedLogin) Enabled() (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.on, nil
}

func (l *locatedLogin) CheckLocation() *loginitem.LocationProblem { return l.where }

func (l *locatedLogin) state() (on bool, enables int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.on, l.enables
}

// TestLoginCheckboxChecksLocation: "Launch at login" checks where the
// program is, as `vmnetbar login-item on` does: from a temporary place it
// is not turned on and the menu says why; from a disk image it is turned
// on and the menu warns.
func TestLoginCheckboxChecksLocation(t *testing.T) {
	for _, tc := range []struct {
		kind   loginitem.PlaceKind
		wantOn bool
		line   string
	}{
		{loginitem.PlaceTranslocated, false, "⚠ Launch at login off: macOS runs a temporary copy; move the app to Applications"},
		{loginitem.PlaceTemporary, false, "⚠ Launch at login off: vmnetbar is in a temporary folder; install it first"},
		{loginitem.PlaceVolume, true, "⚠ Launch at login may fail: it runs from a disk image; copy it to Applications"},
	} {
		t.Run(tc.kind.String(), func(t *testing.T) {
			l := &locatedLogin{where: &loginitem.LocationProblem{Kind: tc.kind, Exe: "/x/vmnetbar", Dir: "/x"}}
			_, sh := startFakeTray(t, newTestMachines("default"), Options{LoginItem: l}, false)
			testwait.For(t, "the login checkbox to be enabled", func() bool {
				_, en, vis, _ := sh.item("Launch at login")
				return en && vis
			})
			sh.click(t, "Launch at login")
			testwait.For(t, fmt.Sprintf("the menu line %q", tc.line), func() bool {
				label, _, vis, _ := sh.item("⚠")
				_, en, _, _ := sh.item("Launch at login")
				return vis && en && label == tc.line
			})
			on, enables := l.state()
			_, _, _, checked := sh.item("Launch at login")
			if on != tc.wantOn || checked != tc.wantOn || enables != map[bool]int{true: 1}[tc.wantOn] {
				t.Errorf("login item on=%v (Enable called %d times), checkbox checked=%v; want %v", on, enables, checked, tc.wantOn)
			}
		})
	}
	// Turning it off never asks where the program is.
	l := &locatedLogin{on: true, where: &loginitem.LocationProblem{Kind: loginitem.PlaceTemporary}}
	_, sh := startFakeTray(t, newTestMachines("default"), Options{LoginItem: l}, false)
	testwait.For(t, "the checked login checkbox", func() bool {
		_, en, _, checked := sh.item("Launch at login")
		return en && checked
	})
	sh.click(t, "Launch at login")
	testwait.For(t, "the unchecked login checkbox", func() bool {
		_, en, _, checked := sh.item("Launch at login")
		return en && !checked
	})
	if on, _ := l.state(); on {
		t.Error("the login item is still on")
	}
	if _, _, vis, _ := sh.item("⚠"); vis {
		t.Error("turning launch at login off showed a problem")
	}
}

// The first refreshes set the icon and tooltip again, since systray can
// lose an icon set while it exports its D-Bus properties; later ones do
// not (nothing changed).
func TestIconSetAgainAtStartup(t *testing.T) {
	_, sh := startFakeTray(t, newTestMachines("default"), Options{}, false)
	count := func() int {
		sh.mu.Lock()
		defer sh.mu.Unlock()
		n := 0
		for _, c := range sh.calls {
			if c == "SetIcon" {
				n++
			}
		}
		return n
	}
	testwait.Within(t, (startupReassert+3)*refreshInterval, "the icon set again by the first refreshes", func() bool {
		return count() == 1+startupReassert
	})
}
