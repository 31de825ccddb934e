package controller

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/vmnetbar/vmnetbar/netlink"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

// fakeVM is a vmhost.VM whose state the test drives. It follows vmhost's
// contract: Events is closed after a final state, together with Done.
type fakeVM struct {
	cfg      vmhost.Config
	startErr error // Start fails with it (the VM then ends in error)
	hangStop bool  // Stop does nothing: the VM never ends
	// deafGuest: the guest never answers Stop's power button, so the VM
	// is forced off when the shortest timeout asked for so far has passed
	// since the first Stop (the contract asked of vmhost: a later Stop
	// with a shorter timeout shortens the wait).
	deafGuest bool

	mu      sync.Mutex
	state   vmhost.State
	err     error
	ended   bool
	events  chan vmhost.Event
	done    chan struct{}
	stops   int
	started int
	// timeouts are the timeouts Stop was called with, in order.
	timeouts  []time.Duration
	firstStop time.Time
	deadline  time.Time   // when force fires
	force     *time.Timer // forces a deaf guest off
	refused   []error     // transitions vmhost would refuse, asked by the test or the fake
}

func newFakeVM(cfg vmhost.Config) *fakeVM {
	return &fakeVM{cfg: cfg, state: vmhost.StateStopped, events: make(chan vmhost.Event, 8), done: make(chan struct{})}
}

func (v *fakeVM) setLocked(s vmhost.State, err error) {
	if v.ended {
		return
	}
	if s == v.state && (s == vmhost.StateStopping || s == vmhost.StateRunning) {
		return // no change: no event
	}
	if !vmhost.ValidTransition(v.state, s) {
		// vmhost's machine refuses this: so does the fake, and the
		// harness fails the test with it (factory.refusedTransitions).
		v.refused = append(v.refused, fmt.Errorf("fake VM cannot go from %s to %s (vmhost.ValidTransition)", v.state, s))
		return
	}
	v.state, v.err = s, err
	v.events <- vmhost.Event{State: s, At: time.Now(), Err: err}
	if s == vmhost.StateStopped || s == vmhost.StateError {
		v.ended = true
		if v.force != nil {
			v.force.Stop()
		}
		v.cfg.NIC.Close()
		close(v.events)
		close(v.done)
	}
}

func (v *fakeVM) set(s vmhost.State, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.setLocked(s, err)
}

func (v *fakeVM) Start(ctx context.Context) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.started++
	if v.ended {
		return errors.New("the VM was already started: make a new one with New")
	}
	v.setLocked(vmhost.StateStarting, nil)
	if v.startErr != nil {
		v.setLocked(vmhost.StateError, v.startErr)
		return v.startErr
	}
	return nil
}

func (v *fakeVM) Stop(ctx context.Context, timeout time.Duration) error {
	v.mu.Lock()
	v.stops++
	v.timeouts = append(v.timeouts, timeout)
	switch {
	case v.ended || v.hangStop:
	case v.deafGuest:
		v.setLocked(vmhost.StateStopping, nil)
		if v.firstStop.IsZero() {
			v.firstStop = time.Now()
		}
		deadline := v.firstStop.Add(timeout)
		if v.force == nil {
			v.deadline = deadline
			v.force = time.AfterFunc(time.Until(deadline), func() { v.set(vmhost.StateStopped, nil) })
		} else if deadline.Before(v.deadline) {
			v.deadline = deadline
			v.force.Reset(time.Until(deadline))
		}
	default:
		v.setLocked(vmhost.StateStopping, nil)
		v.setLocked(vmhost.StateStopped, nil)
	}
	v.mu.Unlock()
	select {
	case <-v.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (v *fakeVM) State() (vmhost.State, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.state, v.err
}

func (v *fakeVM) Events() <-chan vmhost.Event { return v.events }
func (v *fakeVM) Done() <-chan struct{}       { return v.done }

func (v *fakeVM) stopCount() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.stops
}

// stopTimeouts returns the timeouts Stop was called with, in order.
func (v *fakeVM) stopTimeouts() []time.Duration {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]time.Duration(nil), v.timeouts...)
}

