package e2e

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vmnetbar/vmnetbar/internal/testguest"
	"github.com/vmnetbar/vmnetbar/netlink"
)

// The gvproxy network (internal/testdaemon).
var (
	gvproxyGateway = netip.MustParseAddr("192.168.127.1")
	// staticAddr is outside gvproxy's DHCP leases (from .2 upwards).
	staticAddr = netip.MustParsePrefix("192.168.127.50/24")
)

// learnWithin is how soon after the guest's lease or first ARP the link
// must show its address (issue 11).
const learnWithin = time.Second

// pollEvery is the tests' polling period for the console log and the
// link's status.
const pollEvery = 50 * time.Millisecond

// How "within 1 s" is measured, robustly under TCG on loaded cores: never
// on the guest's clock (its uptime under TCG is not the host's time), only
// on the host's:
//   - the link's own time of learning, Status().Guest.Since, against the
//     time the frame tap between the link and gvproxy had the frame that
//     taught it (the DHCP ACK on its way to the guest, the guest's first
//     ARP on its way to gvproxy). Both are read from the host clock when
//     the frame passes, whatever the test's goroutine is doing;
//   - what a user sees: one loop polls the console log and then the
//     link's status every 50 ms and records the first poll at which each
//     showed the address. A starved test process delays both alike, so
//     their difference stays a fair measure (to one poll period).

