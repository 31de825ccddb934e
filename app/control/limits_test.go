package control

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/internal/fakeapp"
	"github.com/vmnetbar/vmnetbar/internal/testwait"
)

// rawConn is a client connection driven by hand, to send partial requests
// and keep connections open.
type rawConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, path string) *rawConn {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, r: bufio.NewReader(c)}
}

func (rc *rawConn) send(s string) {
	rc.t.Helper()
	if _, err := io.WriteString(rc.c, s); err != nil {
		rc.t.Fatal(err)
	}
}

// response reads one answer and its body.
func (rc *rawConn) response() (*http.Response, string) {
	rc.t.Helper()
	rc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(rc.r, nil)
	if err != nil {
		rc.t.Fatalf("reading an answer: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		rc.t.Fatalf("reading an answer's body: %v", err)
	}
	return resp, string(b)
}

// get sends a keep-alive GET /v1/status and reads the answer.
func (rc *rawConn) get() {
	rc.t.Helper()
	rc.send("GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, body := rc.response(); resp.StatusCode != http.StatusOK {
		rc.t.Fatalf("GET /v1/status: %d %s", resp.StatusCode, body)
	}
}

// waitClosed fails unless the server closes the connection (after any
// answer) within 5 s.
func (rc *rawConn) waitClosed(what string) {
	rc.t.Helper()
	rc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.Copy(io.Discard, rc.r)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		rc.t.Fatalf("%s: the server kept the connection open", what)
	}
}

func TestIdleKeepAliveConnectionClosed(t *testing.T) {
	srv := NewServer(twoVMs(t), testLogger(t))
	srv.IdleTimeout = 100 * time.Millisecond
	path, _ := serveServer(t, srv)
	rc := dialRaw(t, path)
	rc.get()
	rc.get() // keep-alive: the connection serves a second request
	rc.waitClosed("idle keep-alive connection")
}

func TestSilentAndHalfSentHeadersClosed(t *testing.T) {
	srv := NewServer(twoVMs(t), testLogger(t))
	srv.HeaderTimeout = 100 * time.Millisecond
	path, _ := serveServer(t, srv)
	silent := dialRaw(t, path)
	half := dialRaw(t, path)
	half.send("GET /v1/status HTTP/1.1\r\nHost: x\r\n")
	silent.waitClosed("connection that sent nothing")
	half.waitClosed("connection that sent half its headers")
}

