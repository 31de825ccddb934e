package fakeapp

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/netlink"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var allStates = []vmhost.State{vmhost.StateStopped, vmhost.StateStarting, vmhost.StateRunning,
	vmhost.StateStopping, vmhost.StateError}

// TestLegalIsVMHostsRuleAndANewLife: the fake allows vmhost's transitions
// and, after a VM's life has ended, the next VM's start and a reset; no
// other.
func TestLegalIsVMHostsRuleAndANewLife(t *testing.T) {
	newLife := map[[2]vmhost.State]bool{
		{vmhost.StateError, vmhost.StateStopped}:  true,
		{vmhost.StateError, vmhost.StateStarting}: true,
	}
	for _, from := range allStates {
		for _, to := range allStates {
			want := vmhost.ValidTransition(from, to) || newLife[[2]vmhost.State{from, to}]
			if got := Legal(from, to); got != want {
				t.Errorf("Legal(%s, %s) = %v, want %v", from, to, got, want)
			}
		}
	}
}

func state(m *Machines, name string) model.VMStatus {
	st, err := m.Status().Resolve(name)
	if err != nil {
		panic(err) // the test's own VM names
	}
	return st
}

// TestSetRefusesIllegalJumps: Set refuses stopped -> running and
// running -> starting with an error naming the VM and both states; the VM
// is left as it was and nothing is published.
func TestSetRefusesIllegalJumps(t *testing.T) {
	m := New("dev")
	defer m.Close()
	sub, cancel := m.Subscribe()
	defer cancel()

	err := m.Change("dev", func(v *model.VMStatus) { v.VM.State, v.Link.Reconnects = vmhost.StateRunning, 3 })
	if err == nil || !strings.Contains(err.Error(), "dev cannot go from stopped to running") {
		t.Fatalf("Set stopped -> running: %v, want refused naming both states", err)
	}
	if st := state(m, "dev"); st.VM.State != vmhost.StateStopped || st.Link.Reconnects != 0 {
		t.Fatalf("a refused Set changed the VM: %+v", st)
	}
	select {
	case o := <-sub:
		t.Fatalf("a refused Set published %+v", o)
	default:
	}

	for _, s := range []vmhost.State{vmhost.StateStarting, vmhost.StateRunning} {
		if err := m.Change("dev", func(v *model.VMStatus) { v.VM.State = s }); err != nil {
			t.Fatalf("Set %s: %v", s, err)
		}
	}
	if err := m.Change("dev", func(v *model.VMStatus) { v.VM.State = vmhost.StateStarting }); err == nil {
		t.Fatal("Set running -> starting accepted")
	}
	// Not a change of state: always allowed.
	if err := m.Change("dev", func(v *model.VMStatus) { v.Link.Reconnects = 4 }); err != nil {
		t.Fatal(err)
	}
	// A VM that Set adds starts stopped.
	if err := m.Change("new", func(v *model.VMStatus) { v.VM.State = vmhost.StateRunning }); err == nil {
		t.Fatal("Set added a VM running")
	}
	if _, err := m.Status().Resolve("new"); err == nil {
		t.Fatal("a refused Set added the VM")
	}
}

// TestStartStepsThroughStarting: after HoldStart, Start leaves the VM
// starting with its link connecting; the test's Set makes it running.
// Without the hold the VM ends running, link up; after FailStarts, failed.
func TestStartStepsThroughStarting(t *testing.T) {
	m := New("dev", "build", "web")
	defer m.Close()
	m.HoldStart("dev")
	if err := m.Start(context.Background(), "dev"); err != nil {
		t.Fatal(err)
	}
	st := state(m, "dev")
	if st.VM.State != vmhost.StateStarting || st.Link.State != netlink.StateConnecting || !st.Actions.Stop || st.Actions.Start {
		t.Fatalf("held start: %+v, want starting, link connecting, Stop allowed", st)
	}
	if err := m.Change("dev", func(v *model.VMStatus) { v.VM.State = vmhost.StateRunning }); err != nil {
		t.Fatal(err)
	}

	if err := m.Start(context.Background(), "build"); err != nil {
		t.Fatal(err)
	}
	if st := state(m, "build"); st.VM.State != vmhost.StateRunning || st.Link.State != netlink.StateUp {
		t.Fatalf("start: %+v, want running, link up", st)
	}

	boom := errors.New("qemu: no such file")
	m.FailStarts(boom)
	if err := m.Start(context.Background(), "web"); !errors.Is(err, boom) {
		t.Fatalf("failed start: %v", err)
	}
	if st := state(m, "web"); st.VM.State != vmhost.StateError || st.VM.Error != boom.Error() {
		t.Fatalf("failed start: %+v", st.VM)
	}
	// A failed VM starts again: the next VM's life.
	m.FailStarts(nil)
	if err := m.Start(context.Background(), "web"); err != nil {
		t.Fatal(err)
	}
	if st := state(m, "web"); st.VM.State != vmhost.StateRunning || st.VM.Error != "" {
		t.Fatalf("restart: %+v", st.VM)
	}
}

