package netlink

import (
	"bytes"
	"encoding/json"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmnetbar/vmnetbar/internal/testclock"
	"github.com/vmnetbar/vmnetbar/internal/testdaemon"
	"github.com/vmnetbar/vmnetbar/internal/testwait"
)

// The health tests run the link against testdaemon's Hub, a real daemon
// socket: with one client, a hub forwards nothing (there is no other VM),
// and Inject plays the network behind the daemon. Time is a fake clock.

// healthTimer waits until the health loop of a link without VM-side probe
// waits on the clock (its only timer while connected) and returns how
// long.
func healthTimer(t testing.TB, clock *testclock.Fake) time.Duration {
	t.Helper()
	return testwait.ForValue(t, "the health loop to wait on the clock", clock.Timers,
		func(ts []time.Duration) bool { return len(ts) == 1 })[0]
}

// tapARP collects the ARP frames the hub gets.
type tapARP struct {
	mu     sync.Mutex
	frames [][]byte
}

func (a *tapARP) tap(_ int, f []byte) {
	if etype, _, _ := parseEth(f); etype == etherTypeARP {
		a.mu.Lock()
		a.frames = append(a.frames, bytes.Clone(f))
		a.mu.Unlock()
	}
}

func (a *tapARP) get() [][]byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([][]byte(nil), a.frames...)
}

// wantProbe is the probe of a guest at leaseIP with vmMAC, for routerIP:
// an ARP request, broadcast, from the guest's MAC and address.
func wantProbe() []byte {
	return ethFrame(bcastMAC, vmMAC, etherTypeARP, arpPayload(1, vmMAC, leaseIP, routerIP))
}

func hubLink(t *testing.T, clock *testclock.Fake, cfg Config) (*testdaemon.Hub, *tapARP, *net.UnixConn, *Link) {
	t.Helper()
	arps := &tapARP{}
	hub := testdaemon.StartHub(t, testdaemon.HubConfig{Path: socketPath(t), Tap: arps.tap})
	vm, host := vmPair(t)
	cfg.Socket, cfg.Clock = hub.SocketPath(), clock
	if cfg.MAC == nil {
		cfg.MAC = vmMAC
	}
	l := newLink(t, host, cfg)
	noProbe(l)
	runLink(t, l)
	st := waitStatus(t, l, "up", func(s Status) bool { return s.State == StateUp })
	testwait.For(t, "the hub to take the link", func() bool { return hub.Clients() == 1 })
	if st.Health != HealthUnknown || !st.LastRx.IsZero() {
		t.Fatalf("health %v, last rx %v before any frame: want unknown, none", st.Health, st.LastRx)
	}
	return hub, arps, vm, l
}

// inject sends a frame from "the network" and waits until the link has
// read it (last_rx is the present fake time).
func inject(t *testing.T, hub *testdaemon.Hub, l *Link, clock *testclock.Fake, f []byte) {
	t.Helper()
	if err := hub.Inject(f); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, l, "the frame read", func(s Status) bool { return s.LastRx.Equal(clock.Now()) && s.Health == HealthOK })
}

