package netlink

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"testing"
	"time"
)

// cuttingConn records every Write and, once armed, writes only half of the
// next write and fails.
type cuttingConn struct {
	net.Conn
	mu     sync.Mutex
	armed  bool
	writes [][]byte
}

var errCut = errors.New("connection cut mid-write")

func (c *cuttingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes = append(c.writes, append([]byte(nil), p...))
	armed := c.armed
	c.armed = false
	c.mu.Unlock()
	if armed {
		n, _ := c.Conn.Write(p[:len(p)/2])
		return n, errCut
	}
	return c.Conn.Write(p)
}

// TestCutWriteIsResentWhole: a frame that failed mid-write goes whole to
// the next connection. The first connection is wrapped to cut a write (and
// so writes one frame per Write); later ones are the link's own sockets
// with its batched writes, read the way socket_vmnet reads them.
func TestCutWriteIsResentWhole(t *testing.T) {
	vm, host := vmPair(t)
	d := newDaemon(t, socketPath(t))
	d.start()
	var mu sync.Mutex
	var conns []*cuttingConn
	l := newLink(t, host, Config{
		Socket: d.path,
		Dial: func(ctx context.Context) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, "unix", d.path)
			if err != nil {
				return nil, err
			}
			mu.Lock()
			defer mu.Unlock()
			if len(conns) > 0 {
				return c, nil
			}
			cc := &cuttingConn{Conn: c}
			conns = append(conns, cc)
			return cc, nil
		},
		InitialBackoff: MinInitialBackoff,
		MaxBackoff:     MinInitialBackoff,
	})
	runLink(t, l)
	c1 := d.next()
	dec := NewDecoder(0)
	go sendUp(t, vm, 0, []int{100})
	newVmnetReader(c1).expect(t, 0, []int{100})

	mu.Lock()
	conns[0].mu.Lock()
	conns[0].armed = true
	conns[0].mu.Unlock()
	mu.Unlock()
	burst := []int{1000, 200}
	for i := 0; i < 300; i++ {
		burst = append(burst, frameSize(uint32(i)))
	}
	go sendUp(t, vm, 1, burst)
	c2 := d.next()
	// The old connection holds half of frame 1, then ends.
	c1.SetReadDeadline(time.Now().Add(5 * time.Second))
	if f, err := dec.ReadFrame(c1); err == nil {
		t.Fatalf("old connection delivered a frame of %d bytes", len(f))
	}
	newVmnetReader(c2).expect(t, 1, burst)
	waitStatus(t, l, "every frame sent, 1 reconnect", func(st Status) bool {
		return st.TxFrames == uint64(1+len(burst)) && st.Reconnects == 1 && st.LastError != ""
	})

	mu.Lock()
	defer mu.Unlock()
	for ci, c := range conns {
		c.mu.Lock()
		for wi, w := range c.writes {
			for len(w) > 0 {
				if len(w) < headerSize {
					t.Fatalf("conn %d write %d: %d stray bytes", ci, wi, len(w))
				}
				n := int(binary.BigEndian.Uint32(w))
				if n == 0 || len(w) < headerSize+n {
					t.Fatalf("conn %d write %d: frame of %d bytes split across writes", ci, wi, n)
				}
				w = w[headerSize+n:]
			}
		}
		c.mu.Unlock()
	}
}
