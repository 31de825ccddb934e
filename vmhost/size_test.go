package vmhost

import (
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	good := []struct {
		in   string
		want uint64
	}{
		{"1073741824", 1 << 30},
		{"0", 0},
		{"1GiB", 1 << 30},
		{"512MiB", 512 << 20},
		{"2G", 2 << 30},
		{"2g", 2 << 30},
		{"1.5GiB", 3 << 29},
		{"512 MiB", 512 << 20},
		{" 4k ", 4096},
		{"4KiB", 4096},
		{"1T", 1 << 40},
		{"1TiB", 1 << 40},
		{"100B", 100},
		{"1KB", 1000},
		{"2MB", 2e6},
		{"1GB", 1e9},
		{"1TB", 1e12},
		{"18446744073709551615", 1<<64 - 1},
	}
	for _, c := range good {
		got, err := ParseSize(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	bad := []struct {
		in, want string // want: a part of the error
	}{
		{"", "empty size"},
		{"   ", "empty size"},
		{"GiB", "does not start with a number"},
		{"-1GiB", "negative"},
		{"1XB", `unknown unit "XB"`},
		{"1 gibibytes", "unknown unit"},
		{"1.2.3G", "not a number"},
		{"1.", "not a number"},
		{".5G", "is not a number"},
		{"0.3B", "not a whole number of bytes"},
		{"1.0000000001KiB", "not a whole number of bytes"},
		{"16384PiB", "unknown unit"},
		{"17179869184GiB", "too large"},
		{"18446744073709551616", "too large"},
		{"1e9", "unknown unit"},
	}
	for _, c := range bad {
		got, err := ParseSize(c.in)
		if err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", c.in, got)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseSize(%q) error %q does not say %q", c.in, err, c.want)
		}
	}
}

func TestFormatSize(t *testing.T) {
	cases := []struct {
		in   uint64
		want string
	}{
		{0, "0B"},
		{1, "1B"},
		{1000, "1000B"},
		{1024, "1KiB"},
		{1536, "1.5KiB"},
		{1<<20 - 1, "1048575B"},
		{64 << 20, "64MiB"},
		{954 << 20, "954MiB"},
		{1536 << 20, "1.5GiB"},
		{1 << 30, "1GiB"},
		{1<<30 + 256<<20, "1.25GiB"},
		{4769 << 20, "4769MiB"},
		{20001 << 20, "20001MiB"},
		{3 << 40, "3TiB"},
		{3<<40 + 512<<30, "3.5TiB"},
	}
	for _, c := range cases {
		if got := FormatSize(c.in); got != c.want {
			t.Errorf("FormatSize(%d) = %q, want %q", c.in, got, c.want)
		}
		back, err := ParseSize(c.want)
		if err != nil || back != c.in {
			t.Errorf("ParseSize(FormatSize(%d)) = %d, %v", c.in, back, err)
		}
	}

	// Sizes that are no whole number of MiB (above 1MiB) are rounded, and
	// say so, rather than written as a long run of KiB or bytes.
	rounded := []struct {
		in   uint64
		want string
	}{
		{24683548 * KiB, "about 23.54GiB"}, // a host's physical memory
		{1<<30 + 1, "about 1.00GiB"},
		{1<<20 + 1, "about 1.00MiB"},
		{1<<64 - 1, "about 16777216.00TiB"},
		{3<<40 + 1<<20, "about 3.00TiB"},
		{100001 << 20, "about 97.66GiB"},
	}
	for _, c := range rounded {
		if got := FormatSize(c.in); got != c.want {
			t.Errorf("FormatSize(%d) = %q, want %q", c.in, got, c.want)
		}
	}
}

// Every size below 1MiB and every whole number of MiB is written exactly,
// short and readable: at most two decimals and five integer digits.
func TestFormatSizeRoundTrips(t *testing.T) {
	check := func(n uint64) {
		s := FormatSize(n)
		back, err := ParseSize(s)
		if err != nil || back != n {
			t.Fatalf("ParseSize(FormatSize(%d) = %q) = %d, %v", n, s, back, err)
		}
		num := strings.TrimRight(s, "BKMGTi")
		whole, frac, _ := strings.Cut(num, ".")
		if len(frac) > 2 || (len(whole) > 5 && n >= MiB) {
			t.Fatalf("FormatSize(%d) = %q is not short", n, s)
		}
	}
	for n := uint64(0); n < 1<<20; n += 127 {
		check(n)
	}
	check(1<<20 - 1)
	for m := uint64(1); m < 8<<10; m++ {
		check(m * MiB)
	}
	for _, m := range []uint64{99999, 1 << 20, 3 << 20, 100000 * 256} {
		check(m * MiB)
	}
}

func TestRoundSize(t *testing.T) {
	host := uint64(24683548 * KiB) // not even a whole number of MiB
	cases := []struct {
		n, step uint64
		down    bool
		want    string
	}{
		{host, niceStep(host), true, "23.5GiB"},
		{host, niceStep(host), false, "23.75GiB"},
		{host, MiB, true, "24105MiB"},
		{1e9, MiB, false, "954MiB"},
		{5e9, MiB, false, "4769MiB"},
		{64 * MiB, niceStep(64 * MiB), false, "64MiB"},
		{100*MiB + 1, niceStep(100 * MiB), true, "100MiB"},
		{2 * GiB, niceStep(2 * GiB), true, "2GiB"},
	}
	for _, c := range cases {
		r := roundSize(c.n, c.step, c.down)
		if got := FormatSize(r); got != c.want {
			t.Errorf("roundSize(%d, %d, %v) = %s, want %s", c.n, c.step, c.down, got, c.want)
		}
		if (c.down && r > c.n) || (!c.down && r < c.n) {
			t.Errorf("roundSize(%d, %d, %v) = %d went the wrong way", c.n, c.step, c.down, r)
		}
		if back, err := ParseSize(c.want); err != nil || back != r {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", c.want, back, err, r)
		}
	}
	// A whole number of MiB when that is short, else of quarter GiB.
	for _, c := range []struct {
		n    uint64
		down bool
		want string
	}{
		{5e9, false, "4769MiB"},
		{5e9, true, "4768MiB"},
		{1e9, false, "954MiB"},
		{100001<<20 + 1, false, "97.75GiB"},
		{100001<<20 + 1, true, "97.5GiB"},
	} {
		r := suggestSize(c.n, c.down)
		if got := FormatSize(r); got != c.want {
			t.Errorf("suggestSize(%d, %v) = %s, want %s", c.n, c.down, got, c.want)
		}
		if back, err := ParseSize(c.want); err != nil || back != r || r%MiB != 0 {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, a whole number of MiB", c.want, back, err, r)
		}
	}
	if r := roundSize(1<<64-1, MiB, false); r != 1<<64-1-(MiB-1) {
		t.Errorf("roundSize up at the top of 64 bits = %d", r)
	}
}
