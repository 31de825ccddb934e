package vmhost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// qmpConn is a connection to QEMU's machine protocol (QMP): JSON objects
// over a UNIX socket. Commands carry an id and their replies are matched
// by it; asynchronous events go to Events. One reader goroutine, started
// by dialQMP and stopped by close, owns the receiving side.
type qmpConn struct {
	conn net.Conn
	dec  *json.Decoder

	wmu sync.Mutex // serialises writes

	mu      sync.Mutex
	nextID  uint64
	pending map[string]chan qmpMessage
	err     error // why the reader stopped

	events chan qmpEvent
	done   chan struct{} // closed when the reader has stopped
}

// qmpMessage is any message QEMU sends.
type qmpMessage struct {
	Greeting  json.RawMessage `json:"QMP"`
	ID        string          `json:"id"`
	Return    json.RawMessage `json:"return"`
	Error     *qmpError       `json:"error"`
	Event     string          `json:"event"`
	Data      json.RawMessage `json:"data"`
	Timestamp json.RawMessage `json:"timestamp"`
}

type qmpError struct {
	Class string `json:"class"`
	Desc  string `json:"desc"`
}

func (e *qmpError) Error() string { return fmt.Sprintf("QMP error %s: %s", e.Class, e.Desc) }

// qmpEvent is an asynchronous QMP event such as SHUTDOWN or RESUME.
type qmpEvent struct {
	Name string
	Data json.RawMessage
}

// qmpEventBuffer bounds queued events; the few events a VM emits fit, and
// an event that finds the queue full is dropped (the reader never blocks).
const qmpEventBuffer = 32

// dialQMP connects to the QMP socket at path and negotiates capabilities,
// all within timeout.
func dialQMP(path string, timeout time.Duration) (*qmpConn, error) {
	conn, err := net.DialTimeout("unix", path, timeout)
	if err != nil {
		return nil, err
	}
	return newQMPConn(conn, time.Now().Add(timeout))
}

// newQMPConn negotiates capabilities on conn, a connection to QEMU's QMP
// monitor, before deadline and starts the reader. On error it closes conn.
func newQMPConn(conn net.Conn, deadline time.Time) (*qmpConn, error) {
	q := &qmpConn{
		conn:    conn,
		dec:     json.NewDecoder(conn),
		pending: map[string]chan qmpMessage{},
		events:  make(chan qmpEvent, qmpEventBuffer),
		done:    make(chan struct{}),
	}
	if err := q.handshake(deadline); err != nil {
		conn.Close()
		return nil, err
	}
	go q.read()
	return q, nil
}

func (q *qmpConn) handshake(deadline time.Time) error {
	if err := q.conn.SetDeadline(deadline); err != nil {
		return err
	}
	var greet qmpMessage
	if err := q.dec.Decode(&greet); err != nil {
		return fmt.Errorf("reading the QMP greeting: %w", err)
	}
	if greet.Greeting == nil {
		return errors.New("the QMP socket did not greet with a QMP banner")
	}
	if err := q.write(map[string]any{"execute": "qmp_capabilities", "id": "caps"}); err != nil {
		return err
	}
	for {
		var m qmpMessage
		if err := q.dec.Decode(&m); err != nil {
			return fmt.Errorf("negotiating QMP capabilities: %w", err)
		}
		if m.Event != "" {
			continue
		}
		if m.Error != nil {
			return fmt.Errorf("negotiating QMP capabilities: %w", m.Error)
		}
		break
	}
	return q.conn.SetDeadline(time.Time{})
}

func (q *qmpConn) write(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	q.wmu.Lock()
	defer q.wmu.Unlock()
	if err := q.conn.SetWriteDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return err
	}
	_, err = q.conn.Write(append(b, '\n'))
	return err
}

// read dispatches replies and events until the connection fails.
func (q *qmpConn) read() {
	var err error
	for {
		var m qmpMessage
		if err = q.dec.Decode(&m); err != nil {
			break
		}
		if m.Event != "" {
			select {
			case q.events <- qmpEvent{Name: m.Event, Data: m.Data}:
			default:
			}
			continue
		}
		q.mu.Lock()
		ch, ok := q.pending[m.ID]
		delete(q.pending, m.ID)
		q.mu.Unlock()
		if ok {
			ch <- m
		}
	}
	q.mu.Lock()
	q.err = err
	for id, ch := range q.pending {
		close(ch)
		delete(q.pending, id)
	}
	q.mu.Unlock()
	close(q.events)
	close(q.done)
}

// Events delivers QMP events; it is closed when the connection ends.
func (q *qmpConn) Events() <-chan qmpEvent { return q.events }

// execute runs command with arguments args (nil for none) and returns its
// result, waiting at most until ctx ends.
func (q *qmpConn) execute(ctx context.Context, command string, args any) (json.RawMessage, error) {
	q.mu.Lock()
	if q.err != nil || q.isDone() {
		q.mu.Unlock()
		return nil, fmt.Errorf("QMP %s: connection closed", command)
	}
	q.nextID++
	id := fmt.Sprintf("c%d", q.nextID)
	ch := make(chan qmpMessage, 1)
	q.pending[id] = ch
	q.mu.Unlock()

	cmd := map[string]any{"execute": command, "id": id}
	if args != nil {
		cmd["arguments"] = args
	}
	if err := q.write(cmd); err != nil {
		q.forget(id)
		return nil, fmt.Errorf("QMP %s: %w", command, err)
	}
	select {
	case m, ok := <-ch:
		if !ok {
			return nil, fmt.Errorf("QMP %s: connection closed before the reply", command)
		}
		if m.Error != nil {
			return nil, fmt.Errorf("QMP %s: %w", command, m.Error)
		}
		return m.Return, nil
	case <-ctx.Done():
		q.forget(id)
		return nil, fmt.Errorf("QMP %s: %w", command, ctx.Err())
	}
}

// send issues command without waiting for its reply.
func (q *qmpConn) send(command string) error {
	q.mu.Lock()
	q.nextID++
	id := fmt.Sprintf("c%d", q.nextID)
	q.mu.Unlock()
	if err := q.write(map[string]any{"execute": command, "id": id}); err != nil {
		return fmt.Errorf("QMP %s: %w", command, err)
	}
	return nil
}

func (q *qmpConn) forget(id string) {
	q.mu.Lock()
	delete(q.pending, id)
	q.mu.Unlock()
}

func (q *qmpConn) isDone() bool {
	select {
	case <-q.done:
		return true
	default:
		return false
	}
}

// queryStatus returns the VM's run state ("running", "paused",
// "shutdown", ...).
func (q *qmpConn) queryStatus(ctx context.Context) (string, error) {
	raw, err := q.execute(ctx, "query-status", nil)
	if err != nil {
		return "", err
	}
	var st struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return "", fmt.Errorf("QMP query-status: %w", err)
	}
	return st.Status, nil
}

// close ends the connection and waits for the reader to stop.
func (q *qmpConn) close() {
	q.conn.Close()
	<-q.done
}
