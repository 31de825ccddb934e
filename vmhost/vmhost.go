// Package vmhost owns a VM's lifecycle: boot, graceful stop, state.
//
// The backend is chosen by the operating system: Apple's Virtualization
// framework (github.com/Code-Hex/vz/v3) on macOS, QEMU on Linux. Both are
// built by New, which has the same signature on every OS. Config and the
// other types in this file never import vz, so they build and are tested
// everywhere.
//
// A VM boots a kernel and initrd (BootKernel) or its own raw disk with
// UEFI firmware (BootEFI), as a distro cloud image does: on QEMU a q35
// machine with OVMF (AAVMF on arm64) and a per-VM copy of its variable
// store, on macOS VZEFIBootLoader with a per-VM variable store and a
// generic platform whose machine identifier persists. A cloud-init seed
// (Config.Seed) is attached read-only next to the disk.
//
// The VM's only NIC is the VM end of a netlink socketpair (an AF_UNIX
// SOCK_DGRAM socket). The VM host owns that *os.File for the VM's whole life.
package vmhost

import (
	"context"
	"fmt"
	"time"
)

// State is a VM's lifecycle state. The numbers are part of the API.
//
//	stopped  -> starting  Start
//	starting -> running   the hypervisor reports the guest running
//	starting -> error     boot failed
//	starting -> stopping  Stop before the guest was seen running
//	starting -> stopped   the guest powered off before it was seen running
//	running  -> stopping  Stop
//	running  -> stopped   the guest powered off by itself
//	running  -> error     the hypervisor died or reported an error
//	stopping -> stopped   the guest powered off (or was forced off)
//	stopping -> error     the hypervisor failed while stopping
//
// A VM lives once: stopped and error reached after Start are final (Done
// is closed), and a new VM is made with New to boot again.
type State int

const (
	StateStopped  State = 1
	StateStarting State = 2
	StateRunning  State = 3
	StateStopping State = 4
	StateError    State = 5
)

var stateNames = map[State]string{
	StateStopped:  "stopped",
	StateStarting: "starting",
	StateRunning:  "running",
	StateStopping: "stopping",
	StateError:    "error",
}

func (s State) String() string {
	if n, ok := stateNames[s]; ok {
		return n
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// MarshalText encodes the state as its name.
// The zero State (no VM: a standalone link's status) is "".
func (s State) MarshalText() ([]byte, error) {
	if s == 0 {
		return nil, nil
	}
	return []byte(s.String()), nil
}

// UnmarshalText decodes a state name ("" is the zero State).
func (s *State) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*s = 0
		return nil
	}
	for k, v := range stateNames {
		if v == string(b) {
			*s = k
			return nil
		}
	}
	return fmt.Errorf("unknown VM state %q", b)
}

// Event is one state change, or a new note about the current state.
//
// Note says, in words for the user, what the VM is waiting for in its
// current state, such as "waiting for the guest to answer the power button
// (it may still be booting)" while a stop waits for the guest. An event
// whose State is the current one (no change) only updates the note; every
// state change starts with no note (Note ""). Notes are few: a backend
// sends one only when the note changes.
type Event struct {
	State State
	At    time.Time
	Err   error  // the cause, for StateError
	Note  string // what the VM is waiting for in State; "" for none
}

// noteWaitButton is the note (Event.Note) of every backend while a stop
// waits for the guest to answer its power button; the backend adds when it
// forces the VM off.
const noteWaitButton = "waiting for the guest to answer the power button (it may still be booting)"

// VM is a virtual machine as the rest of vmnetbar sees it.
type VM interface {
	// Start boots the VM. It returns once the hypervisor has accepted the
	// configuration and the VM is starting or running; boot failures after
	// that are reported as StateError. (QEMU checks its configuration
	// while starting: Start returns once its process runs, and a rejected
	// configuration ends the VM in StateError with QEMU's message.) A VM
	// starts once; ctx bounds only the call, not the VM's life.
	Start(ctx context.Context) error
	// Stop asks the guest to power off, waits up to timeout, then forces
	// it off. It returns when the VM is stopped or ctx ends (the VM is
	// still forced off at the deadline). A Stop called while a stop is
	// under way with a shorter timeout shortens the remaining wait before
	// the VM is forced off (the earliest deadline wins); a longer one
	// changes nothing.
	Stop(ctx context.Context, timeout time.Duration) error
	// State returns the current state and, for StateError, its cause.
	State() (State, error)
	// Events delivers every state change and every new note (see
	// Event) in order. The channel is closed after the VM has reached a
	// final state (stopped or error) and Done is closed.
	Events() <-chan Event
	// Done is closed when the VM has ended (stopped or error).
	Done() <-chan struct{}
}
