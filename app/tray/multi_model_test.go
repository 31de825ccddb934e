package tray

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/assets"
	"github.com/vmnetbar/vmnetbar/netlink"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

// vmStatus is a VM called name in state s with its link in state l and
// the actions the controller's rule allows.
func vmStatus(name string, s vmhost.State, l netlink.State, reconnects uint64) model.VMStatus {
	v := model.VMStatus{Name: name, VM: model.VM{State: s, Since: now.Add(-time.Hour)},
		Link: netlink.Status{State: l, Since: now.Add(-time.Minute), Reconnects: reconnects}}
	v.Actions = model.Allowed(&v.VM, v.Link.State)
	return v
}

func overview(vms ...model.VMStatus) model.Overview { return model.Overview{VMs: vms} }

// oneVMItems are the top-level items only the one-VM layout shows.
var oneVMItems = []ItemID{ItemVM, ItemLink, ItemTraffic, ItemStart, ItemStop, ItemReconnect, ItemConsole}

// TestModelSeveralVMs: with several VMs, each has a line at the top with
// its submenu; Start all and Stop all replace the one VM's actions.
func TestModelSeveralVMs(t *testing.T) {
	build := vmStatus("build", vmhost.StateStopped, netlink.StateStopped, 0)
	dev := vmStatus("dev", vmhost.StateRunning, netlink.StateUp, 2)
	dev.VM.ConsoleLog = "/state/vms/dev/console.log"
	dev.Link.TxBytes = 1_500_000
	m := BuildModel(overview(build, dev), allUI, now)

	if m.Single != "" || len(m.VMs) != 2 {
		t.Fatalf("layout: single %q, %d VM lines; want the several-VM layout with 2", m.Single, len(m.VMs))
	}
	for _, id := range oneVMItems {
		if m.Items[id].Visible {
			t.Errorf("one-VM item %d %q visible with several VMs", id, m.Items[id].Label)
		}
	}
	for i, want := range []struct {
		name, line string
		sub        map[SubItemID]Item
		console    string
	}{
		{"build", "build · stopped", map[SubItemID]Item{
			SubVM:        {Label: "VM: stopped", Visible: true},
			SubLink:      {Label: "Link: down (the VM is not running)", Visible: true},
			SubTraffic:   {Label: "↑ 0 B ↓ 0 B", Visible: true},
			SubStart:     {Label: "Start VM", Visible: true, Enabled: true},
			SubStop:      {Label: "Stop VM", Visible: true},
			SubReconnect: {Label: "Reconnect now", Visible: true},
			SubConsole:   {Label: "Open console log", Visible: true}, // no console log in the status
		}, ""},
		{"dev", "dev · running · 2 reconnects", map[SubItemID]Item{
			SubVM:        {Label: "VM: running 1h 0m", Visible: true},
			SubLink:      {Label: "Link: up · 2 reconnects · last 1m ago", Visible: true},
			SubTraffic:   {Label: "↑ 1.5 MB ↓ 0 B", Visible: true},
			SubStart:     {Label: "Start VM", Visible: true},
			SubStop:      {Label: "Stop VM", Visible: true, Enabled: true},
			SubReconnect: {Label: "Reconnect now", Visible: true, Enabled: true},
			SubConsole:   {Label: "Open console log", Visible: true, Enabled: true},
		}, "/state/vms/dev/console.log"},
	} {
		e := m.VMs[i]
		if e.Name != want.name || e.Line != (Item{Label: want.line, Visible: true, Enabled: true}) || e.ConsoleLog != want.console {
			t.Errorf("VM line %d: %q %+v console %q, want %q %q console %q", i, e.Name, e.Line, e.ConsoleLog, want.name, want.line, want.console)
		}
		for id, it := range want.sub {
			if e.Sub[id] != it {
				t.Errorf("%s submenu item %d: %+v, want %+v", e.Name, id, e.Sub[id], it)
			}
		}
		if e.Sub[SubNote].Visible || e.Sub[SubProblem].Visible {
			t.Errorf("%s: note %+v, problem %+v shown without a note or problem", e.Name, e.Sub[SubNote], e.Sub[SubProblem])
		}
	}
	for id, want := range map[ItemID]Item{
		ItemStartAll: {Label: "Start all", Visible: true, Enabled: true},
		ItemStopAll:  {Label: "Stop all", Visible: true, Enabled: true},
		ItemConfig:   {Label: "Open config", Visible: true, Enabled: true},
		ItemReload:   {Label: "Reload config", Visible: true, Enabled: true},
		ItemQuit:     {Label: "Quit", Visible: true, Enabled: true},
	} {
		if m.Items[id] != want {
			t.Errorf("item %d: %+v, want %+v", id, m.Items[id], want)
		}
	}
}

