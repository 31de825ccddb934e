package netlink

import (
	"errors"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"golang.org/x/sys/unix"

	"github.com/vmnetbar/vmnetbar/internal/testwait"
)

// TestPeerProbe: the probe sees the other end of a datagram socketpair
// live, then gone once it is closed; an unconnected socket has no peer to
// watch.
func TestPeerProbe(t *testing.T) {
	vmEnd, hostEnd, err := NewSocketPair()
	if err != nil {
		t.Fatal(err)
	}
	defer hostEnd.Close()
	rc, err := hostEnd.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	p, err := newPeerProbe(rc)
	if err != nil {
		vmEnd.Close()
		t.Fatalf("no probe on this machine: %v", err)
	}
	defer p.close()
	for i := 0; i < 3; i++ {
		if gone, err := p.gone(); gone || err != nil {
			t.Fatalf("check %d of a live peer: gone %v, %v", i, gone, err)
		}
	}
	vmEnd.Close()
	if gone, err := p.gone(); !gone || err != nil {
		t.Fatalf("check after the peer closed: gone %v, %v; want gone", gone, err)
	}

	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	lone := os.NewFile(uintptr(fd), "unconnected")
	defer lone.Close()
	rc, err = lone.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	if p, err := newPeerProbe(rc); err == nil || !strings.Contains(err.Error(), "not connected") {
		if p != nil {
			p.close()
		}
		t.Fatalf("probe of an unconnected socket: %v, want 'not connected'", err)
	}
}

// TestQuietVMSideClosedFails: the VM closes its end while nothing flows in
// either direction. The link must notice without a frame to send (on Linux
// a closed datagram peer wakes no reader) and fail, as when a send fails.
func TestQuietVMSideClosedFails(t *testing.T) {
	vm, d, l, c := linked(t, Config{})
	waitStatus(t, l, "up", func(st Status) bool { return st.State == StateUp })
	vm.Close()
	st := waitStatus(t, l, "failed after the VM end closed", func(st Status) bool { return st.State == StateFailed })
	if !strings.Contains(st.LastError, "VM side") || !strings.Contains(st.LastError, "closed its end") {
		t.Errorf("last error %q: want the VM side closing", st.LastError)
	}
	if st.Reconnects != 0 || st.RxFrames != 0 || st.TxFrames != 0 {
		t.Errorf("status %+v: nothing should have moved", st)
	}
	// The link closed its connection and does not redial.
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 10)); err != io.EOF {
		t.Errorf("daemon read: %v, want EOF", err)
	}
	d.stop()
	if n := d.accepted.Load(); n != 1 {
		t.Errorf("daemon saw %d connections, want 1 (no redial)", n)
	}
}

// TestQuietVMSideClosedRunError: Run itself returns the VM-side error.
func TestQuietVMSideClosedRunError(t *testing.T) {
	vm, host := vmPair(t)
	d := newDaemon(t, socketPath(t))
	d.start()
	l := newLink(t, host, Config{Socket: d.path})
	stop, done := runLink(t, l)
	d.next()
	vm.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not end within 5s of the VM end closing on a quiet link")
	}
	if err := stop(); !errors.Is(err, ErrVMSide) {
		t.Fatalf("Run: %v, want ErrVMSide", err)
	}
}

// TestVMSideProbeSendsNothing: the probe never shows the VM anything (an
// empty datagram would make QEMU's -netdev dgram stop reading).
func TestVMSideProbeSendsNothing(t *testing.T) {
	vm, _, l, _ := linked(t, Config{})
	testwait.For(t, "three probes of the VM side", func() bool { return l.probes.Load() >= 3 })
	if f, err := readVM(vm, make([]byte, MaxFrameSize+1), time.Millisecond); err != errTimeout {
		t.Fatalf("the VM end received %d bytes (%v) from a link that had nothing to send", len(f), err)
	}
	if st := l.Status(); st.State != StateUp {
		t.Errorf("state %v, want up", st.State)
	}
}

// TestVMSideProbeUnavailable: without a probe (no unix_diag) the link says
// so once at debug level, runs normally and still fails when a send to the
// VM fails.
func TestVMSideProbeUnavailable(t *testing.T) {
	vm, host := vmPair(t)
	d := newDaemon(t, socketPath(t))
	d.start()
	lg, hook := logtest.NewNullLogger()
	lg.SetLevel(logrus.DebugLevel)
	l := newLink(t, host, Config{Socket: d.path, Logger: lg})
	l.newProbe = func(syscall.RawConn) (*peerProbe, error) {
		return nil, os.NewSyscallError("socket", unix.EPROTONOSUPPORT)
	}
	stop, done := runLink(t, l)
	c := d.next()
	buf := make([]byte, MaxFrameSize+1)
	if err := NewEncoder(c).WriteFrame(testFrame(buf, 1, 100)); err != nil {
		t.Fatal(err)
	}
	if _, err := readVM(vm, buf, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	vm.Close()
	if err := NewEncoder(c).WriteFrame(testFrame(buf, 2, 100)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not fail when a send to the closed VM end failed")
	}
	if err := stop(); !errors.Is(err, ErrVMSide) {
		t.Fatalf("Run: %v, want ErrVMSide", err)
	}
	var n int
	for _, e := range hook.AllEntries() {
		if e.Level == logrus.DebugLevel && strings.Contains(e.Message, "cannot watch the VM side") {
			n++
			if err, _ := e.Data[logrus.ErrorKey].(error); !errors.Is(err, unix.EPROTONOSUPPORT) {
				t.Errorf("debug line without the reason: %v", e.Data)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d debug lines about the missing probe, want 1", n)
	}
}
