package tray

import (
	"fmt"
	"time"

	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/netlink"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

// DaemonHelp is what the menu and the notification tell the user while a
// link is up but silent (netlink.HealthSilent): the network behind the
// daemon does not answer, and restarting the daemon is what helps.
type DaemonHelp struct {
	// Daemon names the daemon in a sentence: "socket_vmnet".
	Daemon string
	// Hint is the menu line under the link line; "" shows none.
	Hint string
	// Command restarts the daemon: a click on the hint copies it, and the
	// notification names it. "": the hint is not clickable.
	Command string
}

// daemonHelpFor is the DaemonHelp on goos. macOS: socket_vmnet from
// Homebrew, restarted as root by brew services. Linux: the stand-in daemon
// (gvproxy under `make run`, or any daemon with socket_vmnet's framing)
// has no one command, so the hint only says what to do.
func daemonHelpFor(goos string) DaemonHelp {
	if goos == "darwin" {
		const restart = "sudo brew services restart socket_vmnet"
		return DaemonHelp{Daemon: "socket_vmnet", Hint: "Restart socket_vmnet: " + restart, Command: restart}
	}
	return DaemonHelp{Daemon: "the network daemon", Hint: "Restart the network daemon"}
}

// silentTitle is the title of the notification when a link goes silent.
const silentTitle = "vmnetbar: network not answering"

// silentBody is the notification's text for v's silent link at now;
// named puts the VM's name first (with several VMs).
func silentBody(v model.VMStatus, named bool, h DaemonHelp, now time.Time) string {
	body := fmt.Sprintf("%s is connected but nothing has come back", h.Daemon)
	if d := silentFor(v.Link, now); d > 0 {
		body += " for " + spell(d)
	}
	body += "."
	if h.Command != "" {
		body += " Restart it: " + h.Command
	} else {
		body += " Restart it."
	}
	if named {
		body = v.Name + ": " + body
	}
	return body
}

// spells tracks each VM's silent spell, so that a spell is notified once:
// it begins when the VM's link goes silent, and ends when its health is
// ok again, the VM stops or the VM is removed. A link that reconnects
// meanwhile (health unknown) stays in the spell: a daemon restarted
// without effect is the same outage. The zero value is ready; it is used
// by the renderer only.
type spells struct {
	in map[string]bool // VM name: in a spell, already notified
}

// update takes an overview and returns the VMs whose spell has just
// begun.
func (s *spells) update(o model.Overview) []model.VMStatus {
	if s.in == nil {
		s.in = map[string]bool{}
	}
	var begun []model.VMStatus
	seen := make(map[string]bool, len(o.VMs))
	for _, v := range o.VMs {
		seen[v.Name] = true
		switch {
		case !vmUp(v), v.Link.Health == netlink.HealthOK:
			delete(s.in, v.Name)
		case linkSilent(v) && !s.in[v.Name]:
			s.in[v.Name] = true
			begun = append(begun, v)
		}
	}
	for name := range s.in {
		if !seen[name] {
			delete(s.in, name)
		}
	}
	return begun
}

// vmUp reports whether a VM is starting or running: one that is stopping,
// stopped or failed ends its spell.
func vmUp(v model.VMStatus) bool {
	return v.VM.State == vmhost.StateStarting || v.VM.State == vmhost.StateRunning
}
