package control

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"go.uber.org/goleak"

	"github.com/vmnetbar/vmnetbar/internal/latest"
	"github.com/vmnetbar/vmnetbar/internal/testwait"
	"github.com/vmnetbar/vmnetbar/netlink"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(attackEnv); dir != "" {
		os.Exit(runAttacker(dir))
	}
	goleak.VerifyTestMain(m)
}

// fakeBackend is a Backend whose status the test sets.
type fakeBackend struct {
	mu         sync.Mutex
	st         Status
	subs       map[int]chan Status
	nextID     int
	cancels    int
	reconnects int
	err        error // answered by Reconnect
}

func newFakeBackend(st Status) *fakeBackend {
	return &fakeBackend{st: st, subs: map[int]chan Status{}}
}

func (f *fakeBackend) Status() Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

func (f *fakeBackend) Subscribe() (<-chan Status, func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := f.nextID
	f.nextID++
	ch := make(chan Status, 1)
	f.subs[id] = ch
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			f.mu.Lock()
			defer f.mu.Unlock()
			delete(f.subs, id)
			f.cancels++
			close(ch)
		})
	}
}

func (f *fakeBackend) Reconnect() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reconnects++
	return f.err
}

// set changes the status and notifies subscribers, coalescing.
func (f *fakeBackend) set(st Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st = st
	for _, ch := range f.subs {
		latest.Put(ch, st)
	}
}

// drained reports whether every subscriber has taken its pending update.
func (f *fakeBackend) drained() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ch := range f.subs {
		if len(ch) > 0 {
			return false
		}
	}
	return true
}

func (f *fakeBackend) subscribers() (open, cancelled int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs), f.cancels
}

// fakeVMBackend adds VM actions.
type fakeVMBackend struct {
	*fakeBackend
	mu      sync.Mutex
	starts  int
	stops   int
	stopErr error
}

func (f *fakeVMBackend) StartVM(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.starts++
	return nil
}

func (f *fakeVMBackend) StopVM(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stops++
	return f.stopErr
}

// conflictError chooses its HTTP status, as the controller's errors do.
type conflictError struct{ msg string }

func (e conflictError) Error() string   { return e.msg }
func (e conflictError) StatusCode() int { return http.StatusConflict }

// shortTempDir returns a temporary directory short enough for socket paths
// (t.TempDir includes the test name).
func shortTempDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "vnbc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func testLogger(t *testing.T) logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// serve runs a server for b on a fresh socket until the test ends and
// returns the socket path and a function that stops the server.
func serve(t *testing.T, b Backend) (string, func()) {
	t.Helper()
	return serveServer(t, NewServer(b, testLogger(t)))
}

// serveServer is serve for a server the test has configured.
func serveServer(t *testing.T, srv *Server) (string, func()) {
	t.Helper()
	path := shortTempDir(t) + "/c.sock"
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Serve: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Serve did not return after its context ended")
			}
		})
	}
	t.Cleanup(stop)
	return path, stop
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func testLinkStatus(state netlink.State, reconnects uint64) Status {
	return Status{Link: netlink.Status{
		State:      state,
		Reconnects: reconnects,
		Since:      time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		TxFrames:   10,
		TxBytes:    15000,
		RxFrames:   20,
		RxBytes:    30000,
		Dropped:    netlink.Drops{VMBusy: 2},
	}}
}

