package netlink

import (
	"bytes"
	"encoding/json"
	"net"
	"net/netip"
	"strings"
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

func TestGuestIPv6(t *testing.T) {
	vm, _, l, c := linked(t, Config{MAC: vmMAC})
	addrs := []string{"fe80::5054:ff:fe12:3456", "2001:db8::1", "2001:db8::2", "2001:db8::3", "2001:db8::4"}
	var frames [][]byte
	frames = append(frames,
		ipv6Frame(vmMAC, net.IPv6unspecified),            // duplicate address detection
		ipv6Frame(otherMAC, net.ParseIP("2001:db8::99")), // not the VM's MAC
		ipv6Frame(vmMAC, net.ParseIP(addrs[0])),          // link-local
		ipv6Frame(vmMAC, net.ParseIP(addrs[0])))          // again
	for _, a := range addrs[1:] {
		frames = append(frames, ipv6Frame(vmMAC, net.ParseIP(a)))
	}
	sendUpFrames(t, vm, c, frames...)
	g := waitStatus(t, l, "4 IPv6 addresses", func(s Status) bool { return s.Guest.IPv6[MaxGuestIPv6-1].IsValid() }).Guest
	var got []string
	for _, a := range g.IPv6Addrs() {
		got = append(got, a.String())
	}
	if strings.Join(got, " ") != strings.Join(addrs[:4], " ") {
		t.Fatalf("IPv6 %v, want %v (the first 4, each once)", got, addrs[:4])
	}
	if !g.IPv6[0].IsLinkLocalUnicast() || !g.IPv6[1].IsGlobalUnicast() {
		t.Errorf("IPv6 %v: want link-local first, then global", got)
	}
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
