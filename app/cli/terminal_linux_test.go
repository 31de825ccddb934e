package cli

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmnetbar/vmnetbar/internal/testwait"
)

// terminal is a pseudo-terminal for a vmnetbar subprocess: the child gets the
// terminal's end (a real terminal to isTerminal), the test writes what a
// user types to the other end and reads what the child writes there.
type terminal struct {
	master, tty *os.File
	mu          sync.Mutex
	out         bytes.Buffer // everything read from the master
	done        chan struct{}
}

// openTerminal opens a pseudo-terminal and reads its output until the test
// ends.
func openTerminal(t *testing.T) *terminal {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	var n int
	rc, err := m.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var ioErr error
	if err := rc.Control(func(fd uintptr) {
		if ioErr = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); ioErr == nil {
			n, ioErr = unix.IoctlGetInt(int(fd), unix.TIOCGPTN)
		}
	}); err != nil || ioErr != nil {
		m.Close()
		t.Fatalf("unlocking the pseudo-terminal: %v %v", err, ioErr)
	}
	tty, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	p := &terminal{master: m, tty: tty, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		buf := make([]byte, 4096)
		for {
			n, err := m.Read(buf)
			p.mu.Lock()
			p.out.Write(buf[:n])
			p.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		tty.Close()
		m.Close()
		<-p.done
	})
	return p
}

// output is what the child wrote to the terminal so far (and what the
// terminal echoed of what the test typed).
func (p *terminal) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// typeIn writes s to the terminal as if typed.
func (p *terminal) typeIn(t *testing.T, s string) {
	t.Helper()
	if _, err := p.master.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

// waitOutput waits for the terminal's output to contain want.
func (p *terminal) waitOutput(t *testing.T, want string) {
	t.Helper()
	testwait.Within(t, 20*time.Second, fmt.Sprintf("the terminal to show %q", want), func() bool {
		return strings.Contains(p.output(), want)
	})
}
