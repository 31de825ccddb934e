// Package notify tells the user when the VM's network link to socket_vmnet
// has been lost for a few seconds, and when it comes back after such an
// outage.
//
// A Notifier consumes netlink.Status updates (Update) and decides; a Sender
// shows the notification: osascript's `display notification` on macOS,
// org.freedesktop.Notifications over the D-Bus session bus on Linux.
// NewSender returns the one for the running OS.
//
// Rules:
//   - "lost" is shown once per outage, when the link has been reconnecting
//     for LostAfter (default 5 s); shorter outages show nothing.
//   - "restored" is shown when the link is up again after an outage whose
//     "lost" was shown, and only then.
//   - At most MaxLostPerMinute (default 3) "lost" notifications are shown in
//     any 60 s; further outages in that minute show nothing. So a flapping
//     link shows at most 2*MaxLostPerMinute notifications a minute.
//   - A link that stops or fails instead of coming back ends the outage
//     without "restored" (the VM is going away; the app says why).
//
// Senders run on the Notifier's own goroutine, so Update never waits for
// one. This package may import netlink, logrus and (on Linux) godbus.
package notify

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/vmnetbar/vmnetbar/netlink"
)

// Sender shows one desktop notification.
type Sender interface {
	Send(title, body string) error
}

// Clock is the time source of a Notifier.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine after d.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc call.
type Timer interface {
	// Stop prevents the call if it has not started yet.
	Stop() bool
}

