package control

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"go.uber.org/goleak"

	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/internal/fakeapp"
	"github.com/vmnetbar/vmnetbar/netlink"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(attackEnv); dir != "" {
		os.Exit(runAttacker(dir))
	}
	goleak.VerifyTestMain(m)
}

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

// serve runs the app's server for m on a fresh socket until the test ends
// and returns the socket path and a function that stops the server.
func serve(t *testing.T, m model.Machines) (string, func()) {
	t.Helper()
	return serveServer(t, NewServer(m, testLogger(t)))
}

// serveServer is serve for a server the test has made.
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

// since is the time every test status changed at.
var since = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// twoVMs returns machines "build" (stopped) and "dev" (running, its link up
// with traffic), every time fixed.
func twoVMs(t testing.TB) *fakeapp.Machines {
	t.Helper()
	m := fakeapp.New()
	must(t, m.Drive("dev", vmhost.StateRunning, func(v *model.VMStatus) {
		v.VM = model.VM{State: vmhost.StateRunning, Since: since, SSH: model.SSHReady}
		v.Link = testLink(netlink.StateUp, 3)
	}))
	must(t, m.Change("build", func(v *model.VMStatus) {
		v.VM = model.VM{State: vmhost.StateStopped, Since: since, SSH: model.SSHUnknown}
		v.Link = netlink.Status{State: netlink.StateStopped, Since: since}
	}))
	return m
}

// must fails the test on a fixture's error (a change of state the fake
// VMs refuse, see fakeapp.Legal).
func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func testLink(state netlink.State, reconnects uint64) netlink.Status {
	return netlink.Status{
		State:      state,
		Reconnects: reconnects,
		Since:      since,
		TxFrames:   10,
		TxBytes:    15000,
		RxFrames:   20,
		RxBytes:    30000,
		Dropped:    netlink.Drops{VMBusy: 2},
	}
}

// sameJSON fails the test unless got and want encode alike (times compare
// by their JSON, as they travel).
func sameJSON(t *testing.T, what string, got, want any) {
	t.Helper()
	g, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	w, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if string(g) != string(w) {
		t.Errorf("%s:\n got %s\nwant %s", what, g, w)
	}
}

// apiError fails the test unless err is an *Error with code whose message
// has every fragment.
func apiError(t *testing.T, what string, err error, code int, frags ...string) {
	t.Helper()
	var ae *Error
	if !errors.As(err, &ae) || ae.Code != code {
		t.Errorf("%s = %v (%T), want a %d *Error", what, err, err, code)
		return
	}
	for _, f := range frags {
		if !strings.Contains(ae.Message, f) {
			t.Errorf("%s = %q, which lacks %q", what, ae.Message, f)
		}
	}
}

func TestStatusIsTheOverview(t *testing.T) {
	m := twoVMs(t)
	path, _ := serve(t, m)
	resp, body := rawRequest(t, path, http.MethodGet, "/v1/status")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	for _, frag := range []string{
		`{"vms":[{"name":"build","vm":{"state":"stopped","since":"2026-01-02T03:04:05Z","error":"","ssh":"unknown"},"link":{"state":"stopped",`,
		`{"name":"dev","vm":{"state":"running","since":"2026-01-02T03:04:05Z","error":"","ssh":"ready"},"link":{"state":"up","reconnects":3,`,
		`"dropped":2,"drops":{"oversize":0,"vm_busy":2,"partial_read":0,"empty":0}`,
		`"actions":{"start":false,"stop":true,"reconnect":true}}]}`,
	} {
		if !strings.Contains(body, frag) {
			t.Errorf("body %s lacks %s", body, frag)
		}
	}
	got, err := NewClient(path).Overview(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, "Overview", got, m.Status())
	if IsStandaloneLink(got.VMs[0]) {
		t.Error("a VM of the app is taken for a standalone link")
	}

	m.SetConfigError("config.yaml:3: vms.dev.kernel: no such file")
	_, body = rawRequest(t, path, http.MethodGet, "/v1/status")
	if !strings.HasSuffix(strings.TrimSpace(body), `],"config_error":"config.yaml:3: vms.dev.kernel: no such file"}`) {
		t.Errorf("body %s lacks the config error", body)
	}
	if got, err := NewClient(path).Overview(ctxT(t)); err != nil || got.ConfigError != "config.yaml:3: vms.dev.kernel: no such file" {
		t.Errorf("Overview = %+v, %v; want the config error", got, err)
	}
}

