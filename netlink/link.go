package netlink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/vmnetbar/vmnetbar/internal/latest"
)

// ErrVMSide wraps every error about the VM end of the link. It is fatal: the
// link stops and never redials.
var ErrVMSide = errors.New("netlink: VM side of the link failed")

var (
	errManual     = errors.New("manual reconnect")
	errPeerClosed = errors.New("the VM closed its end of the socketpair")
)

// Defaults for the zero values of Config.
const (
	DefaultInitialBackoff = 100 * time.Millisecond
	DefaultMaxBackoff     = 2 * time.Second
)

const (
	// dialTimeout bounds one dial attempt (a daemon whose accept backlog is
	// full makes connect block); the attempt counts as failed.
	dialTimeout = 5 * time.Second
	// stillbornWithin: a restored connection that the daemon ends this
	// soon, before any byte came from it, was never really up. A daemon
	// that is going away (killed, restarting) can still accept on its
	// listening socket between closing its clients and closing the
	// listener; the kernel then resets the new connection. The outage
	// goes on, and the next restore is not counted again, so one restart
	// of the daemon is one reconnect.
	stillbornWithin = time.Second
	// probeInterval is how often the VM side is checked for having gone
	// away (see watchVM).
	probeInterval = 500 * time.Millisecond
	// busyRetries and busyRetryWait bound how long a frame towards a VM
	// that does not take it is retried before it is dropped.
	busyRetries   = 10
	busyRetryWait = 50 * time.Microsecond
	// upBatch is how many VM frames are read before one write to the daemon.
	upBatch = 32
	// upSlot holds a frame's header, the largest frame and one more byte to
	// detect larger datagrams.
	upSlot = headerSize + MaxFrameSize + 1
)

// Config configures a Link. Zero values mean the documented defaults.
type Config struct {
	// Socket is the daemon's UNIX socket path (see CheckSocketPath).
	Socket string
	// Dial connects to the daemon; nil dials Socket ("unix"). It must
	// return when its context ends.
	Dial func(ctx context.Context) (net.Conn, error)
	// InitialBackoff is the first wait between failed dials (0 = 100ms,
	// at least MinInitialBackoff); each failure doubles it up to
	// MaxBackoff (0 = 2s, at least InitialBackoff). Every successful
	// connection resets it. A connection that ends less than
	// InitialBackoff after it was made is redialed after InitialBackoff
	// (a daemon that accepts and closes is not hammered); otherwise the
	// first redial is immediate.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// Logger receives the link's logs; nil discards them.
	Logger logrus.FieldLogger
	// Now is the clock for Status times and for how long a connection
	// lasted; nil is Clock's Now.
	Now func() time.Time
	// Clock times the link's waits (backoff, the wait before redialing a
	// short-lived connection, the VM-side checks) and, unless Now is set,
	// reads the time; nil is the system clock. The bound of one dial
	// attempt (5 s) is a context deadline on the system clock.
	Clock Clock
	// MAC is the VM's MAC (optional). Without it the link takes the source
	// of the first unicast frame the VM sends. It is the guest the status
	// reports (Status.Guest) and always passes the filter.
	MAC net.HardwareAddr
	// MTU is the VM's interface MTU (0 = DefaultMTU, MinMTU..MaxMTU): a
	// frame from the VM larger than MTU + 18 (Ethernet header and one
	// VLAN tag) is dropped and counted as oversize, never sent to the
	// daemon (socket_vmnet drops a client that sends one larger than
	// 1514 bytes). A jumbo MTU needs a daemon that supports it.
	MTU int
	// NoFilter turns off the filter that drops unicast frames from the
	// daemon to MACs the VM never used as a source (Status.FilteredFrames);
	// for guests that bridge MACs which have not sent anything yet.
	NoFilter bool
	// NoProbe turns off the probe of the gateway (an ARP request sent
	// when nothing came from the daemon for 10 s; see Status.Health).
	// Without it the link still calls the network silent when the guest's
	// own ARP or DHCP requests get no answer for 15 s.
	NoProbe bool
}

// MTU limits (Config.MTU).
const (
	DefaultMTU = 1500
	MinMTU     = 68
	MaxMTU     = MaxFrameSize - VLANOverhead
)

