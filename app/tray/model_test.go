package tray

import (
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/assets"
	"github.com/vmnetbar/vmnetbar/internal/testbin"
	"github.com/vmnetbar/vmnetbar/netlink"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

func TestMain(m *testing.M) {
	if runHelper() {
		return
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		testbin.Remove()
		os.Exit(code)
	}))
}

var now = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func vm(s vmhost.State, age time.Duration, err string) *model.VM {
	return &model.VM{State: s, Since: now.Add(-age), Error: err}
}

// status is one VM's status, as the tests of the one-VM menu write it.
type status struct {
	VM      *model.VM
	Link    netlink.Status
	Actions model.Actions
}

// one is the overview of the one VM st, named "default".
func one(st status) model.Overview {
	v := model.VMStatus{Name: "default", Link: st.Link, Actions: st.Actions}
	if st.VM != nil {
		v.VM = *st.VM
	}
	return model.Overview{VMs: []model.VMStatus{v}}
}

func link(s netlink.State, age time.Duration, reconnects uint64) netlink.Status {
	return netlink.Status{State: s, Since: now.Add(-age), Reconnects: reconnects}
}

// allUI is a UI state with every optional item available.
var allUI = UIState{ConsoleLog: "/console.log", HasConfig: true, HasLoginItem: true, LoginKnown: true}

// busy is a VMBusy or ReconnectBusy for the one VM.
var busy = map[string]bool{"default": true}

