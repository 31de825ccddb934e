// Package fakeapp is the one fake of vmnetbar's VMs for the tests of the
// surfaces that show and drive them (the control API, the command line, the
// tray): a model.Machines held in memory, whose actions follow model.Allowed
// exactly as the controller's do, and which records every call.
//
// fakeapp imports the standard library, model, netlink, vmhost and
// internal/latest. It is for tests only.
package fakeapp

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/internal/latest"
	"github.com/vmnetbar/vmnetbar/netlink"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

// Machines is a fake model.Machines. The zero value is not usable: use New.
type Machines struct {
	mu     sync.Mutex
	vms    map[string]*model.VMStatus
	closed bool
	calls  []string
	hold   map[string]bool // Stop leaves these VMs stopping
	// StartErr, when set, is returned by Start (after the Allowed check),
	// with the VM left in state error.
	startErr error
	cfgErr   string
	hub      latest.Hub[model.Overview]
	now      func() time.Time
}

var _ model.Machines = (*Machines)(nil)

// New returns VMs with the given names, stopped, their links stopped.
func New(names ...string) *Machines {
	m := &Machines{vms: map[string]*model.VMStatus{}, hold: map[string]bool{}, now: time.Now}
	for _, n := range names {
		m.vms[n] = m.fresh(n)
	}
	return m
}

func (m *Machines) fresh(name string) *model.VMStatus {
	v := &model.VMStatus{Name: name, VM: model.VM{State: vmhost.StateStopped, Since: m.now()},
		Link: netlink.Status{State: netlink.StateStopped}}
	v.Actions = model.Allowed(&v.VM, v.Link.State)
	return v
}

// Status implements model.Machines.
func (m *Machines) Status() model.Overview {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.statusLocked()
}

func (m *Machines) statusLocked() model.Overview {
	o := model.Overview{VMs: make([]model.VMStatus, 0, len(m.vms)), ConfigError: m.cfgErr}
	for _, v := range m.vms {
		o.VMs = append(o.VMs, *v)
	}
	sort.Slice(o.VMs, func(i, j int) bool { return o.VMs[i].Name < o.VMs[j].Name })
	return o
}

// Subscribe implements model.Machines.
func (m *Machines) Subscribe() (<-chan model.Overview, func()) { return m.hub.Subscribe() }

// Subscribers is the number of open subscriptions.
func (m *Machines) Subscribers() int { return m.hub.Len() }

func (m *Machines) publishLocked() {
	m.hub.Publish(m.statusLocked())
}

// Set changes the VM called name with f (adding the VM when there is none),
// recomputes its actions with model.Allowed and publishes the status.
func (m *Machines) Set(name string, f func(*model.VMStatus)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.vms[name]
	if !ok {
		v = m.fresh(name)
		m.vms[name] = v
	}
	f(v)
	v.Name = name
	v.Actions = model.Allowed(&v.VM, v.Link.State)
	m.publishLocked()
}

// Remove removes the VM called name and publishes the status.
func (m *Machines) Remove(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.vms, name)
	m.publishLocked()
}

// SetConfigError sets the overview's ConfigError and publishes the status.
func (m *Machines) SetConfigError(msg string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cfgErr = msg
	m.publishLocked()
}

// FailStarts makes every later Start fail with err (nil: succeed again).
func (m *Machines) FailStarts(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.startErr = err
}

// HoldStop makes Stop of the VM called name leave it stopping until
// Release.
func (m *Machines) HoldStop(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.hold[name] = true
}

// Release ends a held stop of the VM called name: it is stopped.
func (m *Machines) Release(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.hold, name)
	if v, ok := m.vms[name]; ok && v.VM.State == vmhost.StateStopping {
		m.setStateLocked(v, vmhost.StateStopped, netlink.StateStopped)
	}
	m.publishLocked()
}

// Calls returns the actions called so far, in order: "start NAME",
// "stop NAME", "reconnect NAME", with the name as the caller gave it
// ("" for the only VM).
func (m *Machines) Calls() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.calls...)
}

// Close ends every subscription; later actions fail with model.ErrClosed.
func (m *Machines) Close() {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.hub.Close()
}

// act records the call, resolves name and checks that the action is
// allowed; it returns the VM, locked by m.mu (unlocked on error).
func (m *Machines) act(action, name string) (*model.VMStatus, error) {
	m.mu.Lock()
	m.calls = append(m.calls, action+" "+name)
	if m.closed {
		m.mu.Unlock()
		return nil, model.ErrClosed
	}
	st, err := m.statusLocked().Resolve(name)
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	v := m.vms[st.Name]
	allowed := map[string]bool{"start": v.Actions.Start, "stop": v.Actions.Stop, "reconnect": v.Actions.Reconnect,
		"reset": v.Actions.Reset}[action]
	if !allowed {
		m.mu.Unlock()
		msg := fmt.Sprintf("cannot %s %s: the VM is %s", action, v.Name, v.VM.State)
		if action == "reset" && v.VM.Image == "" {
			msg = fmt.Sprintf("cannot reset %s: it boots a kernel, not an image", v.Name)
		} else if action == "reset" {
			msg += ": stop it first"
		}
		return nil, &model.Error{Kind: model.KindConflict, Msg: msg}
	}
	return v, nil
}

func (m *Machines) setStateLocked(v *model.VMStatus, s vmhost.State, l netlink.State) {
	v.VM.State, v.VM.Since, v.VM.Error, v.VM.Note = s, m.now(), "", ""
	v.Link.State = l
	v.Actions = model.Allowed(&v.VM, v.Link.State)
}

// Start implements model.Machines: an allowed start makes the VM running
// and its link up at once (or, after FailStarts, the VM failed).
func (m *Machines) Start(_ context.Context, name string) error {
	v, err := m.act("start", name)
	if err != nil {
		return err
	}
	defer m.mu.Unlock()
	if m.startErr != nil {
		m.setStateLocked(v, vmhost.StateError, netlink.StateStopped)
		v.VM.Error = m.startErr.Error()
		m.publishLocked()
		return m.startErr
	}
	m.setStateLocked(v, vmhost.StateRunning, netlink.StateUp)
	m.publishLocked()
	return nil
}

// Stop implements model.Machines: an allowed stop makes the VM stopped at
// once, or stopping after HoldStop.
func (m *Machines) Stop(_ context.Context, name string) error {
	v, err := m.act("stop", name)
	if err != nil {
		return err
	}
	defer m.mu.Unlock()
	if m.hold[v.Name] {
		m.setStateLocked(v, vmhost.StateStopping, v.Link.State)
	} else {
		m.setStateLocked(v, vmhost.StateStopped, netlink.StateStopped)
	}
	m.publishLocked()
	return nil
}

// Reset implements model.Machines: a VM whose actions allow a reset (it
// has an image and is stopped or failed) is stopped afterwards; nothing
// else changes.
func (m *Machines) Reset(_ context.Context, name string) error {
	v, err := m.act("reset", name)
	if err != nil {
		return err
	}
	defer m.mu.Unlock()
	m.setStateLocked(v, vmhost.StateStopped, netlink.StateStopped)
	m.publishLocked()
	return nil
}

// Reconnect implements model.Machines: an allowed reconnect counts one
// more reconnect of the VM's link.
func (m *Machines) Reconnect(name string) error {
	v, err := m.act("reconnect", name)
	if err != nil {
		return err
	}
	defer m.mu.Unlock()
	v.Link.Reconnects++
	m.publishLocked()
	return nil
}
