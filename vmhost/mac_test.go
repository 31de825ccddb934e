package vmhost

import (
	"strings"
	"testing"
)

func TestParseMAC(t *testing.T) {
	good := map[string]string{
		"52:54:00:12:34:56": "52:54:00:12:34:56",
		"52-54-00-AB-cd-EF": "52:54:00:ab:cd:ef",
		"5254.0012.3456":    "52:54:00:12:34:56",
		"00:00:00:00:00:01": "00:00:00:00:00:01",
	}
	for in, want := range good {
		hw, err := ParseMAC(in)
		if err != nil || hw.String() != want {
			t.Errorf("ParseMAC(%q) = %v, %v; want %s", in, hw, err, want)
		}
	}
	bad := []struct{ in, want string }{
		{"", "invalid MAC address"},
		{"52:54:00:12:34", "invalid MAC address"},
		{"52:54:00:12:34:56:78:9a", "invalid MAC address"},
		{"00:00:5e:00:53:01:02:03:04:05:06:07:08:09:0a:0b:0c:0d:0e:0f", "invalid MAC address"},
		{"zz:54:00:12:34:56", "invalid MAC address"},
		{"01:00:5e:00:00:01", "multicast"},
		{"ff:ff:ff:ff:ff:ff", "multicast"},
		{"00:00:00:00:00:00", "all zeros"},
	}
	for _, c := range bad {
		hw, err := ParseMAC(c.in)
		if err == nil {
			t.Errorf("ParseMAC(%q) = %v, want an error", c.in, hw)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseMAC(%q) error %q does not say %q", c.in, err, c.want)
		}
	}
}

func TestRandomMAC(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 64; i++ {
		hw, err := RandomMAC()
		if err != nil {
			t.Fatal(err)
		}
		if len(hw) != 6 {
			t.Fatalf("RandomMAC() = %v: %d bytes", hw, len(hw))
		}
		if hw[0]&0x01 != 0 || hw[0]&0x02 == 0 {
			t.Fatalf("RandomMAC() = %v: not locally administered unicast", hw)
		}
		if _, err := ParseMAC(hw.String()); err != nil {
			t.Fatalf("ParseMAC(RandomMAC()) = %v", err)
		}
		seen[hw.String()] = true
	}
	if len(seen) < 60 {
		t.Fatalf("64 random MACs gave only %d distinct addresses", len(seen))
	}
}
