// Package controller is vmnetbar's core: it owns the VMs of the
// configuration, each a Machine (one VM from vmhost and the network link
// from netlink between its NIC and the daemon), and joins their states into
// one status (model.Overview) for the control API, the command line and the
// tray.
//
// It is plain Go: the VMs and the links are built by injected factories, so
// tests drive it with fakes. controller imports the standard library,
// logrus, vmhost, netlink, model (the status types it reports and the rule
// for the actions a VM allows) and internal/latest; no transport. It holds
// no global state.
package controller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/internal/latest"
	"github.com/vmnetbar/vmnetbar/netlink"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

// Spec is one VM of the configuration.
type Spec struct {
	// Name names the VM (config: the key under vms:, or "default").
	Name string
	// VM describes the VM; its NIC is set by the controller.
	VM vmhost.Config
	// Link configures the VM's link; Logger and Now default to the
	// controller's.
	Link netlink.Config
	// Autostart: the VM starts with the app (Controller.Autostart) and
	// when a reload adds it.
	Autostart bool
	// SSHUser is who logs in to the guest over SSH (model.VM.SSHUser).
	SSHUser string
	// SSHAddress is where the guest's SSH server is, HOST:PORT; "" = port
	// 22 of the guest's address (see MachineOptions.SSHAddress).
	SSHAddress string
	// Reset deletes what Prepare made, so that the next start makes it
	// again (Controller.Reset); nil = the VM cannot be reset.
	Reset func() error
	// Image, SSHKey and KnownHosts are shown in the VM's status
	// (model.VM).
	Image, SSHKey, KnownHosts string
	// Prepare makes what the VM's boot needs before each start (see
	// MachineOptions.Prepare); nil = nothing.
	Prepare func(ctx context.Context, cfg vmhost.Config, progress func(done, total int64)) (vmhost.Config, error)
	// Settings is what else the VM's start depends on (the command line
	// puts its provisioning settings here: image, disk size, keys,
	// user-data), compared with reflect.DeepEqual: a reload that changes
	// them changes the VM.
	Settings any
}

// sameSpec reports whether two specs of a VM start the same VM the same
// way (autostart aside: it needs no restart).
func sameSpec(a, b Spec) bool {
	return sameConfig(a.VM, b.VM, a.Link, b.Link) &&
		a.SSHUser == b.SSHUser && a.SSHAddress == b.SSHAddress && a.Image == b.Image &&
		a.SSHKey == b.SSHKey && a.KnownHosts == b.KnownHosts &&
		(a.Reset == nil) == (b.Reset == nil) && (a.Prepare == nil) == (b.Prepare == nil) &&
		reflect.DeepEqual(a.Settings, b.Settings)
}

