package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/internal/bridgenet"
	"github.com/vmnetbar/vmnetbar/internal/testbin"
	"github.com/vmnetbar/vmnetbar/internal/testimage"
	"github.com/vmnetbar/vmnetbar/internal/testwait"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

// cloudApp is vmnetbar running a cloud image VM inside a bridge stand-in's
// network namespace (so the host side of SSH reaches the guest as on
// macOS: end to end, through the link).
type cloudApp struct {
	t   *testing.T
	n   *bridgenet.Net
	bin string
	env []string
	ctx context.Context
}

// cli runs 'vmnetbar ARGS' in the namespace and returns its stdout,
// stderr and exit code.
func (a *cloudApp) cli(timeout time.Duration, args ...string) (string, string, int) {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(a.ctx, timeout)
	defer cancel()
	cmd := a.n.Exec(ctx, append([]string{a.bin}, args...)...)
	cmd.Env = a.env
	var stdout, stderr testbin.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		a.t.Fatalf("vmnetbar %s: %v", strings.Join(args, " "), err)
	}
	return stdout.String(), stderr.String(), code
}

// ssh runs a command in the guest through 'vmnetbar ssh' (which waits
// for the guest's SSH) and returns its output; it fails the test unless
// the command succeeds.
func (a *cloudApp) ssh(timeout time.Duration, command string) string {
	a.t.Helper()
	out, errOut, code := a.cli(timeout, "ssh", "dev", "--wait", timeout.String(), "--", command)
	if code != 0 {
		a.t.Fatalf("vmnetbar ssh dev -- %s: exit %d\nstdout: %s\nstderr: %s", command, code, out, errOut)
	}
	return out
}

func (a *cloudApp) status() model.VMStatus {
	a.t.Helper()
	out, errOut, code := a.cli(30*time.Second, "status", "dev", "--json")
	var v model.VMStatus
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil {
		a.t.Fatalf("status dev --json: exit %d, %q, %s", code, out, errOut)
	}
	return v
}

// TestCloudImageThroughVmnetbar boots a Debian cloud image (EFI, cloud-init
// from vmnetbar's seed) on the bridge stand-in for socket_vmnet, with SSH
// from the host side:
//   - 'vmnetbar ssh dev -- cloud-init status --wait' says done;
//   - a file written over SSH survives a stop and a start, and the second
//     boot does not provision again (same host key, same instance-id);
//   - the promise: an SSH session that keeps running a command through a
//     kill and immediate restart of the switch daemon is still alive
//     afterwards, and the link's count rose by one.
func TestCloudImageThroughVmnetbar(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a Debian cloud image under TCG: minutes")
	}
	n := bridgenet.New(t)
	img := testimage.Path(t)
	bin := testbin.Path(t)
	dir, err := os.MkdirTemp("", "vnbc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	home := filepath.Join(dir, "home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "config.yaml")
	cfg := fmt.Sprintf(`vms:
  dev:
    image: %s
    disk_size: 4GiB
    cpus: 2
    memory: 1GiB
    accel: tcg
    ssh_user: tester
    network:
      socket: %s
    reconnect:
      initial_backoff: 50ms
      max_backoff: 500ms
`, img, n.Socket())
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	a := &cloudApp{t: t, n: n, bin: bin, ctx: ctx, env: append(os.Environ(),
		"HOME="+home, // no ~/.ssh keys: vmnetbar's own key logs in
		"XDG_CONFIG_HOME="+filepath.Join(dir, "c"),
		"XDG_STATE_HOME="+filepath.Join(dir, "s"),
		"XDG_RUNTIME_DIR="+filepath.Join(dir, "r"),
		"DBUS_SESSION_BUS_ADDRESS=",
		"GORACE=atexit_sleep_ms=0",
	)}

	app := n.Exec(ctx, bin, "run", "--headless", "--config", cfgFile)
	app.Env = a.env
	var appErr testbin.Buffer
	app.Stderr = &appErr
	if err := app.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = app.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = app.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("vmnetbar's log:\n%s", appErr.String())
			if b, err := os.ReadFile(filepath.Join(dir, "s", "vmnetbar", "vms", "dev", "console.log")); err == nil {
				t.Logf("console (last 4 KiB):\n%s", tail(b, 4096))
			}
		}
	})

	start := time.Now()
	testwait.Within(t, time.Minute, "vmnetbar's control API", func() bool {
		_, _, code := a.cli(10*time.Second, "list")
		return code == 0
	})
	if out := a.ssh(8*time.Minute, "cloud-init status --wait"); !strings.Contains(out, "status: done") {
		t.Fatalf("cloud-init status --wait: %q", out)
	}
	t.Logf("image to cloud-init done over SSH: %v", time.Since(start))
	if v := a.status(); v.VM.SSH != model.SSHReady || v.VM.State != vmhost.StateRunning || !v.Link.Guest.IPv4.IsValid() {
		t.Fatalf("status after SSH: %+v", v)
	}

	// Data persists; the second boot does not provision again.
	const ident = "cat /var/lib/cloud/data/instance-id; cat /etc/ssh/ssh_host_ed25519_key.pub"
	first := a.ssh(time.Minute, "echo persisted > ~/mark && sync && "+ident)
	if out, errOut, code := a.cli(3*time.Minute, "stop", "dev"); code != 0 {
		t.Fatalf("stop: exit %d %s %s", code, out, errOut)
	}
	if out, errOut, code := a.cli(3*time.Minute, "start", "dev"); code != 0 {
		t.Fatalf("start: exit %d %s %s", code, out, errOut)
	}
	second := a.ssh(8*time.Minute, "cat ~/mark && "+ident)
	if !strings.HasPrefix(second, "persisted\n") || strings.TrimPrefix(second, "persisted\n") != first {
		t.Fatalf("after a stop and start: %q, want persisted and the same instance-id and host key as before:\n%q", second, first)
	}

	// The promise: an SSH session lives through the switch restarting.
	before := a.status().Link.Reconnects
	ctxS, cancelS := context.WithTimeout(ctx, 3*time.Minute)
	defer cancelS()
	session := n.Exec(ctxS, bin, "ssh", "dev", "--", "for i in $(seq 1 40); do echo tick $i; sleep 0.5; done")
	session.Env = a.env
	out, err := session.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var sessErr testbin.Buffer
	session.Stderr = &sessErr
	if err := session.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	var got []string
	restarted := false
	for lines.Scan() {
		got = append(got, lines.Text())
		if lines.Text() == "tick 5" && !restarted {
			restarted = true
			if err := n.RestartSwitch(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := session.Wait(); err != nil || len(got) == 0 || got[len(got)-1] != "tick 40" {
		t.Fatalf("the SSH session through the switch restart: %v, last lines %q; stderr %s", err, lastN(got, 3), sessErr.String())
	}
	if !restarted {
		t.Fatal("the session ended before the switch was restarted")
	}
	if crashes, _ := n.SwitchCrashes(); crashes != 0 {
		t.Fatalf("the switch crashed by itself %d times: the reconnect count is not the test's", crashes)
	}
	if after := a.status().Link.Reconnects; after != before+1 {
		t.Fatalf("reconnects %d -> %d across one switch restart, want one more", before, after)
	}

	// A graceful stop with the app.
	if err := app.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(2 * time.Minute):
		t.Fatal("vmnetbar did not exit after SIGINT")
	}
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

func lastN(s []string, n int) []string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
