// Package controller is vmnetbar's core: it owns one VM (vmhost) and the
// network link (netlink) between the VM's NIC and the daemon, and joins their
// states into one status for the control API and the tray.
//
// It is plain Go: the VM and the link are built by injected factories, so
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
	"net"
	"os"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/internal/latest"
	"github.com/vmnetbar/vmnetbar/netlink"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

// Link is the part of *netlink.Link the controller uses.
type Link interface {
	// Run forwards frames until ctx ends (nil) or the VM side fails.
	Run(ctx context.Context) error
	// Reconnect drops the daemon connection and redials now.
	Reconnect()
	// Status is a snapshot of the link.
	Status() netlink.Status
	// Subscribe delivers status changes until cancel is called.
	Subscribe() (<-chan netlink.Status, func())
}

var _ Link = (*netlink.Link)(nil)

// MachineOptions configure a Machine. Zero values mean the documented default.
type MachineOptions struct {
	// VMConfig describes the VM; its NIC is set by the controller.
	VMConfig vmhost.Config
	// Link configures the link; Logger and Now default to the controller's.
	Link netlink.Config
	// NewVM builds the VM; nil means vmhost.New.
	NewVM func(vmhost.Config, logrus.FieldLogger) (vmhost.VM, error)
	// NewLink builds the link on the host end of the socketpair; nil
	// means netlink.New.
	NewLink func(host *os.File, cfg netlink.Config) (Link, error)
	// NewSocketPair creates the NIC's socketpair; nil means
	// netlink.NewSocketPair.
	NewSocketPair func() (vmEnd, hostEnd *os.File, err error)
	// Logger receives the controller's log; nil discards it.
	Logger logrus.FieldLogger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Reload, when set, is called by every StartVM before the VM is built:
	// it reads the configuration again, so a start after the user fixed
	// the file uses the fix. Its VM and link configurations replace
	// VMConfig and Link (Link's Logger and Now default as above). An error
	// fails the start with the VM in state error. A VM configuration
	// without a Kernel means the file configures no VM yet: the start
	// fails with a *ConflictError and the controller is not configured
	// (see below).
	//
	// With Reload set, VMConfig may have no Kernel: the controller starts
	// not configured (a first launch, before the user has set vm.kernel).
	// Its status then says so (VMStatus.NotConfigured, with a Note naming
	// ConfigFile), and every StartVM reads the configuration again, so the
	// user who fills the file in and clicks Start gets the VM.
	Reload func() (vmhost.Config, netlink.Config, error)
	// Prepare, when set, is called by every StartVM before the VM is
	// built, with the VM's configuration (after Reload): it makes what the
	// boot needs (the VM's disk from its image, its cloud-init seed) and
	// returns the configuration to boot. progress reports a long step
	// (bytes done of total). ctx ends when the start is cancelled: by a
	// StopVM or a Close while Prepare runs. Prepare must then return at
	// once, leaving nothing half-made (provision.Prepare removes a partial
	// disk); the start ends with the VM stopped, whatever Prepare returns.
	// Any other error fails the start with the VM in state error.
	Prepare func(ctx context.Context, cfg vmhost.Config, progress func(done, total int64)) (vmhost.Config, error)
	// SSHAddress, when set, returns where the guest's SSH server is
	// (HOST:PORT; "" = port 22 of the guest's address as the link learned
	// it). While the VM runs the Machine checks it every few seconds
	// (model.VM.SSH: "waiting" from the moment a start begins, Prepare
	// included, until the server answers).
	SSHAddress func() string
	// DialSSH checks that an SSH server answers at addr; nil means a real
	// connection that waits for the server's identification.
	DialSSH func(ctx context.Context, addr string) error
	// Name is the VM's name, used in messages ("cannot start dev: it is
	// running"); "" says "the VM".
	Name string
	// OnChange, when set, is called after every status notification,
	// without any of the Machine's locks held (the Controller publishes
	// the status of all its VMs then).
	OnChange func()
	// ConfigFile is the configuration file, named in what the controller
	// says while no VM is configured; "" means "the configuration file".
	ConfigFile string
}

// closeGrace is how long Close waits beyond the stop timeout for the VM to
// end before it gives up on it.
const closeGrace = 10 * time.Second

// linkGrace is how long a VM-side link failure waits for the VM to end
// before the link is blamed. A VM that powers off closes its end of the
// socketpair, so the link may see that before the VM reports stopped.
const linkGrace = 2 * time.Second

// ConflictError is an action that is illegal in the current state (start
// while running, stop while stopped, reconnect without a VM): its kind is
// model.KindConflict (409 in the control API).
type ConflictError struct {
	Action string       // "start", "stop" or "reconnect"
	State  vmhost.State // the VM state that made it illegal
	Msg    string
	Err    error // what it wraps, if anything (model.ErrStartCancelled)
}

func (e *ConflictError) Error() string { return e.Msg }

func (e *ConflictError) Unwrap() error { return e.Err }

// ErrorKind is model.KindConflict.
func (e *ConflictError) ErrorKind() model.Kind { return model.KindConflict }

