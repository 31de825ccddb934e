package netlink

import (
	"context"
	"errors"
	"net"
	"syscall"
	"time"
)

// Whether the network behind the daemon answers (Status.Health).
//
// The down loop stores the time of every read that brought bytes from the
// daemon (lastRx, one clock reading and one atomic store per read, which
// holds many frames under load) and, while health is not ok, turns it ok
// (markRx). Everything else is healthLoop's: it owns the probe of the
// gateway and the decision that the network is silent, and waits on the
// link's Clock only while it has something to time.
const (
	// probeIdle: with nothing from the daemon for this long, the gateway
	// is probed; at most one probe per probeIdle.
	probeIdle = 10 * time.Second
	// gwProbeTimeout: how long the last of probesToSilent probes is given
	// before the network is declared silent (3 probes: silent 33 s after
	// the last frame).
	gwProbeTimeout = 3 * time.Second
	// probesToSilent unanswered probes make the network silent.
	probesToSilent = 3
	// askTimeout: without probing, a request of the guest's own (an ARP
	// request, a DHCP DISCOVER or REQUEST) unanswered for this long (no
	// frame from the daemon since) makes the network silent. ARP probes
	// and announcements are not requests: nothing answers them on a
	// working network.
	askTimeout = 15 * time.Second
)

// arpFrameSize is the size of a probe: an Ethernet header and an ARP
// payload for Ethernet/IPv4, unpadded (as a Linux guest sends its own).
const arpFrameSize = ethHeaderSize + 28

// monoNow reads the system's monotonic clock (never 0): probe round trips
// are timed on it whatever Config.Clock is, since a fake clock cannot time
// a real reply.
func (l *Link) monoNow() int64 { return int64(time.Since(l.mono)) + 1 }

// markRx records that bytes came from the daemon on connection gen.
func (l *Link) markRx(gen uint64) {
	l.lastRx.Store(l.now().UnixNano())
	if !l.healthOK.Load() {
		l.rxHealth(gen)
	}
}

// rxHealth makes health ok after a frame from the daemon on the current
// connection and publishes the change.
func (l *Link) rxHealth(gen uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if gen != l.gen || l.conn == nil || l.health == HealthOK {
		return
	}
	if l.health == HealthSilent {
		l.log.Info("the network behind the daemon answers again")
	}
	l.setHealthLocked(HealthOK)
	l.notifyLocked()
}

// setHealthLocked changes health (without notifying); the caller
// publishes.
func (l *Link) setHealthLocked(h Health) {
	l.health = h
	l.healthOK.Store(h == HealthOK)
}

// setSilentLocked makes health silent (without notifying): the round trip
// of an earlier probe no longer says anything.
func (l *Link) setSilentLocked() {
	l.setHealthLocked(HealthSilent)
	l.rtt.Store(0)
}

// resetHealthLocked starts over for a new connection or none: health
// unknown, no probe outstanding, no round trip known, no guest request
// pending.
func (l *Link) resetHealthLocked(connAt time.Time) {
	l.setHealthLocked(HealthUnknown)
	l.connAt = connAt
	l.gwProbes = 0
	l.firstProbeAt, l.lastProbeAt = time.Time{}, time.Time{}
	l.probeSent.Store(0)
	l.rtt.Store(0)
	l.askSince.Store(0)
	l.wakeHealth()
}

// wakeHealth makes healthLoop look again (a new connection, guest or
// request of the guest).
func (l *Link) wakeHealth() {
	select {
	case l.healthWake <- struct{}{}:
	default:
	}
}

// noteAsk records a request of the guest's own (an ARP request with a
// sender address and another target, a DHCP DISCOVER or REQUEST) unless
// one is already waiting for an answer.
func (l *Link) noteAsk() {
	if !l.askWanted.Load() {
		return // probing decides
	}
	a := l.askSince.Load()
	if a != 0 && l.lastRx.Load() < a {
		return // an earlier one is still unanswered
	}
	l.askSince.Store(l.now().UnixNano())
	l.wakeHealth()
}

// healthLoop owns probing and the silent verdict; it ends with ctx.
func (l *Link) healthLoop(ctx context.Context) {
	var frame [headerSize + arpFrameSize]byte
	// The pending timer (fired nil: none) and when it is due; a look that
	// wants the same time again keeps it.
	var fired <-chan time.Time
	var due time.Time
	stop := func() bool { return false }
	defer func() { stop() }()
	for {
		wait, probe, conn, gen := l.healthStep(&frame)
		if probe {
			l.sendProbe(conn, gen, frame[:])
		}
		if wait <= 0 {
			stop()
			fired = nil
		} else if at := l.now().Add(wait); fired == nil || !at.Equal(due) {
			stop()
			fired, stop = l.clock.NewTimer(wait)
			due = at
		}
		select {
		case <-ctx.Done():
			return
		case <-l.healthWake:
		case <-fired:
			fired = nil
			stop = func() bool { return false }
		}
	}
}

