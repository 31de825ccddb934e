package tray

import (
	"strings"
	"testing"
)

func TestOpenCommandFor(t *testing.T) {
	for _, tc := range []struct {
		goos string
		text bool
		want string
	}{
		{"darwin", false, "open /a b/console.log"},
		// open fails for .yaml on a stock Mac without -t.
		{"darwin", true, "open -t /a b/console.log"},
		{"linux", false, "xdg-open /a b/console.log"},
		{"linux", true, "xdg-open /a b/console.log"},
		{"plan9", true, ""},
	} {
		got := openCommandFor(tc.goos, "/a b/console.log", tc.text)
		if strings.Join(got, " ") != tc.want {
			t.Errorf("openCommandFor(%s, text=%v) = %q, want %q", tc.goos, tc.text, got, tc.want)
		}
		if len(got) > 0 && got[len(got)-1] != "/a b/console.log" {
			t.Errorf("openCommandFor(%s): the path is not one argument: %q", tc.goos, got)
		}
	}
}
