package cli

import (
	"context"
	"io"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/internal/fakeapp"
	"github.com/vmnetbar/vmnetbar/internal/testbin"
	"github.com/vmnetbar/vmnetbar/internal/testwait"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

// startOnTerminal starts vmnetbar with its standard error on term, and
// its standard output in a pipe read to the end by the returned function
// (which waits for the process and returns its exit code too).
func startOnTerminal(t *testing.T, term *terminal, env []string, args ...string) func() (string, int) {
	t.Helper()
	cmd := exec.Command(testbin.Path(t), args...)
	cmd.Env = append(childEnv(), env...)
	cmd.Stderr = term.tty
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	finished := false
	t.Cleanup(func() {
		if !finished {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return func() (string, int) {
		t.Helper()
		b, _ := io.ReadAll(out)
		werr := make(chan error, 1)
		go func() { werr <- cmd.Wait() }()
		select {
		case err = <-werr:
		case <-time.After(20 * time.Second):
			t.Fatalf("vmnetbar %s did not exit", strings.Join(args, " "))
		}
		finished = true
		return string(b), cmd.ProcessState.ExitCode()
	}
}

// heldStart is machines whose Start of a stopped VM leaves it starting,
// preparing its disk, until release is closed (or the request ends); then
// the start goes on as fakeapp's does.
type heldStart struct {
	*fakeapp.Machines
	release chan struct{}
}

func (h heldStart) Start(ctx context.Context, name string) error {
	h.Set(name, func(v *model.VMStatus) {
		v.VM.State, v.VM.Progress = vmhost.StateStarting, &model.Progress{Task: "preparing disk", Percent: 0}
	})
	select {
	case <-h.release:
	case <-ctx.Done():
	}
	h.Set(name, func(v *model.VMStatus) { v.VM.State, v.VM.Progress = vmhost.StateStopped, nil })
	return h.Machines.Start(ctx, name)
}

// TestStartShowsProgressOnATerminal: while a start prepares the VM's disk,
// 'vmnetbar start' draws a progress bar on the terminal, and clears it
// once the VM runs.
func TestStartShowsProgressOnATerminal(t *testing.T) {
	m := fakeapp.New("dev")
	t.Cleanup(m.Close)
	h := heldStart{Machines: m, release: make(chan struct{})}
	released := false
	t.Cleanup(func() {
		if !released {
			close(h.release)
		}
	})
	sock := filepath.Join(shortTempDir(t), "control.sock")
	serveControl(t, h, sock)

	term := openTerminal(t)
	wait := startOnTerminal(t, term, nil, "start", "dev", "--control", sock)
	testwait.For(t, "the start to begin", func() bool {
		v, _ := m.Status().Lookup("dev")
		return v.VM.State == vmhost.StateStarting
	})
	testwait.For(t, "start to follow the status", func() bool { return m.Subscribers() > 0 })
	term.waitOutput(t, "\rpreparing disk ["+strings.Repeat(" ", 30)+"] 0 %\x1b[K")
	m.Set("dev", func(v *model.VMStatus) { v.VM.Progress = &model.Progress{Task: "preparing disk", Percent: 42} })
	term.waitOutput(t, "\rpreparing disk [############                  ] 42 %\x1b[K")
	close(h.release)
	released = true
	out, code := wait()
	if code != ExitOK || out != "VM dev is running\n" {
		t.Errorf("start: exit %d, stdout %q", code, out)
	}
	// The bar is cleared: nothing is left after the clearing.
	if o := term.output(); !strings.HasSuffix(o, "\r\x1b[K") {
		t.Errorf("the terminal ends with %q, want the bar cleared", o[max(0, len(o)-40):])
	}
}

// TestStartWithoutATerminalShowsNoProgress: on anything but a terminal
// 'vmnetbar start' prints only its result.
func TestStartWithoutATerminalShowsNoProgress(t *testing.T) {
	m := fakeapp.New("dev")
	t.Cleanup(m.Close)
	h := heldStart{Machines: m, release: make(chan struct{})}
	close(h.release)
	sock := filepath.Join(shortTempDir(t), "control.sock")
	serveControl(t, h, sock)
	r := runCLI(t, "start", "dev", "--control", sock)
	if r.code != ExitOK || r.stdout != "VM dev is running\n" || r.stderr != "" {
		t.Errorf("start: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

// TestSSHSpinnerOnATerminal: while 'vmnetbar ssh' waits, a spinner on the
// terminal says what for, and is cleared before ssh runs.
func TestSSHSpinnerOnATerminal(t *testing.T) {
	m, sock := serveVMs(t, "dev")
	cloudVM(m, "dev", model.SSHWaiting)
	m.Set("dev", func(v *model.VMStatus) {
		v.VM.State, v.Link.Guest.IPv4 = vmhost.StateStarting, netip.Addr{}
		v.VM.Progress = &model.Progress{Task: "preparing disk", Percent: 42}
	})
	term := openTerminal(t)
	wait := startOnTerminal(t, term, []string{sshEnv + "=" + fakeSSH(t)}, "ssh", "dev", "--control", sock)
	term.waitOutput(t, " waiting for dev's SSH (preparing disk 42 %)\x1b[K")
	m.Set("dev", func(v *model.VMStatus) { v.VM.Progress = nil })
	term.waitOutput(t, " waiting for dev's SSH (starting)\x1b[K")
	m.Set("dev", func(v *model.VMStatus) { v.VM.State = vmhost.StateRunning })
	term.waitOutput(t, " waiting for dev's SSH (waiting for the guest's address)\x1b[K")
	m.Set("dev", func(v *model.VMStatus) { v.Link.Guest.IPv4 = netip.MustParseAddr("192.168.105.3") })
	term.waitOutput(t, " waiting for dev's SSH (booting)\x1b[K")
	// It turns while nothing changes.
	for _, f := range spinFrames {
		term.waitOutput(t, "\r"+f+" waiting for dev's SSH (booting)\x1b[K")
	}
	m.Set("dev", func(v *model.VMStatus) { v.VM.SSH = model.SSHReady })
	out, code := wait()
	if code != 7 || !strings.HasSuffix(out, "tester@192.168.105.3\n") {
		t.Errorf("ssh: exit %d, stdout %q", code, out)
	}
	if o := term.output(); !strings.HasSuffix(o, "\r\x1b[K") {
		t.Errorf("the terminal ends with %q, want the spinner cleared", o[max(0, len(o)-40):])
	}
}