func TestModelLabels(t *testing.T) {
	running := vm(vmhost.StateRunning, 2*time.Hour+14*time.Minute+10*time.Second, "")
	tests := []struct {
		name          string
		st            status
		vm, link, trf string
		icon          assets.Icon
		tooltip       string
	}{
		{
			name: "running, link up after reconnects",
			st: status{VM: running, Link: netlink.Status{
				State: netlink.StateUp, Since: now.Add(-4*time.Minute - 5*time.Second), Reconnects: 3,
				TxBytes: 1_234_567_890, RxBytes: 3_400_000_000,
			}},
			vm: "VM: running 2h 14m", link: "Link: up · 3 reconnects · last 4m ago", trf: "↑ 1.2 GB ↓ 3.4 GB",
			icon: assets.IconUp, tooltip: "vmnetbar: VM running 2h 14m · link up (3 reconnects)",
		},
		{
			name: "running, first connection",
			st:   status{VM: running, Link: link(netlink.StateUp, time.Hour, 0)},
			vm:   "VM: running 2h 14m", link: "Link: up · 0 reconnects", trf: "↑ 0 B ↓ 0 B",
			icon: assets.IconUp, tooltip: "vmnetbar: VM running 2h 14m · link up",
		},
		{
			name: "one reconnect just now",
			st:   status{VM: running, Link: link(netlink.StateUp, 0, 1)},
			vm:   "VM: running 2h 14m", link: "Link: up · 1 reconnect · last just now", trf: "↑ 0 B ↓ 0 B",
			icon: assets.IconUp, tooltip: "vmnetbar: VM running 2h 14m · link up (1 reconnect)",
		},
		{
			name: "reconnecting",
			st:   status{VM: running, Link: link(netlink.StateReconnecting, 12*time.Second, 2)},
			vm:   "VM: running 2h 14m", link: "Link: reconnecting 12s · 2 reconnects", trf: "↑ 0 B ↓ 0 B",
			icon: assets.IconReconnecting, tooltip: "vmnetbar: VM running 2h 14m · link reconnecting",
		},
		{
			name: "connecting",
			st:   status{VM: running, Link: link(netlink.StateConnecting, 3*time.Second, 0)},
			vm:   "VM: running 2h 14m", link: "Link: connecting 3s", trf: "↑ 0 B ↓ 0 B",
			icon: assets.IconBooting, tooltip: "vmnetbar: VM running 2h 14m · link connecting",
		},
		{
			name: "link failed",
			st: status{VM: running, Link: netlink.Status{
				State: netlink.StateFailed, LastError: "VM side: read: connection reset"}},
			vm: "VM: running 2h 14m", link: "Link: failed: VM side: read: connection reset", trf: "↑ 0 B ↓ 0 B",
			icon: assets.IconError, tooltip: "vmnetbar: VM running 2h 14m · link failed",
		},
		{
			name: "starting",
			st:   status{VM: vm(vmhost.StateStarting, 5*time.Second, "")},
			vm:   "VM: starting 5s", link: "Link: down (the VM is not running)", trf: "↑ 0 B ↓ 0 B",
			icon: assets.IconBooting, tooltip: "vmnetbar: VM starting 5s · link down",
		},
		{
			name: "stopping",
			st:   status{VM: vm(vmhost.StateStopping, 61*time.Second, ""), Link: link(netlink.StateUp, time.Hour, 0)},
			vm:   "VM: stopping 1m", link: "Link: up · 0 reconnects", trf: "↑ 0 B ↓ 0 B",
			icon: assets.IconBooting, tooltip: "vmnetbar: VM stopping 1m · link up",
		},
		{
			name: "stopped",
			st:   status{VM: vm(vmhost.StateStopped, time.Hour, ""), Link: link(netlink.StateStopped, time.Hour, 5)},
			vm:   "VM: stopped", link: "Link: down (the VM is not running)", trf: "↑ 0 B ↓ 0 B",
			icon: assets.IconStopped, tooltip: "vmnetbar: VM stopped · link down",
		},
		{
			name: "VM error",
			st:   status{VM: vm(vmhost.StateError, time.Minute, "qemu exited:\nstatus 1")},
			vm:   "VM: error: qemu exited: status 1", link: "Link: down (the VM is not running)", trf: "↑ 0 B ↓ 0 B",
			icon: assets.IconError, tooltip: "vmnetbar: VM error · link down",
		},
		{
			name: "VM error without a message",
			st:   status{VM: vm(vmhost.StateError, time.Minute, "")},
			vm:   "VM: error", link: "Link: down (the VM is not running)", trf: "↑ 0 B ↓ 0 B",
			icon: assets.IconError, tooltip: "vmnetbar: VM error · link down",
		},
		{
			name: "clock stepped back",
			st:   status{VM: vm(vmhost.StateRunning, -time.Hour, ""), Link: link(netlink.StateUp, -time.Hour, 2)},
			vm:   "VM: running 0s", link: "Link: up · 2 reconnects · last just now", trf: "↑ 0 B ↓ 0 B",
			icon: assets.IconUp, tooltip: "vmnetbar: VM running 0s · link up (2 reconnects)",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := buildModel(tc.st, allUI, now)
			for _, c := range []struct {
				id   ItemID
				want string
			}{{ItemVM, tc.vm}, {ItemLink, tc.link}, {ItemTraffic, tc.trf}} {
				it := m.Items[c.id]
				if it.Label != c.want {
					t.Errorf("item %d: label %q, want %q", c.id, it.Label, c.want)
				}
				if it.Enabled || !it.Visible {
					t.Errorf("header %q: enabled=%v visible=%v, want a visible disabled header", it.Label, it.Enabled, it.Visible)
				}
			}
			if m.Icon != tc.icon {
				t.Errorf("icon %q, want %q", m.Icon, tc.icon)
			}
			if m.Tooltip != tc.tooltip {
				t.Errorf("tooltip %q, want %q", m.Tooltip, tc.tooltip)
			}
			if strings.Contains(m.Tooltip, "\n") {
				t.Errorf("tooltip has more than one line: %q", m.Tooltip)
			}
		})
	}
}

