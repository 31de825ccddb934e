package netlink

import (
	"bytes"
	"encoding/json"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return t0 }

// sendDown writes frames from the daemon and checks that the VM gets them.
func sendDown(t *testing.T, vm, c *net.UnixConn, frames ...[]byte) {
	t.Helper()
	enc := NewEncoder(c)
	buf := make([]byte, MaxFrameSize+1)
	for _, f := range frames {
		if err := enc.WriteFrame(f); err != nil {
			t.Fatal(err)
		}
		got, err := readVM(vm, buf, 10*time.Second)
		if err != nil || !bytes.Equal(got, f) {
			t.Fatalf("VM read: %v (%d bytes, want %d)", err, len(got), len(f))
		}
	}
}

// sendUpFrames writes frames from the VM and checks that the daemon gets them.
func sendUpFrames(t *testing.T, vm, c *net.UnixConn, frames ...[]byte) {
	t.Helper()
	dec := NewDecoder(0)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for _, f := range frames {
		if _, err := vm.Write(f); err != nil {
			t.Fatal(err)
		}
		got, err := dec.ReadFrame(c)
		if err != nil || !bytes.Equal(got, f) {
			t.Fatalf("daemon read: %v (%d bytes, want %d)", err, len(got), len(f))
		}
	}
}

var (
	leaseIP  = net.IPv4(192, 168, 105, 3)
	routerIP = net.IPv4(192, 168, 105, 1)
)

func ack(chaddr net.HardwareAddr, ip net.IP, lease uint32) dhcpMsg {
	return dhcpMsg{op: 2, msgType: dhcpACK, chaddr: chaddr, yiaddr: ip, router: routerIP, lease: lease, server: routerIP}
}

func TestGuestFromDHCP(t *testing.T) {
	vm, _, l, c := linked(t, Config{MAC: vmMAC, Now: fixedNow})
	if g := l.Status().Guest; g.MAC.String() != vmMAC.String() || g.IPv4.IsValid() || g.Source != "" {
		t.Fatalf("guest before any frame: %+v, want only the configured MAC", g)
	}
	// An ACK for another client, and an OFFER, teach nothing.
	sendDown(t, vm, c, ack(otherMAC, net.IPv4(192, 168, 105, 9), 3600).serverFrame())
	offer := ack(vmMAC, leaseIP, 3600)
	offer.msgType = dhcpOffer
	sendDown(t, vm, c, offer.serverFrame())
	if g := l.Status().Guest; g.IPv4.IsValid() {
		t.Fatalf("guest after a foreign ACK and an OFFER: %+v, want no address", g)
	}

	sendDown(t, vm, c, ack(vmMAC, leaseIP, 3600).serverFrame())
	g := waitStatus(t, l, "the DHCP lease learned", func(s Status) bool { return s.Guest.Source == GuestSourceDHCP }).Guest
	want := Guest{MAC: g.MAC, IPv4: netip.MustParseAddr("192.168.105.3"), Gateway: netip.MustParseAddr("192.168.105.1"),
		Source: GuestSourceDHCP, Since: t0, LeaseExpires: t0.Add(time.Hour)}
	if g != want {
		t.Fatalf("guest %+v, want %+v", g, want)
	}

	// The client releases its lease.
	sendUpFrames(t, vm, c, dhcpMsg{op: 1, msgType: dhcpRelease, chaddr: vmMAC}.clientFrame(vmMAC))
	waitStatus(t, l, "the lease released", func(s Status) bool { return !s.Guest.IPv4.IsValid() && s.Guest.Source == "" })

	// A new lease on another subnet (behind a VLAN tag, infinite), then a NAK.
	inf := ack(vmMAC, net.IPv4(10, 0, 0, 7), 0xffffffff)
	inf.router = nil
	sendDown(t, vm, c, vlanFrame(bcastMAC, srvMAC, etherTypeIPv4, ipv4UDP(routerIP, net.IPv4bcast, 67, 68, inf.bootp())))
	g = waitStatus(t, l, "the new lease", func(s Status) bool { return s.Guest.Source == GuestSourceDHCP }).Guest
	if g.IPv4 != netip.MustParseAddr("10.0.0.7") || g.Gateway.IsValid() || !g.LeaseExpires.IsZero() {
		t.Fatalf("guest %+v: want 10.0.0.7, no gateway, no expiry", g)
	}
	sendDown(t, vm, c, dhcpMsg{op: 2, msgType: dhcpNAK, chaddr: vmMAC, server: routerIP}.serverFrame())
	waitStatus(t, l, "the lease refused", func(s Status) bool { return !s.Guest.IPv4.IsValid() && s.Guest.Source == "" })
}

