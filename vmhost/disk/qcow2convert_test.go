//go:build linux || darwin

package disk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// manyClusters is an image of 64 KiB clusters: n compressed clusters of
// text (several batches), with plain, zero and unallocated clusters among
// them.
func manyClusters(n int64) qb {
	q := qb{version: 3, clusterBits: 16, size: (n + 8) << 16,
		plain: map[int64][]byte{}, compressed: map[int64][]byte{}}
	for c := int64(0); c < n+8; c++ {
		switch {
		case c%50 == 7:
			q.plain[c] = patterned(uint64(c), 64<<10)
		case c%50 == 8:
			q.zero = append(q.zero, c)
		case c%50 == 9: // unallocated
		default:
			line := fmt.Sprintf("cluster %d: some text that deflates well\n", c)
			q.compressed[c] = bytes.Repeat([]byte(line), 64<<10/len(line)+1)[:64<<10]
		}
	}
	return q
}

// manyClusters300 is manyClusters(300) and its image, built once.
var manyClusters300 = sync.OnceValues(func() (qb, []byte) {
	q := manyClusters(300)
	return q, q.build()
})

// testImage returns manyClusters300 and a copy of its image.
func testImage() (qb, []byte) {
	q, img := manyClusters300()
	return q, bytes.Clone(img)
}

