package netlink

import (
	"encoding/binary"
	"net"
)

// Builders of real frames for the learning and filter tests.

var (
	vmMAC    = net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	otherMAC = net.HardwareAddr{0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc}
	srvMAC   = net.HardwareAddr{0x5a, 0x94, 0xef, 0x00, 0x00, 0x01}
	bcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	mcastMAC = net.HardwareAddr{0x33, 0x33, 0x00, 0x00, 0x00, 0x01}
)

func ethFrame(dst, src net.HardwareAddr, etype uint16, payload []byte) []byte {
	f := make([]byte, 0, 14+len(payload))
	f = append(f, dst...)
	f = append(f, src...)
	f = binary.BigEndian.AppendUint16(f, etype)
	return append(f, payload...)
}

// vlanFrame wraps payload in one 802.1Q tag (VLAN 5).
func vlanFrame(dst, src net.HardwareAddr, etype uint16, payload []byte) []byte {
	p := binary.BigEndian.AppendUint16([]byte{0, 5}, etype)
	return ethFrame(dst, src, etherTypeVLAN, append(p, payload...))
}

func arpPayload(op uint16, sender net.HardwareAddr, senderIP, targetIP net.IP) []byte {
	p := []byte{0, 1, 8, 0, 6, 4}
	p = binary.BigEndian.AppendUint16(p, op)
	p = append(p, sender...)
	p = append(p, senderIP.To4()...)
	p = append(p, 0, 0, 0, 0, 0, 0)
	return append(p, targetIP.To4()...)
}

func ipv4UDP(src, dst net.IP, sport, dport uint16, body []byte) []byte {
	total := 20 + 8 + len(body)
	p := []byte{0x45, 0}
	p = binary.BigEndian.AppendUint16(p, uint16(total))
	p = append(p, 0, 0, 0, 0, 64, protoUDP, 0, 0)
	p = append(p, src.To4()...)
	p = append(p, dst.To4()...)
	p = binary.BigEndian.AppendUint16(p, sport)
	p = binary.BigEndian.AppendUint16(p, dport)
	p = binary.BigEndian.AppendUint16(p, uint16(8+len(body)))
	p = append(p, 0, 0)
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(p[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(p[10:], ^uint16(sum))
	return append(p, body...)
}

type dhcpMsg struct {
	op, msgType byte
	chaddr      net.HardwareAddr
	yiaddr      net.IP
	router      net.IP // nil: no option 3
	lease       uint32 // 0: no option 51
	server      net.IP // nil: no option 54
	xid         uint32
	requested   net.IP // nil: no option 50
}

func (m dhcpMsg) bootp() []byte {
	p := make([]byte, 236)
	p[0], p[1], p[2] = m.op, 1, 6
	if m.yiaddr != nil {
		copy(p[16:], m.yiaddr.To4())
	}
	binary.BigEndian.PutUint32(p[4:], m.xid)
	copy(p[28:], m.chaddr)
	p = binary.BigEndian.AppendUint32(p, dhcpMagic)
	if m.requested != nil {
		p = append(p, 50, 4)
		p = append(p, m.requested.To4()...)
	}
	p = append(p, 53, 1, m.msgType)
	if m.router != nil {
		p = append(p, 3, 4)
		p = append(p, m.router.To4()...)
	}
	if m.lease != 0 {
		p = append(p, 51, 4)
		p = binary.BigEndian.AppendUint32(p, m.lease)
	}
	if m.server != nil {
		p = append(p, 54, 4)
		p = append(p, m.server.To4()...)
	}
	return append(p, 255)
}

// serverFrame is the message from a DHCP server (67 -> 68), broadcast.
func (m dhcpMsg) serverFrame() []byte {
	return ethFrame(bcastMAC, srvMAC, etherTypeIPv4, ipv4UDP(net.IPv4(192, 168, 105, 1), net.IPv4bcast, 67, 68, m.bootp()))
}

// clientFrame is the message from the VM's client (68 -> 67).
func (m dhcpMsg) clientFrame(src net.HardwareAddr) []byte {
	return ethFrame(srvMAC, src, etherTypeIPv4, ipv4UDP(net.IPv4(192, 168, 105, 3), net.IPv4(192, 168, 105, 1), 68, 67, m.bootp()))
}

func ipv6Frame(src net.HardwareAddr, srcIP net.IP) []byte {
	p := make([]byte, 40)
	p[0] = 0x60
	p[6] = 59 // no next header
	p[7] = 64
	copy(p[8:], srcIP.To16())
	copy(p[24:], net.ParseIP("ff02::1"))
	return ethFrame(mcastMAC, src, etherTypeIPv6, p)
}