// Link forwards frames between the host end of a VM's datagram socketpair
// and a daemon's stream socket, replacing the daemon connection whenever it
// fails.
//
// Goroutines of Run: the dialer owns (re)connecting; "up" reads VM datagrams
// and writes them to the current connection; "down" reads the current
// connection and sends frames to the VM; watchVM checks that the VM's end
// of the socketpair still exists. A failing side reports the
// generation of the connection it used; only the first report for a
// generation drops the connection and wakes the dialer. No lock is held
// across a read or write; counters are atomics.
type Link struct {
	host    *os.File
	dial    func(ctx context.Context) (net.Conn, error)
	initial time.Duration
	max     time.Duration
	log     logrus.FieldLogger
	clock   Clock
	now     func() time.Time // clock.Now
	// newProbe makes the VM-side probe (newPeerProbe; tests replace it).
	newProbe func(rc syscall.RawConn) (*peerProbe, error)

	started atomic.Bool
	running atomic.Bool
	manual  chan struct{} // Reconnect requests, cap 1
	kick    chan struct{} // the connection was dropped, cap 1

	txFrames, txBytes, rxFrames, rxBytes atomic.Uint64
	oversize, vmBusy, partial, empty     atomic.Uint64
	stalls, busyWaits                    atomic.Uint64 // towards the VM
	probes                               atomic.Uint64 // checks of the VM side made
	filtered                             atomic.Uint64 // frames to the VM dropped by the filter

	maxFrame int           // largest frame sent to the daemon: MTU + VLANOverhead
	filter   bool          // the filter is on
	mac      atomic.Uint64 // the VM's MAC, packed (0: not known yet); set once
	macs     macSet        // the VM's source MACs, for the filter
	learn    bool          // learning and the filter run (off only in benchmarks)

	probe        bool          // probing of the gateway is on (not Config.NoProbe)
	mono         time.Time     // origin of monoNow
	healthWake   chan struct{} // wakes healthLoop, cap 1
	healthOK     atomic.Bool   // health == HealthOK
	lastRx       atomic.Int64  // UnixNano on the link's clock of the last read from the daemon; 0: none
	askSince     atomic.Int64  // UnixNano of the guest's oldest unanswered request; 0: none
	askWanted    atomic.Bool   // the guest's requests matter (not probing)
	probeSent    atomic.Int64  // monoNow of the outstanding probe; 0: none
	probeTarget  atomic.Uint64 // gateway<<32 | guest IPv4 of the outstanding probe
	rtt          atomic.Int64  // round trip of the last answered probe, ns
	gwProbesSent atomic.Uint64 // probes written so far

	mu         sync.Mutex // guards the fields below; never held across I/O
	conn       net.Conn   // current daemon connection, nil while down
	gen        uint64     // generation of conn, incremented per connection
	changed    chan struct{}
	closing    bool // Run is ending: no new connections
	state      State
	since      time.Time
	lastErr    string
	reconnects uint64
	downSince  time.Time // start of the current outage after the first connection
	outageFrom time.Time // start of the outage the current or next restore ends (for the log)
	restored   bool      // the current connection ended an outage (and was counted)
	stillborn  bool      // the last restored connection ended before it carried anything: the next restore is not counted
	downtime   time.Duration
	warned     bool // the current outage was logged
	guest      Guest
	arpNew     arpCandidates // new ARP sender addresses under a DHCP lease (see Guest)
	// Health (see health.go); healthOK mirrors health == HealthOK for the
	// down loop.
	health       Health
	connAt       time.Time // when the current connection was made
	gwProbes     int       // probes sent since the last frame from the daemon
	firstProbeAt time.Time // the first of them
	lastProbeAt  time.Time // the last probe sent
	// subs delivers the status; published and subscribed under mu, closed
	// by finish.
	subs latest.Hub[Status]
}

