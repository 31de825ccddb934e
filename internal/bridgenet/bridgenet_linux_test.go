package bridgenet_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vmnetbar/vmnetbar/internal/bridgenet"
	"github.com/vmnetbar/vmnetbar/internal/testguest"
	"github.com/vmnetbar/vmnetbar/internal/testwait"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestParseLeases(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "leases")
	data := "1767225600 52:54:00:AB:cd:01 192.168.105.23 guest 01:52:54:00:ab:cd:01\n" +
		"1767225601 52:54:00:ab:cd:02 192.168.105.24 * *\n" +
		"duid 00:01:00:01:2c:aa\n" +
		"garbage line\n" +
		"1767225602 not-a-mac 192.168.105.25 * *\n"
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := bridgenet.ReadLeases(p)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"52:54:00:ab:cd:01": "192.168.105.23", "52:54:00:ab:cd:02": "192.168.105.24"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("leases = %v, want %v", got, want)
	}
	got, err = bridgenet.ReadLeases(filepath.Join(dir, "none"))
	if err != nil || len(got) != 0 {
		t.Fatalf("missing lease file: %v, %v; want no leases and no error", got, err)
	}
}

func TestOwnerPid(t *testing.T) {
	for name, want := range map[string]int{
		"vmnb-123-abcd": 123,
		"vmnb-123":      0,
		"vmnb-x-abcd":   0,
		"other-123-ab":  0,
		"vmnb-0-ab":     0,
	} {
		got, ok := bridgenet.OwnerPid(name)
		if got != want || ok != (want != 0) {
			t.Errorf("OwnerPid(%q) = %d, %v; want %d", name, got, ok, want)
		}
	}
}

// A guest on the switch gets a lease from the namespace's dnsmasq and is
// reachable from the namespace; when the switch is killed it is not, and
// once the switch is back (same socket, same TAP) it is again.
func TestGuestLeaseAndPingAcrossSwitchRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a QEMU guest")
	}
	n := bridgenet.New(t)
	requirePing(t)
	g := testguest.Ensure(t)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	r := newRelay(t, n.Socket())
	const mac = "52:54:00:12:34:56"
	console := filepath.Join(t.TempDir(), "console.log")
	q := testguest.StartQEMU(t, testguest.QEMUConfig{
		Guest:      g,
		Cmdline:    testguest.Cmdline(testguest.Options{Forever: true, Interval: 500 * time.Millisecond}),
		ConsoleLog: console,
		NetArgs: []string{
			"-netdev", "dgram,id=n0,local.type=fd,local.str=3",
			"-device", "virtio-net-pci,netdev=n0,mac=" + mac + ",romfile=",
		},
		ExtraFiles: []*os.File{r.guestEnd},
	})
	r.guestEnd.Close()

	l, err := testguest.WaitLog(ctx, console, q.Done(), "the guest's DHCP lease", func(l testguest.Log) bool { return l.Addr != "" || l.DHCPFail })
	if err != nil {
		t.Fatal(err)
	}
	if l.DHCPFail {
		t.Logf("relay dials %d\n%s", r.dials(), n.Diagnose())
		t.Fatalf("the guest got no DHCP lease; console: %s; dnsmasq log: %s", l.Summary(), readFile(filepath.Join(n.LogDir(), "dnsmasq.log")))
	}
	if l.Gateway != bridgenet.Gateway {
		t.Errorf("gateway = %q, want %s", l.Gateway, bridgenet.Gateway)
	}
	ip, err := n.WaitLease(ctx, mac)
	if err != nil {
		t.Fatal(err)
	}
	if guestIP, _, _ := strings.Cut(l.Addr, "/"); guestIP != ip {
		t.Fatalf("the guest says its address is %s, dnsmasq leased %s", l.Addr, ip)
	}
	t.Logf("guest %s has %s", mac, ip)

	pingOK(ctx, t, n, ip)

	// Down: nothing answers (so the pings really go through the switch).
	if err := n.KillSwitch(); err != nil {
		t.Fatal(err)
	}
	if n.SwitchPid() != 0 {
		t.Fatal("SwitchPid after KillSwitch is not 0")
	}
	if out, err := n.Exec(ctx, "ping", "-c", "1", "-W", "1", ip).CombinedOutput(); err == nil {
		t.Fatalf("ping %s succeeded while the switch was killed: %s", ip, out)
	}
	if err := n.StartSwitch(); err != nil {
		t.Fatal(err)
	}
	pingOK(ctx, t, n, ip)

	oldPid := n.SwitchPid()
	dials := r.dials()
	if err := n.RestartSwitch(); err != nil {
		t.Fatal(err)
	}
	if p := n.SwitchPid(); p == 0 || p == oldPid {
		t.Fatalf("SwitchPid after RestartSwitch = %d (before %d), want a new process", p, oldPid)
	}
	pingOK(ctx, t, n, ip)
	if c, err := n.SwitchCrashes(); c > 0 || err != nil {
		t.Logf("the switch crashed %d times and was restarted (%v)", c, err)
	}
	if r.dials() <= dials {
		t.Fatalf("the relay did not dial again after RestartSwitch (dials %d)", r.dials())
	}

	// The guest's own pings to the gateway (the bridge's address) work again too.
	before := len(l.Pings)
	if _, err := testguest.WaitLog(ctx, console, q.Done(), "a ping to the gateway after the restart", func(l testguest.Log) bool {
		for _, p := range l.Pings[min(before, len(l.Pings)):] {
			if p.OK {
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatal(err)
	}
}

// Cleanup removes the namespace and ends every process in it, and
// leaves no child process behind.
func TestCleanupLeavesNothing(t *testing.T) {
	if err := bridgenet.Check(); err != nil {
		bridgenet.SkipOrFatal(t, err)
	}
	childrenBefore := children(t)
	var name string
	var pids []int
	var sleeper *exec.Cmd
	t.Run("net", func(t *testing.T) {
		n := bridgenet.New(t)
		name = n.Name()
		// Something the test started in the namespace and did not end.
		sleeper = n.Exec(context.Background(), "sleep", "600")
		if err := sleeper.Start(); err != nil {
			t.Fatal(err)
		}
		// ip netns exec enters the namespace before it runs sleep: wait.
		pids = testwait.ValueEvery(t, 10*time.Second, 20*time.Millisecond, "the switch, dnsmasq and sleep in "+name,
			func() []int { return nsPids(t, name) }, func(p []int) bool { return len(p) >= 3 })
		if !slices.Contains(listNS(t), name) {
			t.Fatalf("namespace %s is not listed by ip netns list", name)
		}
	})
	err := sleeper.Wait()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		t.Fatalf("sleep in the namespace: %v, want it killed", err)
	}
	if slices.Contains(listNS(t), name) {
		t.Errorf("namespace %s still exists after cleanup", name)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d of the namespace still exists after cleanup (kill 0: %v)", pid, err)
		}
	}
	for _, c := range children(t) {
		if !slices.Contains(childrenBefore, c) {
			t.Errorf("child process %d is left after cleanup", c)
		}
	}
}

