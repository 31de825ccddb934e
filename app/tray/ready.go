package tray

import (
	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

// readies tracks which VMs have been notified as ready in their current
// boot, so that each boot is notified once: when the VM's SSH server first
// accepts (VM.SSH is ready) while it is starting, running or stopping.
// The boot ends when the VM is stopped or failed, or removed; its next
// boot is notified again. SSH that goes away and comes back within a boot
// (sshd restarted in the guest, the link reconnecting) is not. The zero
// value is ready; it is used by the renderer only.
type readies struct {
	told map[string]bool // VM name: notified in this boot
}

// update takes an overview and returns the VMs that have just become
// ready.
func (r *readies) update(o model.Overview) []model.VMStatus {
	if r.told == nil {
		r.told = map[string]bool{}
	}
	var ready []model.VMStatus
	seen := make(map[string]bool, len(o.VMs))
	for _, v := range o.VMs {
		seen[v.Name] = true
		switch {
		case v.VM.State == vmhost.StateStopped || v.VM.State == vmhost.StateError:
			delete(r.told, v.Name)
		case vmActive(v) && v.VM.SSH == model.SSHReady && !r.told[v.Name]:
			r.told[v.Name] = true
			ready = append(ready, v)
		}
	}
	for name := range r.told {
		if !seen[name] {
			delete(r.told, name)
		}
	}
	return ready
}

// readyNotice is the notification that v is ready: "dev is ready", with
// the command that logs in (what Copy SSH command copies).
func readyNotice(v model.VMStatus) (title, body string) {
	title = v.Name + " is ready"
	if argv, ok := sshCommand(v); ok {
		return title, model.ShellJoin(argv)
	}
	return title, "Its SSH server accepts connections."
}
