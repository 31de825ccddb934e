package cli

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/vmnetbar/vmnetbar/app/control"
	"github.com/vmnetbar/vmnetbar/netlink"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

func TestWriteStatus(t *testing.T) {
	now := time.Date(2026, 3, 4, 10, 0, 0, 0, time.Local)
	st := control.Status{
		VM: &control.VMStatus{State: vmhost.StateError, Since: now.Add(-90 * time.Second), Error: "QEMU exited: status 1"},
		Link: netlink.Status{
			State: netlink.StateReconnecting, Reconnects: 3, LastError: "read: connection reset by peer",
			Since: now.Add(-2 * time.Second), TxFrames: 1, TxBytes: 1514, RxFrames: 2048, RxBytes: 3 << 20,
			Dropped: netlink.Drops{Oversize: 1, VMBusy: 5, PartialRead: 2}, Downtime: 2500 * time.Millisecond,
		},
	}
	var b strings.Builder
	writeStatus(&b, st, now)
	want := `VM:          error since 09:58:30 (1m ago): QEMU exited: status 1
Link:        reconnecting since 09:59:58 (2s ago)
Reconnects:  3
Last error:  read: connection reset by peer
Traffic:     VM to daemon 1 frame (1.5 kB), daemon to VM 2048 frames (3.1 MB)
Drops:       8 (oversize 1, VM busy 5, partial read 2)
Downtime:    2.5s
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}

	// Another day shows the date; no VM, no error.
	b.Reset()
	writeStatus(&b, control.Status{Link: netlink.Status{State: netlink.StateUp, Since: now.Add(-26 * time.Hour)}}, now)
	for _, w := range []string{"Link:        up since " + now.Add(-26*time.Hour).Format("2006-01-02 15:04:05") + " (1d 2h ago)", "Last error:  none"} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("summary lacks %q:\n%s", w, b.String())
		}
	}
	if strings.Contains(b.String(), "VM:") {
		t.Errorf("summary shows a VM line without a VM:\n%s", b.String())
	}
}

func TestClientCommandsWhenNotRunning(t *testing.T) {
	missing := filepath.Join(shortTempDir(t), "control.sock")
	for _, cmd := range []string{"status", "reconnect", "watch", "start", "stop"} {
		r := runCLI(t, cmd, "--control", missing)
		if r.code != 1 || !strings.Contains(r.stderr, "vmnetbar is not running (no control socket at "+missing+")") {
			t.Errorf("%s: exit %d, stderr %q; want 1 and 'not running'", cmd, r.code, r.stderr)
		}
	}
}

func TestClientCommandsBadArguments(t *testing.T) {
	for _, args := range [][]string{
		{"status", "extra"},
		{"status", "--jsn"},
		{"reconnect", "--control"},
		{"watch", "now"},
	} {
		r := runCLI(t, args...)
		if r.code != 2 || r.stderr == "" {
			t.Errorf("%v: exit %d, stderr %q; want 2 and a message", args, r.code, r.stderr)
		}
	}
}

func TestClientCommandsDefaultSocket(t *testing.T) {
	// With XDG_RUNTIME_DIR pointing at a test directory, the commands use
	// the socket inside it.
	dir := shortTempDir(t)
	b := &fakeVMBackend{st: control.Status{
		VM:   &control.VMStatus{State: vmhost.StateStopped},
		Link: netlink.Status{State: netlink.StateStopped},
	}}
	serveControl(t, b, filepath.Join(dir, "vmnetbar", "control.sock"))
	r := runCLIEnv(t, []string{"XDG_RUNTIME_DIR=" + dir}, "status")
	if r.code != 0 || !strings.Contains(r.stdout, "VM:          stopped") {
		t.Errorf("status with the default socket: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestVMCommands(t *testing.T) {
	path := filepath.Join(shortTempDir(t), "control.sock")
	b := &fakeVMBackend{st: control.Status{
		VM:   &control.VMStatus{State: vmhost.StateStopped, Since: time.Now()},
		Link: netlink.Status{State: netlink.StateConnecting},
	}}
	serveControl(t, b, path)

	r := runCLI(t, "start", "--control", path)
	if r.code != 0 || r.stdout != "VM is running\n" {
		t.Errorf("start: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, "status", "--control", path)
	if r.code != 0 || !strings.Contains(r.stdout, "VM:          running since ") {
		t.Errorf("status: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, "status", "--json", "--control", path)
	var raw struct {
		VM map[string]any `json:"vm"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &raw); err != nil || raw.VM["state"] != "running" {
		t.Errorf("status --json: %v\n%s", err, r.stdout)
	}
	r = runCLI(t, "stop", "--control", path)
	if r.code != 0 || r.stdout != "VM is stopped\n" {
		t.Errorf("stop: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	// Stopping a stopped VM is refused with the backend's message.
	r = runCLI(t, "stop", "--control", path)
	if r.code != 1 || !strings.Contains(r.stderr, "vmnetbar stop: the VM is already stopped") {
		t.Errorf("second stop: exit %d, stderr %q", r.code, r.stderr)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.starts != 1 || b.stops != 2 {
		t.Errorf("backend saw %d starts and %d stops, want 1 and 2", b.starts, b.stops)
	}
}

// fakeVMBackend is a VM backend whose VM starts and stops at once.
type fakeVMBackend struct {
	mu            sync.Mutex
	st            control.Status
	starts, stops int
}

type conflict string

func (c conflict) Error() string   { return string(c) }
func (c conflict) StatusCode() int { return http.StatusConflict }

func (f *fakeVMBackend) Status() control.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.st
	if st.VM != nil {
		vm := *st.VM
		st.VM = &vm
	}
	return st
}

func (f *fakeVMBackend) Subscribe() (<-chan control.Status, func()) {
	ch := make(chan control.Status)
	var once sync.Once
	return ch, func() { once.Do(func() { close(ch) }) }
}

func (f *fakeVMBackend) Reconnect() error { return errors.New("no link") }

func (f *fakeVMBackend) StartVM(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.starts++
	if f.st.VM.State == vmhost.StateRunning {
		return conflict("the VM is already running")
	}
	f.st.VM.State = vmhost.StateRunning
	return nil
}

func (f *fakeVMBackend) StopVM(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stops++
	if f.st.VM.State == vmhost.StateStopped {
		return conflict("the VM is already stopped")
	}
	f.st.VM.State = vmhost.StateStopped
	return nil
}

// serveControl serves b at path in the test process until the test ends.
func serveControl(t *testing.T, b control.Backend, path string) {
	t.Helper()
	l, err := control.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		control.NewServer(b, log).Serve(ctx, l)
	}()
	t.Cleanup(func() { cancel(); <-done })
}
