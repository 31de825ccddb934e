// Package testdaemon runs gvproxy as a stand-in for the socket_vmnet daemon
// in tests: a UNIX stream socket speaking QEMU's framing (4-byte big-endian
// length + Ethernet frame) with a DHCP server and a gateway (192.168.127.1)
// inside gvproxy's own user-space network.
//
// gvproxy accepts one connection and exits when it ends, so the Daemon runs
// it under a restart loop, as launchd's KeepAlive runs socket_vmnet. Kill and
// KillAndPause model a daemon crash: the socket path is removed, then the
// process is killed with SIGKILL.
//
// gvproxy is started without port forwards (-ssh-port -1), so it listens on
// nothing but its socket; a guest on it only ever talks to gvproxy itself.
//
// Hub (hub.go) is the other stand-in: an in-process daemon that floods
// every frame to every other client, as socket_vmnet does, and can be
// muted (up, forwarding nothing) or made to inject frames.
//
// It may import only the standard library, logrus and internal/testguest; it
// is test infrastructure and never part of the vmnetbar binary.
package testdaemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/vmnetbar/vmnetbar/internal/testguest"
)

// ErrNoGvproxy is wrapped by the error FindGvproxy returns when gvproxy is
// not installed.
var ErrNoGvproxy = fmt.Errorf("%w: gvproxy not found: run `make tools` (installs it into .tools/bin) or set VMNETBAR_GVPROXY", testguest.ErrMissingDependency)

// maxSocketPath is the longest UNIX socket path that works on both Linux
// (108 bytes with the NUL) and macOS (104).
const maxSocketPath = 103

// Config configures a Daemon. Dir is required.
type Config struct {
	// Dir holds the socket (gvproxy.sock) and the daemon's log (gvproxy.log).
	// Keep it short: the socket path must fit in 103 bytes.
	Dir string
	// Gvproxy is the gvproxy binary; "" = FindGvproxy().
	Gvproxy string
	// Logger receives restart-loop events; nil = discard.
	Logger logrus.FieldLogger
}

// Daemon is a gvproxy under a restart loop.
type Daemon struct {
	bin, sock, logPath string
	log                logrus.FieldLogger
	logFile            *os.File

	stop     chan struct{} // closed by Stop
	done     chan struct{} // closed when the loop has ended and no process runs
	stopOnce sync.Once

	mu       sync.Mutex
	cond     *sync.Cond // broadcast on every start and exit
	proc     *os.Process
	started  int           // processes started so far
	exits    int           // processes that have exited
	pause    time.Duration // applied before the next start
	killed   bool          // the current process was killed by Kill
	stopping bool
	lastErr  error // last failure to start gvproxy
}

// FindGvproxy returns the gvproxy binary: $VMNETBAR_GVPROXY, else
// <module root>/.tools/bin/gvproxy (found from the working directory), else
// gvproxy on PATH.
func FindGvproxy() (string, error) {
	if p := os.Getenv("VMNETBAR_GVPROXY"); p != "" {
		if err := isExecutable(p); err != nil {
			return "", fmt.Errorf("VMNETBAR_GVPROXY=%s: %w: %w", p, err, ErrNoGvproxy)
		}
		return p, nil
	}
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; ; dir = filepath.Dir(dir) {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				p := filepath.Join(dir, ".tools", "bin", "gvproxy")
				if isExecutable(p) == nil {
					return p, nil
				}
				break
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	if p, err := exec.LookPath("gvproxy"); err == nil {
		return p, nil
	}
	return "", ErrNoGvproxy
}

func isExecutable(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	if st.IsDir() || st.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", p)
	}
	return nil
}

// Start launches a daemon in dir for a test and stops it in the test's
// cleanup. Without gvproxy the test is skipped, or fails when CI=true.
func Start(t testing.TB, dir string) *Daemon {
	t.Helper()
	bin, err := FindGvproxy()
	if err != nil {
		testguest.SkipOrFatal(t, err)
	}
	d, err := Launch(Config{Dir: dir, Gvproxy: bin, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Stop(); err != nil {
			t.Error(err)
		}
	})
	return d
}

