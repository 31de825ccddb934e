package testdaemon

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
)

// Hub is an in-process daemon with socket_vmnet's framing (4-byte
// big-endian length + Ethernet frame) and its switching: every frame a
// client sends is flooded to every other client, whatever its destination
// (socket_vmnet does so; lima-vm/socket_vmnet#58). It has no vmnet behind
// it: nothing answers but the other clients.
//
// Muted, it accepts and reads clients and forwards nothing: a daemon that
// is up but whose network is dead. Inject sends a frame to every client
// (muted or not), as the network behind the daemon would.
//
// Writes to a client are blocking, as socket_vmnet's are: a client that
// does not read holds up the others. A client whose connection fails is
// dropped.
type Hub struct {
	path string
	ln   *net.UnixListener
	tap  func(client int, frame []byte)

	muted     atomic.Bool
	received  atomic.Uint64 // frames read from clients
	forwarded atomic.Uint64 // frame copies written to clients

	mu      sync.Mutex
	cond    *sync.Cond
	clients map[*hubClient]struct{}
	nextID  int
	version int // incremented whenever a client comes or goes
	closed  bool
	wg      sync.WaitGroup
}

type hubClient struct {
	id   int
	conn *net.UnixConn
	wmu  sync.Mutex // one frame at a time
}

// HubConfig configures a Hub. Path is required.
type HubConfig struct {
	// Path is the UNIX socket to listen on (at most 103 bytes).
	Path string
	// Tap, when set, sees every frame a client sends (client numbers
	// count from 1 in the order of connection), before it is forwarded.
	// frame is valid only during the call. Tap is called from the
	// client's reader goroutine: a slow Tap slows that client.
	Tap func(client int, frame []byte)
}

// StartHub starts a Hub on path for a test and closes it in the test's
// cleanup.
func StartHub(t testing.TB, cfg HubConfig) *Hub {
	t.Helper()
	h, err := NewHub(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Error(err)
		}
	})
	return h
}

// NewHub listens on cfg.Path and serves clients until Close.
func NewHub(cfg HubConfig) (*Hub, error) {
	if cfg.Path == "" {
		return nil, errors.New("testdaemon: HubConfig.Path is required")
	}
	if len(cfg.Path) > maxSocketPath {
		return nil, fmt.Errorf("testdaemon: socket path %s is %d bytes, over the %d-byte limit of UNIX socket paths; use a shorter directory", cfg.Path, len(cfg.Path), maxSocketPath)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: cfg.Path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("testdaemon: %w", err)
	}
	h := &Hub{path: cfg.Path, ln: ln, tap: cfg.Tap, clients: map[*hubClient]struct{}{}}
	h.cond = sync.NewCond(&h.mu)
	h.wg.Add(1)
	go h.accept()
	return h, nil
}

// SocketPath is the hub's UNIX socket.
func (h *Hub) SocketPath() string { return h.path }

// SetMute mutes (true) or unmutes the hub: muted, it forwards nothing.
func (h *Hub) SetMute(m bool) { h.muted.Store(m) }

// Received counts the frames read from clients.
func (h *Hub) Received() uint64 { return h.received.Load() }

// Forwarded counts the frame copies written to clients (Inject included).
func (h *Hub) Forwarded() uint64 { return h.forwarded.Load() }

// Clients is the number of connected clients.
func (h *Hub) Clients() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients)
}

// WaitClients waits until at least n clients are connected.
func (h *Hub) WaitClients(ctx context.Context, n int) error {
	stop := context.AfterFunc(ctx, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.cond.Broadcast()
	})
	defer stop()
	h.mu.Lock()
	defer h.mu.Unlock()
	for len(h.clients) < n {
		if ctx.Err() != nil {
			return fmt.Errorf("waiting for %d hub clients (have %d): %w", n, len(h.clients), ctx.Err())
		}
		if h.closed {
			return errors.New("testdaemon: hub closed")
		}
		h.cond.Wait()
	}
	return nil
}

// Inject writes frame to every client (also when muted) and returns the
// first write error.
func (h *Hub) Inject(frame []byte) error {
	if len(frame) == 0 || len(frame) > 0xffff {
		return fmt.Errorf("testdaemon: cannot inject a frame of %d bytes", len(frame))
	}
	buf := make([]byte, 4+len(frame))
	binary.BigEndian.PutUint32(buf, uint32(len(frame)))
	copy(buf[4:], frame)
	var first error
	for _, c := range h.snapshot() {
		if err := h.write(c, buf); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Close stops accepting, disconnects every client, removes the socket and
// returns once every goroutine of the hub has ended.
func (h *Hub) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	for c := range h.clients {
		c.conn.Close()
	}
	h.cond.Broadcast()
	h.mu.Unlock()
	err := h.ln.Close()
	h.wg.Wait()
	_ = os.Remove(h.path)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("testdaemon: %w", err)
	}
	return nil
}

func (h *Hub) accept() {
	defer h.wg.Done()
	for {
		conn, err := h.ln.AcceptUnix()
		if err != nil {
			return
		}
		h.mu.Lock()
		if h.closed {
			h.mu.Unlock()
			conn.Close()
			return
		}
		h.nextID++
		c := &hubClient{id: h.nextID, conn: conn}
		h.clients[c] = struct{}{}
		h.version++
		h.cond.Broadcast()
		h.wg.Add(1)
		h.mu.Unlock()
		go h.serve(c)
	}
}

func (h *Hub) snapshot() []*hubClient {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*hubClient, 0, len(h.clients))
	for c := range h.clients {
		out = append(out, c)
	}
	return out
}

func (h *Hub) drop(c *hubClient) {
	h.mu.Lock()
	if _, ok := h.clients[c]; ok {
		delete(h.clients, c)
		h.version++
	}
	h.cond.Broadcast()
	h.mu.Unlock()
	c.conn.Close()
}

func (h *Hub) write(c *hubClient, buf []byte) error {
	c.wmu.Lock()
	_, err := c.conn.Write(buf)
	c.wmu.Unlock()
	if err != nil {
		h.drop(c)
		return err
	}
	h.forwarded.Add(1)
	return nil
}

// serve reads c's frames and floods each to the other clients.
func (h *Hub) serve(c *hubClient) {
	defer h.wg.Done()
	defer h.drop(c)
	r := bufio.NewReaderSize(c.conn, 256<<10)
	buf := make([]byte, 4+0xffff)
	var others []*hubClient
	version := -1
	for {
		if _, err := io.ReadFull(r, buf[:4]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(buf)
		if n == 0 || n > 0xffff {
			return // a protocol error: socket_vmnet drops the client too
		}
		if _, err := io.ReadFull(r, buf[4:4+n]); err != nil {
			return
		}
		h.received.Add(1)
		if h.tap != nil {
			h.tap(c.id, buf[4:4+n])
		}
		if h.muted.Load() {
			continue
		}
		// The list of the others is refreshed when clients come or go.
		h.mu.Lock()
		if h.version != version {
			version = h.version
			others = others[:0]
			for o := range h.clients {
				if o != c {
					others = append(others, o)
				}
			}
		}
		h.mu.Unlock()
		for _, o := range others {
			_ = h.write(o, buf[:4+n])
		}
	}
}