// New validates host and cfg and returns a Link ready to Run. host must be a
// SOCK_DGRAM socket (the hostEnd of NewSocketPair); the Link uses its own
// duplicate of it, so the caller keeps ownership of host.
//
// Errors name what is wrong in this package's words ("daemon socket path",
// "initial backoff"); callers that know what the user wrote (a config key, a
// flag) check the same limits first (CheckSocketPath, CheckBackoff,
// MinInitialBackoff) and say it in the user's words.
func New(host *os.File, cfg Config) (*Link, error) {
	if host == nil {
		return nil, errors.New("netlink: host end is nil: pass the hostEnd returned by NewSocketPair")
	}
	if err := checkHost(host); err != nil {
		return nil, err
	}
	if cfg.Dial == nil {
		if cfg.Socket == "" {
			return nil, errors.New("netlink: the daemon socket path is empty: set it to the daemon's socket (e.g. /opt/homebrew/var/run/socket_vmnet)")
		}
		if err := CheckSocketPath(cfg.Socket); err != nil {
			return nil, fmt.Errorf("netlink: daemon socket path %w", err)
		}
	}
	if err := CheckBackoff(cfg.InitialBackoff, cfg.MaxBackoff); err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	if err := CheckMTU(cfg.MTU); err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	mac, err := checkMAC(cfg.MAC)
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	l := &Link{
		host:     host,
		dial:     cfg.Dial,
		initial:  cfg.InitialBackoff,
		max:      cfg.MaxBackoff,
		newProbe: newPeerProbe,
		manual:   make(chan struct{}, 1),
		kick:     make(chan struct{}, 1),
		changed:  make(chan struct{}),
		state:    StateConnecting,
		filter:   !cfg.NoFilter,
		learn:    true,
		probe:    !cfg.NoProbe,
		mono:     time.Now(),

		healthWake: make(chan struct{}, 1),
		maxFrame:   cfg.MTU + VLANOverhead,
	}
	l.askWanted.Store(true)
	if cfg.MTU == 0 {
		l.maxFrame = DefaultMTU + VLANOverhead
	}
	if mac != 0 {
		l.mac.Store(mac)
		l.macs.slots[0].Store(mac | macValid)
		l.guest.MAC = macFrom64(mac)
	}
	if l.initial == 0 {
		l.initial = DefaultInitialBackoff
	}
	if l.max == 0 {
		l.max = DefaultMaxBackoff
	}
	switch {
	case cfg.Clock == nil && cfg.Now == nil:
		l.clock = realClock{now: time.Now}
	case cfg.Clock == nil:
		l.clock = realClock{now: cfg.Now}
	case cfg.Now == nil:
		l.clock = cfg.Clock
	default:
		l.clock = nowClock{Clock: cfg.Clock, now: cfg.Now}
	}
	l.now = l.clock.Now
	if l.dial == nil {
		d := &net.Dialer{}
		l.dial = func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "unix", cfg.Socket) }
	}
	if cfg.Logger == nil {
		lg := logrus.New()
		lg.Out = io.Discard
		cfg.Logger = lg
	}
	l.log = cfg.Logger.WithField("daemon", cfg.Socket)
	l.since = l.now()
	if err := raiseHostBuffers(host); err != nil {
		l.log.WithError(err).Warn("cannot raise the socket buffers of the host end; the VM may lose frames under load")
	}
	return l, nil
}

// Run forwards frames until ctx ends (it returns nil, state stopped) or the
// VM side fails (it returns an error wrapping ErrVMSide, state failed). The
// daemon connection is redialed as often as needed. Run may be called once.
func (l *Link) Run(ctx context.Context) (err error) {
	if !l.started.CompareAndSwap(false, true) {
		return errors.New("netlink: Run called more than once")
	}
	vm, err := openVM(l.host)
	if err != nil {
		l.finish(err)
		return err
	}
	runCtx, cancel := context.WithCancel(ctx)
	fatal := make(chan error, 3)
	// Running before the goroutines start: a Reconnect made as soon as
	// the link reports a state is served.
	l.running.Store(true)
	var wg sync.WaitGroup
	wg.Add(5)
	go func() { defer wg.Done(); l.dialLoop(runCtx) }()
	go func() { defer wg.Done(); l.healthLoop(runCtx) }()
	go func() {
		defer wg.Done()
		if err := l.watchVM(runCtx, vm); err != nil {
			fatal <- err
		}
	}()
	go func() {
		defer wg.Done()
		if err := l.upLoop(runCtx, vm); err != nil {
			fatal <- err
		}
	}()
	go func() {
		defer wg.Done()
		if err := l.downLoop(runCtx, vm); err != nil {
			fatal <- err
		}
	}()

	select {
	case <-ctx.Done():
	case err = <-fatal:
	}
	l.running.Store(false)
	cancel()
	l.mu.Lock()
	l.closing = true
	old := l.conn
	l.conn = nil
	l.mu.Unlock()
	if old != nil {
		old.Close()
	}
	vm.Close()
	wg.Wait()
	if err == nil {
		select {
		case err = <-fatal:
		default:
		}
	}
	l.finish(err)
	return err
}

