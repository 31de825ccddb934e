// Package fakeapp is the one fake of vmnetbar's VMs for the tests of the
// surfaces that show and drive them (the control API, the command line, the
// tray): a model.Machines held in memory, whose actions follow model.Allowed
// exactly as the controller's do, and which records every call.
//
// Its VMs change state only as vmhost's VMs do (vmhost.ValidTransition),
// and as the controller shows them: once a VM's life has ended (stopped or
// error) the next start boots a new VM, so error may also become stopped
// (a reset) or starting. Start goes stopped -> starting -> running (after
// HoldStart it stays starting until the test sets it running), Stop goes
// stopping -> stopped (after HoldStop it stays stopping until Release), and
// Change refuses any other change of state with an error; Drive steps a
// VM through legal states to the one a test needs, and so does Set (kept
// for the callers from before the rule) when its change is not legal.
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
	mu        sync.Mutex
	vms       map[string]*model.VMStatus
	closed    bool
	calls     []string
	hold      map[string]bool // Stop leaves these VMs stopping
	holdStart map[string]bool // Start leaves these VMs starting
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
	m := &Machines{vms: map[string]*model.VMStatus{}, hold: map[string]bool{}, holdStart: map[string]bool{}, now: time.Now}
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

// Legal reports whether the fake, like the controller, may show a VM going
// from state from to state to: a transition of vmhost's VMs
// (vmhost.ValidTransition), or, once a VM's life has ended (stopped or
// error), one of the next VM's, which starts stopped: error -> stopped (a
// reset) and error -> starting.
func Legal(from, to vmhost.State) bool {
	if vmhost.ValidTransition(from, to) {
		return true
	}
	// From stopped the next VM's transitions are vmhost's own.
	return from == vmhost.StateError && (to == vmhost.StateStopped || vmhost.ValidTransition(vmhost.StateStopped, to))
}

// transitionError is Change's and Drive's error for an illegal change of state.
func transitionError(name string, from, to vmhost.State) error {
	return fmt.Errorf("fakeapp: VM %s cannot go from %s to %s as vmhost's VMs do not (vmhost.ValidTransition): "+
		"step through the states between, or use Drive", name, from, to)
}

// Set changes the VM called name with f, as Change does, but a change of
// state that Legal refuses is made through the fewest legal states between
// (as Drive does, publishing each step): subscribers never see an illegal
// transition. It is for the callers from before the rule (Set returns
// nothing); new tests use Change, which refuses the jump, or Drive.
func (m *Machines) Set(name string, f func(*model.VMStatus)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.vms[name]
	if !ok {
		v = m.fresh(name)
		m.vms[name] = v
	}
	next := *v
	f(&next)
	if to := next.VM.State; to != v.VM.State && !Legal(v.VM.State, to) {
		since := v.VM.Since
		steps := path(v.VM.State, to)
		// Every step of path is legal: steps cannot fail.
		for _, s := range steps[:len(steps)-1] {
			_ = m.setStateLocked(v, s, linkIn(s, v.Link.State))
			m.publishLocked()
		}
		if next.VM.Since.Equal(since) { // f left it: the time of the last step
			next.VM.Since = v.VM.Since
		}
	}
	next.Name = name
	next.Actions = model.Allowed(&next.VM, next.Link.State)
	*v = next
	m.publishLocked()
}

// Change changes the VM called name with f (adding the VM, stopped, when
// there is none), recomputes its actions with model.Allowed and publishes
// the status. A change of state that Legal refuses (stopped -> running,
// running -> starting) is refused with an error naming both states: the
// VM is left as it was and nothing is published.
func (m *Machines) Change(name string, f func(*model.VMStatus)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.vms[name]
	if !ok {
		v = m.fresh(name)
	}
	next := *v
	f(&next)
	if next.VM.State != v.VM.State && !Legal(v.VM.State, next.VM.State) {
		return transitionError(name, v.VM.State, next.VM.State)
	}
	next.Name = name
	next.Actions = model.Allowed(&next.VM, next.Link.State)
	*v = next
	m.vms[name] = v
	m.publishLocked()
	return nil
}

// Drive steps the VM called name (adding it, stopped, when there is none)
// through the fewest legal states to state to, publishing each step as
// Change does (a step's VM keeps everything but its state; the link goes
// with it: connecting while starting, up while running, stopped once the
// VM has ended), then applies f (nil: nothing) as Change does. It is how a
// test puts a VM in a state its start or stop does not reach.
func (m *Machines) Drive(name string, to vmhost.State, f func(*model.VMStatus)) error {
	m.mu.Lock()
	v, ok := m.vms[name]
	if !ok {
		v = m.fresh(name)
		m.vms[name] = v
		m.publishLocked()
	}
	for _, s := range path(v.VM.State, to) {
		if err := m.setStateLocked(v, s, linkIn(s, v.Link.State)); err != nil {
			m.mu.Unlock()
			return err
		}
		m.publishLocked()
	}
	m.mu.Unlock()
	if f == nil {
		return nil
	}
	return m.Change(name, f)
}