// TestHealthSilentWithin35s: a daemon that forwards nothing once the guest
// has its lease is probed every 10 s (a well-formed ARP request for the
// gateway from the guest's MAC and address); three unanswered probes make
// the link "silent" 33 s after the last frame (published once), the first
// frame makes it "ok" again, and no probe goes out while frames flow.
func TestHealthSilentWithin35s(t *testing.T) {
	clock := testclock.New(time.Time{})
	hub, arps, _, l := hubLink(t, clock, Config{})
	updates, cancel := l.Subscribe()
	defer cancel()
	inject(t, hub, l, clock, ack(vmMAC, leaseIP, 3600).serverFrame())
	waitStatus(t, l, "the lease", func(s Status) bool { return s.Guest.Gateway.IsValid() })
	last := clock.Now()

	for i := 1; i <= probesToSilent; i++ {
		if w := healthTimer(t, clock); w != probeIdle {
			t.Fatalf("probe %d: the health loop waits %v, want %v", i, w, probeIdle)
		}
		clock.Advance(probeIdle)
		got := testwait.ForValue(t, "the probe at the daemon", arps.get, func(f [][]byte) bool { return len(f) == i })
		if !bytes.Equal(got[i-1], wantProbe()) {
			t.Fatalf("probe %d:\n%x\nwant the ARP request\n%x", i, got[i-1], wantProbe())
		}
		if h := l.Status().Health; h != HealthOK {
			t.Fatalf("health %v after %d unanswered probes, want ok still", h, i)
		}
	}
	w := healthTimer(t, clock)
	clock.Advance(w)
	st := waitStatus(t, l, "silent", func(s Status) bool { return s.Health == HealthSilent })
	if took := clock.Since(last); took > 35*time.Second {
		t.Errorf("silent %v after the last frame, want within 35s", took)
	}
	if !st.LastRx.Equal(last) || st.GatewayRTT != 0 {
		t.Errorf("last rx %v, gateway rtt %v: want %v and none", st.LastRx, st.GatewayRTT, last)
	}
	testwait.ForValue(t, "a status update saying silent", func() Health {
		select {
		case s := <-updates:
			return s.Health
		default:
			return HealthUnknown
		}
	}, func(h Health) bool { return h == HealthSilent })

	// Frames flow again: ok at once, and no probe while they do.
	sent := l.gwProbesSent.Load()
	for i := 0; i < 6; i++ {
		inject(t, hub, l, clock, ethFrame(bcastMAC, srvMAC, 0x0800, make([]byte, 46)))
		healthTimer(t, clock)
		clock.Advance(probeIdle / 2)
	}
	healthTimer(t, clock)
	if n := l.gwProbesSent.Load(); n != sent {
		t.Errorf("%d probes sent while frames flowed", n-sent)
	}
	if n := len(arps.get()); n != probesToSilent {
		t.Errorf("the daemon got %d probes, want %d", n, probesToSilent)
	}
	if h := l.Status().Health; h != HealthOK {
		t.Errorf("health %v while frames flow, want ok", h)
	}
}

// TestHealthProbeAnsweredStaysOK: a probe answered by the gateway's ARP
// reply keeps health ok and times the round trip; the reply reaches the
// guest.
func TestHealthProbeAnsweredStaysOK(t *testing.T) {
	clock := testclock.New(time.Time{})
	hub, arps, vm, l := hubLink(t, clock, Config{})
	inject(t, hub, l, clock, ack(vmMAC, leaseIP, 3600).serverFrame())
	buf := make([]byte, MaxFrameSize+1)
	if _, err := readVM(vm, buf, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, l, "the lease", func(s Status) bool { return s.Guest.Gateway.IsValid() })
	reply := ethFrame(vmMAC, srvMAC, etherTypeARP, arpPayload(2, srvMAC, routerIP, leaseIP))
	for i := 1; i <= 2*probesToSilent; i++ {
		clock.Advance(healthTimer(t, clock))
		testwait.For(t, "the probe", func() bool { return len(arps.get()) == i })
		inject(t, hub, l, clock, reply)
		f, err := readVM(vm, buf, 10*time.Second)
		if err != nil || !bytes.Equal(f, reply) {
			t.Fatalf("the guest got %x, %v: want the ARP reply", f, err)
		}
	}
	st := l.Status()
	if st.Health != HealthOK || st.GatewayRTT <= 0 {
		t.Errorf("health %v, gateway rtt %v: want ok and a round trip", st.Health, st.GatewayRTT)
	}
	// Not an answer to the probe (another sender): still counts as a frame
	// but does not time the gateway.
	if isProbeReply(arpPayload(2, srvMAC, leaseIP, leaseIP), be32(routerIP.To4()), be32(leaseIP.To4())) {
		t.Error("an ARP reply from another address was taken for the gateway's")
	}
}