// unsorted answers its VMs in reverse order, or none as a nil slice.
type unsorted struct{ *fakeapp.Machines }

func (u unsorted) Status() model.Overview {
	o := u.Machines.Status()
	if len(o.VMs) == 0 {
		o.VMs = nil
		return o
	}
	slices.Reverse(o.VMs)
	return o
}

func TestStatusSortedAndAList(t *testing.T) {
	m := fakeapp.New("a", "b", "c")
	path, _ := serve(t, unsorted{m})
	o, err := NewClient(path).Overview(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if names := o.Names(); !slices.Equal(names, []string{"a", "b", "c"}) {
		t.Errorf("VMs %v, want sorted by name", names)
	}
	var first model.Overview
	err = NewClient(path).Watch(ctxT(t), func(o model.Overview) error { first = o; return errors.New("enough") })
	if names := first.Names(); !slices.Equal(names, []string{"a", "b", "c"}) {
		t.Errorf("watched VMs %v (%v), want sorted by name", names, err)
	}

	path, _ = serve(t, unsorted{fakeapp.New()})
	if _, body := rawRequest(t, path, http.MethodGet, "/v1/status"); strings.TrimSpace(body) != `{"vms":[]}` {
		t.Errorf("no VMs: %s, want {\"vms\":[]}", body)
	}
}

func TestVMRoute(t *testing.T) {
	m := twoVMs(t)
	path, _ := serve(t, m)
	c := NewClient(path)
	resp, body := rawRequest(t, path, http.MethodGet, "/v1/vms/dev")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(body, `{"name":"dev","vm":{"state":"running",`) {
		t.Errorf("GET /v1/vms/dev: %d %s", resp.StatusCode, body)
	}
	v, err := c.VM(ctxT(t), "dev")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := m.Status().Lookup("dev")
	sameJSON(t, "VM dev", v, want)

	_, err = c.VM(ctxT(t), "nope")
	apiError(t, "VM nope", err, http.StatusNotFound, `no VM named "nope"; the VMs are build, dev`)
	resp, body = rawRequest(t, path, http.MethodGet, "/v1/vms/nope")
	if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Content-Type") != "application/json" || !strings.HasPrefix(body, `{"error":"no VM named \"nope\"`) {
		t.Errorf("GET /v1/vms/nope: %d %s", resp.StatusCode, body)
	}

	// With no name, the only VM; with two, a 409 naming them.
	_, err = c.VM(ctxT(t), "")
	apiError(t, "VM with no name of two", err, http.StatusConflict, "the VMs are build, dev: name one")
	m.Remove("build")
	if v, err := c.VM(ctxT(t), ""); err != nil || v.Name != "dev" {
		t.Errorf("VM with no name of one = %+v, %v; want dev", v, err)
	}
}

func TestNamesThatCannotBeVMs(t *testing.T) {
	m := twoVMs(t)
	path, _ := serve(t, m)
	c := NewClient(path)
	for _, tc := range []struct{ name, why string }{
		{"a/b", "a VM name has no '/'"},
		{strings.Repeat("x", 65), "a VM name is at most 64 bytes"},
		{"a\x01b", "a VM name has no control characters"},
	} {
		_, err := c.VM(ctxT(t), tc.name)
		apiError(t, "VM "+tc.name, err, http.StatusNotFound, tc.why, "the VMs are build, dev")
		apiError(t, "Start "+tc.name, c.Start(ctxT(t), tc.name), http.StatusNotFound, tc.why)
		apiError(t, "Reconnect "+tc.name, c.Reconnect(ctxT(t), tc.name), http.StatusNotFound, tc.why)
		apiError(t, "Reset "+tc.name, c.Reset(ctxT(t), tc.name), http.StatusNotFound, tc.why)
	}
	// The long name is not echoed whole.
	_, err := c.VM(ctxT(t), strings.Repeat("x", 10000))
	if err == nil || len(err.Error()) > 300 {
		t.Errorf("a 10000-byte name: %d-byte error", len(err.Error()))
	}
	if calls := m.Calls(); len(calls) != 0 {
		t.Errorf("the machines were asked %v about names that cannot be VMs", calls)
	}
	// A VM's name travels escaped.
	m.Set("a b", func(v *model.VMStatus) {})
	if err := c.Start(ctxT(t), "a b"); err != nil {
		t.Errorf("Start(\"a b\"): %v", err)
	}
	if calls := m.Calls(); !slices.Equal(calls, []string{"start a b"}) {
		t.Errorf("calls %q, want start of \"a b\"", calls)
	}
}