// fakeLink is a Link whose Run ends when its context does or when the test
// injects a VM-side failure.
type fakeLink struct {
	host *os.File
	cfg  netlink.Config
	fail chan error

	mu         sync.Mutex
	state      netlink.State
	reconnects uint64
	guest      netlink.Guest // what the link has learned of the guest
	runs       int
	ended      bool
	subs       map[chan netlink.Status]struct{}
}

func newFakeLink(host *os.File, cfg netlink.Config) *fakeLink {
	return &fakeLink{host: host, cfg: cfg, fail: make(chan error, 1), state: netlink.StateConnecting,
		subs: map[chan netlink.Status]struct{}{}}
}

func (l *fakeLink) Run(ctx context.Context) error {
	l.mu.Lock()
	l.runs++
	l.mu.Unlock()
	l.setState(netlink.StateUp)
	var err error
	select {
	case <-ctx.Done():
	case err = <-l.fail:
		err = errors.Join(netlink.ErrVMSide, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.state = netlink.StateFailed
	} else {
		l.state = netlink.StateStopped
	}
	l.publishLocked()
	for ch := range l.subs {
		close(ch)
		delete(l.subs, ch)
	}
	l.ended = true
	return err
}

func (l *fakeLink) setState(s netlink.State) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ended {
		return
	}
	l.state = s
	l.publishLocked()
}

func (l *fakeLink) publishLocked() {
	st := l.statusLocked()
	for ch := range l.subs {
		select {
		case <-ch:
		default:
		}
		ch <- st
	}
}

func (l *fakeLink) Reconnect() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reconnects++
	l.publishLocked()
}

func (l *fakeLink) statusLocked() netlink.Status {
	return netlink.Status{State: l.state, Reconnects: l.reconnects, Guest: l.guest}
}

// learn makes the link know the guest as g (as a DHCP lease would).
func (l *fakeLink) learn(g netlink.Guest) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.guest = g
	l.publishLocked()
}

func (l *fakeLink) Status() netlink.Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.statusLocked()
}

func (l *fakeLink) Subscribe() (<-chan netlink.Status, func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ch := make(chan netlink.Status, 1)
	ch <- l.statusLocked()
	if l.ended {
		close(ch)
		return ch, func() {}
	}
	l.subs[ch] = struct{}{}
	return ch, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if _, ok := l.subs[ch]; ok {
			delete(l.subs, ch)
			close(ch)
		}
	}
}

// factory builds fake VMs and links and remembers them.
type factory struct {
	mu        sync.Mutex
	vms       []*fakeVM
	links     []*fakeLink
	vmErr     error // NewVM fails with it
	linkErr   error // NewLink fails with it
	startErr  error // the next VM's Start fails with it
	hangStop  bool  // the next VMs ignore Stop
	deafGuest bool  // the next VMs are forced off only at their stop timeout
	failLink  error // the next links fail on the VM side as soon as they run
}

func (f *factory) newVM(cfg vmhost.Config, _ logrus.FieldLogger) (vmhost.VM, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.vmErr != nil {
		return nil, f.vmErr
	}
	v := newFakeVM(cfg)
	v.startErr, v.hangStop, v.deafGuest = f.startErr, f.hangStop, f.deafGuest
	f.vms = append(f.vms, v)
	return v, nil
}

func (f *factory) newLink(host *os.File, cfg netlink.Config) (Link, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.linkErr != nil {
		return nil, f.linkErr
	}
	l := newFakeLink(host, cfg)
	if f.failLink != nil {
		l.fail <- f.failLink
	}
	f.links = append(f.links, l)
	return l, nil
}

func (f *factory) vm() *fakeVM {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.vms) == 0 {
		return nil
	}
	return f.vms[len(f.vms)-1]
}

// refusedTransitions returns the transitions vmhost.ValidTransition
// refused, of every VM made so far.
func (f *factory) refusedTransitions() []error {
	f.mu.Lock()
	vms := append([]*fakeVM(nil), f.vms...)
	f.mu.Unlock()
	var errs []error
	for _, v := range vms {
		v.mu.Lock()
		errs = append(errs, v.refused...)
		v.mu.Unlock()
	}
	return errs
}

func (f *factory) link() *fakeLink {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.links) == 0 {
		return nil
	}
	return f.links[len(f.links)-1]
}