// Options configure a Controller. Zero values mean the documented default.
type Options struct {
	// Specs are the VMs, with distinct names. None means the configuration
	// names no VM yet (a first launch): the controller then shows one VM,
	// "default", not configured, whose start reads the configuration
	// again (Load is required then).
	Specs []Spec
	// Load, when set, reads the configuration again. Reload applies it
	// to the set of VMs; every Start reads it too and takes the started
	// VM's own part of it, so "fix the file, then start" works without a
	// reload. Its error (a file with errors) changes nothing and is
	// reported.
	Load func() ([]Spec, error)
	// ConfigFile is the configuration file, named in messages; "" means
	// "the configuration file".
	ConfigFile string
	// NewVM, NewLink and NewSocketPair build each run of a VM (see
	// MachineOptions); nil means vmhost.New, netlink.New and
	// netlink.NewSocketPair.
	NewVM         func(vmhost.Config, logrus.FieldLogger) (vmhost.VM, error)
	NewLink       func(host *os.File, cfg netlink.Config) (Link, error)
	NewSocketPair func() (vmEnd, hostEnd *os.File, err error)
	// DialSSH checks a guest's SSH port (see MachineOptions.DialSSH); nil
	// means a real dial.
	DialSSH func(ctx context.Context, addr string) error
	// Logger receives the controller's log; nil discards it.
	Logger logrus.FieldLogger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// placeholderName is the name of the VM shown while the configuration
// names none: the name the single-VM form (vm:) gives its VM.
const placeholderName = "default"

// Controller owns the configuration's VMs, by name. It implements
// model.Machines: every action names a VM ("" for the only one); each VM
// decides what it allows (model.Allowed, see Machine).
//
// The set of VMs changes only by Reload: a VM the file no longer names is
// stopped and then removed, a new one appears (and starts when it has
// autostart), and a changed VM takes the change at its next start (its
// status says ConfigChanged meanwhile; a VM that does not run takes it at
// once).
//
// Goroutines: those of each Machine (owned by it; Close closes every
// Machine) and, during StartAll, StopAll, Reload and Close, one per VM
// acted on, awaited before the call returns.
type Controller struct {
	opts Options
	log  logrus.FieldLogger
	now  func() time.Time

	// reloading serialises Reload and Close.
	reloading sync.Mutex

	mu       sync.Mutex
	machines map[string]*entry
	closed   bool
	cfgErr   string // why the last reload changed nothing

	subs latest.Hub[model.Overview]

	closeOnce sync.Once
	closeErr  error
}

// entry is one VM of the controller.
type entry struct {
	name        string
	m           *Machine
	autostart   bool
	placeholder bool
	// removing: a reload found the VM no longer in the file; it stops,
	// and then leaves the set (under Controller.mu).
	removing bool
	// spec is the VM's configuration as last read (at its last start or
	// reload), under Controller.mu: its Prepare and SSHAddress apply to
	// the next start.
	spec Spec // the "default" VM shown while none is configured
}

var _ model.Machines = (*Controller)(nil)

// New returns a Controller with every VM stopped.
func New(opts Options) (*Controller, error) {
	if len(opts.Specs) == 0 && opts.Load == nil {
		return nil, errors.New("controller: no VM to run and no Load to read the configuration later: configure a VM")
	}
	defaultFactories(&opts.NewVM, &opts.NewLink, &opts.NewSocketPair)
	if opts.Logger == nil {
		l := logrus.New()
		l.Out = io.Discard
		opts.Logger = l
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := &Controller{opts: opts, log: opts.Logger, now: opts.Now, machines: map[string]*entry{}}
	if err := checkSpecs(opts.Specs); err != nil {
		return nil, err
	}
	for _, s := range opts.Specs {
		e, err := c.newEntry(s)
		if err != nil {
			c.closeAll(0)
			return nil, err
		}
		c.machines[s.Name] = e
	}
	if len(opts.Specs) == 0 {
		e, err := c.newPlaceholder()
		if err != nil {
			return nil, err
		}
		c.machines[e.name] = e
	}
	return c, nil
}

// checkSpecs refuses specs without a name or with a name twice.
func checkSpecs(specs []Spec) error {
	seen := map[string]bool{}
	for _, s := range specs {
		if s.Name == "" {
			return errors.New("controller: a VM has no name")
		}
		if seen[s.Name] {
			return fmt.Errorf("controller: two VMs are named %q", s.Name)
		}
		seen[s.Name] = true
	}
	return nil
}

func (c *Controller) machineOptions(name string) MachineOptions {
	return MachineOptions{
		Name:          name,
		DialSSH:       c.opts.DialSSH,
		NewVM:         c.opts.NewVM,
		NewLink:       c.opts.NewLink,
		NewSocketPair: c.opts.NewSocketPair,
		Logger:        c.log.WithField("vm", name),
		Now:           c.now,
		ConfigFile:    c.opts.ConfigFile,
		OnChange:      c.notify,
	}
}

func (c *Controller) newEntry(s Spec) (*entry, error) {
	o := c.machineOptions(s.Name)
	o.VMConfig, o.Link = s.VM, s.Link
	if c.opts.Load != nil {
		o.Reload = c.loaderFor(s.Name)
	}
	e := &entry{name: s.Name, autostart: s.Autostart, spec: s}
	o.Prepare = func(ctx context.Context, cfg vmhost.Config, progress func(done, total int64)) (vmhost.Config, error) {
		c.mu.Lock()
		prepare := e.spec.Prepare
		c.mu.Unlock()
		if prepare == nil {
			return cfg, nil
		}
		return prepare(ctx, cfg, progress)
	}
	o.SSHAddress = func() string {
		c.mu.Lock()
		defer c.mu.Unlock()
		return e.spec.SSHAddress
	}
	m, err := NewMachine(o)
	if err != nil {
		return nil, fmt.Errorf("VM %s: %w", s.Name, err)
	}
	e.m = m
	return e, nil
}

// newPlaceholder makes the VM shown while the configuration names none: a
// Machine with no kernel, so it says it is not configured (and where to
// configure it). Start reloads the configuration first (see Start).
func (c *Controller) newPlaceholder() (*entry, error) {
	o := c.machineOptions(placeholderName)
	o.Name = "" // its messages speak of "the VM", as a first launch should
	o.Reload = func() (vmhost.Config, netlink.Config, error) {
		specs, err := c.opts.Load()
		if err != nil {
			return vmhost.Config{}, netlink.Config{}, err
		}
		if len(specs) > 0 {
			// A reload (which Start runs first) replaces the placeholder
			// by the VMs; reached only when a VM appeared in between.
			return vmhost.Config{}, netlink.Config{}, &ConflictError{Action: "start", State: vmhost.StateStopped,
				Msg: "the configuration names VMs now: reload it (menu: Reload config) and start one of them"}
		}
		return vmhost.Config{}, netlink.Config{}, nil
	}
	m, err := NewMachine(o)
	if err != nil {
		return nil, err
	}
	return &entry{name: placeholderName, m: m, placeholder: true}, nil
}

// loaderFor reads the configuration again for the VM called name: its
// Machine's Reload, so every start takes the file as it is now.
func (c *Controller) loaderFor(name string) func() (vmhost.Config, netlink.Config, error) {
	return func() (vmhost.Config, netlink.Config, error) {
		specs, err := c.opts.Load()
		if err != nil {
			return vmhost.Config{}, netlink.Config{}, err
		}
		for _, s := range specs {
			if s.Name == name {
				c.mu.Lock()
				if e := c.machines[name]; e != nil && !e.placeholder {
					e.spec = s
				}
				c.mu.Unlock()
				return s.VM, s.Link, nil
			}
		}
		return vmhost.Config{}, netlink.Config{}, fmt.Errorf("%s no longer names the VM %s: choose Reload config in the menu (or send vmnetbar SIGHUP) to remove it, or add it back",
			c.configFile(), name)
	}
}

func (c *Controller) configFile() string {
	if c.opts.ConfigFile == "" {
		return "the configuration file"
	}
	return c.opts.ConfigFile
}

// sorted returns the entries sorted by name; the caller holds mu.
func (c *Controller) sortedLocked() []*entry {
	out := make([]*entry, 0, len(c.machines))
	for _, e := range c.machines {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// Status is every VM's status, sorted by name.
func (c *Controller) Status() model.Overview {
	c.mu.Lock()
	entries := c.sortedLocked()
	o := model.Overview{VMs: make([]model.VMStatus, 0, len(entries)), ConfigError: c.cfgErr}
	specs := make([]Spec, len(entries)) // what the status shows of each VM's configuration
	removing := make([]bool, len(entries))
	for i, e := range entries {
		specs[i], removing[i] = e.spec, e.removing
	}
	c.mu.Unlock()
	for i, e := range entries {
		v := e.m.Status().Named(e.name)
		s := &specs[i]
		v.VM.SSHUser, v.VM.SSHAddress, v.VM.SSHKey, v.VM.KnownHosts, v.VM.Image = s.SSHUser, s.SSHAddress, s.SSHKey, s.KnownHosts, s.Image
		v.Actions = model.Allowed(&v.VM, v.Link.State) // with the image: Reset
		if removing[i] {
			v.VM.Note = removingNote
			v.Actions = model.Actions{}
		}
		o.VMs = append(o.VMs, v)
	}
	return o
}

// Subscribe delivers the status after every change of any VM. Updates are
// coalesced: a slow reader gets the latest status, never a backlog, and
// the controller never waits for it. The channel is closed by cancel
// (which is idempotent) and by Close.
func (c *Controller) Subscribe() (<-chan model.Overview, func()) { return c.subs.Subscribe() }

// notify publishes the status; it must be called without mu held.
func (c *Controller) notify() { c.subs.PublishFunc(c.Status) }

// resolve returns the VM an action names ("": the only one).
func (c *Controller) resolve(action, name string) (*entry, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if e, ok := c.machines[name]; ok {
		if e.removing {
			st := e.m.Status().VM.State
			return nil, &ConflictError{Action: action, State: st,
				Msg: fmt.Sprintf("%s no longer names the VM %s: it is stopping, and then leaves the list (add it back to the file and reload to keep it)", c.configFile(), name)}
		}
		return e, nil
	}
	// The VMs a reload is removing are no candidates for "the only VM".
	o := model.Overview{}
	var only *entry
	for _, e := range c.sortedLocked() {
		if !e.removing {
			o.VMs = append(o.VMs, model.VMStatus{Name: e.name})
			only = e
		}
	}
	if name == "" && len(o.VMs) == 1 {
		return only, nil
	}
	_, err := o.Resolve(name)
	return nil, err
}

// Start starts the VM called name ("": the only one); see
// Machine.StartVM. While no VM is configured, it reloads the
// configuration first and starts the VM the file names now (when it names
// exactly one).
func (c *Controller) Start(ctx context.Context, name string) error {
	e, err := c.resolve("start", name)
	if err != nil {
		return err
	}
	if e.placeholder {
		if err := c.Reload(); err != nil && !errors.Is(err, ErrClosed) {
			// The file has errors: the start fails with them.
			return e.m.StartVM(ctx)
		}
		if e, err = c.resolve("start", ""); err != nil {
			return err
		}
	}
	return e.m.StartVM(ctx)
}

// Stop stops the VM called name ("": the only one); see Machine.StopVM.
func (c *Controller) Stop(ctx context.Context, name string) error {
	e, err := c.resolve("stop", name)
	if err != nil {
		return err
	}
	return e.m.StopVM(ctx)
}

// Reconnect makes the link of the VM called name ("": the only one) redial
// now; see Machine.Reconnect.
func (c *Controller) Reconnect(name string) error {
	e, err := c.resolve("reconnect", name)
	if err != nil {
		return err
	}
	return e.m.Reconnect()
}

// Reset resets the VM called name ("": the only one), which must be
// stopped: its Spec.Reset deletes its disk (and what goes with it), and
// its next start makes them again from its image. A VM without Reset (it
// boots a kernel) fails with a *ConflictError.
func (c *Controller) Reset(ctx context.Context, name string) error {
	e, err := c.resolve("reset", name)
	if err != nil {
		return err
	}
	if e.placeholder {
		return &ConflictError{Action: "reset", State: vmhost.StateStopped, Msg: "no VM configured: there is nothing to reset"}
	}
	// The file as it is now says what to delete (reading it updates
	// e.spec; a file with errors leaves the spec of the last read).
	if c.opts.Load != nil {
		_, _, _ = c.loaderFor(e.name)()
	}
	c.mu.Lock()
	reset := e.spec.Reset
	c.mu.Unlock()
	if reset == nil {
		return &ConflictError{Action: "reset", State: e.m.Status().VM.State,
			Msg: fmt.Sprintf("cannot reset %s: it boots a kernel, not a cloud image; only a VM with an image has a disk vmnetbar made", e.name)}
	}
	return e.m.ResetVM(ctx, reset)
}

// StartAll starts, in parallel, every VM whose actions allow a start, and
// returns when each start has returned; the error joins those that
// failed.
func (c *Controller) StartAll(ctx context.Context) error {
	return c.each(func(st model.VMStatus) bool { return st.Actions.Start && !st.VM.NotConfigured },
		func(e *entry) error { return c.Start(ctx, e.name) })
}

// StopAll stops, in parallel, every VM whose actions allow a stop, and
// returns when each has stopped (or ctx ended); the error joins those that
// failed.
func (c *Controller) StopAll(ctx context.Context) error {
	return c.each(func(st model.VMStatus) bool { return st.Actions.Stop },
		func(e *entry) error { return e.m.StopVM(ctx) })
}

// Autostart starts, in parallel, every VM configured to start with the
// app, and returns when each start has returned; the error joins those
// that failed.
func (c *Controller) Autostart(ctx context.Context) error {
	c.mu.Lock()
	var todo []*entry
	for _, e := range c.sortedLocked() {
		if e.autostart && !e.removing {
			todo = append(todo, e)
		}
	}
	c.mu.Unlock()
	return c.parallel(todo, func(e *entry) error { return e.m.StartVM(ctx) })
}

// each runs act in parallel on every VM whose status passes want.
func (c *Controller) each(want func(model.VMStatus) bool, act func(*entry) error) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	var entries []*entry
	for _, e := range c.sortedLocked() {
		if !e.removing {
			entries = append(entries, e)
		}
	}
	c.mu.Unlock()
	var todo []*entry
	for _, e := range entries {
		if want(e.m.Status().Named(e.name)) {
			todo = append(todo, e)
		}
	}
	return c.parallel(todo, act)
}

// parallel runs act on each entry, each in its own goroutine, and waits
// for all; errors are joined, each naming its VM.
func (c *Controller) parallel(todo []*entry, act func(*entry) error) error {
	errs := make([]error, len(todo))
	var wg sync.WaitGroup
	for i, e := range todo {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := act(e); err != nil {
				errs[i] = fmt.Errorf("%s: %w", e.name, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Reload reads the configuration again (Options.Load) and applies it:
//   - a file with errors changes nothing: the error is returned and shown
//     in the status (Overview.ConfigError) until a good load;
//   - a new VM appears, and starts when it has autostart;
//   - a VM the file no longer names is stopped (gracefully, as Close
//     does), then removed;
//   - a changed VM that runs keeps running as it was and shows
//     ConfigChanged until its next start, which takes the change; one that
//     does not run takes it at once.
//
// Reload returns once removed VMs have stopped and added ones have been
// started. Reloads are serialised.
func (c *Controller) Reload() error {
	if c.opts.Load == nil {
		return errors.New("this vmnetbar has no configuration file to reload")
	}
	c.reloading.Lock()
	defer c.reloading.Unlock()
	specs, err := c.opts.Load()
	if err == nil {
		err = checkSpecs(specs)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	if err != nil {
		c.cfgErr = err.Error()
		c.mu.Unlock()
		c.log.WithError(err).Error("reloading the configuration failed: nothing changed; fix the file, then reload again")
		c.notify()
		return err
	}
	c.cfgErr = ""
	want := map[string]Spec{}
	for _, s := range specs {
		want[s.Name] = s
	}
	var removed, added, changed, kept []*entry
	for name, e := range c.machines {
		if e.placeholder && len(specs) == 0 {
			continue // still nothing configured
		}
		if e.removing {
			continue // a reload that was cut short left it; it leaves below
		}
		s, ok := want[name]
		if e.placeholder {
			// It never runs, and a VM of the file may take its name.
			removed = append(removed, e)
			delete(c.machines, name)
			continue
		}
		if !ok {
			// It stays in the list, stopping, until it has stopped.
			e.removing = true
			removed = append(removed, e)
			continue
		}
		e.autostart = s.Autostart
		kept = append(kept, e)
	}
	var newErr error
	for _, s := range specs {
		if _, ok := c.machines[s.Name]; ok {
			continue
		}
		e, err := c.newEntry(s)
		if err != nil {
			newErr = errors.Join(newErr, err)
			continue
		}
		c.machines[s.Name] = e
		added = append(added, e)
	}
	c.mu.Unlock()

	for _, e := range kept {
		s := want[e.name]
		c.mu.Lock()
		same := sameSpec(e.spec, s)
		if same {
			e.spec = s // the same settings; its functions are the newest
		}
		c.mu.Unlock()
		if same {
			e.m.setConfigChanged(false)
			continue
		}
		changed = append(changed, e)
		st := e.m.Status().VM.State
		if st == vmhost.StateStopped || st == vmhost.StateError {
			c.mu.Lock()
			e.spec = s
			c.mu.Unlock()
			e.m.setConfig(s.VM, s.Link)
			e.m.setConfigChanged(false)
		} else {
			// It runs as it was started (its status keeps showing
			// that: SSH user and address included); its next start
			// reads the file again and takes the change.
			e.m.setConfigChanged(true)
		}
	}
	c.log.WithFields(logrus.Fields{"added": names(added), "removed": names(removed), "changed": names(changed)}).
		Info("configuration reloaded (a changed VM that runs takes its change at its next start)")
	c.notify()

	// Removed VMs stop as Close stops them, shown as stopping meanwhile,
	// and then leave the overview.
	stopErr := c.parallel(removed, func(e *entry) error { return e.m.Close() })
	c.mu.Lock()
	for _, e := range removed {
		if e.removing && c.machines[e.name] == e {
			delete(c.machines, e.name)
		}
	}
	if len(c.machines) == 0 && !c.closed {
		if e, err := c.newPlaceholder(); err == nil {
			c.machines[e.name] = e
		}
	}
	c.mu.Unlock()
	if len(removed) > 0 {
		c.notify()
	}
	var autostart []*entry
	for _, e := range added {
		if e.autostart && !c.isClosed() {
			autostart = append(autostart, e)
		}
	}
	startErr := c.parallel(autostart, func(e *entry) error { return e.m.StartVM(context.Background()) })
	return errors.Join(newErr, stopErr, startErr)
}

// removingNote is the status note of a VM that a reload is removing.
const removingNote = "no longer in the configuration: stopping, then it leaves the list"

func (c *Controller) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// sameConfig reports whether two configurations of a VM start the same VM
// (the Machine's own logger, clock and dialer are no setting).
func sameConfig(aVM, bVM vmhost.Config, aLink, bLink netlink.Config) bool {
	for _, l := range []*netlink.Config{&aLink, &bLink} {
		l.Logger, l.Now, l.Clock, l.Dial = nil, nil, nil, nil
	}
	aVM.NIC, bVM.NIC = nil, nil
	return reflect.DeepEqual(aVM, bVM) && reflect.DeepEqual(aLink, bLink)
}

func names(es []*entry) string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.name
	}
	return strings.Join(out, ",")
}

// Close stops every VM gracefully and in parallel (each bounded by its
// stop timeout, then forced), waits for all of them and closes all
// subscriptions. Later actions return ErrClosed. It is idempotent: once
// one Close or CloseWithin has begun, the others wait for it and return
// its result (a CloseWithin still shortens the stops under way).
func (c *Controller) Close() error { return c.close(0) }

// CloseWithin is Close for when the system ends the app (logout, restart,
// shutdown): each guest gets at most grace to power off (never more than
// its stop timeout) before it is forced off, also a stop already under way.
// grace <= 0 means Close.
func (c *Controller) CloseWithin(grace time.Duration) error { return c.close(grace) }

func (c *Controller) close(grace time.Duration) error {
	c.mu.Lock()
	c.closed = true
	entries := c.sortedLocked()
	c.mu.Unlock()
	if grace > 0 {
		// Shorten the stops of a Close under way (see Machine.CloseWithin).
		_ = c.parallel(entries, func(e *entry) error { return e.m.CloseWithin(grace) })
	}
	c.closeOnce.Do(func() {
		// A Reload that removes VMs closes them itself: wait for it.
		c.reloading.Lock()
		defer c.reloading.Unlock()
		c.closeErr = c.closeAll(grace)
		c.subs.Close()
	})
	return c.closeErr
}

// closeAll closes every Machine in parallel.
func (c *Controller) closeAll(grace time.Duration) error {
	c.mu.Lock()
	entries := c.sortedLocked()
	c.mu.Unlock()
	return c.parallel(entries, func(e *entry) error { return e.m.CloseWithin(grace) })
}
