package vmhost

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmnetbar/vmnetbar/internal/testguest"
	"golang.org/x/sys/unix"
)

// A guest that misses the first presses of its power button (it is still
// booting) gets more: the stop ends when it answers, long before the stop
// timeout, and the VM says what it waits for meanwhile.
func TestQEMUStopPressesTheButtonAgain(t *testing.T) {
	out := filepath.Join(t.TempDir(), "fake-qemu.out")
	t.Setenv("VMHOST_FAKE_QEMU", "qmp")
	t.Setenv("VMHOST_FAKE_PRESSES", "3") // the guest answers the third press
	t.Setenv("VMHOST_FAKE_OUT", out)
	cfg := fakeConfig(t)
	v := newTestVM(t, cfg, testExe(t))
	v.buttonRepeat = 20 * time.Millisecond
	if err := v.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for ev := range v.Events() {
		if ev.State == StateRunning {
			break
		}
	}
	// A timeout far beyond the test's context: the stop can only end in
	// time if the guest answers.
	if err := v.Stop(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	evs := awaitDone(t, v, time.Second)
	if got := states(evs); !slices.Equal(got, []State{StateStopping, StateStopped}) {
		t.Fatalf("events after running: %v", got)
	}
	if v.forced.Load() {
		t.Error("the VM was forced off")
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "press\n"); n != 3 {
		t.Errorf("the power button was pressed %d times, want 3:\n%s", n, b)
	}
	n := notes(evs)
	if len(n) != 1 || !strings.HasPrefix(n[0], noteWaitButton) || !strings.Contains(n[0], "forced off after 1h0m0s") {
		t.Errorf("notes %q, want one that starts %q and names the timeout", n, noteWaitButton)
	}
	for _, ev := range evs {
		if ev.Note != "" && ev.State != StateStopping {
			t.Errorf("note %q in state %s", ev.Note, ev.State)
		}
	}
}

// A stop before QMP is up says so, and the kill still comes at the stop
// timeout.
func TestQEMUStopBeforeQMPNotes(t *testing.T) {
	v := newTestVM(t, fakeConfig(t), fakeQEMU(t, "qemu-hang.sh"))
	if err := v.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := v.Stop(ctx, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	evs := awaitDone(t, v, time.Second)
	if got := notes(evs); !slices.Equal(got, []string{noteWaitQMP}) {
		t.Errorf("notes %q", got)
	}
	if !v.forced.Load() {
		t.Error("the VM was not forced off")
	}
}

// QMP runs over an inherited socketpair: nothing is created in the
// temporary directory, so a vmnetbar that dies leaves nothing there.
func TestQEMUCreatesNoRuntimeDirectory(t *testing.T) {
	tmp := t.TempDir()
	cfg := fakeConfig(t)
	t.Setenv("TMPDIR", tmp)
	t.Setenv("VMHOST_FAKE_QEMU", "qmp")
	t.Setenv("VMHOST_FAKE_PRESSES", "1")
	t.Setenv("VMHOST_FAKE_OUT", filepath.Join(t.TempDir(), "out"))
	v := newTestVM(t, cfg, testExe(t))
	if err := v.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	for ev := range v.Events() {
		if ev.State == StateRunning {
			break // QMP is up
		}
	}
	entries, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("a running VM has files in the temporary directory: %v", entries)
	}
}

// A stop issued right after the start, while the guest boots and cannot
// handle the power button yet, ends with the guest powering off by itself,
// long before a 60s stop timeout.
func TestGuestStopWhileBooting(t *testing.T) {
	g := guestConfig(t, testguest.Cmdline(testguest.Options{}))
	v, err := New(g, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	q := v.(*qemuVM)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	if err := q.Start(ctx); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	if err := q.Stop(ctx, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("the stop took %v", time.Since(begin))
	evs := awaitDone(t, q, time.Second)
	if got := states(evs); !slices.Equal(got, []State{StateStarting, StateStopping, StateStopped}) {
		t.Fatalf("events %v", got)
	}
	if q.forced.Load() {
		t.Fatal("the guest was forced off: it never answered the power button")
	}
	l, err := testguest.ReadLog(g.ConsoleLog)
	if err != nil {
		t.Fatal(err)
	}
	if l.PowerOff != "button" {
		t.Errorf("the guest did not power off from the power button: %s", l.Summary())
	}
}

// guestConfig is a configuration for the test guest under QEMU (TCG).
func guestConfig(t *testing.T, cmdline string) Config {
	t.Helper()
	requireQEMU(t)
	g := testguest.Ensure(t)
	vmEnd, _ := socketPair(t, unix.SOCK_DGRAM)
	mac, err := RandomMAC()
	if err != nil {
		t.Fatal(err)
	}
	return Config{
		Kernel:      g.Kernel,
		Initrd:      g.Initrd,
		Cmdline:     cmdline,
		CPUs:        1,
		Memory:      256 * MiB,
		MAC:         mac,
		ConsoleLog:  filepath.Join(t.TempDir(), "console.log"),
		QEMUOptions: QEMUOptions{Accel: "tcg"},
		NIC:         vmEnd,
	}
}

// A Stop with a shorter timeout while a stop waits for a guest that never
// answers (the controller's CloseWithin after a Quit) kills QEMU at the
// shorter deadline, and both Stop calls return.
func TestQEMUSecondStopShortensTheWait(t *testing.T) {
	t.Setenv("VMHOST_FAKE_QEMU", "qmp") // no VMHOST_FAKE_PRESSES: the guest never answers
	t.Setenv("VMHOST_FAKE_OUT", filepath.Join(t.TempDir(), "fake-qemu.out"))
	v := newTestVM(t, fakeConfig(t), testExe(t))
	v.buttonRepeat = 10 * time.Millisecond
	if err := v.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Should the stop keep its hour, the test fails without
		// waiting for it (this runs before newTestVM's cleanup).
		select {
		case <-v.Done():
		default:
			syscall.Kill(v.pid(), syscall.SIGKILL)
		}
	})
	for ev := range v.Events() {
		if ev.State == StateRunning {
			break
		}
	}
	stop := func(timeout time.Duration) <-chan error {
		ch := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			ch <- v.Stop(ctx, timeout)
		}()
		return ch
	}
	first := stop(time.Hour)
	// The stop is under way with the hour: the button was pressed again.
	var evs []Event
	for ev := range v.Events() {
		evs = append(evs, ev)
		if strings.Contains(ev.Note, "forced off after 1h0m0s") {
			break
		}
	}
	second := stop(200 * time.Millisecond)
	evs = append(evs, awaitDone(t, v, 5*time.Second)...)
	for i, ch := range []<-chan error{first, second} {
		select {
		case err := <-ch:
			if err != nil {
				t.Errorf("Stop %d: %v", i+1, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("Stop %d did not return after the VM ended", i+1)
		}
	}
	if !v.forced.Load() {
		t.Error("the VM was not forced off")
	}
	if st, err := v.State(); st != StateStopped {
		t.Errorf("state %s (%v), want stopped", st, err)
	}
	if got := states(evs); !slices.Equal(got, []State{StateStopping, StateStopped}) {
		t.Errorf("events after running: %v", got)
	}
}