// TestModelOneVMLayout: with one VM the menu is that VM's, with no VM
// lines and no Start all / Stop all, and Reload config beside Open config.
func TestModelOneVMLayout(t *testing.T) {
	m := BuildModel(overview(vmStatus("dev", vmhost.StateRunning, netlink.StateUp, 0)), allUI, now)
	if m.Single != "dev" || m.VMs != nil {
		t.Fatalf("single %q, VM lines %+v; want the one-VM layout for dev", m.Single, m.VMs)
	}
	for _, id := range oneVMItems {
		if !m.Items[id].Visible {
			t.Errorf("item %d hidden in the one-VM layout", id)
		}
	}
	for _, id := range []ItemID{ItemStartAll, ItemStopAll, ItemMoreVMs} {
		if m.Items[id].Visible {
			t.Errorf("item %d %q shown in the one-VM layout", id, m.Items[id].Label)
		}
	}
	if it := m.Items[ItemReload]; it != (Item{Label: "Reload config", Visible: true, Enabled: true}) {
		t.Errorf("Reload config: %+v", it)
	}
}

// TestModelNoVMs: a configuration without VMs says so.
func TestModelNoVMs(t *testing.T) {
	m := BuildModel(model.Overview{}, allUI, now)
	if it := m.Items[ItemVM]; it.Label != "No VMs configured" || !it.Visible {
		t.Errorf("VM line %+v", it)
	}
	if m.Items[ItemStartAll].Enabled || m.Items[ItemStopAll].Enabled || len(m.VMs) != 0 {
		t.Errorf("Start all %+v, Stop all %+v, VM lines %d with no VM", m.Items[ItemStartAll], m.Items[ItemStopAll], len(m.VMs))
	}
	if m.Icon != assets.IconStopped || m.Tooltip != "vmnetbar: no VMs configured" {
		t.Errorf("icon %q, tooltip %q", m.Icon, m.Tooltip)
	}
}

// TestModelVMsAppearAndDisappear: the layout follows the set of VMs both
// ways, and the VM lines follow the VMs, in the overview's order.
func TestModelVMsAppearAndDisappear(t *testing.T) {
	a := vmStatus("a", vmhost.StateStopped, 0, 0)
	b := vmStatus("b", vmhost.StateRunning, netlink.StateUp, 0)
	c := vmStatus("c", vmhost.StateStopped, 0, 0)
	for _, step := range []struct {
		o      model.Overview
		single string
		lines  []string
	}{
		{overview(a), "a", nil},
		{overview(a, b), "", []string{"a", "b"}},
		{overview(a, b, c), "", []string{"a", "b", "c"}},
		{overview(b, c), "", []string{"b", "c"}},
		{overview(c), "c", nil},
		{overview(), "", nil},
		{overview(b), "b", nil},
	} {
		m := BuildModel(step.o, allUI, now)
		var lines []string
		for _, e := range m.VMs {
			lines = append(lines, e.Name)
		}
		if m.Single != step.single || fmt.Sprint(lines) != fmt.Sprint(step.lines) {
			t.Errorf("VMs %v: single %q, lines %v; want %q, %v", step.o.Names(), m.Single, lines, step.single, step.lines)
		}
		for _, id := range oneVMItems {
			if id == ItemVM && len(step.o.VMs) == 0 {
				continue // "No VMs configured"
			}
			if m.Items[id].Visible != (step.single != "") {
				t.Errorf("VMs %v: item %d visible %v", step.o.Names(), id, m.Items[id].Visible)
			}
		}
		if all := step.single == ""; m.Items[ItemStartAll].Visible != all || m.Items[ItemStopAll].Visible != all {
			t.Errorf("VMs %v: Start all / Stop all visible %v/%v, want %v", step.o.Names(), m.Items[ItemStartAll].Visible, m.Items[ItemStopAll].Visible, all)
		}
	}
}

