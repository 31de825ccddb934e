package tray

import (
	"fmt"
	"strings"
	"time"

	"github.com/vmnetbar/vmnetbar/app/internal/human"
	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/assets"
	"github.com/vmnetbar/vmnetbar/netlink"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

// The menu has two layouts. With one VM it is the VM's own menu: its
// lines and actions at the top level. With none or several, each VM has a
// line at the top (maxVMLines at most) with a submenu of the same lines
// and actions, and Start all / Stop all act on all of them. Both layouts
// are one list of top-level items, some hidden: systray cannot insert an
// item above existing ones, nor hide or remove a separator, so every item
// exists in both and the three separators sit where both layouts want
// them.

// ItemID names a top-level menu entry. The menu shows them in this
// order, after the VM lines of the several-VM layout.
type ItemID int

const (
	ItemMoreVMs     ItemID = iota // several VMs: "… and 3 more VMs (vmnetbar list)", hidden unless there are more than maxVMLines
	ItemVM                        // one VM: "VM: running 2h 14m"; no VM: "No VMs configured"
	ItemVMNote                    // one VM: what the VM host is doing, or that the configuration changed; hidden when nothing
	ItemLink                      // one VM: "Link: up · 3 reconnects · last 4m ago"
	ItemLinkHint                  // one VM: what to do while the link is silent ("Restart socket_vmnet: sudo brew services restart socket_vmnet"), hidden otherwise
	ItemIP                        // one VM: "IP: 192.168.105.3" (a click copies the address), hidden while unknown
	ItemTraffic                   // one VM: "↑ 1.2 GB ↓ 3.4 GB"
	ItemProblem                   // the last failed action (one VM: or why the link is down), hidden when none
	ItemConfigError               // "Config error: …" (Overview.ConfigError, or a failed Reload config), hidden when none
	ItemStart                     // one VM: Start VM
	ItemStop                      // one VM: Stop VM
	ItemReconnect                 // one VM: Reconnect now
	ItemSSH                       // one VM: Copy SSH command
	ItemTerminal                  // one VM: Open Terminal (a terminal window running the SSH command)
	ItemStartAll                  // several VMs: Start all
	ItemStopAll                   // several VMs: Stop all
	ItemConsole                   // one VM: Open console log
	ItemConfig                    // Open config
	ItemReload                    // Reload config
	ItemLogin                     // Launch at login (checkbox)
	ItemQuit                      // Quit
	numItems
)

// separatorBefore lists the items that start a new group in the menu.
var separatorBefore = map[ItemID]bool{ItemStart: true, ItemConsole: true, ItemQuit: true}

// SubItemID names an entry of a VM's submenu (several-VM layout). The
// submenu shows them in this order.
type SubItemID int

const (
	SubVM        SubItemID = iota // "VM: running 2h 14m"
	SubNote                       // what the VM host is doing, or that the configuration changed; hidden when nothing
	SubLink                       // "Link: up · 3 reconnects · last 4m ago"
	SubLinkHint                   // what to do while the link is silent, hidden otherwise
	SubIP                         // "IP: 192.168.105.3" (a click copies the address), hidden while unknown
	SubTraffic                    // "↑ 1.2 GB ↓ 3.4 GB"
	SubProblem                    // why the link is down, hidden when it is not
	SubStart                      // Start VM
	SubStop                       // Stop VM
	SubReconnect                  // Reconnect now
	SubSSH                        // Copy SSH command
	SubTerminal                   // Open Terminal
	SubConsole                    // Open console log
	numSubItems
)

// subSeparatorBefore lists the submenu items that start a new group.
var subSeparatorBefore = map[SubItemID]bool{SubStart: true, SubConsole: true}

// maxVMLines is how many VM lines the several-VM layout shows; further
// VMs are summed up in one line (ItemMoreVMs). The lines are made when
// the menu is built (systray appends items, so lines made later would land
// below Quit) and shown as needed; their submenus are made on first use.
const maxVMLines = 16

// Item is one menu entry as shown.
type Item struct {
	Label   string
	Enabled bool
	Visible bool
	Checked bool // for ItemLogin only
	// Copy is the text a click on the item copies to the clipboard (the
	// guest's address, its SSH command, the command that restarts the
	// daemon); "" for items that do something else.
	Copy string
}

// VMEntry is one VM of the several-VM layout: its line at the top and its
// submenu.
type VMEntry struct {
	Name string
	Line Item // enabled, so that its submenu opens
	Sub  [numSubItems]Item
	// ConsoleLog is the file Open console log opens ("": disabled).
	ConsoleLog string
}

// Model is everything the tray shows. It is computed by BuildModel and
// applied to the menu as a whole; equal models render identically.
type Model struct {
	Icon    assets.Icon
	Tooltip string
	Items   [numItems]Item
	// Single is the name of the VM the one-VM layout shows, "" in the
	// several-VM layout.
	Single string
	// SingleConsoleLog is the file the one-VM layout's Open console log
	// opens ("": disabled).
	SingleConsoleLog string
	// VMs are the VM lines of the several-VM layout (at most maxVMLines),
	// in the overview's order; nil in the one-VM layout.
	VMs []VMEntry
}

// UIState is the tray's own state that shapes the menu, beside the
// controller's status. Maps are keyed by VM name.
type UIState struct {
	VMBusy        map[string]bool // a Start or Stop click on the VM is being carried out
	ReconnectBusy map[string]bool // a Reconnect click on the VM is being carried out
	AllBusy       string          // "start" or "stop": a Start all or Stop all click is being carried out
	ReloadBusy    bool            // a Reload config click is being carried out
	Quitting      bool            // Quit was clicked: the VMs are being stopped
	Problem       string          // the last failed action, "" if none
	ReloadError   string          // why the last Reload config failed, "" after a good one
	ConsoleLog    string          // Options.ConsoleLog: the one VM's console log when its status names none
	HasConfig     bool            // Options.ConfigFile is set
	HasLoginItem  bool            // Options.LoginItem is set
	LoginEnabled  bool            // the login item is installed
	LoginKnown    bool            // LoginEnabled was read successfully
	Daemon        DaemonHelp      // what to tell the user about the daemon while a link is silent (daemonHelp)
}

// clone returns a copy of u that shares no map with it.
func (u UIState) clone() UIState {
	c := u
	c.VMBusy = copyMap(u.VMBusy)
	c.ReconnectBusy = copyMap(u.ReconnectBusy)
	return c
}

func copyMap(m map[string]bool) map[string]bool {
	out := make(map[string]bool, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// maxErrorLen bounds an error message shown in a menu label.
const maxErrorLen = 80

// maxNoteLen bounds the VM host's note shown under the VM line.
const maxNoteLen = 100

// configChangedNote is the note line of a VM whose configuration a reload
// changed while it ran.
const configChangedNote = "configuration changed: applies at the next start"

// BuildModel computes the menu for the controller's overview at time now.
// It is a pure function. What may be done with a VM is its status's
// Actions (model.Allowed, decided once for the API, the command line and
// the menu); the menu adds only that an action of its own is under way.
func BuildModel(o model.Overview, ui UIState, now time.Time) Model {
	var m Model
	m.Icon = worstIcon(o.VMs)
	canAct := !ui.Quitting
	single := len(o.VMs) == 1

	for id := ItemID(0); id < numItems; id++ {
		m.Items[id] = Item{} // hidden unless set below
	}
	if single {
		v := o.VMs[0]
		m.Single = v.Name
		m.SingleConsoleLog = v.VM.ConsoleLog
		if m.SingleConsoleLog == "" {
			m.SingleConsoleLog = ui.ConsoleLog
		}
		sub := vmItems(v, ui, now)
		m.Items[ItemVM] = sub[SubVM]
		m.Items[ItemVMNote] = sub[SubNote]
		if v.VM.NotConfigured {
			// The controller's note names the file; the menu has it below.
			note := "Set vm.image in the configuration file, then Start VM"
			if ui.HasConfig {
				note = "Set vm.image with Open config, then Start VM"
			}
			m.Items[ItemVMNote] = Item{Label: note, Visible: true}
		}
		m.Items[ItemLink] = sub[SubLink]
		m.Items[ItemLinkHint] = sub[SubLinkHint]
		m.Items[ItemIP] = sub[SubIP]
		m.Items[ItemTraffic] = sub[SubTraffic]
		m.Items[ItemStart] = sub[SubStart]
		m.Items[ItemStop] = sub[SubStop]
		m.Items[ItemReconnect] = sub[SubReconnect]
		m.Items[ItemSSH] = sub[SubSSH]
		m.Items[ItemTerminal] = sub[SubTerminal]
		m.Items[ItemConsole] = Item{Label: "Open console log", Visible: true, Enabled: m.SingleConsoleLog != ""}
		problem := ui.Problem
		if problem == "" {
			problem = linkProblem(v.Link)
		}
		m.Items[ItemProblem] = Item{Label: "⚠ " + truncate(problem, maxErrorLen), Visible: problem != ""}
		_, vmShort := vmText(v.VM, now)
		_, linkShort := linkText(v, now)
		m.Tooltip = "vmnetbar: " + vmShort + " · " + linkShort
	} else {
		var anyStart, anyStop bool
		for i, v := range o.VMs {
			anyStart = anyStart || v.Actions.Start
			anyStop = anyStop || v.Actions.Stop
			if i >= maxVMLines {
				continue
			}
			e := VMEntry{Name: v.Name, ConsoleLog: v.VM.ConsoleLog, Sub: vmItems(v, ui, now)}
			e.Line = Item{Label: vmLine(v), Visible: true, Enabled: true}
			e.Sub[SubConsole] = Item{Label: "Open console log", Visible: true, Enabled: e.ConsoleLog != ""}
			m.VMs = append(m.VMs, e)
		}
		if n := len(o.VMs) - maxVMLines; n > 0 {
			m.Items[ItemMoreVMs] = Item{Label: fmt.Sprintf("… and %s (vmnetbar list)", plural(uint64(n), "more VM", "more VMs")), Visible: true}
		}
		if len(o.VMs) == 0 {
			m.Items[ItemVM] = Item{Label: "No VMs configured", Visible: true}
		}
		m.Items[ItemProblem] = Item{Label: "⚠ " + truncate(ui.Problem, maxErrorLen), Visible: ui.Problem != ""}
		m.Items[ItemStartAll] = Item{Label: "Start all", Visible: true, Enabled: canAct && ui.AllBusy == "" && anyStart}
		m.Items[ItemStopAll] = Item{Label: "Stop all", Visible: true, Enabled: canAct && ui.AllBusy == "" && anyStop}
		switch {
		case ui.Quitting:
		case ui.AllBusy == "start":
			m.Items[ItemStartAll].Label = "Starting all…"
		case ui.AllBusy == "stop":
			m.Items[ItemStopAll].Label = "Stopping all…"
		}
		m.Tooltip = overviewTooltip(o.VMs)
	}
	cfgErr := o.ConfigError
	if cfgErr == "" {
		cfgErr = ui.ReloadError
	}
	m.Items[ItemConfigError] = Item{Label: "Config error: " + truncate(cfgErr, maxErrorLen), Visible: cfgErr != ""}
	if cfgErr != "" {
		m.Tooltip += "; config error"
	}

	m.Items[ItemConfig] = Item{Label: "Open config", Visible: true, Enabled: ui.HasConfig}
	m.Items[ItemReload] = Item{Label: "Reload config", Visible: true, Enabled: canAct && !ui.ReloadBusy}
	if ui.ReloadBusy {
		m.Items[ItemReload].Label = "Reloading config…"
	}
	m.Items[ItemLogin] = Item{
		Label:   "Launch at login",
		Visible: ui.HasLoginItem,
		Enabled: canAct && ui.HasLoginItem && ui.LoginKnown,
		Checked: ui.LoginKnown && ui.LoginEnabled,
	}
	m.Items[ItemQuit] = Item{Label: "Quit", Visible: true, Enabled: canAct}
	if ui.Quitting {
		m.Items[ItemQuit].Label = "Quitting…"
		switch n := activeVMs(o); {
		case n == 1 && single:
			m.Items[ItemQuit].Label = "Stopping VM and quitting…"
		case n > 0:
			m.Items[ItemQuit].Label = "Stopping VMs and quitting…"
		}
	}
	return m
}

// vmItems returns a VM's lines and actions: its submenu, and the one-VM
// layout's top level.
func vmItems(v model.VMStatus, ui UIState, now time.Time) [numSubItems]Item {
	var s [numSubItems]Item
	vmLine, _ := vmText(v.VM, now)
	linkLine, _ := linkText(v, now)
	s[SubVM] = Item{Label: vmLine, Visible: true}
	note := truncate(v.VM.Note, maxNoteLen)
	if note == "" && v.VM.ConfigChanged {
		note = configChangedNote
	}
	s[SubNote] = Item{Label: note, Visible: note != ""}
	s[SubLink] = Item{Label: linkLine, Visible: true}
	if linkSilent(v) && ui.Daemon.Hint != "" {
		s[SubLinkHint] = Item{Label: ui.Daemon.Hint, Visible: true, Enabled: ui.Daemon.Command != "", Copy: ui.Daemon.Command}
	}
	if ip := guestIPv4(v); ip != "" {
		s[SubIP] = Item{Label: "IP: " + ip, Visible: true, Enabled: true, Copy: ip}
	}
	s[SubTraffic] = Item{
		Label:   fmt.Sprintf("↑ %s ↓ %s", human.Bytes(v.Link.TxBytes), human.Bytes(v.Link.RxBytes)),
		Visible: true,
	}
	problem := linkProblem(v.Link)
	s[SubProblem] = Item{Label: "⚠ " + truncate(problem, maxErrorLen), Visible: problem != ""}

	canAct := !ui.Quitting
	vmBusy := ui.VMBusy[v.Name]
	s[SubStart] = Item{Label: "Start VM", Visible: true, Enabled: canAct && !vmBusy && v.Actions.Start}
	s[SubStop] = Item{Label: "Stop VM", Visible: true, Enabled: canAct && !vmBusy && v.Actions.Stop}
	if vmBusy && !ui.Quitting {
		switch v.VM.State {
		case vmhost.StateStopped, vmhost.StateError:
			s[SubStart].Label = "Starting VM…"
		default:
			s[SubStop].Label = "Stopping VM…"
		}
	}
	s[SubReconnect] = Item{
		Label:   "Reconnect now",
		Visible: true,
		Enabled: canAct && !ui.ReconnectBusy[v.Name] && v.Actions.Reconnect,
	}
	ssh, ok := sshCommand(v)
	s[SubSSH] = Item{Label: "Copy SSH command", Visible: true, Enabled: ok}
	if ok {
		s[SubSSH].Copy = model.ShellJoin(ssh)
	}
	s[SubTerminal] = Item{Label: "Open Terminal", Visible: true, Enabled: ok}
	s[SubConsole] = Item{Label: "Open console log", Visible: true, Enabled: v.VM.ConsoleLog != ""}
	return s
}

// guestIPv4 is the guest's IPv4 address while the VM is starting, running
// or stopping and the link has learned it; "" when unknown.
func guestIPv4(v model.VMStatus) string {
	if ip := v.Status().LiveGuest().IPv4; ip.IsValid() {
		return ip.String()
	}
	return ""
}

// sshCommand is the command that logs in to v's guest, as 'vmnetbar ssh'
// runs it ("ssh" and model.VMStatus.SSHArgs: the VM's key and known_hosts
// file, ssh_address), and whether the menu offers it now: the one rule
// for "Copy SSH command" (which copies it, quoted for a shell) and "Open
// Terminal" (which runs it in a new terminal window). It does while the
// VM is starting, running or stopping, names a user to log in as, and:
//   - a VM made from an image: its SSH server accepts (VM.SSH is ready);
//   - a VM that boots a kernel: the guest's address is known (or
//     ssh_address is set): whether its guest runs an SSH server at all is
//     the user's business.
func sshCommand(v model.VMStatus) ([]string, bool) {
	if !vmActive(v) {
		return nil, false // a stopped VM's last address is stale
	}
	args := v.SSHArgs()
	if args == nil || (v.VM.Image != "" && v.VM.SSH != model.SSHReady) {
		return nil, false
	}
	return append([]string{"ssh"}, args...), true
}

// linkSilent reports whether the VM's link is up but the network behind
// the daemon does not answer (netlink.HealthSilent).
func linkSilent(v model.VMStatus) bool {
	return v.Link.State == netlink.StateUp && v.Link.Health == netlink.HealthSilent
}

// silentFor is how long nothing has come from the daemon: since its last
// frame, or, when none ever came, since the link went up. 0 when unknown.
func silentFor(l netlink.Status, now time.Time) time.Duration {
	from := l.LastRx
	if from.IsZero() {
		from = l.Since
	}
	if from.IsZero() || now.Before(from) {
		return 0
	}
	return now.Sub(from)
}

// notForwarding is the link line's text for a silent link: "not forwarding
// (no reply from the gateway for 30 s)".
func notForwarding(l netlink.Status, now time.Time) string {
	d := silentFor(l, now)
	if d <= 0 {
		return "not forwarding (no reply from the gateway)"
	}
	return "not forwarding (no reply from the gateway for " + spell(d) + ")"
}

// spell renders a duration in words for a sentence: "30 s", "2 min",
// "1 h 5 min".
func spell(d time.Duration) string {
	s := int64(d / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%d s", s)
	case s < 3600:
		return fmt.Sprintf("%d min", s/60)
	case s%3600/60 == 0:
		return fmt.Sprintf("%d h", s/3600)
	}
	return fmt.Sprintf("%d h %d min", s/3600, s%3600/60)
}

// linkProblem is why the link is not up yet, "" when it is or does not
// try.
func linkProblem(l netlink.Status) string {
	if l.LastError == "" || (l.State != netlink.StateConnecting && l.State != netlink.StateReconnecting) {
		return ""
	}
	if path, ok := waitingForDaemon(l); ok {
		// socket_vmnet is not installed or not started yet (at login,
		// during brew reinstall): the link dials until it is there.
		return "waiting for socket_vmnet at " + path
	}
	return l.LastError
}

// vmLine is a VM's line in the several-VM layout: its name, its state
// and, while it runs, its link's ("dev · running · 2 reconnects").
func vmLine(v model.VMStatus) string {
	parts := []string{v.Name}
	if v.VM.NotConfigured {
		return v.Name + " · not configured"
	}
	if p := progressText(v.VM.Progress); p != "" {
		return v.Name + " · " + p
	}
	parts = append(parts, stateWord(v.VM.State))
	if v.VM.State == vmhost.StateRunning || v.VM.State == vmhost.StateStopping || v.VM.State == vmhost.StateStarting {
		if linkSilent(v) {
			parts = append(parts, "not forwarding")
		}
		switch v.Link.State {
		case netlink.StateReconnecting:
			parts = append(parts, "reconnecting")
		case netlink.StateConnecting:
			parts = append(parts, "connecting")
		case netlink.StateFailed:
			parts = append(parts, "link failed")
		}
		if v.VM.State == vmhost.StateRunning || v.Link.Reconnects > 0 {
			parts = append(parts, plural(v.Link.Reconnects, "reconnect", "reconnects"))
		}
	}
	if v.VM.ConfigChanged {
		parts = append(parts, "config changed")
	}
	return strings.Join(parts, " · ")
}

// progressText is what a VM is busy with before it boots, and how far it
// is ("preparing disk 42 %"); "" when nothing.
func progressText(p *model.Progress) string {
	if p == nil {
		return ""
	}
	task := truncate(p.Task, maxNoteLen)
	if task == "" {
		task = "preparing"
	}
	pct := min(max(p.Percent, 0), 100)
	return fmt.Sprintf("%s %d %%", task, pct)
}

func stateWord(s vmhost.State) string {
	switch s {
	case vmhost.StateRunning:
		return "running"
	case vmhost.StateStarting:
		return "starting"
	case vmhost.StateStopping:
		return "stopping"
	case vmhost.StateStopped:
		return "stopped"
	case vmhost.StateError:
		return "error"
	}
	return "unknown"
}

// overviewTooltip sums several VMs up: how many are in each state, then
// the VMs that need attention ("vmnetbar: 2 running, 1 stopped; dev
// reconnecting").
func overviewTooltip(vms []model.VMStatus) string {
	if len(vms) == 0 {
		return "vmnetbar: no VMs configured"
	}
	counts := map[vmhost.State]int{}
	var issues []string
	for _, v := range vms {
		counts[v.VM.State]++
		if issue := vmIssue(v); issue != "" {
			issues = append(issues, v.Name+" "+issue)
		}
	}
	var parts []string
	for _, s := range []vmhost.State{vmhost.StateRunning, vmhost.StateStarting, vmhost.StateStopping, vmhost.StateStopped, vmhost.StateError} {
		if n := counts[s]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, stateWord(s)))
			delete(counts, s)
		}
	}
	n := 0
	for _, c := range counts {
		n += c
	}
	if n > 0 {
		parts = append(parts, fmt.Sprintf("%d unknown", n))
	}
	tip := "vmnetbar: " + strings.Join(parts, ", ")
	if len(issues) > 0 {
		tip += "; " + strings.Join(issues, ", ")
	}
	return tip
}

