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

	"github.com/vmnetbar/vmnetbar/app/loginitem"
	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/assets"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

// Controller is what the tray drives: every VM of the app, by name, and
// the actions on all of them. The app's controller satisfies it.
type Controller interface {
	// Status() model.Overview, Subscribe() (coalesced updates; the
	// channel is closed after cancel or when the controller shuts down),
	// Start, Stop and Reconnect of one VM by name.
	model.Machines
	// StartAll starts every VM whose Actions.Start is true, in parallel.
	StartAll(ctx context.Context) error
	// StopAll stops every VM whose Actions.Stop is true, in parallel.
	StopAll(ctx context.Context) error
	// Reload reads the configuration file again: VMs are added, removed
	// or changed. An error means the file has errors and nothing changed.
	Reload() error
}

// Sender shows a desktop notification (notify.Sender is one).
type Sender interface {
	Send(title, body string) error
}

// LoginItem installs or removes the app's launch-at-login entry.
type LoginItem interface {
	Enable() error
	Disable() error
	Enabled() (bool, error)
}

// Options configure Run. The zero value of each field is a sensible
// default.
type Options struct {
	// ConsoleLog is the file the one-VM menu's "Open console log" opens
	// when the VM's status names none (model.VM.ConsoleLog); "" and no
	// file in the status disables the item.
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
	// Notifier shows a notification when Reload config fails (beside the
	// menu's "Config error" line and the log), once per silent spell of a
	// VM's link (from when the link goes silent until it is ok again or
	// the VM stops), once per boot of a VM when its SSH server accepts
	// ("dev is ready", with the SSH command), the text a copy could not
	// put on the clipboard, and why Open Terminal failed; nil: none.
	Notifier Sender
	// Clipboard receives what the menu copies (the guest's address, its
	// SSH command, the daemon's restart command); nil: the platform's
	// (pbcopy on macOS; wl-copy, xclip or xsel on Linux). When it fails,
	// the text is shown in a notification (else in the menu's problem
	// line) to be copied by hand.
	Clipboard Clipboard
	// Terminal opens the terminal window of "Open Terminal", running the
	// VM's SSH command; nil: the platform's (Terminal.app through
	// osascript on macOS; on Linux the first of x-terminal-emulator,
	// gnome-terminal, konsole, xfce4-terminal and xterm on PATH). When it
	// fails (no terminal installed, say), a notification (else the
	// menu's problem line) says why, with the command to run by hand.
	Terminal Terminal
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
// stops every VM for good, in parallel (gracefully up to each VM's stop
// timeout, then forced off) and returns when they have ended. The app's controller has it.
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

// startupReassert is how many of the first refreshes set the icon and
// tooltip again (see render).
const startupReassert = 3

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
// After Quit, Run stops every VM gracefully (the controller's Close, or
// StopAll), waits while they stop and returns nil, or the error the stop
// returned. When ctx ends first, Run does the same (the menu says
// "Stopping VMs and quitting…", so the icon never stays on screen without
// its loop) and returns ctx.Err(), or the stop's error. Without a tray,
// Run returns at once with an error wrapping ErrUnavailable that says why
// (Linux: no D-Bus session bus, or no StatusNotifierWatcher on it).
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

// target is what a click is on: a top-level item (slot -1), a VM line
// (sub -1) or an item of a VM line's submenu.
type target struct {
	slot int
	item ItemID    // when slot is -1
	sub  SubItemID // when slot is not -1
}

// slot is one VM line of the several-VM layout and its submenu. Which VM
// it shows is decided at each render; the renderer owns it.
type slot struct {
	line     menuItem
	lastLine Item                  // the line as on screen
	sub      [numSubItems]menuItem // nil until the line is first shown
	lastSub  [numSubItems]Item     // the submenu as on screen
}

// screen is which VMs the menu on screen shows: clicks act on them.
type screen struct {
	single string             // the one-VM layout's VM, "" in the other
	slots  [maxVMLines]string // the VM of each line, "" for a hidden one
}

// tray is one running tray. Goroutines and their owners:
//
//	supervisor      started by onReady; waits for Quit or ctx (which starts
//	                the quit worker too), stops the others, then calls
//	                systray.Quit (Run waits for it)
//	renderer        applies models; stopped by closing done
//	click forwarder one per item (those of a VM line's submenu started by
//	                the renderer when it makes them); stopped by closing done
//	dispatcher      turns clicks into work; stopped by closing done
//	action workers  one per running action (a click's, or a notification
//	                the renderer sends); Start, Stop, Start all and Stop all
//	                end with ctx, the others with opCtx; awaited by the
//	                supervisor (ops)
//	quit worker     stops the VMs after Quit or the end of ctx; awaited by
//	                the supervisor
type tray struct {
	ctx  context.Context
	c    Controller
	opts Options
	log  logrus.FieldLogger
	open func(path string, text bool) error // text: open in a text editor
	now  func() time.Time
	clip Clipboard
	term Terminal

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

	clicks     chan target
	poke       chan struct{} // capacity 1: the UI state changed
	quitResult chan error    // capacity 1: the quit worker's result

	sub       <-chan model.Overview
	cancelSub func()

	mu     sync.Mutex
	ui     UIState // guarded by mu
	screen screen  // guarded by mu; written by the renderer

	items  [numItems]menuItem
	slots  [maxVMLines]slot // renderer only (onReady before it)
	last   Model            // the model on screen; renderer only (onReady before it)
	spells spells           // silent spells already notified; renderer only
	ready  readies          // boots already notified as ready; renderer only
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
		clicks:      make(chan target, clickQueue),
		poke:        make(chan struct{}, 1),
		quitResult:  make(chan error, 1),
		exitTimeout: systemExitStopTimeout,
	}
	t.open = func(path string, text bool) error { return openFile(t.opCtx, path, text) }
	if opts.Opener != nil {
		t.open = func(path string, _ bool) error { return opts.Opener(path) }
	}
	t.clip = opts.Clipboard
	if t.clip == nil {
		t.clip = newClipboard()
	}
	t.term = opts.Terminal
	if t.term == nil {
		t.term = newTerminal()
	}
	t.opCtx, t.opCancel = context.WithCancel(ctx)
	t.ui = UIState{
		Daemon:        daemonHelp(),
		VMBusy:        map[string]bool{},
		ReconnectBusy: map[string]bool{},
		ConsoleLog:    opts.ConsoleLog,
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
// systray drops a click that its item's channel cannot take at once. The
// VM lines come first (systray can only append) and hidden; a line's
// submenu is made while the line is hidden.
func (t *tray) onReady() {
	t.sub, t.cancelSub = t.c.Subscribe()
	m := BuildModel(t.c.Status(), t.uiState(), t.now())
	for i := range t.slots {
		mi := t.sh.AddItem("", false, false, t.newClicks(target{slot: i, sub: -1}))
		mi.Hide()
		t.slots[i].line = mi
		t.slots[i].lastLine = Item{Enabled: true}
	}
	for id := ItemID(0); id < numItems; id++ {
		if separatorBefore[id] {
			t.sh.AddSeparator()
		}
		it := m.Items[id]
		mi := t.sh.AddItem(it.Label, id == ItemLogin, it.Checked, t.newClicks(target{slot: -1, item: id}))
		if !it.Enabled {
			mi.Disable()
		}
		if !it.Visible {
			mi.Hide()
		}
		t.items[id] = mi
		t.last.Items[id] = it
	}
	t.applySlots(m)
	t.setScreen(m)
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

// newClicks makes a click channel for tg and starts its forwarder. It is
// called by onReady and the renderer, while the loops run.
func (t *tray) newClicks(tg target) chan struct{} {
	ch := make(chan struct{}, clickBuffer)
	t.loops.Add(1)
	go t.forwardClicks(tg, ch)
	return ch
}

// supervise waits for Quit or the end of ctx, stops every other goroutine
// and then ends the systray loop.
func (t *tray) supervise() {
	defer close(t.finished)
	loopRuns := true
	select {
	case <-t.ctx.Done():
		// As after Quit: the icon stays, saying what happens, until the
		// VMs have stopped. Removed first, it would leave a dead icon on
		// macOS while the caller stops them.
		t.log.Info("the app is shutting down: stopping the VMs before removing the tray")
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
// process exits as soon as it returns: the VMs are stopped here.
func (t *tray) onExit() {
	if t.leaving.Load() {
		return
	}
	t.systemExit()
}

// systemExit stops the VMs before the process exits, on the main thread:
// it calls no systray setter and waits for nothing that may call one.
//
// With a GraceCloser, CloseWithin stops every VM (also those already
// stopping), forcing them off after Options.LogoutStopTimeout, and waits
// for them to end: no guest is cut off by the process exiting mid-stop,
// and the logout is not held up for the VMs' full stop timeout. With a
// Closer, Close does the same with the full stop timeout. Without either,
// StopAll and the wait while the VMs stop are bounded by exitTimeout.
func (t *tray) systemExit() {
	if gc, ok := t.c.(GraceCloser); ok {
		grace := t.opts.LogoutStopTimeout
		if grace <= 0 {
			grace = DefaultLogoutStopTimeout
		}
		if activeVMs(t.c.Status()) > 0 {
			t.log.WithField("timeout", grace).Warn("the system is ending the app: stopping the VMs, forced off after the timeout")
		}
		if err := gc.CloseWithin(grace); err != nil {
			t.log.WithError(err).Error("stopping the VMs as the system ends the app failed")
		}
		return
	}
	if cl, ok := t.c.(Closer); ok {
		if activeVMs(t.c.Status()) > 0 {
			t.log.Warn("the system is ending the app: stopping the VMs")
		}
		if err := cl.Close(); err != nil {
			t.log.WithError(err).Error("stopping the VMs as the system ends the app failed")
		}
		return
	}
	if activeVMs(t.c.Status()) == 0 {
		return
	}
	t.log.Warn("the system is ending the app: stopping the VMs")
	ctx, cancel := context.WithTimeout(context.Background(), t.exitTimeout)
	defer cancel()
	if err := t.stopAll(ctx); err != nil {
		t.log.WithError(err).Error("stopping the VMs as the system ends the app failed")
	}
}

// forwardClicks waits on one item's click channel. systray sends clicks
// without blocking, so this goroutine does nothing else: it hands each
// click to the dispatcher's queue and waits again.
func (t *tray) forwardClicks(tg target, ch <-chan struct{}) {
	defer t.loops.Done()
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
			select {
			case t.clicks <- tg:
			default:
				t.log.WithField("item", tg).Warn("click dropped: too many clicks waiting")
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
		case tg := <-t.clicks:
			t.handle(tg)
		case <-t.done:
			return
		}
	}
}

// vmItemOf maps the one-VM layout's items to the submenu's.
var vmItemOf = map[ItemID]SubItemID{
	ItemStart: SubStart, ItemStop: SubStop, ItemReconnect: SubReconnect, ItemConsole: SubConsole,
	ItemLinkHint: SubLinkHint, ItemIP: SubIP, ItemSSH: SubSSH, ItemTerminal: SubTerminal,
}

// handle carries out a click. A click acts on the VM the menu showed
// where it was clicked (the screen), if the current status still allows
// it; else it is ignored.
func (t *tray) handle(tg target) {
	st := t.c.Status()
	t.mu.Lock()
	defer t.changed()
	defer t.mu.Unlock()
	if t.ui.Quitting || (tg.slot >= 0 && tg.sub < 0) {
		return // a VM line only opens its submenu
	}
	m := BuildModel(st, t.ui, t.now())
	var it Item
	var name, console string
	sub, vmItem := tg.sub, tg.slot >= 0
	if tg.slot < 0 {
		it = m.Items[tg.item]
		if s, ok := vmItemOf[tg.item]; ok {
			sub, vmItem = s, true
			name, console = t.screen.single, m.SingleConsoleLog
			if name == "" || name != m.Single {
				it = Item{} // the menu changed since it was shown
			}
		}
	} else {
		name = t.screen.slots[tg.slot]
		it = Item{}
		for _, e := range m.VMs {
			if e.Name == name && name != "" {
				it, console = e.Sub[tg.sub], e.ConsoleLog
			}
		}
	}
	if !it.Enabled || !it.Visible {
		t.log.WithFields(logrus.Fields{"item": it.Label, "vm": name}).Debug("click on a disabled item ignored")
		return
	}
	if it.Copy != "" {
		text := it.Copy
		t.startOp(func() { t.copyText(text) })
		return
	}
	if vmItem {
		if sub == SubTerminal {
			// The command the item was enabled for: the status the model
			// was built from.
			v, _ := st.Lookup(name)
			if argv, ok := sshCommand(v); ok {
				t.startOp(func() { t.openTerminal(name, argv) })
			}
			return
		}
		t.vmClickLocked(name, sub, console, m.Single != "")
		return
	}
	switch tg.item {
	case ItemStartAll, ItemStopAll:
		start := tg.item == ItemStartAll
		t.ui.AllBusy = map[bool]string{true: "start", false: "stop"}[start]
		t.ui.Problem = ""
		t.startOp(func() { t.allAction(start) })
	case ItemConfig:
		t.startOp(func() { t.openFile("config", t.opts.ConfigFile, true) })
	case ItemReload:
		t.ui.ReloadBusy = true
		t.startOp(t.reload)
	case ItemLogin:
		enable := !t.ui.LoginEnabled
		t.ui.LoginKnown = false // disables the checkbox until the change is done
		t.startOp(func() { t.toggleLogin(enable) })
	case ItemQuit:
		t.beginQuitLocked()
	}
}

// vmClickLocked carries out a click on one VM's item.
func (t *tray) vmClickLocked(name string, sub SubItemID, console string, single bool) {
	switch sub {
	case SubStart, SubStop:
		start := sub == SubStart
		what := map[bool]string{true: "Start", false: "Stop"}[start]
		if single {
			what += " VM"
		} else {
			what += " " + name
		}
		t.ui.VMBusy[name] = true
		t.ui.Problem = ""
		t.startOp(func() { t.vmAction(name, start, what) })
	case SubReconnect:
		t.ui.ReconnectBusy[name] = true
		t.ui.Problem = ""
		t.startOp(func() { t.reconnect(name, single) })
	case SubConsole:
		t.startOp(func() { t.openFile("console log", console, false) })
	}
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

func (t *tray) vmAction(name string, start bool, what string) {
	var err error
	log := t.log.WithField("vm", name)
	if start {
		log.Info("starting the VM (menu)")
		err = t.c.Start(t.ctx, name)
	} else {
		log.Info("stopping the VM (menu)")
		err = t.c.Stop(t.ctx, name)
	}
	t.mu.Lock()
	delete(t.ui.VMBusy, name)
	// A start the user's own Stop cancelled did what was asked.
	if err != nil && t.ctx.Err() == nil && !errors.Is(err, model.ErrStartCancelled) {
		t.ui.Problem = what + " failed: " + err.Error()
		log.WithError(err).Warn(what + " failed")
	}
	t.mu.Unlock()
	t.changed()
}

func (t *tray) allAction(start bool) {
	var err error
	what := "Stop all"
	if start {
		what = "Start all"
		t.log.Info("starting every VM (menu)")
		err = t.c.StartAll(t.ctx)
	} else {
		t.log.Info("stopping every VM (menu)")
		err = t.c.StopAll(t.ctx)
	}
	t.mu.Lock()
	t.ui.AllBusy = ""
	if err != nil && t.ctx.Err() == nil {
		t.ui.Problem = what + " failed: " + err.Error()
		t.log.WithError(err).Warn(what + " failed")
	}
	t.mu.Unlock()
	t.changed()
}

func (t *tray) reconnect(name string, single bool) {
	log := t.log.WithField("vm", name)
	log.Info("reconnecting the link (menu)")
	err := t.c.Reconnect(name)
	t.mu.Lock()
	delete(t.ui.ReconnectBusy, name)
	if err != nil {
		what := "Reconnect"
		if !single {
			what += " " + name
		}
		t.ui.Problem = what + " failed: " + err.Error()
		log.WithError(err).Warn("reconnect failed")
	}
	t.mu.Unlock()
	t.changed()
}

// reload reads the configuration file again. A file with errors changes
// nothing: the menu's config error line says why (the status's
// ConfigError, else the error here), and the Notifier, if any, tells.
func (t *tray) reload() {
	t.log.Info("reloading the configuration (menu)")
	err := t.c.Reload()
	t.mu.Lock()
	t.ui.ReloadBusy = false
	t.ui.ReloadError = ""
	if err != nil {
		t.ui.ReloadError = err.Error()
	}
	t.mu.Unlock()
	t.changed()
	if err == nil {
		return
	}
	t.log.WithError(err).Warn("reloading the configuration failed: nothing changed")
	if t.opts.Notifier != nil {
		if e := t.opts.Notifier.Send("vmnetbar: config not reloaded", truncate(err.Error(), 200)); e != nil {
			t.log.WithError(e).Warn("notifying the failed reload failed")
		}
	}
}

// copyText puts text on the clipboard. When that fails, the user gets the
// text to copy by hand: in a notification, else in the menu's problem line.
func (t *tray) copyText(text string) {
	err := t.clip.Copy(t.opCtx, text)
	if err == nil {
		t.log.WithField("text", text).Debug("copied to the clipboard")
		return
	}
	if t.opCtx.Err() != nil {
		return
	}
	t.log.WithError(err).Warn("copying to the clipboard failed: showing the text to copy by hand")
	if t.opts.Notifier != nil {
		e := t.opts.Notifier.Send("vmnetbar: copy this by hand", text+"\n("+truncate(err.Error(), 200)+")")
		if e == nil {
			return
		}
		t.log.WithError(e).Warn("showing the text in a notification failed")
	}
	t.mu.Lock()
	t.ui.Problem = "Copy by hand: " + text
	t.mu.Unlock()
	t.changed()
}

// watchHealth notifies each VM whose link has just gone silent, once per
// spell (spells). It runs in the renderer; the notifications are sent by
// action workers, none once Quit is under way.
func (t *tray) watchHealth(o model.Overview) {
	begun := t.spells.update(o)
	if len(begun) == 0 {
		return
	}
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, v := range begun {
		log := t.log.WithFields(logrus.Fields{"vm": v.Name, "last_rx": v.Link.LastRx})
		log.Warn("the link is up but nothing comes back from the network: not forwarding")
		if t.opts.Notifier == nil || t.ui.Quitting {
			continue
		}
		body := silentBody(v, len(o.VMs) > 1, t.ui.Daemon, now)
		t.startOp(func() {
			if err := t.opts.Notifier.Send(silentTitle, body); err != nil {
				log.WithError(err).Warn("notifying the silent link failed")
			}
		})
	}
}

// watchReady notifies each VM that has just become ready (readies): "dev
// is ready", with the SSH command. It runs in the renderer; the
// notifications are sent by action workers, none once Quit is under way.
func (t *tray) watchReady(o model.Overview) {
	ready := t.ready.update(o)
	if len(ready) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, v := range ready {
		log := t.log.WithField("vm", v.Name)
		log.Info("the VM is ready: its SSH server accepts connections")
		if t.opts.Notifier == nil || t.ui.Quitting {
			continue
		}
		title, body := readyNotice(v)
		t.startOp(func() {
			if err := t.opts.Notifier.Send(title, body); err != nil {
				log.WithError(err).Warn("notifying that the VM is ready failed")
			}
		})
	}
}

// openTerminal opens a terminal window running argv, the VM's SSH
// command. When that fails, the user learns why and gets the command to
// run by hand: in a notification, else in the menu's problem line.
func (t *tray) openTerminal(name string, argv []string) {
	log := t.log.WithField("vm", name)
	log.WithField("command", argv).Info("opening a terminal with the SSH command (menu)")
	err := t.term.Open(t.opCtx, argv)
	if err == nil || t.opCtx.Err() != nil {
		return
	}
	line := model.ShellJoin(argv)
	log.WithError(err).Warn("opening a terminal failed")
	if t.opts.Notifier != nil {
		e := t.opts.Notifier.Send("vmnetbar: cannot open a terminal", truncate(err.Error(), 300)+"\nRun it yourself: "+line)
		if e == nil {
			return
		}
		log.WithError(e).Warn("showing why in a notification failed")
	}
	t.mu.Lock()
	t.ui.Problem = "Open Terminal failed: " + err.Error()
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

// quit stops the VMs gracefully and reports the result to the supervisor.
func (t *tray) quit() {
	defer t.loops.Done()
	t.log.Info("quit: stopping the VMs")
	// Starts and stops in progress finish first (when ctx has ended, at
	// once); other actions (a file opener that has not returned) are
	// cancelled.
	t.opCancel()
	t.ops.Wait()
	// The stop goes on when ctx ends: the tray leaves once the VMs have
	// stopped (the controller forces them off at their stop timeout). A
	// controller that can close does so: from now on it refuses new
	// actions (a start from the command line cannot boot a VM again
	// while the app quits), and a logout meanwhile still bounds the stop.
	var err error
	if cl, ok := t.c.(Closer); ok {
		if e := cl.Close(); e != nil {
			err = fmt.Errorf("stopping the VMs before quitting: %w", e)
			t.log.WithError(e).Warn("quit: stopping the VMs failed")
		}
	} else if e := t.stopAll(context.WithoutCancel(t.ctx)); e != nil {
		err = fmt.Errorf("stopping the VMs before quitting: %w", e)
		t.log.WithError(e).Warn("quit: stopping the VMs failed")
	}
	t.quitResult <- err
}

// stopAll stops the VMs that run and waits while any is stopping (a stop
// begun elsewhere too), until ctx ends.
func (t *tray) stopAll(ctx context.Context) error {
	sub, cancel := t.c.Subscribe()
	defer cancel()
	if anyStop(t.c.Status()) {
		if err := t.c.StopAll(ctx); err != nil && anyRuns(t.c.Status()) {
			// Not when every VM stopped or began stopping meanwhile.
			return err
		}
	}
	for {
		o := t.c.Status()
		if activeVMs(o) == 0 {
			return nil
		}
		select {
		case _, ok := <-sub:
			if !ok {
				if o := t.c.Status(); activeVMs(o) > 0 {
					return fmt.Errorf("the controller shut down while %s", stillActive(o))
				}
				return nil
			}
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", stillActive(o), ctx.Err())
		}
	}
}

// anyStop reports whether a VM of o may be stopped.
func anyStop(o model.Overview) bool {
	for _, v := range o.VMs {
		if v.Actions.Stop {
			return true
		}
	}
	return false
}

// anyRuns reports whether a VM of o is starting or running.
func anyRuns(o model.Overview) bool {
	for _, v := range o.VMs {
		if s := v.VM.State; s == vmhost.StateStarting || s == vmhost.StateRunning {
			return true
		}
	}
	return false
}

// stillActive names the VMs of o that have not ended ("dev is stopping,
// build is running").
func stillActive(o model.Overview) string {
	var parts []string
	for _, v := range o.VMs {
		if vmActive(v) {
			parts = append(parts, fmt.Sprintf("%s is %s", v.Name, v.VM.State))
		}
	}
	return strings.Join(parts, ", ")
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
	return t.ui.clone()
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
	t.watchHealth(st)
	t.watchReady(st)
	sub := t.sub
	// systray (v1.12.2, Linux) runs onReady while it exports the icon's
	// D-Bus properties: an icon set between its reading the icon for the
	// export and its keeping the exported properties is lost until the
	// next change (systray_unix.go, nativeStart and SetIcon). The first
	// ticks set the icon and tooltip again.
	reassert := startupReassert
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
			if reassert > 0 {
				reassert--
				t.setIcon(t.last.Icon)
				t.sh.SetTooltip(t.last.Tooltip)
			}
		case <-t.poke:
		case <-t.done:
			return
		}
		t.watchHealth(st)
		t.watchReady(st)
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
	// A line that is to show another VM acts on none until it does.
	t.mu.Lock()
	for i := range t.screen.slots {
		if i >= len(m.VMs) || m.VMs[i].Name != t.screen.slots[i] {
			t.screen.slots[i] = ""
		}
	}
	if m.Single != t.screen.single {
		t.screen.single = ""
	}
	t.mu.Unlock()
	for id, it := range m.Items {
		applyItem(t.items[id], t.last.Items[id], it)
	}
	t.applySlots(m)
	t.setScreen(m)
	t.last = m
}

// applySlots shows m's VM lines, making a line's submenu when the line is
// first shown, and hides the lines m does not use.
func (t *tray) applySlots(m Model) {
	for i := range t.slots {
		sl := &t.slots[i]
		if i >= len(m.VMs) {
			hidden := sl.lastLine
			hidden.Visible = false
			applyItem(sl.line, sl.lastLine, hidden)
			sl.lastLine = hidden
			continue
		}
		e := m.VMs[i]
		if sl.sub[0] == nil {
			// The line is hidden: nobody can click the new items before
			// they have their click channels.
			for id := SubItemID(0); id < numSubItems; id++ {
				if subSeparatorBefore[id] {
					t.sh.AddSubSeparator(sl.line)
				}
				it := e.Sub[id]
				mi := t.sh.AddSubItem(sl.line, it.Label, t.newClicks(target{slot: i, sub: id}))
				if !it.Enabled {
					mi.Disable()
				}
				if !it.Visible {
					mi.Hide()
				}
				sl.sub[id] = mi
			}
			sl.lastSub = e.Sub
		}
		for id, it := range e.Sub {
			applyItem(sl.sub[id], sl.lastSub[id], it)
		}
		sl.lastSub = e.Sub
		applyItem(sl.line, sl.lastLine, e.Line)
		sl.lastLine = e.Line
	}
}

// setScreen records which VMs the menu on screen shows.
func (t *tray) setScreen(m Model) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.screen.single = m.Single
	for i := range t.screen.slots {
		t.screen.slots[i] = ""
		if i < len(m.VMs) {
			t.screen.slots[i] = m.VMs[i].Name
		}
	}
}

// applyItem changes what differs between old, on screen, and it.
func applyItem(mi menuItem, old, it Item) {
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
