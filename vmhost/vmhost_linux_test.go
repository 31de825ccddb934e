package vmhost

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeQEMU returns the absolute path of a fake qemu script in testdata.
func fakeQEMU(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// fakeConfig is a valid configuration for a fake QEMU.
func fakeConfig(t *testing.T) Config {
	t.Helper()
	dir := t.TempDir()
	vmEnd, _ := socketPair(t, unix.SOCK_DGRAM)
	return Config{
		Kernel:      writeFile(t, dir, "vmlinuz"),
		ConsoleLog:  filepath.Join(dir, "console.log"),
		Memory:      128 * MiB,
		MAC:         net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56},
		QEMUOptions: QEMUOptions{Accel: "tcg"},
		NIC:         vmEnd,
	}
}

// newTestVM makes a VM that runs bin as QEMU.
func newTestVM(t *testing.T, cfg Config, bin string) *qemuVM {
	t.Helper()
	v, err := newQEMU(cfg, testLogger(t), func(k string) string {
		if k == QEMUEnv {
			return bin
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	// Whatever happens, the test leaves no QEMU behind.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := v.Stop(ctx, time.Millisecond); err != nil {
			t.Errorf("cleanup Stop: %v", err)
		}
	})
	return v
}

// processGone reports whether no process has the id pid.
func processGone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// requireQEMU skips (or fails under CI=true) when the real qemu-system binary
// is missing.
func requireQEMU(t *testing.T) {
	t.Helper()
	if _, err := findQEMU(func(string) string { return "" }); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
}

func TestQEMUArgs(t *testing.T) {
	cfg := Config{
		Kernel: "/k", Cmdline: "console=ttyS0 quiet", CPUs: 2, Memory: 512 * MiB,
		ConsoleLog: "/logs/a,b.log", MAC: net.HardwareAddr{0x52, 0x54, 0, 1, 2, 3}, MTU: 1500,
	}
	args := strings.Join(qemuArgs(cfg, false, "amd64", ""), " ")
	for _, want := range []string{
		"-nodefaults", "-display none", "-no-reboot", "-accel tcg", "-smp 2", "-m 512M",
		"-kernel /k", "-append console=ttyS0 quiet",
		"-chardev file,id=console0,append=on,path=/logs/a,,b.log", "-serial chardev:console0",
		"-netdev dgram,id=n0,local.type=fd,local.str=3",
		"-device virtio-net-pci,netdev=n0,mac=52:54:00:01:02:03 ",
		"-device virtio-rng-pci",
		"-chardev socket,id=qmp,fd=4 -mon chardev=qmp,mode=control",
	} {
		if !strings.Contains(args+" ", want) {
			t.Errorf("args lack %q:\n%s", want, args)
		}
	}
	for _, unwanted := range []string{"-initrd", "-drive", "host_mtu", "kvm", "-qmp", "unix:"} {
		if strings.Contains(args, unwanted) {
			t.Errorf("args have %q:\n%s", unwanted, args)
		}
	}

	cfg.Initrd, cfg.Disk, cfg.MTU, cfg.ConsoleLog = "/i", "/d,1.raw", 9000, ""
	args = strings.Join(qemuArgs(cfg, true, "amd64", ""), " ")
	for _, want := range []string{
		"-accel kvm -cpu host", "-initrd /i", "-drive if=virtio,format=raw,file=/d,,1.raw",
		"mac=52:54:00:01:02:03,host_mtu=9000", "-serial null",
	} {
		if !strings.Contains(args, want) {
			t.Errorf("args lack %q:\n%s", want, args)
		}
	}
}

func TestFindQEMU(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := findQEMU(func(string) string { return "" })
	if err == nil {
		t.Fatal("found a QEMU on an empty PATH")
	}
	bin, pkg, _ := qemuTarget()
	for _, want := range []string{bin, "apt-get install " + pkg, QEMUEnv} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}

	_, err = findQEMU(func(string) string { return "/nonexistent/qemu" })
	if err == nil || !strings.Contains(err.Error(), QEMUEnv) || !strings.Contains(err.Error(), "/nonexistent/qemu") {
		t.Errorf("bad %s: got %v", QEMUEnv, err)
	}
	p, err := findQEMU(func(string) string { return fakeQEMU(t, "qemu-fail.sh") })
	if err != nil || p != fakeQEMU(t, "qemu-fail.sh") {
		t.Errorf("override: got %q, %v", p, err)
	}
}

