package netlink

import (
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"time"
)

// MaxGuestIPv6 bounds the IPv6 addresses a Guest lists: the ones the VM
// used most recently are kept; a new one replaces the one least recently
// seen.
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
//
// Where IPv4 comes from: a DHCP ACK for the VM's MAC sets it (source
// "dhcp"); a DHCP RELEASE from the VM or a NAK clears it. The sender
// address of an ARP frame from the VM's MAC (not an RFC 5227 probe, whose
// sender is 0.0.0.0) sets it (source "arp") when no address is known or the
// known one came from ARP. While a DHCP lease is known, a different ARP
// sender address replaces the leased one only when
//
//   - the lease has expired (an infinite lease, or one without option 51,
//     never does), or
//   - the frame is an announcement (gratuitous ARP: sender == target) of
//     the new address, or
//   - two ARP frames from the same new address came with no ARP frame from
//     the leased address in between (and no DHCP ACK, which confirms the
//     lease and starts the count over).
//
// So a guest switched to a static address is learned from its first
// announcement, or from its second ARP request, even under an infinite
// lease; one stray ARP from another address does not replace a lease.
type Guest struct {
	// MAC is the VM's MAC: Config.MAC, else the source of the first frame
	// the VM sent; zero until known.
	MAC MACAddr
	// IPv4 is the guest's address (invalid: unknown), from Source (see
	// above for when ARP replaces a DHCP lease).
	IPv4 netip.Addr
	// IPv6 lists the IPv6 source addresses of the VM's frames: the
	// MaxGuestIPv6 it used most recently (a new address replaces the one
	// least recently seen), link-local ones first, then the others, each
	// in the order it joined the list. Unused entries (at the end) are
	// invalid.
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
	v6      v6List
}

// v6List is the up loop's list of the VM's IPv6 source addresses: the
// MaxGuestIPv6 seen most recently. Recency is a counter that moves only
// when the source changes from one address to another, so a run of frames
// from one address costs one 16-byte comparison each.
type v6List struct {
	addrs  [MaxGuestIPv6][16]byte
	seen   [MaxGuestIPv6]uint64 // tick when the address last became the current source
	joined [MaxGuestIPv6]uint64 // tick when the address joined the list
	n      int
	last   int // index of the last address seen (valid when n > 0)
	tick   uint64
}

// see records a frame from a; it reports whether the list changed (a new
// address joined, replacing the least recently seen one when full).
func (v *v6List) see(a *[16]byte) bool {
	if v.n > 0 && v.addrs[v.last] == *a {
		return false // the common case: the same source as the last frame
	}
	v.tick++
	for i := 0; i < v.n; i++ {
		if v.addrs[i] == *a {
			v.seen[i], v.last = v.tick, i
			return false
		}
	}
	slot := v.n
	if v.n < MaxGuestIPv6 {
		v.n++
	} else {
		slot = 0
		for i := 1; i < v.n; i++ {
			if v.seen[i] < v.seen[slot] {
				slot = i
			}
		}
	}
	v.addrs[slot], v.seen[slot], v.joined[slot], v.last = *a, v.tick, v.tick, slot
	return true
}

// guest returns the list as Guest.IPv6 shows it: link-local addresses
// first, then the others, each in the order it joined.
func (v *v6List) guest() (out [MaxGuestIPv6]netip.Addr) {
	var idx [MaxGuestIPv6]int
	for i := 0; i < v.n; i++ {
		idx[i] = i
		// Insertion sort on (not link-local, joined).
		for j := i; j > 0 && v.before(idx[j], idx[j-1]); j-- {
			idx[j], idx[j-1] = idx[j-1], idx[j]
		}
	}
	for k := 0; k < v.n; k++ {
		out[k] = netip.AddrFrom16(v.addrs[idx[k]])
	}
	return out
}

func (v *v6List) before(i, j int) bool {
	li, lj := isLinkLocal6(&v.addrs[i]), isLinkLocal6(&v.addrs[j])
	if li != lj {
		return li
	}
	return v.joined[i] < v.joined[j]
}

// isLinkLocal6 reports whether a is in fe80::/10.
func isLinkLocal6(a *[16]byte) bool { return a[0] == 0xfe && a[1]&0xc0 == 0x80 }

// arpCandidates are the new ARP sender addresses each seen once while a
// DHCP lease is known (the third case in Guest's doc): the last
// len(addrs), replaced round robin. Guarded by Link.mu.
type arpCandidates struct {
	addrs [4]netip.Addr
	next  int
}

// seenOrAdd reports whether ip is a candidate already, adding it if not.
func (c *arpCandidates) seenOrAdd(ip netip.Addr) bool {
	for _, a := range c.addrs {
		if a == ip {
			return true
		}
	}
	c.addrs[c.next] = ip
	c.next = (c.next + 1) % len(c.addrs)
	return false
}

// guestMAC returns the VM's MAC, packed, 0 when not known yet.
func (l *Link) guestMAC() uint64 { return l.mac.Load() }

// learnUp inspects a frame from the VM (len >= 1). Only frames with a new
// source MAC, ARP, DHCP client messages and IPv6 from a source other than
// the last one do more than a few comparisons.
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
			l.arpNew = arpCandidates{}
		})
	case etherTypeARP:
		if src != l.guestMAC() {
			return
		}
		a, ok := parseARP(f[off:])
		if !ok || mac64(a.senderMAC[:]) != src {
			return
		}
		if a.senderIP == [4]byte{} {
			// An RFC 5227 probe: it says no address and asks
			// nothing the network answers on success.
			return
		}
		announce := a.senderIP == a.targetIP
		if a.op == 1 && !announce {
			// A real request: the network answers it. (An
			// announcement, gratuitous ARP, gets no answer.)
			l.noteAsk()
		}
		ip := netip.AddrFrom4(a.senderIP)
		l.updateGuest(func(g *Guest, now time.Time) { l.learnARPLocked(g, now, ip, announce) })
	case etherTypeIPv6:
		if src != l.guestMAC() {
			return
		}
		a, ok := parseIPv6Src(f[off:])
		if !ok || a[0] == 0xff || a == [16]byte{} {
			return // multicast or unspecified (duplicate address detection)
		}
		if !u.v6.see(&a) {
			return
		}
		v6 := u.v6.guest()
		l.updateGuest(func(g *Guest, _ time.Time) { g.IPv6 = v6 })
	}
}

// learnARPLocked applies the sender address ip of an ARP frame from the VM
// (announce: sender == target) to g, with l.mu held: see Guest for the
// rule.
func (l *Link) learnARPLocked(g *Guest, now time.Time, ip netip.Addr, announce bool) {
	leased := g.Source == GuestSourceDHCP && (g.LeaseExpires.IsZero() || now.Before(g.LeaseExpires))
	if leased {
		switch {
		case ip == g.IPv4:
			l.arpNew = arpCandidates{} // the leased address is in use
			return
		case announce:
		case l.arpNew.seenOrAdd(ip):
		default:
			return // once: a lease is known, it says the address
		}
	}
	l.arpNew = arpCandidates{}
	if g.IPv4 != ip || g.Source != GuestSourceARP {
		*g = Guest{MAC: g.MAC, IPv6: g.IPv6, IPv4: ip, Source: GuestSourceARP, Since: now}
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
			l.arpNew = arpCandidates{} // the lease is confirmed: count again
		})
	case dhcpNAK:
		l.updateGuest(func(g *Guest, now time.Time) {
			if g.Source == GuestSourceDHCP {
				clearLease(g, now)
			}
			l.arpNew = arpCandidates{}
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
