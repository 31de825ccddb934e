package netlink

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/vmnetbar/vmnetbar/internal/testwait"
)

// integritySizes is every size from 60 to 1514 plus jumbo frames.
func integritySizes() []int {
	var s []int
	for n := 60; n <= 1514; n++ {
		s = append(s, n)
	}
	return append(s, 9000, 9000, 9000, MaxFrameSize)
}

// sendUp writes frames seq..seq+len(sizes)-1 from the VM.
func sendUp(t testing.TB, vm *net.UnixConn, first uint32, sizes []int) {
	buf := make([]byte, MaxFrameSize)
	vm.SetWriteDeadline(time.Now().Add(30 * time.Second))
	for i, n := range sizes {
		if _, err := vm.Write(testFrame(buf, first+uint32(i), n)); err != nil {
			t.Errorf("VM write: %v", err)
			return
		}
	}
}

// seqSizes returns the sizes of frames 0..n-1 (frameSize).
func seqSizes(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = frameSize(uint32(i))
	}
	return s
}

func TestFrameIntegrityBothWays(t *testing.T) {
	vm, host := vmPair(t)
	d := newDaemon(t, socketPath(t))
	d.start()
	// Frames up to MaxFrameSize go up: the largest MTU.
	l := newLink(t, host, Config{Socket: d.path, MTU: MaxMTU})
	stop, _ := runLink(t, l)
	c := d.next()
	sizes := integritySizes()

	// VM -> daemon.
	go sendUp(t, vm, 0, sizes)
	newVmnetReader(c).expect(t, 0, sizes)

	// Daemon -> VM, paced by a window so the VM reader is never overrun.
	var got atomic.Int64
	errc := make(chan error, 1)
	go func() {
		enc := NewEncoder(c)
		buf := make([]byte, MaxFrameSize)
		for i, n := range sizes {
			for int64(i)-got.Load() > 8 {
				runtime.Gosched()
			}
			if err := enc.WriteFrame(testFrame(buf, uint32(i), n)); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	buf := make([]byte, MaxFrameSize+1)
	for i, n := range sizes {
		f, err := readVM(vm, buf, 10*time.Second)
		if err != nil {
			t.Fatalf("VM read after %d frames: %v", i, err)
		}
		seq, err := checkFrame(f)
		if err != nil {
			t.Fatal(err)
		}
		if seq != uint32(i) || len(f) != n {
			t.Fatalf("VM got frame %d (%d bytes), want %d (%d bytes)", seq, len(f), i, n)
		}
		got.Add(1)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	var total uint64
	for _, n := range sizes {
		total += uint64(n)
	}
	st := waitStatus(t, l, "all frames and bytes counted", func(st Status) bool {
		return st.TxFrames == uint64(len(sizes)) && st.RxFrames == uint64(len(sizes)) && st.TxBytes == total && st.RxBytes == total
	})
	if st.State != StateUp || st.Reconnects != 0 || st.Dropped.Total() != 0 {
		t.Errorf("status %+v, want up, no reconnects, no drops", st)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if s := l.Status().State; s != StateStopped {
		t.Errorf("state after cancel %v, want stopped", s)
	}
}

// TestKillRestartUp kills the daemon while the VM streams frames and
// restarts it at once. The dying daemon stops receiving (writes to it fail
// at once) and reads what it had already queued; the new one gets the rest.
// Together they must see every frame once, in order.
func TestKillRestartUp(t *testing.T) {
	vm, host := vmPair(t)
	d := newDaemon(t, socketPath(t))
	d.start()
	lg, hook := logtest.NewNullLogger()
	lg.SetLevel(logrus.DebugLevel)
	l := newLink(t, host, Config{Socket: d.path, Logger: lg})
	runLink(t, l)
	c1 := d.next()

	const total = 20000
	go sendUp(t, vm, 0, seqSizes(total))

	next := uint32(0)
	check := func(f []byte) {
		t.Helper()
		seq, err := checkFrame(f)
		if err != nil {
			t.Fatal(err)
		}
		if seq != next {
			t.Fatalf("daemon got frame %d, want %d", seq, next)
		}
		next++
	}
	dec := NewDecoder(0)
	c1.SetReadDeadline(time.Now().Add(20 * time.Second))
	for next < total/3 {
		f, err := dec.ReadFrame(c1)
		if err != nil {
			t.Fatal(err)
		}
		check(f)
	}
	// Kill: stop receiving and listening, restart at once.
	if err := shutdownRead(c1); err != nil {
		t.Fatal(err)
	}
	d.stop()
	d.start()
	// The dead daemon's queue: whole frames count, a cut one does not.
	for {
		f, err := dec.ReadFrame(c1)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatal(err)
			}
			break
		}
		check(f)
	}
	c1.Close()
	c2 := d.next()
	dec.Reset()
	c2.SetReadDeadline(time.Now().Add(20 * time.Second))
	for next < total {
		f, err := dec.ReadFrame(c2)
		if err != nil {
			t.Fatalf("after %d frames: %v", next, err)
		}
		check(f)
	}
	testwait.For(t, "status up with one reconnect", func() bool {
		st := l.Status()
		return st.State == StateUp && st.Reconnects == 1 && st.TxFrames == total
	})
	st := l.Status()
	if st.LastError == "" || st.Downtime <= 0 {
		t.Errorf("status %+v: want the outage's error and downtime", st)
	}
	// Logs are written after the status changed (never under the lock):
	// wait for the restore line.
	var warns, infos int
	testwait.For(t, "the restore log line", func() bool {
		warns, infos = 0, 0
		for _, e := range hook.AllEntries() {
			switch {
			case e.Level == logrus.WarnLevel:
				warns++
			case e.Level == logrus.InfoLevel && strings.Contains(e.Message, "restored"):
				infos++
			}
		}
		return infos > 0
	})
	for _, e := range hook.AllEntries() {
		if e.Level == logrus.InfoLevel && strings.Contains(e.Message, "restored") {
			if _, ok := e.Data["down"]; !ok {
				t.Errorf("restored log without downtime: %v", e.Data)
			}
		}
	}
	if warns != 1 || infos != 1 {
		t.Errorf("got %d warnings and %d restore infos, want one of each", warns, infos)
	}
}

func shutdownRead(c *net.UnixConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = shutdownFD(int(fd)) }); err != nil {
		return err
	}
	return serr
}