// A namespace left by a run that was killed (its owner process is gone)
// is removed, with what runs in it, by the next New; one of a live
// process is not.
func TestNewRemovesStaleNamespaces(t *testing.T) {
	if err := bridgenet.Check(); err != nil {
		bridgenet.SkipOrFatal(t, err)
	}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	stale := bridgenet.NamePrefix + strconv.Itoa(dead.Process.Pid) + "-stale"
	live := bridgenet.NamePrefix + "1-live" // pid 1 is always alive
	for _, ns := range []string{stale, live} {
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add %s: %v: %s", ns, err, out)
		}
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	}
	leftover := exec.Command("ip", "netns", "exec", stale, "sleep", "600")
	if err := leftover.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan struct{})
	go func() {
		_ = leftover.Wait()
		close(waited)
	}()
	t.Cleanup(func() {
		_ = leftover.Process.Kill()
		<-waited
	})

	n := bridgenet.New(t)
	names := listNS(t)
	if slices.Contains(names, stale) {
		t.Errorf("stale namespace %s was not removed", stale)
	}
	if !slices.Contains(names, live) {
		t.Errorf("namespace %s of a live process was removed", live)
	}
	if !slices.Contains(names, n.Name()) {
		t.Errorf("the new namespace %s is not listed", n.Name())
	}
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Error("the process in the stale namespace was not killed")
	}
}

func requirePing(t *testing.T) {
	if _, err := exec.LookPath("ping"); err != nil {
		bridgenet.SkipOrFatal(t, fmt.Errorf("%w ping (apt-get install iputils-ping)", bridgenet.ErrMissing))
	}
}

// pingOK pings ip from the namespace until it answers or ctx ends.
func pingOK(ctx context.Context, t *testing.T, n *bridgenet.Net, ip string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	defer func() {
		if t.Failed() {
			t.Log(n.Diagnose())
		}
	}()
	var out []byte
	var err error
	for ctx.Err() == nil {
		out, err = n.Exec(ctx, "ping", "-c", "1", "-W", "1", ip).CombinedOutput()
		if err == nil {
			return
		}
	}
	t.Fatalf("ping %s from the namespace: %v: %s", ip, err, out)
}

