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
		{1536 << 20, "1536MiB"},
		{1 << 30, "1GiB"},
		{3 << 40, "3TiB"},
		{1<<30 + 1, "1073741825B"},
		{1<<64 - 1, "18446744073709551615B"},
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
}
