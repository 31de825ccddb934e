package bridgenet

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The network inside every namespace (only there: each Net has its own).
const (
	Bridge  = "br0"
	TAP     = "tap0"
	Gateway = "192.168.105.1"
	Prefix  = 24
	// DHCP pool handed out by dnsmasq.
	RangeStart = "192.168.105.10"
	RangeEnd   = "192.168.105.200"
)

// NamePrefix starts the name of every namespace New makes:
// vmnb-<pid of the test process>-<random>. A namespace with this prefix
// whose process is gone is stale and removed by the next New.
const NamePrefix = "vmnb-"

// Net is one private network with its switch. Its methods may be called
// from any goroutine.
type Net struct {
	name      string
	dir       string // holds the switch socket (short path: sun_path is 108 bytes)
	sock      string
	leaseFile string
	logDir    string
	qemu      string

	mu       sync.Mutex
	sw       *proc // the switch; nil while killed
	lastSw   *proc // the switch that ran last, for Diagnose
	dnsmasq  *proc
	closed   bool
	created  bool  // the namespace exists
	crashes  int   // switch exits that were not KillSwitch or Close
	crashErr error // why restarting a crashed switch failed
	watchers sync.WaitGroup
}

// proc is a child process and its exit.
type proc struct {
	cmd    *exec.Cmd
	done   chan struct{}
	err    error // set before done is closed
	output *bytes.Buffer
}

// ErrMissing is wrapped by the errors of Check when something New needs is not
// there (not root, a tool not installed).
var ErrMissing = errors.New("bridgenet needs")

// Check reports whether New can work here: root and the tools.
func Check() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w root: it makes a network namespace with a bridge and a TAP device (run the tests as root)", ErrMissing)
	}
	for _, t := range []struct{ bin, pkg string }{
		{"ip", "iproute2"},
		{"dnsmasq", "dnsmasq-base"},
		{"qemu-system-x86_64", "qemu-system-x86"},
	} {
		if _, err := lookPath(t.bin); err != nil {
			return fmt.Errorf("%w %s (apt-get install %s)", ErrMissing, t.bin, t.pkg)
		}
	}
	return nil
}

// lookPath finds bin on PATH or in the sbin directories, which a root
// shell's PATH may lack.
func lookPath(bin string) (string, error) {
	if p, err := exec.LookPath(bin); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p := filepath.Join(d, bin)
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", bin)
}

// SkipOrFatal ends the test because of err: a skip when err wraps ErrMissing
// and CI is not "true", a failure otherwise.
func SkipOrFatal(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, ErrMissing) && os.Getenv("CI") != "true" {
		t.Skip(err)
	}
	t.Fatal(err)
}

// New makes the namespace, bridge, TAP, dnsmasq and switch, and registers a
// cleanup that removes all of it (also when the test fails). Stale
// namespaces of earlier runs that were killed are removed first.
func New(t testing.TB) *Net {
	t.Helper()
	if err := Check(); err != nil {
		SkipOrFatal(t, err)
	}
	if err := RemoveStale(); err != nil {
		t.Logf("bridgenet: removing stale namespaces: %v", err)
	}
	qemu, _ := lookPath("qemu-system-x86_64")
	if p := os.Getenv("VMNETBAR_QEMU"); p != "" {
		qemu = p
	}
	dir, err := os.MkdirTemp("", "vmnb-sw-")
	if err != nil {
		t.Fatal(err)
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	n := &Net{
		name:   fmt.Sprintf("%s%d-%s", NamePrefix, os.Getpid(), hex.EncodeToString(rnd[:])),
		dir:    dir,
		sock:   filepath.Join(dir, "switch.sock"),
		logDir: t.TempDir(),
		qemu:   qemu,
	}
	n.leaseFile = filepath.Join(n.logDir, "dnsmasq.leases")
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("bridgenet cleanup: %v", err)
		}
	})
	if err := n.setup(); err != nil {
		t.Fatalf("bridgenet: %v", err)
	}
	return n
}