// notConfiguredMsg says what to do while no VM is configured.
func (c *Machine) notConfiguredMsg() string {
	if c.opts.ConfigFile == "" {
		return "no VM configured: set vm.image in the configuration file, then start"
	}
	return fmt.Sprintf("no VM configured: edit %s (vm.image), then start", c.opts.ConfigFile)
}

// ErrClosed is returned by actions once Close has begun.
var ErrClosed = model.ErrClosed

// Machine is one VM and its link.
//
// States (the VM state reported in Status; the link has its own, see
// netlink.State):
//
//	stopped  -> starting  StartVM: socketpair made, link running, VM booting
//	stopped  -> stopped   StartVM without a VM configured: not configured,
//	                      and the start answers a *ConflictError
//	error    -> starting  StartVM (a failed VM may be started again)
//	error    -> stopped   StartVM without a VM configured (as above)
//	stopped  -> error     StartVM whose Reload failed
//	starting -> running   the VM reports the guest running
//	starting -> error     building or booting the VM failed
//	starting -> stopped   the boot was cancelled before the VM launched
//	starting -> stopping  StopVM (during Prepare: it cancels the start)
//	running  -> stopping  StopVM, or the link failed on the VM side
//	running  -> stopped   the guest powered off by itself
//	running  -> error     the VM failed
//	stopping -> stopped   the VM has ended after StopVM, or a start
//	                      cancelled during Prepare has ended
//	stopping -> error     the VM has ended after a link failure, or failed
//
// A link that fails on the VM side (netlink.ErrVMSide) is blamed only when
// the VM goes on running: a VM that stops closes its end of the socketpair,
// so the link may fail just before the VM reports stopped. Such a failure
// is ignored while the VM is stopping or has ended; otherwise the VM gets
// linkGrace to end by itself (then the run ends as the VM did) before the
// link is blamed and the VM stopped. Any other end of the link is blamed at
// once.
//
// Whenever the VM ends the link is shut down (its context cancelled and Run
// awaited) before the final state (stopped or error) is reported, so a
// final state always means nothing runs. Legal actions: StartVM in stopped
// and error; StopVM in starting and running; Reconnect in starting and
// running. Every other action returns a *ConflictError. Start and stop are
// serialised: a StopVM issued while StartVM is booting waits for the boot
// call to return, then stops the VM. Only Prepare (which may take minutes:
// a disk made from a cloud image) is not waited for: a StopVM or Close
// issued before the VM is built cancels the start, which then ends with
// the VM stopped (StartVM says it was cancelled), and the StopVM returns
// as soon as it has.
//
// A VM that is stopped or failed has no guest addresses in its status:
// the link's last ones are stale (the guest may come back with another).
// The same holds while a start prepares, before the new run's link exists.
//
// Goroutines: per run of the VM, a link goroutine (link.Run) and a
// supervisor (supervise) that follows the VM's events and the link's
// updates; the supervisor owns the link goroutine and ends after it.
// Close stops the VM and waits for all of them.
//
// Not configured (no VM in the configuration yet) is a flag beside the
// state, which is stopped meanwhile: it is set by New and by a StartVM whose
// Reload returns no kernel, and cleared by a StartVM whose Reload returns
// one.
type Machine struct {
	opts       MachineOptions // VMConfig and Link are replaced by Reload, under op
	log        logrus.FieldLogger
	now        func() time.Time
	closeGrace time.Duration // how long Close waits beyond a run's stop timeout
	linkGrace  time.Duration // how long a VM-side link failure waits for the VM to end
	after      func(time.Duration) <-chan time.Time

	ctx    context.Context // cancelled when Close has done its graceful part
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// op serialises StartVM, StopVM and Close (a one-slot semaphore so
	// waiting can honour a context).
	op chan struct{}
	// closing is closed when Close begins: actions waiting for op give up
	// at once instead of waiting for the shutdown.
	closing chan struct{}

	mu     sync.Mutex
	closed bool
	state  vmhost.State
	since  time.Time
	errMsg string
	note   string // what the VM host says it is waiting for in state; cleared by every state change
	noVM   bool   // no VM is configured (see MachineOptions.Reload)
	// configChanged: a reload changed the VM's settings while it ran
	// (model.VM.ConfigChanged); cleared by the next start.
	configChanged bool
	progress      *model.Progress // a long step of the start under way, nil if none
	// start is the start under way until its VM is built (it may be
	// cancelled then); nil otherwise.
	start *startOp
	// ssh is the SSH check's last answer for start number sshSeq: set to
	// waiting when a start begins, then by that start's watchSSH only.
	ssh    model.SSHState
	sshSeq uint64
	// sshEvery is how often the SSH check looks while the guest does not
	// answer; sshReadyEvery once it has.
	sshEvery, sshReadyEvery time.Duration
	run                     *vmRun         // the current (or last) run of the VM; nil before the first and while a start prepares
	lastLink                netlink.Status // link status when no link runs

	// subs delivers status updates; its lock is taken before mu, never
	// after (notify computes the status under it).
	subs latest.Hub[model.Status]

	closeOnce sync.Once
	closeErr  error
}

