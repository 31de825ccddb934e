package e2e

import (
	"bufio"
	"context"
	"errors"
	"github.com/vmnetbar/vmnetbar/internal/testbin"
	"github.com/vmnetbar/vmnetbar/internal/testimage"
	"github.com/vmnetbar/vmnetbar/internal/testwait"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmnetbar/vmnetbar/internal/testdaemon"
	"github.com/vmnetbar/vmnetbar/internal/testguest"
)

// TestMakeRun runs the Linux newcomer path (scripts/run-linux.sh, what
// `make run` runs) headless in isolated XDG directories, with the small test
// guest (GUEST=busybox; TestMakeRunImage boots the Debian image): the guest boots, its
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
		"GUEST=busybox",
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

// TestMakeRunImage runs `make run`'s default path headless in isolated XDG
// directories: it builds (or finds cached) the Debian cloud image, boots it
// with vmnetbar on gvproxy, and 'vmnetbar ssh dev' reaches the guest
// through gvproxy's forward on 127.0.0.1 (ssh_address) once cloud-init is
// done; Ctrl-C stops the VM gracefully.
func TestMakeRunImage(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a Debian cloud image under TCG: minutes")
	}
	testimage.Path(t) // built (or skipped) here, not inside the script's timeout
	if _, err := testdaemon.FindGvproxy(); err != nil {
		testguest.SkipOrFatal(t, err)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	tmp := t.TempDir()
	env := append(os.Environ(),
		"HEADLESS=1",
		"SSH_PORT="+port,
		"RUN_DIR="+filepath.Join(tmp, "run"),
		"HOME="+tmp, // no ~/.ssh: vmnetbar's own key logs in
		"XDG_CONFIG_HOME="+filepath.Join(tmp, "config"),
		"XDG_STATE_HOME="+filepath.Join(tmp, "state"),
		"XDG_RUNTIME_DIR="+filepath.Join(tmp, "rt"),
		"XDG_CACHE_HOME="+cacheHome(),
		"GOCACHE="+goEnv(t, "GOCACHE"), // HOME moved: keep Go's caches
		"GOMODCACHE="+goEnv(t, "GOMODCACHE"),
		"GOPATH="+goEnv(t, "GOPATH"),
		"DBUS_SESSION_BUS_ADDRESS=",
	)
	cmd := exec.Command("bash", filepath.Join(root, "scripts", "run-linux.sh"))
	cmd.Dir = root
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stdout, stderr testbin.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	ssh := exec.CommandContext(ctx, filepath.Join(root, "vmnetbar"), "ssh", "dev", "--wait", "8m", "--", "cloud-init status --wait")
	ssh.Env = env
	var sshOut, sshErr testbin.Buffer
	ssh.Stdout, ssh.Stderr = &sshOut, &sshErr
	// The script builds ./vmnetbar first; the client waits for the app.
	testwait.Within(t, 3*time.Minute, "make run to start vmnetbar", func() bool {
		return strings.Contains(stderr.String(), "starting vmnetbar")
	})
	testwait.Within(t, time.Minute, "vmnetbar's control API", func() bool {
		c := exec.Command(filepath.Join(root, "vmnetbar"), "list")
		c.Env = env
		return c.Run() == nil
	})
	if err := ssh.Run(); err != nil || !strings.Contains(sshOut.String(), "status: done") {
		t.Fatalf("vmnetbar ssh dev -- cloud-init status --wait: %v\nstdout: %s\nstderr: %s\nmake run:\n%s", err, sshOut.String(), sshErr.String(), stderr.String())
	}
	if !strings.Contains(stderr.String(), "./vmnetbar ssh dev") {
		t.Errorf("make run did not say how to SSH in:\n%s", stderr.String())
	}
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("make run after Ctrl-C: %v; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("make run did not end after Ctrl-C; stderr:\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "the guest powered off") {
		t.Errorf("the VM was not stopped gracefully; stderr:\n%s", stderr.String())
	}
}

// cacheHome is where the image build caches the image for this user.
func cacheHome() string {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache")
}

// goEnv is `go env NAME`.
func goEnv(t *testing.T, name string) string {
	t.Helper()
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		t.Fatalf("go env %s: %v", name, err)
	}
	return strings.TrimSpace(string(out))
}