func TestVMActions(t *testing.T) {
	m := twoVMs(t)
	path, _ := serve(t, m)
	c := NewClient(path)
	state := func(name string) vmhost.State { v, _ := m.Status().Lookup(name); return v.VM.State }

	if err := c.Start(ctxT(t), "build"); err != nil {
		t.Fatal(err)
	}
	if state("build") != vmhost.StateRunning {
		t.Errorf("build %v after its start", state("build"))
	}
	if err := c.Reconnect(ctxT(t), "dev"); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(ctxT(t), "dev"); err != nil {
		t.Fatal(err)
	}
	if state("dev") != vmhost.StateStopped || state("build") != vmhost.StateRunning {
		t.Errorf("dev %v build %v after dev's stop, want stopped and running", state("dev"), state("build"))
	}
	want := []string{"start build", "reconnect dev", "stop dev"}
	if calls := m.Calls(); !slices.Equal(calls, want) {
		t.Errorf("calls %q, want %q", calls, want)
	}
	resp, body := rawRequest(t, path, http.MethodPost, "/v1/vms/dev/start")
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(body) != `{"ok":true}` {
		t.Errorf("POST /v1/vms/dev/start: %d %s", resp.StatusCode, body)
	}

	// Not allowed now: 409 with the machines' message.
	apiError(t, "Start of a running VM", c.Start(ctxT(t), "dev"), http.StatusConflict, "cannot start dev: the VM is running")
	if err := c.Stop(ctxT(t), "dev"); err != nil {
		t.Fatal(err)
	}
	apiError(t, "Reconnect of a stopped VM", c.Reconnect(ctxT(t), "dev"), http.StatusConflict, "cannot reconnect dev: the VM is stopped")
	for name, f := range map[string]func(context.Context, string) error{"start": c.Start, "stop": c.Stop, "reconnect": c.Reconnect} {
		apiError(t, name+" nope", f(ctxT(t), "nope"), http.StatusNotFound, `no VM named "nope"; the VMs are build, dev`)
	}
	m.Close()
	apiError(t, "Start after Close", c.Start(ctxT(t), "dev"), http.StatusServiceUnavailable, "vmnetbar is shutting down")
}

// TestResetRoute: POST /v1/vms/NAME/reset resets a stopped VM made from
// an image; a running VM, a VM that boots a kernel and an unknown name are
// refused with the machines' message, and there is no reset without a
// NAME.
func TestResetRoute(t *testing.T) {
	m := twoVMs(t)
	m.Set("build", func(v *model.VMStatus) { v.VM.Image = "/images/debian-12.qcow2" })
	m.Set("dev", func(v *model.VMStatus) { v.VM.Image = "/images/debian-12.qcow2" })
	m.Set("kernel", func(v *model.VMStatus) {})
	path, _ := serve(t, m)
	c := NewClient(path)

	if err := c.Reset(ctxT(t), "build"); err != nil {
		t.Fatalf("Reset of a stopped VM made from an image: %v", err)
	}
	resp, body := rawRequest(t, path, http.MethodPost, "/v1/vms/build/reset")
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(body) != `{"ok":true}` {
		t.Errorf("POST /v1/vms/build/reset: %d %s", resp.StatusCode, body)
	}
	apiError(t, "Reset of a running VM", c.Reset(ctxT(t), "dev"), http.StatusConflict, "cannot reset dev", "stop it first")
	apiError(t, "Reset of a kernel VM", c.Reset(ctxT(t), "kernel"), http.StatusConflict, "cannot reset kernel: it boots a kernel, not an image")
	apiError(t, "Reset of nope", c.Reset(ctxT(t), "nope"), http.StatusNotFound, `no VM named "nope"; the VMs are build, dev, kernel`)
	if err := c.Reset(ctxT(t), ""); err == nil || !strings.Contains(err.Error(), "needs the VM's NAME") {
		t.Errorf("Reset without a NAME = %v, want an error asking for it", err)
	}
	want := []string{"reset build", "reset build", "reset dev", "reset kernel", "reset nope"}
	if calls := m.Calls(); !slices.Equal(calls, want) {
		t.Errorf("calls %q, want %q (nothing for the reset without a NAME)", calls, want)
	}
	if v, _ := m.Status().Lookup("dev"); v.VM.State != vmhost.StateRunning {
		t.Errorf("dev is %v after a refused reset, want still running", v.VM.State)
	}
	m.Close()
	apiError(t, "Reset after Close", c.Reset(ctxT(t), "build"), http.StatusServiceUnavailable, "vmnetbar is shutting down")
}