// startOp is a start before its VM is built: a StopVM or Close then
// cancels it (see Machine).
type startOp struct {
	cancel  context.CancelFunc // cancels the ctx Prepare got
	stopped bool               // a StopVM cancelled it (not Close); under Machine.mu
	done    chan struct{}      // closed when a cancelled start has ended (VM stopped)
}

// vmRun is one run of the VM: from StartVM until the VM has ended and the
// link is shut down.
type vmRun struct {
	vm          vmhost.VM
	link        Link
	stopTimeout time.Duration // the graceful part of a stop, from the run's VMConfig
	linkCancel  context.CancelFunc
	linkDone    chan struct{} // closed when link.Run has returned
	linkErr     error         // link.Run's result; read after linkDone
	done        chan struct{} // closed when the supervisor has finished
	failure     string        // why the controller stopped the VM (link failure), under Machine.mu
	hostEnd     *os.File      // the link's end of the socketpair
}

// NewMachine returns a Machine with the VM stopped.
func NewMachine(opts MachineOptions) (*Machine, error) {
	if !configured(opts.VMConfig) && opts.Reload == nil {
		return nil, errors.New("controller: VMConfig.Kernel is empty and there is no Reload to read it later: set the VM's kernel image")
	}
	defaultFactories(&opts.NewVM, &opts.NewLink, &opts.NewSocketPair)
	log := opts.Logger
	if log == nil {
		l := logrus.New()
		l.Out = io.Discard
		log = l
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Machine{
		opts:          opts,
		log:           log,
		now:           now,
		closeGrace:    closeGrace,
		linkGrace:     linkGrace,
		after:         time.After,
		ctx:           ctx,
		cancel:        cancel,
		op:            make(chan struct{}, 1),
		closing:       make(chan struct{}),
		state:         vmhost.StateStopped,
		since:         now(),
		lastLink:      netlink.Status{State: netlink.StateStopped, Since: now()},
		noVM:          !configured(opts.VMConfig),
		ssh:           model.SSHUnknown,
		sshEvery:      sshEvery,
		sshReadyEvery: sshReadyEvery,
	}
	c.setLinkConfig(opts.Link)
	return c, nil
}

// setLinkConfig sets the link configuration of the next run, with the
// controller's logger and clock where it has none.
func (c *Machine) setLinkConfig(cfg netlink.Config) {
	if cfg.Logger == nil {
		cfg.Logger = c.log.WithField("component", "link")
	}
	if cfg.Now == nil {
		cfg.Now = c.now
	}
	c.opts.Link = cfg
}

// acquire takes the action slot, or fails when ctx ends first or the
// controller is closing (ErrClosed, at once).
func (c *Machine) acquire(ctx context.Context) error {
	select {
	case <-c.closing:
		return ErrClosed
	default:
	}
	select {
	case c.op <- struct{}{}:
		return nil
	case <-c.closing:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *Machine) release() { <-c.op }

// acquireStopped takes the action slot for an action that needs the VM
// stopped or failed (what allows a start): it fails with ErrClosed, or
// with a *ConflictError "cannot ACTION the VM: it is STATE" + hint.
func (c *Machine) acquireStopped(ctx context.Context, action, hint string) error {
	if err := c.acquire(ctx); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		c.release()
		return ErrClosed
	}
	if !model.Allowed(&model.VM{State: c.state}, 0).Start {
		c.release()
		return &ConflictError{Action: action, State: c.state, Msg: fmt.Sprintf("cannot %s %s: it is %s%s", action, c.what(), c.state, hint)}
	}
	return nil
}

// setStateLocked records a VM state change; the caller notifies.
func (c *Machine) setStateLocked(s vmhost.State, errMsg string) bool {
	if c.state == s && c.errMsg == errMsg {
		return false
	}
	old := c.state
	c.state, c.errMsg, c.since, c.note = s, errMsg, c.now(), ""
	e := c.log.WithFields(logrus.Fields{"from": old.String(), "to": s.String()})
	if errMsg != "" {
		e.WithField("error", errMsg).Warn("VM status changed")
	} else {
		e.Info("VM status changed")
	}
	return true
}

// StartVM creates the socketpair, starts the link and boots the VM. It
// returns once the hypervisor has accepted the VM (state starting or
// running); boot failures after that show as state error. ctx bounds the
// boot call only: the VM outlives it.
func (c *Machine) StartVM(ctx context.Context) error {
	if err := c.acquireStopped(ctx, "start", ""); err != nil {
		return err
	}
	defer c.release()

	// The configuration is read before the state changes: a file that
	// configures no VM leaves the VM stopped (never starting).
	if err := c.reload(); err != nil {
		c.mu.Lock()
		c.noVM = false // the error says what is wrong with the file
		c.setStateLocked(vmhost.StateError, err.Error())
		c.mu.Unlock()
		c.notify()
		return err
	}
	c.mu.Lock()
	if !configured(c.opts.VMConfig) {
		changed := c.setStateLocked(vmhost.StateStopped, "")
		changed = !c.noVM || changed
		c.noVM = true
		st := c.state
		c.mu.Unlock()
		if changed {
			c.notify()
		}
		msg := c.notConfiguredMsg()
		c.log.Warn(msg)
		return &ConflictError{Action: "start", State: st, Msg: msg}
	}
	if c.closed {
		// Close began after the slot was taken: it waits for this start,
		// which must not begin a Prepare it would have to wait for.
		c.mu.Unlock()
		return ErrClosed
	}
	c.noVM = false
	c.setStateLocked(vmhost.StateStarting, "")
	startCtx, cancelStart := context.WithCancel(c.ctx)
	defer cancelStart()
	op := &startOp{cancel: cancelStart, done: make(chan struct{})}
	c.start = op
	// The last run has ended (its final link status is lastLink): the
	// status shows no link of it while this start prepares.
	c.run = nil
	// The SSH check of this start has not begun yet: the guest's SSH is
	// waited for from now on (model.VM.SSH).
	c.sshSeq++
	seq := c.sshSeq
	c.ssh = model.SSHWaiting
	cfg := c.opts.VMConfig
	c.mu.Unlock()
	c.notify()

	var prepErr error
	if c.opts.Prepare != nil {
		cfg, prepErr = c.prepare(startCtx, cfg)
	}
	// From here on the start is not cancelled any more: a StopVM waits
	// for the boot call, then stops the VM.
	c.mu.Lock()
	c.start = nil
	if startCtx.Err() != nil {
		return c.startCancelledLocked(op, prepErr)
	}
	if prepErr != nil {
		c.setStateLocked(vmhost.StateError, prepErr.Error())
		c.mu.Unlock()
		c.notify()
		return prepErr
	}
	c.mu.Unlock()
	r, err := c.build(cfg)
	if err != nil {
		c.mu.Lock()
		c.setStateLocked(vmhost.StateError, err.Error())
		c.mu.Unlock()
		c.notify()
		return err
	}
	linkCtx, cancel := context.WithCancel(c.ctx)
	r.linkCancel = cancel
	c.mu.Lock()
	c.run = r
	c.mu.Unlock()
	c.wg.Add(3)
	go func() {
		defer c.wg.Done()
		defer close(r.linkDone)
		r.linkErr = r.link.Run(linkCtx)
	}()
	sub, unsub := r.link.Subscribe()
	go func() {
		defer c.wg.Done()
		c.supervise(r, sub, unsub)
	}()
	go func() {
		defer c.wg.Done()
		c.watchSSH(r, seq)
	}()

	// ctx bounds only the boot call: the VM outlives it (vmhost.VM.Start).
	if err := r.vm.Start(ctx); err != nil {
		c.log.WithError(err).Warn("VM failed to start")
		// The VM has ended in error: the supervisor shuts the link down
		// and reports the VM's error.
		return fmt.Errorf("starting the VM: %w", err)
	}
	return nil
}

// startCancelledLocked ends start op, cancelled by a StopVM or Close
// while it prepared: the VM is stopped (Prepare has left nothing
// half-made). It is called with c.mu held and unlocks it. It returns
// StartVM's error: ErrClosed for a Close, else a *ConflictError saying
// that a stop cancelled the start.
func (c *Machine) startCancelledLocked(op *startOp, prepErr error) error {
	c.setStateLocked(vmhost.StateStopped, "")
	byStop := op.stopped
	c.mu.Unlock()
	c.notify()
	close(op.done)
	e := c.log
	if prepErr != nil {
		e = e.WithError(prepErr)
	}
	if !byStop {
		e.Info("the start was cancelled while preparing the VM: the app is ending")
		return ErrClosed
	}
	msg := fmt.Sprintf("the start of %s was cancelled: it was stopped while being prepared", c.what())
	e.Info(msg)
	return &ConflictError{Action: "start", State: vmhost.StateStopped, Msg: msg, Err: model.ErrStartCancelled}
}

// cancelStart cancels a start that prepares (see Machine) on behalf of a
// StopVM: the VM shows stopping until the start has ended. It returns
// the channel closed then, or nil when no start can be cancelled.
func (c *Machine) cancelStart() <-chan struct{} {
	c.mu.Lock()
	op := c.start
	if c.closed || op == nil || op.stopped || c.state != vmhost.StateStarting {
		c.mu.Unlock()
		return nil
	}
	op.stopped = true
	op.cancel()
	c.setStateLocked(vmhost.StateStopping, "")
	c.mu.Unlock()
	c.log.Info("stop asked while the VM is being prepared: cancelling its start")
	c.notify()
	return op.done
}

// ResetVM runs reset (which deletes what the VM's start made, see
// Controller.Reset) while the VM is stopped or failed, serialised with
// starts and stops; a failed VM is stopped afterwards.
func (c *Machine) ResetVM(ctx context.Context, reset func() error) error {
	if err := c.acquireStopped(ctx, "reset", ": stop it first"); err != nil {
		return err
	}
	defer c.release()
	if err := reset(); err != nil {
		return fmt.Errorf("resetting %s: %w", c.what(), err)
	}
	c.log.Info("reset: the next start makes the VM's disk again from its image")
	c.mu.Lock()
	changed := c.setStateLocked(vmhost.StateStopped, "")
	c.mu.Unlock()
	if changed {
		c.notify()
	}
	return nil
}

// reload reads the configuration again (MachineOptions.Reload), if it can. The
// caller holds op; opts.VMConfig is read under op or mu, and written under
// both.
func (c *Machine) reload() error {
	if c.opts.Reload == nil {
		return nil
	}
	vmCfg, linkCfg, err := c.opts.Reload()
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.opts.VMConfig = vmCfg
	c.setLinkConfig(linkCfg)
	c.configChanged = false
	c.mu.Unlock()
	return nil
}

// defaultFactories sets the factories left nil to the real ones:
// vmhost.New, netlink.New and netlink.NewSocketPair.
func defaultFactories(newVM *func(vmhost.Config, logrus.FieldLogger) (vmhost.VM, error),
	newLink *func(*os.File, netlink.Config) (Link, error), newSocketPair *func() (*os.File, *os.File, error)) {
	if *newVM == nil {
		*newVM = vmhost.New
	}
	if *newLink == nil {
		*newLink = func(host *os.File, cfg netlink.Config) (Link, error) { return netlink.New(host, cfg) }
	}
	if *newSocketPair == nil {
		*newSocketPair = netlink.NewSocketPair
	}
}

// configured reports whether cfg describes a VM: a kernel to boot, or a
// disk to boot with EFI.
func configured(cfg vmhost.Config) bool {
	return cfg.Kernel != "" || cfg.Boot == vmhost.BootEFI
}

// prepare runs MachineOptions.Prepare on cfg, reporting its progress in the
// status (model.VM.Progress) while it lasts. ctx ends when the start is
// cancelled.
func (c *Machine) prepare(ctx context.Context, cfg vmhost.Config) (vmhost.Config, error) {
	last := -1
	progress := func(done, total int64) {
		pct := 0
		if total > 0 {
			pct = int(done * 100 / total)
		}
		if pct == last || pct < 0 || pct > 100 {
			return
		}
		last = pct
		c.mu.Lock()
		c.progress = &model.Progress{Task: "preparing disk", Percent: pct}
		c.mu.Unlock()
		c.notify()
	}
	out, err := c.opts.Prepare(ctx, cfg, progress)
	c.mu.Lock()
	had := c.progress != nil
	c.progress = nil
	c.mu.Unlock()
	if had {
		c.notify()
	}
	if err != nil {
		return cfg, fmt.Errorf("preparing the VM: %w", err)
	}
	return out, nil
}

// sshEvery and sshReadyEvery are the defaults of Machine.sshEvery and
// Machine.sshReadyEvery; sshDialTimeout bounds one check (the connection
// and the server's identification).
const (
	sshEvery       = 2 * time.Second
	sshReadyEvery  = 10 * time.Second
	sshDialTimeout = 2 * time.Second
)

// watchSSH checks, while run r (of start number seq) is on, whether the
// guest's SSH server answers (model.VM.SSH): every sshEvery until it
// does, then every sshReadyEvery (a guest that reboots is waited for
// again). It ends when the run has ended. StartVM has set the state to
// waiting already; what watchSSH sets counts only while no later start
// has begun. Every wait is a fresh c.after (a wait left pending when the
// run ends holds no goroutine, and time.After's timer is collected).
func (c *Machine) watchSSH(r *vmRun, seq uint64) {
	defer c.setSSH(seq, model.SSHUnknown)
	every := c.sshEvery // the wait after the last check that dialed
	next := every       // the wait before the next check
	for {
		select {
		case <-r.done:
			return
		case <-c.after(next):
		}
		c.mu.Lock()
		running := c.run == r && c.state == vmhost.StateRunning
		c.mu.Unlock()
		if !running {
			next = every
			continue
		}
		addr := ""
		if c.opts.SSHAddress != nil {
			addr = c.opts.SSHAddress()
		}
		if addr == "" {
			ip := r.link.Status().Guest.IPv4
			if !ip.IsValid() {
				c.setSSH(seq, model.SSHWaiting)
				next = c.sshEvery
				continue
			}
			addr = net.JoinHostPort(ip.String(), "22")
		}
		ctx, cancel := context.WithTimeout(c.ctx, sshDialTimeout)
		err := c.dialSSH(ctx, addr)
		cancel()
		if err == nil {
			c.setSSH(seq, model.SSHReady)
			every = c.sshReadyEvery
		} else {
			c.setSSH(seq, model.SSHWaiting)
			every = c.sshEvery
		}
		next = every
	}
}

func (c *Machine) dialSSH(ctx context.Context, addr string) error {
	if c.opts.DialSSH != nil {
		return c.opts.DialSSH(ctx, addr)
	}
	return sshAnswers(ctx, addr)
}

// sshAnswers checks that an SSH server answers at addr: it accepts a TCP
// connection and sends its identification ("SSH-2.0-..."). An accepted
// connection alone is not enough: a port forwarder (gvproxy's, for an
// ssh_address) accepts before the guest listens.
func sshAnswers(ctx context.Context, addr string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetReadDeadline(dl)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(conn, buf); err != nil {
		return fmt.Errorf("no SSH server answers at %s: %w", addr, err)
	}
	if string(buf) != "SSH-" {
		return fmt.Errorf("what answers at %s is not an SSH server (it began with %q)", addr, buf)
	}
	return nil
}

// setSSH records the answer of the SSH check of start number seq and
// notifies on a change. The answer of an older start's check (which may
// end after the next start has begun) is dropped.
func (c *Machine) setSSH(seq uint64, s model.SSHState) {
	c.mu.Lock()
	changed := c.sshSeq == seq && c.ssh != s
	if c.sshSeq == seq {
		c.ssh = s
	}
	c.mu.Unlock()
	if changed {
		if s == model.SSHReady {
			c.log.Info("the guest accepts SSH connections")
		}
		c.notify()
	}
}

// build makes the socketpair, the link and the VM of a new run from cfg.
func (c *Machine) build(cfg vmhost.Config) (*vmRun, error) {
	vmEnd, hostEnd, err := c.opts.NewSocketPair()
	if err != nil {
		return nil, fmt.Errorf("creating the VM's network socketpair: %w", err)
	}
	link, err := c.opts.NewLink(hostEnd, c.opts.Link)
	if err != nil {
		vmEnd.Close()
		hostEnd.Close()
		return nil, fmt.Errorf("setting up the network link: %w", err)
	}
	cfg.NIC = vmEnd
	vm, err := c.opts.NewVM(cfg, c.log.WithField("component", "vm"))
	if err != nil {
		vmEnd.Close()
		hostEnd.Close()
		return nil, err
	}
	// VMConfig.StopTimeout bounds a graceful VM stop before the VM is
	// forced off, as in vmhost.
	st := cfg.StopTimeout
	if st == 0 {
		st = vmhost.DefaultStopTimeout
	}
	return &vmRun{vm: vm, link: link, stopTimeout: st, linkDone: make(chan struct{}), done: make(chan struct{}),
		hostEnd: hostEnd}, nil
}

// supervise follows one run: VM events, link updates and a link failure.
// When the VM has ended it shuts the link down and reports the final state.
func (c *Machine) supervise(r *vmRun, sub <-chan netlink.Status, unsub func()) {
	defer close(r.done)
	events := r.vm.Events()
	linkDone := r.linkDone
	closing := c.ctx.Done()
	var grace <-chan time.Time // set while a VM-side link failure awaits the VM
	var linkErr error
loop:
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				break loop
			}
			c.vmEvent(r, ev)

		case _, ok := <-sub:
			if !ok {
				sub = nil
				continue
			}
			c.notify()

		case <-linkDone:
			linkDone = nil
			if c.ctx.Err() != nil {
				// Close ended the link after giving up on the VM.
				break loop
			}
			err := r.linkErr
			if err == nil {
				err = errors.New("the link stopped on its own")
			}
			if !errors.Is(err, netlink.ErrVMSide) {
				c.linkFailed(r, err)
				continue
			}
			// The VM end of the socketpair went away: a VM that is
			// ending closes it. Blame the link only if the VM does not
			// end by itself within the grace.
			if c.vmEnding(r) {
				c.log.WithError(err).Debug("the link ended while the VM ends")
				c.finishStop(r)
				continue
			}
			linkErr = err
			grace = c.after(c.linkGrace)

		case <-grace:
			grace = nil
			if c.vmEnding(r) {
				c.log.WithError(linkErr).Debug("the link ended while the VM ends")
				c.finishStop(r)
				continue
			}
			c.linkFailed(r, linkErr)

		case <-closing:
			// Close has waited for the VM as long as it will.
			c.log.Error("the VM did not end in time: leaving it")
			break loop
		}
	}

	// The VM has ended (or is abandoned): shut the link down.
	r.linkCancel()
	<-r.linkDone
	unsub()
	r.hostEnd.Close()
	// The VM end belongs to the VM, which closes it when it has ended: a
	// VM that failed to stop may still use it.
	if r.linkErr != nil {
		c.log.WithError(r.linkErr).Debug("link ended with an error")
	}

	final, vmErr := r.vm.State()
	msg := ""
	switch {
	case final == vmhost.StateError:
		msg = "the VM failed"
		if vmErr != nil {
			msg = vmErr.Error()
		}
	case final != vmhost.StateStopped:
		final, msg = vmhost.StateError, fmt.Sprintf("the VM did not stop (it is %s)", final)
	}
	c.mu.Lock()
	if r.failure != "" {
		if msg != "" {
			msg = r.failure + "; then " + msg
		} else {
			msg = r.failure
		}
		final = vmhost.StateError
	}
	if c.run == r {
		c.lastLink = r.link.Status()
		c.setStateLocked(final, msg)
	}
	c.mu.Unlock()
	c.notify()
}