// vmIssue is what needs attention about a VM in the tooltip, "" when
// nothing does.
func vmIssue(v model.VMStatus) string {
	if v.VM.State == vmhost.StateError {
		return "failed"
	}
	if v.VM.State != vmhost.StateRunning && v.VM.State != vmhost.StateStarting && v.VM.State != vmhost.StateStopping {
		return ""
	}
	if _, ok := waitingForDaemon(v.Link); ok {
		return "waiting for socket_vmnet"
	}
	if linkSilent(v) {
		return "not forwarding"
	}
	switch v.Link.State {
	case netlink.StateReconnecting:
		return "reconnecting"
	case netlink.StateFailed:
		return "link failed"
	}
	return ""
}

// vmText returns the VM header line and its short form for the tooltip.
func vmText(vm model.VM, now time.Time) (line, short string) {
	if vm.NotConfigured {
		return "VM: not configured", "VM not configured"
	}
	if p := progressText(vm.Progress); p != "" {
		return "VM: " + p, "VM " + p
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
func linkText(v model.VMStatus, now time.Time) (line, short string) {
	l := v.Link
	if v.VM.State != vmhost.StateRunning && v.VM.State != vmhost.StateStopping &&
		(l.State == 0 || l.State == netlink.StateStopped) {
		return "Link: down (the VM is not running)", "link down"
	}
	reconnects := plural(l.Reconnects, "reconnect", "reconnects")
	var parts []string
	switch l.State {
	case netlink.StateUp:
		if l.Health == netlink.HealthSilent {
			// Connected, but the network behind the daemon does not
			// answer: amber, with how long nothing came back.
			parts = append(parts, "up", notForwarding(l, now))
			short = "link not forwarding"
			break
		}
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

// iconRank orders the icons from the best state to the worst: the tray
// shows the worst of its VMs. A link redialling its daemon is worse than a
// VM or link on its way up or down.
var iconRank = map[assets.Icon]int{
	assets.IconStopped:      0,
	assets.IconUp:           1,
	assets.IconBooting:      2,
	assets.IconReconnecting: 3,
	assets.IconError:        4,
}

// worstIcon is the icon of the VM in the worst state: failed (VM or link)
// > reconnecting or not forwarding (a silent link) > starting, stopping or
// connecting > running with the link up > stopped. No VM: stopped.
func worstIcon(vms []model.VMStatus) assets.Icon {
	worst := assets.IconStopped
	for _, v := range vms {
		if i := vmIcon(v); iconRank[i] > iconRank[worst] {
			worst = i
		}
	}
	return worst
}

// vmIcon is one VM's icon: errors first, then the VM's state, then the
// link's. A link that is up but silent shows amber, as one reconnecting.
func vmIcon(v model.VMStatus) assets.Icon {
	if v.Link.State == netlink.StateFailed {
		return assets.IconError
	}
	switch v.VM.State {
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
	switch v.Link.State {
	case netlink.StateUp:
		if linkSilent(v) {
			return assets.IconReconnecting // amber: connected, not forwarding
		}
		return assets.IconUp
	case netlink.StateReconnecting:
		return assets.IconReconnecting
	default:
		return assets.IconBooting
	}
}

// activeVMs counts the VMs that have not ended: starting, running or
// stopping.
func activeVMs(o model.Overview) int {
	n := 0
	for _, v := range o.VMs {
		if vmActive(v) {
			n++
		}
	}
	return n
}

// vmActive reports whether a VM is starting, running or stopping.
func vmActive(v model.VMStatus) bool {
	s := v.VM.State
	return s == vmhost.StateStarting || s == vmhost.StateRunning || s == vmhost.StateStopping
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
