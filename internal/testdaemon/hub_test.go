package testdaemon

import (
	"github.com/vmnetbar/vmnetbar/internal/testwait"

	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func hubDial(t *testing.T, h *Hub) *net.UnixConn {
	t.Helper()
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: h.SocketPath(), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func sendFrame(t *testing.T, c net.Conn, f []byte) {
	t.Helper()
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(f)))
	if _, err := c.Write(append(hdr[:], f...)); err != nil {
		t.Fatal(err)
	}
}

// recvFrame reads one frame; nil when none comes within wait.
func recvFrame(t *testing.T, c net.Conn, wait time.Duration) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(wait))
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil
		}
		t.Fatal(err)
	}
	f := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	if _, err := io.ReadFull(c, f); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestHubFloods: a frame from one client reaches every other client, not
// its sender, whatever its destination; muted, the hub forwards nothing,
// and Inject reaches every client.
func TestHubFloods(t *testing.T) {
	var mu sync.Mutex
	var tapped []int
	h := StartHub(t, HubConfig{Path: filepath.Join(shortDir(t), "h.sock"), Tap: func(client int, _ []byte) {
		mu.Lock()
		tapped = append(tapped, client)
		mu.Unlock()
	}})
	a, b, c := hubDial(t, h), hubDial(t, h), hubDial(t, h)
	if err := h.WaitClients(ctxTimeout(t, 10*time.Second), 3); err != nil {
		t.Fatal(err)
	}
	unicast := append([]byte{0x52, 0x54, 0, 0, 0, 2, 0x52, 0x54, 0, 0, 0, 1, 0x08, 0x00}, make([]byte, 46)...)
	sendFrame(t, a, unicast)
	for _, c := range []net.Conn{b, c} {
		if got := recvFrame(t, c, 10*time.Second); !bytes.Equal(got, unicast) {
			t.Fatalf("got %x, want the flooded frame", got)
		}
	}
	if got := recvFrame(t, a, 50*time.Millisecond); got != nil {
		t.Fatalf("the sender got its own frame back: %x", got)
	}

	h.SetMute(true)
	sendFrame(t, b, unicast)
	testwait.For(t, "the hub to read the frame sent while muted", func() bool { return h.Received() >= 2 })
	injected := append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, unicast[6:]...)
	if err := h.Inject(injected); err != nil {
		t.Fatal(err)
	}
	// The muted frame was read before the injection: had it been
	// forwarded, a and c would see it first.
	for _, c := range []net.Conn{a, b, c} {
		if got := recvFrame(t, c, 10*time.Second); !bytes.Equal(got, injected) {
			t.Fatalf("got %x, want only the injected frame", got)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(tapped) != 2 || tapped[0] != 1 || tapped[1] != 2 {
		t.Errorf("tap saw clients %v, want [1 2]", tapped)
	}
}