func TestGuestFromARP(t *testing.T) {
	// No configured MAC: the first frame's source is the guest.
	vm, _, l, c := linked(t, Config{Now: fixedNow})
	static := net.IPv4(192, 168, 105, 50)
	sendUpFrames(t, vm, c, ethFrame(bcastMAC, vmMAC, etherTypeARP, arpPayload(1, vmMAC, static, routerIP)))
	g := waitStatus(t, l, "the static address", func(s Status) bool { return s.Guest.Source == GuestSourceARP }).Guest
	if g.MAC.String() != vmMAC.String() || g.IPv4 != netip.MustParseAddr("192.168.105.50") || g.Since != t0 {
		t.Fatalf("guest %+v: want %v at 192.168.105.50 from ARP", g, vmMAC)
	}
	// Another MAC's ARP (a bridged container) and an ARP probe (sender
	// 0.0.0.0) change nothing; a new static address does.
	sendUpFrames(t, vm, c,
		ethFrame(bcastMAC, otherMAC, etherTypeARP, arpPayload(1, otherMAC, net.IPv4(192, 168, 105, 60), routerIP)),
		ethFrame(bcastMAC, vmMAC, etherTypeARP, arpPayload(1, vmMAC, net.IPv4zero, routerIP)),
		ethFrame(bcastMAC, vmMAC, etherTypeARP, arpPayload(2, vmMAC, net.IPv4(192, 168, 105, 51), routerIP)))
	waitStatus(t, l, "the new static address", func(s Status) bool {
		return s.Guest.IPv4 == netip.MustParseAddr("192.168.105.51")
	})
	// A DHCP lease wins over ARP while it lasts.
	sendDown(t, vm, c, ack(vmMAC, leaseIP, 3600).serverFrame())
	waitStatus(t, l, "the lease", func(s Status) bool { return s.Guest.Source == GuestSourceDHCP })
	sendUpFrames(t, vm, c, ethFrame(bcastMAC, vmMAC, etherTypeARP, arpPayload(1, vmMAC, static, routerIP)))
	if g := l.Status().Guest; g.IPv4 != netip.MustParseAddr("192.168.105.3") {
		t.Fatalf("guest %+v: an ARP replaced the DHCP lease", g)
	}
}

// TestGuestIPv6: the list keeps the addresses the VM used most recently,
// link-local first; a 5th address replaces the one least recently seen
// (whatever its kind), and repeated frames from a known address change
// nothing.
func TestGuestIPv6(t *testing.T) {
	vm, _, l, c := linked(t, Config{MAC: vmMAC})
	ll, g1, g2, g3, g4, g5 := "fe80::5054:ff:fe12:3456", "2001:db8::1", "2001:db8::2", "2001:db8::3", "2001:db8::4", "2001:db8::5"
	send := func(addrs ...string) {
		t.Helper()
		var frames [][]byte
		for _, a := range addrs {
			frames = append(frames, ipv6Frame(vmMAC, net.ParseIP(a)))
		}
		sendUpFrames(t, vm, c, frames...)
	}
	// The list is current once the daemon has the frames: learning comes
	// before the write.
	want := func(what string, addrs ...string) {
		t.Helper()
		var got []string
		for _, a := range l.Status().Guest.IPv6Addrs() {
			got = append(got, a.String())
		}
		if strings.Join(got, " ") != strings.Join(addrs, " ") {
			t.Fatalf("%s: IPv6 %v, want %v", what, got, addrs)
		}
	}
	sendUpFrames(t, vm, c,
		ipv6Frame(vmMAC, net.IPv6unspecified),            // duplicate address detection
		ipv6Frame(otherMAC, net.ParseIP("2001:db8::99")), // not the VM's MAC
		ipv6Frame(vmMAC, net.ParseIP("ff02::2")))         // multicast
	want("no address of the VM's")
	send(g1, ll, ll, g1, g2, g2, g3)
	want("4 addresses", ll, g1, g2, g3) // link-local first although it came second
	// g2 is now the least recently seen: g4 takes its place.
	send(g1, ll, g3, g3, g4)
	want("a 5th address", ll, g1, g3, g4)
	// Now the link-local address is the stalest.
	send(g3, g4, g4, g1, g5)
	want("a 6th address", g1, g3, g4, g5)
	// Known addresses, in any order, change nothing; g2 comes back in
	// place of the stalest (g3).
	send(g5, g1, g4, g5, g4, g2)
	want("g2 again", g1, g4, g5, g2)
}

