package e2e

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmnetbar/vmnetbar/internal/testdaemon"
	"github.com/vmnetbar/vmnetbar/internal/testguest"
)

// TestMakeRun runs the Linux newcomer path (scripts/run-linux.sh, what
// `make run` runs) headless in isolated XDG directories: the guest boots, its
// link comes up, its pings reach gvproxy's gateway, and Ctrl-C stops the VM
// gracefully and leaves no process behind.
func TestMakeRun(t *testing.T) {
	testguest.Ensure(t)
	if _, err := testdaemon.FindGvproxy(); err != nil {
		testguest.SkipOrFatal(t, err)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	runDir := filepath.Join(tmp, "run")
	cmd := exec.Command("bash", filepath.Join(root, "scripts", "run-linux.sh"))
	cmd.Dir = root
	cmd.Env = append(os.Environ(),
		"HEADLESS=1",
		"RUN_DIR="+runDir,
		"XDG_CONFIG_HOME="+filepath.Join(tmp, "config"),
		"XDG_STATE_HOME="+filepath.Join(tmp, "state"),
		"XDG_RUNTIME_DIR="+filepath.Join(tmp, "rt"),
		"DBUS_SESSION_BUS_ADDRESS=",
	)
	// Its own process group, as a terminal gives it: Ctrl-C reaches the
	// script, vmnetbar and the gvproxy loop alike.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default: // the test reads what it needs; the rest may go
			}
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	})

	// The status printer shows the VM running with its link up.
	deadline := time.After(3 * time.Minute)
	for up := false; !up; {
		select {
		case l, ok := <-lines:
			if !ok {
				err := <-exited // stderr is complete once Wait has returned
				t.Fatalf("make run ended (%v) before the link came up; stderr:\n%s", err, stderr.String())
			}
			t.Log(l)
			up = strings.Contains(l, "vm=running link=up")
		case <-deadline:
			t.Fatalf("no 'vm=running link=up' line; stderr:\n%s", stderr.String())
		}
	}
	// The guest reaches its gateway through the link.
	console := filepath.Join(runDir, "console.log")
	for {
		b, _ := os.ReadFile(console)
		if strings.Contains(string(b), "VMNETBAR-PING") && strings.Contains(string(b), " ok") {
			break
		}
		select {
		case <-deadline:
			t.Fatalf("the guest's pings never succeeded; console:\n%s", b)
		case <-time.After(200 * time.Millisecond):
		}
	}

	// Ctrl-C: a graceful stop, exit 0, nothing left running.
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	go func() {
		for range lines {
		}
	}()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("make run after Ctrl-C: %v; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("make run did not end after Ctrl-C; stderr:\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "the guest powered off") {
		t.Errorf("the VM was not stopped gracefully; stderr:\n%s", stderr.String())
	}
	// Nothing is left: not in the script's process group, and no gvproxy,
	// QEMU or vmnetbar working in its directory (gvproxy's loop and vmnetbar
	// run in groups of their own).
	for end := time.Now().Add(5 * time.Second); ; {
		err := syscall.Kill(-cmd.Process.Pid, 0)
		left := processesMentioning(t, runDir, "")
		if errors.Is(err, syscall.ESRCH) && len(left) == 0 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("processes of make run are still running after it ended: %v", left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
