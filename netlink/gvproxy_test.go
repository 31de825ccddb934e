package netlink

import (
	"bytes"
	"encoding/binary"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/vmnetbar/vmnetbar/internal/testclock"
	"github.com/vmnetbar/vmnetbar/internal/testdaemon"
	"github.com/vmnetbar/vmnetbar/internal/testguest"
	"github.com/vmnetbar/vmnetbar/internal/testwait"
)

// gvproxyPath finds gvproxy (make tools puts it in .tools/bin). Without it
// the test is skipped, or fails when CI=true.
func gvproxyPath(t *testing.T) string {
	p, err := testdaemon.FindGvproxy()
	if err != nil {
		testguest.SkipOrFatal(t, err)
	}
	return p
}

// startGvproxy runs gvproxy listening on path; stop removes the socket and
// kills it, as a crashed daemon.
func startGvproxy(t *testing.T, bin, path string) (stop func()) {
	cmd := exec.Command(bin, "-listen-qemu", "unix://"+path, "-ssh-port", "-1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		os.Remove(path)
		cmd.Process.Kill()
		cmd.Wait()
	}
	t.Cleanup(stop)
	// Listening, not only bound: a refused first dial would wait a
	// backoff, which never ends on a fake clock.
	testwait.For(t, "gvproxy to listen", func() bool { return testdaemon.Listening(path) })
	return stop
}

var (
	guestMAC  = net.HardwareAddr{0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xee}
	guestIP   = net.IPv4(192, 168, 127, 2).To4()
	gatewayIP = net.IPv4(192, 168, 127, 1).To4()
)

