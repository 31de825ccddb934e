package netlink

import (
	"net"
	"testing"
)

// The fuzz targets check that no parser panics or reads out of bounds on
// any input, and that what they return is consistent with the input.

func FuzzParseEth(f *testing.F) {
	f.Add(ethFrame(bcastMAC, vmMAC, etherTypeARP, nil))
	f.Add(vlanFrame(bcastMAC, vmMAC, etherTypeIPv4, []byte{1, 2}))
	f.Add([]byte{0x81, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		etype, off, ok := parseEth(b)
		if ok && (off > len(b) || (off != 14 && off != 18)) {
			t.Fatalf("offset %d for %d bytes (type %#x)", off, len(b), etype)
		}
	})
}

func FuzzParseARP(f *testing.F) {
	f.Add(arpPayload(1, vmMAC, leaseIP, routerIP))
	f.Add(arpPayload(2, vmMAC, leaseIP, routerIP)[:27])
	f.Fuzz(func(t *testing.T, b []byte) {
		a, ok := parseARP(b)
		if ok && (a.op < 1 || a.op > 2 || len(b) < 28) {
			t.Fatalf("accepted %x as %+v", b, a)
		}
	})
}

func FuzzParseIPv4UDP(f *testing.F) {
	f.Add(ipv4UDP(leaseIP, routerIP, 68, 67, []byte("hello")))
	f.Add(ipv4UDP(leaseIP, routerIP, 68, 67, nil)[:27])
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, payload, ok := parseIPv4UDP(b)
		if ok && len(payload) > len(b)-28 {
			t.Fatalf("payload of %d bytes from %d", len(payload), len(b))
		}
	})
}

func FuzzParseDHCP(f *testing.F) {
	f.Add(ack(vmMAC, leaseIP, 3600).bootp())
	f.Add(dhcpMsg{op: 1, msgType: dhcpRelease, chaddr: vmMAC}.bootp())
	trunc := ack(vmMAC, leaseIP, 3600).bootp()
	f.Add(append(trunc[:len(trunc)-3:len(trunc)-3], 51, 200))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, ok := parseDHCP(b)
		if ok && (len(b) < 240 || (d.op != 1 && d.op != 2)) {
			t.Fatalf("accepted %d bytes as %+v", len(b), d)
		}
	})
}

func FuzzParseIPv6Src(f *testing.F) {
	f.Add(ipv6Frame(vmMAC, net.ParseIP("fe80::1"))[14:])
	f.Fuzz(func(t *testing.T, b []byte) {
		src, ok := parseIPv6Src(b)
		if ok && string(src[:]) != string(b[8:24]) {
			t.Fatalf("source %x from %x", src, b)
		}
	})
}

// FuzzLearn feeds any frame both ways through the link's learning and
// filter (without sockets: learnUp and learnDown as the loops call them).
func FuzzLearn(f *testing.F) {
	f.Add(ack(vmMAC, leaseIP, 3600).serverFrame(), true)
	f.Add(dhcpMsg{op: 1, msgType: dhcpRelease, chaddr: vmMAC}.clientFrame(vmMAC), false)
	f.Add(ethFrame(bcastMAC, vmMAC, etherTypeARP, arpPayload(1, vmMAC, leaseIP, routerIP)), false)
	f.Add(ipv6Frame(vmMAC, net.ParseIP("2001:db8::1")), false)
	f.Add(vlanFrame(bcastMAC, srvMAC, etherTypeIPv4, ipv4UDP(routerIP, leaseIP, 67, 68, ack(vmMAC, leaseIP, 0).bootp())), true)
	_, host := vmPair(f)
	l, err := New(host, Config{Socket: "/tmp/unused.sock", MAC: vmMAC})
	if err != nil {
		f.Fatal(err)
	}
	var u upLearner
	u.macs[0], u.nmacs, u.next = l.guestMAC(), 1, 1
	f.Fuzz(func(t *testing.T, b []byte, down bool) {
		if down {
			l.learnDown(b)
		} else {
			l.learnUp(&u, b)
		}
		if g := l.Status().Guest; g.MAC.String() != vmMAC.String() {
			t.Fatalf("guest MAC changed to %v", g.MAC)
		}
	})
}

// FuzzProbeReply: the matcher of the gateway's answer to a probe accepts
// only an ARP reply from the gateway's address to the guest's.
func FuzzProbeReply(f *testing.F) {
	f.Add(arpPayload(2, srvMAC, routerIP, leaseIP), be32(routerIP.To4()), be32(leaseIP.To4()))
	f.Add(arpPayload(1, srvMAC, routerIP, leaseIP), be32(routerIP.To4()), be32(leaseIP.To4()))
	f.Add(arpPayload(2, srvMAC, routerIP, leaseIP)[:27], uint32(0), uint32(0))
	f.Fuzz(func(t *testing.T, b []byte, gateway, guest uint32) {
		if !isProbeReply(b, gateway, guest) {
			return
		}
		if len(b) < 28 || be16(b[6:]) != 2 || be32(b[14:]) != gateway || be32(b[24:]) != guest {
			t.Fatalf("accepted %x as a reply from %#x to %#x", b, gateway, guest)
		}
	})
}