// openQB parses an image built in memory.
func openQB(t *testing.T, img []byte) *qcow2 {
	t.Helper()
	_, q, err := inspectFile(context.Background(), bytes.NewReader(img), "image.qcow2")
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// memDisk is a disk in memory; converters write disjoint parts of it at
// once.
type memDisk struct {
	b      []byte
	writes func(off int64) error // called before each write, if not nil
}

func (d *memDisk) WriteAt(b []byte, off int64) (int, error) {
	if d.writes != nil {
		if err := d.writes(off); err != nil {
			return 0, err
		}
	}
	if off < 0 || off+int64(len(b)) > int64(len(d.b)) {
		return 0, fmt.Errorf("write of %d bytes at %d outside the disk", len(b), off)
	}
	return copy(d.b[off:], b), nil
}

// countingReader counts the reads of the image.
type countingReader struct {
	r     io.ReaderAt
	reads atomic.Int64
}

func (c *countingReader) ReadAt(b []byte, off int64) (int, error) {
	c.reads.Add(1)
	return c.r.ReadAt(b, off)
}

// Compressed clusters that lie one after the other in the file are read
// at once, not with one read each.
func TestConvertCoalescesReads(t *testing.T) {
	defer goleak.VerifyNone(t)
	src, img := testImage()
	q := openQB(t, img)
	cr := &countingReader{r: q.f}
	q.f = cr
	d := &memDisk{b: make([]byte, src.size)}
	if err := convertQcow2(context.Background(), q, d, &progressor{total: src.size}); err != nil {
		t.Fatal(err)
	}
	if i := firstDiff(d.b, src.expected()); i >= 0 {
		t.Fatalf("disk differs at byte %d", i)
	}
	// One read for the L2 table, one per batch of batchBytes of the disk;
	// qb puts the plain clusters before the compressed ones in the file:
	// each plain cluster is a batch, and splits one.
	if n, most := cr.reads.Load(), 1+(src.size+batchBytes-1)/batchBytes+2*int64(len(src.plain)); n > most {
		t.Errorf("%d reads of the image for %d compressed clusters, want %d at most", n, len(src.compressed), most)
	}
}

// Batches are converted by several goroutines at once: with GOMAXPROCS 2,
// two writes are under way together.
func TestConvertInParallel(t *testing.T) {
	defer goleak.VerifyNone(t)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	src, img := testImage()
	q := openQB(t, img)
	var active, most atomic.Int32
	var timedOut atomic.Bool
	d := &memDisk{b: make([]byte, src.size)}
	d.writes = func(int64) error {
		n := active.Add(1)
		defer active.Add(-1)
		for {
			if m := most.Load(); n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		// Wait for another write to start, unless one did.
		for deadline := time.Now().Add(10 * time.Second); most.Load() < 2 && !timedOut.Load(); {
			if time.Now().After(deadline) {
				timedOut.Store(true)
			}
			runtime.Gosched()
		}
		return nil
	}
	if err := convertQcow2(context.Background(), q, d, &progressor{total: src.size}); err != nil {
		t.Fatal(err)
	}
	if most.Load() < 2 {
		t.Fatalf("at most %d write at a time: the batches were converted one after the other", most.Load())
	}
	if i := firstDiff(d.b, src.expected()); i >= 0 {
		t.Fatalf("disk differs at byte %d", i)
	}
}

// corruptCluster overwrites the compressed data of the disk's cluster c
// in img with bytes that do not inflate.
func corruptCluster(t *testing.T, img []byte, c int64) {
	t.Helper()
	q := openQB(t, img)
	found := false
	q.walk(context.Background(), func(e extent) error {
		if e.compressed && e.guest == c*q.clusterSize {
			// 0xff: a final block of the reserved type 3.
			copy(img[e.host:], bytes.Repeat([]byte{0xff}, 16))
			found = true
		}
		return nil
	})
	if !found {
		t.Fatalf("no compressed cluster %d", c)
	}
}

// Of two bad clusters, the first in the disk is reported, whichever batch
// fails first; the goroutines are gone when convertQcow2 returns.
func TestConvertReportsTheFirstBadCluster(t *testing.T) {
	defer goleak.VerifyNone(t)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	src, img := testImage()
	corruptCluster(t, img, 250)
	corruptCluster(t, img, 70)
	for i := 0; i < 5; i++ {
		q := openQB(t, img)
		d := &memDisk{b: make([]byte, src.size)}
		// Slow down the early batches so that the later bad cluster is
		// usually found first.
		d.writes = func(off int64) error {
			if off < 100<<16 {
				runtime.Gosched()
			}
			return nil
		}
		err := convertQcow2(context.Background(), q, d, &progressor{total: src.size})
		want := fmt.Sprintf("the compressed cluster at guest offset %d does not decompress", 70<<16)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "image.qcow2") {
			t.Fatalf("convert: %v, want an error saying %q", err, want)
		}
	}
}

// An image that becomes shorter after it was inspected is reported as
// truncated.
func TestConvertFileShrinks(t *testing.T) {
	defer goleak.VerifyNone(t)
	src, img := testImage()
	q := openQB(t, img)
	q.f = bytes.NewReader(img[:len(img)/2])
	err := convertQcow2(context.Background(), q, &memDisk{b: make([]byte, src.size)}, &progressor{total: src.size})
	if !errors.Is(err, ErrTruncated) || !strings.Contains(err.Error(), "hit the end of the file") {
		t.Fatalf("convert: %v, want the end of the file hit", err)
	}
}

// A write error ends the conversion, and its goroutines.
func TestConvertWriteError(t *testing.T) {
	defer goleak.VerifyNone(t)
	src, img := testImage()
	q := openQB(t, img)
	full := errors.New("no space left on device")
	var mu sync.Mutex
	writes := 0
	d := &memDisk{b: make([]byte, src.size), writes: func(int64) error {
		mu.Lock()
		defer mu.Unlock()
		if writes++; writes > 20 {
			return full
		}
		return nil
	}}
	if err := convertQcow2(context.Background(), q, d, &progressor{total: src.size}); !errors.Is(err, full) {
		t.Fatalf("convert: %v, want %v", err, full)
	}
}

// Cancelling stops the conversion, and its goroutines, midway.
func TestConvertCancel(t *testing.T) {
	defer goleak.VerifyNone(t)
	src, img := testImage()
	q := openQB(t, img)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var last int64
	p := progressor{total: src.size, fn: func(done, total int64) {
		last = done
		if done > 0 {
			cancel()
		}
	}}
	p.report(0)
	if err := convertQcow2(ctx, q, &memDisk{b: make([]byte, src.size)}, &p); !errors.Is(err, context.Canceled) {
		t.Fatalf("convert: %v, want context.Canceled", err)
	}
	if last == 0 || last >= src.size {
		t.Errorf("last progress %d of %d, want midway", last, src.size)
	}
}
