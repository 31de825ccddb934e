package cli

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/internal/fakeapp"
	"github.com/vmnetbar/vmnetbar/internal/testbin"
	"github.com/vmnetbar/vmnetbar/internal/testwait"
	"github.com/vmnetbar/vmnetbar/netlink"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

func vmStatus(name string, s vmhost.State, reconnects uint64) model.VMStatus {
	return model.VMStatus{Name: name, VM: model.VM{State: s}, Link: netlink.Status{State: netlink.StateStopped, Reconnects: reconnects}}
}

func TestOverviewLines(t *testing.T) {
	const rest = " link=stopped reconnects="
	last := map[string]string{}
	steps := []struct {
		o    model.Overview
		want []string
	}{
		// One VM: today's line, without a name.
		{model.Overview{VMs: []model.VMStatus{vmStatus("default", vmhost.StateStopped, 0)}},
			[]string{"vm=stopped" + rest + "0 tx=0B rx=0B drops=0"}},
		{model.Overview{VMs: []model.VMStatus{vmStatus("default", vmhost.StateStopped, 0)}}, nil},
		// A second VM: from now on every line names its VM.
		{model.Overview{VMs: []model.VMStatus{vmStatus("build", vmhost.StateStopped, 0), vmStatus("default", vmhost.StateStopped, 0)}},
			[]string{"name=build vm=stopped" + rest + "0 tx=0B rx=0B drops=0", "name=default vm=stopped" + rest + "0 tx=0B rx=0B drops=0"}},
		// Only the VM that changed.
		{model.Overview{VMs: []model.VMStatus{vmStatus("build", vmhost.StateStopped, 0), vmStatus("default", vmhost.StateRunning, 2)}},
			[]string{"name=default vm=running" + rest + "2 tx=0B rx=0B drops=0"}},
		{model.Overview{VMs: []model.VMStatus{vmStatus("build", vmhost.StateStarting, 0), vmStatus("default", vmhost.StateRunning, 2)}},
			[]string{"name=build vm=starting" + rest + "0 tx=0B rx=0B drops=0"}},
		// A removed VM says so; the last one left is alone again.
		{model.Overview{VMs: []model.VMStatus{vmStatus("build", vmhost.StateStarting, 0)}},
			[]string{"name=default removed", "vm=starting" + rest + "0 tx=0B rx=0B drops=0"}},
		{model.Overview{}, []string{"no VMs configured"}},
		{model.Overview{}, nil},
		{model.Overview{VMs: []model.VMStatus{vmStatus("a", vmhost.StateStopped, 0), vmStatus("b", vmhost.StateStopped, 0)}},
			[]string{"name=a vm=stopped" + rest + "0 tx=0B rx=0B drops=0", "name=b vm=stopped" + rest + "0 tx=0B rx=0B drops=0"}},
		{model.Overview{VMs: []model.VMStatus{vmStatus("c", vmhost.StateStopped, 0), vmStatus("d", vmhost.StateStopped, 0)}},
			[]string{"name=a removed", "name=b removed", "name=c vm=stopped" + rest + "0 tx=0B rx=0B drops=0", "name=d vm=stopped" + rest + "0 tx=0B rx=0B drops=0"}},
	}
	for i, s := range steps {
		if got := overviewLines(s.o, last); !slices.Equal(got, s.want) {
			t.Errorf("step %d: got %q, want %q", i, got, s.want)
		}
	}
}

// TestPrintStatusLinesOfSeveralVMs: the headless app's lines follow the
// app's VMs (a model.Machines, as the controller is), one line per VM
// that changed.
func TestPrintStatusLinesOfSeveralVMs(t *testing.T) {
	m := fakeapp.New("build", "dev")
	defer m.Close()
	var out testbin.Buffer
	now := func() time.Time { return time.Date(2026, 11, 25, 22, 30, 1, 0, time.UTC) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		printStatusLines(ctx, &out, m, now, 0, discardLog())
	}()
	const (
		build   = "2026-11-25T22:30:01Z name=build vm=stopped link=stopped reconnects=0 tx=0B rx=0B drops=0\n"
		dev     = "2026-11-25T22:30:01Z name=dev vm=stopped link=stopped reconnects=0 tx=0B rx=0B drops=0\n"
		devUp   = "2026-11-25T22:30:01Z name=dev vm=running link=up reconnects=0 tx=0B rx=0B drops=0\n"
		devBoot = "2026-11-25T22:30:01Z name=dev vm=starting link=connecting reconnects=0 tx=0B rx=0B drops=0\n"
		removed = "2026-11-25T22:30:01Z name=build removed\n"
		alone   = "2026-11-25T22:30:01Z vm=running link=up reconnects=0 tx=0B rx=0B drops=0\n"
	)
	wait := func(want string) {
		t.Helper()
		testwait.ForValue(t, "the status lines "+strings.ReplaceAll(want, "\n", `\n`), out.String, func(s string) bool { return s == want })
	}
	wait(build + dev)
	testwait.For(t, "the printer to subscribe", func() bool { return m.Subscribers() > 0 })
	// The start stays starting until the test says running: the printer
	// sees both (it is sent the latest status only).
	m.HoldStart("dev")
	if err := m.Start(ctx, "dev"); err != nil {
		t.Fatal(err)
	}
	wait(build + dev + devBoot)
	if err := m.Change("dev", func(v *model.VMStatus) { v.VM.State, v.Link.State = vmhost.StateRunning, netlink.StateUp }); err != nil {
		t.Fatal(err)
	}
	wait(build + dev + devBoot + devUp)
	m.Remove("build")
	wait(build + dev + devBoot + devUp + removed + alone)

	// It returns when the app shuts down.
	m.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the printer did not return after the app shut down")
	}
	cancel()
}

// A stopped or failed VM's line has no ip=, even when its status still has
// the last run's address (stale); a VM whose link runs (starting, running,
// stopping) and a standalone link (no VM) show it.
func TestStatusLineHidesStaleAddress(t *testing.T) {
	guest := netlink.Guest{IPv4: netip.MustParseAddr("192.168.127.2")}
	for _, tt := range []struct {
		vm   *model.VM
		want bool
	}{
		{&model.VM{State: vmhost.StateStopped}, false},
		{&model.VM{State: vmhost.StateError, Error: "QEMU exited"}, false},
		{&model.VM{State: vmhost.StateStarting}, true},
		{&model.VM{State: vmhost.StateRunning}, true},
		{&model.VM{State: vmhost.StateStopping}, true},
		{nil, true},
	} {
		line := statusLine(model.Status{VM: tt.vm, Link: netlink.Status{State: netlink.StateUp, Guest: guest}})
		if got := strings.Contains(line, " ip=192.168.127.2"); got != tt.want {
			what := "a standalone link"
			if tt.vm != nil {
				what = "VM " + tt.vm.State.String()
			}
			t.Errorf("%s: %q, want ip= %v", what, line, tt.want)
		}
	}
}
