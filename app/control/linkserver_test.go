package control

import (
	"bufio"
	"encoding/json"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/internal/latest"
	"github.com/vmnetbar/vmnetbar/internal/testwait"
	"github.com/vmnetbar/vmnetbar/netlink"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

// fakeLink is a LinkSource whose status the test sets.
type fakeLink struct {
	mu         sync.Mutex
	st         netlink.Status
	hub        latest.Hub[netlink.Status]
	chans      []<-chan netlink.Status
	reconnects int
}

func newFakeLink(st netlink.Status) *fakeLink { return &fakeLink{st: st} }

func (f *fakeLink) Status() netlink.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

func (f *fakeLink) Subscribe() (<-chan netlink.Status, func()) {
	ch, cancel := f.hub.Subscribe()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.chans = append(f.chans, ch)
	return ch, cancel
}

func (f *fakeLink) Reconnect() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reconnects++
}

func (f *fakeLink) reconnected() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reconnects
}

// set changes the status and tells the subscribers.
func (f *fakeLink) set(st netlink.Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st = st
	f.hub.Publish(st)
}

// drained reports whether every subscriber has taken its pending update.
func (f *fakeLink) drained() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ch := range f.chans {
		if len(ch) > 0 {
			return false
		}
	}
	return true
}

// serveLink runs a standalone link's server for l until the test ends.
func serveLink(t *testing.T, l LinkSource) (string, func()) {
	t.Helper()
	return serveServer(t, NewLinkServer(l, testLogger(t)))
}

// todaysLinkStatus is the standalone link's answer as its clients from
// before several VMs read it: their JSON keys.
type todaysLinkStatus struct {
	Link struct {
		State      string `json:"state"`
		Reconnects uint64 `json:"reconnects"`
		Since      string `json:"since"`
		LastError  string `json:"last_error"`
		TxBytes    uint64 `json:"tx_bytes"`
		RxBytes    uint64 `json:"rx_bytes"`
		Dropped    uint64 `json:"dropped"`
	} `json:"link"`
	Actions struct {
		Start     bool `json:"start"`
		Stop      bool `json:"stop"`
		Reconnect bool `json:"reconnect"`
	} `json:"actions"`
}

// checkTodaysShape fails unless line is today's {"link":...,"actions":...}
// with the link up, reconnects n and the reconnect action only.
func checkTodaysShape(t *testing.T, what, line string, state string, n uint64) {
	t.Helper()
	var keys map[string]json.RawMessage
	if err := json.Unmarshal([]byte(line), &keys); err != nil {
		t.Fatalf("%s: %s: %v", what, line, err)
	}
	if got := slices.Sorted(func(yield func(string) bool) {
		for k := range keys {
			if !yield(k) {
				return
			}
		}
	}); !slices.Equal(got, []string{"actions", "link"}) {
		t.Errorf("%s: keys %v, want actions and link only: %s", what, got, line)
	}
	var st todaysLinkStatus
	if err := json.Unmarshal([]byte(line), &st); err != nil {
		t.Fatal(err)
	}
	if st.Link.State != state || st.Link.Reconnects != n || st.Link.Since != "2026-01-02T03:04:05Z" ||
		st.Link.TxBytes != 15000 || st.Link.RxBytes != 30000 || st.Link.Dropped != 2 {
		t.Errorf("%s: link %+v", what, st.Link)
	}
	running := state == "up" || state == "reconnecting" || state == "connecting"
	if st.Actions.Start || st.Actions.Stop || st.Actions.Reconnect != running {
		t.Errorf("%s: actions %+v, want reconnect %v only", what, st.Actions, running)
	}
}

func TestLinkServerStatusContract(t *testing.T) {
	ls := testLink(netlink.StateUp, 3)
	ls.LastError = "read: connection reset by peer"
	path, _ := serveLink(t, newFakeLink(ls))
	resp, body := rawRequest(t, path, http.MethodGet, "/v1/status")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /v1/status: %d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	checkTodaysShape(t, "GET /v1/status", body, "up", 3)
	if !strings.Contains(body, `"last_error":"read: connection reset by peer"`) {
		t.Errorf("body %s lacks the last error", body)
	}
}