// Launch starts the restart loop and returns once the first gvproxy listens.
func Launch(cfg Config) (*Daemon, error) {
	if cfg.Dir == "" {
		return nil, errors.New("testdaemon: Config.Dir is required")
	}
	bin := cfg.Gvproxy
	if bin == "" {
		var err error
		if bin, err = FindGvproxy(); err != nil {
			return nil, err
		}
	} else if err := isExecutable(bin); err != nil {
		return nil, fmt.Errorf("testdaemon: gvproxy %s: %w", bin, err)
	}
	sock := filepath.Join(cfg.Dir, "gvproxy.sock")
	if len(sock) > maxSocketPath {
		return nil, fmt.Errorf("testdaemon: socket path %s is %d bytes, over the %d-byte limit of UNIX socket paths; use a shorter directory (e.g. os.MkdirTemp(\"\", \"vmnb\"))", sock, len(sock), maxSocketPath)
	}
	logPath := filepath.Join(cfg.Dir, "gvproxy.log")
	lf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("testdaemon: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = l
	}
	d := &Daemon{
		bin: bin, sock: sock, logPath: logPath, logFile: lf,
		log:  log.WithField("daemon", sock),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	d.cond = sync.NewCond(&d.mu)
	go d.loop()

	if err := d.waitFirst(15 * time.Second); err != nil {
		_ = d.Stop()
		return nil, fmt.Errorf("testdaemon: gvproxy did not start: %w; log %s: %s", err, logPath, logTail(logPath))
	}
	return d, nil
}

// waitFirst waits until the first gvproxy listens; it fails as soon as that
// process could not be started or exited.
func (d *Daemon) waitFirst(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		d.mu.Lock()
		running, exits, lastErr := d.proc != nil, d.exits, d.lastErr
		d.mu.Unlock()
		switch {
		case lastErr != nil:
			return lastErr
		case exits > 0:
			return errors.New("gvproxy exited before listening")
		case running && listening(d.sock):
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no socket at %s after %v", d.sock, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func socketExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode()&os.ModeSocket != 0
}

// logTail returns the last lines of gvproxy's log for error messages.
func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	s := strings.TrimSpace(string(b))
	if len(s) > 600 {
		s = "..." + s[len(s)-600:]
	}
	if s == "" {
		return "(empty)"
	}
	return s
}

// SocketPath is the daemon's UNIX socket.
func (d *Daemon) SocketPath() string { return d.sock }

// LogPath is the file gvproxy's output is appended to.
func (d *Daemon) LogPath() string { return d.logPath }

// Restarts counts the gvproxy processes started after the first one.
func (d *Daemon) Restarts() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return max(d.started-1, 0)
}

// Pid is the running gvproxy's process id, 0 when none runs.
func (d *Daemon) Pid() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.proc == nil {
		return 0
	}
	return d.proc.Pid
}

// Kill models a daemon crash: it removes the socket path, then kills gvproxy
// with SIGKILL. The loop starts a new gvproxy at once.
func (d *Daemon) Kill() error { return d.KillAndPause(0) }

// KillAndPause is Kill with the restart held back for pause, as when the
// daemon is down for a while.
func (d *Daemon) KillAndPause(pause time.Duration) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopping {
		return errors.New("testdaemon: Kill after Stop")
	}
	if d.proc == nil || d.killed {
		return errors.New("testdaemon: no gvproxy is running to kill")
	}
	if err := os.Remove(d.sock); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("testdaemon: %w", err)
	}
	d.pause = pause
	d.killed = true
	if err := d.proc.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("testdaemon: killing gvproxy: %w", err)
	}
	d.log.WithField("pid", d.proc.Pid).Infof("killed gvproxy; restarting after %v", pause)
	return nil
}

// WaitListening waits until a gvproxy runs and listens on its socket. It
// never connects (gvproxy serves one connection only).
func (d *Daemon) WaitListening(ctx context.Context) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		d.mu.Lock()
		running, killed, lastErr := d.proc != nil, d.killed, d.lastErr
		d.mu.Unlock()
		if running && !killed && listening(d.sock) {
			return nil
		}
		select {
		case <-ctx.Done():
			if lastErr != nil {
				return fmt.Errorf("%w (last start error: %v)", ctx.Err(), lastErr)
			}
			return ctx.Err()
		case <-d.done:
			return errors.New("testdaemon: stopped")
		case <-tick.C:
		}
	}
}

