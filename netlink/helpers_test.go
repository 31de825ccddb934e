package netlink

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vmnetbar/vmnetbar/internal/testwait"
)

func TestMain(m *testing.M) {
	if v := os.Getenv(benchChildEnv); v != "" {
		impl, path, _ := strings.Cut(v, ":")
		os.Exit(benchChild(impl, path))
	}
	goleak.VerifyTestMain(m)
}

// socketPath returns a short socket path in a fresh directory.
func socketPath(t testing.TB) string {
	dir, err := os.MkdirTemp("", "nl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "d.sock")
}

// vmPair returns the VM end as a connection the test drives (with deadlines)
// and the host end for the link.
func vmPair(t testing.TB) (*net.UnixConn, *os.File) {
	vmEnd, hostEnd, err := NewSocketPair()
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.FilePacketConn(vmEnd)
	vmEnd.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close(); hostEnd.Close() })
	return pc.(*net.UnixConn), hostEnd
}

// runLink starts l.Run; stop cancels it and returns Run's error; done is
// closed when Run returned.
func runLink(t testing.TB, l *Link) (stop func() error, done <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan struct{})
	var err error
	go func() { err = l.Run(ctx); close(ch) }()
	stop = func() error {
		cancel()
		select {
		case <-ch:
			return err
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return after cancel")
			return errTimeout
		}
	}
	t.Cleanup(func() { stop() })
	return stop, ch
}

// linked starts a fake daemon and a running link to it with cfg (Socket is
// set to the daemon's path). It returns the VM end, the daemon, the link and
// the daemon's side of the link's first connection.
func linked(t testing.TB, cfg Config) (vm *net.UnixConn, d *daemon, l *Link, c *net.UnixConn) {
	t.Helper()
	vm, host := vmPair(t)
	d = newDaemon(t, socketPath(t))
	d.start()
	cfg.Socket = d.path
	l = newLink(t, host, cfg)
	runLink(t, l)
	return vm, d, l, d.next()
}

func newLink(t testing.TB, host *os.File, cfg Config) *Link {
	t.Helper()
	l, err := New(host, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// daemon is a fake socket_vmnet: a real UNIX stream listener whose accepted
// connections are handed to the test.
type daemon struct {
	t        testing.TB
	path     string
	accepted atomic.Int64
	conns    chan *net.UnixConn
	onAccept func(c *net.UnixConn) bool // optional; false: the test does not get c

	mu  sync.Mutex
	ln  *net.UnixListener
	wg  sync.WaitGroup
	all []*net.UnixConn
}

func newDaemon(t testing.TB, path string) *daemon {
	d := &daemon{t: t, path: path, conns: make(chan *net.UnixConn, 1024)}
	t.Cleanup(d.close)
	return d
}

func (d *daemon) start() {
	d.t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: d.path, Net: "unix"})
	if err != nil {
		d.t.Fatal(err)
	}
	d.mu.Lock()
	d.ln = ln
	d.mu.Unlock()
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		for {
			c, err := ln.AcceptUnix()
			if err != nil {
				return
			}
			d.accepted.Add(1)
			if d.onAccept != nil && !d.onAccept(c) {
				continue
			}
			d.mu.Lock()
			d.all = append(d.all, c)
			d.mu.Unlock()
			d.conns <- c
		}
	}()
}

// stop closes the listener (removing the socket): new dials fail.
func (d *daemon) stop() {
	d.mu.Lock()
	ln := d.ln
	d.ln = nil
	d.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	d.wg.Wait()
}

func (d *daemon) close() {
	d.stop()
	d.mu.Lock()
	for _, c := range d.all {
		c.Close()
	}
	d.all = nil
	d.mu.Unlock()
}

// next returns the next accepted connection.
func (d *daemon) next() *net.UnixConn {
	d.t.Helper()
	select {
	case c := <-d.conns:
		return c
	case <-time.After(10 * time.Second):
		d.t.Fatal("the link did not connect to the fake daemon")
		return nil
	}
}

// testFrameMark makes the first byte of a test frame odd: its destination
// is a multicast MAC, which the link's filter always passes.
const testFrameMark = 0x01000000

// testFrame builds a frame of size bytes carrying seq.
func testFrame(buf []byte, seq uint32, size int) []byte {
	f := buf[:size]
	binary.BigEndian.PutUint32(f, seq^testFrameMark)
	binary.BigEndian.PutUint16(f[4:], uint16(size))
	for i := 6; i < size; i++ {
		f[i] = byte(seq) + byte(i)
	}
	return f
}

// checkFrame returns the sequence number of a frame built by testFrame.
func checkFrame(f []byte) (uint32, error) {
	if len(f) < 6 {
		return 0, fmt.Errorf("frame of %d bytes is too short", len(f))
	}
	seq := binary.BigEndian.Uint32(f) ^ testFrameMark
	if int(binary.BigEndian.Uint16(f[4:])) != len(f)&0xffff {
		return seq, fmt.Errorf("frame %d: size field %d, frame is %d bytes", seq, binary.BigEndian.Uint16(f[4:]), len(f))
	}
	for i := 6; i < len(f); i++ {
		if f[i] != byte(seq)+byte(i) {
			return seq, fmt.Errorf("frame %d: byte %d corrupted", seq, i)
		}
	}
	return seq, nil
}

// frameSize gives the size of frame seq for tests cycling through sizes.
func frameSize(seq uint32) int {
	return 60 + int(seq*37)%(1514-60+1)
}

var errTimeout = errors.New("timeout")

// readVM reads one frame from the VM end with a timeout.
func readVM(vm *net.UnixConn, buf []byte, timeout time.Duration) ([]byte, error) {
	vm.SetReadDeadline(time.Now().Add(timeout))
	n, err := vm.Read(buf)
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, errTimeout
		}
		return nil, err
	}
	return buf[:n], nil
}

// waitStatus polls l.Status until ok holds; counters are updated right
// after the syscall that moved the frames, so they may trail the test's view.
func waitStatus(t testing.TB, l *Link, what string, ok func(Status) bool) Status {
	t.Helper()
	return testwait.ForValue(t, "status "+what, l.Status, ok)
}