func TestBodyNeverSentClosedWithoutActing(t *testing.T) {
	m := twoVMs(t)
	srv := NewServer(m, testLogger(t))
	srv.BodyTimeout = 100 * time.Millisecond
	path, _ := serveServer(t, srv)
	rc := dialRaw(t, path)
	rc.send("POST /v1/vms/dev/reconnect HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
	resp, body := rc.response()
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(body, `"error":"the request body did not arrive within 100ms`) {
		t.Errorf("answer %d %s, want 408 saying the body did not arrive", resp.StatusCode, body)
	}
	rc.waitClosed("request whose body never came")
	if calls := m.Calls(); len(calls) != 0 {
		t.Errorf("the incomplete request acted: %q", calls)
	}
}

func TestRequestBodiesReadAndIgnored(t *testing.T) {
	m := twoVMs(t)
	path, _ := serve(t, m)
	rc := dialRaw(t, path)
	rc.send("POST /v1/vms/dev/reconnect HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
	if resp, body := rc.response(); resp.StatusCode != http.StatusOK {
		t.Fatalf("POST with a small body: %d %s", resp.StatusCode, body)
	}
	rc.get() // the connection is still good

	big := dialRaw(t, path)
	big.send("POST /v1/vms/dev/reconnect HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + strings.Repeat("x", 100000))
	if resp, body := big.response(); resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(body, "takes no request body") {
		t.Errorf("POST with a 100 kB body: %d %s, want 413", resp.StatusCode, body)
	}
	if calls := m.Calls(); !slices.Equal(calls, []string{"reconnect dev"}) {
		t.Errorf("calls %q, want one reconnect", calls)
	}
}

// slowStop's Stop takes a while and fails if its context ends early.
type slowStop struct {
	*fakeapp.Machines
	took time.Duration
}

func (s slowStop) Stop(ctx context.Context, name string) error {
	select {
	case <-ctx.Done():
		return errors.New("the request's context ended during the stop")
	case <-time.After(s.took):
		return s.Machines.Stop(ctx, name)
	}
}

// The read timeouts must not end the context of an action that takes
// longer than they do (net/http cancels it when a read deadline passes).
func TestTimeoutsDoNotCutSlowActions(t *testing.T) {
	m := fakeapp.New("dev")
	srv := NewServer(slowStop{m, 500 * time.Millisecond}, testLogger(t))
	srv.HeaderTimeout = 50 * time.Millisecond
	srv.BodyTimeout = 50 * time.Millisecond
	srv.IdleTimeout = 50 * time.Millisecond
	path, _ := serveServer(t, srv)
	c := NewClient(path)
	if err := c.Start(ctxT(t), "dev"); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(ctxT(t), "dev"); err != nil {
		t.Errorf("Stop without a body: %v", err)
	}
	if err := c.Start(ctxT(t), "dev"); err != nil {
		t.Fatal(err)
	}
	rc := dialRaw(t, path)
	rc.send("POST /v1/vms/dev/stop HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
	if resp, body := rc.response(); resp.StatusCode != http.StatusOK {
		t.Errorf("Stop with a body: %d %s", resp.StatusCode, body)
	}
}

func TestWatchOutlivesIdleTimeout(t *testing.T) {
	m := twoVMs(t)
	srv := NewServer(m, testLogger(t))
	const idle = 50 * time.Millisecond
	srv.IdleTimeout = idle
	srv.HeaderTimeout = idle
	srv.BodyTimeout = idle
	path, _ := serveServer(t, srv)
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	got := make(chan model.Overview, 16)
	errc := make(chan error, 1)
	go func() {
		errc <- NewClient(path).Watch(ctx, func(o model.Overview) error { got <- o; return nil })
	}()
	next := func() model.Overview {
		t.Helper()
		select {
		case st := <-got:
			return st
		case err := <-errc:
			t.Fatalf("the watch stream ended: %v", err)
		case <-time.After(5 * time.Second):
			t.Fatal("no status from the watch stream")
		}
		return model.Overview{}
	}
	next()
	testwait.For(t, "the watch subscription", func() bool { return m.Subscribers() == 1 })
	for i := uint64(1); i <= 4; i++ {
		// Quiet for several idle timeouts: the stream is not idle.
		time.Sleep(3 * idle)
		m.Set("dev", func(v *model.VMStatus) { v.Link.Reconnects = i })
		if o := next(); vmOf(o, "dev").Link.Reconnects != i {
			t.Fatalf("update %d: got reconnects %d", i, vmOf(o, "dev").Link.Reconnects)
		}
	}
	cancel()
	<-errc
}

func TestConnectionCap(t *testing.T) {
	log, hook := logtest.NewNullLogger()
	srv := NewServer(twoVMs(t), log)
	srv.MaxConns = 3
	srv.HeaderTimeout = time.Minute // the half-sent request stays
	path, _ := serveServer(t, srv)

	// Three connections of the kinds that used to pile up: a watch stream,
	// an idle keep-alive connection and a half-sent request.
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	first := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		var once sync.Once
		errc <- NewClient(path).Watch(ctx, func(model.Overview) error { once.Do(func() { close(first) }); return nil })
	}()
	<-first
	idle := dialRaw(t, path)
	idle.get()
	half := dialRaw(t, path)
	half.send("GET /v1/status HTTP/1.1\r\n")

	// The next ones are refused at once, with a JSON error, twice.
	c := NewClient(path)
	for i := 0; i < 2; i++ {
		_, err := c.Overview(ctxT(t))
		var ae *Error
		if !errors.As(err, &ae) || ae.Code != http.StatusServiceUnavailable || !strings.Contains(ae.Message, "control API is busy: 3 connections are open") {
			t.Fatalf("request over the cap: %v, want a 503 Error saying the API is busy", err)
		}
	}
	raw := dialRaw(t, path)
	raw.send("GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, body := raw.response()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Content-Type") != "application/json" || !strings.HasPrefix(body, `{"error":"vmnetbar's control API is busy`) {
		t.Errorf("raw answer over the cap: %d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	raw.waitClosed("refused connection")
	warnings := 0
	for _, e := range hook.AllEntries() {
		if e.Level == logrus.WarnLevel && strings.Contains(e.Message, "too many API connections") {
			warnings++
			if e.Data["max_connections"] != 3 {
				t.Errorf("warning fields %v, want max_connections 3", e.Data)
			}
		}
	}
	if warnings != 1 {
		t.Errorf("%d warnings about refused connections, want 1 for the burst", warnings)
	}

	// Once one closes, new connections work again.
	idle.c.Close()
	testwait.For(t, "a request to succeed after a connection closed", func() bool {
		_, err := c.Overview(ctxT(t))
		return err == nil
	})
	cancel()
	<-errc
	half.c.Close()
	testwait.For(t, "three connections at once to fit again", func() bool { return fits(t, path, 3) })
}

// fits reports whether n keep-alive connections at once get answers.
func fits(t *testing.T, path string, n int) bool {
	ok := true
	for i := 0; i < n && ok; i++ {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		ok = resp.StatusCode == http.StatusOK
	}
	return ok
}

// blockingListener hands out the connections it is given, then fails.
type blockingListener struct {
	conns chan net.Conn
	done  chan struct{}
}

func (l *blockingListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}
func (l *blockingListener) Close() error   { return nil }
func (l *blockingListener) Addr() net.Addr { return &net.UnixAddr{Name: "fake", Net: "unix"} }

// A refused client that never reads must not stall Accept.
func TestRefusalDoesNotBlockAccept(t *testing.T) {
	bl := &blockingListener{conns: make(chan net.Conn, 2), done: make(chan struct{})}
	l := newLimitListener(bl, 1, testLogger(t))
	held, heldPeer := net.Pipe()
	defer heldPeer.Close()
	stuck, stuckPeer := net.Pipe() // nobody ever reads stuckPeer: a write blocks
	defer stuckPeer.Close()
	bl.conns <- held
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	bl.conns <- stuck
	close(bl.done)
	accepted := make(chan error, 1)
	go func() { _, err := l.Accept(); accepted <- err }()
	select {
	case err := <-accepted:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept = %v, want the listener's error after refusing", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept hung writing the 503 to a client that does not read")
	}
	if n := l.conns(); n != 1 {
		t.Errorf("%d connections counted, want 1", n)
	}
	c.Close()
	c.Close() // a second Close does not free a second slot
	if n := l.conns(); n != 0 {
		t.Errorf("%d connections counted after Close, want 0", n)
	}
	l.Close() // ends the refusal under way
}

func TestDefaultLimits(t *testing.T) {
	if DefaultIdleTimeout <= 0 || DefaultIdleTimeout > 2*time.Minute {
		t.Errorf("DefaultIdleTimeout = %v, want at most 2 minutes", DefaultIdleTimeout)
	}
	if DefaultMaxConns < 16 || DefaultMaxConns > 1024 {
		t.Errorf("DefaultMaxConns = %d", DefaultMaxConns)
	}
}
