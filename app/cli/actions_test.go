package cli

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/vmnetbar/vmnetbar/app/control"
	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/app/tray"
	"github.com/vmnetbar/vmnetbar/netlink"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

// TestEverySurfaceTakesActionsFromOneDecision: for every VM state and link
// state, for a VM that boots a kernel and one that boots an image, the
// control API, the command line and the menu (in both its one-VM and its
// several-VM layout) allow exactly what model.Allowed decides, and nothing
// else. (The menu has no reset.)
func TestEverySurfaceTakesActionsFromOneDecision(t *testing.T) {
	vmStates := []vmhost.State{vmhost.StateStopped, vmhost.StateStarting, vmhost.StateRunning, vmhost.StateStopping, vmhost.StateError}
	linkStates := []netlink.State{netlink.StateStopped, netlink.StateConnecting, netlink.StateUp, netlink.StateReconnecting, netlink.StateFailed}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, vs := range vmStates {
		for _, ls := range linkStates {
			for _, image := range []string{"", "/images/debian.qcow2"} {
				want := model.Allowed(&model.VM{State: vs, Image: image}, ls)
				row := fmt.Sprintf("vm %s, link %s, image %q", vs, ls, image)
				set := func(v *model.VMStatus) { v.VM.State, v.Link.State, v.VM.Image = vs, ls, image }

				// The menu, one VM and several.
				now := time.Now()
				one, _ := serveVMs(t, "dev")
				one.Set("dev", set)
				m := tray.BuildModel(one.Status(), tray.UIState{}, now)
				if got := (model.Actions{Start: m.Items[tray.ItemStart].Enabled, Stop: m.Items[tray.ItemStop].Enabled,
					Reconnect: m.Items[tray.ItemReconnect].Enabled, Reset: want.Reset}); got != want { // the menu has no reset
					t.Errorf("%s: the one-VM menu enables %+v, the rule says %+v", row, got, want)
				}
				two, sock := serveVMs(t, "dev", "idle")
				two.Set("dev", set)
				m = tray.BuildModel(two.Status(), tray.UIState{}, now)
				var dev *tray.VMEntry
				for i := range m.VMs {
					if m.VMs[i].Name == "dev" {
						dev = &m.VMs[i]
					}
				}
				if dev == nil {
					t.Fatalf("%s: no dev in the several-VM menu", row)
				}
				if got := (model.Actions{Start: dev.Sub[tray.SubStart].Enabled, Stop: dev.Sub[tray.SubStop].Enabled,
					Reconnect: dev.Sub[tray.SubReconnect].Enabled, Reset: want.Reset}); got != want {
					t.Errorf("%s: dev's submenu enables %+v, the rule says %+v", row, got, want)
				}

				// The API's status says the same.
				cl := control.NewClient(sock)
				v, err := cl.VM(ctx, "dev")
				if err != nil || v.Actions != want {
					t.Errorf("%s: the API says %+v (%v), the rule says %+v", row, v.Actions, err, want)
				}

				// The command line acts exactly when the rule allows it (each
				// action on a VM in the row's state).
				for _, action := range []struct {
					cmd     string
					allowed bool
				}{{"start", want.Start}, {"stop", want.Stop}, {"reconnect", want.Reconnect}, {"reset", want.Reset}} {
					two.Set("dev", set)
					args := []string{action.cmd, "dev", "--control", sock}
					if action.cmd == "reset" {
						args = append(args, "--yes")
					}
					r := runCLI(t, args...)
					if (r.code == ExitOK) != action.allowed {
						t.Errorf("%s: vmnetbar %s dev exits %d (%s), the rule allows it: %v", row, action.cmd, r.code, r.stderr, action.allowed)
					}
				}
			}
		}
	}
}