// TestModelMoreVMsThanLines: VMs beyond maxVMLines are summed up in a
// line; Start all and Stop all still count them.
func TestModelMoreVMsThanLines(t *testing.T) {
	var vms []model.VMStatus
	for i := range maxVMLines + 3 {
		vms = append(vms, vmStatus(fmt.Sprintf("vm%02d", i), vmhost.StateStopped, 0, 0))
	}
	vms[maxVMLines+2] = vmStatus(vms[maxVMLines+2].Name, vmhost.StateRunning, netlink.StateUp, 0)
	m := BuildModel(overview(vms...), allUI, now)
	if len(m.VMs) != maxVMLines {
		t.Errorf("%d VM lines, want %d", len(m.VMs), maxVMLines)
	}
	if it := m.Items[ItemMoreVMs]; !it.Visible || it.Label != "… and 3 more VMs (vmnetbar list)" {
		t.Errorf("more line %+v", it)
	}
	if !m.Items[ItemStopAll].Enabled {
		t.Error("Stop all disabled while a VM past the lines runs")
	}
}

// TestModelSeveralTakesActionsFromStatus: every VM's Start, Stop and
// Reconnect, and Start all / Stop all, come from the status's actions
// only, whatever the states.
func TestModelSeveralTakesActionsFromStatus(t *testing.T) {
	acts := []model.Actions{{}, {Start: true}, {Stop: true}, {Reconnect: true}, {Start: true, Stop: true, Reconnect: true}}
	for _, a := range acts {
		for _, b := range acts {
			x := vmStatus("x", vmhost.StateRunning, netlink.StateUp, 0)
			y := vmStatus("y", vmhost.StateStopped, netlink.StateStopped, 0)
			x.Actions, y.Actions = a, b
			m := BuildModel(overview(x, y), allUI, now)
			for i, want := range []model.Actions{a, b} {
				s := m.VMs[i].Sub
				if got := (model.Actions{Start: s[SubStart].Enabled, Stop: s[SubStop].Enabled, Reconnect: s[SubReconnect].Enabled}); got != want {
					t.Errorf("actions %+v, %+v: VM %d enables %+v", a, b, i, got)
				}
			}
			if m.Items[ItemStartAll].Enabled != (a.Start || b.Start) || m.Items[ItemStopAll].Enabled != (a.Stop || b.Stop) {
				t.Errorf("actions %+v, %+v: Start all %v, Stop all %v", a, b, m.Items[ItemStartAll].Enabled, m.Items[ItemStopAll].Enabled)
			}
		}
	}
}

