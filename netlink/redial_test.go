package netlink

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmnetbar/vmnetbar/internal/testclock"
)

// TestRedialAfterConnectionLoss: InitialBackoff is an hour, so only the
// redial rules decide when the link dials. A connection that lasted at
// least InitialBackoff (by the link's clock) is redialed at once; one that
// died sooner waits InitialBackoff; a manual reconnect cuts that wait.
func TestRedialAfterConnectionLoss(t *testing.T) {
	vm, host := vmPair(t)
	d := newDaemon(t, socketPath(t))
	d.start()
	clock := testclock.New(time.Time{})
	l := newLink(t, host, Config{Socket: d.path, InitialBackoff: time.Hour, MaxBackoff: time.Hour, Clock: clock})
	noProbe(l)
	runLink(t, l)
	c1 := d.next()
	waitStatus(t, l, "up", func(st Status) bool { return st.State == StateUp })

	// Up for two hours: the redial is immediate.
	clock.Advance(2 * time.Hour)
	c1.Close()
	c2 := d.next()
	waitStatus(t, l, "up again", func(st Status) bool { return st.State == StateUp && st.Reconnects == 1 })

	// Up for a moment only (it carried a frame, so it ended an outage of
	// its own): the link waits an hour before redialing.
	sendDown(t, vm, c2, testFrame(make([]byte, 64), 1, 64))
	c2.Close()
	waitStatus(t, l, "reconnecting", func(st Status) bool { return st.State == StateReconnecting })
	if w := dialerWait(t, clock); w != time.Hour {
		t.Fatalf("the link waits %v before redialing, want InitialBackoff (1h)", w)
	}
	if n := d.accepted.Load(); n != 2 {
		t.Fatalf("%d connections, want 2: a short-lived connection was redialed at once", n)
	}
	// A manual reconnect dials now.
	l.Reconnect()
	d.next()
	waitStatus(t, l, "up after the manual reconnect", func(st Status) bool { return st.State == StateUp && st.Reconnects == 2 })
}

// TestDaemonGoingAwayCountsOnce: a daemon that is going away can accept a
// redial before it closes its listener, and the kernel resets that
// connection. Such a connection, ended at once with nothing from the
// daemon, does not end the outage: one restart of the daemon is one
// reconnect, and the downtime covers the whole outage. A restored
// connection that carried a frame, or lasted, counts on its own.
func TestDaemonGoingAwayCountsOnce(t *testing.T) {
	vm, host := vmPair(t)
	d := newDaemon(t, socketPath(t))
	d.start()
	clock := testclock.New(time.Time{})
	l := newLink(t, host, Config{Socket: d.path, Clock: clock})
	noProbe(l)
	runLink(t, l)
	c := d.next()
	waitStatus(t, l, "up", func(st Status) bool { return st.State == StateUp })

	// The restart: the old connection ends, the redial reaches the dying
	// listener and is reset, twice over; then the new daemon serves.
	clock.Advance(time.Minute)
	c.Close()
	lost := clock.Now()
	for i := 0; i < 2; i++ {
		c = d.next()
		waitStatus(t, l, "up on the dying daemon", func(st Status) bool { return st.State == StateUp })
		clock.Advance(10 * time.Millisecond)
		c.Close()
		waitStatus(t, l, "reconnecting", func(st Status) bool { return st.State == StateReconnecting })
		clock.Advance(dialerWait(t, clock)) // a connection that short is redialed after InitialBackoff
	}
	c = d.next()
	st := waitStatus(t, l, "up", func(st Status) bool { return st.State == StateUp })
	if st.Reconnects != 1 {
		t.Fatalf("%d reconnects across one daemon restart, want 1", st.Reconnects)
	}
	if down := clock.Since(lost); st.Downtime != down {
		t.Errorf("downtime %v, want the whole outage %v", st.Downtime, down)
	}
	if !strings.Contains(st.LastError, "closed") && !strings.Contains(st.LastError, "reset") {
		t.Errorf("last error %q, want the resets' cause", st.LastError)
	}

	// A restored connection that carried a frame ended its outage: losing
	// it at once is a new outage.
	sendDown(t, vm, c, testFrame(make([]byte, 64), 1, 64))
	c.Close()
	waitStatus(t, l, "reconnecting", func(st Status) bool { return st.State == StateReconnecting })
	clock.Advance(dialerWait(t, clock))
	c = d.next()
	waitStatus(t, l, "up, counted", func(st Status) bool { return st.State == StateUp && st.Reconnects == 2 })
	// So is one that lasted a second, with nothing from the daemon.
	clock.Advance(stillbornWithin)
	c.Close()
	d.next()
	waitStatus(t, l, "up, counted", func(st Status) bool { return st.State == StateUp && st.Reconnects == 3 })
}

// TestManualReconnectRacingFailure: a manual reconnect that comes with a
// connection failure still dials at once with the backoff reset (with
// InitialBackoff an hour, a lost request would stall the test).
func TestManualReconnectRacingFailure(t *testing.T) {
	_, host := vmPair(t)
	d := newDaemon(t, socketPath(t))
	d.start()
	l := newLink(t, host, Config{Socket: d.path, InitialBackoff: time.Hour, MaxBackoff: time.Hour})
	runLink(t, l)
	c := d.next()
	// Up first: a request made while the link dials is served by that dial
	// (it is not one more reconnect), which is not the race under test.
	waitStatus(t, l, "up", func(st Status) bool { return st.State == StateUp })
	for i := 0; i < 30; i++ {
		done := make(chan struct{})
		go func() { c.Close(); close(done) }()
		l.Reconnect()
		<-done
		c = d.next()
		waitStatus(t, l, "up", func(st Status) bool { return st.State == StateUp })
		// A request served by a dial already under way may leave one
		// more connection: take the newest.
		for len(d.conns) > 0 {
			c = <-d.conns
		}
	}
}