func TestStatusRoundTrip(t *testing.T) {
	want := testLinkStatus(netlink.StateUp, 3)
	want.Link.LastError = "read: connection reset by peer"
	want.Link.Downtime = 1500 * time.Millisecond
	path, _ := serve(t, newFakeBackend(want))
	got, err := NewClient(path).Status(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if got.VM != nil {
		t.Errorf("VM = %+v, want nil for a backend without a VM", got.VM)
	}
	if got.Link != want.Link {
		t.Errorf("Link = %+v, want %+v", got.Link, want.Link)
	}
}

func TestStatusJSONShape(t *testing.T) {
	st := testLinkStatus(netlink.StateReconnecting, 1)
	st.VM = &VMStatus{State: vmhost.StateError, Since: st.Link.Since, Error: "guest panicked"}
	path, _ := serve(t, newFakeBackend(st))
	resp, body := rawRequest(t, path, http.MethodGet, "/v1/status")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	for _, frag := range []string{
		`"vm":{"state":"error","since":"2026-01-02T03:04:05Z","error":"guest panicked"}`,
		`"link":{"state":"reconnecting","reconnects":1,`,
		`"dropped":2,"drops":{"oversize":0,"vm_busy":2,"partial_read":0,"empty":0}`,
	} {
		if !strings.Contains(body, frag) {
			t.Errorf("body %s lacks %s", body, frag)
		}
	}
	got, err := NewClient(path).Status(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if got.VM == nil || *got.VM != *st.VM {
		t.Errorf("VM = %+v, want %+v", got.VM, st.VM)
	}
}

func TestWatchStreamsCurrentThenChanges(t *testing.T) {
	b := newFakeBackend(testLinkStatus(netlink.StateConnecting, 0))
	path, _ := serve(t, b)
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	got := make(chan Status)
	errc := make(chan error, 1)
	go func() {
		errc <- NewClient(path).Watch(ctx, func(st Status) error {
			select {
			case got <- st:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	next := func() Status {
		t.Helper()
		select {
		case st := <-got:
			return st
		case err := <-errc:
			t.Fatalf("Watch ended: %v", err)
		case <-time.After(5 * time.Second):
			t.Fatal("no status from the watch stream")
		}
		return Status{}
	}
	if st := next(); st.Link.State != netlink.StateConnecting {
		t.Fatalf("first status %v, want connecting", st.Link.State)
	}
	testwait.For(t, "the watch subscription", func() bool { n, _ := b.subscribers(); return n == 1 })
	// An update equal to the last line sent is not repeated.
	b.set(testLinkStatus(netlink.StateConnecting, 0))
	testwait.For(t, "the server to take the update", b.drained)
	for i, s := range []netlink.State{netlink.StateUp, netlink.StateReconnecting, netlink.StateUp} {
		b.set(testLinkStatus(s, uint64(i)))
		if st := next(); st.Link.State != s || st.Link.Reconnects != uint64(i) {
			t.Fatalf("change %d: got %v/%d, want %v/%d", i, st.Link.State, st.Link.Reconnects, s, i)
		}
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("Watch after cancel = %v, want context.Canceled", err)
	}
	// The server notices the client left and cancels its subscription.
	testwait.For(t, "the subscription to be cancelled", func() bool {
		n, c := b.subscribers()
		return n == 0 && c == 1
	})
}

func TestWatchEndsWhenServerStops(t *testing.T) {
	b := newFakeBackend(testLinkStatus(netlink.StateUp, 0))
	path, stop := serve(t, b)
	first := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		var once sync.Once
		errc <- NewClient(path).Watch(ctxT(t), func(Status) error {
			once.Do(func() { close(first) })
			return nil
		})
	}()
	<-first
	testwait.For(t, "the watch subscription", func() bool { n, _ := b.subscribers(); return n == 1 })
	stop()
	select {
	case err := <-errc:
		if err == nil || !strings.Contains(err.Error(), "ended the watch stream") {
			t.Errorf("Watch = %v, want the stream-ended error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not end when the server stopped")
	}
	if n, c := b.subscribers(); n != 0 || c != 1 {
		t.Errorf("subscriptions open %d cancelled %d, want 0 and 1", n, c)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket still there after Serve returned: %v", err)
	}
}

func TestWatchEndsWhenBackendClosesChannel(t *testing.T) {
	b := newFakeBackend(testLinkStatus(netlink.StateUp, 0))
	path, _ := serve(t, b)
	errc := make(chan error, 1)
	seen := make(chan struct{}, 1)
	go func() {
		errc <- NewClient(path).Watch(ctxT(t), func(Status) error {
			seen <- struct{}{}
			return nil
		})
	}()
	<-seen
	testwait.For(t, "the watch subscription", func() bool { n, _ := b.subscribers(); return n == 1 })
	// The backend shuts down: it closes every subscription channel.
	b.mu.Lock()
	for id, ch := range b.subs {
		close(ch)
		delete(b.subs, id)
	}
	b.mu.Unlock()
	select {
	case err := <-errc:
		if err == nil {
			t.Error("Watch = nil, want an error saying the stream ended")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not end when the backend closed its channel")
	}
}

func TestWatchCallbackErrorStops(t *testing.T) {
	path, _ := serve(t, newFakeBackend(testLinkStatus(netlink.StateUp, 0)))
	stopErr := errors.New("enough")
	err := NewClient(path).Watch(ctxT(t), func(Status) error { return stopErr })
	if !errors.Is(err, stopErr) {
		t.Errorf("Watch = %v, want the callback's error", err)
	}
}

func TestReconnect(t *testing.T) {
	b := newFakeBackend(testLinkStatus(netlink.StateUp, 0))
	path, _ := serve(t, b)
	c := NewClient(path)
	if err := c.Reconnect(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	n := b.reconnects
	b.mu.Unlock()
	if n != 1 {
		t.Errorf("reconnects = %d, want 1", n)
	}

	b.mu.Lock()
	b.err = conflictError{"the link is stopped: nothing to reconnect"}
	b.mu.Unlock()
	err := c.Reconnect(ctxT(t))
	var ae *Error
	if !errors.As(err, &ae) || ae.Code != http.StatusConflict || ae.Message != "the link is stopped: nothing to reconnect" {
		t.Errorf("Reconnect = %#v, want a 409 Error with the backend's message", err)
	}

	b.mu.Lock()
	b.err = errors.New("plain failure")
	b.mu.Unlock()
	if err := c.Reconnect(ctxT(t)); !errors.As(err, &ae) || ae.Code != http.StatusInternalServerError || ae.Error() != "plain failure" {
		t.Errorf("Reconnect = %#v, want a 500 Error with the backend's message", err)
	}
}

func TestVMRoutesWithoutVM(t *testing.T) {
	path, _ := serve(t, newFakeBackend(testLinkStatus(netlink.StateUp, 0)))
	c := NewClient(path)
	for name, f := range map[string]func(context.Context) error{"start": c.StartVM, "stop": c.StopVM} {
		err := f(ctxT(t))
		var ae *Error
		if !errors.As(err, &ae) || ae.Code != http.StatusNotFound || !strings.Contains(ae.Message, "this vmnetbar serves no VM") {
			t.Errorf("%s = %v, want 404 'this vmnetbar serves no VM'", name, err)
		}
	}
}

func TestVMRoutes(t *testing.T) {
	b := &fakeVMBackend{fakeBackend: newFakeBackend(testLinkStatus(netlink.StateUp, 0))}
	path, _ := serve(t, b)
	c := NewClient(path)
	if err := c.StartVM(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := c.StopVM(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	b.stopErr = conflictError{"the VM is already stopped"}
	b.mu.Unlock()
	err := c.StopVM(ctxT(t))
	var ae *Error
	if !errors.As(err, &ae) || ae.Code != http.StatusConflict || err.Error() != "the VM is already stopped" {
		t.Errorf("StopVM = %v, want 409 'the VM is already stopped'", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.starts != 1 || b.stops != 2 {
		t.Errorf("starts %d stops %d, want 1 and 2", b.starts, b.stops)
	}
}

func TestWrongMethodAndUnknownPath(t *testing.T) {
	path, _ := serve(t, newFakeBackend(testLinkStatus(netlink.StateUp, 0)))
	for _, tc := range []struct {
		method, path string
		code         int
		allow, msg   string
	}{
		{http.MethodPost, "/v1/status", 405, "GET", `"error":"POST is not allowed on /v1/status; use GET"`},
		{http.MethodGet, "/v1/link/reconnect", 405, "POST", `"error":"GET is not allowed on /v1/link/reconnect; use POST"`},
		{http.MethodDelete, "/v1/vm/stop", 405, "POST", `use POST`},
		{http.MethodGet, "/v2/status", 404, "", `"error":"no such endpoint /v2/status; the endpoints are GET /v1/status,`},
		{http.MethodGet, "/", 404, "", `no such endpoint /`},
	} {
		resp, body := rawRequest(t, path, tc.method, tc.path)
		if resp.StatusCode != tc.code || !strings.Contains(body, tc.msg) || resp.Header.Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d Allow=%q %s; want %d Allow=%q with %s", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Allow"), body, tc.code, tc.allow, tc.msg)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: Content-Type %q, want application/json", tc.method, tc.path, ct)
		}
	}
}

func TestClientNotRunning(t *testing.T) {
	dir := shortTempDir(t)
	missing := dir + "/missing.sock"
	_, err := NewClient(missing).Status(ctxT(t))
	if !errors.Is(err, ErrNotRunning) || !strings.Contains(err.Error(), "no control socket at "+missing) {
		t.Errorf("Status on a missing socket = %v", err)
	}

	stale := makeStaleSocket(t, dir+"/stale.sock")
	err = NewClient(stale).Reconnect(ctxT(t))
	if !errors.Is(err, ErrNotRunning) || !strings.Contains(err.Error(), stale) {
		t.Errorf("Reconnect on a stale socket = %v", err)
	}
	err = NewClient(missing).Watch(ctxT(t), func(Status) error { return nil })
	if !errors.Is(err, ErrNotRunning) {
		t.Errorf("Watch on a missing socket = %v", err)
	}
}

func TestServeReturnsListenerError(t *testing.T) {
	l, err := Listen(shortTempDir(t) + "/c.sock")
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	err = NewServer(newFakeBackend(Status{}), testLogger(t)).Serve(context.Background(), l)
	if err == nil {
		t.Fatal("Serve on a closed listener returned nil")
	}
}

// rawRequest sends a request without the Client, to check status codes and
// headers.
func rawRequest(t *testing.T, path, method, url string) (*http.Response, string) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		},
		DisableKeepAlives: true,
	}}
	req, err := http.NewRequestWithContext(ctxT(t), method, "http://x"+url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// makeStaleSocket leaves a socket file at path that nobody listens on.
func makeStaleSocket(t *testing.T, path string) string {
	t.Helper()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	return path
}