func TestActionErrorCodes(t *testing.T) {
	m := fakeapp.New("dev")
	path, _ := serve(t, m)
	c := NewClient(path)
	for _, tc := range []struct {
		err  error
		code int
	}{
		{errors.New("QEMU exited: status 1"), http.StatusInternalServerError},
		{&model.Error{Kind: model.KindConflict, Msg: "conflict"}, http.StatusConflict},
		{&model.Error{Kind: model.KindAmbiguous, Msg: "ambiguous"}, http.StatusConflict},
		{&model.Error{Kind: model.KindNotFound, Msg: "not found"}, http.StatusNotFound},
		{&model.Error{Kind: model.KindUnavailable, Msg: "unavailable"}, http.StatusServiceUnavailable},
		{&model.Error{Kind: 99, Msg: "an unknown kind"}, http.StatusInternalServerError},
		{&Error{Code: http.StatusTeapot, Message: "an Error passed back"}, http.StatusTeapot},
		{&Error{Code: 200, Message: "no error code"}, http.StatusInternalServerError},
	} {
		m.FailStarts(tc.err)
		apiError(t, tc.err.Error(), c.Start(ctxT(t), "dev"), tc.code, tc.err.Error())
	}
}

func TestLegacyRoutesWithOneVM(t *testing.T) {
	m := fakeapp.New("default")
	path, _ := serve(t, m)
	c := NewClient(path)
	resp, body := rawRequest(t, path, http.MethodPost, "/v1/vm/start")
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(body) != `{"ok":true}` {
		t.Fatalf("POST /v1/vm/start: %d %s", resp.StatusCode, body)
	}
	if err := c.Reconnect(ctxT(t), ""); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(ctxT(t), ""); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctxT(t), ""); err != nil {
		t.Fatal(err)
	}
	want := []string{"start ", "reconnect ", "stop ", "start "}
	if calls := m.Calls(); !slices.Equal(calls, want) {
		t.Errorf("calls %q, want %q (the name \"\" for the only VM)", calls, want)
	}
	if v, _ := m.Status().Lookup("default"); v.VM.State != vmhost.StateRunning || v.Link.Reconnects != 1 {
		t.Errorf("default %v with %d reconnects, want running with 1", v.VM.State, v.Link.Reconnects)
	}
	apiError(t, "Start of the running VM", c.Start(ctxT(t), ""), http.StatusConflict, "cannot start default: the VM is running")
}

func TestLegacyRoutesWithTwoVMs(t *testing.T) {
	m := twoVMs(t)
	path, _ := serve(t, m)
	for _, p := range []string{"/v1/vm/start", "/v1/vm/stop", "/v1/link/reconnect"} {
		resp, body := rawRequest(t, path, http.MethodPost, p)
		if resp.StatusCode != http.StatusConflict || !strings.Contains(body, `"error":"the VMs are build, dev: name one"`) {
			t.Errorf("POST %s: %d %s, want 409 naming the VMs", p, resp.StatusCode, body)
		}
	}
	c := NewClient(path)
	apiError(t, "Start", c.Start(ctxT(t), ""), http.StatusConflict, "the VMs are build, dev")
	apiError(t, "Stop", c.Stop(ctxT(t), ""), http.StatusConflict, "the VMs are build, dev")
	apiError(t, "Reconnect", c.Reconnect(ctxT(t), ""), http.StatusConflict, "the VMs are build, dev")
	if v, _ := m.Status().Lookup("dev"); v.VM.State != vmhost.StateRunning || v.Link.Reconnects != 3 {
		t.Errorf("dev changed by an ambiguous request: %v, %d reconnects", v.VM.State, v.Link.Reconnects)
	}

	path, _ = serve(t, fakeapp.New())
	apiError(t, "Start with no VMs", NewClient(path).Start(ctxT(t), ""), http.StatusConflict, "no VMs are configured")
}