// path returns the states after from on a shortest legal way to to (none
// when from is to).
func path(from, to vmhost.State) []vmhost.State {
	states := []vmhost.State{vmhost.StateStopped, vmhost.StateStarting, vmhost.StateRunning,
		vmhost.StateStopping, vmhost.StateError}
	prev := map[vmhost.State]vmhost.State{from: from}
	queue := []vmhost.State{from}
	for len(queue) > 0 && prev[to] == 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, s := range states {
			if _, seen := prev[s]; !seen && Legal(cur, s) {
				prev[s] = cur
				queue = append(queue, s)
			}
		}
	}
	if _, ok := prev[to]; !ok || from == to {
		return nil
	}
	var p []vmhost.State
	for s := to; s != from; s = prev[s] {
		p = append([]vmhost.State{s}, p...)
	}
	return p
}

// linkIn is the link's state when its VM has become s (cur: the link's
// state before).
func linkIn(s vmhost.State, cur netlink.State) netlink.State {
	switch s {
	case vmhost.StateStarting:
		return netlink.StateConnecting
	case vmhost.StateRunning:
		if cur == netlink.StateStopped || cur == netlink.StateConnecting || cur == 0 {
			return netlink.StateUp
		}
		return cur
	case vmhost.StateStopped, vmhost.StateError:
		return netlink.StateStopped
	}
	return cur
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

// HoldStart makes Start of the VM called name leave it starting: the test
// then sets it running (or failed, or stopped) with Set.
func (m *Machines) HoldStart(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.holdStart[name] = true
}

// Release ends a held stop of the VM called name: it is stopped.
func (m *Machines) Release(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.hold, name)
	if v, ok := m.vms[name]; ok && v.VM.State == vmhost.StateStopping {
		_ = m.setStateLocked(v, vmhost.StateStopped, netlink.StateStopped) // stopping -> stopped is legal
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

// setStateLocked moves v to state s (its link to l); a change Legal
// refuses is refused with an error and changes nothing.
func (m *Machines) setStateLocked(v *model.VMStatus, s vmhost.State, l netlink.State) error {
	if !Legal(v.VM.State, s) {
		return transitionError(v.Name, v.VM.State, s)
	}
	v.VM.State, v.VM.Since, v.VM.Error, v.VM.Note = s, m.now(), "", ""
	v.Link.State = l
	v.Actions = model.Allowed(&v.VM, v.Link.State)
	return nil
}

// stepsLocked moves v through the states of steps in turn, publishing each; it
// stops at the first refused.
func (m *Machines) stepsLocked(v *model.VMStatus, steps ...vmhost.State) error {
	for _, s := range steps {
		if err := m.setStateLocked(v, s, linkIn(s, v.Link.State)); err != nil {
			return err
		}
		m.publishLocked()
	}
	return nil
}

// Start implements model.Machines: an allowed start makes the VM starting
// (its link connecting), then running with its link up; after HoldStart
// it stays starting, after FailStarts it fails.
func (m *Machines) Start(_ context.Context, name string) error {
	v, err := m.act("start", name)
	if err != nil {
		return err
	}
	defer m.mu.Unlock()
	if err := m.stepsLocked(v, vmhost.StateStarting); err != nil {
		return err
	}
	switch {
	case m.startErr != nil:
		if err := m.stepsLocked(v, vmhost.StateError); err != nil {
			return err
		}
		v.VM.Error = m.startErr.Error()
		m.publishLocked()
		return m.startErr
	case m.holdStart[v.Name]:
		return nil
	}
	return m.stepsLocked(v, vmhost.StateRunning)
}

// Stop implements model.Machines: an allowed stop makes the VM stopping,
// then stopped (after HoldStop it stays stopping until Release).
func (m *Machines) Stop(_ context.Context, name string) error {
	v, err := m.act("stop", name)
	if err != nil {
		return err
	}
	defer m.mu.Unlock()
	if err := m.stepsLocked(v, vmhost.StateStopping); err != nil {
		return err
	}
	if m.hold[v.Name] {
		return nil
	}
	return m.stepsLocked(v, vmhost.StateStopped)
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
	if v.VM.State == vmhost.StateStopped {
		v.VM.Since, v.VM.Error, v.VM.Note = m.now(), "", ""
		m.publishLocked()
		return nil
	}
	return m.stepsLocked(v, vmhost.StateStopped)
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