func (n *Net) setup() error {
	if err := run("ip", "netns", "add", n.name); err != nil {
		return err
	}
	n.mu.Lock()
	n.created = true
	n.mu.Unlock()
	steps := [][]string{
		// No IPv6: the bridge then sends nothing on its own (router
		// solicitations, MLD), which QEMU 7.2's switch can crash on while it
		// has no client (see StartSwitch).
		{"sh", "-c", "echo 1 >/proc/sys/net/ipv6/conf/all/disable_ipv6 && echo 1 >/proc/sys/net/ipv6/conf/default/disable_ipv6"},
		{"ip", "link", "set", "lo", "up"},
		{"ip", "link", "add", Bridge, "type", "bridge"},
		{"ip", "tuntap", "add", "dev", TAP, "mode", "tap"},
		{"ip", "link", "set", TAP, "master", Bridge},
		{"ip", "link", "set", TAP, "up"},
		{"ip", "addr", "add", fmt.Sprintf("%s/%d", Gateway, Prefix), "dev", Bridge},
		{"ip", "link", "set", Bridge, "up"},
	}
	for _, s := range steps {
		if err := run(n.inNS(s...)...); err != nil {
			return err
		}
	}
	if err := n.startDnsmasq(); err != nil {
		return err
	}
	return n.StartSwitch()
}

// inNS prefixes args with "ip netns exec NAME".
func (n *Net) inNS(args ...string) []string {
	return append([]string{"ip", "netns", "exec", n.name}, args...)
}