func TestWrongMethodAndUnknownPath(t *testing.T) {
	path, _ := serve(t, twoVMs(t))
	for _, tc := range []struct {
		method, path string
		code         int
		allow, msg   string
	}{
		{http.MethodPost, "/v1/status", 405, "GET", `"error":"POST is not allowed on /v1/status; use GET"`},
		{http.MethodPost, "/v1/watch", 405, "GET", `use GET`},
		{http.MethodGet, "/v1/link/reconnect", 405, "POST", `"error":"GET is not allowed on /v1/link/reconnect; use POST"`},
		{http.MethodDelete, "/v1/vm/stop", 405, "POST", `use POST`},
		{http.MethodGet, "/v1/vm/start", 405, "POST", `use POST`},
		{http.MethodPost, "/v1/vms/dev", 405, "GET", `"error":"POST is not allowed on /v1/vms/dev; use GET"`},
		{http.MethodGet, "/v1/vms/dev/start", 405, "POST", `"error":"GET is not allowed on /v1/vms/dev/start; use POST"`},
		{http.MethodGet, "/v1/vms/nope/stop", 405, "POST", `use POST`},
		{http.MethodPut, "/v1/vms/dev/reconnect", 405, "POST", `use POST`},
		{http.MethodPost, "/v1/vms/dev/restart", 404, "", `"error":"no such endpoint /v1/vms/dev/restart; the endpoints are GET /v1/status, GET /v1/vms/NAME, GET /v1/watch, POST /v1/link/reconnect, POST /v1/vm/start, POST /v1/vm/stop, POST /v1/vms/NAME/reconnect, POST /v1/vms/NAME/reset, POST /v1/vms/NAME/start, POST /v1/vms/NAME/stop"`},
		{http.MethodGet, "/v1/vms/dev/reset", 405, "POST", `"error":"GET is not allowed on /v1/vms/dev/reset; use POST"`},
		{http.MethodGet, "/v1/vms/", 404, "", `no such endpoint /v1/vms/;`},
		{http.MethodGet, "/v1/vms", 404, "", `no such endpoint /v1/vms;`},
		{http.MethodPost, "/v1/%76ms/NAME/start", 404, "", `no such endpoint /v1/vms/NAME/start;`},
		{http.MethodPost, "/v1/vms//start", 404, "", `no such endpoint /v1/vms//start;`},
		{http.MethodPost, "/v1/vms/dev/start/now", 404, "", `no such endpoint /v1/vms/dev/start/now;`},
		{http.MethodPost, "/v1/vms/dev/", 404, "", `no such endpoint /v1/vms/dev/;`},
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
	_, err := NewClient(missing).Overview(ctxT(t))
	if !errors.Is(err, ErrNotRunning) || !strings.Contains(err.Error(), "no control socket at "+missing) {
		t.Errorf("Overview on a missing socket = %v", err)
	}

	stale := makeStaleSocket(t, dir+"/stale.sock")
	err = NewClient(stale).Reconnect(ctxT(t), "dev")
	if !errors.Is(err, ErrNotRunning) || !strings.Contains(err.Error(), stale) {
		t.Errorf("Reconnect on a stale socket = %v", err)
	}
	err = NewClient(missing).Watch(ctxT(t), func(model.Overview) error { return nil })
	if !errors.Is(err, ErrNotRunning) {
		t.Errorf("Watch on a missing socket = %v", err)
	}
	if _, err = NewClient(missing).VM(ctxT(t), "dev"); !errors.Is(err, ErrNotRunning) {
		t.Errorf("VM on a missing socket = %v", err)
	}
}

func TestServeReturnsListenerError(t *testing.T) {
	l, err := Listen(shortTempDir(t) + "/c.sock")
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	err = NewServer(fakeapp.New(), testLogger(t)).Serve(context.Background(), l)
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
