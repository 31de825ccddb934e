package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmnetbar/vmnetbar/app/control"
	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/internal/testbin"
	"github.com/vmnetbar/vmnetbar/internal/testdaemon"
	"github.com/vmnetbar/vmnetbar/internal/testguest"
	"github.com/vmnetbar/vmnetbar/netlink"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

// floodFDLimit is the app's descriptor limit in the flood test: low enough
// that floodConns unlimited API connections would exhaust it, and so leave
// the link no descriptor to redial with.
const (
	floodFDLimit = 256
	floodConns   = 400
)

// TestControlFloodLeavesTheLinkAlone runs the app with the test guest and a
// descriptor limit of floodFDLimit, opens floodConns control API
// connections that each make a request and then stay idle, and crashes the
// daemon: the API serves up to its cap and answers 503 beyond it, the
// app's descriptors stay under the limit, the link redials and the guest's
// pings go on. Once the flood is gone the API serves new clients again.
func TestControlFloodLeavesTheLinkAlone(t *testing.T) {
	guest := testguest.Ensure(t)
	if _, err := testguest.FindQEMU(); err != nil {
		testguest.SkipOrFatal(t, err)
	}
	if _, err := testdaemon.FindGvproxy(); err != nil {
		testguest.SkipOrFatal(t, err)
	}
	bin := testbin.Path(t)
	dir, err := os.MkdirTemp("", "vnbf")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	daemon := testdaemon.Start(t, dir)
	console := filepath.Join(dir, "console.log")
	cfgFile := filepath.Join(dir, "config.yaml")
	cfg := testbin.GuestConfig{Guest: guest, Options: testguest.Options{Forever: true, Interval: 250 * time.Millisecond},
		ConsoleLog: console, Socket: daemon.SocketPath(), FastReconnect: true}.YAML()
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "r", "vmnetbar", "control.sock")

	// ulimit -n sets both limits, so the app cannot raise its soft limit.
	cmd := exec.Command("sh", "-c", fmt.Sprintf(`ulimit -n %d && exec "$0" run --headless --config "$1"`, floodFDLimit), bin, cfgFile)
	cmd.Env = append(os.Environ(),
		"XDG_CONFIG_HOME="+filepath.Join(dir, "c"),
		"XDG_STATE_HOME="+filepath.Join(dir, "s"),
		"XDG_RUNTIME_DIR="+filepath.Join(dir, "r"),
		"DBUS_SESSION_BUS_ADDRESS=",
		"GORACE=atexit_sleep_ms=0",
	)
	var stderr testbin.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// exited is closed when the app has exited, with its result in waitErr.
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			<-exited
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cl := control.NewClient(sock)
	waitStatus := func(what string, cond func(model.VMStatus) bool) {
		t.Helper()
		for {
			qctx, qcancel := context.WithTimeout(ctx, 5*time.Second)
			st, err := cl.VM(qctx, "")
			qcancel()
			if err == nil && cond(st) {
				return
			}
			select {
			case <-exited:
				t.Fatalf("vmnetbar exited (%v) waiting for %s; stderr:\n%s", waitErr, what, stderr.String())
			case <-ctx.Done():
				t.Fatalf("timed out waiting for %s (last error %v); stderr:\n%s", what, err, stderr.String())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	waitStatus("the VM running with its link up", func(st model.VMStatus) bool {
		return st.VM.State == vmhost.StateRunning && st.Link.State == netlink.StateUp
	})
	if _, err := testguest.WaitLog(ctx, console, nil, "pings through the link", func(l testguest.Log) bool { return l.OKPings() >= 1 }); err != nil {
		t.Fatalf("%v; stderr:\n%s", err, stderr.String())
	}

	// The flood: every connection asks for the status once and stays.
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	ok, busy := 0, 0
	for i := 0; i < floodConns; i++ {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		code, err := getStatus(c)
		switch {
		case err != nil:
			c.Close() // closed by the server without an answer: busy too
			busy++
		case code == http.StatusOK:
			held = append(held, c)
			ok++
		case code == http.StatusServiceUnavailable:
			c.Close()
			busy++
		default:
			t.Fatalf("connection %d: HTTP %d", i, code)
		}
	}
	if ok > control.DefaultMaxConns || busy < floodConns-control.DefaultMaxConns {
		t.Fatalf("%d connections served and %d refused, want at most %d served", ok, busy, control.DefaultMaxConns)
	}
	fds := openFDs(t, cmd.Process.Pid)
	if fds >= floodFDLimit-16 {
		t.Fatalf("the app holds %d descriptors under the flood, the limit is %d", fds, floodFDLimit)
	}

	// The daemon crashes and comes back: the link redials with the API
	// still flooded, and the guest's pings go on.
	before, _ := testguest.ReadLog(console)
	if err := daemon.Kill(); err != nil {
		t.Fatal(err)
	}
	for {
		st, err := statusOn(held[0])
		if err != nil {
			t.Fatalf("status on a held connection: %v", err)
		}
		if st.Link.State == netlink.StateUp && st.Link.Reconnects >= 1 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the link did not come back under the flood: %+v; stderr:\n%s", st.Link, stderr.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	if _, err := testguest.WaitLog(ctx, console, nil, "pings after the daemon restart", func(l testguest.Log) bool {
		return l.OKPings() >= before.OKPings()+2
	}); err != nil {
		t.Fatalf("%v; stderr:\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "control API is busy") && !strings.Contains(stderr.String(), "max_connections") {
		t.Errorf("the refused connections were not logged:\n%s", stderr.String())
	}

	// The flood goes: new clients are served again.
	for _, c := range held {
		c.Close()
	}
	held = nil
	waitStatus("the API to serve a new client", func(model.VMStatus) bool { return true })

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if waitErr != nil {
			t.Fatalf("vmnetbar exited with %v; stderr:\n%s", waitErr, stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("vmnetbar did not exit after SIGTERM; stderr:\n%s", stderr.String())
	}
	if l, _ := testguest.ReadLog(console); l.PowerOff == "" {
		t.Fatalf("the guest did not power off cleanly: %s", l.Summary())
	}
}

// getStatus sends GET /v1/status on c and returns the answer's status code,
// leaving the connection open.
func getStatus(c net.Conn) (int, error) {
	resp, err := roundTrip(c)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// statusOn asks for the status on an open keep-alive connection.
func statusOn(c net.Conn) (model.VMStatus, error) {
	resp, err := roundTrip(c)
	if err != nil {
		return model.VMStatus{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return model.VMStatus{}, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	var o model.Overview
	if err := json.NewDecoder(resp.Body).Decode(&o); err != nil {
		return model.VMStatus{}, err
	}
	if len(o.VMs) != 1 {
		return model.VMStatus{}, fmt.Errorf("%d VMs in the status, want 1", len(o.VMs))
	}
	return o.VMs[0], nil
}

func roundTrip(c net.Conn) (*http.Response, error) {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := fmt.Fprint(c, "GET /v1/status HTTP/1.1\r\nHost: vmnetbar\r\n\r\n"); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil, err
	}
	// Read the whole body now, so the next request on c starts clean.
	body, err := readAll(resp)
	if err != nil {
		return nil, err
	}
	resp.Body = body
	return resp, nil
}

// openFDs counts the process's open descriptors.
func openFDs(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// readAll reads resp's whole body and gives it back as a fresh reader.
func readAll(resp *http.Response) (io.ReadCloser, error) {
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}