// TestStopStepsThroughStopping: after HoldStop the VM stays stopping until
// Release.
func TestStopStepsThroughStopping(t *testing.T) {
	m := New("dev")
	defer m.Close()
	if err := m.Drive("dev", vmhost.StateRunning, nil); err != nil {
		t.Fatal(err)
	}
	m.HoldStop("dev")
	if err := m.Stop(context.Background(), "dev"); err != nil {
		t.Fatal(err)
	}
	if st := state(m, "dev"); st.VM.State != vmhost.StateStopping || st.Link.State != netlink.StateUp {
		t.Fatalf("held stop: %+v", st)
	}
	m.Release("dev")
	if st := state(m, "dev"); st.VM.State != vmhost.StateStopped || st.Link.State != netlink.StateStopped {
		t.Fatalf("released stop: %+v", st)
	}
}

// TestDriveStepsThroughLegalStates: Drive takes the fewest legal steps
// (a running VM reaches starting again only through stopped) and then
// applies f.
func TestDriveStepsThroughLegalStates(t *testing.T) {
	for _, tc := range []struct {
		from, to vmhost.State
		want     []vmhost.State
	}{
		{vmhost.StateStopped, vmhost.StateRunning, []vmhost.State{vmhost.StateStarting, vmhost.StateRunning}},
		{vmhost.StateStopped, vmhost.StateStopping, []vmhost.State{vmhost.StateStarting, vmhost.StateStopping}},
		{vmhost.StateStopped, vmhost.StateError, []vmhost.State{vmhost.StateStarting, vmhost.StateError}},
		{vmhost.StateRunning, vmhost.StateStarting, []vmhost.State{vmhost.StateStopped, vmhost.StateStarting}},
		{vmhost.StateStopping, vmhost.StateRunning, []vmhost.State{vmhost.StateStopped, vmhost.StateStarting, vmhost.StateRunning}},
		{vmhost.StateError, vmhost.StateStopped, []vmhost.State{vmhost.StateStopped}},
		{vmhost.StateRunning, vmhost.StateRunning, nil},
	} {
		t.Run(tc.from.String()+"->"+tc.to.String(), func(t *testing.T) {
			if got := path(tc.from, tc.to); !slices.Equal(got, tc.want) {
				t.Fatalf("path %v, want %v", got, tc.want)
			}
			m := New()
			defer m.Close()
			if err := m.Drive("dev", tc.from, nil); err != nil {
				t.Fatal(err)
			}
			if err := m.Drive("dev", tc.to, func(v *model.VMStatus) { v.VM.Image = "/img" }); err != nil {
				t.Fatal(err)
			}
			if st := state(m, "dev"); st.VM.State != tc.to || st.VM.Image != "/img" {
				t.Fatalf("after Drive: %+v", st.VM)
			}
		})
	}
}

// TestSetStepsThroughLegalStates: Set, kept for the callers from before
// the rule, makes a jump through the states between (the VM's Since is
// that of its last step), calling f once.
func TestSetStepsThroughLegalStates(t *testing.T) {
	m := New("dev")
	defer m.Close()
	tick := time.Unix(1000, 0)
	m.now = func() time.Time { tick = tick.Add(time.Second); return tick }
	calls := 0
	m.Set("dev", func(v *model.VMStatus) { calls++; v.VM.State, v.Link.Reconnects = vmhost.StateRunning, 3 })
	if calls != 1 {
		t.Errorf("f called %d times, want once", calls)
	}
	st := state(m, "dev")
	if st.VM.State != vmhost.StateRunning || st.Link.Reconnects != 3 || !st.Actions.Stop {
		t.Fatalf("after Set: %+v", st)
	}
	if !st.VM.Since.Equal(time.Unix(1001, 0)) {
		t.Errorf("since %v: want that of the step through starting", st.VM.Since)
	}
	// A legal change takes no step.
	m.Set("dev", func(v *model.VMStatus) { v.VM.State = vmhost.StateStopping })
	if st := state(m, "dev"); st.VM.State != vmhost.StateStopping || !st.VM.Since.Equal(time.Unix(1001, 0)) {
		t.Errorf("after a legal Set: %s since %v", st.VM.State, st.VM.Since)
	}
}
