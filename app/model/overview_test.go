package model

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/vmnetbar/vmnetbar/netlink"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

func TestResolve(t *testing.T) {
	two := Overview{VMs: []VMStatus{{Name: "build"}, {Name: "dev"}}}
	one := Overview{VMs: []VMStatus{{Name: "dev"}}}
	for _, tc := range []struct {
		o        Overview
		name     string
		want     string
		kind     Kind
		mentions string
	}{
		{one, "", "dev", 0, ""},
		{one, "dev", "dev", 0, ""},
		{two, "build", "build", 0, ""},
		{two, "", "", KindAmbiguous, "build, dev"},
		{two, "nope", "", KindNotFound, `"nope"`},
		{Overview{}, "", "", KindAmbiguous, "no VMs are configured"},
	} {
		got, err := tc.o.Resolve(tc.name)
		if tc.kind == 0 {
			if err != nil || got.Name != tc.want {
				t.Errorf("Resolve(%q) = %q, %v; want %q", tc.name, got.Name, err, tc.want)
			}
			continue
		}
		var me *Error
		if !errors.As(err, &me) || me.Kind != tc.kind || !strings.Contains(me.Msg, tc.mentions) {
			t.Errorf("Resolve(%q) error = %v; want kind %d mentioning %s", tc.name, err, tc.kind, tc.mentions)
		}
	}
}

// A stopped or failed VM's guest addresses are stale: LiveGuest leaves
// them out (keeping the MAC); a VM that starts, runs or stops, and a
// standalone link, keep them.
func TestLiveGuest(t *testing.T) {
	g := netlink.Guest{IPv4: netip.MustParseAddr("192.168.105.3"), Source: netlink.GuestSourceDHCP}
	g.MAC[0] = 0x52
	for _, tc := range []struct {
		vm   *VM
		live bool
	}{
		{nil, true},
		{&VM{State: vmhost.StateStarting}, true},
		{&VM{State: vmhost.StateRunning}, true},
		{&VM{State: vmhost.StateStopping}, true},
		{&VM{State: vmhost.StateStopped}, false},
		{&VM{State: vmhost.StateError}, false},
	} {
		got := Status{VM: tc.vm, Link: netlink.Status{Guest: g}}.LiveGuest()
		if tc.live && got != g || !tc.live && got != (netlink.Guest{MAC: g.MAC}) {
			t.Errorf("VM %+v: LiveGuest %+v", tc.vm, got)
		}
	}
}