// TestKillRestartDown: every frame the daemon handed to the link before
// dying reaches the VM, then the new daemon's frames follow.
func TestKillRestartDown(t *testing.T) {
	vm, host := vmPair(t)
	d := newDaemon(t, socketPath(t))
	d.start()
	l := newLink(t, host, Config{Socket: d.path})
	runLink(t, l)

	var got atomic.Int64
	send := func(c net.Conn, from, to uint32) {
		enc := NewEncoder(c)
		buf := make([]byte, 2000)
		for i := from; i < to; i++ {
			for int64(i)-got.Load() > 64 {
				runtime.Gosched()
			}
			if err := enc.WriteFrame(testFrame(buf, i, frameSize(i))); err != nil {
				t.Errorf("daemon write %d: %v", i, err)
				return
			}
		}
	}
	const total = 20000
	recvDone := make(chan error, 1)
	go func() {
		buf := make([]byte, MaxFrameSize+1)
		for i := uint32(0); i < total; i++ {
			f, err := readVM(vm, buf, 10*time.Second)
			if err != nil {
				recvDone <- err
				return
			}
			seq, err := checkFrame(f)
			if err == nil && seq != i {
				err = errors.New("frame out of order")
			}
			if err != nil {
				recvDone <- err
				return
			}
			got.Add(1)
		}
		recvDone <- nil
	}()
	c1 := d.next()
	send(c1, 0, total/2)
	// Kill and restart at once.
	c1.Close()
	d.stop()
	d.start()
	c2 := d.next()
	send(c2, total/2, total)
	if err := <-recvDone; err != nil {
		t.Fatalf("VM after %d frames: %v", got.Load(), err)
	}
	waitStatus(t, l, "all frames, no drops, one reconnect", func(st Status) bool {
		return st.RxFrames == total && st.Dropped.Total() == 0 && st.Reconnects == 1
	})
}