func TestFilterOnlyTheVMsFrames(t *testing.T) {
	vm, _, l, c := linked(t, Config{MAC: vmMAC})
	payload := make([]byte, 50)
	toOther := ethFrame(otherMAC, srvMAC, 0x0800, payload)
	// Unicast to a MAC the VM never used is filtered; broadcast,
	// multicast and the VM's own MAC pass (sendDown checks each arrives
	// next, so a filtered frame before it would be caught only by count).
	enc := NewEncoder(c)
	if err := enc.WriteFrame(toOther); err != nil {
		t.Fatal(err)
	}
	sendDown(t, vm, c,
		ethFrame(bcastMAC, srvMAC, 0x0800, payload),
		ethFrame(mcastMAC, srvMAC, 0x86dd, payload),
		ethFrame(vmMAC, srvMAC, 0x0800, payload))
	if st := l.Status(); st.FilteredFrames != 1 || st.Dropped.Total() != 0 {
		t.Fatalf("filtered %d, drops %+v: want 1 filtered, no drops", st.FilteredFrames, st.Dropped)
	}
	// Once the VM used otherMAC as a source, frames to it pass.
	sendUpFrames(t, vm, c, ethFrame(bcastMAC, otherMAC, 0x0800, payload))
	sendDown(t, vm, c, toOther)
	if st := l.Status(); st.FilteredFrames != 1 {
		t.Fatalf("filtered %d, want still 1", st.FilteredFrames)
	}
}

func TestFilterOff(t *testing.T) {
	vm, _, l, c := linked(t, Config{MAC: vmMAC, NoFilter: true})
	sendDown(t, vm, c, ethFrame(otherMAC, srvMAC, 0x0800, make([]byte, 50)))
	if st := l.Status(); st.FilteredFrames != 0 {
		t.Fatalf("filtered %d with the filter off", st.FilteredFrames)
	}
}

// TestFilterSetBounded: more source MACs than the set holds replace the
// oldest learned ones, never the VM's own MAC.
func TestFilterSetBounded(t *testing.T) {
	vm, _, l, c := linked(t, Config{MAC: vmMAC})
	payload := make([]byte, 50)
	mac := func(i int) net.HardwareAddr { return net.HardwareAddr{0x52, 0x54, 0, 0, 1, byte(i)} }
	for i := 0; i < 3*macSetSize; i++ {
		sendUpFrames(t, vm, c, ethFrame(bcastMAC, mac(i), 0x0800, payload))
	}
	last := 3*macSetSize - 1
	sendDown(t, vm, c, ethFrame(vmMAC, srvMAC, 0x0800, payload), ethFrame(mac(last), srvMAC, 0x0800, payload))
	if err := NewEncoder(c).WriteFrame(ethFrame(mac(0), srvMAC, 0x0800, payload)); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, l, "the oldest MAC filtered", func(s Status) bool { return s.FilteredFrames == 1 })
	if g := l.Status().Guest; g.MAC.String() != vmMAC.String() {
		t.Errorf("guest MAC %v, want the configured %v", g.MAC, vmMAC)
	}
}

func TestOversizeOverMTU(t *testing.T) {
	for _, tc := range []struct {
		mtu, max int
	}{{0, 1518}, {9000, 9018}} {
		vm, _, l, c := linked(t, Config{MAC: vmMAC, MTU: tc.mtu})
		big := ethFrame(bcastMAC, vmMAC, 0x0800, make([]byte, tc.max+1-14))
		if _, err := vm.Write(big); err != nil {
			t.Fatal(err)
		}
		sendUpFrames(t, vm, c, ethFrame(bcastMAC, vmMAC, 0x0800, make([]byte, tc.max-14)))
		// The counter trails the frame's arrival (it is added after the
		// write returns).
		if st := waitStatus(t, l, "the frame counted", func(s Status) bool { return s.TxFrames >= 1 }); st.Dropped.Oversize != 1 || st.TxFrames != 1 {
			t.Fatalf("MTU %d: oversize %d, tx %d: want the %d-byte frame dropped, the %d-byte one sent",
				tc.mtu, st.Dropped.Oversize, st.TxFrames, tc.max+1, tc.max)
		}
	}
}