// vmEnding reports whether r's VM has ended or is stopping (by itself, by
// StopVM or by Close).
func (c *Machine) vmEnding(r *vmRun) bool {
	select {
	case <-r.vm.Done():
		return true
	default:
	}
	// Not stopped or error: a VM not started yet reports stopped too.
	if st, _ := r.vm.State(); st == vmhost.StateStopping {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.run == r && c.state == vmhost.StateStopping
}

// finishStop makes sure an ending VM that lost its link ends: unless it
// has ended already, it is stopped (bounded by the stop timeout, then
// forced). No failure is recorded.
func (c *Machine) finishStop(r *vmRun) {
	select {
	case <-r.vm.Done():
		return
	default:
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		if err := r.vm.Stop(c.ctx, r.stopTimeout); err != nil {
			c.log.WithError(err).Warn("stopping the VM after its link ended")
		}
	}()
}

// linkFailed records that the link failed while the VM runs and stops the
// VM: the run ends in error.
func (c *Machine) linkFailed(r *vmRun, err error) {
	msg := fmt.Sprintf("network link failed: %v", err)
	c.log.WithError(err).Error("network link failed: stopping the VM")
	c.mu.Lock()
	if r.failure == "" {
		r.failure = msg
	}
	changed := false
	if c.run == r && (c.state == vmhost.StateStarting || c.state == vmhost.StateRunning) {
		changed = c.setStateLocked(vmhost.StateStopping, "")
	}
	c.mu.Unlock()
	if changed {
		c.notify()
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		if err := r.vm.Stop(c.ctx, r.stopTimeout); err != nil {
			c.log.WithError(err).Warn("stopping the VM after the link failure")
		}
	}()
}

// vmEvent applies a VM state change, or a note about the current state
// (what a stopping VM waits for). Final states are applied by supervise
// once the link is down.
func (c *Machine) vmEvent(r *vmRun, ev vmhost.Event) {
	c.mu.Lock()
	changed := false
	if c.run == r && ev.Note != "" {
		if ev.State == c.state && ev.Note != c.note {
			c.note = ev.Note
			c.log.WithField("note", ev.Note).Info("VM status note")
			changed = true
		}
	} else if c.run == r {
		switch ev.State {
		case vmhost.StateRunning:
			if c.state == vmhost.StateStarting {
				changed = c.setStateLocked(vmhost.StateRunning, "")
			}
		case vmhost.StateStopping:
			if c.state == vmhost.StateStarting || c.state == vmhost.StateRunning {
				changed = c.setStateLocked(vmhost.StateStopping, "")
			}
		}
	}
	c.mu.Unlock()
	if changed {
		c.notify()
	}
}

// StopVM asks the guest to power off, forces it off after the stop
// timeout, shuts the link down and returns when all of that is done or ctx
// ends (the stop goes on).
func (c *Machine) StopVM(ctx context.Context) error {
	if done := c.cancelStart(); done != nil {
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("stopping the VM: %w", ctx.Err())
		}
	}
	if err := c.acquire(ctx); err != nil {
		return err
	}
	defer c.release()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	if !model.Allowed(&model.VM{State: c.state}, 0).Stop {
		st := c.state
		c.mu.Unlock()
		return &ConflictError{Action: "stop", State: st, Msg: fmt.Sprintf("cannot stop %s: it is %s", c.what(), st)}
	}
	r := c.run
	c.setStateLocked(vmhost.StateStopping, "")
	c.mu.Unlock()
	c.notify()
	return c.stopRun(ctx, r, r.stopTimeout)
}