func TestDaemonAbsentAtStart(t *testing.T) {
	vm, host := vmPair(t)
	d := newDaemon(t, socketPath(t))
	var failed atomic.Int64 // dials that returned an error
	lg, hook := logtest.NewNullLogger()
	lg.SetLevel(logrus.DebugLevel)
	l := newLink(t, host, Config{
		Socket: d.path,
		Logger: lg,
		Dial: func(ctx context.Context) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, "unix", d.path)
			if err != nil {
				failed.Add(1)
			}
			return c, err
		},
		InitialBackoff: MinInitialBackoff,
		MaxBackoff:     4 * MinInitialBackoff,
	})
	runLink(t, l)
	testwait.For(t, "three failed dials", func() bool { return failed.Load() >= 3 })
	st := l.Status()
	if st.State != StateConnecting || !strings.Contains(st.LastError, "dialing") {
		t.Fatalf("status %+v: want connecting with the dial error", st)
	}
	// A frame sent meanwhile waits for the daemon.
	go sendUp(t, vm, 1, []int{64})
	d.start()
	c := d.next()
	newVmnetReader(c).expect(t, 1, []int{64})
	testwait.For(t, "up", func() bool { return l.Status().State == StateUp })
	st = l.Status()
	if st.Reconnects != 0 || st.Downtime != 0 {
		t.Errorf("status %+v: the first connection is not a reconnect and has no downtime", st)
	}
	var warns, debugs int
	for _, e := range hook.AllEntries() {
		switch {
		case e.Level == logrus.WarnLevel:
			warns++
		case e.Level == logrus.DebugLevel && e.Message == "dial failed":
			debugs++
		}
	}
	if warns != 1 || debugs < 3 {
		t.Errorf("%d warnings and %d failed-dial debug lines, want 1 and one per failed dial", warns, debugs)
	}
}

func TestDaemonClosesMidFrame(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"header only", []byte{0, 0, 0x05, 0xea}},
		{"half a body", append([]byte{0, 0, 0x05, 0xea}, bytes.Repeat([]byte{0xee}, 757)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vm, d, l, c1 := linked(t, Config{InitialBackoff: MinInitialBackoff, MaxBackoff: MinInitialBackoff})
			buf := make([]byte, MaxFrameSize+1)
			if err := NewEncoder(c1).WriteFrame(testFrame(buf, 1, 100)); err != nil {
				t.Fatal(err)
			}
			if _, err := c1.Write(tc.data); err != nil {
				t.Fatal(err)
			}
			c1.Close()
			c2 := d.next()
			if err := NewEncoder(c2).WriteFrame(testFrame(buf, 2, 200)); err != nil {
				t.Fatal(err)
			}
			for _, want := range []uint32{1, 2} {
				f, err := readVM(vm, buf, 10*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				if seq, err := checkFrame(f); err != nil || seq != want {
					t.Fatalf("VM got frame %d (%v), want %d", seq, err, want)
				}
			}
			waitStatus(t, l, "1 partial read, 1 reconnect, 2 frames", func(st Status) bool {
				return st.Dropped.PartialRead == 1 && st.Reconnects == 1 && st.RxFrames == 2
			})
		})
	}
}

func TestDaemonBadLength(t *testing.T) {
	for _, bad := range []uint32{0, MaxFrameSize + 1, 0xFFFFFFFF} {
		t.Run("", func(t *testing.T) {
			vm, d, l, c1 := linked(t, Config{InitialBackoff: MinInitialBackoff, MaxBackoff: MinInitialBackoff})
			buf := make([]byte, MaxFrameSize+1)
			wire, _ := AppendFrame(nil, testFrame(buf, 1, 100))
			wire = binary.BigEndian.AppendUint32(wire, bad)
			wire = append(wire, bytes.Repeat([]byte{0xab}, 3000)...)
			if _, err := c1.Write(wire); err != nil {
				t.Fatal(err)
			}
			c2 := d.next() // the link dropped c1 and redialed
			if err := NewEncoder(c2).WriteFrame(testFrame(buf, 2, 300)); err != nil {
				t.Fatal(err)
			}
			for _, want := range []uint32{1, 2} {
				f, err := readVM(vm, buf, 10*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				if seq, err := checkFrame(f); err != nil || seq != want {
					t.Fatalf("VM got frame %d (%v), want %d: garbage forwarded?", seq, err, want)
				}
			}
			// c1 was closed by the link.
			c1.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := c1.Read(buf); err != io.EOF {
				t.Errorf("old connection read: %v, want EOF", err)
			}
			waitStatus(t, l, "the length error, 1 reconnect, 2 frames", func(st Status) bool {
				return strings.Contains(st.LastError, "frame length") && st.Reconnects == 1 && st.RxFrames == 2
			})
		})
	}
}

func countFDs(t testing.TB) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count file descriptors: %v", err)
	}
	return len(ents)
}