func TestModelEnablement(t *testing.T) {
	up := link(netlink.StateUp, time.Minute, 0)
	type en struct{ start, stop, reconnect, quit bool }
	tests := []struct {
		name string
		st   status
		ui   UIState
		want en
	}{
		{"stopped", status{VM: vm(vmhost.StateStopped, 0, "")}, allUI, en{start: true, quit: true}},
		{"error", status{VM: vm(vmhost.StateError, 0, "boom")}, allUI, en{start: true, quit: true}},
		{"starting", status{VM: vm(vmhost.StateStarting, 0, "")}, allUI, en{stop: true, quit: true}},
		{"running", status{VM: vm(vmhost.StateRunning, 0, ""), Link: up}, allUI, en{stop: true, reconnect: true, quit: true}},
		{"running, reconnecting", status{VM: vm(vmhost.StateRunning, 0, ""), Link: link(netlink.StateReconnecting, 0, 1)}, allUI, en{stop: true, reconnect: true, quit: true}},
		{"running, link failed", status{VM: vm(vmhost.StateRunning, 0, ""), Link: link(netlink.StateFailed, 0, 1)}, allUI, en{stop: true, quit: true}},
		{"stopping", status{VM: vm(vmhost.StateStopping, 0, ""), Link: up}, allUI, en{quit: true}},
		{"running, VM action in progress", status{VM: vm(vmhost.StateRunning, 0, ""), Link: up}, UIState{VMBusy: busy}, en{reconnect: true, quit: true}},
		{"running, reconnect in progress", status{VM: vm(vmhost.StateRunning, 0, ""), Link: up}, UIState{ReconnectBusy: busy}, en{stop: true, quit: true}},
		{"quitting", status{VM: vm(vmhost.StateRunning, 0, ""), Link: up}, UIState{Quitting: true}, en{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := buildModel(tc.st, tc.ui, now)
			got := en{
				start:     m.Items[ItemStart].Enabled,
				stop:      m.Items[ItemStop].Enabled,
				reconnect: m.Items[ItemReconnect].Enabled,
				quit:      m.Items[ItemQuit].Enabled,
			}
			if got != tc.want {
				t.Errorf("enabled %+v, want %+v", got, tc.want)
			}
			vmItems := tc.st.VM != nil
			if m.Items[ItemStart].Visible != vmItems || m.Items[ItemStop].Visible != vmItems {
				t.Errorf("Start/Stop visible %v/%v, want %v", m.Items[ItemStart].Visible, m.Items[ItemStop].Visible, vmItems)
			}
		})
	}
}

func TestModelBusyLabels(t *testing.T) {
	m := buildModel(status{VM: vm(vmhost.StateStopped, 0, "")}, UIState{VMBusy: busy}, now)
	if got := m.Items[ItemStart].Label; got != "Starting VM…" {
		t.Errorf("Start label while starting: %q", got)
	}
	m = buildModel(status{VM: vm(vmhost.StateRunning, 0, "")}, UIState{VMBusy: busy}, now)
	if got := m.Items[ItemStop].Label; got != "Stopping VM…" {
		t.Errorf("Stop label while stopping: %q", got)
	}
	m = buildModel(status{VM: vm(vmhost.StateRunning, 0, "")}, UIState{Quitting: true}, now)
	if got := m.Items[ItemQuit].Label; got != "Stopping VM and quitting…" {
		t.Errorf("Quit label while quitting: %q", got)
	}
	m = buildModel(status{VM: vm(vmhost.StateStopped, 0, "")}, UIState{Quitting: true}, now)
	if got := m.Items[ItemQuit].Label; got != "Quitting…" {
		t.Errorf("Quit label while quitting a stopped VM: %q", got)
	}
}

