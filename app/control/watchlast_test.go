package control

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/vmnetbar/vmnetbar/internal/testwait"
	"github.com/vmnetbar/vmnetbar/netlink"
)

// Many watchers, a last change followed at once by the server stopping:
// every watcher's last line is the final status. The handler used to pick
// at random between the ended context and the pending update.
func TestWatchersSeeFinalStatusAtShutdown(t *testing.T) {
	const watchers = 200
	for round := 0; round < 3; round++ {
		b := newFakeBackend(testLinkStatus(netlink.StateUp, 0))
		srv := NewServer(b, testLogger(t))
		srv.MaxConns = watchers
		path, stop := serveServer(t, srv)
		var (
			mu     sync.Mutex
			last   = make([]Status, watchers)
			seen   int
			wg     sync.WaitGroup
			client = NewClient(path)
		)
		for i := 0; i < watchers; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var once sync.Once
				err := client.Watch(ctxT(t), func(st Status) error {
					mu.Lock()
					defer mu.Unlock()
					last[i] = st
					once.Do(func() { seen++ })
					return nil
				})
				mu.Lock()
				defer mu.Unlock()
				if last[i].Link.State == 0 {
					t.Errorf("watcher %d: %v", i, err)
				}
			}()
		}
		testwait.For(t, "every watcher's first status", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return seen == watchers || t.Failed()
		})
		if t.Failed() {
			stop()
			wg.Wait()
			return
		}
		testwait.For(t, "every watch subscription", func() bool { n, _ := b.subscribers(); return n == watchers })
		b.set(testLinkStatus(netlink.StateReconnecting, 1))
		b.set(testLinkStatus(netlink.StateStopped, 1))
		stop()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("watch streams did not end when the server stopped")
		}
		missed := 0
		for _, st := range last {
			if st.Link.State != netlink.StateStopped {
				missed++
			}
		}
		if missed > 0 {
			t.Fatalf("round %d: %d of %d watchers never saw the final status", round, missed, watchers)
		}
	}
}

// A backend whose status changed without a notification and that then
// closes its subscriptions: the stream ends with that status.
func TestWatchSendsStatusWhenSubscriptionCloses(t *testing.T) {
	b := newFakeBackend(testLinkStatus(netlink.StateUp, 0))
	path, _ := serve(t, b)
	var (
		mu   sync.Mutex
		got  []Status
		errc = make(chan error, 1)
	)
	first := make(chan struct{})
	go func() {
		var once sync.Once
		errc <- NewClient(path).Watch(ctxT(t), func(st Status) error {
			mu.Lock()
			got = append(got, st)
			mu.Unlock()
			once.Do(func() { close(first) })
			return nil
		})
	}()
	<-first
	testwait.For(t, "the watch subscription", func() bool { n, _ := b.subscribers(); return n == 1 })
	b.mu.Lock()
	b.st = testLinkStatus(netlink.StateStopped, 0)
	for id, ch := range b.subs {
		close(ch)
		delete(b.subs, id)
	}
	b.mu.Unlock()
	select {
	case <-errc:
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not end when the backend closed its channel")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[1].Link.State != netlink.StateStopped {
		t.Errorf("statuses seen %v, want up then stopped", states(got))
	}
}

// A client that leaves gets nothing more, and the stream ends.
func TestWatchClientLeavingEndsQuietly(t *testing.T) {
	b := newFakeBackend(testLinkStatus(netlink.StateUp, 0))
	path, _ := serve(t, b)
	ctx, cancel := context.WithCancel(ctxT(t))
	errc := make(chan error, 1)
	go func() {
		errc <- NewClient(path).Watch(ctx, func(Status) error { cancel(); return nil })
	}()
	<-errc
	testwait.For(t, "the subscription to be cancelled", func() bool { n, c := b.subscribers(); return n == 0 && c == 1 })
}

func states(sts []Status) []netlink.State {
	var s []netlink.State
	for _, st := range sts {
		s = append(s, st.Link.State)
	}
	return s
}
