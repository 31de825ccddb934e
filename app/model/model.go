// Package model is what vmnetbar knows and decides about a VM, below any
// transport: the status types that the controller reports, the control API
// serves, the command line prints and the tray renders, the one function
// that decides which actions a VM allows now (Allowed), and the kinds of
// error an action can end in. The control API maps those kinds to HTTP
// codes; nothing here knows HTTP.
//
// model imports the standard library, vmhost (for its State) and netlink
// (for its Status). It holds no state.
package model

import (
	"errors"
	"time"

	"github.com/vmnetbar/vmnetbar/netlink"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

// VM is a VM's part of a Status.
type VM struct {
	State vmhost.State `json:"state"` // lifecycle state
	Since time.Time    `json:"since"` // time of the last state change
	Error string       `json:"error"` // the cause when State is error, else ""
	// Note says what the VM host is doing while the VM is in State, when
	// that is worth telling the user (for a stopping VM, say: "waiting for
	// the guest to answer the power button (it may still be booting)");
	// "" when there is nothing to add.
	Note string `json:"note,omitempty"`
	// NotConfigured is true while the configuration names no VM yet (a
	// first launch: vm.kernel is not set). State is then stopped, Note
	// says which file to edit, and a start reads the file again.
	NotConfigured bool `json:"not_configured,omitempty"`
	// ConfigChanged is true when a reload changed the VM's configuration
	// while it ran: the change takes effect at its next start.
	ConfigChanged bool `json:"config_changed,omitempty"`
	// ConsoleLog is the file the guest's console is written to; "" when
	// none (or no VM is configured).
	ConsoleLog string `json:"console_log,omitempty"`
	// SSHUser is the user 'vmnetbar ssh' and the menu's SSH command log
	// in as: the VM's ssh_user, else the host user's login name.
	SSHUser string `json:"ssh_user,omitempty"`
	// SSH says whether the guest takes SSH connections: "waiting" while
	// the VM starts or runs and no SSH server answers yet at its SSH port
	// (22 on the guest's address, or ssh_address), "ready" once one sends
	// its identification, "unknown" while the VM does not run.
	SSH SSHState `json:"ssh,omitempty"`
	// SSHAddress is where the guest's SSH server is when it is not port
	// 22 of the guest's address (ssh_address): HOST:PORT, else "".
	SSHAddress string `json:"ssh_address,omitempty"`
	// SSHKey is the private key that logs in to the guest (vmnetbar's own,
	// which its cloud-init seed authorizes); "" when none (a VM without
	// a seed: the user's own keys apply).
	SSHKey string `json:"ssh_key,omitempty"`
	// KnownHosts is the VM's own known_hosts file for SSH; "" for none.
	KnownHosts string `json:"ssh_known_hosts,omitempty"`
	// Image is the distro cloud image the VM's disk was made from; "" for
	// a VM that boots a kernel. Only such a VM can be reset.
	Image string `json:"image,omitempty"`
	// Progress is what a starting VM is busy with before it boots (making
	// its disk from the image) and how far it is; nil otherwise.
	Progress *Progress `json:"progress,omitempty"`
}

// SSHState is VM.SSH.
type SSHState string

// The SSH states.
const (
	SSHUnknown SSHState = "unknown"
	SSHWaiting SSHState = "waiting"
	SSHReady   SSHState = "ready"
)

// Progress is a long step of a VM's start.
type Progress struct {
	// Task says what is being done: "preparing disk".
	Task string `json:"task"`
	// Percent is how much of it is done, 0 to 100.
	Percent int `json:"percent"`
}

// Actions are what a user may ask of a VM now. Every surface (the control
// API, the command line, the tray) reads them from the status; none decides
// them itself.
type Actions struct {
	Start     bool `json:"start"`
	Stop      bool `json:"stop"`
	Reconnect bool `json:"reconnect"`
	// Reset: the VM's disk may be made again from its image ('vmnetbar
	// reset'); left out when false, so a standalone link's actions stay
	// what they were.
	Reset bool `json:"reset,omitempty"`
}

// Status is one snapshot of a VM and its link, and what may be done now. VM
// is nil when the server serves no VM (the standalone link); Actions is then
// only about the link.
type Status struct {
	VM      *VM            `json:"vm,omitempty"`
	Link    netlink.Status `json:"link"`
	Actions Actions        `json:"actions"`
}

// Allowed decides which actions a VM (nil: a standalone link) with the
// given link allows:
//   - Start: the VM is stopped or failed (also a VM not configured yet: the
//     start reads the configuration again and says what is missing);
//   - Stop: the VM is starting or running;
//   - Reconnect: the link runs (connecting, up or reconnecting) and the VM,
//     if any, is starting or running;
//   - Reset: the VM boots a cloud image (VM.Image) and may start (its disk
//     is not in use).
func Allowed(vm *VM, link netlink.State) Actions {
	linkRuns := link == netlink.StateConnecting || link == netlink.StateUp || link == netlink.StateReconnecting
	if vm == nil {
		return Actions{Reconnect: linkRuns}
	}
	switch vm.State {
	case vmhost.StateStopped, vmhost.StateError:
		return Actions{Start: true, Reset: vm.Image != "" && !vm.NotConfigured}
	case vmhost.StateStarting, vmhost.StateRunning:
		return Actions{Stop: true, Reconnect: linkRuns}
	}
	return Actions{} // stopping
}

// Kind is what kind of failure an action ended in; transports map it to
// their own codes (the control API: 409, 503).
type Kind int

const (
	// KindConflict: the action is not allowed in the current state.
	KindConflict Kind = 1
	// KindUnavailable: vmnetbar is shutting down.
	KindUnavailable Kind = 2
	// KindNotFound: no VM has the name asked for (404).
	KindNotFound Kind = 3
	// KindAmbiguous: the request names no VM, and there is not exactly
	// one (409; the command line exits 2).
	KindAmbiguous Kind = 4
)

// Error is an action's failure of a known Kind.
type Error struct {
	Kind Kind
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

// ErrorKind is e.Kind; errors of other types have the same method to say
// their kind.
func (e *Error) ErrorKind() Kind { return e.Kind }

// ErrStartCancelled is wrapped by the error of a start that a stop of the
// same VM cancelled (while its disk was being prepared): what the user
// asked for happened, so surfaces do not report it as a failure.
var ErrStartCancelled = errors.New("the start was cancelled by a stop")

// ErrClosed is returned by actions once vmnetbar is shutting down.
var ErrClosed = &Error{Kind: KindUnavailable, Msg: "vmnetbar is shutting down"}
