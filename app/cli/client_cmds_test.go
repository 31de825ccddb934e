package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/vmnetbar/vmnetbar/app/control"
	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/internal/fakeapp"
	"github.com/vmnetbar/vmnetbar/internal/testwait"
	"github.com/vmnetbar/vmnetbar/netlink"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

func TestWriteStatus(t *testing.T) {
	now := time.Date(2026, 3, 4, 10, 0, 0, 0, time.Local)
	v := model.VMStatus{
		Name: "dev",
		VM:   model.VM{State: vmhost.StateError, Since: now.Add(-90 * time.Second), Error: "QEMU exited: status 1", ConfigChanged: true},
		Link: netlink.Status{
			State: netlink.StateReconnecting, Reconnects: 3, LastError: "read: connection reset by peer",
			Since: now.Add(-2 * time.Second), TxFrames: 1, TxBytes: 1514, RxFrames: 2048, RxBytes: 3 << 20,
			Dropped: netlink.Drops{Oversize: 1, VMBusy: 5, PartialRead: 2}, Downtime: 2500 * time.Millisecond,
		},
	}
	var b strings.Builder
	writeStatus(&b, v, false, "/c.yaml:3: vms.dev.kernel: the file does not exist", now)
	want := `Name:        dev
VM:          error since 09:58:30 (1m ago): QEMU exited: status 1
Note:        configuration changed: applies at the next start
Link:        reconnecting since 09:59:58 (2s ago)
Reconnects:  3
Last error:  read: connection reset by peer
Traffic:     VM to daemon 1 frame (1.5 kB), daemon to VM 2048 frames (3.1 MB)
Drops:       8 (oversize 1, VM busy 5, partial read 2)
Downtime:    2.5s
Config:      the last reload changed nothing: /c.yaml:3: vms.dev.kernel: the file does not exist
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}

	// Another day shows the date; a standalone link has no VM lines; no
	// error.
	b.Reset()
	writeStatus(&b, model.VMStatus{Link: netlink.Status{State: netlink.StateUp, Since: now.Add(-26 * time.Hour)}}, true, "", now)
	for _, w := range []string{"Link:        up since " + now.Add(-26*time.Hour).Format("2006-01-02 15:04:05") + " (1d 2h ago)\nHealth:      unknown\n", "Last error:  none"} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("summary lacks %q:\n%s", w, b.String())
		}
	}
	for _, w := range []string{"VM:", "Name:", "Note:", "Config:"} {
		if strings.Contains(b.String(), w) {
			t.Errorf("summary of a standalone link shows %q:\n%s", w, b.String())
		}
	}
}

func TestWriteStatusHealth(t *testing.T) {
	now := time.Date(2026, 3, 4, 10, 0, 0, 0, time.Local)
	for _, tc := range []struct {
		l    netlink.Status
		want string
	}{
		{netlink.Status{State: netlink.StateUp, Health: netlink.HealthOK, GatewayRTT: 1234567 * time.Nanosecond}, "Health:      ok (the gateway answers in 1.23ms)\n"},
		{netlink.Status{State: netlink.StateUp, Health: netlink.HealthOK}, "Health:      ok\n"},
		{netlink.Status{State: netlink.StateUp, Health: netlink.HealthSilent, LastRx: now.Add(-33 * time.Second)},
			"Health:      silent: nothing comes from the network behind the daemon; the last frame came at 09:59:27 (33s ago)\n"},
	} {
		var b strings.Builder
		writeStatus(&b, model.VMStatus{Name: "dev", Link: tc.l}, false, "", now)
		if !strings.Contains(b.String(), "\n"+tc.want) {
			t.Errorf("health %v: summary lacks %q:\n%s", tc.l.Health, tc.want, b.String())
		}
	}
	// A stopped link has no health to speak of.
	var b strings.Builder
	writeStatus(&b, model.VMStatus{Name: "dev", Link: netlink.Status{State: netlink.StateStopped}}, false, "", now)
	if strings.Contains(b.String(), "Health:") {
		t.Errorf("a stopped link shows its health:\n%s", b.String())
	}
}

func TestClientCommandsWhenNotRunning(t *testing.T) {
	missing := filepath.Join(shortTempDir(t), "control.sock")
	for _, args := range [][]string{{"status"}, {"status", "dev"}, {"reconnect"}, {"watch", "dev"}, {"start"}, {"stop", "dev"}, {"list"}, {"ip"}, {"reset", "dev", "--yes"}, {"reset", "dev"}} {
		r := runCLI(t, append(args, "--control", missing)...)
		if r.code != 1 || !strings.Contains(r.stderr, "vmnetbar is not running (no control socket at "+missing+")") {
			t.Errorf("%s: exit %d, stderr %q; want 1 and 'not running'", args, r.code, r.stderr)
		}
	}
}

func TestClientCommandsBadArguments(t *testing.T) {
	for _, args := range [][]string{
		{"status", "dev", "extra"},
		{"status", ""},
		{"status", "--jsn"},
		{"reconnect", "--control"},
		{"watch", "dev", "now"},
		{"start", "a", "b"},
		{"list", "dev"},
		{"ip", "dev", "--wait", "-1s"},
		{"ssh", "dev", "--wait", "-1s"},
		{"reset"},
		{"reset", ""},
		{"reset", "dev", "--yes=maybe"},
	} {
		r := runCLI(t, args...)
		if r.code != 2 || r.stderr == "" {
			t.Errorf("%q: exit %d, stderr %q; want 2 and a message", args, r.code, r.stderr)
		}
	}
}

// serveControl serves m's VMs with the app's control server at path in
// the test process until the test ends.
func serveControl(t *testing.T, m model.Machines, path string) {
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
		control.NewServer(m, log).Serve(ctx, l)
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// serveVMs serves fake VMs with the given names (stopped) on a new control
// socket and returns them and the socket's path.
func serveVMs(t *testing.T, names ...string) (*fakeapp.Machines, string) {
	t.Helper()
	m := fakeapp.New(names...)
	t.Cleanup(m.Close)
	path := filepath.Join(shortTempDir(t), "control.sock")
	serveControl(t, m, path)
	return m, path
}

// running makes a VM of m run with its link up.
func running(m *fakeapp.Machines, name string) {
	m.Set(name, func(v *model.VMStatus) {
		v.VM.State, v.VM.Since = vmhost.StateRunning, time.Now().Add(-(2*time.Hour + 14*time.Minute + 5*time.Second))
		v.Link.State = netlink.StateUp
	})
}

func TestClientCommandsDefaultSocket(t *testing.T) {
	// With XDG_RUNTIME_DIR pointing at a test directory, the commands use
	// the socket inside it.
	dir := shortTempDir(t)
	m := fakeapp.New("default")
	t.Cleanup(m.Close)
	serveControl(t, m, filepath.Join(dir, "vmnetbar", "control.sock"))
	r := runCLIEnv(t, []string{"XDG_RUNTIME_DIR=" + dir}, "status")
	if r.code != 0 || !strings.Contains(r.stdout, "VM:          stopped") {
		t.Errorf("status with the default socket: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestOneVMCommands: with one VM, NAME may be left out; the commands act
// on the VM by the name they resolved.
func TestOneVMCommands(t *testing.T) {
	m, path := serveVMs(t, "default")

	r := runCLI(t, "start", "--control", path)
	if r.code != 0 || r.stdout != "VM default is running\n" {
		t.Errorf("start: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, "status", "--control", path)
	if r.code != 0 || !strings.Contains(r.stdout, "Name:        default\nVM:          running since ") {
		t.Errorf("status: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, "status", "--json", "--control", path)
	var v model.VMStatus
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v.Name != "default" || v.VM.State != vmhost.StateRunning || !v.Actions.Stop {
		t.Errorf("status --json: %v\n%s", err, r.stdout)
	}
	r = runCLI(t, "reconnect", "default", "--control", path)
	if r.code != 0 || r.stdout != "reconnect of default requested\n" {
		t.Errorf("reconnect default: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, "stop", "--control", path)
	if r.code != 0 || r.stdout != "VM default is stopped\n" {
		t.Errorf("stop: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	// Stopping a stopped VM is refused with the app's message.
	r = runCLI(t, "stop", "--control", path)
	if r.code != 1 || !strings.Contains(r.stderr, "vmnetbar stop: cannot stop default: the VM is stopped") {
		t.Errorf("second stop: exit %d, stderr %q", r.code, r.stderr)
	}
	if got, want := m.Calls(), []string{"start default", "reconnect default", "stop default", "stop default"}; !slices.Equal(got, want) {
		t.Errorf("the app saw %q, want %q", got, want)
	}
}

// TestSeveralVMsNeedAName: with several VMs, a command without NAME, or
// with a NAME the app does not have, is bad usage naming the VMs, and
// nothing is asked of any VM.
func TestSeveralVMsNeedAName(t *testing.T) {
	m, path := serveVMs(t, "build", "dev")
	running(m, "dev")
	for _, cmd := range []string{"status", "start", "stop", "reconnect", "watch", "ip"} {
		for _, args := range [][]string{{cmd}, {cmd, "--json"}} {
			if cmd != "status" && len(args) == 2 {
				continue
			}
			r := runCLI(t, append(args, "--control", path)...)
			if r.code != ExitUsage || !strings.Contains(r.stderr, "vmnetbar "+cmd+": the VMs are build, dev: name one (e.g. 'vmnetbar "+cmd+" build')") || r.stdout != "" {
				t.Errorf("%q: exit %d, stdout %q, stderr %q; want %d naming the VMs", args, r.code, r.stdout, r.stderr, ExitUsage)
			}
		}
		r := runCLI(t, cmd, "nope", "--control", path)
		if r.code != ExitUsage || !strings.Contains(r.stderr, `vmnetbar `+cmd+`: no VM named "nope"; the VMs are build, dev ('vmnetbar list' shows them)`) {
			t.Errorf("%s nope: exit %d, stderr %q; want %d naming the VMs", cmd, r.code, r.stderr, ExitUsage)
		}
	}
	if calls := m.Calls(); len(calls) != 0 {
		t.Errorf("the app was asked %q", calls)
	}
}

// TestSeveralVMsByName: a command with NAME acts on that VM only.
func TestSeveralVMsByName(t *testing.T) {
	m, path := serveVMs(t, "build", "dev")

	if r := runCLI(t, "start", "dev", "--control", path); r.code != 0 || r.stdout != "VM dev is running\n" {
		t.Fatalf("start dev: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if r := runCLI(t, "reconnect", "dev", "--control", path); r.code != 0 || r.stdout != "reconnect of dev requested\n" {
		t.Fatalf("reconnect dev: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	o := m.Status()
	if o.VMs[0].VM.State != vmhost.StateStopped || o.VMs[1].VM.State != vmhost.StateRunning || o.VMs[0].Link.Reconnects != 0 || o.VMs[1].Link.Reconnects != 1 {
		t.Errorf("after start dev and reconnect dev: %+v", o.VMs)
	}
	if r := runCLI(t, "reconnect", "build", "--control", path); r.code != 1 || !strings.Contains(r.stderr, "cannot reconnect build: the VM is stopped") {
		t.Errorf("reconnect build (stopped): exit %d, stderr %q", r.code, r.stderr)
	}

	// status NAME --json is that VM's VMSTATUS, as GET /v1/vms/NAME.
	r := runCLI(t, "status", "dev", "--json", "--control", path)
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(r.stdout), &raw); err != nil || r.code != 0 {
		t.Fatalf("status dev --json: exit %d, %v\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	for _, k := range []string{"name", "vm", "link", "actions"} {
		if _, ok := raw[k]; !ok || len(raw) != 4 {
			t.Errorf("status dev --json has not exactly name, vm, link, actions:\n%s", r.stdout)
		}
	}
	var v model.VMStatus
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v.Name != "dev" || v.VM.State != vmhost.StateRunning || v.Link.Reconnects != 1 {
		t.Errorf("status dev --json: %v\n%s", err, r.stdout)
	}

	// The text names the VM and says what changed or failed to load.
	m.Set("dev", func(v *model.VMStatus) { v.VM.ConfigChanged = true })
	m.SetConfigError("/c.yaml:7: vms.build.mac: duplicate MAC")
	r = runCLI(t, "status", "build", "--control", path)
	for _, w := range []string{"Name:        build\n", "VM:          stopped", "Config:      the last reload changed nothing: /c.yaml:7: vms.build.mac: duplicate MAC"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("status build lacks %q:\n%s", w, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "configuration changed") {
		t.Errorf("status build shows dev's configuration change:\n%s", r.stdout)
	}
	if r = runCLI(t, "status", "dev", "--control", path); !strings.Contains(r.stdout, "Note:        configuration changed: applies at the next start") {
		t.Errorf("status dev lacks the configuration change:\n%s", r.stdout)
	}

	if r := runCLI(t, "stop", "dev", "--control", path); r.code != 0 || r.stdout != "VM dev is stopped\n" {
		t.Errorf("stop dev: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if got, want := m.Calls(), []string{"start dev", "reconnect dev", "reconnect build", "stop dev"}; !slices.Equal(got, want) {
		t.Errorf("the app saw %q, want %q", got, want)
	}
}

func TestNoVMsConfigured(t *testing.T) {
	_, path := serveVMs(t)
	if r := runCLI(t, "status", "--control", path); r.code != ExitFailure || !strings.Contains(r.stderr, "vmnetbar status: no VMs configured: add one under vms:") {
		t.Errorf("status: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := runCLI(t, "start", "dev", "--control", path); r.code != ExitUsage || !strings.Contains(r.stderr, `no VM named "dev"; no VMs are configured`) {
		t.Errorf("start dev: exit %d, stderr %q", r.code, r.stderr)
	}
}

// watchLines runs 'vmnetbar watch' with args and returns its output lines.
func watchLines(t *testing.T, args ...string) (*proc, <-chan string) {
	t.Helper()
	p := startCLI(t, nil, true, append([]string{"watch"}, args...)...)
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(p.stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return p, lines
}

// nextVM reads the next watch line as a VMSTATUS.
func nextVM(t *testing.T, p *proc, lines <-chan string) model.VMStatus {
	t.Helper()
	select {
	case l, ok := <-lines:
		if !ok {
			t.Fatalf("watch ended; stderr:\n%s", p.stderr.String())
		}
		var v model.VMStatus
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("watch printed %q: %v", l, err)
		}
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("watch printed nothing; stderr:\n%s", p.stderr.String())
		return model.VMStatus{}
	}
}

// TestWatchOneOfSeveral: 'watch NAME' prints that VM's VMSTATUS at each
// of its changes, nothing for the others, and ends when it is removed.
func TestWatchOneOfSeveral(t *testing.T) {
	m, path := serveVMs(t, "build", "dev")
	p, lines := watchLines(t, "dev", "--control", path)
	if v := nextVM(t, p, lines); v.Name != "dev" || v.VM.State != vmhost.StateStopped {
		t.Fatalf("first line: %+v", v)
	}
	testwait.For(t, "watch to subscribe", func() bool { return m.Subscribers() > 0 })
	// A change of build prints nothing: the next line is dev's change.
	running(m, "build")
	running(m, "dev")
	if v := nextVM(t, p, lines); v.Name != "dev" || v.VM.State != vmhost.StateRunning || !v.Actions.Stop {
		t.Fatalf("line after dev started: %+v", v)
	}
	m.Set("dev", func(v *model.VMStatus) { v.Link.Reconnects = 5 })
	if v := nextVM(t, p, lines); v.Name != "dev" || v.Link.Reconnects != 5 {
		t.Fatalf("line after dev reconnected: %+v", v)
	}
	m.Remove("dev")
	p.wait(t, 10*time.Second)
	if p.code != ExitFailure || !strings.Contains(p.stderr.String(), "vmnetbar watch: VM dev was removed from the configuration") {
		t.Errorf("watch after dev was removed: exit %d, stderr %q", p.code, p.stderr.String())
	}
}

func TestWatchInterrupted(t *testing.T) {
	_, path := serveVMs(t, "dev")
	p, lines := watchLines(t, "--control", path)
	if v := nextVM(t, p, lines); v.Name != "dev" {
		t.Fatalf("first line: %+v", v)
	}
	if took, code := p.signal(t, syscall.SIGINT); code != 0 || took > 5*time.Second {
		t.Errorf("watch: exit %d after %v on SIGINT, want 0; stderr:\n%s", code, took, p.stderr.String())
	}
}

// TestStandaloneLinkTakesNoName: a 'vmnetbar link' serves no VM, so a
// NAME is bad usage, and its status keeps today's shape.
func TestStandaloneLinkTakesNoName(t *testing.T) {
	s := startLink(t)
	for _, cmd := range []string{"status", "reconnect", "watch", "ip", "start"} {
		r := runCLI(t, cmd, "dev", "--control", s.control)
		if r.code != ExitUsage || !strings.Contains(r.stderr, "vmnetbar "+cmd+": this vmnetbar is a standalone link ('vmnetbar link'), which serves no VM: leave out NAME") {
			t.Errorf("%s dev: exit %d, stderr %q", cmd, r.code, r.stderr)
		}
	}
	r := runCLI(t, "status", "--json", "--control", s.control)
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(r.stdout), &raw); err != nil || r.code != 0 {
		t.Fatalf("status --json: exit %d, %v\n%s", r.code, err, r.stdout)
	}
	if _, ok := raw["link"]; !ok || len(raw) != 2 {
		t.Errorf("status --json of a standalone link is not {link, actions}:\n%s", r.stdout)
	}
	r = runCLI(t, "list", "--control", s.control)
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); r.code != 0 || len(lines) != 2 || !strings.HasPrefix(strings.Join(strings.Fields(lines[1]), " "), "- - up 0 ") {
		t.Errorf("list of a standalone link: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	p, lines := watchLines(t, "--control", s.control)
	select {
	case l := <-lines:
		if json.Unmarshal([]byte(l), &raw) != nil || raw["name"] != nil || raw["link"] == nil {
			t.Errorf("watch of a standalone link printed %s", l)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("watch printed nothing; stderr:\n%s", p.stderr.String())
	}
}

// TestAppFromBeforeNames: a vmnetbar from before several VMs answers
// {"vm": ..., "link": ...} and has only the routes without a name; the
// commands work with it when NAME is left out.
func TestAppFromBeforeNames(t *testing.T) {
	path := filepath.Join(shortTempDir(t), "control.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	st := model.Status{VM: &model.VM{State: vmhost.StateStopped}, Link: netlink.Status{State: netlink.StateStopped}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		json.NewEncoder(w).Encode(st)
	})
	mux.HandleFunc("POST /v1/vm/start", func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		st.VM.State, st.Link.State = vmhost.StateRunning, netlink.StateUp
		io.WriteString(w, `{"ok": true}`)
	})
	srv := &http.Server{Handler: mux}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(l) }()
	t.Cleanup(func() { srv.Close(); <-done })

	if r := runCLI(t, "start", "--control", path); r.code != 0 || r.stdout != "VM is running\n" {
		t.Errorf("start: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if r := runCLI(t, "status", "--control", path); r.code != 0 || !strings.Contains(r.stdout, "VM:          running") {
		t.Errorf("status: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if r := runCLI(t, "status", "dev", "--control", path); r.code != ExitUsage || !strings.Contains(r.stderr, "a vmnetbar from before named VMs, which runs one VM: leave out NAME") {
		t.Errorf("status dev: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestIPOfSeveral: 'ip NAME' is that VM's guest's address.
func TestIPOfSeveral(t *testing.T) {
	m, path := serveVMs(t, "build", "dev")
	running(m, "build")
	running(m, "dev")
	m.Set("dev", func(v *model.VMStatus) { v.Link.Guest.IPv4 = netip.MustParseAddr("192.168.105.7") })
	if r := runCLI(t, "ip", "dev", "--control", path); r.code != 0 || r.stdout != "192.168.105.7\n" {
		t.Errorf("ip dev: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if r := runCLI(t, "ip", "build", "--control", path); r.code != 1 || !strings.Contains(r.stderr, "no DHCP or ARP seen from the guest yet") {
		t.Errorf("ip build: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	m.Set("build", func(v *model.VMStatus) { v.VM.State = vmhost.StateStopped })
	if r := runCLI(t, "ip", "build", "--control", path); r.code != 1 || !strings.Contains(r.stderr, "the VM build is stopped: start it first") {
		t.Errorf("ip build (stopped): exit %d, stderr %q", r.code, r.stderr)
	}
}