// finish records the final state, delivers it and closes subscriptions.
func (l *Link) finish(err error) {
	l.mu.Lock()
	if !l.downSince.IsZero() {
		l.downtime += l.now().Sub(l.downSince)
		l.downSince = time.Time{}
	}
	l.resetHealthLocked(time.Time{})
	var tr transition
	if err != nil {
		l.lastErr = err.Error()
		tr = l.setStateLocked(StateFailed)
	} else {
		tr = l.setStateLocked(StateStopped)
	}
	l.notifyLocked()
	l.subs.Close()
	l.mu.Unlock()

	l.logTransition(tr)
	if err != nil {
		l.log.WithError(err).Error("link failed: the VM side is gone; not reconnecting")
	} else {
		l.log.Info("link stopped")
	}
}

// Reconnect drops the daemon connection and dials again at once with the
// backoff reset, even while a write is blocked. It is a no-op when the link
// is not running.
func (l *Link) Reconnect() {
	if !l.running.Load() {
		return
	}
	select {
	case l.manual <- struct{}{}:
	default:
	}
}

// transition is a state change, logged once the lock is released.
type transition struct{ from, to State }

// setStateLocked changes state and its timestamp (without notifying).
func (l *Link) setStateLocked(s State) transition {
	if l.state == s {
		return transition{}
	}
	tr := transition{l.state, s}
	l.state = s
	l.since = l.now()
	return tr
}

func (l *Link) logTransition(tr transition) {
	if tr.from != tr.to {
		l.log.Debugf("link %s -> %s", tr.from, tr.to)
	}
}

// dialLoop owns the daemon connection: it dials whenever there is none and
// drops it on a manual reconnect. After a failed dial it waits the backoff
// (InitialBackoff doubling up to MaxBackoff). Every successful connection
// resets the backoff. When a connection ends, the redial is immediate
// unless the connection lasted less than InitialBackoff (a daemon that
// accepts and closes): then it waits InitialBackoff, so such a daemon is
// dialed at most once per InitialBackoff. A manual reconnect always dials
// at once with the backoff reset.
func (l *Link) dialLoop(ctx context.Context) {
	// wait waits d on the link's clock; ok is false when ctx ended;
	// manual when a manual reconnect cut it short.
	wait := func(d time.Duration) (manual, ok bool) {
		fired, stop := l.clock.NewTimer(d)
		select {
		case <-ctx.Done():
			stop()
			return false, false
		case <-l.manual:
			stop()
			return true, true
		case <-fired:
			return false, true
		}
	}
	backoff := l.initial
	for {
		conn, err := l.dialOnce(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			l.dialFailed(err, backoff)
			manual, ok := wait(backoff)
			switch {
			case !ok:
				return
			case manual:
				backoff = l.initial
			case backoff > l.max/2:
				backoff = l.max
			default:
				backoff *= 2
			}
			continue
		}
		if err := tuneConn(conn); err != nil {
			l.log.WithError(err).Warn("cannot set the daemon connection's socket options; a frame may reach the daemon cut in two")
		}
		upAt := l.now()
		if !l.install(conn) {
			return
		}
		backoff = l.initial
		manual, ok := l.waitDropped(ctx)
		if !ok {
			return
		}
		if up := l.now().Sub(upAt); !manual && up < l.initial {
			l.log.WithField("up", up.Round(time.Millisecond)).WithField("retry_in", l.initial).Debug("short-lived daemon connection")
			if _, ok := wait(l.initial); !ok {
				return
			}
		}
	}
}

