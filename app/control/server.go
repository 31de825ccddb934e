package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/vmnetbar/vmnetbar/app/model"
)

const (
	// shutdownGrace is how long Serve lets requests in flight finish once
	// its context has ended; after it, connections are closed. Watch
	// streams use it to send their last status (200 of them take over a
	// second on a loaded 2-core machine).
	shutdownGrace = 3 * time.Second
	// watchWriteTimeout bounds one event write to a watch client, so a
	// client that stops reading is dropped instead of holding a goroutine.
	watchWriteTimeout = 10 * time.Second
	// answerWriteTimeout bounds writing any other answer.
	answerWriteTimeout = 10 * time.Second
	// maxBody is the largest request body the server reads (no route takes
	// one; a body is read and ignored).
	maxBody = 64 << 10
)

// Defaults for the Server's limits.
const (
	// DefaultMaxConns is how many connections the control API serves at
	// once (watch streams, idle keep-alive connections and half-sent
	// requests included). Beyond it a new connection is answered 503 and
	// closed. The API thus holds at most DefaultMaxConns+17 descriptors
	// (with its listener and up to 16 connections being refused), so a
	// file-descriptor limit well above that leaves the link room to
	// redial.
	DefaultMaxConns = 128
	// DefaultHeaderTimeout bounds how long a client may take to send a
	// request's headers.
	DefaultHeaderTimeout = 5 * time.Second
	// DefaultBodyTimeout bounds how long a client may take to send a
	// request's body once its headers are in.
	DefaultBodyTimeout = 5 * time.Second
	// DefaultIdleTimeout is how long a keep-alive connection may wait for
	// its next request. A watch stream is not idle: it lasts as long as
	// its client reads it.
	DefaultIdleTimeout = time.Minute
)

// Server serves the control API: the app's VMs (NewServer) or a standalone
// link (NewLinkServer). Its exported fields may be set before Serve; their
// zero values mean the defaults above.
type Server struct {
	// MaxConns caps the connections open at once (DefaultMaxConns).
	MaxConns int
	// HeaderTimeout bounds reading a request's headers
	// (DefaultHeaderTimeout).
	HeaderTimeout time.Duration
	// BodyTimeout bounds reading a request's body (DefaultBodyTimeout).
	BodyTimeout time.Duration
	// IdleTimeout closes keep-alive connections that send no next request
	// in time (DefaultIdleTimeout).
	IdleTimeout time.Duration

	log    logrus.FieldLogger
	routes map[string]route // by pattern: a path, or one with NAME (vmPattern)
}

// route is one endpoint of a server.
type route struct {
	method string
	// h answers the request; name is the NAME of a /v1/vms/NAME route, ""
	// for the others.
	h func(w http.ResponseWriter, r *http.Request, name string)
	// unlisted routes only say that this server has no VM: the message
	// for an unknown endpoint does not offer them.
	unlisted bool
}

// Serve answers requests on l until ctx ends, then ends open watch streams
// (each with the status then), lets other requests finish briefly, closes l
// and returns nil. It returns an error if l fails first. Every goroutine it
// started has ended when it returns.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	t := &tracker{h: s, bodyTimeout: orDefault(s.BodyTimeout, DefaultBodyTimeout)}
	maxConns := s.MaxConns
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	srv := &http.Server{
		Handler:           t,
		ReadHeaderTimeout: orDefault(s.HeaderTimeout, DefaultHeaderTimeout),
		IdleTimeout:       orDefault(s.IdleTimeout, DefaultIdleTimeout),
		BaseContext: func(net.Listener) context.Context {
			return context.WithValue(ctx, serveCtxKey{}, ctx)
		},
		ErrorLog: log.New(logWriter{s.log}, "", 0),
	}
	l = newLimitListener(l, maxConns, s.log)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()

	var serveErr error
	select {
	case err := <-errc:
		serveErr = fmt.Errorf("control server: %w", err)
		srv.Close()
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		if err := srv.Shutdown(sctx); err != nil {
			srv.Close()
		}
		cancel()
		<-errc
	}
	t.closeAndWait()
	return serveErr
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// serveCtxKey keys Serve's own context in every request's context, so a
// handler can tell the server stopping from its client leaving.
type serveCtxKey struct{}

// serverStopping reports whether the Serve call that took r is ending.
func serverStopping(r *http.Request) bool {
	ctx, ok := r.Context().Value(serveCtxKey{}).(context.Context)
	return ok && ctx.Err() != nil
}

// tracker counts running handlers so Serve can wait for them, refuses
// requests that arrive once the server is closing, and reads each request's
// body within the body timeout before the handler runs.
type tracker struct {
	h           http.Handler
	bodyTimeout time.Duration
	mu          sync.Mutex
	closing     bool
	running     sync.WaitGroup
}

func (t *tracker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t.mu.Lock()
	if t.closing {
		t.mu.Unlock()
		writeError(w, http.StatusServiceUnavailable, "vmnetbar is shutting down")
		return
	}
	t.running.Add(1)
	t.mu.Unlock()
	defer t.running.Done()
	if !t.readBody(w, r) {
		return
	}
	t.h.ServeHTTP(w, r)
}

