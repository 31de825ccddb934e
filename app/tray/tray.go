package tray

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"fyne.io/systray"
	"github.com/sirupsen/logrus"

	"github.com/vmnetbar/vmnetbar/app/control"
	"github.com/vmnetbar/vmnetbar/app/loginitem"
	"github.com/vmnetbar/vmnetbar/assets"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

// Controller is what the tray drives; the app's controller
// (a control.VMBackend) satisfies it.
type Controller interface {
	Status() control.Status
	// Subscribe returns coalesced status updates and a cancel function;
	// the channel is closed after cancel or when the controller shuts down.
	Subscribe() (<-chan control.Status, func())
	Reconnect() error
	StartVM(ctx context.Context) error
	StopVM(ctx context.Context) error
}

var _ Controller = control.VMBackend(nil)

// LoginItem installs or removes the app's launch-at-login entry.
type LoginItem interface {
	Enable() error
	Disable() error
	Enabled() (bool, error)
}

// Options configure Run. The zero value of each field is a sensible
// default.
type Options struct {
	// ConsoleLog is the file "Open console log" opens; "" disables the item.
	ConsoleLog string
	// ConfigFile is the file "Open config" opens; "" disables the item.
	ConfigFile string
	// LoginItem backs the "Launch at login" checkbox; nil hides it.
	LoginItem LoginItem
	// Logger receives the tray's log; nil discards it.
	Logger logrus.FieldLogger
	// Opener opens a file in the user's default application; nil runs
	// open (macOS) or xdg-open (Linux).
	Opener func(path string) error
	// LogoutStopTimeout bounds the VM's graceful stop when the system ends
	// the app (logout, restart, shutdown), with a controller that is a
	// GraceCloser; 0 means DefaultLogoutStopTimeout. Quit keeps the VM's
	// full stop timeout.
	LogoutStopTimeout time.Duration
}

// DefaultLogoutStopTimeout is Options.LogoutStopTimeout's default, as the
// configuration's logout_stop_timeout.
const DefaultLogoutStopTimeout = 5 * time.Second

// Closer is an optional Controller feature, found by type assertion: Close
// stops the VM for good (gracefully up to the VM's stop timeout, then
// forced off) and returns when it has ended. The app's controller has it.
// The tray calls it when the system ends the app, just before the process
// exits.
type Closer interface {
	Close() error
}

// GraceCloser is an optional Controller feature, found by type assertion
// and preferred to Closer: CloseWithin is Close with the VM's graceful
// stop bounded by grace (never beyond its stop timeout), also for a stop
// already under way, so that a logout is not held up for the full stop
// timeout. The app's controller has it.
type GraceCloser interface {
	CloseWithin(grace time.Duration) error
}

// ErrUnavailable is wrapped by Run's error when the system has no tray to
// show the icon in.
var ErrUnavailable = errors.New("tray unavailable")

// refreshInterval is how often the menu is rebuilt without a status
// change, so durations ("running 2h 14m") stay current.
const refreshInterval = 2 * time.Second

// clickBuffer is the capacity of each item's click channel. systray sends
// a click without blocking and drops it unless the channel can take it at
// that instant. An unbuffered channel takes it only while a receiver is
// parked on it, and a receiver that has just taken a click is not parked
// again until the scheduler runs it; a buffer takes a burst meanwhile.
const clickBuffer = 16

// clickQueue bounds the clicks waiting for the dispatcher. The
// dispatcher never blocks, so the queue only absorbs bursts.
const clickQueue = 64

// inUse guards the process-global systray: Run works once per process.
var inUse atomic.Bool