// dialOnce makes one dial attempt, bounded by dialTimeout.
func (l *Link) dialOnce(ctx context.Context) (net.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	conn, err := l.dial(dctx)
	if err == nil && conn == nil {
		err = errors.New("the dialer returned no connection and no error")
	}
	if err != nil && ctx.Err() == nil && errors.Is(dctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("no answer within %v: %w", dialTimeout, err)
	}
	return conn, err
}

// install makes conn the current connection; false if Run is ending.
func (l *Link) install(conn net.Conn) bool {
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		conn.Close()
		return false
	}
	select { // a request made while dialing is served by this connection
	case <-l.manual:
	default:
	}
	l.conn = conn
	l.gen++
	close(l.changed)
	l.changed = make(chan struct{})
	// Reconnecting only after a connection was lost (or dropped by hand);
	// the first connection comes from connecting.
	restored := l.state == StateReconnecting
	var down time.Duration
	if restored {
		if !l.stillborn {
			l.reconnects++
		}
		l.downtime += l.now().Sub(l.downSince)
		down = l.now().Sub(l.outageFrom)
	}
	l.restored, l.stillborn = restored, false
	l.downSince = time.Time{}
	l.warned = false
	l.resetHealthLocked(l.now())
	tr := l.setStateLocked(StateUp)
	l.notifyLocked()
	l.mu.Unlock()

	l.logTransition(tr)
	if restored {
		l.log.WithField("down", down.Round(time.Millisecond)).Info("daemon connection restored")
	} else {
		l.log.Info("connected to daemon")
	}
	return true
}

// waitDropped waits while the connection is up and drops it on a manual
// reconnect. It reports whether a manual reconnect was asked for (also one
// that arrived as the connection failed by itself: it still dials at once
// with the backoff reset); ok is false when ctx ended.
func (l *Link) waitDropped(ctx context.Context) (manual, ok bool) {
	for {
		select {
		case <-ctx.Done():
			return false, false
		case <-l.kick:
		case <-l.manual:
			manual = true
			l.mu.Lock()
			var old net.Conn
			var tr transition
			if l.conn != nil {
				old, tr = l.dropLocked(errManual)
			}
			l.mu.Unlock()
			if old != nil {
				old.Close()
				l.logTransition(tr)
				l.log.Info("manual reconnect")
			}
		}
		l.mu.Lock()
		down := l.conn == nil
		l.mu.Unlock()
		if down {
			select { // this drop needs no second wake-up
			case <-l.kick:
			default:
			}
			select { // a request that came with a failure still resets
			case <-l.manual:
				manual = true
			default:
			}
			return manual, true
		}
	}
}

func (l *Link) dialFailed(err error, next time.Duration) {
	msg := "dialing the daemon: " + err.Error()
	l.mu.Lock()
	warn := !l.warned
	l.warned = true
	if l.lastErr != msg {
		l.lastErr = msg
		l.notifyLocked()
	}
	l.mu.Unlock()
	if warn {
		l.log.WithError(err).Warn("cannot reach the daemon; retrying")
	}
	l.log.WithError(err).WithField("retry_in", next).Debug("dial failed")
}

