package testdaemon

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vmnetbar/vmnetbar/internal/testguest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// shortDir is a temporary directory short enough for a socket path.
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "vmnb-td-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// gone reports whether no process has the pid any more.
func gone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

func TestKillRestartsAtOnce(t *testing.T) {
	t.Parallel()
	d := Start(t, shortDir(t))
	ctx := ctxTimeout(t, 30*time.Second)
	pid1 := d.Pid()
	if pid1 == 0 || d.Restarts() != 0 {
		t.Fatalf("after Start: pid %d restarts %d", pid1, d.Restarts())
	}
	for i := 1; i <= 2; i++ {
		old := d.Pid()
		if err := d.Kill(); err != nil {
			t.Fatal(err)
		}
		if err := d.WaitRestarts(ctx, i); err != nil {
			t.Fatal(err)
		}
		if err := d.WaitListening(ctx); err != nil {
			t.Fatal(err)
		}
		if d.Pid() == old || !gone(old) {
			t.Fatalf("restart %d: pid %d (old %d, gone=%v)", i, d.Pid(), old, gone(old))
		}
	}
	if got := d.Restarts(); got != 2 {
		t.Fatalf("Restarts = %d, want 2", got)
	}
}

func TestKillAndPauseKeepsTheSocketAway(t *testing.T) {
	t.Parallel()
	d := Start(t, shortDir(t))
	ctx := ctxTimeout(t, 30*time.Second)
	const pause = time.Second
	killed := time.Now()
	if err := d.KillAndPause(pause); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(d.SocketPath()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket after KillAndPause: %v, want it removed", err)
	}
	if _, err := net.Dial("unix", d.SocketPath()); err == nil {
		t.Fatal("dialing a paused daemon succeeded")
	}
	if err := d.Kill(); err == nil {
		t.Fatal("Kill of a daemon that is down succeeded")
	}
	if err := d.WaitRestarts(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if since := time.Since(killed); since < pause {
		t.Fatalf("restarted %v after the kill, before the %v pause ended", since, pause)
	}
	if err := d.WaitListening(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestRestartsWhenTheClientLeaves(t *testing.T) {
	t.Parallel()
	d := Start(t, shortDir(t))
	ctx := ctxTimeout(t, 30*time.Second)
	c, err := net.Dial("unix", d.SocketPath())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := d.WaitRestarts(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := d.WaitListening(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestStopLeavesNothing(t *testing.T) {
	t.Parallel()
	bin, err := FindGvproxy()
	if err != nil {
		testguest.SkipOrFatal(t, err)
	}
	d, err := Launch(Config{Dir: shortDir(t), Gvproxy: bin})
	if err != nil {
		t.Fatal(err)
	}
	pid := d.Pid()
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := d.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if !gone(pid) {
		t.Fatalf("gvproxy %d still exists after Stop", pid)
	}
	if _, err := os.Stat(d.SocketPath()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket after Stop: %v", err)
	}
	if d.Pid() != 0 {
		t.Fatalf("Pid after Stop = %d", d.Pid())
	}
	if err := d.Kill(); err == nil {
		t.Fatal("Kill after Stop succeeded")
	}
}

func TestBadConfig(t *testing.T) {
	if _, err := Launch(Config{}); err == nil || !strings.Contains(err.Error(), "Dir") {
		t.Errorf("Launch without Dir: %v", err)
	}
	if _, err := Launch(Config{Dir: t.TempDir(), Gvproxy: "/nonexistent/gvproxy"}); err == nil {
		t.Error("Launch with a missing binary succeeded")
	}
	long := filepath.Join(t.TempDir(), strings.Repeat("d", 100))
	if _, err := Launch(Config{Dir: long, Gvproxy: "/bin/true"}); err == nil || !strings.Contains(err.Error(), "shorter directory") {
		t.Errorf("Launch with a long socket path: %v", err)
	}
	t.Setenv("VMNETBAR_GVPROXY", "/nonexistent/gvproxy")
	if _, err := FindGvproxy(); !errors.Is(err, ErrNoGvproxy) {
		t.Errorf("FindGvproxy with a bad VMNETBAR_GVPROXY: %v", err)
	}
}

func TestLaunchFailsWhenGvproxyExits(t *testing.T) {
	t.Parallel()
	// /bin/false exits at once and never listens: Launch must give up with
	// a clear error at once and leave nothing running.
	dir := shortDir(t)
	_, err := Launch(Config{Dir: dir, Gvproxy: "/bin/false"})
	if err == nil || !strings.Contains(err.Error(), "exited before listening") {
		t.Fatalf("Launch(/bin/false) = %v", err)
	}
	t.Log(err)
}

// TestGuestPingsTheGateway boots the test guest with QEMU's own stream
// client on the daemon: DHCP works and gvproxy's gateway answers ICMP echo.
func TestGuestPingsTheGateway(t *testing.T) {
	t.Parallel()
	g := testguest.Ensure(t)
	d := Start(t, shortDir(t))
	console := filepath.Join(t.TempDir(), "console.log")
	q := testguest.StartQEMU(t, testguest.QEMUConfig{
		Guest:      g,
		Cmdline:    testguest.Cmdline(testguest.Options{Pings: 3, Interval: 200 * time.Millisecond, PowerOff: true}),
		ConsoleLog: console,
		NetArgs: []string{
			"-netdev", "stream,id=n0,server=off,addr.type=unix,addr.path=" + d.SocketPath(),
			"-device", "virtio-net-pci,netdev=n0",
		},
	})
	ctx := ctxTimeout(t, 90*time.Second)
	if err := q.Wait(ctx); err != nil {
		t.Fatalf("QEMU: %v", err)
	}
	l, err := testguest.ReadLog(console)
	if err != nil {
		t.Fatal(err)
	}
	if l.Gateway != "192.168.127.1" || !strings.HasPrefix(l.Addr, "192.168.127.") || l.OKPings() != 3 || !l.PingsDone {
		t.Fatalf("console: %s", l.Summary())
	}
	// The guest's disconnect ends that gvproxy; the loop starts another.
	if err := d.WaitRestarts(ctx, 1); err != nil {
		t.Fatal(err)
	}
}