// Run shows the tray and runs on the calling goroutine, which must be the
// main goroutine (macOS runs its event loop there), until Quit is clicked or
// ctx ends.
//
// After Quit, Run stops the VM gracefully (StopVM), waits while it stops and
// returns nil, or the error StopVM returned. When ctx ends first, Run does
// the same (the menu says "Stopping VM and quitting…", so the icon never
// stays on screen without its loop) and returns ctx.Err(), or StopVM's
// error. Without a tray, Run returns at once with an error wrapping
// ErrUnavailable that says why (Linux: no D-Bus session bus, or no
// StatusNotifierWatcher on it).
func Run(ctx context.Context, c Controller, opts Options) error {
	if c == nil {
		return errors.New("tray: no controller given")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := probe(ctx); err != nil {
		return err
	}
	if !inUse.CompareAndSwap(false, true) {
		return errors.New("tray: Run was already called in this process; the menu-bar icon can be shown only once")
	}
	t := newTray(ctx, c, opts)
	t.sh = systrayShell{}
	systray.Run(t.onReady, t.onExit)
	// macOS does not call onExit after Quit: all cleanup happens here.
	close(t.loopEnded)
	<-t.finished
	return t.result
}

// tray is one running tray. Goroutines and their owners:
//
//	supervisor      started by onReady; waits for Quit or ctx (which starts
//	                the quit worker too), stops the others, then calls
//	                systray.Quit (Run waits for it)
//	renderer        applies models; stopped by closing done
//	click forwarder one per item; stopped by closing done
//	dispatcher      turns clicks into work; stopped by closing done
//	action workers  one per running action; Start and Stop end with ctx,
//	                the others with opCtx; awaited by the supervisor (ops)
//	quit worker     stops the VM after Quit or the end of ctx; awaited by
//	                the supervisor
type tray struct {
	ctx  context.Context
	c    Controller
	opts Options
	log  logrus.FieldLogger
	open func(path string, text bool) error // text: open in a text editor
	now  func() time.Time

	opCtx    context.Context
	opCancel context.CancelFunc

	exitTimeout time.Duration // bounds systemExit without a Closer
	sh          shell         // the icon and menu: set before onReady

	done      chan struct{}  // closed: loops end
	loopEnded chan struct{}  // closed when systray.Run has returned
	leaving   atomic.Bool    // the supervisor is ending the tray
	loops     sync.WaitGroup // renderer, forwarders, dispatcher, quit worker
	ops       sync.WaitGroup // action workers
	finished  chan struct{}  // closed by the supervisor after systray.Quit
	result    error          // set by the supervisor before finished

	clicks     chan ItemID
	poke       chan struct{} // capacity 1: the UI state changed
	quitResult chan error    // capacity 1: the quit worker's result

	sub       <-chan control.Status
	cancelSub func()

	mu sync.Mutex
	ui UIState // guarded by mu

	items [numItems]menuItem
	last  Model // the model on screen; renderer only (onReady before it)
}

func newTray(ctx context.Context, c Controller, opts Options) *tray {
	log := opts.Logger
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = l
	}
	t := &tray{
		ctx:         ctx,
		c:           c,
		opts:        opts,
		log:         log.WithField("component", "tray"),
		now:         time.Now,
		done:        make(chan struct{}),
		loopEnded:   make(chan struct{}),
		finished:    make(chan struct{}),
		clicks:      make(chan ItemID, clickQueue),
		poke:        make(chan struct{}, 1),
		quitResult:  make(chan error, 1),
		exitTimeout: systemExitStopTimeout,
	}
	t.open = func(path string, text bool) error { return openFile(t.opCtx, path, text) }
	if opts.Opener != nil {
		t.open = func(path string, _ bool) error { return opts.Opener(path) }
	}
	t.opCtx, t.opCancel = context.WithCancel(ctx)
	t.ui = UIState{
		HasConsoleLog: opts.ConsoleLog != "",
		HasConfig:     opts.ConfigFile != "",
		HasLoginItem:  opts.LoginItem != nil,
	}
	return t
}

