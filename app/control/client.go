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
	"strings"
	"syscall"
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
	resp, err := c.do(ctx, http.MethodGet, "/v1/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAnswer)).Decode(&st); err != nil {
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
	req, err := http.NewRequestWithContext(ctx, method, "http://vmnetbar"+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
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
