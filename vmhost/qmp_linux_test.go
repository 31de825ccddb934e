package vmhost

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// qmpServer is a scripted QMP peer on a real UNIX socket: it greets,
// accepts qmp_capabilities and hands every later command to handle, which
// writes whatever it likes.
type qmpServer struct {
	path string
	ln   net.Listener
	wg   sync.WaitGroup
}

func newQMPServer(t *testing.T, handle func(conn net.Conn, cmd map[string]any)) *qmpServer {
	t.Helper()
	s := &qmpServer{path: filepath.Join(t.TempDir(), "qmp.sock")}
	ln, err := net.Listen("unix", s.path)
	if err != nil {
		t.Fatal(err)
	}
	s.ln = ln
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		conn.Write([]byte(`{"QMP": {"version": {}, "capabilities": []}}` + "\n"))
		sc := bufio.NewScanner(conn)
		for sc.Scan() {
			var cmd map[string]any
			if json.Unmarshal(sc.Bytes(), &cmd) != nil {
				return
			}
			if cmd["execute"] == "qmp_capabilities" {
				writeJSON(conn, map[string]any{"return": map[string]any{}, "id": cmd["id"]})
				continue
			}
			handle(conn, cmd)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return s
}

func writeJSON(conn net.Conn, v any) {
	b, _ := json.Marshal(v)
	conn.Write(append(b, '\n'))
}

func TestQMPExecuteAndEvents(t *testing.T) {
	s := newQMPServer(t, func(conn net.Conn, cmd map[string]any) {
		switch cmd["execute"] {
		case "query-status":
			// An event first, then the reply.
			writeJSON(conn, map[string]any{"event": "RESUME", "timestamp": map[string]any{}})
			writeJSON(conn, map[string]any{"return": map[string]any{"status": "running", "running": true}, "id": cmd["id"]})
		case "system_powerdown":
			writeJSON(conn, map[string]any{"return": map[string]any{}, "id": cmd["id"]})
			writeJSON(conn, map[string]any{"event": "POWERDOWN"})
		default:
			writeJSON(conn, map[string]any{"error": map[string]any{"class": "CommandNotFound", "desc": "no such command"}, "id": cmd["id"]})
		}
	})
	q, err := dialQMP(s.path, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer q.close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := q.queryStatus(ctx)
	if err != nil || st != "running" {
		t.Fatalf("query-status = %q, %v", st, err)
	}
	if ev := <-q.Events(); ev.Name != "RESUME" {
		t.Fatalf("event %q", ev.Name)
	}
	if err := q.send("system_powerdown"); err != nil {
		t.Fatal(err)
	}
	if ev := <-q.Events(); ev.Name != "POWERDOWN" {
		t.Fatalf("event %q", ev.Name)
	}
	_, err = q.execute(ctx, "bogus", nil)
	if err == nil || !strings.Contains(err.Error(), "CommandNotFound") {
		t.Fatalf("bogus command: %v", err)
	}
}

func TestQMPConnectionLoss(t *testing.T) {
	got := make(chan net.Conn, 1)
	s := newQMPServer(t, func(conn net.Conn, cmd map[string]any) {
		got <- conn // never answers
	})
	q, err := dialQMP(s.path, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer q.close()
	errc := make(chan error, 1)
	go func() {
		_, err := q.execute(context.Background(), "query-status", nil)
		errc <- err
	}()
	(<-got).Close()
	if err := <-errc; err == nil || !strings.Contains(err.Error(), "connection closed") {
		t.Fatalf("pending command after the connection died: %v", err)
	}
	if _, ok := <-q.Events(); ok {
		t.Fatal("Events not closed")
	}
	if _, err := q.execute(context.Background(), "query-status", nil); err == nil {
		t.Fatal("command on a dead connection succeeded")
	}
}

func TestQMPExecuteHonoursContext(t *testing.T) {
	s := newQMPServer(t, func(net.Conn, map[string]any) {})
	q, err := dialQMP(s.path, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer q.close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := q.execute(ctx, "query-status", nil); err == nil || !strings.Contains(err.Error(), "deadline") {
		t.Fatalf("execute without a reply: %v", err)
	}
}

func TestQMPNoGreeting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "qmp.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Write([]byte(`{"hello": 1}` + "\n"))
		buf := make([]byte, 1)
		c.Read(buf) // until the client hangs up
		c.Close()
	}()
	_, err = dialQMP(path, 2*time.Second)
	wg.Wait()
	if err == nil || !strings.Contains(err.Error(), "QMP banner") {
		t.Fatalf("dial a non-QMP socket: %v", err)
	}
}