func TestConfigMACAndMTUChecked(t *testing.T) {
	_, host := vmPair(t)
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Socket: "/tmp/x.sock", MTU: 67}, "MTU 67 is out of range"},
		{Config{Socket: "/tmp/x.sock", MTU: MaxMTU + 1}, "out of range"},
		{Config{Socket: "/tmp/x.sock", MAC: net.HardwareAddr{1, 2, 3}}, "not a 6-byte"},
		{Config{Socket: "/tmp/x.sock", MAC: bcastMAC}, "not a unicast"},
		{Config{Socket: "/tmp/x.sock", MAC: make(net.HardwareAddr, 6)}, "not a unicast"},
	} {
		if _, err := New(host, tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v): %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

func TestGuestJSON(t *testing.T) {
	st := Status{State: StateUp, FilteredFrames: 7, Guest: Guest{
		MAC: MACAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56}, IPv4: netip.MustParseAddr("192.168.105.3"),
		IPv6:    [MaxGuestIPv6]netip.Addr{netip.MustParseAddr("fe80::1")},
		Gateway: netip.MustParseAddr("192.168.105.1"), Source: "dhcp", Since: t0, LeaseExpires: t0.Add(time.Hour),
	}}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	const want = `"filtered_frames":7,"guest":{"mac":"52:54:00:12:34:56","ipv4":"192.168.105.3","ipv6":["fe80::1"],"gateway":"192.168.105.1","source":"dhcp","since":"2026-12-01T10:00:00Z","lease_expires":"2026-12-01T11:00:00Z"},"health":"unknown","last_rx":null}`
	if !strings.HasSuffix(string(b), want) {
		t.Fatalf("JSON %s\nwant the suffix %s", b, want)
	}
	var back Status
	if err := json.Unmarshal(b, &back); err != nil || back != st {
		t.Fatalf("round trip: %v\n%+v\nwant %+v", err, back, st)
	}
	b, _ = json.Marshal(Status{State: StateUp})
	const empty = `"guest":{"mac":"","ipv4":"","ipv6":[],"gateway":"","source":"","since":null,"lease_expires":null},"health":"unknown","last_rx":null}`
	if !strings.HasSuffix(string(b), empty) {
		t.Fatalf("JSON %s\nwant the suffix %s", b, empty)
	}
}