func TestAcceptThenClose200Times(t *testing.T) {
	vm, host := vmPair(t)
	d := newDaemon(t, socketPath(t))
	var closing atomic.Bool
	closing.Store(true)
	d.onAccept = func(c *net.UnixConn) bool {
		if closing.Load() {
			c.Close()
			return false
		}
		return true
	}
	d.start()
	fds0, g0 := countFDs(t), runtime.NumGoroutine()
	const initial = MinInitialBackoff
	l := newLink(t, host, Config{Socket: d.path, InitialBackoff: initial, MaxBackoff: time.Second})
	start := time.Now()
	stop, _ := runLink(t, l)
	testwait.Within(t, 20*time.Second, "200 accepted connections", func() bool { return d.accepted.Load() >= 200 })
	// Each connection died at once, so each redial waited InitialBackoff:
	// at most one dial per InitialBackoff.
	n := d.accepted.Load()
	if el := time.Since(start); el < time.Duration(n-1)*initial {
		t.Errorf("%d connections in %v: more than one per %v", n, el, initial)
	}
	closing.Store(false)
	c := d.next()
	go sendUp(t, vm, 3, []int{1000})
	newVmnetReader(c).expect(t, 3, []int{1000})
	// Run's goroutines: Run itself, the dialer, up, down, the VM-side
	// probe and the health loop; its descriptors: the VM end's duplicate, the connection (both
	// ends) and the probe's NETLINK_SOCK_DIAG socket.
	testwait.For(t, "fds and goroutines back to baseline", func() bool {
		return countFDs(t) <= fds0+4 && runtime.NumGoroutine() <= g0+6
	})
	// None of them carried anything: it was one outage, ended by the
	// connection that holds.
	if st := l.Status(); st.Reconnects != 1 || st.State != StateUp {
		t.Errorf("status %+v: want up with one reconnect (one outage)", st)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "fds back to baseline after Run", func() bool { return countFDs(t) <= fds0+1 })
}

func TestVMSideClosedIsFatal(t *testing.T) {
	vmEnd, host, err := NewSocketPair()
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	d := newDaemon(t, socketPath(t))
	d.start()
	l := newLink(t, host, Config{Socket: d.path, InitialBackoff: MinInitialBackoff, MaxBackoff: MinInitialBackoff})
	// The failed send to the VM is under test: without the probe, which
	// could end Run before the frame below is written or read (then the
	// daemon sees EPIPE or a reset; TestQuietVMSideClosedFails tests it).
	noProbe(l)
	stop, done := runLink(t, l)
	c := d.next()
	vmEnd.Close()
	if err := NewEncoder(c).WriteFrame(bytes.Repeat([]byte{0xff}, 60)); err != nil { // broadcast
		t.Fatal(err)
	}
	select {
	case <-done:
		if err := stop(); !errors.Is(err, ErrVMSide) {
			t.Fatalf("Run: %v, want ErrVMSide", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not fail after the VM side closed")
	}
	st := l.Status()
	if st.State != StateFailed || !strings.Contains(st.LastError, "VM") {
		t.Errorf("status %+v: want failed with the VM error", st)
	}
	// The link closed its connection and never dialed again.
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 10)); err != io.EOF {
		t.Errorf("daemon read: %v, want EOF", err)
	}
	d.stop()
	if n := d.accepted.Load(); n != 1 {
		t.Errorf("daemon saw %d connections, want 1 (no redial)", n)
	}
	l.Reconnect() // no-op once stopped
}