// TestEmptyDatagramsSkipped: an empty datagram from the VM is skipped and
// counted; the frames around it go through and the link stays
// up.
func TestEmptyDatagramsSkipped(t *testing.T) {
	vm, _, l, c := linked(t, Config{})
	buf := make([]byte, 2000)
	for i := uint32(0); i < 10; i++ {
		if _, err := vm.Write([]byte{}); err != nil {
			t.Fatal(err)
		}
		if _, err := vm.Write(testFrame(buf, i, 100)); err != nil {
			t.Fatal(err)
		}
	}
	newVmnetReader(c).expect(t, 0, []int{100, 100, 100, 100, 100, 100, 100, 100, 100, 100})
	st := waitStatus(t, l, "10 empty datagrams counted", func(st Status) bool {
		return st.Dropped.Empty == 10 && st.TxFrames == 10
	})
	if st.State != StateUp || st.Dropped.Total() != 10 {
		t.Errorf("status %+v: want up with only the empty drops", st)
	}
}

// TestFrameTooBigForVMDropped: a frame the VM socket refuses as too large
// (EMSGSIZE) is dropped and counted; the link goes on.
func TestFrameTooBigForVMDropped(t *testing.T) {
	vm, host := vmPair(t)
	d := newDaemon(t, socketPath(t))
	d.start()
	l := newLink(t, host, Config{Socket: d.path})
	runLink(t, l)
	c := d.next()
	// Shrink the host end's send buffer below a 9000-byte datagram (the
	// link shares the socket through its duplicate).
	rc, err := host.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, 4096) })
	if serr != nil {
		t.Fatal(serr)
	}
	buf := make([]byte, 9000)
	enc := NewEncoder(c)
	if err := enc.WriteFrame(testFrame(buf, 1, 9000)); err != nil {
		t.Fatal(err)
	}
	if err := enc.WriteFrame(testFrame(buf, 2, 100)); err != nil {
		t.Fatal(err)
	}
	f, err := readVM(vm, make([]byte, MaxFrameSize+1), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if seq, err := checkFrame(f); err != nil || seq != 2 {
		t.Fatalf("VM got frame %d (%v), want 2", seq, err)
	}
	st := waitStatus(t, l, "one oversize drop", func(st Status) bool { return st.Dropped.Oversize == 1 && st.RxFrames == 1 })
	if st.State != StateUp {
		t.Errorf("status %+v: want up", st)
	}
}

// TestNewRaisesHostBuffers: a host end with small buffers (a descriptor
// passed in by another program) gets the socketpair's sizes.
func TestNewRaisesHostBuffers(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	unix.CloseOnExec(fds[1])
	for _, opt := range []int{unix.SO_SNDBUF, unix.SO_RCVBUF} {
		if err := unix.SetsockoptInt(fds[1], unix.SOL_SOCKET, opt, 4096); err != nil {
			t.Fatal(err)
		}
	}
	host := os.NewFile(uintptr(fds[1]), "passed-in")
	defer host.Close()
	newLink(t, host, Config{Socket: "/x"})
	checkSocketOptions(t, host)
}

// TestDaemonConnectionSendBuffer: the link raises a small send buffer of
// its daemon connection to one large enough for whole-frame writes.
func TestDaemonConnectionSendBuffer(t *testing.T) {
	_, host := vmPair(t)
	d := newDaemon(t, socketPath(t))
	d.start()
	var conn atomic.Pointer[net.UnixConn]
	l := newLink(t, host, Config{Socket: d.path, Dial: func(ctx context.Context) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, "unix", d.path)
		if err != nil {
			return nil, err
		}
		uc := c.(*net.UnixConn)
		if err := uc.SetWriteBuffer(4096); err != nil {
			t.Error(err)
		}
		conn.Store(uc)
		return c, nil
	}})
	runLink(t, l)
	d.next()
	waitStatus(t, l, "up", func(st Status) bool { return st.State == StateUp })
	rc, err := conn.Load().SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got int
	var gerr error
	rc.Control(func(fd uintptr) { got, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF) })
	if gerr != nil || got < streamSendBuffer {
		t.Errorf("daemon connection SO_SNDBUF %d (%v), want >= %d", got, gerr, streamSendBuffer)
	}
}

// TestDropsEmptyInStatusJSON: the empty-datagram counter is part of the
// total and survives the wire form.
func TestDropsEmptyInStatusJSON(t *testing.T) {
	st := Status{State: StateUp, Dropped: Drops{Oversize: 1, VMBusy: 2, PartialRead: 3, Empty: 4}}
	if n := st.Dropped.Total(); n != 10 {
		t.Errorf("Total %d, want 10", n)
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"dropped":10,"drops":{"oversize":1,"vm_busy":2,"partial_read":3,"empty":4}`) {
		t.Errorf("wire form %s", b)
	}
	var back Status
	if err := json.Unmarshal(b, &back); err != nil || back.Dropped != st.Dropped {
		t.Errorf("round trip %+v (%v), want %+v", back.Dropped, err, st.Dropped)
	}
}
