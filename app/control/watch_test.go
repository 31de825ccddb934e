package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/internal/fakeapp"
	"github.com/vmnetbar/vmnetbar/internal/testwait"
	"github.com/vmnetbar/vmnetbar/netlink"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

// tapped is a fakeapp.Machines whose subscriptions the test sees, and whose
// status can change without a word to them (quietly).
type tapped struct {
	*fakeapp.Machines
	mu    sync.Mutex
	chans []<-chan model.Overview
	quiet *model.Overview
}

func tap(m *fakeapp.Machines) *tapped { return &tapped{Machines: m} }

func (m *tapped) Subscribe() (<-chan model.Overview, func()) {
	ch, cancel := m.Machines.Subscribe()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.chans = append(m.chans, ch)
	return ch, cancel
}

// drained reports whether every subscriber has taken its pending update.
func (m *tapped) drained() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ch := range m.chans {
		if len(ch) > 0 {
			return false
		}
	}
	return true
}

func (m *tapped) Status() model.Overview {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.quiet != nil {
		return *m.quiet
	}
	return m.Machines.Status()
}

// quietly makes Status answer o, telling no subscriber.
func (m *tapped) quietly(o model.Overview) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.quiet = &o
}

// watcher runs Client.Watch until the test ends; next returns the next
// Overview.
type watcher struct {
	t      *testing.T
	got    chan model.Overview
	errc   chan error
	cancel func()
}

