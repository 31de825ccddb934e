package netlink

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmnetbar/vmnetbar/internal/testwait"
)

// vmnetReader reads a stream the way socket_vmnet does: the 4-byte header
// with one read, then the body with ONE read. socket_vmnet asserts that the
// body read got the whole body; here a short read is an error wrapping
// errCutFrame.
type vmnetReader struct {
	c    net.Conn
	hdr  [headerSize]byte
	body []byte
}

var errCutFrame = errors.New("cut frame")

func newVmnetReader(c net.Conn) *vmnetReader {
	return &vmnetReader{c: c, body: make([]byte, MaxFrameSize)}
}

// next returns the next frame (valid until the next call), io.EOF when the
// stream ended on a frame boundary.
func (r *vmnetReader) next() ([]byte, error) {
	n, err := r.c.Read(r.hdr[:])
	if n == 0 {
		if err == nil {
			err = io.ErrNoProgress
		}
		return nil, err
	}
	if n < headerSize {
		return nil, fmt.Errorf("%w: the header read got %d of %d bytes", errCutFrame, n, headerSize)
	}
	size := binary.BigEndian.Uint32(r.hdr[:])
	if size == 0 || size > MaxFrameSize {
		return nil, fmt.Errorf("bad frame length %d", size)
	}
	if int(size)+headerSize > maxWrite {
		// The documented limit: a frame larger than one whole write may
		// reach a slow reader in pieces (see maxWrite), so it is read
		// whole here; socket_vmnet's own frames are never this large.
		if _, err := io.ReadFull(r.c, r.body[:size]); err != nil {
			return nil, fmt.Errorf("%w: a %d-byte frame: %v", errCutFrame, size, err)
		}
		return r.body[:size], nil
	}
	n, err = r.c.Read(r.body[:size])
	if n < int(size) {
		return nil, fmt.Errorf("%w: the body read got %d of %d bytes (%v)", errCutFrame, n, size, err)
	}
	return r.body[:size], nil
}

// expect reads frames first.. with the given sizes and checks them.
func (r *vmnetReader) expect(t testing.TB, first uint32, sizes []int) {
	t.Helper()
	r.c.SetReadDeadline(time.Now().Add(20 * time.Second))
	for i, n := range sizes {
		f, err := r.next()
		if err != nil {
			t.Fatalf("daemon read after %d frames: %v", i, err)
		}
		seq, err := checkFrame(f)
		if err != nil {
			t.Fatal(err)
		}
		if seq != first+uint32(i) || len(f) != n {
			t.Fatalf("daemon got frame %d (%d bytes), want %d (%d bytes)", seq, len(f), first+uint32(i), n)
		}
	}
}

// mixedSize cycles through 60..1514 with a 9000-byte frame every 97 and a
// frame of the largest size one write takes whole every 1009.
func mixedSize(seq uint32) int {
	switch {
	case seq%1009 == 1008:
		return maxWrite - headerSize
	case seq%97 == 96:
		return 9000
	}
	return frameSize(seq)
}