// stopRun stops r's VM, forcing it off after timeout, and waits for the
// run to end.
func (c *Machine) stopRun(ctx context.Context, r *vmRun, timeout time.Duration) error {
	if err := r.vm.Stop(ctx, timeout); err != nil {
		return fmt.Errorf("stopping the VM: %w", err)
	}
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stopping the VM: %w", ctx.Err())
	}
}

// Reconnect drops the daemon connection and redials now.
func (c *Machine) Reconnect() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	st := c.state
	var link Link
	if c.run != nil {
		link = c.run.link
	}
	c.mu.Unlock()
	ls := netlink.StateStopped
	if link != nil {
		ls = link.Status().State
	}
	if link == nil || !model.Allowed(&model.VM{State: st}, ls).Reconnect {
		msg := fmt.Sprintf("cannot reconnect %s: it is %s and has no link; start it first", c.what(), st)
		if st == vmhost.StateStarting || st == vmhost.StateRunning {
			msg = fmt.Sprintf("cannot reconnect %s: the link is %s", c.what(), ls)
		}
		return &ConflictError{Action: "reconnect", State: st, Msg: msg}
	}
	c.log.Info("reconnecting the network link")
	link.Reconnect()
	return nil
}

// Status is one snapshot of the VM and its link. The guest's addresses
// (netlink.Guest but its MAC) are left out while the VM is stopped or
// failed, and while a start prepares: the last run's are stale then.
func (c *Machine) Status() model.Status {
	c.mu.Lock()
	vm := &model.VM{State: c.state, Since: c.since, Error: c.errMsg, Note: c.note, NotConfigured: c.noVM,
		ConfigChanged: c.configChanged, ConsoleLog: c.opts.VMConfig.ConsoleLog, SSH: model.SSHUnknown}
	if c.state == vmhost.StateStarting || c.state == vmhost.StateRunning {
		vm.SSH = c.ssh
	}
	if c.progress != nil {
		p := *c.progress
		vm.Progress = &p
	}
	if c.noVM {
		vm.Note = c.notConfiguredMsg()
	}
	var link Link
	if c.run != nil && c.state != vmhost.StateStopped && c.state != vmhost.StateError {
		link = c.run.link
	}
	last := c.lastLink
	c.mu.Unlock()
	if link != nil {
		last = link.Status()
	} else {
		// No run is on (stopped, failed, or a start that prepares): the
		// last run's guest addresses are stale.
		last.Guest = netlink.Guest{MAC: last.Guest.MAC}
	}
	return model.Status{VM: vm, Link: last, Actions: model.Allowed(vm, last.State)}
}