// TestHealthWithoutProbing: without probing (network.probe: false, or no
// gateway known), a request of the guest's own that gets no answer for 15 s
// makes the link silent, and not a moment earlier; no probe is sent.
func TestHealthWithoutProbing(t *testing.T) {
	arp := ethFrame(bcastMAC, vmMAC, etherTypeARP, arpPayload(1, vmMAC, leaseIP, routerIP))
	discover := dhcpMsg{op: 1, msgType: dhcpDiscover, chaddr: vmMAC}.clientFrame(vmMAC)
	for _, tc := range []struct {
		name    string
		noProbe bool
		lease   bool // the guest has a lease (a gateway) first
		ask     []byte
	}{
		{"probe off, ARP", true, true, arp},
		{"probe off, DHCP", true, true, discover},
		{"no gateway, ARP", false, false, arp},
		{"no gateway, DHCP", false, false, discover},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := testclock.New(time.Time{})
			hub, arps, vm, l := hubLink(t, clock, Config{NoProbe: tc.noProbe})
			if tc.lease {
				inject(t, hub, l, clock, ack(vmMAC, leaseIP, 3600).serverFrame())
				waitStatus(t, l, "the lease", func(s Status) bool { return s.Guest.Gateway.IsValid() })
				clock.Advance(time.Minute)
				if ts := clock.Timers(); len(ts) != 0 {
					t.Fatalf("timers %v with probing off and nothing asked: want none", ts)
				}
			}
			if _, err := vm.Write(tc.ask); err != nil {
				t.Fatal(err)
			}
			testwait.For(t, "the request at the daemon", func() bool { return hub.Received() == 1 })
			if w := healthTimer(t, clock); w != askTimeout {
				t.Fatalf("the health loop waits %v, want %v", w, askTimeout)
			}
			clock.Advance(askTimeout - time.Second)
			if w := healthTimer(t, clock); w != time.Second {
				t.Fatalf("the health loop waits %v, want 1s", w)
			}
			if h := l.Status().Health; h == HealthSilent {
				t.Fatal("silent after 14s")
			}
			clock.Advance(time.Second)
			waitStatus(t, l, "silent", func(s Status) bool { return s.Health == HealthSilent })
			inject(t, hub, l, clock, ethFrame(bcastMAC, srvMAC, 0x0800, make([]byte, 46)))
			want := 0
			if etype, _, _ := parseEth(tc.ask); etype == etherTypeARP {
				want = 1
			}
			if n := len(arps.get()); n != want || l.gwProbesSent.Load() != 0 {
				t.Errorf("%d ARP frames at the daemon (%d probes): want only the guest's", n, l.gwProbesSent.Load())
			}
		})
	}
}

// TestHealthAnsweredRequestIsNotSilent: a guest's request answered in time
// (any frame from the daemon after it) does not make the link silent.
func TestHealthAnsweredRequestIsNotSilent(t *testing.T) {
	clock := testclock.New(time.Time{})
	hub, _, vm, l := hubLink(t, clock, Config{NoProbe: true})
	if _, err := vm.Write(ethFrame(bcastMAC, vmMAC, etherTypeARP, arpPayload(1, vmMAC, leaseIP, routerIP))); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "the request at the daemon", func() bool { return hub.Received() == 1 })
	healthTimer(t, clock)
	clock.Advance(time.Second)
	inject(t, hub, l, clock, ethFrame(vmMAC, srvMAC, etherTypeARP, arpPayload(2, srvMAC, routerIP, leaseIP)))
	clock.Advance(healthTimer(t, clock))
	testwait.For(t, "the health loop to drop its timer", func() bool { return len(clock.Timers()) == 0 })
	if h := l.Status().Health; h != HealthOK {
		t.Errorf("health %v, want ok", h)
	}
}

// TestHealthResetOnReconnect: a lost connection makes health unknown
// (published with the state), until a frame comes on the new one.
func TestHealthResetOnReconnect(t *testing.T) {
	_, host := vmPair(t)
	d := newDaemon(t, socketPath(t))
	d.start()
	l := newLink(t, host, Config{Socket: d.path, MAC: vmMAC})
	stop, _ := runLink(t, l)
	c := d.next()
	if err := NewEncoder(c).WriteFrame(ethFrame(bcastMAC, srvMAC, 0x0800, make([]byte, 46))); err != nil {
		t.Fatal(err)
	}
	first := waitStatus(t, l, "ok", func(s Status) bool { return s.Health == HealthOK })
	c.Close()
	c2 := d.next()
	st := waitStatus(t, l, "up again", func(s Status) bool { return s.State == StateUp && s.Reconnects == 1 })
	if st.Health != HealthUnknown || !st.LastRx.Equal(first.LastRx) {
		t.Errorf("after a reconnect: health %v, last rx %v; want unknown and the last frame's time %v", st.Health, st.LastRx, first.LastRx)
	}
	if err := NewEncoder(c2).WriteFrame(ethFrame(bcastMAC, srvMAC, 0x0800, make([]byte, 46))); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, l, "ok again", func(s Status) bool { return s.Health == HealthOK })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if h := l.Status().Health; h != HealthUnknown {
		t.Errorf("health %v once stopped, want unknown", h)
	}
}