func run(args ...string) error {
	bin, err := lookPath(args[0])
	if err != nil {
		return err
	}
	out, err := exec.Command(bin, args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// start runs args (already prefixed for the namespace) as a child that dies
// with the test process.
func start(args []string) (*proc, error) {
	bin, err := lookPath(args[0])
	if err != nil {
		return nil, err
	}
	p := &proc{cmd: exec.Command(bin, args[1:]...), done: make(chan struct{}), output: new(bytes.Buffer)}
	p.cmd.Stdout = &syncWriter{b: p.output}
	p.cmd.Stderr = p.cmd.Stdout
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", strings.Join(args, " "), err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// kill sends SIGKILL and waits for the exit.
func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) describe() string {
	return fmt.Sprintf("%v; output: %s", p.err, strings.TrimSpace(p.out()))
}

func (p *proc) out() string {
	w := p.cmd.Stdout.(*syncWriter)
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

type syncWriter struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (w *syncWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(b)
}

func (n *Net) startDnsmasq() error {
	logFile := filepath.Join(n.logDir, "dnsmasq.log")
	p, err := start(n.inNS("dnsmasq",
		"--keep-in-foreground",
		"--conf-file=/dev/null",
		"--port=0", // DHCP only: no DNS
		"--interface="+Bridge, "--bind-interfaces",
		"--except-interface=lo",
		"--dhcp-range="+RangeStart+","+RangeEnd+",255.255.255.0,1h",
		"--dhcp-authoritative",
		"--dhcp-leasefile="+n.leaseFile,
		"--pid-file=",
		"--user=root",
		"--no-resolv", "--no-hosts",
		"--log-dhcp",
		"--log-facility="+logFile,
	))
	if err != nil {
		return err
	}
	n.dnsmasq = p
	// Ready once it has logged its DHCP range.
	err = poll(10*time.Second, func() (bool, error) {
		if p.exited() {
			return false, fmt.Errorf("dnsmasq exited: %s", p.describe())
		}
		b, _ := os.ReadFile(logFile)
		return bytes.Contains(b, []byte("DHCP, IP range")), nil
	})
	if err != nil {
		return fmt.Errorf("dnsmasq: %w", err)
	}
	return nil
}

// poll calls f until it returns true or an error, or d passes.
func poll(d time.Duration, f func() (bool, error)) error {
	deadline := time.Now().Add(d)
	for {
		ok, err := f()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready within %v", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Name is the network namespace's name.
func (n *Net) Name() string { return n.name }

// Socket is the switch's UNIX socket path, in the host's file system:
// dial it as socket_vmnet's socket.
func (n *Net) Socket() string { return n.sock }

// LogDir holds dnsmasq's log and lease file.
func (n *Net) LogDir() string { return n.logDir }

// StartSwitch starts the switch when it is not running and returns once its
// socket exists and it has the TAP open.
//
// QEMU 7.2's stream server (Debian 12) can crash (SIGSEGV) when a frame
// reaches it while no client is connected. The switch is therefore
// supervised, as launchd's KeepAlive supervises socket_vmnet: when it exits
// by itself it is started again at once, and SwitchCrashes counts it.
func (n *Net) StartSwitch() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.startSwitchLocked()
}

func (n *Net) startSwitchLocked() error {
	if n.closed {
		return errors.New("bridgenet: the network was closed")
	}
	if n.sw != nil && !n.sw.exited() {
		return nil
	}
	// A killed switch leaves its socket file; remove it so that a client
	// finds no socket (or a refusing one) until the new switch is ready.
	if err := os.Remove(n.sock); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("bridgenet: removing the old switch socket: %w", err)
	}
	// The new switch listens on a name of its own and its socket is
	// renamed into place once it has the TAP open: a client never reaches
	// a switch that is still starting (QEMU resets connections it accepts
	// then), as socket_vmnet's socket appears only when it serves.
	starting := n.sock + ".starting"
	_ = os.Remove(starting)
	p, err := start(n.inNS(n.qemu,
		"-machine", "none", "-nodefaults", "-display", "none", "-no-user-config",
		"-netdev", "tap,id=tp,ifname="+TAP+",script=no,downscript=no",
		"-netdev", "stream,id=sw,server=on,addr.type=unix,addr.path="+starting,
		"-netdev", "hubport,id=h0,hubid=0,netdev=sw",
		"-netdev", "hubport,id=h1,hubid=0,netdev=tp",
	))
	if err != nil {
		return fmt.Errorf("bridgenet: switch: %w", err)
	}
	n.sw, n.lastSw = p, p
	err = poll(15*time.Second, func() (bool, error) {
		if p.exited() {
			return false, fmt.Errorf("the switch (QEMU) exited: %s", p.describe())
		}
		st, err := os.Lstat(starting)
		if err != nil || st.Mode()&os.ModeSocket == 0 {
			return false, nil
		}
		// QEMU has the TAP open: it has carrier.
		out, err := exec.Command(ipBin(), "netns", "exec", n.name, "cat", "/sys/class/net/"+TAP+"/carrier").Output()
		return err == nil && strings.TrimSpace(string(out)) == "1", nil
	})
	if err == nil {
		err = os.Rename(starting, n.sock)
	}
	if err != nil {
		n.sw = nil
		p.kill()
		return fmt.Errorf("bridgenet: switch: %w", err)
	}
	n.watchers.Add(1)
	go n.watch(p)
	return nil
}

// watch restarts the switch p when it exits by itself.
func (n *Net) watch(p *proc) {
	defer n.watchers.Done()
	<-p.done
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed || n.sw != p {
		return // killed on purpose
	}
	n.crashes++
	n.sw = nil
	if err := n.startSwitchLocked(); err != nil {
		n.crashErr = fmt.Errorf("restarting the switch after it exited (%s): %w", p.describe(), err)
	}
}

// SwitchCrashes counts the times the switch exited by itself and was
// started again; the error says why the last restart failed, if it did.
func (n *Net) SwitchCrashes() (int, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.crashes, n.crashErr
}

// Diagnose describes the network's state for a failing test's message:
// the switch and dnsmasq processes (exit status and output when they
// ended), the links in the namespace and dnsmasq's log.
func (n *Net) Diagnose() string {
	var b strings.Builder
	n.mu.Lock()
	for _, x := range []struct {
		name string
		p    *proc
	}{{"switch", n.lastSw}, {"dnsmasq", n.dnsmasq}} {
		switch {
		case x.p == nil:
			fmt.Fprintf(&b, "%s: not started\n", x.name)
		case x.p.exited():
			fmt.Fprintf(&b, "%s: pid %d exited: %s\n", x.name, x.p.cmd.Process.Pid, x.p.describe())
		default:
			fmt.Fprintf(&b, "%s: pid %d running; output: %s\n", x.name, x.p.cmd.Process.Pid, strings.TrimSpace(x.p.out()))
		}
	}
	n.mu.Unlock()
	for _, args := range [][]string{{"ip", "-s", "link"}, {"bridge", "link"}, {"ip", "neigh"}} {
		out, err := n.Exec(context.Background(), args...).CombinedOutput()
		fmt.Fprintf(&b, "%s (%v):\n%s\n", strings.Join(args, " "), err, out)
	}
	log, _ := os.ReadFile(filepath.Join(n.logDir, "dnsmasq.log"))
	fmt.Fprintf(&b, "dnsmasq log:\n%s", log)
	return b.String()
}

// KillSwitch kills the switch with SIGKILL, as a crash of socket_vmnet,
// and waits for it to exit. Its clients see the connection end; the TAP,
// bridge and leases stay. A no-op when it is not running.
func (n *Net) KillSwitch() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if p := n.sw; p != nil {
		n.sw = nil // before the kill: its watcher must not restart it
		p.kill()
	}
	return nil
}

// RestartSwitch kills the switch (SIGKILL) and starts it again at once on
// the same socket path.
func (n *Net) RestartSwitch() error {
	if err := n.KillSwitch(); err != nil {
		return err
	}
	return n.StartSwitch()
}

// SwitchPid is the running switch's process id, 0 when it is not running.
func (n *Net) SwitchPid() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.sw == nil || n.sw.exited() {
		return 0
	}
	return n.sw.cmd.Process.Pid
}

// Exec returns a command that runs args inside the namespace (for ping, ssh
// and the like). The caller runs and waits for it; Close kills whatever
// still runs in the namespace.
func (n *Net) Exec(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, ipBin(), append([]string{"netns", "exec", n.name}, args...)...)
}

