package netlink

import (
	"net"
	"runtime"
	"testing"
	"time"
)

// TestNoAllocationPerFrame runs frames both ways through the link (VM ->
// echoing daemon -> VM) and counts heap allocations of the whole process:
// the harness allocates nothing per frame, so any per-frame allocation in
// the link shows.
func TestNoAllocationPerFrame(t *testing.T) {
	vm, _, l, c := linked(t, Config{MAC: vmMAC, Now: fixedNow})
	go func() {
		dec := NewDecoder(0)
		enc := NewEncoder(c)
		for {
			f, err := dec.ReadFrame(c)
			if err != nil {
				return
			}
			if enc.WriteFrame(f) != nil {
				return
			}
		}
	}()
	// The frames take every path of learning and filtering: a plain
	// unicast frame to the VM's own MAC (echoed: source and destination
	// are the VM's), ARP, IPv6, DHCP from the client and, echoed back,
	// a DHCP ACK for the VM (same address each time: no status change).
	plain := ethFrame(vmMAC, vmMAC, 0x0800, make([]byte, 1500))
	frames := [][]byte{
		plain,
		ethFrame(vmMAC, vmMAC, etherTypeARP, arpPayload(1, vmMAC, net.IPv4(192, 168, 105, 50), routerIP)),
		ipv6Frame(vmMAC, net.ParseIP("fe80::1")),
		ethFrame(vmMAC, vmMAC, etherTypeIPv4, ipv4UDP(leaseIP, routerIP, 68, 67, dhcpMsg{op: 1, msgType: dhcpRequest, chaddr: vmMAC}.bootp())),
		ethFrame(vmMAC, srvMAC, etherTypeIPv4, ipv4UDP(routerIP, leaseIP, 67, 68, ack(vmMAC, leaseIP, 3600).bootp())),
	}
	buf := make([]byte, MaxFrameSize+1)
	vm.SetReadDeadline(time.Now().Add(time.Minute))
	roundTrips := func(n int) {
		for i := 0; i < n; i++ {
			frame := plain
			if i%10 == 0 {
				frame = frames[i/10%len(frames)]
			}
			if _, err := vm.Write(frame); err != nil {
				t.Fatal(err)
			}
			if _, err := vm.Read(buf); err != nil {
				t.Fatal(err)
			}
		}
	}
	roundTrips(500) // warm up
	const n = 5000
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	roundTrips(n)
	runtime.ReadMemStats(&after)
	if allocs := after.Mallocs - before.Mallocs; allocs > n/50 {
		t.Errorf("%d allocations for %d round trips", allocs, n)
	}
	// The learning paths were taken.
	if g := waitStatus(t, l, "the guest learned", func(s Status) bool { return s.Guest.IPv6[0].IsValid() }).Guest; g.IPv4.String() != "192.168.105.3" || g.Source != GuestSourceDHCP {
		t.Errorf("guest %+v: want the DHCP lease", g)
	}
}