// TestModelSeveralBusy: a click under way disables that VM's items only;
// Start all or Stop all under way disables both and says which runs.
func TestModelSeveralBusy(t *testing.T) {
	a := vmStatus("a", vmhost.StateStopped, 0, 0)
	b := vmStatus("b", vmhost.StateStopped, 0, 0)
	ui := allUI
	ui.VMBusy = map[string]bool{"a": true}
	m := BuildModel(overview(a, b), ui, now)
	if it := m.VMs[0].Sub[SubStart]; it.Enabled || it.Label != "Starting VM…" {
		t.Errorf("a's Start while starting: %+v", it)
	}
	if it := m.VMs[1].Sub[SubStart]; !it.Enabled || it.Label != "Start VM" {
		t.Errorf("b's Start while a starts: %+v", it)
	}
	ui = allUI
	ui.AllBusy = "start"
	m = BuildModel(overview(a, b), ui, now)
	if m.Items[ItemStartAll].Label != "Starting all…" || m.Items[ItemStartAll].Enabled || m.Items[ItemStopAll].Enabled {
		t.Errorf("while starting all: %+v, %+v", m.Items[ItemStartAll], m.Items[ItemStopAll])
	}
	ui.AllBusy, ui.Quitting = "", true
	b = vmStatus("b", vmhost.StateRunning, netlink.StateUp, 0)
	m = BuildModel(overview(a, b), ui, now)
	if m.Items[ItemQuit].Label != "Stopping VMs and quitting…" || m.Items[ItemStartAll].Enabled || m.VMs[1].Sub[SubStop].Enabled || m.Items[ItemReload].Enabled {
		t.Errorf("quitting: Quit %+v, Start all %+v, b's Stop %+v, Reload %+v", m.Items[ItemQuit], m.Items[ItemStartAll], m.VMs[1].Sub[SubStop], m.Items[ItemReload])
	}
}

// TestWorstIcon: the icon is the worst state of any VM: failed >
// reconnecting > starting, stopping or connecting > running with the
// link up > stopped.
func TestWorstIcon(t *testing.T) {
	stopped := vmStatus("s", vmhost.StateStopped, netlink.StateStopped, 0)
	up := vmStatus("u", vmhost.StateRunning, netlink.StateUp, 0)
	starting := vmStatus("b", vmhost.StateStarting, netlink.StateStopped, 0)
	connecting := vmStatus("c", vmhost.StateRunning, netlink.StateConnecting, 0)
	stopping := vmStatus("p", vmhost.StateStopping, netlink.StateUp, 0)
	reconnecting := vmStatus("r", vmhost.StateRunning, netlink.StateReconnecting, 1)
	vmErr := vmStatus("e", vmhost.StateError, netlink.StateStopped, 0)
	linkFailed := vmStatus("f", vmhost.StateRunning, netlink.StateFailed, 0)
	for _, tc := range []struct {
		vms  []model.VMStatus
		want assets.Icon
	}{
		{nil, assets.IconStopped},
		{[]model.VMStatus{stopped}, assets.IconStopped},
		{[]model.VMStatus{stopped, up}, assets.IconUp},
		{[]model.VMStatus{up, stopped}, assets.IconUp},
		{[]model.VMStatus{up, starting}, assets.IconBooting},
		{[]model.VMStatus{connecting, up}, assets.IconBooting},
		{[]model.VMStatus{up, stopping, stopped}, assets.IconBooting},
		{[]model.VMStatus{starting, reconnecting, up}, assets.IconReconnecting},
		{[]model.VMStatus{reconnecting, vmErr}, assets.IconError},
		{[]model.VMStatus{linkFailed, reconnecting, up, stopped}, assets.IconError},
	} {
		if got := worstIcon(tc.vms); got != tc.want {
			t.Errorf("VMs %v: icon %q, want %q", overview(tc.vms...).Names(), got, tc.want)
		}
		if m := BuildModel(overview(tc.vms...), allUI, now); m.Icon != tc.want {
			t.Errorf("VMs %v: the model's icon %q, want %q", overview(tc.vms...).Names(), m.Icon, tc.want)
		}
	}
}

