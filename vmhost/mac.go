package vmhost

import (
	"crypto/rand"
	"fmt"
	"net"
)

// RandomMAC returns a random locally administered unicast MAC address
// (the second-lowest bit of the first byte set, the lowest clear).
func RandomMAC() (net.HardwareAddr, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("generating a MAC address: %w", err)
	}
	b[0] = (b[0] | 0x02) &^ 0x01
	return net.HardwareAddr(b), nil
}

// ParseMAC reads a 6-byte unicast MAC address such as "52:54:00:12:34:56"
// (also "52-54-00-12-34-56" and "5254.0012.3456"). Multicast, broadcast and
// all-zero addresses are refused: a NIC needs a unicast address.
func ParseMAC(s string) (net.HardwareAddr, error) {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return nil, fmt.Errorf("invalid MAC address %q: write six hex bytes like 52:54:00:12:34:56", s)
	}
	if err := checkMAC(hw); err != nil {
		return nil, err
	}
	return hw, nil
}

// checkMAC reports why hw cannot be a NIC's address.
func checkMAC(hw net.HardwareAddr) error {
	switch {
	case len(hw) != 6:
		return fmt.Errorf("MAC address %q has %d bytes: a NIC's address has six, like 52:54:00:12:34:56", hw.String(), len(hw))
	case hw[0]&0x01 != 0:
		return fmt.Errorf("MAC address %s is a multicast address (lowest bit of the first byte set): use a unicast one such as %02x:%s", hw, hw[0]&^0x01|0x02, hw[1:].String())
	case isZero(hw):
		return fmt.Errorf("MAC address %s is all zeros: use a real unicast address, or leave it out to have one generated", hw)
	}
	return nil
}

func isZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}
