package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/internal/testbin"
	"github.com/vmnetbar/vmnetbar/internal/testwait"
	"github.com/vmnetbar/vmnetbar/netlink"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

func TestStatusLine(t *testing.T) {
	tests := []struct {
		st   model.Status
		want string
	}{
		{model.Status{
			VM:   &model.VM{State: vmhost.StateRunning},
			Link: netlink.Status{State: netlink.StateUp, Reconnects: 2, TxBytes: 1_200_000, RxBytes: 3_400_000},
		}, "vm=running link=up reconnects=2 tx=1.2MB rx=3.4MB drops=0"},
		{model.Status{
			VM:   &model.VM{State: vmhost.StateError, Error: "QEMU exited"},
			Link: netlink.Status{State: netlink.StateStopped, Dropped: netlink.Drops{Oversize: 1, VMBusy: 2}, LastError: "dial: refused"},
		}, `vm=error link=stopped reconnects=0 tx=0B rx=0B drops=3 error="QEMU exited" link_error="dial: refused"`},
		{model.Status{
			Link: netlink.Status{State: netlink.StateUp, LastError: "old"},
		}, "link=up reconnects=0 tx=0B rx=0B drops=0"},
		{model.Status{
			VM:   &model.VM{State: vmhost.StateStopped, NotConfigured: true, Note: "no VM configured: edit /c.yaml (vm.image), then start"},
			Link: netlink.Status{State: netlink.StateStopped},
		}, `vm=not-configured link=stopped reconnects=0 tx=0B rx=0B drops=0 note="no VM configured: edit /c.yaml (vm.image), then start"`},
		{model.Status{
			VM:   &model.VM{State: vmhost.StateRunning},
			Link: netlink.Status{State: netlink.StateConnecting, LastError: "dialing the daemon: dial unix /opt/homebrew/var/run/socket_vmnet: connect: no such file or directory"},
		}, `vm=running link=connecting reconnects=0 tx=0B rx=0B drops=0 waiting_for="/opt/homebrew/var/run/socket_vmnet"`},
	}
	for _, tt := range tests {
		if got := statusLine(tt.st); got != tt.want {
			t.Errorf("got  %s\nwant %s", got, tt.want)
		}
	}
}

// fakeBackend publishes the statuses of one VM the test sets, each at once
// (no coalescing: the tests count lines).
type fakeBackend struct {
	mu  sync.Mutex
	st  model.Status
	sub chan model.Overview
}

func (b *fakeBackend) Status() model.Overview {
	b.mu.Lock()
	defer b.mu.Unlock()
	return model.Overview{VMs: []model.VMStatus{b.st.Named("default")}}
}

func (b *fakeBackend) Subscribe() (<-chan model.Overview, func()) { return b.sub, func() {} }

func (b *fakeBackend) set(vm vmhost.State) {
	b.mu.Lock()
	b.st = model.Status{VM: &model.VM{State: vm}, Link: netlink.Status{State: netlink.StateStopped}}
	b.mu.Unlock()
	b.sub <- b.Status()
}

func TestPrintStatusLines(t *testing.T) {
	b := &fakeBackend{sub: make(chan model.Overview)}
	b.st = model.Status{VM: &model.VM{State: vmhost.StateStopped}, Link: netlink.Status{State: netlink.StateStopped}}
	var out testbin.Buffer
	now := func() time.Time { return time.Date(2026, 11, 25, 22, 30, 1, 0, time.FixedZone("x", 3600)) }
	done := make(chan struct{})
	go func() {
		defer close(done)
		printStatusLines(context.Background(), &out, b, now, 0, discardLog())
	}()
	b.set(vmhost.StateStopped) // unchanged: no line
	b.set(vmhost.StateStarting)
	b.set(vmhost.StateRunning)
	close(b.sub) // the backend shut down: the printer returns
	<-done
	want := "2026-11-25T21:30:01Z vm=stopped link=stopped reconnects=0 tx=0B rx=0B drops=0\n" +
		"2026-11-25T21:30:01Z vm=starting link=stopped reconnects=0 tx=0B rx=0B drops=0\n" +
		"2026-11-25T21:30:01Z vm=running link=stopped reconnects=0 tx=0B rx=0B drops=0\n"
	if got := out.String(); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}

	// It also returns when its context ends.
	ctx, cancel := context.WithCancel(context.Background())
	b2 := &fakeBackend{sub: make(chan model.Overview)}
	b2.st = b.st
	done = make(chan struct{})
	go func() {
		defer close(done)
		printStatusLines(ctx, &out, b2, now, 0, discardLog())
	}()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("printer did not return after its context ended")
	}
	if strings.Count(out.String(), "\n") != 4 {
		t.Fatalf("output %q", out.String())
	}
}

