package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// maxAnswer bounds an answer (or one watch line) read from a server.
const maxAnswer = 1 << 20

// Client talks to a control server on a UNIX socket. It keeps no
// connection open between calls.
type Client struct {
	path string
	hc   *http.Client
}

// NewClient returns a client for the control socket at path.
func NewClient(path string) *Client {
	c := &Client{path: path}
	c.hc = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		DisableKeepAlives: true,
	}}
	return c
}

// Path is the control socket's path.
func (c *Client) Path() string { return c.path }

// Status returns the server's current status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	start := time.Now()
	resp, err := c.do(ctx, http.MethodGet, "/v1/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAnswer)).Decode(&st); err != nil {
		if ctx.Err() != nil {
			return st, c.ctxError(ctx, start)
		}
		return st, fmt.Errorf("reading the status from %s: %w", c.path, err)
	}
	return st, nil
}

// Watch calls fn with the current status and then with every change, until
// ctx ends (it returns ctx.Err()), fn returns an error (it returns that
// error) or the server ends the stream (an error saying so).
func (c *Client) Watch(ctx context.Context, fn func(Status) error) error {
	resp, err := c.do(ctx, http.MethodGet, "/v1/watch")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 4096), maxAnswer)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var st Status
		if err := json.Unmarshal(sc.Bytes(), &st); err != nil {
			return fmt.Errorf("reading a status from the watch stream of %s: %w", c.path, err)
		}
		if err := fn(st); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("watch stream from %s broke: %w", c.path, err)
	}
	return fmt.Errorf("the server at %s ended the watch stream (vmnetbar stopped)", c.path)
}

// Reconnect asks the server to drop its daemon connection and redial.
func (c *Client) Reconnect(ctx context.Context) error {
	return c.action(ctx, "/v1/link/reconnect")
}

// StartVM asks the server to start its VM.
func (c *Client) StartVM(ctx context.Context) error { return c.action(ctx, "/v1/vm/start") }

// StopVM asks the server to stop its VM.
func (c *Client) StopVM(ctx context.Context) error { return c.action(ctx, "/v1/vm/stop") }

func (c *Client) action(ctx context.Context, path string) error {
	resp, err := c.do(ctx, http.MethodPost, path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var ok struct {
		OK bool `json:"ok"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAnswer)).Decode(&ok); err != nil || !ok.OK {
		return fmt.Errorf("unexpected answer from %s to POST %s", c.path, path)
	}
	return nil
}

// do sends a request and returns a 200 response; any other answer becomes
// an *Error carrying the server's message.
func (c *Client) do(ctx context.Context, method, path string) (*http.Response, error) {
	if err := c.checkPath(); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://vmnetbar"+path, nil)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, c.ctxError(ctx, start)
		}
		return nil, c.dialError(err)
	}
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	var eb errorBody
	if json.Unmarshal(body, &eb) != nil || eb.Error == "" {
		eb.Error = fmt.Sprintf("%s %s answered %s: %s", method, path, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil, &Error{Code: resp.StatusCode, Message: eb.Error}
}

// checkPath refuses, before any dial, a socket path too long for a socket
// address and a fallback directory that is not private (ErrNotPrivate).
func (c *Client) checkPath() error {
	if len(c.path) > MaxSocketPathLen {
		return fmt.Errorf("%w: %s is %d bytes, the limit is %d (macOS's sun_path is 104 bytes); pass a shorter --control PATH", ErrPathTooLong, c.path, len(c.path), MaxSocketPathLen)
	}
	if needsPrivateDir(c.path) {
		err := checkPrivateDir(filepath.Dir(c.path), os.Getuid())
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w (no control socket at %s)", ErrNotRunning, c.path)
		}
		return err
	}
	return nil
}

// NoAnswerError is returned when the server did not answer before the
// caller's deadline. It wraps context.DeadlineExceeded.
type NoAnswerError struct {
	Path  string        // the control socket
	After time.Duration // how long the client waited
}

func (e *NoAnswerError) Error() string {
	return fmt.Sprintf("vmnetbar at %s did not answer within %s; is it hung? Check its log", e.Path, e.After)
}

func (e *NoAnswerError) Unwrap() error { return context.DeadlineExceeded }

// ctxError explains why a request that began at start ended with ctx.
func (c *Client) ctxError(ctx context.Context, start time.Time) error {
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return ctx.Err()
	}
	after := time.Since(start)
	if d, ok := ctx.Deadline(); ok {
		after = d.Sub(start)
	}
	// The deadline was set a moment before start: round up, so a 5 s
	// timeout reads "5s", not "4.99s".
	unit := 10 * time.Millisecond
	if after >= time.Second {
		unit = 100 * time.Millisecond
	}
	after = max(0, (after+unit-1)/unit*unit)
	return &NoAnswerError{Path: c.path, After: after}
}

// dialError explains a failed request in terms of the socket.
func (c *Client) dialError(err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w (no control socket at %s)", ErrNotRunning, c.path)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("%w (nothing answers on the control socket %s)", ErrNotRunning, c.path)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("cannot use the control socket %s: permission denied (it belongs to another user)", c.path)
	}
	return fmt.Errorf("talking to vmnetbar at %s: %w", c.path, err)
}
