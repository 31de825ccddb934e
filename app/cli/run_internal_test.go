package cli

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmnetbar/vmnetbar/app/control"
	"github.com/vmnetbar/vmnetbar/netlink"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

func TestStatusLine(t *testing.T) {
	tests := []struct {
		st   control.Status
		want string
	}{
		{control.Status{
			VM:   &control.VMStatus{State: vmhost.StateRunning},
			Link: netlink.Status{State: netlink.StateUp, Reconnects: 2, TxBytes: 1_200_000, RxBytes: 3_400_000},
		}, "vm=running link=up reconnects=2 tx=1.2MB rx=3.4MB drops=0"},
		{control.Status{
			VM:   &control.VMStatus{State: vmhost.StateError, Error: "QEMU exited"},
			Link: netlink.Status{State: netlink.StateStopped, Dropped: netlink.Drops{Oversize: 1, VMBusy: 2}, LastError: "dial: refused"},
		}, `vm=error link=stopped reconnects=0 tx=0B rx=0B drops=3 error="QEMU exited" link_error="dial: refused"`},
		{control.Status{
			Link: netlink.Status{State: netlink.StateUp, LastError: "old"},
		}, "link=up reconnects=0 tx=0B rx=0B drops=0"},
	}
	for _, tt := range tests {
		if got := statusLine(tt.st); got != tt.want {
			t.Errorf("got  %s\nwant %s", got, tt.want)
		}
	}
}

// fakeBackend publishes statuses the test sets.
type fakeBackend struct {
	mu  sync.Mutex
	st  control.Status
	sub chan control.Status
}

func (b *fakeBackend) Status() control.Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.st
}

func (b *fakeBackend) Subscribe() (<-chan control.Status, func()) { return b.sub, func() {} }
func (b *fakeBackend) Reconnect() error                           { return nil }

func (b *fakeBackend) set(vm vmhost.State) {
	b.mu.Lock()
	b.st = control.Status{VM: &control.VMStatus{State: vm}, Link: netlink.Status{State: netlink.StateStopped}}
	st := b.st
	b.mu.Unlock()
	b.sub <- st
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestPrintStatusLines(t *testing.T) {
	b := &fakeBackend{sub: make(chan control.Status)}
	b.st = control.Status{VM: &control.VMStatus{State: vmhost.StateStopped}, Link: netlink.Status{State: netlink.StateStopped}}
	var out lockedBuffer
	now := func() time.Time { return time.Date(2026, 11, 25, 22, 30, 1, 0, time.FixedZone("x", 3600)) }
	done := make(chan struct{})
	go func() {
		defer close(done)
		printStatusLines(context.Background(), &out, b, now, 0)
	}()
	b.set(vmhost.StateStopped) // unchanged: no line
	b.set(vmhost.StateStarting)
	b.set(vmhost.StateRunning)
	close(b.sub) // the backend shut down: the printer returns
	<-done
	want := "2026-11-25T21:30:01Z vm=stopped link=stopped reconnects=0 tx=0B rx=0B drops=0\n" +
		"2026-11-25T21:30:01Z vm=starting link=stopped reconnects=0 tx=0B rx=0B drops=0\n" +
		"2026-11-25T21:30:01Z vm=running link=stopped reconnects=0 tx=0B rx=0B drops=0\n"
	if got := out.String(); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}

	// It also returns when its context ends.
	ctx, cancel := context.WithCancel(context.Background())
	b2 := &fakeBackend{sub: make(chan control.Status)}
	b2.st = b.st
	done = make(chan struct{})
	go func() {
		defer close(done)
		printStatusLines(ctx, &out, b2, now, 0)
	}()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("printer did not return after its context ended")
	}
	if strings.Count(out.String(), "\n") != 4 {
		t.Fatalf("output %q", out.String())
	}
}

func TestPrintStatusLinesRefreshesCounters(t *testing.T) {
	b := &fakeBackend{sub: make(chan control.Status)}
	b.st = control.Status{VM: &control.VMStatus{State: vmhost.StateRunning}, Link: netlink.Status{State: netlink.StateUp}}
	var out lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		printStatusLines(ctx, &out, b, time.Now, time.Millisecond)
	}()
	defer func() {
		cancel()
		<-done
	}()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "tx=0B rx=0B") {
		if time.Now().After(deadline) {
			t.Fatalf("no first line: %q", out.String())
		}
		time.Sleep(time.Millisecond)
	}
	// Traffic flows without a status notification.
	b.mu.Lock()
	b.st.Link.TxBytes, b.st.Link.RxBytes = 1_200_000, 3_400_000
	b.mu.Unlock()
	for !strings.Contains(out.String(), "tx=1.2MB rx=3.4MB") {
		if time.Now().After(deadline) {
			t.Fatalf("counters not refreshed: %q", out.String())
		}
		time.Sleep(time.Millisecond)
	}
	if n := strings.Count(out.String(), "\n"); n != 2 {
		t.Fatalf("%d lines, want 2 (unchanged lines are not repeated): %q", n, out.String())
	}
}