// TestGuestNewAddressReplacesLease: an address the VM's ARP uses other
// than its DHCP lease's replaces it (source "arp") once the lease expired,
// at once on an announcement, or on its second ARP frame with none from the
// leased address (and no DHCP ACK) between; one such frame does not. An
// infinite lease, or one without option 51, is no exception.
func TestGuestNewAddressReplacesLease(t *testing.T) {
	static, static2 := net.IPv4(192, 168, 105, 50), net.IPv4(192, 168, 105, 51)
	staticAddr := netip.MustParseAddr("192.168.105.50")
	request := func(ip net.IP) []byte { // a request for the gateway from ip
		return ethFrame(bcastMAC, vmMAC, etherTypeARP, arpPayload(1, vmMAC, ip, routerIP))
	}
	reply := func(ip net.IP) []byte { // a reply from ip to the gateway
		return ethFrame(srvMAC, vmMAC, etherTypeARP, arpPayload(2, vmMAC, ip, routerIP))
	}
	for _, tc := range []struct {
		name    string
		lease   uint32 // 0: no option 51
		advance time.Duration
		up      [][]byte // from the VM after the lease; nil entry: the ACK again, from the daemon
		learned bool     // the last frame replaces the lease with static
	}{
		{"one request", 3600, 0, [][]byte{request(static)}, false},
		{"lease expired", 3600, time.Hour, [][]byte{request(static)}, true},
		{"lease not expired yet", 3600, time.Hour - time.Second, [][]byte{request(static)}, false},
		{"two requests, infinite lease", 0xffffffff, 0, [][]byte{request(static), request(static)}, true},
		{"request and reply, no option 51", 0, 0, [][]byte{request(static), reply(static)}, true},
		{"announcement (request), infinite lease", 0xffffffff, 0,
			[][]byte{ethFrame(bcastMAC, vmMAC, etherTypeARP, arpPayload(1, vmMAC, static, static))}, true},
		{"announcement (reply), no option 51", 0, 0,
			[][]byte{ethFrame(bcastMAC, vmMAC, etherTypeARP, arpPayload(2, vmMAC, static, static))}, true},
		{"the leased address between", 0xffffffff, 0, [][]byte{request(static), request(leaseIP), request(static)}, false},
		{"a probe between", 0xffffffff, 0, [][]byte{
			request(static),
			ethFrame(bcastMAC, vmMAC, etherTypeARP, arpPayload(1, vmMAC, net.IPv4zero, leaseIP)),
			request(static)}, true},
		{"the leased address between, then twice", 0xffffffff, 0,
			[][]byte{request(static), request(leaseIP), request(static), request(static)}, true},
		{"an ACK between", 0xffffffff, 0, [][]byte{request(static), nil, request(static)}, false},
		{"another new address between", 0xffffffff, 0, [][]byte{request(static), request(static2), request(static)}, true},
		{"another MAC's ARP", 0xffffffff, 0, [][]byte{
			ethFrame(bcastMAC, otherMAC, etherTypeARP, arpPayload(1, otherMAC, static, static)),
			ethFrame(bcastMAC, vmMAC, etherTypeARP, arpPayload(1, otherMAC, static, static))}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var now atomic.Int64
			now.Store(t0.UnixNano())
			clock := func() time.Time { return time.Unix(0, now.Load()).UTC() }
			// No probing: after the clock jumps, a probe of the gateway
			// would reach the daemon before the test's frames.
			vm, _, l, c := linked(t, Config{MAC: vmMAC, Now: clock, NoProbe: true})
			a := ack(vmMAC, leaseIP, tc.lease)
			sendDown(t, vm, c, a.serverFrame())
			leased := waitStatus(t, l, "the lease", func(s Status) bool { return s.Guest.Source == GuestSourceDHCP }).Guest
			now.Add(int64(tc.advance))
			for i, f := range tc.up {
				if f == nil {
					sendDown(t, vm, c, a.serverFrame())
					continue
				}
				sendUpFrames(t, vm, c, f)
				// Learning comes before the write: the guest is
				// current once the daemon has the frame.
				g := l.Status().Guest
				if i < len(tc.up)-1 || !tc.learned {
					if g != leased {
						t.Fatalf("after frame %d: guest %+v, want the lease still %+v", i, g, leased)
					}
					continue
				}
				want := Guest{MAC: leased.MAC, IPv4: staticAddr, Source: GuestSourceARP, Since: clock()}
				if g != want {
					t.Fatalf("guest %+v, want %+v", g, want)
				}
			}
		})
	}
}

// TestGuestLeaseAfterStatic: a new DHCP lease replaces an address learned
// from ARP, and a single ARP from the old static address afterwards does
// not undo it.
func TestGuestLeaseAfterStatic(t *testing.T) {
	vm, _, l, c := linked(t, Config{MAC: vmMAC, Now: fixedNow})
	static := net.IPv4(192, 168, 105, 50)
	arp := ethFrame(bcastMAC, vmMAC, etherTypeARP, arpPayload(1, vmMAC, static, routerIP))
	sendUpFrames(t, vm, c, arp)
	if g := l.Status().Guest; g.Source != GuestSourceARP || g.IPv4 != netip.MustParseAddr("192.168.105.50") {
		t.Fatalf("guest %+v: want the static address from ARP", g)
	}
	sendDown(t, vm, c, ack(vmMAC, leaseIP, 0xffffffff).serverFrame())
	waitStatus(t, l, "the lease", func(s Status) bool { return s.Guest.Source == GuestSourceDHCP })
	sendUpFrames(t, vm, c, arp)
	if g := l.Status().Guest; g.Source != GuestSourceDHCP || g.IPv4 != netip.MustParseAddr("192.168.105.3") {
		t.Fatalf("guest %+v: one ARP from the old address replaced the new lease", g)
	}
}
