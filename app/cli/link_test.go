package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmnetbar/vmnetbar/app/control"
	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/internal/testwait"
	"github.com/vmnetbar/vmnetbar/netlink"
)

// fakeDaemon is a UNIX stream server speaking socket_vmnet's framing
// (4-byte big-endian length, then the frame).
type fakeDaemon struct {
	path   string
	l      *net.UnixListener
	conns  chan net.Conn // accepted connections, in order
	frames chan []byte   // frames read from any connection
	wg     sync.WaitGroup
	mu     sync.Mutex
	all    []net.Conn
}

func newFakeDaemon(t *testing.T) *fakeDaemon {
	t.Helper()
	return newFakeDaemonAt(t, filepath.Join(shortTempDir(t), "daemon.sock"))
}

// newFakeDaemonAt starts a fake daemon listening at path.
func newFakeDaemonAt(t *testing.T, path string) *fakeDaemon {
	t.Helper()
	d := &fakeDaemon{
		path:   path,
		conns:  make(chan net.Conn, 16),
		frames: make(chan []byte, 256),
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: d.path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	d.l = l
	d.wg.Add(1)
	go d.accept()
	t.Cleanup(d.close)
	return d
}

func (d *fakeDaemon) accept() {
	defer d.wg.Done()
	for {
		c, err := d.l.Accept()
		if err != nil {
			return
		}
		d.mu.Lock()
		d.all = append(d.all, c)
		d.mu.Unlock()
		d.conns <- c
		d.wg.Add(1)
		go d.read(c)
	}
}

func (d *fakeDaemon) read(c net.Conn) {
	defer d.wg.Done()
	r := bufio.NewReader(c)
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return
		}
		f := make([]byte, binary.BigEndian.Uint32(hdr[:]))
		if _, err := io.ReadFull(r, f); err != nil {
			return
		}
		d.frames <- f
	}
}

func (d *fakeDaemon) close() {
	d.l.Close()
	d.mu.Lock()
	for _, c := range d.all {
		c.Close()
	}
	d.mu.Unlock()
	d.wg.Wait()
}

// nextConn waits for the next connection from the link.
func (d *fakeDaemon) nextConn(t *testing.T) net.Conn {
	t.Helper()
	select {
	case c := <-d.conns:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("the link did not connect to the daemon")
		return nil
	}
}

// nextFrame waits for the next frame from the link.
func (d *fakeDaemon) nextFrame(t *testing.T) []byte {
	t.Helper()
	select {
	case f := <-d.frames:
		return f
	case <-time.After(10 * time.Second):
		t.Fatal("no frame reached the daemon")
		return nil
	}
}

// send writes one frame to c, header and frame in one write.
func send(t *testing.T, c net.Conn, frame []byte) {
	t.Helper()
	b := binary.BigEndian.AppendUint32(nil, uint32(len(frame)))
	if _, err := c.Write(append(b, frame...)); err != nil {
		t.Fatalf("daemon write: %v", err)
	}
}

// socketpair returns both ends of an AF_UNIX socketpair of type typ: the
// first as a net.Conn (for the test), the second as an *os.File (for the
// child).
func socketpair(t *testing.T, typ int) (net.Conn, *os.File) {
	t.Helper()
	// Close-on-exec is set under ForkLock (SOCK_CLOEXEC is Linux-only) so
	// no child inherits the ends by accident.
	syscall.ForkLock.RLock()
	fds, err := unix.Socketpair(unix.AF_UNIX, typ, 0)
	if err == nil {
		unix.CloseOnExec(fds[0])
		unix.CloseOnExec(fds[1])
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		t.Fatal(err)
	}
	mine := os.NewFile(uintptr(fds[0]), "vm-end")
	c, err := net.FileConn(mine)
	mine.Close()
	if err != nil {
		t.Fatal(err)
	}
	theirs := os.NewFile(uintptr(fds[1]), "host-end")
	t.Cleanup(func() { c.Close(); theirs.Close() })
	return c, theirs
}

// frame builds an Ethernet-sized test frame whose bytes depend on seed.
func frame(size int, seed byte) []byte {
	f := make([]byte, size)
	for i := range f {
		f[i] = seed + byte(i)
	}
	return f
}