func TestHealthJSON(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	st := Status{State: StateUp, Health: HealthSilent, LastRx: at, GatewayRTT: 1500 * time.Microsecond}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	const want = `"health":"silent","last_rx":"2026-12-01T10:00:00Z","gateway_rtt_ms":1.5}`
	if !strings.HasSuffix(string(b), want) {
		t.Fatalf("JSON %s\nwant the suffix %s", b, want)
	}
	var back Status
	if err := json.Unmarshal(b, &back); err != nil || back != st {
		t.Fatalf("round trip: %v\n%+v\nwant %+v", err, back, st)
	}
	var h Health
	if err := h.UnmarshalText([]byte("loud")); err == nil || !strings.Contains(err.Error(), `"loud"`) {
		t.Errorf("unmarshal of a bad health: %v", err)
	}
	for _, h := range []Health{HealthUnknown, HealthOK, HealthSilent} {
		var back Health
		if b, _ := h.MarshalText(); back.UnmarshalText(b) != nil || back != h {
			t.Errorf("%v does not round-trip", h)
		}
	}
}

// TestProbeReplyTiming: only the gateway's reply to the guest times the
// probe, and only within the probe's 3 s; a later one clears it untimed.
func TestProbeReplyTiming(t *testing.T) {
	_, host := vmPair(t)
	l := newLink(t, host, Config{Socket: "/tmp/unused.sock", MAC: vmMAC})
	gw, ip := be32(routerIP.To4()), be32(leaseIP.To4())
	l.probeTarget.Store(uint64(gw)<<32 | uint64(ip))
	reply := arpPayload(2, srvMAC, routerIP, leaseIP)

	sent := l.monoNow() - int64(4*time.Second)
	l.probeSent.Store(sent)
	l.probeReply(reply, sent)
	if l.rtt.Load() != 0 || l.probeSent.Load() != 0 {
		t.Errorf("a reply 4s late: rtt %v, outstanding %v; want none, cleared", time.Duration(l.rtt.Load()), l.probeSent.Load())
	}

	sent = l.monoNow() - int64(time.Millisecond)
	l.probeSent.Store(sent)
	l.probeReply(arpPayload(2, srvMAC, leaseIP, leaseIP), sent)  // not from the gateway
	l.probeReply(arpPayload(1, srvMAC, routerIP, leaseIP), sent) // a request
	if l.rtt.Load() != 0 || l.probeSent.Load() != sent {
		t.Fatalf("a frame that is not the reply timed the probe")
	}
	l.probeReply(reply, sent)
	if rtt := time.Duration(l.rtt.Load()); rtt < time.Millisecond || rtt > gwProbeTimeout || l.probeSent.Load() != 0 {
		t.Errorf("rtt %v, outstanding %v: want >= 1ms and cleared", rtt, l.probeSent.Load())
	}
}

