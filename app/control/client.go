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
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/netlink"
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

// Overview returns the status of every VM the server serves (GET
// /v1/status), sorted by name.
//
// A standalone link's server (vmnetbar link --control) serves no VM: its
// answer, {"link": {...}, "actions": {...}}, comes as an Overview of one
// VMStatus with Name "" and the zero VM (VM.State is 0, which is no
// vmhost state), holding the link and its actions: show it as a link only
// (IsStandaloneLink). A vmnetbar from before several VMs, which answers
// {"vm": {...}, "link": {...}}, comes as one VMStatus with Name "" and its
// VM.
func (c *Client) Overview(ctx context.Context) (model.Overview, error) {
	var o model.Overview
	err := c.get(ctx, "/v1/status", "the status", func(b []byte) (err error) {
		o, err = decodeOverview(b)
		return err
	})
	return o, err
}

// IsStandaloneLink reports whether v is the one entry of the Overview of a
// standalone link's server: no name and no VM.
func IsStandaloneLink(v model.VMStatus) bool {
	return v.Name == "" && v.VM == model.VM{}
}

// VM returns the status of the VM called name (GET /v1/vms/NAME). An
// unknown name is a 404 *Error naming the VMs there are. With name "" it
// is the only VM's status, taken from the Overview (a 409 *Error naming
// the VMs when there is not exactly one; a standalone link's entry from a
// link's server).
func (c *Client) VM(ctx context.Context, name string) (model.VMStatus, error) {
	if name == "" {
		o, err := c.Overview(ctx)
		if err != nil {
			return model.VMStatus{}, err
		}
		v, err := o.Resolve("")
		if err != nil {
			return model.VMStatus{}, &Error{Code: kindCodes[model.KindAmbiguous], Message: err.Error()}
		}
		return v, nil
	}
	var v model.VMStatus
	err := c.get(ctx, vmPath(name, ""), "the status of VM "+name, func(b []byte) error {
		return json.Unmarshal(b, &v)
	})
	return v, err
}

// vmPath is the path of the route about the VM called name, followed by
// "/"+action unless action is "".
func vmPath(name, action string) string {
	p := vmsPrefix + url.PathEscape(name)
	if action != "" {
		p += "/" + action
	}
	return p
}

// get sends a GET for path and hands its answer's body to decode; what
// names the answer in errors.
func (c *Client) get(ctx context.Context, path, what string, decode func([]byte) error) error {
	start := time.Now()
	resp, err := c.do(ctx, http.MethodGet, path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var raw json.RawMessage
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAnswer)).Decode(&raw); err != nil {
		if ctx.Err() != nil {
			return c.ctxError(ctx, start)
		}
		return fmt.Errorf("reading %s from %s: %w", what, c.path, err)
	}
	if err := decode(raw); err != nil {
		return fmt.Errorf("reading %s from %s: %w", what, c.path, err)
	}
	return nil
}

// statusAnswer is an answer to GET /v1/status, or a line of /v1/watch: the
// app's Overview ({"vms": [...], "config_error": ...}), or a model.Status
// (a standalone link's; a single VM's before several VMs).
type statusAnswer struct {
	VMs         json.RawMessage `json:"vms"`
	ConfigError string          `json:"config_error"`
	VM          *model.VM       `json:"vm"`
	Link        *netlink.Status `json:"link"`
	Actions     model.Actions   `json:"actions"`
}

// decodeOverview reads a statusAnswer as an Overview (see Overview).
func decodeOverview(b []byte) (model.Overview, error) {
	var a statusAnswer
	if err := json.Unmarshal(b, &a); err != nil {
		return model.Overview{}, err
	}
	if len(a.VMs) > 0 {
		o := model.Overview{ConfigError: a.ConfigError}
		if err := json.Unmarshal(a.VMs, &o.VMs); err != nil {
			return model.Overview{}, fmt.Errorf(`"vms": %w`, err)
		}
		return o, nil
	}
	if a.Link == nil {
		return model.Overview{}, errors.New(`the answer has neither "vms" nor "link"`)
	}
	st := model.Status{VM: a.VM, Link: *a.Link, Actions: a.Actions}
	return model.Overview{VMs: []model.VMStatus{st.Named("")}}, nil
}

// Watch calls fn with the Overview now and then with every change, until
// ctx ends (it returns ctx.Err()), fn returns an error (it returns that
// error) or the server ends the stream (an error saying so). A standalone
// link's statuses come as in Overview.
func (c *Client) Watch(ctx context.Context, fn func(model.Overview) error) error {
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
		o, err := decodeOverview(sc.Bytes())
		if err != nil {
			return fmt.Errorf("reading a status from the watch stream of %s: %w", c.path, err)
		}
		if err := fn(o); err != nil {
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

// Start asks the server to start the VM called name (POST
// /v1/vms/NAME/start); with name "", the only VM (POST /v1/vm/start: a 409
// *Error naming the VMs when there is not exactly one).
func (c *Client) Start(ctx context.Context, name string) error {
	return c.vmAction(ctx, name, "start", "/v1/vm/start")
}

// Stop asks the server to stop the VM called name (POST
// /v1/vms/NAME/stop); with name "", the only VM (POST /v1/vm/stop).
func (c *Client) Stop(ctx context.Context, name string) error {
	return c.vmAction(ctx, name, "stop", "/v1/vm/stop")
}

// Reconnect asks the server to drop the socket_vmnet connection of the VM
// called name and dial again (POST /v1/vms/NAME/reconnect); with name "",
// of the only VM, or of a standalone link (POST /v1/link/reconnect).
func (c *Client) Reconnect(ctx context.Context, name string) error {
	return c.vmAction(ctx, name, "reconnect", "/v1/link/reconnect")
}

// Reset asks the server to reset the VM called name (POST
// /v1/vms/NAME/reset): delete its disk, made from its image, so that its
// next start makes it again. The VM must be stopped and made from an image
// (a 409 *Error otherwise). name must not be "": a reset destroys data, so
// there is no "only VM" to default to.
func (c *Client) Reset(ctx context.Context, name string) error {
	if name == "" {
		return errors.New("a reset needs the VM's NAME: it deletes the VM's disk, so it is never implied")
	}
	return c.action(ctx, vmPath(name, "reset"))
}

func (c *Client) vmAction(ctx context.Context, name, action, legacy string) error {
	if name == "" {
		return c.action(ctx, legacy)
	}
	return c.action(ctx, vmPath(name, action))
}

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