func TestModelOptionalItems(t *testing.T) {
	st := status{VM: vm(vmhost.StateRunning, 0, "")}
	tests := []struct {
		name                             string
		ui                               UIState
		console, config                  bool // enabled
		loginVisible, loginOn, loginChck bool
	}{
		{"nothing configured", UIState{}, false, false, false, false, false},
		{"files", UIState{ConsoleLog: "/console.log", HasConfig: true}, true, true, false, false, false},
		{"login item unknown", UIState{HasLoginItem: true}, false, false, true, false, false},
		{"login item off", UIState{HasLoginItem: true, LoginKnown: true}, false, false, true, true, false},
		{"login item on", UIState{HasLoginItem: true, LoginKnown: true, LoginEnabled: true}, false, false, true, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := buildModel(st, tc.ui, now)
			if m.Items[ItemConsole].Enabled != tc.console || m.Items[ItemConfig].Enabled != tc.config {
				t.Errorf("console/config enabled %v/%v, want %v/%v",
					m.Items[ItemConsole].Enabled, m.Items[ItemConfig].Enabled, tc.console, tc.config)
			}
			l := m.Items[ItemLogin]
			if l.Visible != tc.loginVisible || l.Enabled != tc.loginOn || l.Checked != tc.loginChck {
				t.Errorf("login visible/enabled/checked %v/%v/%v, want %v/%v/%v",
					l.Visible, l.Enabled, l.Checked, tc.loginVisible, tc.loginOn, tc.loginChck)
			}
		})
	}
}

func TestModelProblem(t *testing.T) {
	st := status{VM: vm(vmhost.StateStopped, 0, "")}
	m := buildModel(st, UIState{}, now)
	if m.Items[ItemProblem].Visible {
		t.Errorf("problem item visible without a problem: %q", m.Items[ItemProblem].Label)
	}
	long := "Start VM failed: " + strings.Repeat("x", 200)
	m = buildModel(st, UIState{Problem: long}, now)
	p := m.Items[ItemProblem]
	if !p.Visible || p.Enabled {
		t.Errorf("problem item visible=%v enabled=%v, want visible and disabled", p.Visible, p.Enabled)
	}
	if n := len([]rune(p.Label)); n > maxErrorLen+2 || !strings.HasPrefix(p.Label, "⚠ Start VM failed: ") || !strings.HasSuffix(p.Label, "…") {
		t.Errorf("problem label %q (%d runes): want a truncated message", p.Label, n)
	}
}

func TestModelLinkProblem(t *testing.T) {
	running := vm(vmhost.StateRunning, time.Hour, "")
	dialErr := "dialing the daemon: dial unix /var/run/socket_vmnet: connect: no such file or directory"
	deniedErr := "dialing the daemon: dial unix /var/run/socket_vmnet: connect: permission denied"
	for _, tc := range []struct {
		name string
		link netlink.Status
		ui   UIState
		want string // "" = hidden
	}{
		{"connecting", netlink.Status{State: netlink.StateConnecting, LastError: deniedErr}, UIState{}, "⚠ " + truncate(deniedErr, maxErrorLen)},
		{"connecting, no socket", netlink.Status{State: netlink.StateConnecting, LastError: dialErr}, UIState{}, "⚠ waiting for socket_vmnet at /var/run/socket_vmnet"},
		{"reconnecting", netlink.Status{State: netlink.StateReconnecting, LastError: "the daemon closed the connection"}, UIState{}, "⚠ the daemon closed the connection"},
		{"up again: the old error is not shown", netlink.Status{State: netlink.StateUp, LastError: dialErr}, UIState{}, ""},
		{"a failed action comes first", netlink.Status{State: netlink.StateConnecting, LastError: dialErr}, UIState{Problem: "Stop VM failed: boom"}, "⚠ Stop VM failed: boom"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := buildModel(status{VM: running, Link: tc.link}, tc.ui, now)
			p := m.Items[ItemProblem]
			if tc.want == "" {
				if p.Visible {
					t.Errorf("problem line visible: %q", p.Label)
				}
				return
			}
			if !p.Visible || p.Label != tc.want {
				t.Errorf("problem line %q (visible %v), want %q", p.Label, p.Visible, tc.want)
			}
		})
	}
}