// readVM reads one datagram from the VM end.
func readVM(t *testing.T, vm net.Conn) []byte {
	t.Helper()
	vm.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 70000)
	n, err := vm.Read(buf)
	if err != nil {
		t.Fatalf("reading from the VM end: %v", err)
	}
	return buf[:n]
}

// linkSetup is a running `vmnetbar link` with a fake daemon and VM end.
type linkSetup struct {
	d       *fakeDaemon
	vm      net.Conn
	control string
	p       *proc
	conn    net.Conn // the daemon's current connection
}

// startLink starts a fake daemon and a link to it, and waits until the
// link has connected.
func startLink(t *testing.T) *linkSetup {
	t.Helper()
	d := newFakeDaemon(t)
	s := startLinkTo(t, d.path)
	s.d = d
	s.conn = s.d.nextConn(t)
	return s
}

// startLinkTo starts a link to the daemon socket path, which need not
// exist yet.
func startLinkTo(t *testing.T, daemon string) *linkSetup {
	t.Helper()
	s := &linkSetup{control: filepath.Join(shortTempDir(t), "ctl", "control.sock")}
	var host *os.File
	s.vm, host = socketpair(t, unix.SOCK_DGRAM)
	s.p = startCLI(t, []*os.File{host}, false, "link", "--fd", "3", "--socket", daemon, "--control", s.control, "--log-level", "debug")
	host.Close() // the child has its copy
	return s
}

func (s *linkSetup) client() *control.Client { return control.NewClient(s.control) }

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitLink polls the control API until cond holds for the link status.
func (s *linkSetup) waitLink(t *testing.T, what string, cond func(netlink.Status) bool) netlink.Status {
	t.Helper()
	var last netlink.Status
	testwait.For(t, what, func() bool {
		st, err := s.client().VM(testCtx(t), "")
		if err != nil {
			return false
		}
		last = st.Link
		return cond(st.Link)
	})
	return last
}