func TestPrintStatusLinesRefreshesCounters(t *testing.T) {
	b := &fakeBackend{sub: make(chan model.Overview)}
	b.st = model.Status{VM: &model.VM{State: vmhost.StateRunning}, Link: netlink.Status{State: netlink.StateUp}}
	var out testbin.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		printStatusLines(ctx, &out, b, time.Now, time.Millisecond, discardLog())
	}()
	defer func() {
		cancel()
		<-done
	}()
	testwait.ForValue(t, "the first line", out.String, func(s string) bool { return strings.Contains(s, "tx=0B rx=0B") })
	// Traffic flows without a status notification.
	b.mu.Lock()
	b.st.Link.TxBytes, b.st.Link.RxBytes = 1_200_000, 3_400_000
	b.mu.Unlock()
	testwait.ForValue(t, "the counters to be refreshed", out.String, func(s string) bool { return strings.Contains(s, "tx=1.2MB rx=3.4MB") })
	if n := strings.Count(out.String(), "\n"); n != 2 {
		t.Fatalf("%d lines, want 2 (unchanged lines are not repeated): %q", n, out.String())
	}
}

func discardLog() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// failingWriter fails every write, like a pipe whose reader went away.
type failingWriter struct {
	mu     sync.Mutex
	writes int
}

func (f *failingWriter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes++
	return 0, syscall.EPIPE
}

// A closed standard output never ends the printer (and so the headless
// app): it logs once, writes no more and returns only when the app ends.
func TestPrintStatusLinesSurvivesClosedOutput(t *testing.T) {
	b := &fakeBackend{sub: make(chan model.Overview)}
	b.st = model.Status{VM: &model.VM{State: vmhost.StateStopped}, Link: netlink.Status{State: netlink.StateStopped}}
	var logBuf testbin.Buffer
	log := logrus.New()
	log.SetOutput(&logBuf)
	out := &failingWriter{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		printStatusLines(ctx, out, b, time.Now, 0, log)
	}()
	b.set(vmhost.StateStarting)
	b.set(vmhost.StateRunning) // the printer read the previous update: it is still running
	select {
	case <-done:
		t.Fatal("the printer returned when standard output closed")
	default:
	}
	cancel()
	<-done
	if out.writes != 1 || strings.Count(logBuf.String(), "standard output is closed") != 1 {
		t.Fatalf("%d writes after the first failure, log:\n%s", out.writes, logBuf.String())
	}
}

func TestLogFileRotates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "logs", "vmnetbar.log")
	f, err := openLogFile(path, 100)
	if err != nil {
		t.Fatal(err)
	}
	line := []byte(strings.Repeat("x", 39) + "\n") // 40 bytes
	for i := 0; i < 7; i++ {
		if _, err := f.Write(line); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	// 7 lines of 40 bytes with a 100-byte cap: rotated before the 3rd,
	// 5th and 7th; FILE.1 holds lines 5 and 6 (the older ones are gone),
	// FILE line 7.
	cur, _ := os.ReadFile(path)
	old, _ := os.ReadFile(path + ".1")
	if len(cur) != 40 || len(old) != 80 {
		t.Fatalf("current %d bytes, rotated %d bytes; want 40 and 80", len(cur), len(old))
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("log file mode: %v %v", fi.Mode(), err)
	}
	// A file already over the cap at start is rotated before use.
	if err := os.WriteFile(path, bytes.Repeat(line, 5), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err = openLogFile(path, 100)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(line)
	f.Close()
	if cur, _ := os.ReadFile(path); len(cur) != 40 {
		t.Fatalf("an over-size log was not rotated at open: %d bytes", len(cur))
	}
	// Not a regular file: refused.
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := openLogFile(fifo, 100); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("fifo as log file: %v", err)
	}
}

// A closed standard error moves the log to the file alone, saying so once.
func TestLogOutputSurvivesClosedStderr(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vmnetbar.log")
	stderr := &failingWriter{}
	log, out := newAppLogger(stderr, path, logrus.InfoLevel)
	log.Info("one")
	log.Info("two")
	out.close()
	data, _ := os.ReadFile(path)
	s := string(data)
	if stderr.writes != 1 || !strings.Contains(s, "msg=one") || !strings.Contains(s, "msg=two") || strings.Count(s, "standard error is closed") != 1 {
		t.Fatalf("stderr written %d times; log file:\n%s", stderr.writes, s)
	}
}

