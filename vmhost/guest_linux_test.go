package vmhost

import (
	"bytes"
	"context"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/vmnetbar/vmnetbar/internal/testguest"
	"golang.org/x/sys/unix"
)

// guestVM boots the test guest under QEMU (TCG) with cmdline and waits until
// it runs and its console shows the boot marker. It returns the VM, its
// config and the host end of its NIC.
func guestVM(t *testing.T, cmdline string) (*qemuVM, Config, []byte) {
	t.Helper()
	if runtime.GOARCH != "amd64" {
		t.Skip("the test guest is built for x86-64")
	}
	requireQEMU(t)
	g := testguest.Ensure(t)
	vmEnd, hostEnd := socketPair(t, unix.SOCK_DGRAM)
	mac, err := RandomMAC()
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
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
	vm, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	v := vm.(*qemuVM)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		v.Stop(ctx, time.Millisecond)
	})

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := v.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// Events arrive in order: starting, then running.
	for _, want := range []State{StateStarting, StateRunning} {
		select {
		case ev := <-v.Events():
			if ev.State != want {
				t.Fatalf("event %s (%v), want %s", ev.State, ev.Err, want)
			}
		case <-ctx.Done():
			st, err := v.State()
			t.Fatalf("no %s event (state %s, %v)", want, st, err)
		}
	}
	if _, err := testguest.WaitLog(ctx, cfg.ConsoleLog, v.Done(), "the guest's boot marker", func(l testguest.Log) bool {
		return l.Booted
	}); err != nil {
		t.Fatal(err)
	}

	// The guest's first frames (DHCP, IPv6) come out of the host end of
	// the socketpair, sent from the configured MAC.
	buf := make([]byte, 65536)
	var frame []byte
	for frame == nil {
		if err := hostEnd.SetReadDeadline(time.Now().Add(60 * time.Second)); err != nil {
			t.Fatal(err)
		}
		n, err := hostEnd.Read(buf)
		if err != nil {
			t.Fatalf("no frame from the guest: %v", err)
		}
		if n >= 14 && bytes.Equal(buf[6:12], mac) {
			frame = buf[:n]
		}
	}
	return v, cfg, frame
}

func TestGuestGracefulStop(t *testing.T) {
	v, cfg, _ := guestVM(t, testguest.Cmdline(testguest.Options{}))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if _, err := testguest.WaitLog(ctx, cfg.ConsoleLog, v.Done(), "acpid", func(l testguest.Log) bool {
		return l.ACPID
	}); err != nil {
		t.Fatal(err)
	}
	pid := v.pid()
	begin := time.Now()
	if err := v.Stop(ctx, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("graceful stop took %v", time.Since(begin))
	evs := awaitDone(t, v, time.Second)
	if got := states(evs); len(got) != 2 || got[0] != StateStopping || got[1] != StateStopped {
		t.Fatalf("events after running: %v", got)
	}
	l, err := testguest.ReadLog(cfg.ConsoleLog)
	if err != nil {
		t.Fatal(err)
	}
	if l.PowerOff != "button" {
		t.Errorf("the guest did not power off from the power button: %s", l.Summary())
	}
	if !processGone(pid) {
		t.Error("the QEMU process is still there")
	}
	if !isClosed(cfg.NIC) {
		t.Error("the NIC is still open after the VM ended")
	}
}

// With ACPI off the guest never sees the power button: Stop kills QEMU when
// the timeout has passed.
func TestGuestStopTimeoutForcesKill(t *testing.T) {
	v, cfg, _ := guestVM(t, testguest.Cmdline(testguest.Options{})+" acpi=off")
	pid := v.pid()
	const timeout = 2 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	begin := time.Now()
	if err := v.Stop(ctx, timeout); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(begin); waited < timeout {
		t.Errorf("stopped after %v, before the %v timeout", waited, timeout)
	}
	evs := awaitDone(t, v, time.Second)
	if got := states(evs); len(got) != 2 || got[0] != StateStopping || got[1] != StateStopped {
		t.Fatalf("events after running: %v", got)
	}
	if l, _ := testguest.ReadLog(cfg.ConsoleLog); l.PowerOff != "" {
		t.Errorf("the guest powered off by itself: %s", l.Summary())
	}
	if !processGone(pid) {
		t.Error("the QEMU process is still there")
	}
	if !isClosed(cfg.NIC) {
		t.Error("the NIC is still open after the VM ended")
	}
}