func watch(t *testing.T, path string) *watcher {
	ctx, cancel := context.WithCancel(ctxT(t))
	w := &watcher{t: t, got: make(chan model.Overview), errc: make(chan error, 1), cancel: cancel}
	go func() {
		w.errc <- NewClient(path).Watch(ctx, func(o model.Overview) error {
			select {
			case w.got <- o:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	t.Cleanup(func() { cancel(); <-w.errc })
	return w
}

func (w *watcher) next() model.Overview {
	w.t.Helper()
	select {
	case o := <-w.got:
		return o
	case err := <-w.errc:
		w.errc <- err
		w.t.Fatalf("Watch ended: %v", err)
	case <-time.After(5 * time.Second):
		w.t.Fatal("no status from the watch stream")
	}
	return model.Overview{}
}

// end cancels the watch and returns what Watch returned.
func (w *watcher) end() error {
	w.cancel()
	err := <-w.errc
	w.errc <- err
	return err
}

func vmOf(o model.Overview, name string) model.VMStatus {
	v, _ := o.Lookup(name)
	return v
}

func TestWatchStreamsOverviewThenChanges(t *testing.T) {
	m := tap(twoVMs(t))
	path, _ := serve(t, m)
	w := watch(t, path)
	first := w.next()
	sameJSON(t, "first line", first, m.Status())
	testwait.For(t, "the watch subscription", func() bool { return m.Subscribers() == 1 })

	// An update equal to the last line sent is not repeated.
	m.Set("dev", func(*model.VMStatus) {})
	testwait.For(t, "the server to take the update", m.drained)
	// A change of one VM is a line; the other VM is as it was.
	must(t, m.Change("build", func(v *model.VMStatus) { v.VM.State, v.Link.State = vmhost.StateStarting, netlink.StateConnecting }))
	o := w.next()
	if b := vmOf(o, "build"); b.VM.State != vmhost.StateStarting || b.Link.State != netlink.StateConnecting || !b.Actions.Stop {
		t.Errorf("build after its change: %+v", b)
	}
	sameJSON(t, "dev after build changed", vmOf(o, "dev"), vmOf(first, "dev"))
	m.Set("dev", func(v *model.VMStatus) { v.Link.Reconnects = 4 })
	if o := w.next(); vmOf(o, "dev").Link.Reconnects != 4 || vmOf(o, "build").VM.State != vmhost.StateStarting {
		t.Errorf("after dev's reconnect: %+v", o)
	}
	m.SetConfigError("config.yaml:1: bad")
	if o := w.next(); o.ConfigError != "config.yaml:1: bad" || len(o.VMs) != 2 {
		t.Errorf("after a bad reload: %+v", o)
	}
	m.Remove("build")
	if o := w.next(); len(o.VMs) != 1 || o.VMs[0].Name != "dev" {
		t.Errorf("after build was removed: %v", o.Names())
	}
	if err := w.end(); !errors.Is(err, context.Canceled) {
		t.Errorf("Watch after cancel = %v, want context.Canceled", err)
	}
	// The server notices the client left and cancels its subscription.
	testwait.For(t, "the subscription to be cancelled", func() bool { return m.Subscribers() == 0 })
}

// A reader that does not read while the VMs change gets the latest status,
// after the earlier ones in order.
func TestWatchSlowReaderGetsTheLatest(t *testing.T) {
	m := twoVMs(t)
	path, _ := serve(t, m)
	rc := dialRaw(t, path)
	rc.send("GET /v1/watch HTTP/1.1\r\nHost: x\r\n\r\n")
	rc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(rc.r, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "application/x-ndjson" {
		t.Fatalf("GET /v1/watch: %d %q", resp.StatusCode, ct)
	}
	lines := bufio.NewScanner(resp.Body)
	lines.Buffer(nil, maxAnswer)
	read := func() model.Overview {
		t.Helper()
		if !lines.Scan() {
			t.Fatalf("the watch stream ended: %v", lines.Err())
		}
		var o model.Overview
		if err := json.Unmarshal(lines.Bytes(), &o); err != nil {
			t.Fatalf("line %s: %v", lines.Bytes(), err)
		}
		return o
	}
	if o := read(); vmOf(o, "dev").Link.Reconnects != 3 {
		t.Fatalf("first line %+v", o)
	}
	testwait.For(t, "the watch subscription", func() bool { return m.Subscribers() == 1 })
	const last = 200
	for i := uint64(4); i <= last; i++ {
		m.Set("dev", func(v *model.VMStatus) { v.Link.Reconnects = i })
	}
	prev := uint64(3)
	for prev != last {
		n := vmOf(read(), "dev").Link.Reconnects
		if n <= prev {
			t.Fatalf("reconnects %d after %d: out of order", n, prev)
		}
		prev = n
	}
}

func TestWatchEndsWhenServerStops(t *testing.T) {
	m := twoVMs(t)
	path, stop := serve(t, m)
	w := watch(t, path)
	w.next()
	testwait.For(t, "the watch subscription", func() bool { return m.Subscribers() == 1 })
	stop()
	select {
	case err := <-w.errc:
		w.errc <- err
		if err == nil || !strings.Contains(err.Error(), "ended the watch stream") {
			t.Errorf("Watch = %v, want the stream-ended error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not end when the server stopped")
	}
	if n := m.Subscribers(); n != 0 {
		t.Errorf("%d subscriptions open after Serve returned", n)
	}
}

func TestWatchEndsWhenMachinesClose(t *testing.T) {
	m := tap(twoVMs(t))
	path, _ := serve(t, m)
	w := watch(t, path)
	w.next()
	testwait.For(t, "the watch subscription", func() bool { return m.Subscribers() == 1 })
	// The app shuts down after a change nobody was told of: the stream
	// ends with that status.
	final := m.Status()
	final.VMs[1].VM.State = vmhost.StateStopped
	m.quietly(final)
	m.Close()
	if o := w.next(); vmOf(o, "dev").VM.State != vmhost.StateStopped {
		t.Errorf("last status: dev %v, want stopped", vmOf(o, "dev").VM.State)
	}
	select {
	case err := <-w.errc:
		w.errc <- err
		if err == nil || !strings.Contains(err.Error(), "ended the watch stream") {
			t.Errorf("Watch = %v, want the stream-ended error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not end when the machines closed")
	}
}

func TestWatchCallbackErrorStops(t *testing.T) {
	path, _ := serve(t, twoVMs(t))
	stopErr := errors.New("enough")
	err := NewClient(path).Watch(ctxT(t), func(model.Overview) error { return stopErr })
	if !errors.Is(err, stopErr) {
		t.Errorf("Watch = %v, want the callback's error", err)
	}
}

// A client that leaves gets nothing more, and the stream ends.
func TestWatchClientLeavingEndsQuietly(t *testing.T) {
	m := twoVMs(t)
	path, _ := serve(t, m)
	ctx, cancel := context.WithCancel(ctxT(t))
	errc := make(chan error, 1)
	go func() {
		errc <- NewClient(path).Watch(ctx, func(model.Overview) error { cancel(); return nil })
	}()
	<-errc
	testwait.For(t, "the subscription to be cancelled", func() bool { return m.Subscribers() == 0 })
}

// Many watchers, a last change followed at once by the server stopping:
// every watcher's last line is the final status. The handler used to pick
// at random between the ended context and the pending update.
func TestWatchersSeeFinalStatusAtShutdown(t *testing.T) {
	const watchers = 200
	for round := 0; round < 3; round++ {
		// One VM: small lines, so that 200 final lines fit in the
		// shutdown grace on a loaded machine.
		m := fakeapp.New("dev")
		must(t, m.Drive("dev", vmhost.StateRunning, nil))
		srv := NewServer(m, testLogger(t))
		srv.MaxConns = watchers
		path, stop := serveServer(t, srv)
		var (
			mu     sync.Mutex
			last   = make([]model.Overview, watchers)
			seen   int
			wg     sync.WaitGroup
			client = NewClient(path)
		)
		for i := 0; i < watchers; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var once sync.Once
				err := client.Watch(ctxT(t), func(o model.Overview) error {
					mu.Lock()
					defer mu.Unlock()
					last[i] = o
					once.Do(func() { seen++ })
					return nil
				})
				mu.Lock()
				defer mu.Unlock()
				if len(last[i].VMs) == 0 {
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
		testwait.For(t, "every watch subscription", func() bool { return m.Subscribers() == watchers })
		m.Set("dev", func(v *model.VMStatus) { v.Link.State = netlink.StateReconnecting })
		must(t, m.Change("dev", func(v *model.VMStatus) { v.VM.State, v.Link.State = vmhost.StateStopped, netlink.StateStopped }))
		stop()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("watch streams did not end when the server stopped")
		}
		missed := 0
		for _, o := range last {
			if vmOf(o, "dev").Link.State != netlink.StateStopped {
				missed++
			}
		}
		if missed > 0 {
			t.Fatalf("round %d: %d of %d watchers never saw the final status", round, missed, watchers)
		}
	}
}
