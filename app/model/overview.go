package model

import (
	"context"
	"fmt"
	"strings"

	"github.com/vmnetbar/vmnetbar/netlink"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

// VMStatus is one VM of the app: its name, the VM, its link and the
// actions it allows now (Allowed).
type VMStatus struct {
	Name    string         `json:"name"`
	VM      VM             `json:"vm"`
	Link    netlink.Status `json:"link"`
	Actions Actions        `json:"actions"`
}

// Named is st as the VMStatus of the VM called name. A Status without a VM
// (a standalone link) gives the zero VM.
func (st Status) Named(name string) VMStatus {
	v := VMStatus{Name: name, Link: st.Link, Actions: st.Actions}
	if st.VM != nil {
		v.VM = *st.VM
	}
	return v
}

// Status is v as a single VM's Status.
func (v VMStatus) Status() Status {
	vm := v.VM
	return Status{VM: &vm, Link: v.Link, Actions: v.Actions}
}

// LiveGuest is what the link has learned of the guest, without its
// addresses while the VM is stopped or failed: those are the last run's,
// stale (the guest may come back with others). The controller leaves them
// out of such a status itself; every surface (the command line, the menu)
// reads the guest through LiveGuest, so that none shows a stopped VM's
// address whatever status it gets. A standalone link (no VM) keeps them;
// the MAC is always kept.
func (s Status) LiveGuest() netlink.Guest {
	g := s.Link.Guest
	if s.VM != nil && (s.VM.State == vmhost.StateStopped || s.VM.State == vmhost.StateError) {
		return netlink.Guest{MAC: g.MAC}
	}
	return g
}

// Overview is the status of every VM of the app, sorted by name: what
// GET /v1/status answers.
type Overview struct {
	VMs []VMStatus `json:"vms"`
	// ConfigError is why the last reload of the configuration changed
	// nothing (the file has an error); "" after a good load.
	ConfigError string `json:"config_error,omitempty"`
}

// Lookup returns the VM called name.
func (o Overview) Lookup(name string) (VMStatus, bool) {
	for _, v := range o.VMs {
		if v.Name == name {
			return v, true
		}
	}
	return VMStatus{}, false
}

// Names returns the VMs' names, sorted.
func (o Overview) Names() []string {
	out := make([]string, len(o.VMs))
	for i, v := range o.VMs {
		out[i] = v.Name
	}
	return out
}

// Resolve returns the VM a command means: the one called name, or, when
// name is "", the only VM. It fails with KindNotFound for an unknown name
// and with KindAmbiguous when name is "" and there is not exactly one VM;
// both messages name the VMs there are.
func (o Overview) Resolve(name string) (VMStatus, error) {
	if name != "" {
		if v, ok := o.Lookup(name); ok {
			return v, nil
		}
		return VMStatus{}, &Error{Kind: KindNotFound, Msg: fmt.Sprintf("no VM named %q; %s", name, o.vmList())}
	}
	if len(o.VMs) == 1 {
		return o.VMs[0], nil
	}
	return VMStatus{}, &Error{Kind: KindAmbiguous, Msg: fmt.Sprintf("%s: name one", o.vmList())}
}

func (o Overview) vmList() string {
	switch len(o.VMs) {
	case 0:
		return "no VMs are configured"
	case 1:
		return "the VM is " + o.VMs[0].Name
	}
	return "the VMs are " + strings.Join(o.Names(), ", ")
}

// Machines is what the app's surfaces (the control API and the tray) act
// on: every VM, by name. A name of "" means the only VM: with none or
// several, the action fails with KindAmbiguous naming them. An unknown
// name fails with KindNotFound, an action that Actions does not allow
// with KindConflict, and every action once the app shuts down with
// ErrClosed.
type Machines interface {
	// Status is every VM's status now.
	Status() Overview
	// Subscribe delivers status changes (coalesced: a slow reader sees
	// the latest, not every one) until cancel is called or the app shuts
	// down; then the channel is closed. cancel is idempotent.
	Subscribe() (<-chan Overview, func())
	Start(ctx context.Context, name string) error
	Stop(ctx context.Context, name string) error
	Reconnect(name string) error
	// Reset deletes the disk of a VM made from an image (and what goes
	// with it: its EFI variables, its cloud-init instance), so that its
	// next start makes it again from the image. The VM must be stopped
	// (KindConflict otherwise, and for a VM without an image).
	Reset(ctx context.Context, name string) error
}
