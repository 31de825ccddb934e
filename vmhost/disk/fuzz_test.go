//go:build linux || darwin

package disk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
)

var errBudget = errors.New("write budget spent")

// boundedWriter checks that writes stay inside the disk and stops the
// conversion after budget bytes, so that a fuzzed image of a huge disk
// full of references to one cluster cannot run for long. The converters
// write at once.
type boundedWriter struct {
	size   int64
	budget atomic.Int64
}

func (w *boundedWriter) WriteAt(b []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(b)) > w.size {
		return 0, fmt.Errorf("write of %d bytes at %d outside the disk of %d bytes", len(b), off, w.size)
	}
	if w.budget.Add(-int64(len(b))) < 0 {
		return 0, errBudget
	}
	return len(b), nil
}

// FuzzQcow2 feeds Inspect's parser and the converter arbitrary files. They
// must never panic, must fail only with an *Error saying what to do, must
// not allocate more than the file holds (tables are checked against the
// file's size before they are read), and must write only inside the disk.
func FuzzQcow2(f *testing.F) {
	good := goodQB()
	f.Add(good.build())
	v2 := goodQB()
	v2.version = 2
	f.Add(v2.build())
	// Small seeds keep minimizing quick: 4 KiB clusters and extended L2
	// entries (16 KiB clusters at least) on a few clusters only. qb writes
	// 8-byte entries, not extended ones: a fine start for mutations.
	f.Add(qb{version: 3, clusterBits: 12, size: 12 << 10,
		plain: map[int64][]byte{0: []byte("data")}, compressed: map[int64][]byte{2: []byte("zz")}}.build())
	f.Add(qb{version: 3, clusterBits: 14, size: 16 << 10, incompat: incompatExtendedL2}.build())
	f.Add(good.build()[:300])
	f.Add(append(bytes.Repeat([]byte{0}, 510), 0x55, 0xaa))
	f.Add([]byte("QFI\xfb\x00\x00\x00\x03"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx := context.Background()
		info, q, err := inspectFile(ctx, bytes.NewReader(data), "fuzz.img")
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Path != "fuzz.img" || e.Kind == nil || e.What == "" || e.Fix == "" {
				t.Fatalf("Inspect error %#v is not a complete *Error", err)
			}
			return
		}
		if info.VirtualSize <= 0 || info.DataBytes < 0 || info.DataBytes > info.VirtualSize || info.FileSize != int64(len(data)) {
			t.Fatalf("Inspect = %+v for %d bytes", info, len(data))
		}
		if q == nil {
			if info.Format != FormatRaw {
				t.Fatalf("Inspect = %+v without a qcow2 image", info)
			}
			return
		}
		if int64(len(q.l1))*8 > int64(len(data)) || q.clusterSize > 2<<20 {
			t.Fatalf("L1 table of %d entries, clusters of %d bytes, from %d bytes", len(q.l1), q.clusterSize, len(data))
		}
		// The work of converting grows with the disk's size, not the
		// file's (a tiny file can describe a huge disk of compressed
		// clusters of zeros): convert the first 32 MiB of the disk only.
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		p := progressor{total: info.VirtualSize, fn: func(done, total int64) {
			if done > 32<<20 {
				cancel()
			}
		}}
		w := &boundedWriter{size: info.VirtualSize}
		w.budget.Store(16 << 20)
		err = convertQcow2(cctx, q, w, &p)
		var e *Error
		if err != nil && !errors.Is(err, errBudget) && !errors.Is(err, context.Canceled) && !errors.As(err, &e) {
			t.Fatalf("convert: %v", err)
		}
	})
}