// TestHealthProbeAndAnnouncementAreNotAsks: without probing (network.probe
// off, or a static guest with no gateway), an ARP probe (sender 0.0.0.0)
// and an announcement (sender == target, as a request or a reply) are not
// requests: nothing answers them on a working network, so they start no
// wait for an answer and never make the link silent. A real request does.
func TestHealthProbeAndAnnouncementAreNotAsks(t *testing.T) {
	for _, tc := range []struct {
		name    string
		noProbe bool
		lease   bool
	}{
		{"probe off", true, true},
		{"no gateway", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := testclock.New(time.Time{})
			hub, _, vm, l := hubLink(t, clock, Config{NoProbe: tc.noProbe})
			if tc.lease {
				inject(t, hub, l, clock, ack(vmMAC, leaseIP, 3600).serverFrame())
				waitStatus(t, l, "the lease", func(s Status) bool { return s.Guest.Gateway.IsValid() })
			}
			for i, f := range [][]byte{
				ethFrame(bcastMAC, vmMAC, etherTypeARP, arpPayload(1, vmMAC, net.IPv4zero, leaseIP)), // RFC 5227 probe
				ethFrame(bcastMAC, vmMAC, etherTypeARP, arpPayload(1, vmMAC, leaseIP, leaseIP)),      // announcement
				ethFrame(bcastMAC, vmMAC, etherTypeARP, arpPayload(2, vmMAC, leaseIP, leaseIP)),      // announcement as a reply
			} {
				if _, err := vm.Write(f); err != nil {
					t.Fatal(err)
				}
				testwait.For(t, "the frame at the daemon", func() bool { return hub.Received() == uint64(i+1) })
				// Learning comes before the write to the daemon.
				if a := l.askSince.Load(); a != 0 {
					t.Fatalf("frame %d taken for a request of the guest's", i)
				}
			}
			clock.Advance(askTimeout)
			if ts := clock.Timers(); len(ts) != 0 {
				t.Fatalf("timers %v after ARP probes and announcements: want none", ts)
			}
			if h := l.Status().Health; h == HealthSilent {
				t.Fatal("silent after ARP probes and announcements")
			}
			// A real request still counts.
			if _, err := vm.Write(ethFrame(bcastMAC, vmMAC, etherTypeARP, arpPayload(1, vmMAC, leaseIP, routerIP))); err != nil {
				t.Fatal(err)
			}
			if w := healthTimer(t, clock); w != askTimeout {
				t.Fatalf("after a request the health loop waits %v, want %v", w, askTimeout)
			}
		})
	}
}

// answeredProbe brings a link from hubLink with a lease to an answered
// probe of the gateway and returns its round trip.
func answeredProbe(t *testing.T, hub *testdaemon.Hub, arps *tapARP, vm *net.UnixConn, l *Link, clock *testclock.Fake) time.Duration {
	t.Helper()
	inject(t, hub, l, clock, ack(vmMAC, leaseIP, 3600).serverFrame())
	waitStatus(t, l, "the lease", func(s Status) bool { return s.Guest.Gateway.IsValid() })
	n := len(arps.get())
	clock.Advance(healthTimer(t, clock))
	testwait.For(t, "the probe", func() bool { return len(arps.get()) == n+1 })
	inject(t, hub, l, clock, ethFrame(vmMAC, srvMAC, etherTypeARP, arpPayload(2, srvMAC, routerIP, leaseIP)))
	return waitStatus(t, l, "the round trip", func(s Status) bool { return s.GatewayRTT > 0 }).GatewayRTT
}

// TestHealthRTTClearedWhenSilent: once the gateway stops answering and the
// link turns silent, the round trip of the earlier answered probe is not
// shown (0, omitted from the JSON).
func TestHealthRTTClearedWhenSilent(t *testing.T) {
	clock := testclock.New(time.Time{})
	hub, arps, vm, l := hubLink(t, clock, Config{})
	answeredProbe(t, hub, arps, vm, l, clock)
	n := len(arps.get())
	for i := 1; i <= probesToSilent; i++ {
		clock.Advance(healthTimer(t, clock))
		testwait.For(t, "the probe", func() bool { return len(arps.get()) == n+i })
	}
	clock.Advance(healthTimer(t, clock))
	st := waitStatus(t, l, "silent", func(s Status) bool { return s.Health == HealthSilent })
	if st.GatewayRTT != 0 {
		t.Errorf("gateway rtt %v while silent, want none", st.GatewayRTT)
	}
	if b, _ := json.Marshal(st); strings.Contains(string(b), "gateway_rtt_ms") {
		t.Errorf("JSON while silent has a round trip: %s", b)
	}
}

// TestHealthRTTClearedOnReconnect: a new connection starts without a round
// trip (the last one timed the old connection's network).
func TestHealthRTTClearedOnReconnect(t *testing.T) {
	clock := testclock.New(time.Time{})
	hub, arps, vm, l := hubLink(t, clock, Config{})
	answeredProbe(t, hub, arps, vm, l, clock)
	l.Reconnect()
	st := waitStatus(t, l, "up again", func(s Status) bool { return s.State == StateUp && s.Reconnects == 1 })
	if st.GatewayRTT != 0 || st.Health != HealthUnknown {
		t.Errorf("after a reconnect: gateway rtt %v, health %v; want none, unknown", st.GatewayRTT, st.Health)
	}
}