func TestNewRefusesMissingQEMU(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv(QEMUEnv, "")
	cfg := fakeConfig(t)
	_, err := New(cfg, testLogger(t))
	if err == nil || !strings.Contains(err.Error(), "apt-get install") {
		t.Fatalf("New without QEMU: %v", err)
	}
}

func TestNewRefusesInvalidConfig(t *testing.T) {
	cfg := fakeConfig(t)
	cfg.Kernel, cfg.MTU = "", 1
	_, err := New(cfg, testLogger(t))
	if err == nil || !strings.Contains(err.Error(), "Kernel is not set") || !strings.Contains(err.Error(), "MTU is 1") {
		t.Fatalf("New with a bad config: %v", err)
	}
	if _, err := New(fakeConfig(t), nil); err == nil {
		t.Fatal("New accepted a nil logger")
	}
}

func TestQEMUExitsWithStderr(t *testing.T) {
	cfg := fakeConfig(t)
	v := newTestVM(t, cfg, fakeQEMU(t, "qemu-fail.sh"))
	if err := v.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	evs := awaitDone(t, v, 10*time.Second)
	if got := states(evs); !slices.Equal(got, []State{StateStarting, StateError}) {
		t.Fatalf("events %v", got)
	}
	st, cause := v.State()
	if st != StateError || cause == nil {
		t.Fatalf("state %s, %v", st, cause)
	}
	for _, want := range []string{"exited with status 1", "something is wrong", "fake failure for the test"} {
		if !strings.Contains(cause.Error(), want) {
			t.Errorf("cause %q does not say %q", cause, want)
		}
	}
	if evs[1].Err == nil || evs[1].Err.Error() != cause.Error() {
		t.Errorf("event cause %v, state cause %v", evs[1].Err, cause)
	}
	if !isClosed(cfg.NIC) {
		t.Error("the NIC is still open after the VM ended")
	}
	if !processGone(v.pid()) {
		t.Error("the QEMU process is still there")
	}
}

func TestQEMUGetsArgsAndNIC(t *testing.T) {
	out := filepath.Join(t.TempDir(), "args")
	t.Setenv("VMNETBAR_FAKE_OUT", out)
	cfg := fakeConfig(t)
	cfg.MTU = 9000
	v := newTestVM(t, cfg, fakeQEMU(t, "qemu-record.sh"))
	if err := v.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	evs := awaitDone(t, v, 10*time.Second)
	// Exit status 0 before QMP came up: the guest powered off while booting.
	if got := states(evs); !slices.Equal(got, []State{StateStarting, StateStopped}) {
		t.Fatalf("events %v", got)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	for _, want := range []string{
		"fd3=socket\n", "fd4=socket\n", "dgram,id=n0,local.type=fd,local.str=3\n",
		"socket,id=qmp,fd=4\n", "chardev=qmp,mode=control\n",
		"virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56,host_mtu=9000\n",
		cfg.Kernel + "\n", "128M\n", "tcg\n", DefaultCmdline + "\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("QEMU's arguments lack %q:\n%s", want, got)
		}
	}
	if !isClosed(cfg.NIC) {
		t.Error("the NIC is still open after the VM ended")
	}
}

// A QEMU that never answers QMP cannot be asked to power off: Stop kills it
// when the timeout has passed.
func TestQEMUStopForcesKillAfterTimeout(t *testing.T) {
	cfg := fakeConfig(t)
	v := newTestVM(t, cfg, fakeQEMU(t, "qemu-hang.sh"))
	if err := v.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	pid := v.pid()
	const timeout = 300 * time.Millisecond
	begin := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := v.Stop(ctx, timeout); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(begin); waited < timeout {
		t.Errorf("killed after %v, before the %v timeout", waited, timeout)
	}
	evs := awaitDone(t, v, time.Second)
	if got := states(evs); !slices.Equal(got, []State{StateStarting, StateStopping, StateStopped}) {
		t.Fatalf("events %v", got)
	}
	if !processGone(pid) {
		t.Error("the QEMU process is still there")
	}
	if !isClosed(cfg.NIC) {
		t.Error("the NIC is still open after the VM ended")
	}
}

