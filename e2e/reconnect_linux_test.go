package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/vmnetbar/vmnetbar/internal/testdaemon"
	"github.com/vmnetbar/vmnetbar/internal/testguest"
	"github.com/vmnetbar/vmnetbar/netlink"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

const pingInterval = 250 * time.Millisecond

// TestGuestSurvivesDaemonRestarts boots the test guest through vmhost with
// its NIC on a netlink link to gvproxy, crashes gvproxy twice (restarted at
// once, then after 3 s) and checks that the guest's pings to its gateway
// resume each time without a VM restart, that the link reconnected exactly
// twice, and that a graceful stop leaves no process behind.
func TestGuestSurvivesDaemonRestarts(t *testing.T) {
	guest := needGuest(t)
	dir := guestDir(t, "vmnb-e2e-")
	log := testLogger(t)

	daemon := testdaemon.Start(t, dir)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()

	// The link: host end of the socketpair <-> gvproxy.
	vmEnd, hostEnd, err := netlink.NewSocketPair()
	if err != nil {
		t.Fatal(err)
	}
	defer hostEnd.Close()
	link, err := netlink.New(hostEnd, netlink.Config{Socket: daemon.SocketPath(), Logger: log.WithField("part", "link")})
	if err != nil {
		vmEnd.Close()
		t.Fatal(err)
	}
	linkCtx, stopLink := context.WithCancel(context.Background())
	linkDone := make(chan error, 1)
	go func() { linkDone <- link.Run(linkCtx) }()
	defer func() {
		stopLink()
		if err := <-linkDone; err != nil {
			t.Errorf("link Run: %v", err)
		}
	}()

	// The VM, its NIC on the VM end.
	mac, err := vmhost.RandomMAC()
	if err != nil {
		vmEnd.Close()
		t.Fatal(err)
	}
	console := filepath.Join(dir, "console.log")
	vm, err := vmhost.New(vmhost.Config{
		Kernel:      guest.Kernel,
		Initrd:      guest.Initrd,
		Cmdline:     testguest.Cmdline(testguest.Options{Forever: true, Interval: pingInterval}),
		CPUs:        1,
		Memory:      256 * vmhost.MiB,
		MAC:         mac,
		ConsoleLog:  console,
		QEMUOptions: vmhost.QEMUOptions{Accel: "tcg"},
		NIC:         vmEnd,
	}, log.WithField("part", "vm"))
	if err != nil {
		vmEnd.Close()
		t.Fatal(err)
	}
	if err := vm.Start(ctx); err != nil {
		t.Fatal(err)
	}
	vmStopped := false
	defer func() {
		if !vmStopped {
			stopCtx, c := context.WithTimeout(context.Background(), 30*time.Second)
			defer c()
			_ = vm.Stop(stopCtx, 5*time.Second)
		}
	}()
	start := time.Now()

	// Boot, DHCP from gvproxy, pings to its gateway.
	l, err := testguest.WaitLog(ctx, console, vm.Done(), "DHCP and 3 pings", func(l testguest.Log) bool {
		return l.OKPings() >= 3
	})
	if err != nil {
		t.Fatal(err)
	}
	if l.Gateway != "192.168.127.1" || !strings.HasPrefix(l.Addr, "192.168.127.") {
		t.Fatalf("lease from gvproxy: addr %q gateway %q", l.Addr, l.Gateway)
	}
	t.Logf("boot to 3 pings: %v (addr %s)", time.Since(start), l.Addr)
	qemuPids := processesMentioning(t, dir, "qemu-system")
	if len(qemuPids) != 1 {
		t.Fatalf("QEMU processes for this test: %v, want 1", qemuPids)
	}
	if s := link.Status(); s.State != netlink.StateUp || s.Reconnects != 0 {
		t.Fatalf("link before the crashes: %s, %d reconnects", s.State, s.Reconnects)
	}

	for i, pause := range []time.Duration{0, 3 * time.Second} {
		before, _ := testguest.ReadLog(console)
		last, _ := before.LastPing()
		killed := time.Now()
		if err := daemon.KillAndPause(pause); err != nil {
			t.Fatal(err)
		}
		// Pings sent after the kill must come back: the first one that
		// started after the crash has a seq at least last.Seq+2.
		after, err := testguest.WaitLog(ctx, console, vm.Done(), "pings to resume after crash "+strconv.Itoa(i+1), func(l testguest.Log) bool {
			for _, p := range l.Pings {
				if p.OK && p.Seq >= last.Seq+2 {
					return true
				}
			}
			return false
		})
		if err != nil {
			t.Fatalf("%v; link: %+v", err, link.Status())
		}
		gap, failed := pingGap(after.Pings, last.Seq)
		t.Logf("crash %d (restart after %v): pings resumed %v after the kill; guest saw a %v gap, %d failed pings; link downtime so far %v",
			i+1, pause, time.Since(killed).Round(time.Millisecond), gap.Round(time.Millisecond), failed, link.Status().Downtime.Round(time.Millisecond))
		if pause > 0 && failed == 0 {
			t.Errorf("crash %d: no ping failed while the daemon was down for %v", i+1, pause)
		}
		if after.Boots != 1 {
			t.Fatalf("the guest booted %d times", after.Boots)
		}
		if st, err := vm.State(); st != vmhost.StateRunning {
			t.Fatalf("VM state after crash %d: %s (%v)", i+1, st, err)
		}
		if got := daemon.Restarts(); got != i+1 {
			t.Fatalf("daemon restarts = %d, want %d", got, i+1)
		}
	}

	s := link.Status()
	if s.State != netlink.StateUp || s.Reconnects != 2 {
		t.Fatalf("link after two crashes: state %s, reconnects %d (want up, 2); last error %q", s.State, s.Reconnects, s.LastError)
	}
	t.Logf("link: tx %d frames, rx %d frames, dropped %+v, downtime %v", s.TxFrames, s.RxFrames, s.Dropped, s.Downtime)

	// A graceful stop: the guest powers off on the ACPI power button.
	stopCtx, stopCancel := context.WithTimeout(ctx, 60*time.Second)
	defer stopCancel()
	if err := vm.Stop(stopCtx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	vmStopped = true
	if st, err := vm.State(); st != vmhost.StateStopped {
		t.Fatalf("VM state after Stop: %s (%v)", st, err)
	}
	final, _ := testguest.ReadLog(console)
	if final.PowerOff != "button" {
		t.Errorf("the guest did not power off from the power button: %s", final.Summary())
	}
	var states []string
	for ev := range vm.Events() {
		states = append(states, ev.State.String())
	}
	t.Logf("VM states: %s", strings.Join(states, " -> "))
	if len(states) == 0 || states[len(states)-1] != "stopped" {
		t.Errorf("VM events ended with %v, want stopped", states)
	}
	for _, pid := range qemuPids {
		if !processGone(pid) {
			t.Errorf("QEMU %d is still there after Stop", pid)
		}
	}
	if s := link.Status(); s.Reconnects != 2 {
		t.Errorf("reconnects after the stop: %d, want 2", s.Reconnects)
	}
}

// pingGap returns the guest-side time between the last successful ping at or
// before seq and the first successful one after it, and the failures between.
func pingGap(pings []testguest.Ping, seq int) (time.Duration, int) {
	var lastOK, firstOK time.Duration
	failed := 0
	for _, p := range pings {
		switch {
		case p.Seq <= seq && p.OK:
			lastOK = p.Uptime
		case p.Seq > seq && !p.OK && firstOK == 0:
			failed++
		case p.Seq > seq && p.OK && firstOK == 0:
			firstOK = p.Uptime
		}
	}
	return firstOK - lastOK, failed
}

// processesMentioning lists processes whose command line contains dir (and
// name, when not empty): the test's own QEMU and gvproxy processes.
// needGuest returns the test guest, or skips (fails with CI=true) without
// it or QEMU.
func needGuest(t *testing.T) testguest.Guest {
	t.Helper()
	guest := testguest.Ensure(t)
	if _, err := testguest.FindQEMU(); err != nil {
		testguest.SkipOrFatal(t, err)
	}
	return guest
}

// guestDir makes a short temporary directory (socket paths must fit) for
// a test's daemon and guest, removed when the test ends, and fails the
// test if a process mentioning it is left then (the cleanup runs after
// the daemon's own).
func guestDir(t *testing.T, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	t.Cleanup(func() {
		if pids := processesMentioning(t, dir, ""); len(pids) > 0 {
			t.Errorf("processes left behind: %v", pids)
		}
	})
	return dir
}

func processesMentioning(t *testing.T, dir, name string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmdline, []byte(dir)) {
			continue
		}
		if name != "" && !bytes.Contains(cmdline, []byte(name)) {
			continue
		}
		if stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil && zombie(stat) {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

// zombie reports whether a /proc/PID/stat line is of an exited process.
func zombie(stat []byte) bool {
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

func processGone(pid int) bool {
	_, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid)))
	return errors.Is(err, os.ErrNotExist)
}

func testLogger(t *testing.T) logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(testWriter{t})
	l.SetLevel(logrus.DebugLevel)
	return l
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