// onReady builds the menu and starts the goroutines. It returns at once:
// on Linux the menu is not served before it does.
//
// Every item's click channel is made, and its forwarder started, before
// the item is added, and every item is added before the icon is shown: on
// macOS the status item cannot be clicked before it has an icon, and
// systray drops a click that its item's channel cannot take at once.
func (t *tray) onReady() {
	t.sub, t.cancelSub = t.c.Subscribe()
	m := BuildModel(t.c.Status(), t.uiState(), t.now())
	var clicks [numItems]chan struct{}
	for id := range clicks {
		clicks[id] = make(chan struct{}, clickBuffer)
		t.loops.Add(1)
		go t.forwardClicks(ItemID(id), clicks[id])
	}
	for id := ItemID(0); id < numItems; id++ {
		if separatorBefore[id] {
			t.sh.AddSeparator()
		}
		it := m.Items[id]
		mi := t.sh.AddItem(it.Label, id == ItemLogin, it.Checked, clicks[id])
		if !it.Enabled {
			mi.Disable()
		}
		if !it.Visible {
			mi.Hide()
		}
		t.items[id] = mi
	}
	t.last = m
	t.sh.SetAppTitle()
	t.sh.SetTooltip(m.Tooltip)
	t.setIcon(m.Icon) // last: from now on the menu can be opened (macOS)

	t.loops.Add(2)
	go t.dispatch()
	go t.render()
	if t.opts.LoginItem != nil {
		t.startOp(func() { t.readLogin() })
	}
	go t.supervise()
}

// supervise waits for Quit or the end of ctx, stops every other goroutine
// and then ends the systray loop.
func (t *tray) supervise() {
	defer close(t.finished)
	loopRuns := true
	select {
	case <-t.ctx.Done():
		// As after Quit: the icon stays, saying what happens, until the
		// VM has stopped. Removed first, it would leave a dead icon on
		// macOS while the caller stops the VM.
		t.log.Info("the app is shutting down: stopping the VM before removing the tray")
		t.beginQuit()
		select {
		case err := <-t.quitResult:
			t.result = err
		case <-t.loopEnded:
			loopRuns = false
		}
		if t.result == nil {
			t.result = t.ctx.Err()
		}
	case err := <-t.quitResult:
		t.result = err
	case <-t.loopEnded:
		// Only Quit ends the loop; should the system end it anyway,
		// clean up and let Run return.
		loopRuns = false
	}
	t.leaving.Store(true)
	t.opCancel()
	close(t.done)
	t.loops.Wait()
	t.ops.Wait()
	t.cancelSub()
	// The renderer has stopped: no setter can wait for the main thread
	// while it leaves its loop.
	if loopRuns {
		t.sh.Quit()
	}
}

// systemExitStopTimeout bounds systemExit for a controller without Close.
const systemExitStopTimeout = 20 * time.Second

// onExit runs on the main thread when the loop ends. After our own Quit it
// has nothing to do. On macOS it also runs when the system terminates the
// app (logout, shutdown, Quit from the Dock or Activity Monitor), and the
// process exits as soon as it returns: the VM is stopped here.
func (t *tray) onExit() {
	if t.leaving.Load() {
		return
	}
	t.systemExit()
}

// systemExit stops the VM before the process exits, on the main thread:
// it calls no systray setter and waits for nothing that may call one.
//
// With a GraceCloser, CloseWithin stops the VM (also one already
// stopping), forcing it off after Options.LogoutStopTimeout, and waits for
// it to end: the guest is never cut off by the process exiting mid-stop,
// and the logout is not held up for the VM's full stop timeout. With a
// Closer, Close does the same with the full stop timeout. Without either,
// StopVM and the wait while the VM stops are bounded by exitTimeout.
func (t *tray) systemExit() {
	if gc, ok := t.c.(GraceCloser); ok {
		grace := t.opts.LogoutStopTimeout
		if grace <= 0 {
			grace = DefaultLogoutStopTimeout
		}
		if vmActive(t.c.Status()) {
			t.log.WithField("timeout", grace).Warn("the system is ending the app: stopping the VM, forced off after the timeout")
		}
		if err := gc.CloseWithin(grace); err != nil {
			t.log.WithError(err).Error("stopping the VM as the system ends the app failed")
		}
		return
	}
	if cl, ok := t.c.(Closer); ok {
		if vmActive(t.c.Status()) {
			t.log.Warn("the system is ending the app: stopping the VM")
		}
		if err := cl.Close(); err != nil {
			t.log.WithError(err).Error("stopping the VM as the system ends the app failed")
		}
		return
	}
	if !vmActive(t.c.Status()) {
		return
	}
	t.log.Warn("the system is ending the app: stopping the VM")
	ctx, cancel := context.WithTimeout(context.Background(), t.exitTimeout)
	defer cancel()
	if err := t.stopVM(ctx); err != nil {
		t.log.WithError(err).Error("stopping the VM as the system ends the app failed")
	}
}