func TestLockInstance(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	release, err := lockInstance(dir)
	if err != nil {
		t.Fatal(err)
	}
	// flock locks belong to the open file: a second open in this process
	// conflicts just as another process would.
	_, err = lockInstance(dir)
	var ar *errAlreadyRunning
	if !errors.As(err, &ar) || ar.pid != os.Getpid() || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("second lock: %v", err)
	}
	release()
	release2, err := lockInstance(dir)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	release2()
	// A symbolic link in place of the lock file is refused.
	lock := filepath.Join(dir, instanceLockName)
	os.Remove(lock)
	if err := os.Symlink(filepath.Join(t.TempDir(), "elsewhere"), lock); err != nil {
		t.Fatal(err)
	}
	if _, err := lockInstance(dir); err == nil {
		t.Fatal("a symbolic link as the lock file was accepted")
	}
}

// TestLockOnAFileSystemWithoutLocks: a state directory whose file system
// cannot lock (NFS without a lock service answers ENOLCK) moves the
// single-instance lock to the local private directory, with a warning, and
// it still keeps a second app out; an unusable fallback is an error that
// says both.
func TestLockOnAFileSystemWithoutLocks(t *testing.T) {
	state := filepath.Join(t.TempDir(), "nfs-home")
	local := filepath.Join(t.TempDir(), "local")
	flock := func(f *os.File) error {
		if strings.HasPrefix(f.Name(), state) {
			return fmt.Errorf("flock: %w", syscall.ENOLCK)
		}
		return flockFile(f)
	}
	fallback := func() (string, error) { return local, nil }
	var hook testbin.Buffer
	log := logrus.New()
	log.SetOutput(&hook)
	release, err := takeInstanceLock(state, fallback, flock, log)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(local, instanceLockName)); err != nil {
		t.Fatalf("the lock is not in the local directory: %v", err)
	}
	if !strings.Contains(hook.String(), "single-instance lock") || !strings.Contains(hook.String(), "does not support file locks") {
		t.Errorf("no warning that names the move and the cause; log:\n%s", hook.String())
	}
	_, err = takeInstanceLock(state, fallback, flock, log)
	var ar *errAlreadyRunning
	if !errors.As(err, &ar) || ar.pid != os.Getpid() {
		t.Fatalf("a second app with the lock moved: %v, want already running", err)
	}
	release()

	// The lock in a state directory that can lock stays there.
	other := filepath.Join(t.TempDir(), "state")
	release, err = takeInstanceLock(other, func() (string, error) { return "", errors.New("not called") }, flockFile, log)
	if err != nil {
		t.Fatal(err)
	}
	release()

	// No usable fallback: the error names the state directory's lock and
	// the fallback's problem.
	_, err = takeInstanceLock(state, func() (string, error) { return "", errors.New("/tmp/vmnetbar-1000 belongs to someone else") }, flock, log)
	if err == nil || !strings.Contains(err.Error(), "does not support file locks") || !strings.Contains(err.Error(), "someone else") {
		t.Fatalf("error %v, want both causes", err)
	}
}

func TestEndedBySystem(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "XPC_SERVICE_NAME" {
				return v
			}
			return ""
		}
	}
	for _, tc := range []struct {
		sig  os.Signal
		job  string
		want bool
	}{
		{syscall.SIGTERM, "io.github.vmnetbar", true},         // launchd: logout, shutdown, bootout
		{syscall.SIGTERM, "", false},                          // kill from a terminal: the full stop timeout
		{syscall.SIGTERM, "application.com.example.x", false}, // another job's name
		{syscall.SIGINT, "io.github.vmnetbar", false},
	} {
		if got := endedBySystem(tc.sig, env(tc.job)); got != tc.want {
			t.Errorf("endedBySystem(%v, %q) = %v, want %v", tc.sig, tc.job, got, tc.want)
		}
	}
}

// blockingWriter blocks every write until released, like a pipe whose
// reader is suspended.
type blockingWriter struct{ release chan struct{} }

func (b blockingWriter) Write(p []byte) (int, error) {
	<-b.release
	return len(p), nil
}

// A standard error that stalls never blocks a log call: the lines go on in
// the file, and closing the log does not wait for the stalled reader.
func TestLogOutputSurvivesStalledStderr(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vmnetbar.log")
	stderr := blockingWriter{release: make(chan struct{})}
	defer close(stderr.release) // let the writer goroutine end
	log, out := newAppLogger(stderr, path, logrus.InfoLevel)
	logged := make(chan struct{})
	go func() {
		defer close(logged)
		for i := 0; i < 2*stderrQueueLen; i++ {
			log.Infof("line %d", i)
		}
	}()
	select {
	case <-logged:
	case <-time.After(10 * time.Second):
		t.Fatal("logging blocked on a stalled standard error")
	}
	out.close()
	data, _ := os.ReadFile(path)
	if n := strings.Count(string(data), "msg=\"line "); n != 2*stderrQueueLen {
		t.Fatalf("%d lines in the file, want %d", n, 2*stderrQueueLen)
	}
}
