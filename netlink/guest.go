package netlink

import (
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"time"
)

// MaxGuestIPv6 bounds the IPv6 addresses a Guest lists: the first ones
// seen are kept, later new ones are ignored.
const MaxGuestIPv6 = 4

// Sources of a guest's IPv4 address (Guest.Source).
const (
	GuestSourceDHCP = "dhcp" // a DHCPv4 ACK for the guest's MAC
	GuestSourceARP  = "arp"  // the sender address of the guest's own ARP
)

// MACAddr is an Ethernet address; the zero value means unknown.
type MACAddr [6]byte

// IsZero reports whether m is the zero (unknown) address.
func (m MACAddr) IsZero() bool { return m == MACAddr{} }

// String is the usual colon form ("52:54:00:12:34:56"), "" when zero.
func (m MACAddr) String() string {
	if m.IsZero() {
		return ""
	}
	return net.HardwareAddr(m[:]).String()
}

func macFrom64(v uint64) MACAddr {
	return MACAddr{byte(v >> 40), byte(v >> 32), byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
}

// Guest is what the link learned about the VM from its frames. It is
// comparable (Status stays comparable).
type Guest struct {
	// MAC is the VM's MAC: Config.MAC, else the source of the first frame
	// the VM sent; zero until known.
	MAC MACAddr
	// IPv4 is the guest's address (invalid: unknown), from Source.
	IPv4 netip.Addr
	// IPv6 lists the IPv6 source addresses of the VM's frames, in the
	// order first seen, at most MaxGuestIPv6; unused entries are invalid.
	IPv6 [MaxGuestIPv6]netip.Addr
	// Gateway is the first router of the DHCP lease (invalid: unknown).
	Gateway netip.Addr
	// Source is GuestSourceDHCP, GuestSourceARP or "" (IPv4 unknown).
	Source string
	// Since is when IPv4 (or its source) last changed; zero when it never
	// was known.
	Since time.Time
	// LeaseExpires is when the DHCP lease ends; zero without a lease or
	// for an infinite one.
	LeaseExpires time.Time
}

// IPv6Addrs returns the valid entries of IPv6.
func (g Guest) IPv6Addrs() []netip.Addr {
	var out []netip.Addr
	for _, a := range g.IPv6 {
		if a.IsValid() {
			out = append(out, a)
		}
	}
	return out
}

// GuestJSON is the wire form of Guest:
// {"mac":"52:54:00:12:34:56","ipv4":"192.168.105.3","ipv6":["fe80::1"],
// "gateway":"192.168.105.1","source":"dhcp","since":RFC3339,
// "lease_expires":RFC3339 or null}. Unknown strings are "", unknown times
// null, and ipv6 is [] when empty.
type GuestJSON struct {
	MAC          string     `json:"mac"`
	IPv4         string     `json:"ipv4"`
	IPv6         []string   `json:"ipv6"`
	Gateway      string     `json:"gateway"`
	Source       string     `json:"source"`
	Since        *time.Time `json:"since"`
	LeaseExpires *time.Time `json:"lease_expires"`
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func jsonTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC().Truncate(time.Second)
	return &u
}

// JSON converts a Guest to its wire form.
func (g Guest) JSON() GuestJSON {
	j := GuestJSON{
		MAC:          g.MAC.String(),
		IPv4:         addrString(g.IPv4),
		IPv6:         []string{},
		Gateway:      addrString(g.Gateway),
		Source:       g.Source,
		Since:        jsonTime(g.Since),
		LeaseExpires: jsonTime(g.LeaseExpires),
	}
	for _, a := range g.IPv6Addrs() {
		j.IPv6 = append(j.IPv6, a.String())
	}
	return j
}

// Guest converts the wire form back; what does not parse stays unknown.
func (j GuestJSON) Guest() Guest {
	g := Guest{Source: j.Source}
	if hw, err := net.ParseMAC(j.MAC); err == nil && len(hw) == 6 {
		copy(g.MAC[:], hw)
	}
	g.IPv4, _ = netip.ParseAddr(j.IPv4)
	g.Gateway, _ = netip.ParseAddr(j.Gateway)
	n := 0
	for _, s := range j.IPv6 {
		if a, err := netip.ParseAddr(s); err == nil && n < MaxGuestIPv6 {
			g.IPv6[n] = a
			n++
		}
	}
	if j.Since != nil {
		g.Since = *j.Since
	}
	if j.LeaseExpires != nil {
		g.LeaseExpires = *j.LeaseExpires
	}
	return g
}

// checkMAC validates Config.MAC: empty, or a 6-byte unicast address.
func checkMAC(hw net.HardwareAddr) (uint64, error) {
	if len(hw) == 0 {
		return 0, nil
	}
	if len(hw) != 6 {
		return 0, fmt.Errorf("the VM's MAC %s is not a 6-byte Ethernet address: give one like 52:54:00:12:34:56", hw)
	}
	m := mac64(hw)
	if !isUnicastMAC(m) {
		return 0, fmt.Errorf("the VM's MAC %s is not a unicast address (it is all zero, or its first byte is odd: multicast): give one like 52:54:00:12:34:56", hw)
	}
	return m, nil
}

// macSetSize is how many source MACs of the VM the filter remembers.
const macSetSize = 8

// macSet is the filter's set of MACs the VM used as sources. Slot 0 holds
// the VM's own MAC (configured or first learned) and is never replaced;
// slots 1.. are replaced round robin. Only the up loop writes; the down
// loop reads. Entries are the packed MAC | macValid.
type macSet struct {
	slots [macSetSize]atomic.Uint64
}

const macValid = 1 << 48

func (s *macSet) has(m uint64) bool {
	v := m | macValid
	for i := range s.slots {
		switch s.slots[i].Load() {
		case v:
			return true
		case 0:
			return false // slots fill in order: the rest are empty
		}
	}
	return false
}

// upLearner is the up loop's own learning state (no lock: only the up loop
// uses it). It mirrors the macSet and the IPv6 list so that a known source
// costs no shared-memory traffic and no lock.
type upLearner struct {
	lastSrc uint64 // last source MAC checked
	macs    [macSetSize]uint64
	nmacs   int
	next    int // next slot to replace once full (1..macSetSize-1)
	v6      [MaxGuestIPv6][16]byte
	nv6     int
}

// guestMAC returns the VM's MAC, packed, 0 when not known yet.
func (l *Link) guestMAC() uint64 { return l.mac.Load() }

// learnUp inspects a frame from the VM (len >= 1). Only frames with a new
// source MAC, ARP, IPv6 from a new address and DHCP client messages do more
// than a few comparisons.
func (l *Link) learnUp(u *upLearner, f []byte) {
	if len(f) < ethHeaderSize {
		return
	}
	src := mac64(f[6:12])
	if src != u.lastSrc {
		u.lastSrc = src
		l.learnSource(u, src)
	}
	etype, off, _ := parseEth(f)
	switch etype {
	case etherTypeIPv4:
		// DHCP from the client: only RELEASE matters. UDP 68 -> 67.
		if len(f) < off+20 || f[off+9] != protoUDP {
			return
		}
		sp, dp, payload, ok := parseIPv4UDP(f[off:])
		if !ok || sp != portBOOTPClient || dp != portBOOTPServer {
			return
		}
		d, ok := parseDHCP(payload)
		if !ok || d.op != 1 || mac64(d.chaddr[:]) != l.guestMAC() {
			return
		}
		if d.msgType == dhcpDiscover || d.msgType == dhcpRequest {
			l.noteAsk()
			return
		}
		if d.msgType != dhcpRelease {
			return
		}
		l.updateGuest(func(g *Guest, now time.Time) {
			if g.Source == GuestSourceDHCP {
				clearLease(g, now)
			}
		})
	case etherTypeARP:
		if src != l.guestMAC() {
			return
		}
		a, ok := parseARP(f[off:])
		if !ok || mac64(a.senderMAC[:]) != src {
			return
		}
		if a.op == 1 {
			l.noteAsk()
		}
		if a.senderIP == [4]byte{} {
			return
		}
		ip := netip.AddrFrom4(a.senderIP)
		l.updateGuest(func(g *Guest, now time.Time) {
			if g.Source == GuestSourceDHCP && (g.LeaseExpires.IsZero() || now.Before(g.LeaseExpires)) {
				return // a lease is known: it says the address
			}
			if g.IPv4 != ip || g.Source != GuestSourceARP {
				*g = Guest{MAC: g.MAC, IPv6: g.IPv6, IPv4: ip, Source: GuestSourceARP, Since: now}
			}
		})
	case etherTypeIPv6:
		if u.nv6 == MaxGuestIPv6 || src != l.guestMAC() {
			return
		}
		a, ok := parseIPv6Src(f[off:])
		if !ok || a[0] == 0xff || a == [16]byte{} {
			return // multicast or unspecified (duplicate address detection)
		}
		for i := 0; i < u.nv6; i++ {
			if u.v6[i] == a {
				return
			}
		}
		u.v6[u.nv6] = a
		n := u.nv6
		u.nv6++
		ip := netip.AddrFrom16(a)
		l.updateGuest(func(g *Guest, _ time.Time) { g.IPv6[n] = ip })
	}
}

// learnSource handles a source MAC the up loop has not just seen: the
// first unicast one is the VM's MAC (unless configured); every unicast one
// joins the filter's set.
func (l *Link) learnSource(u *upLearner, src uint64) {
	if !isUnicastMAC(src) {
		return
	}
	for i := 0; i < u.nmacs; i++ {
		if u.macs[i] == src {
			return
		}
	}
	slot := u.nmacs
	if u.nmacs < macSetSize {
		u.nmacs++
	} else {
		slot = u.next
		u.next++
		if u.next == macSetSize {
			u.next = 1
		}
	}
	u.macs[slot] = src
	l.macs.slots[slot].Store(src | macValid)
	if slot == 0 && l.mac.CompareAndSwap(0, src) {
		l.updateGuest(func(g *Guest, _ time.Time) { g.MAC = macFrom64(src) })
	}
}

// learnDown inspects a frame from the daemon and reports whether it goes
// to the VM: unicast to a MAC the VM never used is filtered (unless the
// filter is off). A DHCP ACK or NAK for the VM's MAC updates the guest.
func (l *Link) learnDown(f []byte) bool {
	if len(f) < ethHeaderSize {
		return true
	}
	if l.filter && f[0]&1 == 0 && !l.macs.has(mac64(f)) {
		l.filtered.Add(1)
		return false
	}
	etype, off, _ := parseEth(f)
	if etype == etherTypeARP {
		if sent := l.probeSent.Load(); sent != 0 {
			l.probeReply(f[off:], sent)
		}
		return true
	}
	if etype != etherTypeIPv4 || len(f) < off+20 || f[off+9] != protoUDP {
		return true
	}
	sp, dp, payload, ok := parseIPv4UDP(f[off:])
	if !ok || sp != portBOOTPServer || dp != portBOOTPClient {
		return true
	}
	d, ok := parseDHCP(payload)
	if !ok || d.op != 2 || mac64(d.chaddr[:]) != l.guestMAC() || l.guestMAC() == 0 {
		return true
	}
	switch d.msgType {
	case dhcpACK:
		if d.yiaddr == [4]byte{} {
			return true // the answer to a DHCPINFORM: no address
		}
		l.updateGuest(func(g *Guest, now time.Time) {
			ip := netip.AddrFrom4(d.yiaddr)
			var gw netip.Addr
			if d.hasRouter {
				gw = netip.AddrFrom4(d.router)
			}
			var exp time.Time
			if d.hasLease && d.lease != 0xffffffff {
				exp = now.Add(time.Duration(d.lease) * time.Second)
			}
			if g.IPv4 != ip || g.Source != GuestSourceDHCP {
				g.Since = now
			}
			g.IPv4, g.Gateway, g.Source, g.LeaseExpires = ip, gw, GuestSourceDHCP, exp
		})
	case dhcpNAK:
		l.updateGuest(func(g *Guest, now time.Time) {
			if g.Source == GuestSourceDHCP {
				clearLease(g, now)
			}
		})
	}
	return true
}

func clearLease(g *Guest, now time.Time) {
	*g = Guest{MAC: g.MAC, IPv6: g.IPv6, Since: now}
}

// updateGuest applies change to the guest under the link's lock and
// publishes the status when the guest changed.
func (l *Link) updateGuest(change func(g *Guest, now time.Time)) {
	now := l.now()
	l.mu.Lock()
	old := l.guest
	change(&l.guest, now)
	if l.guest != old {
		l.notifyLocked()
		l.wakeHealth()
	}
	l.mu.Unlock()
}