// fail reports that the connection of generation gen failed with err. The
// first report for the current connection drops it and wakes the dialer.
func (l *Link) fail(gen uint64, err error) {
	l.mu.Lock()
	if gen != l.gen || l.conn == nil || l.closing {
		l.mu.Unlock()
		return
	}
	l.warned = true
	// A restored connection that ends at once, with nothing read from the
	// daemon, continues the outage it was to end (see stillbornWithin).
	connAt := l.connAt
	stillborn := l.restored && l.now().Sub(connAt) < stillbornWithin && l.lastRx.Load() < connAt.UnixNano()
	outageFrom := l.outageFrom
	old, tr := l.dropLocked(err)
	if stillborn {
		l.stillborn = true
		l.outageFrom = outageFrom
		// The moment it was up was down time too.
		l.downSince = connAt
	}
	l.mu.Unlock()
	old.Close()
	l.logTransition(tr)
	if stillborn {
		l.log.WithError(err).Info("the daemon ended the new connection at once (it may still be going away); reconnecting")
	} else {
		l.log.WithError(err).Warn("daemon connection lost; reconnecting")
	}
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// dropLocked makes the link connectionless and returns the connection for
// the caller to close once the lock is released.
func (l *Link) dropLocked(cause error) (net.Conn, transition) {
	old := l.conn
	l.conn = nil
	close(l.changed)
	l.changed = make(chan struct{})
	l.lastErr = cause.Error()
	l.downSince = l.now()
	l.outageFrom = l.downSince
	l.restored = false
	l.resetHealthLocked(time.Time{})
	tr := l.setStateLocked(StateReconnecting)
	l.notifyLocked()
	return old, tr
}

// current waits for a connection newer than generation after.
func (l *Link) current(ctx context.Context, after uint64) (net.Conn, uint64, bool) {
	for {
		l.mu.Lock()
		if l.conn != nil && l.gen > after {
			c, g := l.conn, l.gen
			l.mu.Unlock()
			return c, g, true
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, 0, false
		}
	}
}

// watchVM owns the VM-side probe. The VM closing its end of the socketpair
// is seen by up and down only when a send to the VM fails (on Linux a
// closed datagram peer wakes no reader), so on a quiet link nothing would
// notice. watchVM checks every probeInterval, without sending the VM
// anything, whether the VM's end still exists, and returns the fatal error
// once it is gone. Where no probe works it logs why once at debug level and
// returns nil: a failed send then tells.
func (l *Link) watchVM(ctx context.Context, vm *vmConn) error {
	p, err := l.newProbe(vm.rc)
	if err != nil {
		l.log.WithError(err).Debug("cannot watch the VM side of the link; its going away is noticed when a frame to the VM fails")
		return nil
	}
	defer p.close()
	for {
		gone, err := p.gone()
		l.probes.Add(1)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			l.log.WithError(err).Debug("stopped watching the VM side of the link; its going away is noticed when a frame to the VM fails")
			return nil
		}
		if gone {
			return fmt.Errorf("%w: %w", ErrVMSide, errPeerClosed)
		}
		fired, stop := l.clock.NewTimer(probeInterval)
		select {
		case <-ctx.Done():
			stop()
			return nil
		case <-fired:
		}
	}
}

// upLoop forwards VM datagrams to the daemon. While there is no connection
// it holds its batch and stops reading the VM, so frames wait in the
// socketpair.
func (l *Link) upLoop(ctx context.Context, vm *vmConn) error {
	mem := make([]byte, upBatch*upSlot)
	recv := make([][]byte, upBatch)
	for i := range recv {
		recv[i] = mem[i*upSlot+headerSize : (i+1)*upSlot]
	}
	sizes := make([]int, upBatch)
	w := &frameWriter{
		frames:  make([][]byte, 0, upBatch),
		backing: make([][]byte, 0, upBatch),
	}
	var learn upLearner
	if m := l.guestMAC(); m != 0 {
		learn.macs[0], learn.nmacs, learn.next = m, 1, 1
	}
	var conn net.Conn
	var gen uint64
	for {
		n, rerr := vm.readBatch(recv, sizes)
		if rerr != nil && ctx.Err() != nil {
			return nil
		}
		w.reset()
		var dropped, empty uint64
		for i := 0; i < n; i++ {
			size := sizes[i]
			switch {
			case size == 0: // an empty datagram: nothing to forward
				empty++
			case size > l.maxFrame:
				dropped++
			default:
				slot := mem[i*upSlot : i*upSlot+headerSize+size]
				if l.learn {
					l.learnUp(&learn, slot[headerSize:])
				}
				slot[0], slot[1], slot[2], slot[3] = 0, byte(size>>16), byte(size>>8), byte(size)
				w.frames = append(w.frames, slot)
			}
		}
		if dropped > 0 {
			l.oversize.Add(dropped)
			l.log.WithField("frames", dropped).Debug("dropped oversize frames from the VM")
		}
		if empty > 0 {
			l.empty.Add(empty)
			l.log.WithField("frames", empty).Debug("skipped empty datagrams from the VM")
		}
		if rerr != nil {
			return fmt.Errorf("%w: reading from the VM: %w", ErrVMSide, rerr)
		}
		for w.pending() {
			if conn == nil {
				var ok bool
				if conn, gen, ok = l.current(ctx, gen); !ok {
					return nil
				}
			}
			sent, bytes, err := w.write(conn)
			if sent > 0 {
				l.txFrames.Add(uint64(sent))
				l.txBytes.Add(bytes)
			}
			if err != nil {
				l.fail(gen, fmt.Errorf("writing to the daemon: %w", err))
				conn = nil
			}
		}
	}
}