// Subscribe delivers a status after every change. Updates are coalesced:
// a slow reader gets the latest status, never a backlog, and the
// controller never waits for it. The channel is closed by cancel (which is
// idempotent) and by Close.
func (c *Machine) Subscribe() (<-chan model.Status, func()) { return c.subs.Subscribe() }

// notify sends the current status to every subscriber, replacing a status
// the subscriber has not read yet. It must not be called with c.mu held.
func (c *Machine) notify() {
	c.subs.PublishFunc(c.Status)
	if c.opts.OnChange != nil {
		c.opts.OnChange()
	}
}

// what is how messages name the VM.
func (c *Machine) what() string {
	if c.opts.Name == "" {
		return "the VM"
	}
	return c.opts.Name
}

// setConfigChanged records whether the configuration file has changed
// the VM's settings since the VM was started (the change applies at the
// next start).
func (c *Machine) setConfigChanged(changed bool) {
	c.mu.Lock()
	was := c.configChanged
	c.configChanged = changed
	c.mu.Unlock()
	if was != changed {
		c.notify()
	}
}

// setConfig replaces the configuration of the next start (a reload of a
// VM that does not run) and clears ConfigChanged.
func (c *Machine) setConfig(vmCfg vmhost.Config, linkCfg netlink.Config) {
	c.mu.Lock()
	c.opts.VMConfig = vmCfg
	c.setLinkConfig(linkCfg)
	was := c.configChanged
	c.configChanged = false
	c.mu.Unlock()
	if was {
		c.notify()
	}
}

