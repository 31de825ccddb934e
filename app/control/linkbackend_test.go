package control

import (
	"sync"
	"testing"
	"time"

	"github.com/vmnetbar/vmnetbar/netlink"
)

// fakeLink is a LinkSource with one subscriber channel the test feeds.
type fakeLink struct {
	mu         sync.Mutex
	st         netlink.Status
	ch         chan netlink.Status
	cancels    int
	reconnects int
}

func (f *fakeLink) Status() netlink.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

func (f *fakeLink) Subscribe() (<-chan netlink.Status, func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ch = make(chan netlink.Status)
	return f.ch, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.cancels++
	}
}

func (f *fakeLink) Reconnect() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reconnects++
}

func TestLinkBackendStatusAndReconnect(t *testing.T) {
	fl := &fakeLink{st: netlink.Status{State: netlink.StateUp, Reconnects: 4}}
	b := NewLinkBackend(fl)
	if st := b.Status(); st.VM != nil || st.Link.State != netlink.StateUp || st.Link.Reconnects != 4 {
		t.Errorf("Status = %+v", st)
	}
	if err := b.Reconnect(); err != nil || fl.reconnects != 1 {
		t.Errorf("Reconnect = %v, link reconnects %d", err, fl.reconnects)
	}
	var _ Backend = b
	if _, ok := any(b).(VMBackend); ok {
		t.Error("the link backend claims to serve a VM")
	}
}

func TestLinkBackendSubscribeCoalescesAndCancels(t *testing.T) {
	fl := &fakeLink{}
	b := NewLinkBackend(fl)
	ch, cancel := b.Subscribe()
	// Three updates the reader does not take: only the last is kept.
	for i := uint64(1); i <= 3; i++ {
		fl.ch <- netlink.Status{State: netlink.StateUp, Reconnects: i}
	}
	// The relay took the third update from the unbuffered source; wait
	// until it has replaced the buffered one.
	deadline := time.Now().Add(5 * time.Second)
	var got Status
	for {
		select {
		case got = <-ch:
		case <-time.After(5 * time.Second):
			t.Fatal("no update")
		}
		if got.Link.Reconnects == 3 {
			break
		}
		if got.Link.Reconnects != 2 || time.Now().After(deadline) {
			t.Fatalf("got reconnects %d, want the latest update (3)", got.Link.Reconnects)
		}
	}
	cancel()
	cancel() // idempotent
	if _, ok := <-ch; ok {
		t.Error("channel still open after cancel")
	}
	if fl.cancels != 1 {
		t.Errorf("source cancelled %d times, want 1", fl.cancels)
	}
}

func TestLinkBackendSubscribeEndsWithSource(t *testing.T) {
	fl := &fakeLink{}
	b := NewLinkBackend(fl)
	ch, cancel := b.Subscribe()
	defer cancel()
	close(fl.ch)
	select {
	case _, ok := <-ch:
		if ok {
			t.Error("got an update from a closed source")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("channel not closed after the source closed")
	}
}