// TestVMStopsReading: a VM that never reads does not slow the daemon's
// stream; frames it cannot take are dropped and counted.
func TestVMStopsReading(t *testing.T) {
	vm, _, l, c := linked(t, Config{})
	const total = 20000
	buf := make([]byte, 2000)
	w := bufferedFrames(buf, 0, total, 1514)
	c.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write(w); err != nil {
		t.Fatalf("daemon write blocked by a VM that does not read: %v", err)
	}
	testwait.Within(t, 20*time.Second, "every frame delivered or dropped", func() bool {
		st := l.Status()
		return st.RxFrames+st.Dropped.VMBusy == total
	})
	st := l.Status()
	if st.Dropped.VMBusy == 0 || st.RxFrames == 0 {
		t.Fatalf("status %+v: want some delivered and some dropped", st)
	}
	// One stall, bounded retries, then one attempt per frame.
	if stalls, waits := l.stalls.Load(), l.busyWaits.Load(); stalls != 1 || waits > busyRetries {
		t.Errorf("%d stalls and %d waits, want 1 stall and at most %d waits", stalls, waits, busyRetries)
	}
	// The VM gets exactly the frames counted as delivered, in order, and
	// then the link delivers again.
	rbuf := make([]byte, MaxFrameSize+1)
	last := int64(-1)
	for i := uint64(0); i < st.RxFrames; i++ {
		f, err := readVM(vm, rbuf, 5*time.Second)
		if err != nil {
			t.Fatalf("VM read %d of %d: %v", i, st.RxFrames, err)
		}
		seq, err := checkFrame(f)
		if err != nil || int64(seq) <= last {
			t.Fatalf("VM got frame %d (%v) after %d", seq, err, last)
		}
		last = int64(seq)
	}
	if _, err := readVM(vm, rbuf, 50*time.Millisecond); err != errTimeout {
		t.Fatalf("VM got more frames than counted: %v", err)
	}
	if err := NewEncoder(c).WriteFrame(testFrame(buf, total, 100)); err != nil {
		t.Fatal(err)
	}
	f, err := readVM(vm, rbuf, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if seq, _ := checkFrame(f); seq != total {
		t.Fatalf("VM got %d after the stall, want %d", seq, total)
	}
}

func bufferedFrames(buf []byte, from, to uint32, size int) []byte {
	var w []byte
	for i := from; i < to; i++ {
		w, _ = AppendFrame(w, testFrame(buf, i, size))
	}
	return w
}

func TestOversizeFromVMDropped(t *testing.T) {
	vm, _, l, c := linked(t, Config{MTU: MaxMTU})
	if _, err := vm.Write(make([]byte, MaxFrameSize+1)); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.Write(make([]byte, 100000)); err != nil {
		t.Fatal(err)
	}
	// An empty datagram is skipped and counted, never fatal.
	if _, err := vm.Write([]byte{}); err != nil {
		t.Fatal(err)
	}
	const empty = 1
	go sendUp(t, vm, 5, []int{MaxFrameSize, 60})
	newVmnetReader(c).expect(t, 5, []int{MaxFrameSize, 60})
	waitStatus(t, l, "2 oversize drops, the empty datagram counted, 2 frames sent", func(st Status) bool {
		return st.Dropped.Oversize == 2 && st.Dropped.Empty == empty && st.TxFrames == 2 && st.State == StateUp
	})
}

func TestSubscribeCoalesces(t *testing.T) {
	_, host := vmPair(t)
	d := newDaemon(t, socketPath(t))
	d.start()
	l := newLink(t, host, Config{Socket: d.path, InitialBackoff: MinInitialBackoff, MaxBackoff: MinInitialBackoff})
	slow, cancelSlow := l.Subscribe()
	fast, cancelFast := l.Subscribe()
	defer cancelFast()
	if st := <-fast; st.State != StateConnecting {
		t.Fatalf("first status %v, want connecting", st.State)
	}
	stop, _ := runLink(t, l)
	d.next()
	// The fast subscriber sees every state change promptly.
	waitState := func(want State) {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case st := <-fast:
				if st.State == want {
					return
				}
			case <-timeout:
				t.Fatalf("no %v status", want)
			}
		}
	}
	waitState(StateUp)
	for i := 0; i < 5; i++ {
		l.Reconnect()
		d.next()
		testwait.For(t, "reconnect", func() bool { return l.Status().Reconnects == uint64(i+1) })
	}
	testwait.For(t, "up", func() bool { return l.Status().State == StateUp })
	// The slow one holds only the latest status.
	st := <-slow
	if st.Reconnects != 5 || st.State != StateUp {
		t.Errorf("slow subscriber got %+v, want the latest (up, 5 reconnects)", st)
	}
	select {
	case st := <-slow:
		t.Errorf("slow subscriber got a second queued status %+v", st)
	default:
	}
	cancelSlow()
	cancelSlow()
	if _, ok := <-slow; ok {
		t.Error("channel open after cancel")
	}
	stop()
	// The final status arrives, then the channel closes.
	var last Status
	for st := range fast {
		last = st
	}
	if last.State != StateStopped {
		t.Errorf("last status %v, want stopped", last.State)
	}
	late, cancelLate := l.Subscribe()
	if st, ok := <-late; !ok || st.State != StateStopped {
		t.Errorf("late subscriber got %v %v, want the final status", st, ok)
	}
	if _, ok := <-late; ok {
		t.Error("late subscriber channel open")
	}
	cancelLate()
}