func TestLinkServerWatchContract(t *testing.T) {
	fl := newFakeLink(testLink(netlink.StateConnecting, 0))
	path, stop := serveLink(t, fl)
	rc := dialRaw(t, path)
	rc.send("GET /v1/watch HTTP/1.1\r\nHost: x\r\n\r\n")
	rc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(rc.r, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("GET /v1/watch: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	lines := bufio.NewScanner(resp.Body)
	line := func() string {
		t.Helper()
		if !lines.Scan() {
			t.Fatalf("the watch stream ended: %v", lines.Err())
		}
		return lines.Text()
	}
	checkTodaysShape(t, "first line", line(), "connecting", 0)
	testwait.For(t, "the watch subscription", func() bool { return fl.hub.Len() == 1 })
	// An update equal to the last line sent is not repeated.
	fl.set(testLink(netlink.StateConnecting, 0))
	testwait.For(t, "the server to take the update", fl.drained)
	fl.set(testLink(netlink.StateUp, 1))
	checkTodaysShape(t, "a change", line(), "up", 1)
	// The server stops after a change nobody was told of: the last line
	// is that status.
	fl.mu.Lock()
	fl.st = testLink(netlink.StateReconnecting, 2)
	fl.mu.Unlock()
	stop()
	checkTodaysShape(t, "the last line", line(), "reconnecting", 2)
	if n := fl.hub.Len(); n != 0 {
		t.Errorf("%d subscriptions open after Serve returned", n)
	}
}

func TestLinkServerWatchEndsWithTheLink(t *testing.T) {
	fl := newFakeLink(testLink(netlink.StateUp, 0))
	path, _ := serveLink(t, fl)
	w := watch(t, path)
	w.next()
	testwait.For(t, "the watch subscription", func() bool { return fl.hub.Len() == 1 })
	fl.mu.Lock()
	fl.st = testLink(netlink.StateStopped, 0)
	fl.mu.Unlock()
	fl.hub.Close() // the link shuts down
	if o := w.next(); o.VMs[0].Link.State != netlink.StateStopped {
		t.Errorf("last status %v, want the link stopped", o.VMs[0].Link.State)
	}
	select {
	case err := <-w.errc:
		w.errc <- err
		if err == nil || !strings.Contains(err.Error(), "ended the watch stream") {
			t.Errorf("Watch = %v, want the stream-ended error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not end when the link closed its channel")
	}
}

func TestLinkServerReconnectAndVMRoutes(t *testing.T) {
	fl := newFakeLink(testLink(netlink.StateUp, 0))
	path, _ := serveLink(t, fl)
	resp, body := rawRequest(t, path, http.MethodPost, "/v1/link/reconnect")
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(body) != `{"ok":true}` {
		t.Errorf("POST /v1/link/reconnect: %d %s", resp.StatusCode, body)
	}
	if n := fl.reconnected(); n != 1 {
		t.Errorf("reconnects %d, want 1", n)
	}
	for _, tc := range []struct {
		method, path string
		code         int
		allow, msg   string
	}{
		{http.MethodPost, "/v1/vm/start", 404, "", `"error":"this vmnetbar serves no VM (it is a standalone link); start and stop the VM with the hypervisor that owns it"`},
		{http.MethodPost, "/v1/vm/stop", 404, "", `this vmnetbar serves no VM`},
		{http.MethodGet, "/v1/vm/stop", 405, "POST", `"error":"GET is not allowed on /v1/vm/stop; use POST"`},
		{http.MethodGet, "/v1/vms/dev", 404, "", `this vmnetbar serves no VM (it is a standalone link); it has no VMs by name`},
		{http.MethodPost, "/v1/vms/dev/start", 404, "", `this vmnetbar serves no VM`},
		{http.MethodPost, "/v1/vms/dev/stop", 404, "", `this vmnetbar serves no VM`},
		{http.MethodPost, "/v1/vms/dev/reconnect", 404, "", `reconnect its link without a NAME`},
		{http.MethodPost, "/v1/vms/dev/reset", 404, "", `this vmnetbar serves no VM`},
		{http.MethodPost, "/v1/status", 405, "GET", `use GET`},
		{http.MethodGet, "/v1/link/reconnect", 405, "POST", `use POST`},
		{http.MethodGet, "/v2/status", 404, "", `"error":"no such endpoint /v2/status; the endpoints are GET /v1/status, GET /v1/watch, POST /v1/link/reconnect"}`},
	} {
		resp, body := rawRequest(t, path, tc.method, tc.path)
		if resp.StatusCode != tc.code || !strings.Contains(body, tc.msg) || resp.Header.Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d Allow=%q %s; want %d Allow=%q with %s", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Allow"), body, tc.code, tc.allow, tc.msg)
		}
	}
	if n := fl.reconnected(); n != 1 {
		t.Errorf("reconnects %d after the VM routes, want still 1", n)
	}
}

