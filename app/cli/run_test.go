package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmnetbar/vmnetbar/app/control"
	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/internal/testbin"
	"github.com/vmnetbar/vmnetbar/internal/testdaemon"
	"github.com/vmnetbar/vmnetbar/internal/testguest"
	"github.com/vmnetbar/vmnetbar/internal/testwait"
	"github.com/vmnetbar/vmnetbar/netlink"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

// appDirs is an isolated per-user environment for the app: its own XDG
// directories (inherited by the vmnetbar subprocesses) and no session bus.
type appDirs struct {
	root, configFile, sock, logFile string
}

func isolate(t *testing.T) appDirs {
	t.Helper()
	root := shortTempDir(t)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(root, "c"))
	t.Setenv("XDG_STATE_HOME", filepath.Join(root, "s"))
	t.Setenv("XDG_RUNTIME_DIR", filepath.Join(root, "r"))
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "")
	return appDirs{
		root:       root,
		configFile: filepath.Join(root, "c", "vmnetbar", "config.yaml"),
		sock:       filepath.Join(root, "r", "vmnetbar", "control.sock"),
		logFile:    filepath.Join(root, "s", "vmnetbar", "vmnetbar.log"),
	}
}

// writeConfig writes the app's configuration file.
func (d appDirs) writeConfig(t *testing.T, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(d.configFile), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(d.configFile, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// idleConfig is a configuration whose VM is not started: a placeholder
// kernel and a daemon socket nobody serves.
func (d appDirs) idleConfig(t *testing.T) {
	t.Helper()
	kernel := filepath.Join(d.root, "vmlinuz")
	if err := os.WriteFile(kernel, []byte("not a kernel"), 0o600); err != nil {
		t.Fatal(err)
	}
	d.writeConfig(t, fmt.Sprintf("vm:\n  kernel: %s\nnetwork:\n  socket: %s\nautostart_vm: false\n",
		kernel, filepath.Join(d.root, "daemon.sock")))
}

// guestApp prepares an isolated app whose configuration boots the test
// guest, with the test daemon on its network; it returns the daemon and the
// guest's console log. It skips (or fails, with CI=true) without QEMU or the
// guest.
func guestApp(t *testing.T, o testguest.Options, fastReconnect bool) (appDirs, *testdaemon.Daemon, string) {
	t.Helper()
	g := testguest.Ensure(t)
	if _, err := testguest.FindQEMU(); err != nil {
		testguest.SkipOrFatal(t, err)
	}
	d := isolate(t)
	daemon := testdaemon.Start(t, d.root)
	console := filepath.Join(d.root, "console.log")
	d.writeConfig(t, testbin.GuestConfig{Guest: g, Options: o, ConsoleLog: console, Socket: daemon.SocketPath(),
		FastReconnect: fastReconnect}.YAML())
	return d, daemon, console
}

// waitServing waits until the app answers on its control socket.
func (d appDirs) waitServing(t *testing.T, p *proc) {
	t.Helper()
	cl := control.NewClient(d.sock)
	testwait.For(t, "the control API", func() bool {
		select {
		case <-p.done:
			t.Fatalf("vmnetbar exited early (code %d); stderr:\n%s", p.code, p.stderr.String())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := cl.Overview(ctx)
		return err == nil
	})
}

// statusLines reads headless status lines from r into a channel.
func statusLines(p *proc) <-chan string {
	ch := make(chan string, 100)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(p.stdout)
		for sc.Scan() {
			select {
			case ch <- sc.Text():
			default: // the test reads only the first lines
			}
		}
	}()
	return ch
}

var statusLineRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ vm=\w+ link=\w+ reconnects=\d+ tx=\S+ rx=\S+ drops=\d+`)

// TestRunWithoutConfig: the first headless launch writes a commented
// starter file, names it and exits 1; it never overwrites the file.
func TestRunWithoutConfig(t *testing.T) {
	d := isolate(t)
	r := runCLI(t, "run", "--headless")
	if r.code != ExitFailure || !strings.Contains(r.stderr, "no VM configured: edit "+d.configFile+" (set vm.image") {
		t.Fatalf("exit %d, want %d naming the file; stderr: %s", r.code, ExitFailure, r.stderr)
	}
	starter, err := os.ReadFile(d.configFile)
	if err != nil || !strings.Contains(string(starter), "kernel:") {
		t.Fatalf("no starter file at %s (%v):\n%s", d.configFile, err, starter)
	}
	if fi, _ := os.Stat(d.configFile); fi.Mode().Perm() != 0o600 {
		t.Errorf("starter file mode %v", fi.Mode())
	}
	if !strings.Contains(r.stderr, "wrote a starter configuration") {
		t.Errorf("the starter file was not announced: %s", r.stderr)
	}
	edited := append(starter, []byte("# mine\n")...)
	if err := os.WriteFile(d.configFile, edited, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := runCLI(t, "run", "--headless"); r.code != ExitFailure || strings.Contains(r.stderr, "wrote a starter") {
		t.Fatalf("second launch: exit %d, stderr %s", r.code, r.stderr)
	}
	if got, _ := os.ReadFile(d.configFile); string(got) != string(edited) {
		t.Fatal("the second launch rewrote the configuration file")
	}
	other := filepath.Join(d.root, "other.yaml")
	r = runCLI(t, "run", "--headless", "--config", other)
	if r.code != ExitUsage || !strings.Contains(r.stderr, other) {
		t.Fatalf("--config: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestRunBadInput(t *testing.T) {
	d := isolate(t)
	d.writeConfig(t, "vm:\n  kernel: /nonexistent/vmlinuz\n  memroy: 1GiB\n")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"run", "extra"}, `unexpected argument "extra"`},
		{[]string{"run", "--log-level", "loud"}, `unknown --log-level "loud"`},
		{[]string{"run", "--headless"}, `config ` + d.configFile + `: line 3: unknown key "vm.memroy" in vm`},
		{[]string{"--headless"}, `unknown key "vm.memroy"`},
	}
	for _, tt := range tests {
		r := runCLI(t, tt.args...)
		if r.code != ExitUsage || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("vmnetbar %s: exit %d, stderr %q; want %d and %q", strings.Join(tt.args, " "), r.code, r.stderr, ExitUsage, tt.want)
		}
	}
}

func TestRunHeadlessSingleInstanceAndSIGTERM(t *testing.T) {
	d := isolate(t)
	d.idleConfig(t)
	p := startCLI(t, nil, true, "run", "--headless")
	lines := statusLines(p)
	d.waitServing(t, p)

	select {
	case l := <-lines:
		if !statusLineRE.MatchString(l) || !strings.Contains(l, "vm=stopped link=stopped") {
			t.Fatalf("first status line %q", l)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no status line on stdout")
	}

	// One instance per user, wherever the control socket would be: also
	// with XDG_RUNTIME_DIR unset, which moves the control socket.
	for _, env := range [][]string{nil, {"XDG_RUNTIME_DIR="}} {
		r := runCLIEnv(t, env, "run", "--headless")
		want := fmt.Sprintf("vmnetbar: already running for this user (pid %d holds %s)", p.cmd.Process.Pid, filepath.Join(d.root, "s", "vmnetbar", "vmnetbar.lock"))
		if r.code != ExitFailure || !strings.Contains(r.stderr, want) {
			t.Fatalf("second instance (env %q): exit %d, stderr %q, want %q", env, r.code, r.stderr, want)
		}
	}
	if log, _ := os.ReadFile(d.logFile); !strings.Contains(string(log), "vmnetbar did not start: already running for this user") {
		t.Errorf("the refused second instance is not in the log file:\n%s", log)
	}
	// The status client reaches the running app through the same paths.
	r := runCLI(t, "status", "--json")
	var st model.VMStatus
	if r.code != ExitOK || json.Unmarshal([]byte(r.stdout), &st) != nil || st.VM.State != vmhost.StateStopped {
		t.Fatalf("status --json: exit %d, %q", r.code, r.stdout)
	}
	// The configuration got its MAC written back.
	cfg, _ := os.ReadFile(d.configFile)
	if !regexp.MustCompile(`mac: "([0-9a-f]{2}:){5}[0-9a-f]{2}"`).Match(cfg) {
		t.Fatalf("no generated MAC in the configuration:\n%s", cfg)
	}

	if _, code := p.signal(t, syscall.SIGTERM); code != ExitOK {
		t.Fatalf("exit %d after SIGTERM; stderr:\n%s", code, p.stderr.String())
	}
	if _, err := os.Stat(d.sock); !os.IsNotExist(err) {
		t.Errorf("control socket left behind: %v", err)
	}
	if log, err := os.ReadFile(d.logFile); err != nil || !strings.Contains(string(log), "vmnetbar stopped") {
		t.Errorf("log file %s: %v\n%s", d.logFile, err, log)
	}
	// Once it has stopped, a new instance may run.
	p2 := startCLI(t, nil, false, "run", "--headless")
	d.waitServing(t, p2)
	if _, code := p2.signal(t, syscall.SIGINT); code != ExitOK {
		t.Fatalf("exit %d after SIGINT; stderr:\n%s", code, p2.stderr.String())
	}
}

func TestTrayFallsBackToHeadless(t *testing.T) {
	d := isolate(t)
	d.idleConfig(t)
	p := startCLI(t, nil, true) // plain "vmnetbar"
	lines := statusLines(p)
	d.waitServing(t, p)
	select {
	case l := <-lines:
		if !statusLineRE.MatchString(l) {
			t.Fatalf("status line %q", l)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no status line on stdout")
	}
	// stderr is copied by its own goroutine: it may lag behind stdout.
	testwait.For(t, "the log line saying the tray is unavailable", func() bool {
		return strings.Contains(p.stderr.String(), "no tray available (no D-Bus session bus") &&
			strings.Contains(p.stderr.String(), "running headless")
	})
	if _, code := p.signal(t, syscall.SIGTERM); code != ExitOK {
		t.Fatalf("exit %d after SIGTERM; stderr:\n%s", code, p.stderr.String())
	}
	if n := strings.Count(p.stderr.String(), "no tray available"); n != 1 {
		t.Fatalf("the fallback was logged %d times", n)
	}
}

// TestRunGuest boots the test guest under QEMU through the whole app: the
// VM reaches running, the link comes up and carries the guest's pings to
// the test daemon, survives a daemon crash, and the app stops the VM.
func TestRunGuest(t *testing.T) {
	d, daemon, console := guestApp(t, testguest.Options{Forever: true, Interval: 200 * time.Millisecond}, true)

	p := startCLI(t, nil, true, "run", "--headless", "--log-level", "debug")
	lines := statusLines(p)
	d.waitServing(t, p)
	cl := control.NewClient(d.sock)
	waitStatus := func(what string, cond func(model.VMStatus) bool) model.VMStatus {
		t.Helper()
		var last model.VMStatus
		read := testwait.ValueEvery(t, 90*time.Second, 50*time.Millisecond, what,
			func() statusRead {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				st, err := cl.VM(ctx, "")
				if err == nil {
					last = st
				}
				return statusRead{st: last, fresh: err == nil, stderr: p.stderr}
			},
			func(r statusRead) bool { return r.fresh && cond(r.st) })
		return read.st
	}
	waitStatus("VM running, link up", func(st model.VMStatus) bool {
		return st.VM.State == vmhost.StateRunning && st.Link.State == netlink.StateUp
	})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if _, err := testguest.WaitLog(ctx, console, p.done, "pings through the link", func(l testguest.Log) bool { return l.OKPings() >= 2 }); err != nil {
		t.Fatalf("%v; stderr:\n%s", err, p.stderr.String())
	}

	// The address the link learned is the one the guest's DHCP client got.
	lease, _ := testguest.ReadLog(console)
	if ip := runCLI(t, "ip", "--wait", "30s"); ip.code != ExitOK || ip.stdout != strings.Split(lease.Addr, "/")[0]+"\n" {
		t.Fatalf("vmnetbar ip: exit %d, %q (stderr %q); the guest's lease is %q", ip.code, ip.stdout, ip.stderr, lease.Addr)
	}

	r := runCLI(t, "status", "--json")
	var st model.VMStatus
	if err := json.Unmarshal([]byte(r.stdout), &st); r.code != ExitOK || err != nil {
		t.Fatalf("status --json: exit %d, %v: %q", r.code, err, r.stdout)
	}
	if st.VM.State != vmhost.StateRunning || st.Link.State != netlink.StateUp || st.Link.TxFrames == 0 || st.Link.RxFrames == 0 {
		t.Fatalf("status --json shows VM %+v link %+v", st.VM, st.Link)
	}

	// The daemon crashes and comes back: the link reconnects by itself
	// and the guest's pings go on.
	before, _ := testguest.ReadLog(console)
	if err := daemon.Kill(); err != nil {
		t.Fatal(err)
	}
	waitStatus("the link back up after the daemon restarted", func(st model.VMStatus) bool {
		return st.Link.State == netlink.StateUp && st.Link.Reconnects >= 1
	})
	if _, err := testguest.WaitLog(ctx, console, p.done, "pings after the daemon restart", func(l testguest.Log) bool {
		return l.OKPings() >= before.OKPings()+2
	}); err != nil {
		t.Fatalf("%v; stderr:\n%s", err, p.stderr.String())
	}

	// Stop through the control API: the guest powers off, the link stops.
	if r := runCLI(t, "stop"); r.code != ExitOK {
		t.Fatalf("stop: exit %d, %s", r.code, r.stderr)
	}
	waitStatus("VM stopped", func(st model.VMStatus) bool {
		return st.VM.State == vmhost.StateStopped && st.Link.State == netlink.StateStopped
	})
	if r := runCLI(t, "stop"); r.code != ExitFailure || !strings.Contains(r.stderr, "cannot stop default: it is stopped") {
		t.Fatalf("second stop: exit %d, %q", r.code, r.stderr)
	}
	if _, code := p.signal(t, syscall.SIGTERM); code != ExitOK {
		t.Fatalf("exit %d after SIGTERM; stderr:\n%s", code, p.stderr.String())
	}
	var got []string
	for l := range lines {
		got = append(got, l)
	}
	joined := strings.Join(got, "\n")
	for _, want := range []string{"vm=starting", "vm=running link=up", "vm=stopped link=stopped"} {
		if !strings.Contains(joined, want) {
			t.Errorf("status lines lack %q:\n%s", want, joined)
		}
	}
}

// TestRunGuestSurvivesHangupAndClosedOutput is the hostile user's run:
// a headless app piped into `head -1` (standard output closed after the
// first line), a terminal hangup (SIGHUP to the whole process group) and a
// daemon restart while nobody reads: the guest keeps running and pinging.
// Then SIGTERM twice: the second changes nothing, the guest still powers
// off gracefully and the app exits 0.
func TestRunGuestSurvivesHangupAndClosedOutput(t *testing.T) {
	d, daemon, console := guestApp(t, testguest.Options{Forever: true, Interval: 200 * time.Millisecond}, true)
	p := startCLI(t, nil, true, "run", "--headless")
	first := bufio.NewReader(p.stdout)
	if _, err := first.ReadString('\n'); err != nil {
		t.Fatalf("no first status line: %v; stderr:\n%s", err, p.stderr.String())
	}
	p.stdout.Close() // head -1 exits
	d.waitServing(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if _, err := testguest.WaitLog(ctx, console, p.done, "the guest ready and pinging", func(l testguest.Log) bool {
		return l.ACPID && l.Ready && l.OKPings() >= 1
	}); err != nil {
		t.Fatalf("%v; stderr:\n%s", err, p.stderr.String())
	}

	p.signalGroup(t, syscall.SIGHUP)
	// A status change makes the app write to the closed standard output.
	if err := daemon.Kill(); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "the app to notice its closed standard output", func() bool {
		return strings.Contains(p.stderr.String(), "standard output is closed")
	})
	testwait.For(t, "the SIGHUP log line", func() bool {
		return strings.Contains(p.stderr.String(), "SIGHUP: reloading the configuration")
	})
	before, _ := testguest.ReadLog(console)
	if _, err := testguest.WaitLog(ctx, console, p.done, "pings after the hangup and the daemon restart", func(l testguest.Log) bool {
		return l.OKPings() >= before.OKPings()+2
	}); err != nil {
		t.Fatalf("%v; stderr:\n%s", err, p.stderr.String())
	}
	if l, _ := testguest.ReadLog(console); l.Boots != 1 || l.PowerOff != "" {
		t.Fatalf("the guest was disturbed: %s", l.Summary())
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "the graceful stop to begin", func() bool { return strings.Contains(p.stderr.String(), "SIGTERM: stopping the VM gracefully") })
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if p.wait(t, 60*time.Second); p.code != ExitOK {
		t.Fatalf("exit %d after SIGTERM twice; stderr:\n%s", p.code, p.stderr.String())
	}
	if !strings.Contains(p.stderr.String(), "already stopping the VM gracefully") {
		t.Errorf("the second SIGTERM was not logged:\n%s", p.stderr.String())
	}
	if l, _ := testguest.ReadLog(console); l.PowerOff == "" {
		t.Fatalf("the guest did not power off cleanly: %s", l.Summary())
	}
	if strings.Contains(p.stderr.String(), "killing QEMU") {
		t.Fatalf("the VM was forced off:\n%s", p.stderr.String())
	}
}

// TestRunSurvivesClosedOutputAndSignals: without a guest, every signal a
// terminal or a careless user sends (SIGHUP and SIGPIPE to the process
// group) and a closed standard output leave the app serving; standard
// error closing too only moves the log to the file.
func TestRunSurvivesClosedOutputAndSignals(t *testing.T) {
	d := isolate(t)
	d.idleConfig(t)
	p := startCLI(t, nil, true, "run", "--headless")
	if _, err := bufio.NewReader(p.stdout).ReadString('\n'); err != nil {
		t.Fatalf("no first status line: %v", err)
	}
	p.stdout.Close()
	d.waitServing(t, p)
	p.signalGroup(t, syscall.SIGHUP)
	p.signalGroup(t, syscall.SIGPIPE)
	// A failing start changes the status: a line is written to the
	// closed standard output.
	runCLI(t, "start")
	testwait.For(t, "the app to notice its closed standard output", func() bool {
		return strings.Contains(p.stderr.String(), "standard output is closed")
	})
	if r := runCLI(t, "status", "--json"); r.code != ExitOK || !p.running() {
		t.Fatalf("after SIGHUP, SIGPIPE and a closed stdout: status exit %d, app running %v; stderr:\n%s", r.code, p.running(), p.stderr.String())
	}
	// kill -SEGV from another process is a request to end, not a crash:
	// the app stops gracefully and exits 0.
	if _, code := p.signal(t, syscall.SIGSEGV); code != ExitOK || !strings.Contains(p.stderr.String(), "SIGSEGV: stopping the VM gracefully") {
		t.Fatalf("exit %d after SIGSEGV; stderr:\n%s", code, p.stderr.String())
	}
}

// TestRunAfterCrash checks that a control socket left by a killed instance
// does not keep the next one from running.
func TestRunAfterCrash(t *testing.T) {
	d := isolate(t)
	d.idleConfig(t)
	p := startCLI(t, nil, false, "run", "--headless")
	d.waitServing(t, p)
	p.signal(t, syscall.SIGKILL)
	if _, err := os.Lstat(d.sock); err != nil {
		t.Fatalf("the killed instance left no socket to test with: %v", err)
	}
	p2 := startCLI(t, nil, false, "run", "--headless")
	d.waitServing(t, p2)
	if _, code := p2.signal(t, syscall.SIGTERM); code != ExitOK {
		t.Fatalf("exit %d after SIGTERM; stderr:\n%s", code, p2.stderr.String())
	}
}

// TestRunRefusesAVMThatCannotStart: what the host can check before anything
// starts (CPUs, memory, the kernel file) is refused at launch with exit 2,
// naming the file, the line and the key, instead of an app that runs with
// the VM in error.
func TestRunRefusesAVMThatCannotStart(t *testing.T) {
	for _, tc := range []struct{ name, vm, want string }{
		{"cpus", "  cpus: 64\n", "line 3: vm.cpus is 64"},
		{"memory", "  memory: 65536GiB\n", "line 3: vm.memory is 64TiB"},
		{"empty kernel", "", "vm.kernel"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := isolate(t)
			kernel := filepath.Join(d.root, "vmlinuz")
			content := []byte("not a kernel")
			if tc.name == "empty kernel" {
				content = nil
			}
			if err := os.WriteFile(kernel, content, 0o600); err != nil {
				t.Fatal(err)
			}
			d.writeConfig(t, fmt.Sprintf("vm:\n  kernel: %s\n%snetwork:\n  socket: %s\nautostart_vm: false\n",
				kernel, tc.vm, filepath.Join(d.root, "daemon.sock")))
			r := runCLI(t, "run", "--headless")
			if r.code != ExitUsage || !strings.Contains(r.stderr, d.configFile) || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit 2 naming %s and %q", r.code, r.stderr, d.configFile, tc.want)
			}
			if _, err := os.Stat(d.sock); err == nil {
				t.Fatal("the refused app left a control socket")
			}
		})
	}
}

// TestStartReadsTheConfigurationAgain: 'vmnetbar start' uses the
// configuration file as it is now, so "fix it, then start" works without
// restarting the app, and a file broken meanwhile is reported by the start.
func TestStartReadsTheConfigurationAgain(t *testing.T) {
	d := isolate(t)
	d.idleConfig(t)
	p := startCLI(t, nil, false, "run", "--headless")
	d.waitServing(t, p)
	cfg, err := os.ReadFile(d.configFile)
	if err != nil {
		t.Fatal(err)
	}
	d.writeConfig(t, strings.Replace(string(cfg), "vm:\n", "vm:\n  cpus: 64\n", 1))
	r := runCLI(t, "start")
	if r.code != ExitFailure || !strings.Contains(r.stderr, "vm.cpus is 64") {
		t.Fatalf("start after the file changed: exit %d, stderr %q", r.code, r.stderr)
	}
	r = runCLI(t, "status", "--json")
	var st model.VMStatus
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.VM.State != vmhost.StateError || !strings.Contains(st.VM.Error, "vm.cpus is 64") {
		t.Fatalf("status after the refused start: %q (%v)", r.stdout, err)
	}
	if _, code := p.signal(t, syscall.SIGTERM); code != ExitOK {
		t.Fatalf("exit %d after SIGTERM; stderr:\n%s", code, p.stderr.String())
	}
}

// TestFirstLaunchWithTheMenu: plain vmnetbar without a configuration (here
// with no tray, so headless) writes the starter file and runs with the VM
// "not configured"; once the user sets vm.kernel, a start boots it without a
// restart of the app.
func TestFirstLaunchWithTheMenu(t *testing.T) {
	d := isolate(t)
	p := startCLI(t, nil, false)
	d.waitServing(t, p)
	r := runCLI(t, "status", "--json")
	var st model.VMStatus
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || !st.VM.NotConfigured || !strings.Contains(st.VM.Note, d.configFile) {
		t.Fatalf("status of the first launch: %q (%v)", r.stdout, err)
	}
	if r := runCLI(t, "status"); !strings.Contains(r.stdout, "not configured") {
		t.Errorf("status: %q", r.stdout)
	}
	if r := runCLI(t, "start"); r.code != ExitFailure || !strings.Contains(r.stderr, "no VM configured") {
		t.Fatalf("start before vm.kernel is set: exit %d, stderr %q", r.code, r.stderr)
	}
	d.idleConfig(t) // the user fills in the file
	runCLI(t, "start")
	r = runCLI(t, "status", "--json")
	st = model.VMStatus{}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.VM.NotConfigured || st.VM.State == vmhost.StateStopped {
		t.Fatalf("status after the start: %q (%v)", r.stdout, err)
	}
	if _, code := p.signal(t, syscall.SIGTERM); code != ExitOK {
		t.Fatalf("exit %d after SIGTERM; stderr:\n%s", code, p.stderr.String())
	}
}

// TestRunSeveralVMs: one app runs every VM of a vms: file; SIGHUP reloads
// the file (a VM added, one removed, a broken file changes nothing and
// says why), and commands need a NAME once there are several.
func TestRunSeveralVMs(t *testing.T) {
	d := isolate(t)
	kernel := filepath.Join(d.root, "vmlinuz")
	if err := os.WriteFile(kernel, []byte("not a kernel"), 0o600); err != nil {
		t.Fatal(err)
	}
	vm := func(name string) string {
		return fmt.Sprintf("  %s:\n    kernel: %s\n    autostart: false\n    network:\n      socket: %s\n", name, kernel, filepath.Join(d.root, "daemon.sock"))
	}
	d.writeConfig(t, "vms:\n"+vm("dev")+vm("build"))
	p := startCLI(t, nil, false, "run", "--headless")
	d.waitServing(t, p)
	names := func() string {
		t.Helper()
		r := runCLI(t, "list", "--json")
		var o model.Overview
		if r.code != ExitOK || json.Unmarshal([]byte(r.stdout), &o) != nil {
			t.Fatalf("list --json: exit %d, %q", r.code, r.stdout)
		}
		return strings.Join(o.Names(), ",")
	}
	if got := names(); got != "build,dev" {
		t.Fatalf("VMs %s, want build,dev", got)
	}
	if r := runCLI(t, "status"); r.code != ExitUsage || !strings.Contains(r.stderr, "build, dev") {
		t.Fatalf("status without a NAME among two: exit %d, %q", r.code, r.stderr)
	}
	if r := runCLI(t, "status", "dev", "--json"); r.code != ExitOK || !strings.Contains(r.stdout, `"name": "dev"`) {
		t.Fatalf("status dev --json: exit %d, %q", r.code, r.stdout)
	}

	// SIGHUP: build goes, test comes.
	d.writeConfig(t, "vms:\n"+vm("dev")+vm("test"))
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "the reload to add test and remove build", func() bool { return names() == "dev,test" })

	// A broken file changes nothing and says why.
	d.writeConfig(t, "vms:\n"+vm("dev")+"  Bad:\n    kernel: x\n")
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "the reload error in the status", func() bool {
		r := runCLI(t, "list", "--json")
		return strings.Contains(r.stdout, `"config_error"`) && strings.Contains(r.stdout, "vms.Bad")
	})
	if got := names(); got != "dev,test" {
		t.Fatalf("a broken file changed the VMs to %s", got)
	}
	if _, code := p.signal(t, syscall.SIGTERM); code != ExitOK {
		t.Fatalf("exit %d after SIGTERM; stderr:\n%s", code, p.stderr.String())
	}
}

// TestLaunchdSIGTERMUsesTheLogoutTimeout: as a launchd job (the login
// item), SIGTERM means the session ends: the app stops with
// logout_stop_timeout, and still exits 0.
func TestLaunchdSIGTERMUsesTheLogoutTimeout(t *testing.T) {
	d := isolate(t)
	d.idleConfig(t)
	t.Setenv("XPC_SERVICE_NAME", "io.github.vmnetbar")
	p := startCLI(t, nil, false, "run", "--headless")
	d.waitServing(t, p)
	if _, code := p.signal(t, syscall.SIGTERM); code != ExitOK || !strings.Contains(p.stderr.String(), "the system is ending vmnetbar") {
		t.Fatalf("exit %d after launchd's SIGTERM; stderr:\n%s", code, p.stderr.String())
	}
}

// statusRead is one read of a VM's status by a wait, shown when the wait
// fails: the last status read, and the app's standard error.
type statusRead struct {
	st     model.VMStatus
	fresh  bool // st was read now (a failed request leaves the last one)
	stderr *testbin.Buffer
}

func (r statusRead) String() string {
	return fmt.Sprintf("status %+v %+v; stderr:\n%s", r.st.VM, r.st.Link, r.stderr.String())
}
