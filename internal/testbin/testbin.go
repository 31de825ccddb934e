// Package testbin builds the vmnetbar binary once per test process, for
// tests that run the app as a subprocess, and writes the app configuration
// that boots the test guest.
//
// It is test infrastructure, never part of the vmnetbar binary. It imports
// the standard library and internal/testguest.
package testbin

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmnetbar/vmnetbar/internal/testguest"
)

// buildTimeout bounds the build.
const buildTimeout = 5 * time.Minute

var (
	once   sync.Once
	dir    string // holds the binary; removed by Remove
	bin    string
	errBin error
)

// Path returns the vmnetbar binary, building it on the first call (with
// -race when the tests run with it). A failed build fails every test that
// asks for the binary.
func Path(t testing.TB) string {
	t.Helper()
	once.Do(build)
	if errBin != nil {
		t.Fatal(errBin)
	}
	return bin
}

func build() {
	d, err := os.MkdirTemp("", "vmnetbar-bin")
	if err != nil {
		errBin = err
		return
	}
	dir = d
	out := filepath.Join(d, "vmnetbar")
	args := []string{"build", "-o", out}
	if Race {
		args = append(args, "-race")
	}
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	b, err := exec.CommandContext(ctx, "go", append(args, "github.com/vmnetbar/vmnetbar")...).CombinedOutput()
	if err != nil {
		errBin = fmt.Errorf("building vmnetbar: %v\n%s", err, b)
		return
	}
	bin = out
}

// Remove deletes the binary. Call it from TestMain once the tests have run.
func Remove() {
	if dir != "" {
		os.RemoveAll(dir)
	}
}

// GuestConfig is an app configuration that boots the test guest under QEMU
// (TCG, one CPU, 256 MiB) with its network on a daemon's socket.
type GuestConfig struct {
	Guest      testguest.Guest
	Options    testguest.Options // the guest's kernel command line
	ConsoleLog string
	Socket     string // the daemon's socket
	// FastReconnect sets the reconnect backoff to 50 ms..500 ms.
	FastReconnect bool
}

// YAML renders the configuration file.
func (c GuestConfig) YAML() string {
	var b strings.Builder
	fmt.Fprintf(&b, "vm:\n  kernel: %s\n  initrd: %s\n  cmdline: %q\n  cpus: 1\n  memory: 256MiB\n  console_log: %s\n  accel: tcg\n",
		c.Guest.Kernel, c.Guest.Initrd, testguest.Cmdline(c.Options), c.ConsoleLog)
	fmt.Fprintf(&b, "network:\n  socket: %s\n", c.Socket)
	if c.FastReconnect {
		b.WriteString("reconnect:\n  initial_backoff: 50ms\n  max_backoff: 500ms\n")
	}
	return b.String()
}

// Entry renders the VM as the entry name of a vms: section (a
// configuration with several VMs is "vms:\n" followed by their entries).
func (c GuestConfig) Entry(name string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  %s:\n    kernel: %s\n    initrd: %s\n    cmdline: %q\n    cpus: 1\n    memory: 256MiB\n    console_log: %s\n    accel: tcg\n",
		name, c.Guest.Kernel, c.Guest.Initrd, testguest.Cmdline(c.Options), c.ConsoleLog)
	fmt.Fprintf(&b, "    network:\n      socket: %s\n", c.Socket)
	if c.FastReconnect {
		b.WriteString("    reconnect:\n      initial_backoff: 50ms\n      max_backoff: 500ms\n")
	}
	return b.String()
}

// Buffer is a bytes.Buffer safe for a writer goroutine (a subprocess's
// output, a logger) and a reader (the test).
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