// maxWrite caps the bytes of one write to the daemon: whole frames,
// headers included, up to 32 KiB (a single larger frame is written alone).
// socket_vmnet reads a frame's body with one read and aborts when it gets
// less, so no frame may reach it in two pieces. A non-blocking stream
// write may queue only part of its bytes; with the socket options set by
// tuneStream a write of at most maxWrite bytes is queued whole or not at
// all (on Linux it is one socket buffer of at most about 36 KiB; on macOS
// SO_SNDLOWAT is maxWrite). A blocked write has written nothing, so a
// connection closed under it (manual reconnect, shutdown) ends on a frame
// boundary.
//
// Limit: one frame larger than about 32 KiB (a jumbo frame with an MTU
// above that) does not fit one socket buffer and may still reach the
// daemon in two pieces when the daemon reads slowly.
const maxWrite = 32 << 10

// frameWriter writes whole frames (header included) to a connection, as
// many as fit in maxWrite per writev where the connection supports it
// (one Write per frame otherwise). A frame is never split between calls.
type frameWriter struct {
	frames  [][]byte    // the batch; frames[next:] are still to write
	next    int         // first frame not written whole
	backing [][]byte    // storage of scratch
	scratch net.Buffers // what WriteTo consumes
}

func (w *frameWriter) reset() { w.frames, w.next = w.frames[:0], 0 }

func (w *frameWriter) pending() bool { return w.next < len(w.frames) }

// write writes the pending frames. On an error the frame it cut stays
// pending, to be sent again whole.
func (w *frameWriter) write(conn net.Conn) (frames int, bytes uint64, err error) {
	for w.next < len(w.frames) {
		end, size := w.next, 0
		for end < len(w.frames) && (end == w.next || size+len(w.frames[end]) <= maxWrite) {
			size += len(w.frames[end])
			end++
		}
		w.scratch = append(w.backing[:0], w.frames[w.next:end]...)
		n, werr := w.scratch.WriteTo(conn)
		for w.next < end && int64(len(w.frames[w.next])) <= n {
			n -= int64(len(w.frames[w.next]))
			bytes += uint64(len(w.frames[w.next]) - headerSize)
			frames++
			w.next++
		}
		if werr != nil {
			return frames, bytes, werr
		}
	}
	return frames, bytes, nil
}

// downLoop forwards frames from the daemon to the VM.
func (l *Link) downLoop(ctx context.Context, vm *vmConn) error {
	dec := NewDecoder(0)
	out := &vmSender{l: l, vm: vm, batch: make([][]byte, 0, batchSize)}
	var src streamReader
	var gen uint64
	for {
		conn, g, ok := l.current(ctx, gen)
		if !ok {
			return nil
		}
		gen = g
		dec.Reset()
		src.reset(conn)
		for {
			n, rerr := src.read(dec.Space())
			dec.Commit(n)
			if n > 0 {
				l.markRx(gen)
			}
			var perr error
			for {
				f, err := dec.Next()
				if f != nil && l.learn && !l.learnDown(f) {
					continue
				}
				if f != nil {
					out.batch = append(out.batch, f)
					if len(out.batch) < batchSize {
						continue
					}
				}
				if err := out.flush(); err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
				if f == nil {
					perr = err
					break
				}
			}
			if perr != nil {
				l.fail(gen, perr)
				break
			}
			if rerr != nil {
				if dec.Pending() > 0 {
					l.partial.Add(1)
				}
				if ctx.Err() != nil {
					return nil
				}
				if errors.Is(rerr, io.EOF) {
					rerr = errors.New("the daemon closed the connection")
				} else {
					rerr = fmt.Errorf("reading from the daemon: %w", rerr)
				}
				l.fail(gen, rerr)
				break
			}
		}
	}
}