// forwardClicks waits on one item's click channel. systray sends clicks
// without blocking, so this goroutine does nothing else: it hands each
// click to the dispatcher's queue and waits again.
func (t *tray) forwardClicks(id ItemID, ch <-chan struct{}) {
	defer t.loops.Done()
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
			select {
			case t.clicks <- id:
			default:
				t.log.WithField("item", id).Warn("click dropped: too many clicks waiting")
			}
		case <-t.done:
			return
		}
	}
}

// dispatch turns clicks into actions. Anything that may take time runs
// in a worker.
func (t *tray) dispatch() {
	defer t.loops.Done()
	for {
		select {
		case id := <-t.clicks:
			t.handle(id)
		case <-t.done:
			return
		}
	}
}

func (t *tray) handle(id ItemID) {
	st := t.c.Status()
	t.mu.Lock()
	if t.ui.Quitting {
		t.mu.Unlock()
		return
	}
	m := BuildModel(st, t.ui, t.now())
	if !m.Items[id].Enabled || !m.Items[id].Visible {
		t.mu.Unlock()
		t.log.WithField("item", m.Items[id].Label).Debug("click on a disabled item ignored")
		return
	}
	switch id {
	case ItemStart, ItemStop:
		t.ui.VMBusy = true
		t.ui.Problem = ""
		start := id == ItemStart
		t.startOp(func() { t.vmAction(start) })
	case ItemReconnect:
		t.ui.ReconnectBusy = true
		t.ui.Problem = ""
		t.startOp(t.reconnect)
	case ItemConsole:
		t.startOp(func() { t.openFile("console log", t.opts.ConsoleLog, false) })
	case ItemConfig:
		t.startOp(func() { t.openFile("config", t.opts.ConfigFile, true) })
	case ItemLogin:
		enable := !t.ui.LoginEnabled
		t.ui.LoginKnown = false // disables the checkbox until the change is done
		t.startOp(func() { t.toggleLogin(enable) })
	case ItemQuit:
		t.beginQuitLocked()
	}
	t.mu.Unlock()
	t.changed()
}

// beginQuit starts the quit worker unless Quit is already under way.
func (t *tray) beginQuit() {
	t.mu.Lock()
	t.beginQuitLocked()
	t.mu.Unlock()
	t.changed()
}

func (t *tray) beginQuitLocked() {
	if t.ui.Quitting {
		return
	}
	t.ui.Quitting = true
	t.loops.Add(1)
	go t.quit()
}

// startOp runs f in an action worker.
func (t *tray) startOp(f func()) {
	t.ops.Add(1)
	go func() {
		defer t.ops.Done()
		f()
	}()
}

func (t *tray) vmAction(start bool) {
	var err error
	what := "Stop VM"
	if start {
		what = "Start VM"
		t.log.Info("starting the VM (menu)")
		err = t.c.StartVM(t.ctx)
	} else {
		t.log.Info("stopping the VM (menu)")
		err = t.c.StopVM(t.ctx)
	}
	t.mu.Lock()
	t.ui.VMBusy = false
	if err != nil && t.ctx.Err() == nil {
		t.ui.Problem = what + " failed: " + err.Error()
		t.log.WithError(err).Warn(what + " failed")
	}
	t.mu.Unlock()
	t.changed()
}

