package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

const (
	// shutdownGrace is how long Serve lets requests in flight finish once
	// its context has ended; after it, connections are closed.
	shutdownGrace = 300 * time.Millisecond
	// watchWriteTimeout bounds one event write to a watch client, so a
	// client that stops reading is dropped instead of holding a goroutine.
	watchWriteTimeout = 10 * time.Second
	// readHeaderTimeout bounds how long a client may take to send headers.
	readHeaderTimeout = 10 * time.Second
)

// Server serves the control API for one Backend.
type Server struct {
	b      Backend
	log    logrus.FieldLogger
	routes map[string]route
}

type route struct {
	method string
	h      func(w http.ResponseWriter, r *http.Request)
}

// NewServer returns a server for b. log receives request errors.
func NewServer(b Backend, log logrus.FieldLogger) *Server {
	s := &Server{b: b, log: log}
	s.routes = map[string]route{
		"/v1/status":         {http.MethodGet, s.status},
		"/v1/watch":          {http.MethodGet, s.watch},
		"/v1/link/reconnect": {http.MethodPost, s.reconnect},
		"/v1/vm/start":       {http.MethodPost, s.vmAction(VMBackend.StartVM)},
		"/v1/vm/stop":        {http.MethodPost, s.vmAction(VMBackend.StopVM)},
	}
	return s
}

// Serve answers requests on l until ctx ends, then closes open watch
// streams, lets other requests finish briefly, closes l and returns nil.
// It returns an error if l fails first. Every goroutine it started has
// ended when it returns.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	t := &tracker{h: s}
	srv := &http.Server{
		Handler:           t,
		ReadHeaderTimeout: readHeaderTimeout,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          log.New(logWriter{s.log}, "", 0),
	}
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

// tracker counts running handlers so Serve can wait for them, and refuses
// requests that arrive once the server is closing.
type tracker struct {
	h       http.Handler
	mu      sync.Mutex
	closing bool
	running sync.WaitGroup
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
	t.h.ServeHTTP(w, r)
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
	rt, ok := s.routes[r.URL.Path]
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint %s; the endpoints are %s", r.URL.Path, s.endpoints()))
		return
	}
	if r.Method != rt.method {
		w.Header().Set("Allow", rt.method)
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s is not allowed on %s; use %s", r.Method, r.URL.Path, rt.method))
		return
	}
	rt.h(w, r)
}

func (s *Server) endpoints() string {
	eps := make([]string, 0, len(s.routes))
	for p, rt := range s.routes {
		eps = append(eps, rt.method+" "+p)
	}
	slices.Sort(eps)
	return strings.Join(eps, ", ")
}

func (s *Server) status(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.b.Status())
}

// watch streams the current status, then every change, as
// newline-delimited JSON, until the client goes or the server stops.
func (s *Server) watch(w http.ResponseWriter, r *http.Request) {
	updates, cancel := s.b.Subscribe()
	defer cancel()
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	var last []byte
	send := func(st Status) error {
		b, err := json.Marshal(st)
		if err != nil {
			return err
		}
		if bytes.Equal(b, last) {
			return nil // nothing changed since the last line
		}
		last = b
		if err := rc.SetWriteDeadline(time.Now().Add(watchWriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err
		}
		if _, err := w.Write(append(b, '\n')); err != nil {
			return err
		}
		return rc.Flush()
	}
	if err := send(s.b.Status()); err != nil {
		s.log.WithError(err).Debug("control: watch client gone")
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case st, ok := <-updates:
			if !ok {
				return
			}
			if err := send(st); err != nil {
				s.log.WithError(err).Debug("control: watch client gone")
				return
			}
		}
	}
}

func (s *Server) reconnect(w http.ResponseWriter, _ *http.Request) {
	s.answer(w, s.b.Reconnect())
}

func (s *Server) vmAction(action func(VMBackend, context.Context) error) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		vb, ok := s.b.(VMBackend)
		if !ok {
			s.answer(w, errNoVM)
			return
		}
		s.answer(w, action(vb, r.Context()))
	}
}

// answer writes {"ok": true} for a nil error, else the error with its
// status code (500 unless the error chooses one).
func (s *Server) answer(w http.ResponseWriter, err error) {
	if err == nil {
		writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
		return
	}
	code := http.StatusInternalServerError
	var sc statusCoder
	if errors.As(err, &sc) {
		if c := sc.StatusCode(); c >= 400 && c <= 599 {
			code = c
		}
	}
	if code >= 500 {
		s.log.WithError(err).Warn("control: request failed")
	}
	writeError(w, code, err.Error())
}

type errorBody struct {
	Error string `json:"error"`
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