// arpRequest asks who has the gateway's address.
func arpRequest() []byte {
	f := make([]byte, 0, 60)
	f = append(f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	f = append(f, guestMAC...)
	f = append(f, 0x08, 0x06)             // ARP
	f = append(f, 0, 1, 8, 0, 6, 4, 0, 1) // Ethernet/IPv4, request
	f = append(f, guestMAC...)
	f = append(f, guestIP...)
	f = append(f, 0, 0, 0, 0, 0, 0)
	f = append(f, gatewayIP...)
	return append(f, make([]byte, 60-len(f))...)
}

// isGatewayARPReply reports whether f answers arpRequest.
func isGatewayARPReply(f []byte) bool {
	return len(f) >= 42 && binary.BigEndian.Uint16(f[12:]) == 0x0806 &&
		binary.BigEndian.Uint16(f[20:]) == 2 && bytes.Equal(f[28:32], gatewayIP) &&
		bytes.Equal(f[0:6], guestMAC)
}

// askGateway sends ARP requests until the gateway answers.
func askGateway(t *testing.T, vm *net.UnixConn) {
	t.Helper()
	buf := make([]byte, MaxFrameSize+1)
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := vm.Write(arpRequest()); err != nil {
			t.Fatal(err)
		}
		resend := time.Now().Add(500 * time.Millisecond)
		for time.Now().Before(resend) {
			f, err := readVM(vm, buf, time.Until(resend))
			if err == errTimeout {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if isGatewayARPReply(f) {
				return
			}
		}
	}
	t.Fatal("no ARP reply from gvproxy's gateway")
}

// TestGvproxy runs the link against gvproxy (the socket_vmnet stand-in):
// the gateway answers ARP, and again after gvproxy crashed and came back.
func TestGvproxy(t *testing.T) {
	bin := gvproxyPath(t)
	path := socketPath(t)
	vm, host := vmPair(t)
	stop := startGvproxy(t, bin, path)
	l := newLink(t, host, Config{Socket: path})
	runLink(t, l)
	askGateway(t, vm)
	// The guest's ARP gives its (static) address and its MAC.
	if g := l.Status().Guest; g.Source != GuestSourceARP || g.IPv4.String() != guestIP.String() || g.MAC.String() != guestMAC.String() {
		t.Errorf("guest %+v: want %v at %v from ARP", g, guestMAC, guestIP)
	}

	stop()
	testwait.For(t, "reconnecting", func() bool { return l.Status().State == StateReconnecting })
	startGvproxy(t, bin, path)
	testwait.For(t, "up again", func() bool { return l.Status().State == StateUp })
	askGateway(t, vm)
	if st := l.Status(); st.Reconnects != 1 || st.TxFrames == 0 || st.RxFrames == 0 {
		t.Errorf("status %+v: want 1 reconnect and traffic both ways", st)
	}
}

// TestGvproxyDHCPLearned: a real DHCP exchange with gvproxy's DHCP server
// (DISCOVER, OFFER, REQUEST, ACK) is learned by the link, which also learns
// the VM's MAC from its first frame; ARP from the guest does not replace
// the lease.
func TestGvproxyDHCPLearned(t *testing.T) {
	bin := gvproxyPath(t)
	path := socketPath(t)
	vm, host := vmPair(t)
	startGvproxy(t, bin, path)
	l := newLink(t, host, Config{Socket: path})
	runLink(t, l)
	waitStatus(t, l, "up", func(s Status) bool { return s.State == StateUp })

	exchange := func(m dhcpMsg, want byte) dhcpInfo { t.Helper(); return dhcpExchange(t, vm, m, want) }
	offer := exchange(dhcpMsg{op: 1, msgType: dhcpDiscover, chaddr: guestMAC, xid: 0x1234}, dhcpOffer)
	offered := net.IP(offer.yiaddr[:])
	ackd := exchange(dhcpMsg{op: 1, msgType: dhcpRequest, chaddr: guestMAC, xid: 0x1235,
		requested: offered, server: net.IP(offer.server[:])}, dhcpACK)
	g := waitStatus(t, l, "the lease learned", func(s Status) bool { return s.Guest.Source == GuestSourceDHCP }).Guest
	if g.MAC.String() != guestMAC.String() || g.IPv4.String() != net.IP(ackd.yiaddr[:]).String() ||
		g.IPv4.String() != guestIP.String() || g.Gateway.String() != gatewayIP.String() {
		t.Fatalf("guest %+v: want %v at %v (the ACK's address) via %v", g, guestMAC, guestIP, gatewayIP)
	}
	if ackd.hasLease && (g.LeaseExpires.IsZero() || time.Until(g.LeaseExpires) > time.Duration(ackd.lease)*time.Second) {
		t.Errorf("lease expires %v, want within %ds", g.LeaseExpires, ackd.lease)
	}
	askGateway(t, vm) // the guest's ARP: the lease stays
	if st := l.Status(); st.Guest.Source != GuestSourceDHCP {
		t.Errorf("guest %+v after an ARP: want the DHCP lease kept", st.Guest)
	}
}

// dhcpExchange sends the guest's DHCP message m until gvproxy's server
// answers with a message of type want.
func dhcpExchange(t *testing.T, vm *net.UnixConn, m dhcpMsg, want byte) dhcpInfo {
	t.Helper()
	buf := make([]byte, MaxFrameSize+1)
	frame := ethFrame(bcastMAC, guestMAC, etherTypeIPv4, ipv4UDP(net.IPv4zero, net.IPv4bcast, 68, 67, m.bootp()))
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := vm.Write(frame); err != nil {
			t.Fatal(err)
		}
		resend := time.Now().Add(500 * time.Millisecond)
		for time.Now().Before(resend) {
			f, err := readVM(vm, buf, time.Until(resend))
			if err == errTimeout {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			etype, off, _ := parseEth(f)
			if etype != etherTypeIPv4 {
				continue
			}
			sp, dp, payload, ok := parseIPv4UDP(f[off:])
			if !ok || sp != 67 || dp != 68 {
				continue
			}
			if d, ok := parseDHCP(payload); ok && d.msgType == want && bytes.Equal(d.chaddr[:], guestMAC) {
				return d
			}
		}
	}
	t.Fatalf("no DHCP message of type %d from gvproxy", want)
	return dhcpInfo{}
}

// dhcpLease runs DISCOVER, OFFER, REQUEST, ACK with gvproxy for guestMAC.
func dhcpLease(t *testing.T, vm *net.UnixConn) dhcpInfo {
	t.Helper()
	offer := dhcpExchange(t, vm, dhcpMsg{op: 1, msgType: dhcpDiscover, chaddr: guestMAC, xid: 0x1234}, dhcpOffer)
	return dhcpExchange(t, vm, dhcpMsg{op: 1, msgType: dhcpRequest, chaddr: guestMAC, xid: 0x1235,
		requested: net.IP(offer.yiaddr[:]), server: net.IP(offer.server[:])}, dhcpACK)
}

// TestGvproxyAnswersProbes: gvproxy's gateway answers ARP, so an idle
// guest with a DHCP lease stays "ok": every 10 s of (fake) quiet the link
// probes the gateway, the reply comes, and its round trip is timed; the
// reply also reaches the guest.
func TestGvproxyAnswersProbes(t *testing.T) {
	bin := gvproxyPath(t)
	path := socketPath(t)
	vm, host := vmPair(t)
	startGvproxy(t, bin, path)
	clock := testclock.New(time.Time{})
	l := newLink(t, host, Config{Socket: path, Clock: clock})
	noProbe(l)
	runLink(t, l)
	waitStatus(t, l, "up", func(s Status) bool { return s.State == StateUp })
	dhcpLease(t, vm)
	waitStatus(t, l, "the lease", func(s Status) bool { return s.Guest.Gateway.String() == gatewayIP.String() })
	buf := make([]byte, MaxFrameSize+1)
	for i := uint64(1); i <= 2*probesToSilent; i++ {
		// Only the health loop's timer (10 s of quiet, or what is left
		// of it) and possibly the 15 s one of the guest's requests.
		w := testwait.ForValue(t, "the health loop to wait", clock.Timers, func(ts []time.Duration) bool { return len(ts) >= 1 && ts[0] <= probeIdle })[0]
		clock.Advance(w)
		testwait.For(t, "the probe sent", func() bool { return l.gwProbesSent.Load() == i })
		st := waitStatus(t, l, "the probe answered", func(s Status) bool { return s.LastRx.Equal(clock.Now()) })
		if st.Health != HealthOK {
			t.Fatalf("health %v after probe %d, want ok", st.Health, i)
		}
		for {
			f, err := readVM(vm, buf, 10*time.Second)
			if err != nil {
				t.Fatalf("the guest did not get the gateway's ARP reply: %v", err)
			}
			if isGatewayARPReply(f) {
				break
			}
		}
	}
	if st := l.Status(); st.Health != HealthOK || st.GatewayRTT <= 0 || st.JSON().GatewayRTTMs <= 0 {
		t.Errorf("health %v, gateway rtt %v: want ok with a round trip", st.Health, st.GatewayRTT)
	}
}