func listNS(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names
}

func nsPids(t *testing.T, name string) []int {
	t.Helper()
	out, err := exec.Command("ip", "netns", "pids", name).Output()
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, s := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(s); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// children lists the pids whose parent is this process.
func children(t *testing.T) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var kids []int
	me := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so cut at the last ')'.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 {
			if ppid, err := strconv.Atoi(f[1]); err == nil && ppid == me {
				kids = append(kids, pid)
			}
		}
	}
	return kids
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

// relay joins a guest's datagram NIC (QEMU -netdev dgram on an inherited
// socketpair end) to the switch's stream socket with socket_vmnet's
// framing, dialling again whenever the connection ends: the smallest client
// that survives a switch restart (QEMU 7.2's stream client does not
// reconnect).
type relay struct {
	guestEnd *os.File // for QEMU; the test closes it once QEMU has it
	dgram    *net.UnixConn
	sock     string

	mu     sync.Mutex
	conn   net.Conn
	ndials int
	closed bool

	wg sync.WaitGroup
}

func newRelay(t *testing.T, sock string) *relay {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	host := os.NewFile(uintptr(fds[0]), "relay")
	c, err := net.FileConn(host)
	host.Close()
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{guestEnd: os.NewFile(uintptr(fds[1]), "guest"), dgram: c.(*net.UnixConn), sock: sock}
	r.wg.Add(2)
	go r.toSwitch()
	go r.toGuest()
	t.Cleanup(r.close)
	return r
}

func (r *relay) close() {
	r.mu.Lock()
	r.closed = true
	if r.conn != nil {
		r.conn.Close()
	}
	r.mu.Unlock()
	r.dgram.Close()
	r.guestEnd.Close()
	r.wg.Wait()
}

func (r *relay) dials() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ndials
}

func (r *relay) current() net.Conn {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.conn
}

// toSwitch sends each datagram as one write of header and frame; frames
// while there is no connection are dropped.
func (r *relay) toSwitch() {
	defer r.wg.Done()
	buf := make([]byte, 4+65536)
	for {
		n, err := r.dgram.Read(buf[4:])
		if err != nil {
			return
		}
		binary.BigEndian.PutUint32(buf, uint32(n))
		if c := r.current(); c != nil {
			_, _ = c.Write(buf[:4+n])
		}
	}
}

// toGuest dials the switch, copies its frames to the guest until the
// connection ends, and dials again, until close.
func (r *relay) toGuest() {
	defer r.wg.Done()
	for {
		c, err := net.Dial("unix", r.sock)
		if err != nil {
			r.mu.Lock()
			closed := r.closed
			r.mu.Unlock()
			if closed {
				return
			}
			time.Sleep(20 * time.Millisecond)
			continue
		}
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			c.Close()
			return
		}
		r.conn = c
		r.ndials++
		r.mu.Unlock()

		var hdr [4]byte
		frame := make([]byte, 65536)
		for {
			if _, err := io.ReadFull(c, hdr[:]); err != nil {
				break
			}
			n := binary.BigEndian.Uint32(hdr[:])
			if n > uint32(len(frame)) {
				break
			}
			if _, err := io.ReadFull(c, frame[:n]); err != nil {
				break
			}
			_, _ = r.dgram.Write(frame[:n])
		}
		r.mu.Lock()
		r.conn = nil
		r.mu.Unlock()
		c.Close()
	}
}

// A switch that exits by itself (here: killed behind the harness's back,
// as QEMU 7.2's crash ends it) is started again at once and counted;
// KillSwitch is not a crash and is not undone.
func TestSwitchRestartedAfterCrash(t *testing.T) {
	n := bridgenet.New(t)
	old := n.SwitchPid()
	if old == 0 {
		t.Fatal("no switch running after New")
	}
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	testwait.ValueEvery(t, 20*time.Second, 20*time.Millisecond, "the switch to be started again after it died", n.SwitchPid,
		func(p int) bool { return p != 0 && p != old })
	if c, err := n.SwitchCrashes(); c != 1 || err != nil {
		t.Fatalf("SwitchCrashes = %d, %v; want 1, nil", c, err)
	}
	if _, err := os.Stat(n.Socket()); err != nil {
		t.Fatalf("switch socket after the restart: %v", err)
	}

	if err := n.KillSwitch(); err != nil {
		t.Fatal(err)
	}
	if c, _ := n.SwitchCrashes(); c != 1 || n.SwitchPid() != 0 {
		t.Fatalf("after KillSwitch: crashes %d, pid %d; want 1 and no switch", c, n.SwitchPid())
	}
}
