package netlink

// Frame parsers for what the link learns from frames: the Ethernet header
// (with at most one VLAN tag), ARP, IPv4+UDP, DHCPv4 (BOOTP) and the IPv6
// source address. Each works on a frame in place, allocates nothing and
// returns ok=false for anything it does not understand; none panics on any
// input (each has a fuzz target in frames_test.go).

const (
	etherTypeIPv4 = 0x0800
	etherTypeARP  = 0x0806
	etherTypeVLAN = 0x8100
	etherTypeIPv6 = 0x86DD

	ethHeaderSize = 14
	vlanTagSize   = 4
	// VLANOverhead is what MTU + VLANOverhead adds up to the largest frame
	// the link sends to the daemon: an Ethernet header (14), one VLAN tag
	// (4). (1500 + 18 = 1518; vmnet itself takes 1514.)
	VLANOverhead = ethHeaderSize + vlanTagSize

	protoUDP = 17

	portBOOTPServer = 67
	portBOOTPClient = 68
)

func be16(b []byte) uint16 { return uint16(b[0])<<8 | uint16(b[1]) }

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// mac64 packs a 6-byte MAC (b must hold at least 6 bytes) in the low 48
// bits of a uint64.
func mac64(b []byte) uint64 {
	return uint64(b[0])<<40 | uint64(b[1])<<32 | uint64(b[2])<<24 | uint64(b[3])<<16 | uint64(b[4])<<8 | uint64(b[5])
}

// isUnicastMAC reports whether a packed MAC is a usable unicast source:
// not multicast/broadcast (bit 0 of the first byte) and not all zero.
func isUnicastMAC(m uint64) bool { return m != 0 && m&(1<<40) == 0 }

// parseEth returns the ethertype of a frame and the offset of its payload,
// looking through one 802.1Q VLAN tag. ok is false when the frame is
// shorter than its header.
func parseEth(f []byte) (etype uint16, off int, ok bool) {
	if len(f) < ethHeaderSize {
		return 0, 0, false
	}
	etype = be16(f[12:])
	if etype != etherTypeVLAN {
		return etype, ethHeaderSize, true
	}
	if len(f) < ethHeaderSize+vlanTagSize {
		return 0, 0, false
	}
	return be16(f[16:]), ethHeaderSize + vlanTagSize, true
}

// arpInfo is what an Ethernet/IPv4 ARP request or reply says about its
// sender.
type arpInfo struct {
	op        uint16 // 1 request, 2 reply
	senderMAC [6]byte
	senderIP  [4]byte
	targetIP  [4]byte
}

// parseARP parses an ARP payload (after the Ethernet header): Ethernet
// hardware, IPv4 protocol, operation request or reply.
func parseARP(p []byte) (a arpInfo, ok bool) {
	if len(p) < 28 {
		return a, false
	}
	if be16(p[0:]) != 1 || be16(p[2:]) != etherTypeIPv4 || p[4] != 6 || p[5] != 4 {
		return a, false
	}
	a.op = be16(p[6:])
	if a.op != 1 && a.op != 2 {
		return a, false
	}
	copy(a.senderMAC[:], p[8:14])
	copy(a.senderIP[:], p[14:18])
	copy(a.targetIP[:], p[24:28])
	return a, true
}

// parseIPv4UDP parses an IPv4 payload carrying a whole (unfragmented) UDP
// datagram and returns its ports and the UDP payload. The IPv4 total
// length bounds the datagram (Ethernet padding is ignored).
func parseIPv4UDP(p []byte) (srcPort, dstPort uint16, payload []byte, ok bool) {
	if len(p) < 20 || p[0]>>4 != 4 || p[9] != protoUDP {
		return 0, 0, nil, false
	}
	ihl := int(p[0]&0x0f) * 4
	total := int(be16(p[2:]))
	if ihl < 20 || total < ihl+8 || total > len(p) {
		return 0, 0, nil, false
	}
	// A fragment (more fragments set, or an offset) is not parsed.
	if be16(p[6:])&0x3fff != 0 {
		return 0, 0, nil, false
	}
	u := p[ihl:total]
	ulen := int(be16(u[4:]))
	if ulen < 8 || ulen > len(u) {
		return 0, 0, nil, false
	}
	return be16(u[0:]), be16(u[2:]), u[8:ulen], true
}

// DHCP message types (option 53).
const (
	dhcpDiscover = 1
	dhcpOffer    = 2
	dhcpRequest  = 3
	dhcpACK      = 5
	dhcpNAK      = 6
	dhcpRelease  = 7
)

// dhcpInfo is what the link reads from a DHCPv4 message.
type dhcpInfo struct {
	op        byte // BOOTP op: 1 request (client), 2 reply (server)
	msgType   byte // option 53; 0 when absent (plain BOOTP)
	chaddr    [6]byte
	yiaddr    [4]byte
	router    [4]byte // the first address of option 3
	hasRouter bool
	lease     uint32 // option 51, seconds (0xffffffff: infinite)
	hasLease  bool
	server    [4]byte // option 54
	hasServer bool
}

const (
	bootpFixedSize = 236
	dhcpMagic      = 0x63825363
)

// parseDHCP parses a BOOTP/DHCPv4 message (a UDP payload) with an Ethernet
// client hardware address. The option walk is bounds-checked: a truncated
// option ends it with what was read so far.
func parseDHCP(p []byte) (d dhcpInfo, ok bool) {
	if len(p) < bootpFixedSize+4 {
		return d, false
	}
	if (p[0] != 1 && p[0] != 2) || p[1] != 1 || p[2] != 6 || be32(p[bootpFixedSize:]) != dhcpMagic {
		return d, false
	}
	d.op = p[0]
	copy(d.yiaddr[:], p[16:20])
	copy(d.chaddr[:], p[28:34])
	opts := p[bootpFixedSize+4:]
	for i := 0; i < len(opts); {
		code := opts[i]
		if code == 0 { // pad
			i++
			continue
		}
		if code == 255 { // end
			break
		}
		if i+1 >= len(opts) {
			break
		}
		n := int(opts[i+1])
		v := i + 2
		if v+n > len(opts) {
			break
		}
		val := opts[v : v+n]
		switch code {
		case 53:
			if n == 1 {
				d.msgType = val[0]
			}
		case 3:
			if n >= 4 && n%4 == 0 {
				copy(d.router[:], val[:4])
				d.hasRouter = true
			}
		case 51:
			if n == 4 {
				d.lease = be32(val)
				d.hasLease = true
			}
		case 54:
			if n == 4 {
				copy(d.server[:], val)
				d.hasServer = true
			}
		}
		i = v + n
	}
	return d, true
}

// parseIPv6Src returns the source address of an IPv6 payload.
func parseIPv6Src(p []byte) (src [16]byte, ok bool) {
	if len(p) < 40 || p[0]>>4 != 6 {
		return src, false
	}
	copy(src[:], p[8:24])
	return src, true
}