// TestModelIconForEveryState checks that every combination of states maps
// to one of the embedded icons.
func TestModelIconForEveryState(t *testing.T) {
	known := map[assets.Icon]bool{}
	for _, i := range assets.Icons {
		known[i] = true
	}
	var vms []*model.VM
	for s := vmhost.State(0); s <= vmhost.StateError+1; s++ {
		vms = append(vms, vm(s, 0, ""))
	}
	for _, v := range vms {
		for l := netlink.State(0); l <= netlink.StateFailed+1; l++ {
			st := status{VM: v, Link: link(l, 0, 0)}
			m := buildModel(st, UIState{}, now)
			if !known[m.Icon] {
				t.Errorf("VM %+v link %v: icon %q is not embedded", v, l, m.Icon)
			}
			for id, it := range m.Items {
				if it.Visible && it.Label == "" {
					t.Errorf("VM %+v link %v: item %d is visible without a label", v, l, id)
				}
			}
		}
	}
}

// TestModelVMNote: the VM host's note about what it is doing shows on a
// line under the VM line, and only when there is one.
func TestModelVMNote(t *testing.T) {
	const note = "waiting for the guest to answer the power button (it may still be booting)"
	st := status{VM: vm(vmhost.StateStopping, 12*time.Second, ""), Link: link(netlink.StateUp, time.Minute, 0)}
	st.VM.Note = note
	m := buildModel(st, allUI, now)
	if got := m.Items[ItemVM].Label; got != "VM: stopping 12s" {
		t.Errorf("VM line %q, want %q", got, "VM: stopping 12s")
	}
	if it := m.Items[ItemVMNote]; it.Label != note || !it.Visible || it.Enabled {
		t.Errorf("note line %+v, want %q shown and not clickable", it, note)
	}
	// A long note is cut to one line.
	st.VM.Note = strings.Repeat("busy\n", 40)
	if it := m2(st).Items[ItemVMNote]; !it.Visible || strings.Contains(it.Label, "\n") || len([]rune(it.Label)) > maxNoteLen {
		t.Errorf("long note line %q", it.Label)
	}
	// No note: no line.
	st.VM.Note = ""
	if it := m2(st).Items[ItemVMNote]; it.Visible {
		t.Errorf("note line %+v without a note", it)
	}
}

func m2(st status) Model { return buildModel(st, allUI, now) }

// TestModelNotConfigured: on a first launch (no VM in the configuration)
// the menu says so and leads to Open config; Start stays enabled, since a
// start reads the file again.
func TestModelNotConfigured(t *testing.T) {
	st := status{VM: &model.VM{State: vmhost.StateStopped, Since: now, NotConfigured: true,
		Note: "no VM configured: edit /Users/u/Library/Application Support/vmnetbar/config.yaml (vm.image), then start"}}
	m := buildModel(st, allUI, now)
	for id, want := range map[ItemID]Item{
		ItemVM:     {Label: "VM: not configured", Visible: true},
		ItemVMNote: {Label: "Set vm.image with Open config, then Start VM", Visible: true},
		ItemLink:   {Label: "Link: down (the VM is not running)", Visible: true},
		ItemStart:  {Label: "Start VM", Visible: true, Enabled: true},
		ItemStop:   {Label: "Stop VM", Visible: true},
		ItemConfig: {Label: "Open config", Visible: true, Enabled: true},
	} {
		if got := m.Items[id]; got != want {
			t.Errorf("item %d: %+v, want %+v", id, got, want)
		}
	}
	if m.Icon != assets.IconStopped || m.Tooltip != "vmnetbar: VM not configured · link down" {
		t.Errorf("icon %q tooltip %q", m.Icon, m.Tooltip)
	}
	// Without a file to open, the note says where to set it.
	ui := allUI
	ui.HasConfig = false
	if got := buildModel(st, ui, now).Items[ItemVMNote].Label; got != "Set vm.image in the configuration file, then Start VM" {
		t.Errorf("note without a config file: %q", got)
	}
	// A start in progress says so, as for a stopped VM.
	ui = allUI
	ui.VMBusy = busy
	if got := buildModel(st, ui, now).Items[ItemStart]; got.Label != "Starting VM…" || got.Enabled {
		t.Errorf("Start while starting: %+v", got)
	}
}