func (t *tray) reconnect() {
	t.log.Info("reconnecting the link (menu)")
	err := t.c.Reconnect()
	t.mu.Lock()
	t.ui.ReconnectBusy = false
	if err != nil {
		t.ui.Problem = "Reconnect failed: " + err.Error()
		t.log.WithError(err).Warn("reconnect failed")
	}
	t.mu.Unlock()
	t.changed()
}

func (t *tray) openFile(what, path string, text bool) {
	err := t.open(path, text)
	if err == nil || t.opCtx.Err() != nil {
		return
	}
	t.log.WithError(err).Warnf("opening the %s failed", what)
	t.mu.Lock()
	t.ui.Problem = fmt.Sprintf("Opening the %s failed: %v", what, err)
	t.mu.Unlock()
	t.changed()
}

// readLogin reads whether the login item is installed.
func (t *tray) readLogin() {
	on, err := t.opts.LoginItem.Enabled()
	t.mu.Lock()
	if err != nil {
		t.ui.LoginKnown = false
		t.ui.Problem = "Reading the login item failed: " + err.Error()
		t.log.WithError(err).Warn("reading the login item failed")
	} else {
		t.ui.LoginKnown, t.ui.LoginEnabled = true, on
	}
	t.mu.Unlock()
	t.changed()
}

// toggleLogin turns launch at login on or off. Before turning it on it
// checks where the program is (when the LoginItem is a LocationChecker),
// as `vmnetbar login-item on` does, and says what it found in the menu.
func (t *tray) toggleLogin(enable bool) {
	var where *loginitem.LocationProblem
	if lc, ok := t.opts.LoginItem.(LocationChecker); ok && enable {
		where = lc.CheckLocation()
	}
	proceed, note := loginPlan(enable, where)
	if where != nil {
		log := t.log.WithError(where)
		if proceed {
			log.Warn("launch at login turned on, but it may not work")
		} else {
			log.Warn("launch at login not turned on")
		}
	}
	var err error
	switch {
	case !proceed:
	case enable:
		err = t.opts.LoginItem.Enable()
	default:
		err = t.opts.LoginItem.Disable()
	}
	if err != nil {
		t.log.WithError(err).Warn("changing the login item failed")
		note = "Launch at login: " + err.Error()
	}
	if note != "" {
		t.mu.Lock()
		t.ui.Problem = note
		t.mu.Unlock()
	}
	t.readLogin()
}

// quit stops the VM gracefully and reports the result to the supervisor.
func (t *tray) quit() {
	defer t.loops.Done()
	t.log.Info("quit: stopping the VM")
	// A Start or Stop in progress finishes first (when ctx has ended, at
	// once); other actions (a file opener that has not returned) are
	// cancelled.
	t.opCancel()
	t.ops.Wait()
	// The stop goes on when ctx ends: the tray leaves once the VM has
	// stopped (the controller forces it off at its stop timeout). A
	// controller that can close does so: from now on it refuses new
	// actions (a start from the command line cannot boot the VM again
	// while the app quits), and a logout meanwhile still bounds the stop.
	var err error
	if cl, ok := t.c.(Closer); ok {
		if e := cl.Close(); e != nil {
			err = fmt.Errorf("stopping the VM before quitting: %w", e)
			t.log.WithError(e).Warn("quit: stopping the VM failed")
		}
	} else if e := t.stopVM(context.WithoutCancel(t.ctx)); e != nil {
		err = fmt.Errorf("stopping the VM before quitting: %w", e)
		t.log.WithError(e).Warn("quit: stopping the VM failed")
	}
	t.quitResult <- err
}