// The kill happens at the deadline even when Stop's context ends first.
func TestQEMUStopContextEndsBeforeKill(t *testing.T) {
	v := newTestVM(t, fakeConfig(t), fakeQEMU(t, "qemu-hang.sh"))
	if err := v.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := v.Stop(ctx, 200*time.Millisecond); !errors.Is(err, context.Canceled) {
		t.Fatalf("Stop with an ended context: %v", err)
	}
	if st, _ := v.State(); st != StateStopping {
		t.Fatalf("state %s, want stopping", st)
	}
	evs := awaitDone(t, v, 10*time.Second)
	if got := states(evs); got[len(got)-1] != StateStopped {
		t.Fatalf("events %v", got)
	}
	if !processGone(v.pid()) {
		t.Error("the QEMU process is still there")
	}
}

func TestQEMUBootTimeout(t *testing.T) {
	v := newTestVM(t, fakeConfig(t), fakeQEMU(t, "qemu-hang.sh"))
	v.bootTimeout = 200 * time.Millisecond
	if err := v.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	evs := awaitDone(t, v, 10*time.Second)
	if got := states(evs); !slices.Equal(got, []State{StateStarting, StateError}) {
		t.Fatalf("events %v", got)
	}
	if _, cause := v.State(); cause == nil || !strings.Contains(cause.Error(), "did not answer on its QMP socket") {
		t.Fatalf("cause %v", cause)
	}
	if !processGone(v.pid()) {
		t.Error("the QEMU process is still there")
	}
}

func TestQEMUStopBeforeStart(t *testing.T) {
	cfg := fakeConfig(t)
	v := newTestVM(t, cfg, fakeQEMU(t, "qemu-hang.sh"))
	if err := v.Stop(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	if evs := awaitDone(t, v, time.Second); len(evs) != 0 {
		t.Fatalf("events %v", evs)
	}
	if !isClosed(cfg.NIC) {
		t.Error("the NIC is still open")
	}
	if err := v.Start(context.Background()); err == nil {
		t.Fatal("Start after Stop succeeded")
	}
	if v.pid() != 0 {
		t.Fatal("QEMU was started")
	}
}

func TestQEMUStartTwice(t *testing.T) {
	v := newTestVM(t, fakeConfig(t), fakeQEMU(t, "qemu-hang.sh"))
	if err := v.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := v.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "already started") {
		t.Fatalf("second Start: %v", err)
	}
}

func TestQEMUStartWithEndedContext(t *testing.T) {
	cfg := fakeConfig(t)
	v := newTestVM(t, cfg, fakeQEMU(t, "qemu-hang.sh"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := v.Start(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Start: %v", err)
	}
	awaitDone(t, v, time.Second)
	if v.pid() != 0 || !isClosed(cfg.NIC) {
		t.Fatal("QEMU started or NIC left open")
	}
}

// Real QEMU refusing a kernel: its own message becomes the cause.
func TestRealQEMURejectsKernel(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the bad-kernel message checked here is x86's")
	}
	requireQEMU(t)
	cfg := fakeConfig(t) // the kernel is a 7-byte text file
	v, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	awaitDone(t, v, 30*time.Second)
	st, cause := v.State()
	if st != StateError || cause == nil || !strings.Contains(cause.Error(), "QEMU exited with status 1") {
		t.Fatalf("state %s, cause %v", st, cause)
	}
	if !strings.Contains(cause.Error(), "invalid kernel header") {
		t.Errorf("cause %q lacks QEMU's own message", cause)
	}
}

// QEMU killed by someone else: the VM ends in error naming the signal.
func TestQEMUKilledFromOutside(t *testing.T) {
	cfg := fakeConfig(t)
	v := newTestVM(t, cfg, fakeQEMU(t, "qemu-hang.sh"))
	if err := v.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(v.pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	evs := awaitDone(t, v, 10*time.Second)
	if got := states(evs); !slices.Equal(got, []State{StateStarting, StateError}) {
		t.Fatalf("events %v", got)
	}
	if _, cause := v.State(); cause == nil || !strings.Contains(cause.Error(), "killed by signal killed") {
		t.Fatalf("cause %v", cause)
	}
	if !isClosed(cfg.NIC) {
		t.Error("the NIC is still open after the VM ended")
	}
}