// WaitRestarts waits until at least n restarts have happened.
func (d *Daemon) WaitRestarts(ctx context.Context, n int) error {
	stop := context.AfterFunc(ctx, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.cond.Broadcast()
	})
	defer stop()
	d.mu.Lock()
	defer d.mu.Unlock()
	for d.started-1 < n {
		if ctx.Err() != nil {
			return fmt.Errorf("waiting for %d gvproxy restarts (have %d): %w", n, max(d.started-1, 0), ctx.Err())
		}
		if d.stopping {
			return errors.New("testdaemon: stopped")
		}
		d.cond.Wait()
	}
	return nil
}

// Stop ends the loop, kills gvproxy and removes the socket. It returns once
// no gvproxy process is left. It may be called more than once.
func (d *Daemon) Stop() error {
	d.stopOnce.Do(func() {
		d.mu.Lock()
		d.stopping = true
		close(d.stop)
		if d.proc != nil {
			_ = d.proc.Kill()
		}
		d.cond.Broadcast()
		d.mu.Unlock()
		<-d.done
		_ = os.Remove(d.sock)
		_ = d.logFile.Close()
	})
	return nil
}

// loop runs gvproxy again and again until Stop.
func (d *Daemon) loop() {
	defer close(d.done)
	for {
		cmd, err := d.startOne()
		if cmd == nil && err == nil {
			return // stopping
		}
		if err != nil {
			d.log.WithError(err).Warn("cannot start gvproxy")
			if !d.sleep(200 * time.Millisecond) {
				return
			}
			continue
		}
		began := time.Now()
		waitErr := cmd.Wait()

		d.mu.Lock()
		killed, pause := d.killed, d.pause
		d.proc, d.killed, d.pause = nil, false, 0
		d.exits++
		stopping := d.stopping
		d.cond.Broadcast()
		d.mu.Unlock()

		d.log.WithField("pid", cmd.Process.Pid).WithField("status", waitErr).Debug("gvproxy exited")
		if stopping {
			return
		}
		// A gvproxy that exits on its own right after starting is failing:
		// don't spin.
		if !killed && pause == 0 && time.Since(began) < 200*time.Millisecond {
			pause = 200 * time.Millisecond
		}
		if pause > 0 && !d.sleep(pause) {
			return
		}
	}
}

// startOne starts one gvproxy. It returns (nil, nil) when stopping.
func (d *Daemon) startOne() (*exec.Cmd, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopping {
		return nil, nil
	}
	// gvproxy refuses to start when its socket path exists; a killed one
	// leaves it behind.
	if err := os.Remove(d.sock); err != nil && !errors.Is(err, os.ErrNotExist) {
		d.lastErr = err
		return nil, err
	}
	cmd := exec.Command(d.bin, "-listen-qemu", "unix://"+d.sock, "-ssh-port", "-1")
	cmd.Stdout = d.logFile
	cmd.Stderr = d.logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		d.lastErr = err
		return nil, err
	}
	d.proc = cmd.Process
	d.started++
	d.lastErr = nil
	d.cond.Broadcast()
	d.log.WithField("pid", cmd.Process.Pid).WithField("start", d.started).Debug("gvproxy started")
	return cmd, nil
}

// sleep waits for dur; false when Stop came first.
func (d *Daemon) sleep(dur time.Duration) bool {
	t := time.NewTimer(dur)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-d.stop:
		return false
	}
}

// testLogger sends the loop's log lines to t.Log.
func testLogger(t testing.TB) logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(testWriter{t})
	l.SetLevel(logrus.DebugLevel)
	return l
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Listening reports whether a socket bound to path listens, without
// connecting (gvproxy serves one connection): on Linux from
// /proc/net/unix, elsewhere whether the socket file exists (it appears at
// bind, a moment before listen).
func Listening(path string) bool { return listening(path) }
