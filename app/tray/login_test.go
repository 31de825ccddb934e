package tray

import (
	"strings"
	"testing"

	"github.com/vmnetbar/vmnetbar/app/loginitem"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

func TestLoginPlan(t *testing.T) {
	for _, tc := range []struct {
		name    string
		enable  bool
		where   *loginitem.LocationProblem
		proceed bool
		line    string
	}{
		{"on, fine place", true, nil, true, ""},
		{"off, fine place", false, nil, true, ""},
		{"off, temporary place", false, &loginitem.LocationProblem{Kind: loginitem.PlaceTemporary}, true, ""},
		{"on, translocated", true, &loginitem.LocationProblem{Kind: loginitem.PlaceTranslocated}, false, "Launch at login off: macOS runs a temporary copy"},
		{"on, temporary", true, &loginitem.LocationProblem{Kind: loginitem.PlaceTemporary}, false, "Launch at login off: vmnetbar is in a temporary folder"},
		{"on, disk image", true, &loginitem.LocationProblem{Kind: loginitem.PlaceVolume}, true, "Launch at login may fail: it runs from a disk image"},
	} {
		proceed, line := loginPlan(tc.enable, tc.where)
		if proceed != tc.proceed || !strings.HasPrefix(line, tc.line) || (tc.line == "") != (line == "") {
			t.Errorf("%s: loginPlan = %v, %q; want %v, %q…", tc.name, proceed, line, tc.proceed, tc.line)
		}
		if line == "" {
			continue
		}
		// The menu shows the whole line, not cut off.
		ui := allUI
		ui.Problem = line
		m := buildModel(status{VM: vm(vmhost.StateStopped, 0, "")}, ui, now)
		if got := m.Items[ItemProblem].Label; got != "⚠ "+line {
			t.Errorf("%s: menu line %q, want %q", tc.name, got, "⚠ "+line)
		}
	}
}
