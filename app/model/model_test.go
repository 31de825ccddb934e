package model

import (
	"testing"

	"github.com/vmnetbar/vmnetbar/netlink"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

func TestAllowed(t *testing.T) {
	up, failed := netlink.StateUp, netlink.StateFailed
	for _, tc := range []struct {
		vm   *VM
		link netlink.State
		want Actions
	}{
		{&VM{State: vmhost.StateStopped}, netlink.StateStopped, Actions{Start: true}},
		{&VM{State: vmhost.StateStopped, NotConfigured: true}, netlink.StateStopped, Actions{Start: true}},
		{&VM{State: vmhost.StateError}, netlink.StateStopped, Actions{Start: true}},
		{&VM{State: vmhost.StateStarting}, netlink.StateConnecting, Actions{Stop: true, Reconnect: true}},
		{&VM{State: vmhost.StateStarting}, up, Actions{Stop: true, Reconnect: true}},
		{&VM{State: vmhost.StateRunning}, up, Actions{Stop: true, Reconnect: true}},
		{&VM{State: vmhost.StateRunning}, netlink.StateReconnecting, Actions{Stop: true, Reconnect: true}},
		{&VM{State: vmhost.StateRunning}, failed, Actions{Stop: true}},
		{&VM{State: vmhost.StateStopping}, up, Actions{}},
		{&VM{State: vmhost.StateStopped, Image: "/d.qcow2"}, netlink.StateStopped, Actions{Start: true, Reset: true}},
		{&VM{State: vmhost.StateError, Image: "/d.qcow2"}, netlink.StateStopped, Actions{Start: true, Reset: true}},
		{&VM{State: vmhost.StateRunning, Image: "/d.qcow2"}, up, Actions{Stop: true, Reconnect: true}},
		{nil, up, Actions{Reconnect: true}},
		{nil, netlink.StateStopped, Actions{}},
		{nil, failed, Actions{}},
	} {
		if got := Allowed(tc.vm, tc.link); got != tc.want {
			t.Errorf("Allowed(%+v, %v) = %+v, want %+v", tc.vm, tc.link, got, tc.want)
		}
	}
}
