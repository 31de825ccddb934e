package testguest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// QEMUConfig is a guest boot under QEMU (TCG) for tests that do not go
// through vmhost.
type QEMUConfig struct {
	Guest      Guest
	Cmdline    string // kernel command line; "" = Cmdline(Options{})
	ConsoleLog string // file the serial console is written to; required
	// NetArgs are the QEMU network arguments; nil = "-nic none".
	NetArgs []string
	// ExtraFiles are inherited by QEMU as fds 3, 4, ... (for -netdev ...,fd=3).
	ExtraFiles []*os.File
	Memory     string // QEMU -m value; "" = 256M
}

// QEMU is a running QEMU process. The test's cleanup kills it if it is still
// running.
type QEMU struct {
	cmd  *exec.Cmd
	qmp  string
	done chan struct{}
	err  error // Wait's result, set before done is closed
}

// FindQEMU returns the QEMU binary: $VMNETBAR_QEMU, else qemu-system-x86_64
// on PATH. The error wraps ErrMissingDependency.
func FindQEMU() (string, error) {
	if p := os.Getenv("VMNETBAR_QEMU"); p != "" {
		// As vmhost reads it: a path or a name on PATH, executable.
		path, err := exec.LookPath(p)
		if err != nil {
			return "", fmt.Errorf("%w: VMNETBAR_QEMU=%s: %v", ErrMissingDependency, p, err)
		}
		return path, nil
	}
	p, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return "", fmt.Errorf("%w: qemu-system-x86_64 not found (apt-get install qemu-system-x86, or set VMNETBAR_QEMU)", ErrMissingDependency)
	}
	return p, nil
}

// StartQEMU boots the guest under QEMU with -accel tcg, skipping the test
// when QEMU is missing (failing when CI=true).
func StartQEMU(t testing.TB, cfg QEMUConfig) *QEMU {
	t.Helper()
	bin, err := FindQEMU()
	if err != nil {
		SkipOrFatal(t, err)
	}
	if cfg.ConsoleLog == "" {
		t.Fatal("StartQEMU: ConsoleLog is required")
	}
	qmpDir, err := os.MkdirTemp("", "vmnb-qmp-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(qmpDir) })
	q := &QEMU{qmp: filepath.Join(qmpDir, "qmp.sock"), done: make(chan struct{})}

	cmdline := cfg.Cmdline
	if cmdline == "" {
		cmdline = Cmdline(Options{})
	}
	mem := cfg.Memory
	if mem == "" {
		mem = "256M"
	}
	net := cfg.NetArgs
	if net == nil {
		net = []string{"-nic", "none"}
	}
	args := []string{
		"-accel", "tcg", "-m", mem, "-smp", "1",
		"-display", "none", "-no-reboot", "-nodefaults",
		"-kernel", cfg.Guest.Kernel, "-initrd", cfg.Guest.Initrd, "-append", cmdline,
		"-serial", "file:" + cfg.ConsoleLog,
		"-qmp", "unix:" + q.qmp + ",server=on,wait=off",
	}
	args = append(args, net...)
	q.cmd = exec.Command(bin, args...)
	q.cmd.ExtraFiles = cfg.ExtraFiles
	q.cmd.SysProcAttr = sysProcAttr()
	var stderr strings.Builder
	q.cmd.Stdout = &stderr
	q.cmd.Stderr = &stderr
	if err := q.cmd.Start(); err != nil {
		t.Fatalf("starting QEMU: %v", err)
	}
	go func() {
		err := q.cmd.Wait()
		if err != nil && stderr.Len() > 0 {
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
		}
		q.err = err
		close(q.done)
	}()
	t.Cleanup(func() {
		_ = q.cmd.Process.Kill()
		<-q.done
	})
	return q
}

// Pid returns QEMU's process id.
func (q *QEMU) Pid() int { return q.cmd.Process.Pid }

// Done is closed when QEMU has exited.
func (q *QEMU) Done() <-chan struct{} { return q.done }

// Wait waits for QEMU to exit and returns its exit error (nil for status 0).
func (q *QEMU) Wait(ctx context.Context) error {
	select {
	case <-q.done:
		return q.err
	case <-ctx.Done():
		return fmt.Errorf("waiting for QEMU to exit: %w", ctx.Err())
	}
}

// PowerButton presses the ACPI power button (QMP system_powerdown).
func (q *QEMU) PowerButton(ctx context.Context) error {
	return q.qmpCommand(ctx, "system_powerdown")
}

func (q *QEMU) qmpCommand(ctx context.Context, command string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", q.qmp)
	if err != nil {
		return fmt.Errorf("QMP: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	} else {
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	}
	dec := json.NewDecoder(bufio.NewReader(conn))
	var greeting map[string]json.RawMessage
	if err := dec.Decode(&greeting); err != nil {
		return fmt.Errorf("QMP greeting: %w", err)
	}
	for _, c := range []string{"qmp_capabilities", command} {
		if _, err := fmt.Fprintf(conn, "{\"execute\":%q}\n", c); err != nil {
			return fmt.Errorf("QMP %s: %w", c, err)
		}
		for {
			var resp struct {
				Return *json.RawMessage `json:"return"`
				Error  *struct {
					Desc string `json:"desc"`
				} `json:"error"`
			}
			if err := dec.Decode(&resp); err != nil {
				return fmt.Errorf("QMP %s: %w", c, err)
			}
			if resp.Error != nil {
				return fmt.Errorf("QMP %s: %s", c, resp.Error.Desc)
			}
			if resp.Return != nil {
				break
			}
			// An asynchronous event: keep reading for the reply.
		}
	}
	return nil
}