func TestLinkForwardsFramesAndServesControl(t *testing.T) {
	s := startLink(t)

	// VM to daemon, several sizes up to vmnet's 1514.
	sizes := []int{60, 1514, 342, 1}
	for i, n := range sizes {
		if _, err := s.vm.Write(frame(n, byte(i))); err != nil {
			t.Fatal(err)
		}
	}
	for i, n := range sizes {
		if got := s.d.nextFrame(t); !bytes.Equal(got, frame(n, byte(i))) {
			t.Fatalf("frame %d reached the daemon as %d bytes %x..., want %d bytes", i, len(got), got[:min(len(got), 8)], n)
		}
	}
	// Daemon to VM: frames to the MAC the VM sends from (the link learns
	// it from the VM's first frame and filters unicast to other MACs).
	vmMAC := frame(60, 0)[6:12]
	toVM := func(n int, seed byte) []byte {
		f := frame(n, seed)
		copy(f, vmMAC)
		return f
	}
	for i, n := range []int{1514, 64} {
		send(t, s.conn, toVM(n, byte(100+i)))
		if got := readVM(t, s.vm); !bytes.Equal(got, toVM(n, byte(100+i))) {
			t.Fatalf("frame %d reached the VM as %d bytes, want %d", i, len(got), n)
		}
	}

	// The control socket is private.
	fi, err := os.Stat(s.control)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("control socket mode %v, want 0600", fi.Mode().Perm())
	}

	// status --json: the raw API answer.
	s.waitLink(t, "the counters to settle", func(l netlink.Status) bool { return l.TxFrames == 4 && l.RxFrames == 2 })
	r := runCLI(t, "status", "--json", "--control", s.control)
	if r.code != 0 {
		t.Fatalf("status --json: exit %d: %s", r.code, r.stderr)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(r.stdout), &raw); err != nil {
		t.Fatalf("status --json printed %q: %v", r.stdout, err)
	}
	if _, ok := raw["vm"]; ok {
		t.Errorf("the standalone link reports a VM: %s", r.stdout)
	}
	var st model.Status
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatal(err)
	}
	wantBytes := uint64(60 + 1514 + 342 + 1)
	if st.Link.State != netlink.StateUp || st.Link.TxFrames != 4 || st.Link.TxBytes != wantBytes || st.Link.RxFrames != 2 || st.Link.RxBytes != 1514+64 {
		t.Errorf("status --json = %+v; want up, tx 4/%d, rx 2/1578", st.Link, wantBytes)
	}

	// The human summary.
	r = runCLI(t, "status", "--control", s.control)
	if r.code != 0 {
		t.Fatalf("status: exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{"Link:        up since ", "Reconnects:  0", "VM to daemon 4 frames (1.9 kB)", "daemon to VM 2 frames (1.6 kB)", "Drops:       0"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "VM:") {
		t.Errorf("status shows a VM line for the standalone link:\n%s", r.stdout)
	}

	// reconnect: a new daemon connection, the count goes up, frames flow.
	r = runCLI(t, "reconnect", "--control", s.control)
	if r.code != 0 || !strings.Contains(r.stdout, "reconnect requested") {
		t.Fatalf("reconnect: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	s.conn = s.d.nextConn(t)
	s.waitLink(t, "the reconnect to count", func(l netlink.Status) bool { return l.State == netlink.StateUp && l.Reconnects == 1 })
	if _, err := s.vm.Write(frame(100, 7)); err != nil {
		t.Fatal(err)
	}
	if got := s.d.nextFrame(t); !bytes.Equal(got, frame(100, 7)) {
		t.Fatalf("after reconnect the daemon got %d bytes, want the 100-byte frame", len(got))
	}
	send(t, s.conn, frame(200, 9))
	if got := readVM(t, s.vm); !bytes.Equal(got, frame(200, 9)) {
		t.Fatalf("after reconnect the VM got %d bytes, want the 200-byte frame", len(got))
	}

	// The VM commands have nothing to act on.
	for _, cmd := range []string{"start", "stop"} {
		r = runCLI(t, cmd, "--control", s.control)
		if r.code != 1 || !strings.Contains(r.stderr, "this vmnetbar serves no VM") {
			t.Errorf("%s: exit %d %q, want 1 and 'serves no VM'", cmd, r.code, r.stderr)
		}
	}

	// SIGTERM: exit 0 within a second, socket removed.
	took, code := s.p.signal(t, syscall.SIGTERM)
	if code != 0 {
		t.Errorf("exit %d after SIGTERM, want 0; stderr:\n%s", code, s.p.stderr.String())
	}
	if took > time.Second {
		t.Errorf("took %v to exit after SIGTERM, want under 1s", took)
	}
	if _, err := os.Stat(s.control); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("control socket left behind: %v", err)
	}
}

func TestLinkSIGINT(t *testing.T) {
	s := startLink(t)
	took, code := s.p.signal(t, syscall.SIGINT)
	if code != 0 || took > time.Second {
		t.Errorf("SIGINT: exit %d after %v, want 0 within 1s; stderr:\n%s", code, took, s.p.stderr.String())
	}
}

func TestLinkWaitsForDaemon(t *testing.T) {
	daemon := filepath.Join(shortTempDir(t), "daemon.sock")
	s := startLinkTo(t, daemon)
	st := s.waitLink(t, "a failed dial", func(l netlink.Status) bool { return l.LastError != "" })
	if st.State != netlink.StateConnecting {
		t.Errorf("state %v while the daemon is missing, want connecting", st.State)
	}
	r := runCLI(t, "status", "--control", s.control)
	if !strings.Contains(r.stdout, "Link:        connecting") || !strings.Contains(r.stdout, "Last error:  ") || strings.Contains(r.stdout, "Last error:  none") {
		t.Errorf("status while connecting:\n%s", r.stdout)
	}
	// The daemon comes up: the link connects by itself.
	s.d = newFakeDaemonAt(t, daemon)
	s.conn = s.d.nextConn(t)
	s.waitLink(t, "the link to be up", func(l netlink.Status) bool { return l.State == netlink.StateUp && l.Reconnects == 0 })
	if _, err := s.vm.Write(frame(90, 4)); err != nil {
		t.Fatal(err)
	}
	if got := s.d.nextFrame(t); !bytes.Equal(got, frame(90, 4)) {
		t.Fatalf("the daemon got %d bytes, want the 90-byte frame", len(got))
	}
}

func TestLinkSIGTERMWhileDaemonMissing(t *testing.T) {
	s := startLinkTo(t, filepath.Join(shortTempDir(t), "daemon.sock"))
	s.waitLink(t, "a failed dial", func(l netlink.Status) bool { return l.LastError != "" })
	took, code := s.p.signal(t, syscall.SIGTERM)
	if code != 0 || took > time.Second {
		t.Errorf("SIGTERM while connecting: exit %d after %v, want 0 within 1s; stderr:\n%s", code, took, s.p.stderr.String())
	}
}

func TestLinkRedialsWhenDaemonDrops(t *testing.T) {
	s := startLink(t)
	s.conn.Close() // the daemon drops the connection, as on a restart
	s.conn = s.d.nextConn(t)
	st := s.waitLink(t, "the link to be up again", func(l netlink.Status) bool { return l.State == netlink.StateUp && l.Reconnects == 1 })
	if st.LastError == "" {
		t.Error("no last error recorded for the dropped connection")
	}
	send(t, s.conn, frame(80, 3))
	if got := readVM(t, s.vm); !bytes.Equal(got, frame(80, 3)) {
		t.Fatalf("after the redial the VM got %d bytes, want the 80-byte frame", len(got))
	}
}

func TestLinkExitsWhenVMSideGoes(t *testing.T) {
	s := startLink(t)
	s.vm.Close()
	// A frame to the closed VM end fails at once (the quiet case is
	// TestLinkExitsWhenQuietVMSideGoes).
	send(t, s.conn, frame(60, 1))
	s.p.wait(t, 10*time.Second)
	if s.p.code != 1 {
		t.Errorf("exit %d after the VM end closed, want 1", s.p.code)
	}
	if stderr := s.p.stderr.String(); !strings.Contains(stderr, "VM side") {
		t.Errorf("stderr does not give the reason:\n%s", stderr)
	}
}

// TestLinkExitsWhenQuietVMSideGoes: the VM end closes while nothing flows;
// with no frame to send, `vmnetbar link` must still notice and exit 1.
func TestLinkExitsWhenQuietVMSideGoes(t *testing.T) {
	s := startLink(t)
	s.waitLink(t, "the link to be up", func(l netlink.Status) bool { return l.State == netlink.StateUp })
	s.vm.Close()
	s.p.wait(t, 5*time.Second)
	if s.p.code != 1 {
		t.Errorf("exit %d after the VM end closed, want 1", s.p.code)
	}
	stderr := s.p.stderr.String()
	for _, want := range []string{"the VM side (--fd 3) failed", "closed its end"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

func TestWatchPrintsChanges(t *testing.T) {
	s := startLink(t)
	w := startCLI(t, nil, true, "watch", "--control", s.control)
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(w.stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	next := func() model.Status {
		t.Helper()
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("watch ended; stderr:\n%s", w.stderr.String())
			}
			var st model.Status
			if err := json.Unmarshal([]byte(l), &st); err != nil {
				t.Fatalf("watch printed %q: %v", l, err)
			}
			return st
		case <-time.After(10 * time.Second):
			t.Fatal("watch printed nothing")
			return model.Status{}
		}
	}
	if st := next(); st.Link.State != netlink.StateUp {
		t.Fatalf("first watch line: state %v, want up", st.Link.State)
	}
	if err := s.client().Reconnect(testCtx(t), ""); err != nil {
		t.Fatal(err)
	}
	s.d.nextConn(t)
	for {
		st := next()
		if st.Link.State == netlink.StateUp && st.Link.Reconnects >= 1 {
			break
		}
	}
	took, code := w.signal(t, syscall.SIGINT)
	if code != 0 || took > time.Second {
		t.Errorf("watch: exit %d after %v on SIGINT, want 0 within 1s; stderr:\n%s", code, took, w.stderr.String())
	}
}

func TestWatchEndsWhenLinkStops(t *testing.T) {
	s := startLink(t)
	w := startCLI(t, nil, true, "watch", "--control", s.control)
	first := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(w.stdout)
		if sc.Scan() {
			close(first)
		}
		for sc.Scan() {
		}
	}()
	select {
	case <-first:
	case <-time.After(10 * time.Second):
		t.Fatalf("watch printed nothing; stderr:\n%s", w.stderr.String())
	}
	s.p.signal(t, syscall.SIGTERM)
	w.wait(t, 10*time.Second)
	if w.code != 1 || !strings.Contains(w.stderr.String(), "ended the watch stream") {
		t.Errorf("watch after the link stopped: exit %d, stderr %q; want 1 and the reason", w.code, w.stderr.String())
	}
}

func TestLinkBadArguments(t *testing.T) {
	dir := shortTempDir(t)
	regular, err := os.Create(filepath.Join(dir, "regular"))
	if err != nil {
		t.Fatal(err)
	}
	defer regular.Close()
	_, stream := socketpair(t, unix.SOCK_STREAM)
	_, dgram := socketpair(t, unix.SOCK_DGRAM)
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	udpFile, err := udp.File()
	if err != nil {
		t.Fatal(err)
	}
	defer udpFile.Close()
	live := newFakeDaemon(t) // something that answers, to collide with
	sock := "/nonexistent/socket_vmnet"
	long := "/tmp/" + strings.Repeat("x", 110) + ".sock"
	longRel := strings.Repeat("d/", 60) + "s"

	for _, tc := range []struct {
		name  string
		file  *os.File
		args  []string
		code  int
		wants []string
	}{
		{"no flags", nil, nil, 2, []string{"missing --fd", "SOCK_DGRAM", "--fd 3"}},
		{"not a number", nil, []string{"--fd", "three", "--socket", sock}, 2, []string{`--fd "three" is not a number`}},
		{"negative", nil, []string{"--fd", "-1", "--socket", sock}, 2, []string{"--fd -1 is negative"}},
		{"not open", nil, []string{"--fd", "57", "--socket", sock}, 2, []string{"--fd 57 is not an open file descriptor", "the parent process must pass"}},
		{"regular file", regular, []string{"--fd", "3", "--socket", sock}, 2, []string{"--fd 3 is not a socket (it is a regular file)"}},
		{"stream socket", stream, []string{"--fd", "3", "--socket", sock}, 2, []string{"--fd 3 is a SOCK_STREAM socket, not SOCK_DGRAM"}},
		{"UDP socket", udpFile, []string{"--fd", "3", "--socket", sock}, 2, []string{"--fd 3 is not an AF_UNIX socket"}},
		{"missing socket", dgram, []string{"--fd", "3"}, 2, []string{"missing --socket"}},
		{"unknown level", dgram, []string{"--fd", "3", "--socket", sock, "--log-level", "loud"}, 2, []string{`unknown --log-level "loud"`, "debug"}},
		{"extra argument", dgram, []string{"--fd", "3", "--socket", sock, "now"}, 2, []string{`unexpected argument "now"`}},
		{"unknown flag", dgram, []string{"--fd", "3", "--socket", sock, "--jumbo"}, 2, []string{"unknown flag: --jumbo"}},
		{"bad mtu", dgram, []string{"--fd", "3", "--socket", sock, "--mtu", "70000"}, 2, []string{"--mtu 70000 is out of range"}},
		{"bad mac", dgram, []string{"--fd", "3", "--socket", sock, "--mac", "01:00:5e:00:00:01"}, 2, []string{`--mac "01:00:5e:00:00:01" is not a unicast`}},
		{"socket path too long", dgram, []string{"--fd", "3", "--socket", long}, 2, []string{
			`--socket "/tmp/xxx`, "is 120 bytes long", fmt.Sprintf("at most %d bytes", netlink.SunPathSize-1),
			fmt.Sprintf("sun_path is %d bytes including the terminating NUL", netlink.SunPathSize), "use a shorter path"}},
		{"relative socket path too long", dgram, []string{"--fd", "3", "--socket", longRel}, 2, []string{`--socket "d/d/`, "is 121 bytes long", "use a shorter path"}},
		{"control path too long", dgram, []string{"--fd", "3", "--socket", sock, "--control", long}, 2, []string{"104", "shorter path"}},
		{"control path served", dgram, []string{"--fd", "3", "--socket", sock, "--control", live.path}, 1, []string{"another instance is serving at " + live.path}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var files []*os.File
			if tc.file != nil {
				files = []*os.File{tc.file}
			}
			r := runCLIFiles(t, files, append([]string{"link"}, tc.args...)...)
			if r.code != tc.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", r.code, tc.code, r.stderr)
			}
			for _, w := range tc.wants {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
			// The user's words, not the code's or the kernel's.
			for _, bad := range []string{"Config.", "invalid argument"} {
				if strings.Contains(r.stderr, bad) {
					t.Errorf("stderr says %q:\n%s", bad, r.stderr)
				}
			}
		})
	}
}