// vmSender delivers frames to the VM. A frame the VM does not take is
// retried briefly, then dropped; after a drop, frames get one attempt each
// until the VM takes one again, so the daemon is always drained.
type vmSender struct {
	l       *Link
	vm      *vmConn
	batch   [][]byte
	stalled bool
}

func (s *vmSender) flush() error {
	frames := s.batch
	s.batch = s.batch[:0]
	retries := 0
	for len(frames) > 0 {
		n, err := s.vm.trySend(frames)
		if n > 0 {
			var bytes uint64
			for _, f := range frames[:n] {
				bytes += uint64(len(f))
			}
			s.l.rxFrames.Add(uint64(n))
			s.l.rxBytes.Add(bytes)
			frames = frames[n:]
			retries = 0
			if s.stalled {
				s.stalled = false
				s.l.log.Debug("the VM takes frames again")
			}
		}
		if err == nil {
			continue
		}
		if isTooBig(err) {
			// A per-frame error (the frame exceeds the VM socket's
			// buffer): drop this frame only.
			s.l.oversize.Add(1)
			s.l.log.WithError(err).WithField("size", len(frames[0])).Debug("dropped a frame the VM socket refuses as too large")
			frames = frames[1:]
			continue
		}
		if !isBusy(err) {
			return fmt.Errorf("%w: sending to the VM: %w", ErrVMSide, err)
		}
		if !s.stalled && retries < busyRetries {
			retries++
			s.l.busyWaits.Add(1)
			s.vm.busyWait()
			continue
		}
		if !s.stalled {
			s.stalled = true
			s.l.stalls.Add(1)
			s.l.log.Debug("the VM does not take frames; dropping them until it does")
		}
		s.l.vmBusy.Add(1)
		frames = frames[1:]
	}
	return nil
}

// Status returns a snapshot of the link.
func (l *Link) Status() Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.snapshotLocked()
}

func (l *Link) snapshotLocked() Status {
	down := l.downtime
	if !l.downSince.IsZero() {
		down += l.now().Sub(l.downSince)
	}
	st := Status{
		State:      l.state,
		Reconnects: l.reconnects,
		LastError:  l.lastErr,
		Since:      l.since,
		TxFrames:   l.txFrames.Load(),
		TxBytes:    l.txBytes.Load(),
		RxFrames:   l.rxFrames.Load(),
		RxBytes:    l.rxBytes.Load(),
		Dropped: Drops{
			Oversize:    l.oversize.Load(),
			VMBusy:      l.vmBusy.Load(),
			PartialRead: l.partial.Load(),
			Empty:       l.empty.Load(),
		},
		Downtime:       down,
		FilteredFrames: l.filtered.Load(),
		Guest:          l.guest,
		Health:         l.health,
		GatewayRTT:     time.Duration(l.rtt.Load()),
	}
	if n := l.lastRx.Load(); n != 0 {
		st.LastRx = time.Unix(0, n).In(l.since.Location())
	}
	return st
}

// Subscribe returns a channel that receives the current status at once and
// a new snapshot on every change of state, reconnect count, last error,
// what the link learned about the guest (Status.Guest) or health
// (Status.Health; not on LastRx or GatewayRTT alone).
// A slow reader gets coalesced updates (the latest wins); the link never
// waits for it. The channel is closed by cancel (idempotent) or after Run
// returned and the final status was delivered.
func (l *Link) Subscribe() (<-chan Status, func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	// Once Run has returned the hub is closed: the channel holds the
	// final status and is closed.
	return l.subs.SubscribeWith(l.snapshotLocked())
}

// notifyLocked hands the current snapshot to every subscriber, replacing
// one it has not read yet (lock order: l.mu, then the hub's).
func (l *Link) notifyLocked() {
	l.subs.PublishFunc(l.snapshotLocked)
}