func TestClientAgainstLinkServer(t *testing.T) {
	fl := newFakeLink(testLink(netlink.StateUp, 3))
	path, _ := serveLink(t, fl)
	c := NewClient(path)
	o, err := c.Overview(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(o.VMs) != 1 || o.ConfigError != "" {
		t.Fatalf("Overview = %+v, want one entry", o)
	}
	v := o.VMs[0]
	if v.Name != "" || v.VM != (model.VM{}) || v.VM.State != 0 || !IsStandaloneLink(v) {
		t.Errorf("the link's entry %+v, want no name and the zero VM", v)
	}
	if v.Link.State != netlink.StateUp || v.Link.Reconnects != 3 || v.Actions != (model.Actions{Reconnect: true}) {
		t.Errorf("the link's entry: link %+v actions %+v", v.Link, v.Actions)
	}
	if got, err := c.VM(ctxT(t), ""); err != nil || !IsStandaloneLink(got) || got.Link.Reconnects != 3 {
		t.Errorf("VM(\"\") = %+v, %v; want the link's entry", got, err)
	}
	_, err = c.VM(ctxT(t), "dev")
	apiError(t, "VM dev", err, http.StatusNotFound, "this vmnetbar serves no VM")
	if err := c.Reconnect(ctxT(t), ""); err != nil || fl.reconnected() != 1 {
		t.Errorf("Reconnect = %v, link reconnects %d; want 1", err, fl.reconnected())
	}
	apiError(t, "Reconnect dev", c.Reconnect(ctxT(t), "dev"), http.StatusNotFound, "serves no VM")
	apiError(t, "Start", c.Start(ctxT(t), ""), http.StatusNotFound, "serves no VM")
	apiError(t, "Stop dev", c.Stop(ctxT(t), "dev"), http.StatusNotFound, "serves no VM")

	w := watch(t, path)
	if o := w.next(); len(o.VMs) != 1 || !IsStandaloneLink(o.VMs[0]) || o.VMs[0].Link.Reconnects != 3 {
		t.Errorf("first watched %+v", o)
	}
	testwait.For(t, "the watch subscription", func() bool { return fl.hub.Len() == 1 })
	fl.set(testLink(netlink.StateReconnecting, 4))
	if o := w.next(); len(o.VMs) != 1 || !IsStandaloneLink(o.VMs[0]) || o.VMs[0].Link.State != netlink.StateReconnecting {
		t.Errorf("watched change %+v", o)
	}
}

// A vmnetbar from before several VMs answers a single VM's status: the
// client shows it as one VM without a name.
func TestClientAgainstSingleVMServer(t *testing.T) {
	path := shortTempDir(t) + "/c.sock"
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	const answer = `{"vm":{"state":"running","since":"2026-01-02T03:04:05Z","error":""},"link":{"state":"up","reconnects":2},"actions":{"start":false,"stop":true,"reconnect":true}}`
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/watch" {
			w.Write([]byte(answer + "\n" + answer + "\n"))
			return
		}
		w.Write([]byte(answer))
	})}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(l) }()
	t.Cleanup(func() { srv.Close(); <-done })

	o, err := NewClient(path).Overview(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(o.VMs) != 1 || o.VMs[0].Name != "" || o.VMs[0].VM.State != vmhost.StateRunning || IsStandaloneLink(o.VMs[0]) ||
		o.VMs[0].Link.Reconnects != 2 || !o.VMs[0].Actions.Stop {
		t.Errorf("Overview = %+v, want one unnamed running VM", o)
	}
	n := 0
	err = NewClient(path).Watch(ctxT(t), func(o model.Overview) error {
		if len(o.VMs) != 1 || o.VMs[0].VM.State != vmhost.StateRunning {
			t.Errorf("watched %+v", o)
		}
		n++
		return nil
	})
	if n != 2 || err == nil || !strings.Contains(err.Error(), "ended the watch stream") {
		t.Errorf("Watch saw %d lines and returned %v", n, err)
	}
}

func TestClientRefusesAnswersOfNeitherShape(t *testing.T) {
	for _, tc := range []struct{ body, msg string }{
		{`{}`, `the answer has neither "vms" nor "link"`},
		{`{"vms":{"dev":{}}}`, `"vms": json: cannot unmarshal`},
		{`[1]`, `cannot unmarshal array`},
	} {
		_, err := decodeOverview([]byte(tc.body))
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("decodeOverview(%s) = %v, want %q", tc.body, err, tc.msg)
		}
	}
	o, err := decodeOverview([]byte(`{"vms":null}`))
	if err != nil || len(o.VMs) != 0 {
		t.Errorf("decodeOverview of no VMs = %+v, %v", o, err)
	}
	if _, err := decodeOverview([]byte(`{"vms":[]}`)); err != nil {
		t.Error(err)
	}
}