// TestSlowDaemonGetsWholeFrames: a daemon that pauses at random while the
// VM streams frames lets the link's stream fill; every frame must still
// reach it whole in one read, as socket_vmnet requires.
func TestSlowDaemonGetsWholeFrames(t *testing.T) {
	for _, tc := range []struct {
		name  string
		total uint32
		size  func(uint32) int
	}{
		{"1514", 30000, func(uint32) int { return 1514 }},
		{"mixed", 30000, mixedSize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seed := uint64(time.Now().UnixNano())
			t.Logf("seed %d", seed)
			rng := rand.New(rand.NewPCG(seed, 1))
			vm, _, l, c := linked(t, Config{MTU: MaxMTU})
			go func() {
				buf := make([]byte, MaxFrameSize)
				vm.SetWriteDeadline(time.Now().Add(60 * time.Second))
				for i := uint32(0); i < tc.total; i++ {
					if _, err := vm.Write(testFrame(buf, i, tc.size(i))); err != nil {
						t.Errorf("VM write %d: %v", i, err)
						return
					}
				}
			}()
			r := newVmnetReader(c)
			c.SetReadDeadline(time.Now().Add(60 * time.Second))
			pauseAt := uint32(rng.IntN(500))
			for i := uint32(0); i < tc.total; i++ {
				if i == pauseAt {
					// The slow daemon: the stream fills meanwhile.
					time.Sleep(time.Duration(200+rng.IntN(3000)) * time.Microsecond)
					pauseAt += 1 + uint32(rng.IntN(1000))
				}
				f, err := r.next()
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				seq, err := checkFrame(f)
				if err != nil {
					t.Fatal(err)
				}
				if seq != i || len(f) != tc.size(i) {
					t.Fatalf("got frame %d (%d bytes), want %d (%d bytes)", seq, len(f), i, tc.size(i))
				}
			}
			waitStatus(t, l, "every frame sent, none dropped", func(st Status) bool {
				return st.TxFrames == uint64(tc.total) && st.Dropped.Total() == 0 && st.Reconnects == 0
			})
		})
	}
}

// TestStalledDaemonManualReconnect: the daemon stops reading so the link's
// write blocks; a manual reconnect unblocks it. The old stream ends on a
// frame boundary (no frame cut in two), and the frames it did not get go
// whole to the new connection, in order.
func TestStalledDaemonManualReconnect(t *testing.T) {
	for _, tc := range []struct {
		name  string
		total uint32
		size  func(uint32) int
	}{
		{"9000", 3000, func(uint32) int { return 9000 }},
		{"mixed", 12000, mixedSize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vm, d, l, c1 := linked(t, Config{MTU: MaxMTU})

			var sent atomic.Uint32
			go func() {
				buf := make([]byte, MaxFrameSize)
				vm.SetWriteDeadline(time.Now().Add(30 * time.Second))
				for i := uint32(0); i < tc.total; i++ {
					if _, err := vm.Write(testFrame(buf, i, tc.size(i))); err != nil {
						t.Errorf("VM write %d: %v", i, err)
						return
					}
					sent.Store(i + 1)
				}
			}()
			// The link is stuck once the VM's writes stop progressing
			// because the socketpair is full: wait for the sender to stall.
			testwait.For(t, "the VM sender to stall", func() bool {
				s := sent.Load()
				if s == 0 || s == tc.total {
					return false
				}
				time.Sleep(50 * time.Millisecond)
				return sent.Load() == s
			})
			stuck := l.Status().TxFrames
			l.Reconnect()
			c2 := d.next()

			next := uint32(0)
			r1 := newVmnetReader(c1)
			c1.SetReadDeadline(time.Now().Add(10 * time.Second))
			for {
				f, err := r1.next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("old connection after %d frames: %v (want whole frames, then EOF)", next, err)
				}
				if seq, err := checkFrame(f); err != nil || seq != next || len(f) != tc.size(next) {
					t.Fatalf("old connection: frame %d of %d bytes (%v), want %d", seq, len(f), err, next)
				}
				next++
			}
			if uint64(next) < stuck {
				t.Fatalf("old connection had %d whole frames, link counted %d sent", next, stuck)
			}
			r2 := newVmnetReader(c2)
			c2.SetReadDeadline(time.Now().Add(20 * time.Second))
			for ; next < tc.total; next++ {
				f, err := r2.next()
				if err != nil {
					t.Fatalf("new connection at frame %d: %v", next, err)
				}
				if seq, err := checkFrame(f); err != nil || seq != next || len(f) != tc.size(next) {
					t.Fatalf("new connection: frame %d of %d bytes (%v), want %d", seq, len(f), err, next)
				}
			}
			waitStatus(t, l, "1 manual reconnect, all frames", func(st Status) bool {
				return st.Reconnects == 1 && st.LastError == "manual reconnect" && st.TxFrames == uint64(tc.total)
			})
		})
	}
}