// stopVM stops the VM if it runs and waits while it is stopping (a stop
// begun elsewhere too), until ctx ends.
func (t *tray) stopVM(ctx context.Context) error {
	sub, cancel := t.c.Subscribe()
	defer cancel()
	if vmRuns(t.c.Status()) {
		if err := t.c.StopVM(ctx); err != nil {
			// Also when the VM was stopped or began stopping meanwhile.
			if st := t.c.Status(); st.VM == nil ||
				(st.VM.State != vmhost.StateStopping && st.VM.State != vmhost.StateStopped) {
				return err
			}
		}
	}
	for {
		st := t.c.Status()
		if !vmActive(st) {
			return nil
		}
		select {
		case _, ok := <-sub:
			if !ok {
				if st := t.c.Status(); vmActive(st) {
					return fmt.Errorf("the controller shut down while the VM was %s", st.VM.State)
				}
				return nil
			}
		case <-ctx.Done():
			return fmt.Errorf("the VM is still %s: %w", st.VM.State, ctx.Err())
		}
	}
}

// vmRuns reports whether st has a VM that StopVM can stop.
func vmRuns(st control.Status) bool {
	return st.VM != nil && (st.VM.State == vmhost.StateStarting || st.VM.State == vmhost.StateRunning)
}

// vmActive reports whether st has a VM that has not ended: one StopVM can
// stop, or one stopping.
func vmActive(st control.Status) bool {
	return vmRuns(st) || (st.VM != nil && st.VM.State == vmhost.StateStopping)
}

// changed wakes the renderer after a UI state change.
func (t *tray) changed() {
	select {
	case t.poke <- struct{}{}:
	default:
	}
}

func (t *tray) uiState() UIState {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ui
}

// render applies a new model on every status update, UI change and tick.
// Bursts of updates are coalesced: the controller's channel keeps only the
// latest status. Ticks refresh durations and traffic counters, which change
// without an update. Only what differs from the last model is sent.
func (t *tray) render() {
	defer t.loops.Done()
	tick := time.NewTicker(refreshInterval)
	defer tick.Stop()
	st := t.c.Status()
	sub := t.sub
	for {
		select {
		case s, ok := <-sub:
			if !ok {
				// The controller is shutting down: keep showing its
				// status, refreshed on ticks.
				sub = nil
				continue
			}
			st = s
		case <-tick.C:
			// Traffic counters change without an update: take a fresh
			// snapshot (also the only source once the subscription
			// has ended).
			st = t.c.Status()
		case <-t.poke:
		case <-t.done:
			return
		}
		t.apply(BuildModel(st, t.uiState(), t.now()))
	}
}

// apply changes what differs between the model on screen and m.
func (t *tray) apply(m Model) {
	if m.Icon != t.last.Icon {
		t.setIcon(m.Icon)
	}
	if m.Tooltip != t.last.Tooltip {
		t.sh.SetTooltip(m.Tooltip)
	}
	for id, it := range m.Items {
		old, mi := t.last.Items[id], t.items[id]
		if it.Label != old.Label {
			mi.SetTitle(it.Label)
		}
		if it.Enabled != old.Enabled {
			if it.Enabled {
				mi.Enable()
			} else {
				mi.Disable()
			}
		}
		if it.Checked != old.Checked {
			if it.Checked {
				mi.Check()
			} else {
				mi.Uncheck()
			}
		}
		if it.Visible != old.Visible {
			if it.Visible {
				mi.Show()
			} else {
				mi.Hide()
			}
		}
	}
	t.last = m
}

func (t *tray) setIcon(i assets.Icon) {
	imgs, err := assets.Tray(i)
	if err != nil {
		t.log.WithError(err).Error("tray icon missing")
		return
	}
	// macOS shows the template (systray shows it at 16 pt: Template2x is
	// the 32 px image drawn for that size); Linux shows the coloured icon.
	t.sh.SetIcon(imgs.Template2x, imgs.Regular)
}

// openFile opens path with the system's opener; text asks for a text
// editor (a file type may have no default application).
func openFile(ctx context.Context, path string, text bool) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("cannot open %s: %w", path, err)
	}
	args := openCommand(path, text)
	if len(args) == 0 {
		return fmt.Errorf("cannot open %s: no file opener on this system", path)
	}
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, firstLine(out))
	}
	return nil
}

func firstLine(b []byte) string {
	for i, c := range b {
		if c == '\n' {
			return string(b[:i])
		}
	}
	return string(b)
}