// TestGuestAddressFromDHCP boots the test guest on gvproxy: the IPv4
// address the link shows (source dhcp, with the gateway) is the one the
// guest's DHCP client printed, and the link showed it within 1 s of the
// lease.
func TestGuestAddressFromDHCP(t *testing.T) {
	t.Parallel()
	r := startGuestRig(t, testguest.Options{Pings: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	con := &consoleProbe{path: r.console}
	var shown time.Time // the first poll at which the status had the lease
	var s netlink.Status
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for con.found.IsZero() || shown.IsZero() {
		con.poll(t, func(l testguest.Log) bool { return l.Addr != "" })
		if shown.IsZero() {
			if s = r.link.Status(); s.Guest.Source == netlink.GuestSourceDHCP {
				shown = time.Now()
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for the lease on the console and in the link's status: %v; console: %s; link guest: %+v",
				ctx.Err(), con.log.Summary(), s.Guest)
		case <-r.vm.Done():
			t.Fatalf("the VM ended; console: %s", con.log.Summary())
		case <-tick.C:
		}
	}
	l := con.log
	if l.DHCPFail || l.Static {
		t.Fatalf("console: %s", l.Summary())
	}
	printed, _, _ := strings.Cut(l.Addr, "/")
	g := r.link.Status().Guest
	t.Logf("guest printed %s gw %s; link: %+v", l.Addr, l.Gateway, g.JSON())
	if g.IPv4.String() != printed || g.Source != netlink.GuestSourceDHCP {
		t.Errorf("link shows %s (source %q), the guest's DHCP client printed %s", g.IPv4, g.Source, printed)
	}
	if g.Gateway.String() != l.Gateway || g.Gateway != gvproxyGateway {
		t.Errorf("link shows gateway %s, the guest's DHCP client printed %s", g.Gateway, l.Gateway)
	}
	if g.MAC.String() != r.mac.String() {
		t.Errorf("link shows MAC %s, the VM's is %s", g.MAC, r.mac)
	}

	// The lease, on the wire: gvproxy's ACK for the guest's MAC.
	ack, ok := r.tap.first(func(f tapFrame) bool {
		d, ok := parseDHCPFrame(f.data)
		return !f.up && ok && d.msgType == dhcpACK && d.chaddr.String() == r.mac.String()
	})
	if !ok {
		t.Fatal("no DHCP ACK for the guest's MAC went through the frame tap")
	}
	if d, _ := parseDHCPFrame(ack.data); d.yiaddr.String() != printed {
		t.Errorf("gvproxy's ACK gave %s, the guest printed %s", d.yiaddr, printed)
	}
	learned := g.Since.Sub(ack.at)
	seen := shown.Sub(con.found)
	t.Logf("the link learned the lease %v after gvproxy's ACK passed the tap; its status showed it %v after the console did", learned, seen)
	if !con.lastMiss.IsZero() {
		// The line appeared between the last poll that missed it and the
		// first that found it.
		t.Logf("the link learned it between %v and %v after the guest printed it (negative: before)",
			g.Since.Sub(con.found).Round(time.Millisecond), g.Since.Sub(con.lastMiss).Round(time.Millisecond))
	}
	if learned > learnWithin {
		t.Errorf("the link learned the lease %v after the ACK, want at most %v", learned, learnWithin)
	}
	if seen > learnWithin {
		t.Errorf("the link's status showed the address %v after the guest printed it, want at most %v", seen, learnWithin)
	}
}

// TestGuestAddressStatic boots the test guest with a static address (no
// DHCP): the link finds it from the guest's ARP (source arp) within 1 s of
// the guest's first ARP, which its first ping to the gateway sends.
func TestGuestAddressStatic(t *testing.T) {
	t.Parallel()
	r := startGuestRig(t, testguest.Options{Static: staticAddr, StaticGateway: gvproxyGateway, Pings: 2, Interval: 500 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var shown time.Time // the first poll at which the status had the address
	var s netlink.Status
	var l testguest.Log
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for shown.IsZero() || l.OKPings() == 0 {
		var err error
		if l, err = testguest.ReadLog(r.console); err != nil {
			t.Fatal(err)
		}
		if shown.IsZero() {
			if s = r.link.Status(); s.Guest.Source != "" {
				shown = time.Now()
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for the address in the link's status and a ping: %v; console: %s; link guest: %+v",
				ctx.Err(), l.Summary(), s.Guest)
		case <-r.vm.Done():
			t.Fatalf("the VM ended; console: %s", l.Summary())
		case <-tick.C:
		}
	}
	if !l.Static || l.Addr != staticAddr.String() || len(l.Errors) > 0 {
		t.Fatalf("console: %s", l.Summary())
	}
	g := s.Guest
	t.Logf("link: %+v", g.JSON())
	if g.IPv4 != staticAddr.Addr() || g.Source != netlink.GuestSourceARP {
		t.Errorf("link shows %s (source %q), want %s from ARP", g.IPv4, g.Source, staticAddr.Addr())
	}
	if dhcp := r.tap.all(func(f tapFrame) bool { _, ok := parseDHCPFrame(f.data); return ok }); len(dhcp) > 0 {
		t.Errorf("%d DHCP messages on the wire from a guest with a static address", len(dhcp))
	}

	// The guest's first ARP, on the wire.
	arp, ok := r.tap.first(func(f tapFrame) bool {
		a, ok := parseARPFrame(f.data)
		return f.up && ok && a.senderMAC.String() == r.mac.String()
	})
	if !ok {
		t.Fatal("no ARP from the guest went through the frame tap")
	}
	a, _ := parseARPFrame(arp.data)
	learned := g.Since.Sub(arp.at)
	t.Logf("first ARP from the guest (op %d, %s asks for %s); the link learned the address %v after it passed the tap, the status showed it %v after",
		a.op, a.sender, a.target, learned, shown.Sub(arp.at))
	if a.sender != staticAddr.Addr() {
		t.Errorf("the guest's first ARP came from %s, want %s", a.sender, staticAddr.Addr())
	}
	if learned > learnWithin {
		t.Errorf("the link learned the address %v after the guest's first ARP, want at most %v", learned, learnWithin)
	}
}

// idleFor is how long an idle guest's link must stay "ok" (issue 11):
// long enough for two probes of the gateway, 10 s apart.
const idleFor = 25 * time.Second

// TestIdleGuestStaysOK boots a guest that gets its lease, pings its gateway
// once and then sends nothing of its own (its kernel still answers
// gvproxy's ARP, which gVisor sends about 5 s after the last ping to check
// its neighbour, and sends IPv6 link-local frames nobody answers): the
// link probes the gateway after 10 s without a frame from gvproxy, gvproxy
// answers, and the link stays "ok" for 25 s and until two probes were
// answered (a gateway round-trip time known), never "silent".
func TestIdleGuestStaysOK(t *testing.T) {
	t.Parallel()
	r := startGuestRig(t, testguest.Options{Pings: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	l, err := testguest.WaitLog(ctx, r.console, r.vm.Done(), "the lease and one ping", func(l testguest.Log) bool {
		return l.PingsDone
	})
	if err != nil {
		t.Fatal(err)
	}
	if l.OKPings() != 1 {
		t.Fatalf("console: %s", l.Summary())
	}
	quiet := time.Now() // from here on, the guest sends nothing
	guestIP := netip.MustParseAddr(strings.Split(l.Addr, "/")[0])

	// Every status the link publishes, and a poll besides.
	updates, unsubscribe := r.link.Subscribe()
	defer unsubscribe()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	var s netlink.Status
	var bad []string
	check := func(st netlink.Status) {
		s = st
		if st.Health != netlink.HealthOK {
			bad = append(bad, st.Health.String()+" at "+time.Since(quiet).Round(time.Millisecond).String())
		}
	}
	check(r.link.Status())
	// Probes: broadcast ARP requests from the guest's MAC and address for
	// the gateway after the guest went quiet; answers: the gateway's ARP
	// replies to the guest.
	probes := func() []tapFrame {
		return r.tap.all(func(f tapFrame) bool {
			a, ok := parseARPFrame(f.data)
			return f.up && ok && f.at.After(quiet) && a.op == 1 && a.broadcast &&
				a.senderMAC.String() == r.mac.String() && a.sender == guestIP && a.target == gvproxyGateway
		})
	}
	answers := func() []tapFrame {
		return r.tap.all(func(f tapFrame) bool {
			a, ok := parseARPFrame(f.data)
			return !f.up && ok && f.at.After(quiet) && a.op == 2 && a.sender == gvproxyGateway && a.target == guestIP
		})
	}
	// Watch for idleFor, and on until the second probe is answered (the
	// probes follow the last frame from gvproxy, a little before quiet),
	// but not for ever.
	giveUp := time.NewTimer(idleFor + 15*time.Second)
	defer giveUp.Stop()
	for time.Since(quiet) < idleFor || len(answers()) < 2 {
		select {
		case <-giveUp.C:
			logFramesSince(t, r.tap, quiet)
			t.Fatalf("after %v idle: %d probes, %d answered; status %+v", time.Since(quiet).Round(time.Second), len(probes()), len(answers()), s.JSON())
		case <-ctx.Done():
			t.Fatalf("after %v idle: %d probes, %d answered; status %+v", time.Since(quiet).Round(time.Second), len(probes()), len(answers()), s.JSON())
		case <-r.vm.Done():
			t.Fatal("the VM ended")
		case st, ok := <-updates:
			if !ok {
				t.Fatal("the link's status updates ended")
			}
			check(st)
		case <-tick.C:
			check(r.link.Status())
		}
	}
	idle := time.Since(quiet).Round(time.Millisecond)
	p, a := probes(), answers()
	t.Logf("idle %v: %d probes, %d answers; health %s, gateway RTT %v, last rx %s ago",
		idle, len(p), len(a), s.Health, s.GatewayRTT, time.Since(s.LastRx).Round(time.Millisecond))
	for i, f := range p {
		t.Logf("probe %d at +%v", i+1, f.at.Sub(quiet).Round(time.Millisecond))
	}
	logFramesSince(t, r.tap, quiet)
	if len(bad) > 0 {
		t.Errorf("health while the guest was idle: %v, want ok throughout", bad)
	}
	if len(p) < 2 {
		t.Errorf("%d probes of the gateway in %v idle, want 2", len(p), idle)
	}
	if s.GatewayRTT <= 0 {
		t.Errorf("gateway RTT = %v after %d answered probes, want > 0", s.GatewayRTT, len(a))
	}
	if l, _ := testguest.ReadLog(r.console); len(l.Pings) != 1 || l.Boots != 1 {
		t.Errorf("the guest was not idle: %s", l.Summary())
	}
}

// logFramesSince logs the frames the tap passed on after since, in short.
func logFramesSince(t *testing.T, tp *frameTap, since time.Time) {
	t.Helper()
	for _, f := range tp.all(func(f tapFrame) bool { return f.at.After(since) }) {
		dir := "guest -> gvproxy"
		if !f.up {
			dir = "gvproxy -> guest"
		}
		desc := fmt.Sprintf("%d bytes", len(f.data))
		if len(f.data) >= 14 {
			desc = fmt.Sprintf("ethertype %#04x, %s", binary.BigEndian.Uint16(f.data[12:]), desc)
		}
		if a, ok := parseARPFrame(f.data); ok {
			desc = fmt.Sprintf("ARP op %d %s -> %s (to %s)", a.op, a.sender, a.target, a.dstEth)
		}
		t.Logf("  +%v %s: %s", f.at.Sub(since).Round(time.Millisecond), dir, desc)
	}
}