// readBody reads and drops r's body (no route takes one) within the body
// timeout, so a request is complete before anything acts on it. It answers
// the request and returns false when the body is too large or too slow.
func (t *tracker) readBody(w http.ResponseWriter, r *http.Request) bool {
	if r.Body == nil || r.Body == http.NoBody {
		return true
	}
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Now().Add(t.bodyTimeout))
	_, err := io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, maxBody))
	if err == nil {
		// At the body's end net/http clears the read deadline (it starts
		// its own read to notice the client leaving), so the deadline
		// cannot end the context of a long action such as a VM stop.
		return true
	}
	// net/http drains what is left of the body after the answer: make
	// that fail at once, so the connection closes now.
	rc.SetReadDeadline(time.Unix(1, 0))
	w.Header().Set("Connection", "close")
	var mbe *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the request body is over %d bytes; the control API takes no request body", maxBody))
	case errors.As(err, &ne) && ne.Timeout():
		writeError(w, http.StatusRequestTimeout, fmt.Sprintf("the request body did not arrive within %s; send the whole request at once (no route takes a body)", t.bodyTimeout))
	default:
		writeError(w, http.StatusBadRequest, "reading the request body: "+err.Error())
	}
	return false
}

func (t *tracker) closeAndWait() {
	t.mu.Lock()
	t.closing = true
	t.mu.Unlock()
	t.running.Wait()
}

// ServeHTTP answers one request. Serve uses it; it also lets the API be
// mounted elsewhere.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	pattern, name := matchPath(r)
	rt, ok := s.routes[pattern]
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint %s; the endpoints are %s", r.URL.Path, s.endpoints()))
		return
	}
	if r.Method != rt.method {
		w.Header().Set("Allow", rt.method)
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s is not allowed on %s; use %s", r.Method, r.URL.Path, rt.method))
		return
	}
	rt.h(w, r, name)
}

// vmsPrefix starts the paths of the routes about one VM:
// /v1/vms/NAME and /v1/vms/NAME/ACTION.
const vmsPrefix = "/v1/vms/"

// vmPattern is the pattern of the route /v1/vms/NAME followed by suffix
// ("" or "/ACTION").
func vmPattern(suffix string) string { return vmsPrefix + "NAME" + suffix }

// matchPath returns the pattern of r's path (the path itself, or
// vmPattern(...) for a path under /v1/vms/) and the VM's NAME in it. The
// NAME is one segment of the escaped path, unescaped: a name with a '/'
// (sent as %2F) reaches the route, which refuses it.
func matchPath(r *http.Request) (pattern, name string) {
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), vmsPrefix)
	if !ok {
		if strings.HasPrefix(r.URL.Path, vmsPrefix) {
			return "", "" // "/v1/vms/" itself escaped: no route
		}
		return r.URL.Path, ""
	}
	seg, action, hasAction := strings.Cut(rest, "/")
	name, err := url.PathUnescape(seg)
	if err != nil || name == "" {
		return r.URL.Path, ""
	}
	if !hasAction {
		return vmPattern(""), name
	}
	if action, err = url.PathUnescape(action); err != nil || strings.Contains(action, "/") {
		return r.URL.Path, ""
	}
	return vmPattern("/" + action), name
}

func (s *Server) endpoints() string {
	eps := make([]string, 0, len(s.routes))
	for p, rt := range s.routes {
		if !rt.unlisted {
			eps = append(eps, rt.method+" "+p)
		}
	}
	slices.Sort(eps)
	return strings.Join(eps, ", ")
}

// kindCoder is implemented by the controller's errors: their model.Kind
// says which HTTP status answers them (kindCodes).
type kindCoder interface{ ErrorKind() model.Kind }

// kindCodes maps the kinds of failure of an action to HTTP statuses.
var kindCodes = map[model.Kind]int{
	model.KindConflict:    http.StatusConflict,
	model.KindUnavailable: http.StatusServiceUnavailable,
	model.KindNotFound:    http.StatusNotFound,
	model.KindAmbiguous:   http.StatusConflict,
}

// answer writes {"ok": true} for a nil error, else the error with its
// status code (500 unless the error chooses one).
func answer(w http.ResponseWriter, log logrus.FieldLogger, err error) {
	if err == nil {
		writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
		return
	}
	code := http.StatusInternalServerError
	var sc statusCoder
	var kc kindCoder
	switch {
	case errors.As(err, &kc):
		code = kindCodes[kc.ErrorKind()]
		if code == 0 {
			code = http.StatusInternalServerError
		}
	case errors.As(err, &sc):
		if c := sc.StatusCode(); c >= 400 && c <= 599 {
			code = c
		}
	}
	if code >= 500 {
		log.WithError(err).Warn("control: request failed")
	}
	writeError(w, code, err.Error())
}

type errorBody struct {
	Error string `json:"error"`
}

// errorJSON is the body of an error answer.
func errorJSON(msg string) []byte {
	b, _ := json.Marshal(errorBody{Error: msg})
	return append(b, '\n')
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorBody{Error: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		b, _ = json.Marshal(errorBody{Error: "encoding the answer: " + err.Error()})
	}
	if err := http.NewResponseController(w).SetWriteDeadline(time.Now().Add(answerWriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return // the connection is gone
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

// logWriter sends net/http's own messages to the injected logger.
type logWriter struct{ log logrus.FieldLogger }

func (l logWriter) Write(p []byte) (int, error) {
	l.log.Debug("control: " + strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