// Close stops the VM gracefully (bounded by the stop timeout, then forced),
// shuts the link down, waits for every goroutine and closes all
// subscriptions. Later actions return ErrClosed. It is idempotent: once
// one Close or CloseWithin has begun, the others wait for it and return
// its result.
func (c *Machine) Close() error { return c.close(0) }

// CloseWithin is Close for when the system ends the app (logout, restart,
// shutdown), which must not be held up for the full stop timeout: the
// guest gets at most grace to power off (never more than the run's stop
// timeout) before it is forced off. A stop already under way (StopVM, the
// menu's Quit) is asked again with that bound. grace <= 0 means Close.
func (c *Machine) CloseWithin(grace time.Duration) error { return c.close(grace) }

// hastenStop asks a VM that is stopping to be off within grace (forced off
// then), and waits for that or the grace and closeGrace to pass.
func (c *Machine) hastenStop(grace time.Duration) {
	c.mu.Lock()
	r := c.run
	// (A start cancelled while it prepares is stopping too, but has no
	// run yet: it ends at once anyway.)
	stopping := r != nil && c.state == vmhost.StateStopping
	c.mu.Unlock()
	if !stopping {
		return
	}
	timeout := stopTimeoutWithin(r, grace)
	c.log.WithField("timeout", timeout).Info("the app is ending: stopping the VM within a shorter time")
	ctx, cancel := context.WithTimeout(context.Background(), timeout+c.closeGrace)
	defer cancel()
	if err := r.vm.Stop(ctx, timeout); err != nil {
		c.log.WithError(err).Warn("stopping the VM within the shorter time failed")
	}
}