func ipBin() string {
	if p, err := lookPath("ip"); err == nil {
		return p
	}
	return "ip"
}

// Leases returns dnsmasq's current leases: MAC (lower case, colons) → IPv4.
func (n *Net) Leases() (map[string]string, error) {
	return readLeases(n.leaseFile)
}

func readLeases(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("bridgenet: reading the lease file: %w", err)
	}
	return parseLeases(b), nil
}

// parseLeases reads dnsmasq's lease file: one "expiry MAC IP hostname
// client-id" line per lease (DHCPv6 lines, after "duid", are skipped).
func parseLeases(b []byte) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || f[0] == "duid" {
			continue
		}
		if _, err := strconv.ParseInt(f[0], 10, 64); err != nil {
			continue
		}
		hw, err := net.ParseMAC(f[1])
		ip := net.ParseIP(f[2])
		if err != nil || ip == nil || ip.To4() == nil {
			continue
		}
		m[hw.String()] = ip.String()
	}
	return m
}

// WaitLease waits until dnsmasq has leased an address to mac and returns it.
func (n *Net) WaitLease(ctx context.Context, mac string) (string, error) {
	hw, err := net.ParseMAC(mac)
	if err != nil {
		return "", fmt.Errorf("bridgenet: %w", err)
	}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		m, err := n.Leases()
		if err != nil {
			return "", err
		}
		if ip, ok := m[hw.String()]; ok {
			return ip, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("bridgenet: waiting for a DHCP lease for %s: %w (leases: %v)", hw, ctx.Err(), m)
		case <-t.C:
		}
	}
}

// Close kills the switch, dnsmasq and anything else running in the
// namespace, and deletes the namespace (and with it the bridge and TAP).
// New registers it as a cleanup; calling it again does nothing.
func (n *Net) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	for _, p := range []*proc{n.sw, n.dnsmasq} {
		if p != nil {
			p.kill()
		}
	}
	n.sw, n.dnsmasq = nil, nil
	created := n.created
	n.mu.Unlock()
	n.watchers.Wait()
	var err error
	if created {
		err = removeNS(n.name)
	}
	if rerr := os.RemoveAll(n.dir); rerr != nil && err == nil {
		err = rerr
	}
	return err
}

// removeNS kills every process in the namespace and deletes it.
func removeNS(name string) error {
	if err := killNSPids(name); err != nil {
		return err
	}
	return run("ip", "netns", "del", name)
}

func killNSPids(name string) error {
	ip, err := lookPath("ip")
	if err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := exec.Command(ip, "netns", "pids", name).Output()
		if err != nil {
			return fmt.Errorf("ip netns pids %s: %v", name, err)
		}
		pids := strings.Fields(string(out))
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v in namespace %s do not exit after SIGKILL", pids, name)
		}
		for _, s := range pids {
			if pid, err := strconv.Atoi(s); err == nil && pid > 0 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Namespaces lists the network namespaces whose names start with
// NamePrefix.
func Namespaces() ([]string, error) {
	ip, err := lookPath("ip")
	if err != nil {
		return nil, err
	}
	out, err := exec.Command(ip, "netns", "list").Output()
	if err != nil {
		return nil, fmt.Errorf("ip netns list: %v", err)
	}
	var names []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 0 && strings.HasPrefix(f[0], NamePrefix) {
			names = append(names, f[0])
		}
	}
	return names, nil
}

// ownerPid is the test process that made the namespace, from its name.
func ownerPid(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, NamePrefix)
	if !ok {
		return 0, false
	}
	s, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	pid, err := strconv.Atoi(s)
	return pid, err == nil && pid > 0
}

// RemoveStale deletes the namespaces of earlier runs whose test process is
// gone (killed before its cleanup ran), with whatever still runs in them.
// Namespaces of live processes (other tests running now) are left alone.
func RemoveStale() error {
	names, err := Namespaces()
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range names {
		pid, ok := ownerPid(name)
		if !ok || pid == os.Getpid() || alive(pid) {
			continue
		}
		if err := removeNS(name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