// TestOverviewTooltip: with several VMs the tooltip counts them by state
// and names those that need attention.
func TestOverviewTooltip(t *testing.T) {
	waiting := vmStatus("w", vmhost.StateRunning, netlink.StateConnecting, 0)
	waiting.Link.LastError = "dialing the daemon: dial unix /run/x: connect: no such file or directory"
	for _, tc := range []struct {
		o    model.Overview
		want string
	}{
		{overview(vmStatus("a", vmhost.StateRunning, netlink.StateUp, 0), vmStatus("b", vmhost.StateRunning, netlink.StateUp, 3),
			vmStatus("c", vmhost.StateStopped, 0, 0), vmStatus("dev", vmhost.StateRunning, netlink.StateReconnecting, 1)),
			"vmnetbar: 3 running, 1 stopped; dev reconnecting"},
		{overview(vmStatus("a", vmhost.StateStopped, 0, 0), vmStatus("b", vmhost.StateStopped, 0, 0)), "vmnetbar: 2 stopped"},
		{overview(vmStatus("a", vmhost.StateError, 0, 0), vmStatus("b", vmhost.StateRunning, netlink.StateFailed, 0), waiting,
			vmStatus("s", vmhost.StateStarting, 0, 0)),
			"vmnetbar: 2 running, 1 starting, 1 error; a failed, b link failed, w waiting for socket_vmnet"},
		{model.Overview{VMs: []model.VMStatus{vmStatus("a", vmhost.StateStopped, 0, 0), vmStatus("b", vmhost.StateStopped, 0, 0)}, ConfigError: "bad"},
			"vmnetbar: 2 stopped; config error"},
	} {
		m := BuildModel(tc.o, allUI, now)
		if m.Tooltip != tc.want {
			t.Errorf("tooltip %q, want %q", m.Tooltip, tc.want)
		}
	}
}

// TestModelConfigError: a reload that found errors shows as a line, in
// both layouts: the overview's error, else the failed Reload's.
func TestModelConfigError(t *testing.T) {
	const msg = "config.yaml:7: vms.dev.network.mtu: 70000 is above 65535"
	for _, o := range []model.Overview{
		overview(vmStatus("dev", vmhost.StateStopped, 0, 0)),
		overview(vmStatus("build", vmhost.StateStopped, 0, 0), vmStatus("dev", vmhost.StateStopped, 0, 0)),
	} {
		if it := BuildModel(o, allUI, now).Items[ItemConfigError]; it.Visible {
			t.Errorf("config error line %+v without an error", it)
		}
		o.ConfigError = msg
		if it := BuildModel(o, allUI, now).Items[ItemConfigError]; it != (Item{Label: "Config error: " + msg, Visible: true}) {
			t.Errorf("config error line %+v", it)
		}
		o.ConfigError = ""
		ui := allUI
		ui.ReloadError = "reading config.yaml: permission denied"
		if it := BuildModel(o, ui, now).Items[ItemConfigError]; it.Label != "Config error: "+ui.ReloadError || !it.Visible {
			t.Errorf("config error line %+v after a failed Reload", it)
		}
	}
	long := strings.Repeat("x", 300)
	it := BuildModel(model.Overview{ConfigError: long}, allUI, now).Items[ItemConfigError]
	if len([]rune(it.Label)) > len("Config error: ")+maxErrorLen {
		t.Errorf("long config error not cut: %d runes", len([]rune(it.Label)))
	}
}

// TestModelConfigChanged: a VM whose configuration a reload changed says
// so on its note line (and its line, with several VMs).
func TestModelConfigChanged(t *testing.T) {
	dev := vmStatus("dev", vmhost.StateRunning, netlink.StateUp, 0)
	dev.VM.ConfigChanged = true
	m := BuildModel(overview(dev), allUI, now)
	if it := m.Items[ItemVMNote]; it != (Item{Label: configChangedNote, Visible: true}) {
		t.Errorf("one VM: note line %+v", it)
	}
	m = BuildModel(overview(vmStatus("build", vmhost.StateStopped, 0, 0), dev), allUI, now)
	if it := m.VMs[1].Sub[SubNote]; it != (Item{Label: configChangedNote, Visible: true}) {
		t.Errorf("several VMs: dev's note line %+v", it)
	}
	if got := m.VMs[1].Line.Label; got != "dev · running · 0 reconnects · config changed" {
		t.Errorf("dev's line %q", got)
	}
}
