package vmhost

import (
	"github.com/vmnetbar/vmnetbar/internal/testwait"

	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// testExe is the test binary, which plays QEMU (see fakeqemu_linux_test.go).
func testExe(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// pollUntil polls cond until it holds or within has passed.
func pollUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	testwait.WithinEvery(t, within, 10*time.Millisecond, what, cond)
}

// processEnded reports whether pid is gone or a zombie.
func processEnded(pid int) bool {
	if processGone(pid) {
		return true
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// pid (comm) S ...: the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && (s[i+2] == 'Z' || s[i+2] == 'X')
}

// QEMU runs in a process group of its own: what a terminal sends to
// vmnetbar's group does not reach it.
func TestQEMUOwnProcessGroup(t *testing.T) {
	v := newTestVM(t, fakeConfig(t), fakeQEMU(t, "qemu-hang.sh"))
	if err := v.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	pid := v.pid()
	pgid, err := syscall.Getpgid(pid)
	if err != nil {
		t.Fatal(err)
	}
	if pgid == syscall.Getpgrp() {
		t.Fatalf("QEMU (pid %d) is in our process group %d", pid, pgid)
	}
	if pgid != pid {
		t.Errorf("QEMU's process group is %d, want its own (%d)", pgid, pid)
	}
}

// signalHelper runs the test binary as a vmnetbar with a VM on the fake
// QEMU (VMHOST_TEST_HELPER=signals), in a process group of its own, and
// returns it, its stdin, its stdout lines and QEMU's pid.
type signalHelper struct {
	cmd    *exec.Cmd
	stdin  interface{ Close() error }
	lines  chan string
	stderr *bytes.Buffer
	qemu   int
	out    string // the fake QEMU's record
}

func startSignalHelper(t *testing.T) *signalHelper {
	t.Helper()
	h := &signalHelper{lines: make(chan string, 16), stderr: &bytes.Buffer{},
		out: filepath.Join(t.TempDir(), "fake-qemu.out")}
	h.cmd = exec.Command(testExe(t))
	h.cmd.Env = append(os.Environ(), "VMHOST_TEST_HELPER=signals", "VMHOST_FAKE_OUT="+h.out)
	// Its own group, so that the test signals that group and not its own
	// (nor `go test`'s).
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	h.cmd.Stderr = h.stderr
	stdin, err := h.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := h.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	h.stdin = stdin
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
		close(h.lines)
	}()
	t.Cleanup(func() {
		h.cmd.Process.Kill()
		h.cmd.Wait()
		if t.Failed() {
			t.Logf("helper's stderr:\n%s", h.stderr)
		}
	})
	pid, err := strconv.Atoi(strings.TrimPrefix(h.expect(t, "qemu "), "qemu "))
	if err != nil {
		t.Fatal(err)
	}
	h.qemu = pid
	return h
}

// expect returns the helper's next line, which must start with prefix.
func (h *signalHelper) expect(t *testing.T, prefix string) string {
	t.Helper()
	select {
	case l, ok := <-h.lines:
		if !ok {
			t.Fatalf("the helper ended before printing %q", prefix)
		}
		if !strings.HasPrefix(l, prefix) {
			t.Fatalf("helper printed %q, want %q...", l, prefix)
		}
		return l
	case <-time.After(60 * time.Second):
		t.Fatalf("the helper did not print %q", prefix)
		return ""
	}
}

// A hangup, Ctrl-C or Ctrl-\ at the terminal signals vmnetbar's whole
// process group: QEMU gets none of them, so vmnetbar can stop the guest
// gracefully.
func TestTerminalSignalsDoNotReachQEMU(t *testing.T) {
	h := startSignalHelper(t)
	helperPgid := h.cmd.Process.Pid
	if pgid, err := syscall.Getpgid(h.qemu); err != nil || pgid == helperPgid {
		t.Errorf("QEMU's process group is %d (%v), the helper's %d", pgid, err, helperPgid)
	}
	want := []string{"SIGHUP", "SIGINT", "SIGQUIT"}
	for _, s := range []syscall.Signal{syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT} {
		if err := syscall.Kill(-helperPgid, s); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for range want {
		got = append(got, strings.TrimPrefix(h.expect(t, "got "), "got "))
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("the helper got %v, want %v", got, want)
	}
	// Ask the fake QEMU which signals it got: any signal of the group
	// was queued before this one.
	if err := syscall.Kill(h.qemu, syscall.SIGUSR1); err != nil {
		t.Fatalf("QEMU is gone: %v", err)
	}
	var report string
	pollUntil(t, 30*time.Second, "the fake QEMU's signal report", func() bool {
		b, _ := os.ReadFile(h.out)
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "signals:") {
				report = l
				return true
			}
		}
		return false
	})
	if report != "signals: " {
		t.Errorf("QEMU got the terminal's signals: %q", report)
	}

	// The guest is still there and stops gracefully.
	h.stdin.Close()
	if l := h.expect(t, "stopped "); l != "stopped stopped" {
		t.Errorf("helper: %q", l)
	}
	if err := h.cmd.Wait(); err != nil {
		t.Errorf("helper: %v", err)
	}
	if b, _ := os.ReadFile(h.out); !strings.Contains(string(b), "press\n") {
		t.Errorf("the guest was not asked to power off: %q", b)
	}
}

// In a group of its own QEMU still dies with vmnetbar (Pdeathsig): a
// vmnetbar killed with SIGKILL leaves no QEMU behind.
func TestQEMUDiesWithVmnetbar(t *testing.T) {
	h := startSignalHelper(t)
	if err := h.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	h.cmd.Wait()
	pollUntil(t, 10*time.Second, "QEMU ends with the killed vmnetbar", func() bool { return processEnded(h.qemu) })
}