// stopTimeoutWithin is r's stop timeout bounded by grace (0: unbounded).
func stopTimeoutWithin(r *vmRun, grace time.Duration) time.Duration {
	if grace > 0 && grace < r.stopTimeout {
		return grace
	}
	return r.stopTimeout
}

func (c *Machine) close(grace time.Duration) error {
	select {
	case <-c.closing:
		// A Close is under way (the menu's Quit, a signal): a shorter
		// bound still applies to the stop it waits for.
		if grace > 0 {
			c.hastenStop(grace)
		}
	default:
	}
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		hasten := grace > 0 && c.run != nil && c.state == vmhost.StateStopping
		if c.start != nil {
			// A start that prepares ends at once (with the VM stopped)
			// instead of holding Close up for minutes.
			c.start.cancel()
		}
		c.mu.Unlock()
		close(c.closing)
		if hasten {
			// A StopVM holds op until its stop, bounded by the full stop
			// timeout, has ended: ask for the shorter one first.
			c.hastenStop(grace)
		}
		c.op <- struct{}{} // wait for a running StartVM or StopVM
		defer c.release()

		c.mu.Lock()
		r := c.run
		active := r != nil && c.state != vmhost.StateStopped && c.state != vmhost.StateError
		changed := active && c.setStateLocked(vmhost.StateStopping, "")
		c.mu.Unlock()
		if changed {
			c.notify()
		}
		if active {
			timeout := stopTimeoutWithin(r, grace)
			ctx, cancel := context.WithTimeout(context.Background(), timeout+c.closeGrace)
			if err := c.stopRun(ctx, r, timeout); err != nil {
				c.closeErr = err
				c.log.WithError(err).Error("the VM did not stop cleanly")
			}
			cancel()
		}
		c.cancel()
		c.wg.Wait()

		c.subs.Close()
	})
	return c.closeErr
}
