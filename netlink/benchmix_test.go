package netlink

import (
	"encoding/binary"
	"net"
	"testing"
)

// The traffic of BenchmarkLearning: a realistic mix each way, so that the
// cost of learning and filtering is measured on the paths real traffic
// takes, not only on the cheapest one. Per learnMixLen frames each way:
// one ARP frame, some IPv4 UDP (DNS-sized and QUIC-sized), IPv6 TCP from
// (or to) the guest's one global address, and IPv4 TCP for the rest.

const learnMixLen = 128 // a multiple of the down direction's 32-frame writes

var (
	mixGuestIP  = net.IPv4(192, 168, 105, 3)
	mixRouterIP = net.IPv4(192, 168, 105, 1)
	mixPeerIP   = net.IPv4(93, 184, 215, 14)
	mixGuestIP6 = net.ParseIP("2001:db8::5054:ff:fe12:3456")
	mixPeerIP6  = net.ParseIP("2001:db8:1::80")
)

// mixTCP4 is an IPv4 TCP segment of size bytes (Ethernet included).
func mixTCP4(dst, src net.HardwareAddr, sip, dip net.IP, size int) []byte {
	p := make([]byte, size-ethHeaderSize)
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	p[6], p[8], p[9] = 0x40, 64, 6 // DF, TTL, TCP
	copy(p[12:], sip.To4())
	copy(p[16:], dip.To4())
	binary.BigEndian.PutUint16(p[20:], 443)
	binary.BigEndian.PutUint16(p[22:], 51000)
	p[32] = 0x50 // data offset 5
	p[33] = 0x18 // PSH, ACK
	return ethFrame(dst, src, etherTypeIPv4, p)
}

// mixTCP6 is an IPv6 TCP segment of size bytes (Ethernet included).
func mixTCP6(dst, src net.HardwareAddr, sip, dip net.IP, size int) []byte {
	p := make([]byte, size-ethHeaderSize)
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:], uint16(len(p)-40))
	p[6], p[7] = 6, 64 // TCP, hop limit
	copy(p[8:], sip.To16())
	copy(p[24:], dip.To16())
	binary.BigEndian.PutUint16(p[40:], 51000)
	binary.BigEndian.PutUint16(p[42:], 443)
	p[52] = 0x50
	p[53] = 0x10 // ACK
	return ethFrame(dst, src, etherTypeIPv6, p)
}

// learnMix returns the frames of one cycle from the VM (up) or to it.
func learnMix(up bool) [][]byte {
	frames := make([][]byte, learnMixLen)
	for k := range frames {
		var f []byte
		switch {
		case k == learnMixLen/2: // ARP: the guest asks for its gateway, or the answer
			if up {
				f = ethFrame(bcastMAC, vmMAC, etherTypeARP, arpPayload(1, vmMAC, mixGuestIP, mixRouterIP))
			} else {
				f = ethFrame(vmMAC, srvMAC, etherTypeARP, arpPayload(2, srvMAC, mixRouterIP, mixGuestIP))
			}
		case k%8 == 3: // IPv6 TCP
			if up {
				f = mixTCP6(srvMAC, vmMAC, mixGuestIP6, mixPeerIP6, 1514)
			} else {
				f = mixTCP6(vmMAC, srvMAC, mixPeerIP6, mixGuestIP6, 1514)
			}
		case k%10 == 5: // IPv4 UDP: DNS, or QUIC
			sport, dport, size := uint16(40000), uint16(53), 40
			if k%20 == 5 {
				sport, dport, size = 51000, 443, 1250
			}
			if up {
				f = ethFrame(srvMAC, vmMAC, etherTypeIPv4, ipv4UDP(mixGuestIP, mixRouterIP, sport, dport, make([]byte, size)))
			} else {
				f = ethFrame(vmMAC, srvMAC, etherTypeIPv4, ipv4UDP(mixRouterIP, mixGuestIP, dport, sport, make([]byte, size+40)))
			}
		default: // IPv4 TCP, full size
			if up {
				f = mixTCP4(srvMAC, vmMAC, mixGuestIP, mixPeerIP, 1514)
			} else {
				f = mixTCP4(vmMAC, srvMAC, mixPeerIP, mixGuestIP, 1514)
			}
		}
		frames[k] = f
	}
	return frames
}

func benchUpMix(b *testing.B, impl string) { benchUpFrames(b, impl, learnMix(true)...) }

func benchDownMix(b *testing.B, impl string) { benchDownFrames(b, impl, learnMix(false)...) }

// TestLearnMixFrames checks the benchmark's frames: each parses as what it
// stands for, and the mix has each kind.
func TestLearnMixFrames(t *testing.T) {
	for _, up := range []bool{true, false} {
		kinds := map[string]int{}
		for i, f := range learnMix(up) {
			etype, off, ok := parseEth(f)
			if !ok || len(f) > DefaultMTU+ethHeaderSize {
				t.Fatalf("up=%v frame %d: %d bytes, type %#x", up, i, len(f), etype)
			}
			switch etype {
			case etherTypeARP:
				if _, ok := parseARP(f[off:]); !ok {
					t.Fatalf("up=%v frame %d: bad ARP", up, i)
				}
				kinds["arp"]++
			case etherTypeIPv6:
				src, ok := parseIPv6Src(f[off:])
				want := mixGuestIP6
				if !up {
					want = mixPeerIP6
				}
				if !ok || !net.IP(src[:]).Equal(want) || f[off+6] != 6 {
					t.Fatalf("up=%v frame %d: bad IPv6 TCP", up, i)
				}
				kinds["tcp6"]++
			case etherTypeIPv4:
				if f[off+9] == protoUDP {
					if _, _, _, ok := parseIPv4UDP(f[off:]); !ok {
						t.Fatalf("up=%v frame %d: bad UDP", up, i)
					}
					kinds["udp4"]++
				} else if f[off+9] == 6 && int(binary.BigEndian.Uint16(f[off+2:])) == len(f)-off {
					kinds["tcp4"]++
				} else {
					t.Fatalf("up=%v frame %d: bad IPv4", up, i)
				}
			default:
				t.Fatalf("up=%v frame %d: type %#x", up, i, etype)
			}
		}
		if kinds["arp"] != 1 || kinds["tcp6"] < 10 || kinds["udp4"] < 10 || kinds["tcp4"] < learnMixLen/2 {
			t.Errorf("up=%v: mix %v", up, kinds)
		}
	}
}

// BenchmarkLearnMix times learning and filtering alone (learnUp and
// learnDown as the loops call them, no sockets) on BenchmarkLearning's
// mix: the per-frame cost that BenchmarkLearning's on/off comparison
// measures through the noise of the whole forwarder.
func BenchmarkLearnMix(b *testing.B) {
	_, host := vmPair(b)
	l, err := New(host, Config{Socket: "/tmp/unused.sock", MAC: vmMAC})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("up", func(b *testing.B) {
		frames := learnMix(true)
		var u upLearner
		u.macs[0], u.nmacs, u.next = l.guestMAC(), 1, 1
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			l.learnUp(&u, frames[i%len(frames)])
		}
	})
	b.Run("down", func(b *testing.B) {
		frames := learnMix(false)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if !l.learnDown(frames[i%len(frames)]) {
				b.Fatal("a frame of the mix was filtered")
			}
		}
	})
}