func TestManualReconnectResetsBackoff(t *testing.T) {
	_, host := vmPair(t)
	var dials atomic.Int64
	l := newLink(t, host, Config{
		Dial: func(ctx context.Context) (net.Conn, error) {
			dials.Add(1)
			return nil, errors.New("refused")
		},
		InitialBackoff: time.Hour,
		MaxBackoff:     time.Hour,
	})
	runLink(t, l)
	testwait.For(t, "first dial", func() bool { return dials.Load() == 1 })
	testwait.For(t, "running", func() bool { return l.running.Load() })
	l.Reconnect()
	testwait.For(t, "a dial now instead of in an hour", func() bool { return dials.Load() == 2 })
}

func TestNewValidates(t *testing.T) {
	_, host := vmPair(t)
	ln, err := net.Listen("unix", socketPath(t))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	stream, err := ln.(*net.UnixListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	reg, err := os.CreateTemp("", "nl")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(reg.Name())
	defer reg.Close()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	udp, err := pc.(*net.UDPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	for _, tc := range []struct {
		host *os.File
		cfg  Config
		want string
	}{
		{nil, Config{Socket: "/x"}, "nil"},
		{stream, Config{Socket: "/x"}, "SOCK_STREAM"},
		{reg, Config{Socket: "/x"}, "not a socket"},
		{udp, Config{Socket: "/x"}, "not an AF_UNIX socket"},
		{host, Config{}, "netlink: the daemon socket path is empty"},
		{host, Config{Socket: "/" + strings.Repeat("a", 200)}, `netlink: daemon socket path "/aaa`},
		{host, Config{Socket: "/" + strings.Repeat("a", 200)}, fmt.Sprintf("is 201 bytes long; a UNIX socket path may have at most %d bytes on", SunPathSize-1)},
		{host, Config{Socket: "/" + strings.Repeat("a", 200)}, fmt.Sprintf("(sun_path is %d bytes including the terminating NUL): use a shorter path", SunPathSize)},
		{host, Config{Socket: strings.Repeat("r", SunPathSize)}, fmt.Sprintf("is %d bytes long", SunPathSize)},
		{host, Config{Socket: "/x", InitialBackoff: -1}, "the initial backoff -1ns is negative: use at least 10ms, or 0 for the default 100ms"},
		{host, Config{Socket: "/x", MaxBackoff: -1}, "the maximum backoff -1ns is negative"},
		{host, Config{Socket: "/x", InitialBackoff: 1}, "the initial backoff 1ns is below the minimum of 10ms"},
		{host, Config{Socket: "/x", InitialBackoff: MinInitialBackoff - 1}, "the initial backoff 9.999999ms is below the minimum of 10ms"},
		{host, Config{Socket: "/x", InitialBackoff: time.Second, MaxBackoff: time.Millisecond}, "the maximum backoff 1ms is shorter than the initial backoff 1s: make it at least as long"},
		{host, Config{Socket: "/x", MaxBackoff: 50 * time.Millisecond}, "the maximum backoff 50ms is shorter than the initial backoff 100ms (the default)"},
		{host, Config{Socket: "/x", InitialBackoff: 3 * time.Second}, "the maximum backoff 2s (the default) is shorter than the initial backoff 3s"},
	} {
		_, err := New(tc.host, tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%v, %+v) = %v, want an error about %q", tc.host, tc.cfg, err, tc.want)
		}
		// The library's words, not its code's: callers add the user's.
		if err != nil && (strings.Contains(err.Error(), "Config.") || strings.Contains(err.Error(), "Backoff")) {
			t.Errorf("New(%v, %+v) = %v: names code", tc.host, tc.cfg, err)
		}
	}
	// The limits themselves are accepted.
	for _, cfg := range []Config{
		{Socket: strings.Repeat("r", SunPathSize-1)},
		{Socket: "/x", InitialBackoff: MinInitialBackoff, MaxBackoff: MinInitialBackoff},
		{Socket: "/x", InitialBackoff: DefaultMaxBackoff},
	} {
		if _, err := New(host, cfg); err != nil {
			t.Errorf("New(%+v): %v", cfg, err)
		}
	}
	l := newLink(t, host, Config{Socket: "/nonexistent/socket"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Run(ctx); err != nil {
		t.Fatalf("Run with a cancelled context: %v", err)
	}
	if err := l.Run(ctx); err == nil {
		t.Fatal("second Run succeeded")
	}
}

func TestNewSocketPair(t *testing.T) {
	vmEnd, hostEnd, err := NewSocketPair()
	if err != nil {
		t.Fatal(err)
	}
	defer vmEnd.Close()
	defer hostEnd.Close()
	for _, f := range []*os.File{vmEnd, hostEnd} {
		checkSocketOptions(t, f)
	}
}

// TestHardKillUp closes the daemon's connection with frames still queued
// in it (a crash): those are gone with the daemon, but the link loses
// nothing it held: the new daemon gets every later frame, in order, once.
func TestHardKillUp(t *testing.T) {
	vm, d, l, c1 := linked(t, Config{})
	const total = 20000
	go sendUp(t, vm, 0, seqSizes(total))
	dec := NewDecoder(0)
	c1.SetReadDeadline(time.Now().Add(20 * time.Second))
	next := uint32(0)
	for next < total/3 {
		f, err := dec.ReadFrame(c1)
		if err != nil {
			t.Fatal(err)
		}
		if seq, err := checkFrame(f); err != nil || seq != next {
			t.Fatalf("frame %d (%v), want %d", seq, err, next)
		}
		next++
	}
	c1.Close()
	d.stop()
	d.start()
	c2 := d.next()
	dec.Reset()
	c2.SetReadDeadline(time.Now().Add(20 * time.Second))
	f, err := dec.ReadFrame(c2)
	if err != nil {
		t.Fatal(err)
	}
	first, err := checkFrame(f)
	if err != nil || first < next {
		t.Fatalf("new daemon's first frame %d (%v), old one ended at %d", first, err, next)
	}
	lost := first - next
	for want := first + 1; want < total; want++ {
		f, err := dec.ReadFrame(c2)
		if err != nil {
			t.Fatalf("after frame %d: %v", want-1, err)
		}
		if seq, err := checkFrame(f); err != nil || seq != want {
			t.Fatalf("frame %d (%v), want %d", seq, err, want)
		}
	}
	// Only what the dead daemon's socket held is gone: the link counted
	// every frame as sent exactly once (a cut frame only when resent whole).
	if lost > 1000 {
		t.Errorf("%d frames lost, more than a socket buffer holds", lost)
	}
	waitStatus(t, l, "every frame counted as sent once", func(st Status) bool { return st.TxFrames == total })
	t.Logf("%d frames were queued in the killed daemon's socket", lost)
}