// healthStep decides, at the link's present time, whether to probe now
// (filling frame) and whether the network is silent, and returns how long
// to wait before the next look (0: until woken).
func (l *Link) healthStep(frame *[headerSize + arpFrameSize]byte) (wait time.Duration, probe bool, conn net.Conn, gen uint64) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil || l.closing {
		return 0, false, nil, 0
	}
	var lastRx time.Time
	if n := l.lastRx.Load(); n != 0 {
		lastRx = time.Unix(0, n)
	}
	idleSince := l.connAt
	if lastRx.After(idleSince) {
		idleSince = lastRx
	}
	g := l.guest
	probing := l.probe && g.Gateway.Is4() && g.IPv4.Is4() && !g.MAC.IsZero()
	l.askWanted.Store(!probing)
	if probing {
		if l.gwProbes > 0 && !lastRx.Before(l.firstProbeAt) {
			l.gwProbes = 0 // answered (by anything from the daemon)
		}
		if l.gwProbes >= probesToSilent && !now.Before(l.lastProbeAt.Add(gwProbeTimeout)) && l.health != HealthSilent {
			l.setSilentLocked()
			l.notifyLocked()
			l.log.WithField("probes", l.gwProbes).Warn("the network behind the daemon is silent: the gateway does not answer")
		}
		if l.lastProbeAt.After(idleSince) {
			idleSince = l.lastProbeAt
		}
		next := idleSince.Add(probeIdle)
		if !now.Before(next) {
			putProbe(frame, g)
			probe, conn, gen = true, l.conn, l.gen
			if l.gwProbes == 0 {
				l.firstProbeAt = now
			}
			l.gwProbes++
			l.lastProbeAt = now
			next = now.Add(probeIdle)
		}
		if l.gwProbes >= probesToSilent && l.health != HealthSilent {
			if t := l.lastProbeAt.Add(gwProbeTimeout); t.Before(next) {
				next = t
			}
		}
		return next.Sub(now), probe, conn, gen
	}
	// Without probing: the guest's own requests.
	a := l.askSince.Load()
	if a == 0 {
		return 0, false, nil, 0
	}
	asked := time.Unix(0, a)
	if !lastRx.Before(asked) {
		l.askSince.CompareAndSwap(a, 0) // answered
		return 0, false, nil, 0
	}
	if due := asked.Add(askTimeout); now.Before(due) {
		return due.Sub(now), false, nil, 0
	}
	if l.health != HealthSilent {
		l.setSilentLocked()
		l.notifyLocked()
		l.log.WithField("unanswered_for", now.Sub(asked)).Warn("the network behind the daemon is silent: the guest's requests get no answer")
	}
	return 0, false, nil, 0
}

// putProbe writes into frame (header included) an ARP request for g's
// gateway from g's MAC and address.
func putProbe(frame *[headerSize + arpFrameSize]byte, g Guest) {
	f := frame[:]
	f[0], f[1], f[2], f[3] = 0, 0, 0, arpFrameSize
	e := f[headerSize:]
	for i := 0; i < 6; i++ {
		e[i] = 0xff // broadcast
	}
	copy(e[6:12], g.MAC[:])
	e[12], e[13] = etherTypeARP>>8, etherTypeARP&0xff
	a := e[ethHeaderSize:]
	a[0], a[1] = 0, 1 // Ethernet
	a[2], a[3] = etherTypeIPv4>>8, etherTypeIPv4&0xff
	a[4], a[5] = 6, 4
	a[6], a[7] = 0, 1 // request
	copy(a[8:14], g.MAC[:])
	ip, gw := g.IPv4.As4(), g.Gateway.As4()
	copy(a[14:18], ip[:])
	for i := 18; i < 24; i++ {
		a[i] = 0
	}
	copy(a[24:28], gw[:])
}

// sendProbe writes a probe on conn in one non-blocking attempt: a daemon
// that does not even take it is not answering either. It goes through the
// connection's own write lock, so it never lands inside a batch of the up
// loop. The frame reaches the daemon whole or not at all (see maxWrite).
func (l *Link) sendProbe(conn net.Conn, gen uint64, frame []byte) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		l.log.Debug("cannot probe the gateway on this connection (not a socket)")
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	var n int
	var errno syscall.Errno
	// The target is what a reply must match: gateway and guest addresses.
	target := uint64(be32(frame[headerSize+ethHeaderSize+24:]))<<32 | uint64(be32(frame[headerSize+ethHeaderSize+14:]))
	l.probeTarget.Store(target)
	l.probeSent.Store(l.monoNow())
	werr := rc.Write(func(fd uintptr) bool {
		n, errno = writeFD(fd, frame)
		return true
	})
	l.gwProbesSent.Add(1)
	switch {
	case werr != nil:
		l.log.WithError(werr).Debug("probe of the gateway not sent")
	case errno == syscall.EAGAIN:
		l.log.Debug("probe of the gateway not sent: the daemon takes nothing")
	case errno != 0:
		l.log.WithError(errno).Debug("probe of the gateway not sent")
	case n != len(frame):
		// Cannot happen with the connection's options (see maxWrite);
		// the stream would now be cut in a frame: start over.
		l.fail(gen, errors.New("writing a probe to the daemon: short write"))
	default:
		l.log.Debug("probed the gateway")
	}
}

// probeReply times an ARP payload p from the daemon if it answers the
// outstanding probe.
func (l *Link) probeReply(p []byte, sent int64) {
	t := l.probeTarget.Load()
	if !isProbeReply(p, uint32(t>>32), uint32(t)) {
		return
	}
	rtt := l.monoNow() - sent
	if l.probeSent.CompareAndSwap(sent, 0) && rtt <= int64(gwProbeTimeout) {
		// A later reply (to the guest's own ARP, say) does not time
		// the probe.
		l.rtt.Store(rtt)
	}
}

// isProbeReply reports whether an ARP payload (after the Ethernet header)
// is a reply from gateway (IPv4, packed) to guest.
func isProbeReply(p []byte, gateway, guest uint32) bool {
	a, ok := parseARP(p)
	return ok && a.op == 2 && be32(a.senderIP[:]) == gateway && be32(a.targetIP[:]) == guest
}
