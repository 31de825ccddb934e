package e2e

import (
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// frameTap sits between a link and its daemon on the daemon's framing
// (4-byte big-endian length + frame) and records every frame it passes on,
// with the time it got it. It shows on the wire, not in the link's own
// words, what the guest and the link sent (the guest's first ARP, the
// link's probes) and what the daemon answered (the DHCP ACK, the
// gateway's ARP replies).
//
// For each connection from the link it dials the daemon once; when either
// side ends, both connections are closed, so the link redials as it would
// after a daemon restart.
type frameTap struct {
	path, upstream string
	ln             *net.UnixListener
	wg             sync.WaitGroup

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
	frames []tapFrame
}

// tapFrame is one frame the tap passed on.
type tapFrame struct {
	at   time.Time // when the tap had read it whole
	up   bool      // from the link (the VM) to the daemon
	data []byte
}

// startTap listens on dir/tap.sock and forwards to the daemon's socket
// upstream until the test's cleanup closes it.
func startTap(t *testing.T, dir, upstream string) *frameTap {
	t.Helper()
	path := filepath.Join(dir, "tap.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatalf("frame tap: %v", err)
	}
	tp := &frameTap{path: path, upstream: upstream, ln: ln, conns: map[net.Conn]struct{}{}}
	tp.wg.Add(1)
	go tp.accept(t)
	t.Cleanup(tp.close)
	return tp
}

// Path is the socket the link dials.
func (tp *frameTap) Path() string { return tp.path }

func (tp *frameTap) accept(t *testing.T) {
	defer tp.wg.Done()
	for {
		c, err := tp.ln.Accept()
		if err != nil {
			return // closed
		}
		u, err := net.Dial("unix", tp.upstream)
		if err != nil {
			// The daemon is between two processes: the link redials.
			t.Logf("frame tap: dialing the daemon: %v", err)
			c.Close()
			continue
		}
		if !tp.track(c, u) {
			return
		}
		tp.wg.Add(2)
		go tp.pump(c, u, true)
		go tp.pump(u, c, false)
	}
}

// track registers a connection pair, or closes it when the tap is closed.
func (tp *frameTap) track(c ...net.Conn) bool {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if tp.closed {
		for _, x := range c {
			x.Close()
		}
		return false
	}
	for _, x := range c {
		tp.conns[x] = struct{}{}
	}
	return true
}

// pump copies frames from src to dst, recording each, until either side
// fails; then it closes both.
func (tp *frameTap) pump(src, dst net.Conn, up bool) {
	defer tp.wg.Done()
	defer func() {
		src.Close()
		dst.Close()
		tp.mu.Lock()
		delete(tp.conns, src)
		delete(tp.conns, dst)
		tp.mu.Unlock()
	}()
	buf := make([]byte, 4+65535)
	for {
		if _, err := io.ReadFull(src, buf[:4]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(buf))
		if n == 0 || n > len(buf)-4 {
			return // a protocol error: end the connection
		}
		if _, err := io.ReadFull(src, buf[4:4+n]); err != nil {
			return
		}
		f := tapFrame{at: time.Now(), up: up, data: append([]byte(nil), buf[4:4+n]...)}
		tp.mu.Lock()
		tp.frames = append(tp.frames, f)
		tp.mu.Unlock()
		if _, err := dst.Write(buf[:4+n]); err != nil {
			return
		}
	}
}

// close stops accepting, ends every connection and waits for the
// goroutines.
func (tp *frameTap) close() {
	tp.mu.Lock()
	tp.closed = true
	for c := range tp.conns {
		c.Close()
	}
	tp.mu.Unlock()
	tp.ln.Close()
	tp.wg.Wait()
}

// first returns the first frame recorded for which match holds.
func (tp *frameTap) first(match func(tapFrame) bool) (tapFrame, bool) {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	for _, f := range tp.frames {
		if match(f) {
			return f, true
		}
	}
	return tapFrame{}, false
}

// all returns the frames recorded for which match holds, in order.
func (tp *frameTap) all(match func(tapFrame) bool) []tapFrame {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	var out []tapFrame
	for _, f := range tp.frames {
		if match(f) {
			out = append(out, f)
		}
	}
	return out
}

// arpInfo is an Ethernet/IPv4 ARP frame's fields that the tests look at.
type arpInfo struct {
	broadcast         bool // sent to ff:ff:ff:ff:ff:ff
	op                uint16
	sender, target    netip.Addr
	senderMAC, dstEth net.HardwareAddr
}

// parseARPFrame reads an untagged Ethernet frame carrying ARP for IPv4.
func parseARPFrame(f []byte) (arpInfo, bool) {
	if len(f) < 42 || binary.BigEndian.Uint16(f[12:]) != 0x0806 ||
		binary.BigEndian.Uint16(f[14:]) != 1 || binary.BigEndian.Uint16(f[16:]) != 0x0800 || f[18] != 6 || f[19] != 4 {
		return arpInfo{}, false
	}
	a := arpInfo{
		op:        binary.BigEndian.Uint16(f[20:]),
		senderMAC: net.HardwareAddr(f[22:28]),
		sender:    netip.AddrFrom4([4]byte(f[28:32])),
		target:    netip.AddrFrom4([4]byte(f[38:42])),
		dstEth:    net.HardwareAddr(f[0:6]),
	}
	a.broadcast = a.dstEth.String() == "ff:ff:ff:ff:ff:ff"
	return a, true
}

// DHCP message types (option 53).
const (
	dhcpDiscover = 1
	dhcpRequest  = 3
	dhcpACK      = 5
)

// dhcpInfo is a DHCPv4 message's fields that the tests look at.
type dhcpInfo struct {
	msgType int
	yiaddr  netip.Addr
	chaddr  net.HardwareAddr
}

// parseDHCPFrame reads an untagged Ethernet frame carrying a DHCPv4
// message (UDP 67/68 either way).
func parseDHCPFrame(f []byte) (dhcpInfo, bool) {
	if len(f) < 14+20 || binary.BigEndian.Uint16(f[12:]) != 0x0800 || f[14]>>4 != 4 || f[14+9] != 17 {
		return dhcpInfo{}, false
	}
	ip := f[14:]
	ihl := int(ip[0]&0x0f) * 4
	if ihl < 20 || len(ip) < ihl+8 {
		return dhcpInfo{}, false
	}
	udp := ip[ihl:]
	sp, dp := binary.BigEndian.Uint16(udp), binary.BigEndian.Uint16(udp[2:])
	if !(sp == 68 && dp == 67) && !(sp == 67 && dp == 68) {
		return dhcpInfo{}, false
	}
	b := udp[8:]
	if len(b) < 240 || binary.BigEndian.Uint32(b[236:]) != 0x63825363 {
		return dhcpInfo{}, false
	}
	d := dhcpInfo{yiaddr: netip.AddrFrom4([4]byte(b[16:20])), chaddr: net.HardwareAddr(b[28:34])}
	for o := b[240:]; len(o) > 0 && o[0] != 255; {
		if o[0] == 0 {
			o = o[1:]
			continue
		}
		if len(o) < 2 || len(o) < 2+int(o[1]) {
			break
		}
		if o[0] == 53 && o[1] == 1 {
			d.msgType = int(o[2])
		}
		o = o[2+int(o[1]):]
	}
	return d, d.msgType != 0
}
