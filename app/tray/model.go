package tray

import (
	"fmt"
	"strings"
	"time"

	"github.com/vmnetbar/vmnetbar/app/control"
	"github.com/vmnetbar/vmnetbar/app/internal/human"
	"github.com/vmnetbar/vmnetbar/assets"
	"github.com/vmnetbar/vmnetbar/netlink"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

// ItemID names a menu entry. The menu shows them in this order.
type ItemID int

const (
	ItemVM        ItemID = iota // header: "VM: running 2h 14m"
	ItemVMNote                  // header: what the VM host is doing (VMStatus.Note), hidden when nothing
	ItemLink                    // header: "Link: up · 3 reconnects · last 4m ago"
	ItemTraffic                 // header: "↑ 1.2 GB ↓ 3.4 GB"
	ItemProblem                 // header: the last failed action or why the link is down, hidden when none
	ItemStart                   // Start VM
	ItemStop                    // Stop VM
	ItemReconnect               // Reconnect now
	ItemConsole                 // Open console log
	ItemConfig                  // Open config
	ItemLogin                   // Launch at login (checkbox)
	ItemQuit                    // Quit
	numItems
)

// separatorBefore lists the items that start a new group in the menu.
var separatorBefore = map[ItemID]bool{ItemStart: true, ItemConsole: true, ItemQuit: true}

// Item is one menu entry as shown.
type Item struct {
	Label   string
	Enabled bool
	Visible bool
	Checked bool // for ItemLogin only
}

// Model is everything the tray shows. It is computed by BuildModel and
// applied to the menu as a whole; equal models render identically.
type Model struct {
	Icon    assets.Icon
	Tooltip string
	Items   [numItems]Item
}

// UIState is the tray's own state that shapes the menu, beside the
// controller's status.
type UIState struct {
	VMBusy        bool   // a Start or Stop click is being carried out
	ReconnectBusy bool   // a Reconnect click is being carried out
	Quitting      bool   // Quit was clicked: the VM is being stopped
	Problem       string // the last failed action, "" if none
	HasConsoleLog bool   // Options.ConsoleLog is set
	HasConfig     bool   // Options.ConfigFile is set
	HasLoginItem  bool   // Options.LoginItem is set
	LoginEnabled  bool   // the login item is installed
	LoginKnown    bool   // LoginEnabled was read successfully
}

// maxErrorLen bounds an error message shown in a menu label.
const maxErrorLen = 80

// maxNoteLen bounds the VM host's note shown under the VM line.
const maxNoteLen = 100

// BuildModel computes the menu for a controller status at time now. It
// is a pure function.
func BuildModel(st control.Status, ui UIState, now time.Time) Model {
	var m Model
	vmLine, vmShort := vmText(st.VM, now)
	linkLine, linkShort := linkText(st, now)
	m.Icon = icon(st)
	m.Tooltip = "vmnetbar: " + vmShort + " · " + linkShort

	m.Items[ItemVM] = Item{Label: vmLine, Visible: true}
	var note string
	switch {
	case st.VM != nil && st.VM.NotConfigured && ui.HasConfig:
		// The controller's note names the file; the menu has it below.
		note = "Set vm.kernel with Open config, then Start VM"
	case st.VM != nil && st.VM.NotConfigured:
		note = "Set vm.kernel in the configuration file, then Start VM"
	case st.VM != nil:
		note = truncate(st.VM.Note, maxNoteLen)
	}
	m.Items[ItemVMNote] = Item{Label: note, Visible: note != ""}
	m.Items[ItemLink] = Item{Label: linkLine, Visible: true}
	m.Items[ItemTraffic] = Item{
		Label:   fmt.Sprintf("↑ %s ↓ %s", human.Bytes(st.Link.TxBytes), human.Bytes(st.Link.RxBytes)),
		Visible: true,
	}
	problem := ui.Problem
	if problem == "" && st.Link.LastError != "" &&
		(st.Link.State == netlink.StateConnecting || st.Link.State == netlink.StateReconnecting) {
		// Why the link is not up yet.
		problem = st.Link.LastError
		if path, ok := waitingForDaemon(st.Link); ok {
			// socket_vmnet is not installed or not started yet (at
			// login, during brew reinstall): the link dials until it
			// is there.
			problem = "waiting for socket_vmnet at " + path
		}
	}
	m.Items[ItemProblem] = Item{Label: "⚠ " + truncate(problem, maxErrorLen), Visible: problem != ""}

	vmState := vmhost.State(0)
	if st.VM != nil {
		vmState = st.VM.State
	}
	canAct := !ui.Quitting
	m.Items[ItemStart] = Item{
		Label:   "Start VM",
		Visible: st.VM != nil,
		Enabled: canAct && !ui.VMBusy && st.Actions.Start,
	}
	m.Items[ItemStop] = Item{
		Label:   "Stop VM",
		Visible: st.VM != nil,
		Enabled: canAct && !ui.VMBusy && st.Actions.Stop,
	}
	if ui.VMBusy && !ui.Quitting {
		switch vmState {
		case vmhost.StateStopped, vmhost.StateError:
			m.Items[ItemStart].Label = "Starting VM…"
		default:
			m.Items[ItemStop].Label = "Stopping VM…"
		}
	}
	// What may be done is the status's Actions (model.Allowed, decided
	// once for the API, the command line and the menu); the menu adds only
	// that an action of its own is under way.
	m.Items[ItemReconnect] = Item{
		Label:   "Reconnect now",
		Visible: true,
		Enabled: canAct && !ui.ReconnectBusy && st.Actions.Reconnect,
	}
	m.Items[ItemConsole] = Item{Label: "Open console log", Visible: true, Enabled: ui.HasConsoleLog}
	m.Items[ItemConfig] = Item{Label: "Open config", Visible: true, Enabled: ui.HasConfig}
	m.Items[ItemLogin] = Item{
		Label:   "Launch at login",
		Visible: ui.HasLoginItem,
		Enabled: canAct && ui.HasLoginItem && ui.LoginKnown,
		Checked: ui.LoginKnown && ui.LoginEnabled,
	}
	m.Items[ItemQuit] = Item{Label: "Quit", Visible: true, Enabled: canAct}
	if ui.Quitting {
		m.Items[ItemQuit].Label = "Quitting…"
		if vmState != vmhost.StateStopped && vmState != vmhost.StateError && st.VM != nil {
			m.Items[ItemQuit].Label = "Stopping VM and quitting…"
		}
	}
	return m
}

// vmText returns the VM header line and its short form for the tooltip.
func vmText(vm *control.VMStatus, now time.Time) (line, short string) {
	if vm == nil {
		return "VM: none (standalone link)", "no VM"
	}
	if vm.NotConfigured {
		return "VM: not configured", "VM not configured"
	}
	var s string
	switch vm.State {
	case vmhost.StateRunning:
		s = "running" + since(vm.Since, now)
	case vmhost.StateStarting:
		s = "starting" + since(vm.Since, now)
	case vmhost.StateStopping:
		s = "stopping" + since(vm.Since, now)
	case vmhost.StateStopped:
		s = "stopped"
	case vmhost.StateError:
		s = "error"
		if vm.Error != "" {
			return "VM: error: " + truncate(vm.Error, maxErrorLen), "VM error"
		}
	default:
		s = "unknown"
	}
	return "VM: " + s, "VM " + s
}

// linkText returns the link header line and its short form for the
// tooltip.
func linkText(st control.Status, now time.Time) (line, short string) {
	l := st.Link
	if st.VM != nil && st.VM.State != vmhost.StateRunning && st.VM.State != vmhost.StateStopping &&
		(l.State == 0 || l.State == netlink.StateStopped) {
		return "Link: down (the VM is not running)", "link down"
	}
	reconnects := plural(l.Reconnects, "reconnect", "reconnects")
	var parts []string
	switch l.State {
	case netlink.StateUp:
		parts = append(parts, "up", reconnects)
		if l.Reconnects > 0 && !l.Since.IsZero() {
			parts = append(parts, "last "+ago(l.Since, now))
		}
		short = "link up"
		if l.Reconnects > 0 {
			short += " (" + reconnects + ")"
		}
	case netlink.StateReconnecting:
		parts = append(parts, "reconnecting"+since(l.Since, now), reconnects)
		short = "link reconnecting"
	case netlink.StateConnecting:
		parts = append(parts, "connecting"+since(l.Since, now))
		short = "link connecting"
	case netlink.StateStopped, 0:
		parts = append(parts, "down")
		short = "link down"
	case netlink.StateFailed:
		p := "failed"
		if l.LastError != "" {
			p += ": " + truncate(l.LastError, maxErrorLen)
		}
		parts = append(parts, p)
		short = "link failed"
	default:
		parts = append(parts, l.State.String())
		short = "link " + l.State.String()
	}
	if _, ok := waitingForDaemon(l); ok {
		short = "waiting for socket_vmnet"
	}
	return "Link: " + strings.Join(parts, " · "), short
}

// waitingForDaemon returns the daemon's socket when the link is dialing
// and the socket does not exist (or nothing listens on it).
func waitingForDaemon(l netlink.Status) (string, bool) {
	return human.WaitingForDaemon(l.State == netlink.StateConnecting || l.State == netlink.StateReconnecting, l.LastError)
}

// icon picks the tray icon: errors first, then the VM's state, then the
// link's.
func icon(st control.Status) assets.Icon {
	if st.Link.State == netlink.StateFailed {
		return assets.IconError
	}
	if st.VM != nil {
		switch st.VM.State {
		case vmhost.StateError:
			return assets.IconError
		case vmhost.StateStopped:
			return assets.IconStopped
		case vmhost.StateStarting, vmhost.StateStopping:
			return assets.IconBooting
		case vmhost.StateRunning:
		default:
			return assets.IconStopped
		}
	}
	switch st.Link.State {
	case netlink.StateUp:
		return assets.IconUp
	case netlink.StateReconnecting:
		return assets.IconReconnecting
	case netlink.StateStopped:
		if st.VM == nil {
			return assets.IconStopped
		}
		return assets.IconBooting
	default:
		return assets.IconBooting
	}
}

// since renders " 2h 14m" for the time from t to now, or "" when t is
// unknown.
func since(t, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	return " " + human.Duration(now.Sub(t))
}

// ago renders "4m ago", or "just now" under a second.
func ago(t, now time.Time) string {
	d := now.Sub(t)
	if d < time.Second {
		return "just now"
	}
	return human.Duration(d) + " ago"
}

func plural(n uint64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// truncate shortens s to at most n runes, on one line.
func truncate(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