// TestModelWaitingForDaemon: while socket_vmnet's socket does not exist
// (not installed, not started yet, or being reinstalled) or nothing
// listens on it, the menu says the link waits for it, instead of a dial
// error.
func TestModelWaitingForDaemon(t *testing.T) {
	running := vm(vmhost.StateRunning, time.Hour, "")
	const sock = "/opt/homebrew/var/run/socket_vmnet"
	noFile := "dialing the daemon: dial unix " + sock + ": connect: no such file or directory"
	refused := "dialing the daemon: dial unix " + sock + ": connect: connection refused"
	denied := "dialing the daemon: dial unix " + sock + ": connect: permission denied"
	for _, tc := range []struct {
		name          string
		link          netlink.Status
		line, tooltip string
		problem       string // "" = hidden
	}{
		{"connecting, no socket", netlink.Status{State: netlink.StateConnecting, Since: now.Add(-3 * time.Second), LastError: noFile},
			"Link: connecting 3s", "vmnetbar: VM running 1h 0m · waiting for socket_vmnet", "⚠ waiting for socket_vmnet at " + sock},
		{"reconnecting, socket left behind", netlink.Status{State: netlink.StateReconnecting, Since: now.Add(-12 * time.Second), LastError: refused, Reconnects: 2},
			"Link: reconnecting 12s · 2 reconnects", "vmnetbar: VM running 1h 0m · waiting for socket_vmnet", "⚠ waiting for socket_vmnet at " + sock},
		{"connecting, another error", netlink.Status{State: netlink.StateConnecting, Since: now, LastError: denied},
			"Link: connecting 0s", "vmnetbar: VM running 1h 0m · link connecting", "⚠ " + truncate(denied, maxErrorLen)},
		{"up, an old error", netlink.Status{State: netlink.StateUp, LastError: noFile},
			"Link: up · 0 reconnects", "vmnetbar: VM running 1h 0m · link up", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := buildModel(status{VM: running, Link: tc.link}, allUI, now)
			if got := m.Items[ItemLink].Label; got != tc.line {
				t.Errorf("link line %q, want %q", got, tc.line)
			}
			if m.Tooltip != tc.tooltip {
				t.Errorf("tooltip %q, want %q", m.Tooltip, tc.tooltip)
			}
			p := m.Items[ItemProblem]
			if (tc.problem == "" && p.Visible) || (tc.problem != "" && (!p.Visible || p.Label != tc.problem)) {
				t.Errorf("problem line %q (visible %v), want %q", p.Label, p.Visible, tc.problem)
			}
		})
	}
}

// buildModel is BuildModel on a status whose actions the controller's rule
// decided, as every status the tray gets has them.
func buildModel(st status, ui UIState, now time.Time) Model {
	if st.VM == nil {
		st.VM = &model.VM{}
	}
	st.Actions = model.Allowed(st.VM, st.Link.State)
	return BuildModel(one(st), ui, now)
}

// The menu enables Start, Stop and Reconnect exactly as the status's
// actions say, whatever the states: it keeps no rules of its own.
func TestModelTakesActionsFromStatus(t *testing.T) {
	running := vm(vmhost.StateRunning, time.Hour, "")
	for _, a := range []model.Actions{{}, {Start: true}, {Stop: true}, {Reconnect: true}, {Start: true, Stop: true, Reconnect: true}} {
		st := status{VM: running, Link: link(netlink.StateUp, time.Hour, 0), Actions: a}
		m := BuildModel(one(st), allUI, now)
		if m.Items[ItemStart].Enabled != a.Start || m.Items[ItemStop].Enabled != a.Stop || m.Items[ItemReconnect].Enabled != a.Reconnect {
			t.Errorf("actions %+v: start %v, stop %v, reconnect %v", a, m.Items[ItemStart].Enabled, m.Items[ItemStop].Enabled, m.Items[ItemReconnect].Enabled)
		}
	}
}