// SystemClock is the real clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// AfterFunc wraps time.AfterFunc.
func (SystemClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// Defaults of Config.
const (
	DefaultLostAfter        = 5 * time.Second
	DefaultMaxLostPerMinute = 3
)

// queueLen bounds the notifications waiting for the Sender; more than that
// means the Sender is stuck, and new ones are dropped.
const queueLen = 4

// Notification titles.
const (
	TitleLost     = "vmnetbar: network lost"
	TitleRestored = "vmnetbar: network restored"
)

// Config configures a Notifier. Zero values are the defaults.
type Config struct {
	Sender Sender             // required
	Log    logrus.FieldLogger // nil: discard
	Clock  Clock              // nil: SystemClock
	// LostAfter is how long the link must be reconnecting before "lost" is
	// shown.
	LostAfter time.Duration
	// MaxLostPerMinute caps the "lost" notifications in any 60 s.
	MaxLostPerMinute int
	// VM names the VM in every notification ("dev: ..."), for an app
	// with several; "" names none.
	VM string
}

// Notifier turns link status updates into notifications.
//
// States, per outage:
//
//	idle      -> down      Update with StateReconnecting (timer armed)
//	down      -> shown     timer fired and under the rate limit: "lost"
//	down      -> idle      Update with up/stopped/failed before the timer
//	shown     -> idle      Update with StateUp: "restored"
//	shown     -> idle      Update with stopped/failed: nothing
type Notifier struct {
	sender    Sender
	log       logrus.FieldLogger
	clock     Clock
	lostAfter time.Duration
	maxLost   int

	mu        sync.Mutex
	closed    bool
	down      bool      // an outage is going on
	downSince time.Time // when it started
	lastErr   string    // the link's last error during it
	lostShown bool      // "lost" was queued for it
	timer     Timer     // pending "lost" check, nil if none
	gen       uint64    // identifies the current outage for the timer
	lostTimes []time.Time
	vm        string

	queue chan note
	done  chan struct{}
}

type note struct{ title, body string }

// New returns a running Notifier; Close stops it.
func New(cfg Config) (*Notifier, error) {
	if cfg.Sender == nil {
		return nil, errors.New("notify: no Sender")
	}
	if cfg.LostAfter < 0 || cfg.MaxLostPerMinute < 0 {
		return nil, fmt.Errorf("notify: negative LostAfter (%v) or MaxLostPerMinute (%d)", cfg.LostAfter, cfg.MaxLostPerMinute)
	}
	n := &Notifier{
		sender:    cfg.Sender,
		log:       cfg.Log,
		clock:     cfg.Clock,
		lostAfter: cfg.LostAfter,
		maxLost:   cfg.MaxLostPerMinute,
		vm:        cfg.VM,
		queue:     make(chan note, queueLen),
		done:      make(chan struct{}),
	}
	if n.log == nil {
		l := logrus.New()
		l.Out = discard{}
		n.log = l
	}
	if n.clock == nil {
		n.clock = SystemClock{}
	}
	if n.lostAfter == 0 {
		n.lostAfter = DefaultLostAfter
	}
	if n.maxLost == 0 {
		n.maxLost = DefaultMaxLostPerMinute
	}
	go n.sendLoop()
	return n, nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// Update feeds the Notifier the link's latest status. Repeated and
// coalesced updates are fine.
func (n *Notifier) Update(s netlink.Status) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	now := n.clock.Now()
	switch s.State {
	case netlink.StateReconnecting:
		n.lastErr = s.LastError
		if n.down {
			return
		}
		n.down, n.lostShown = true, false
		n.downSince = s.Since
		if n.downSince.IsZero() || n.downSince.After(now) {
			n.downSince = now
		}
		n.gen++
		gen := n.gen
		n.timer = n.clock.AfterFunc(n.lostAfter-now.Sub(n.downSince), func() { n.lostCheck(gen) })
	case netlink.StateUp:
		if !n.down {
			return
		}
		if n.lostShown {
			back := s.Since
			if back.IsZero() || back.Before(n.downSince) {
				back = now
			}
			n.enqueueLocked(TitleRestored, fmt.Sprintf("The VM's network is back after %s.",
				roundDuration(back.Sub(n.downSince))))
		}
		n.endOutageLocked()
	default:
		// Connecting happens only before the first connection; stopped and
		// failed end the link for good.
		if n.down {
			n.endOutageLocked()
		}
	}
}

// lostCheck runs LostAfter into outage gen.
func (n *Notifier) lostCheck(gen uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed || !n.down || gen != n.gen || n.lostShown {
		return
	}
	n.timer = nil
	now := n.clock.Now()
	kept := n.lostTimes[:0]
	for _, t := range n.lostTimes {
		if now.Sub(t) < time.Minute {
			kept = append(kept, t)
		}
	}
	n.lostTimes = kept
	if len(n.lostTimes) >= n.maxLost {
		n.log.WithField("limit_per_minute", n.maxLost).Info("link lost again; notification suppressed (rate limit)")
		return
	}
	n.lostTimes = append(n.lostTimes, now)
	n.lostShown = true
	body := fmt.Sprintf("The VM has had no connection to socket_vmnet for %s; reconnecting.",
		roundDuration(now.Sub(n.downSince)))
	if n.lastErr != "" {
		body += " Last error: " + n.lastErr
	}
	n.enqueueLocked(TitleLost, body)
}

func (n *Notifier) endOutageLocked() {
	if n.timer != nil {
		n.timer.Stop()
		n.timer = nil
	}
	n.down, n.lostShown, n.lastErr = false, false, ""
	n.gen++
}

func (n *Notifier) enqueueLocked(title, body string) {
	if n.vm != "" {
		body = n.vm + ": " + body
	}
	select {
	case n.queue <- note{title, body}:
	default:
		n.log.WithField("title", title).Warn("notification dropped: the previous ones are still being shown")
	}
}

// sendLoop shows the queued notifications until Close.
func (n *Notifier) sendLoop() {
	defer close(n.done)
	for nt := range n.queue {
		if err := n.sender.Send(nt.title, nt.body); err != nil {
			n.log.WithError(err).WithField("title", nt.title).Warn("could not show a notification")
		}
	}
}

// Close stops the Notifier. Notifications already queued are still shown
// (each bounded by its Sender's timeout); later Updates do nothing.
func (n *Notifier) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		<-n.done
		return nil
	}
	n.closed = true
	if n.timer != nil {
		n.timer.Stop()
		n.timer = nil
	}
	close(n.queue)
	n.mu.Unlock()
	<-n.done
	return nil
}

// roundDuration rounds d for people: whole seconds (at least 1 s).
func roundDuration(d time.Duration) time.Duration {
	d = d.Round(time.Second)
	if d < time.Second {
		d = time.Second
	}
	return d
}
