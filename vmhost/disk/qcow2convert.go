package disk

import (
	"bytes"
	"compress/flate"
	"context"
	"errors"
	"io"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
)

// Converting a qcow2 image: the caller's goroutine walks the image's tables
// and groups its extents into batches, each the work of one read of the
// image file: extents whose data lie close together in the file (at most
// maxGap apart, at most batchBytes read at once) and that make at most
// batchBytes of the disk. Compressed images store their clusters one after
// the other, so a batch of a compressed image is one read of up to 512 KiB
// instead of one read per cluster.
//
// A few converter goroutines (GOMAXPROCS, at most maxConverters) each take
// a batch, read it, inflate its compressed clusters and write the data at
// its place in the disk (pwrite: batches are written in any order). Memory
// is bounded: each converter has one read buffer and one output buffer of
// at most batchBytes (or one cluster's data) plus one cluster, and at most
// 2×converters batches (their descriptions, not their data) are in flight.
//
// Progress is reported on the caller's goroutine, for the part of the disk
// whose batches are all written. The first error in disk order is
// returned: once a batch fails, the converters skip the batches after it
// but finish those before it, which may fail earlier in the disk.

const (
	maxConverters = 4
	maxGap        = 64 << 10 // file bytes between two extents read rather than skipped
	// batchBytes bounds the file bytes a batch reads and the disk bytes it
	// makes (unless it is one piece): small enough that the data stays in
	// the CPU's cache between reading, inflating and writing.
	batchBytes = 512 << 10
)

// A batch is the work of one read: the file's bytes [host, end) hold the
// data of pieces, which are in disk order.
type batch struct {
	seq       int64 // order of the batch in the disk
	host, end int64
	pieces    []extent
	guest     int64 // disk bytes the pieces make
	guestEnd  int64 // the end of the last piece in the disk
}

// span is the bytes of the file that hold e's data.
func span(e extent) int64 {
	if e.compressed {
		return e.clen
	}
	return e.length
}

// add adds e to b if it belongs to it.
func (b *batch) add(e extent) bool {
	n := span(e)
	if e.host < b.host || e.host > b.end+maxGap || max(b.end, e.host+n)-b.host > batchBytes || b.guest+e.length > batchBytes {
		return false
	}
	// Plain data right after plain data, in the disk and in the file,
	// extends the piece: one write.
	if last := &b.pieces[len(b.pieces)-1]; !e.compressed && !last.compressed &&
		e.guest == last.guest+last.length && e.host == last.host+last.length {
		last.length += e.length
	} else {
		b.pieces = append(b.pieces, e)
	}
	b.end = max(b.end, e.host+n)
	b.guest += e.length
	b.guestEnd = e.guest + e.length
	return true
}

func newBatch(e extent) *batch {
	return &batch{host: e.host, end: e.host + span(e), pieces: []extent{e}, guest: e.length, guestEnd: e.guest + e.length}
}

type batchResult struct {
	seq, guestEnd int64
	err           error
}

// errSkipped is the result of a batch not converted because an earlier one
// failed; errStop ends the walk once a batch failed.
var (
	errSkipped = errors.New("skipped")
	errStop    = errors.New("stop")
)

// convertQcow2 writes the data of q into w (a file already of the disk's
// size, all holes).
func convertQcow2(ctx context.Context, q *qcow2, w io.WriterAt, p *progressor) error {
	workers := min(runtime.GOMAXPROCS(0), maxConverters)
	jobs := make(chan *batch)
	results := make(chan batchResult, workers)
	var failed atomic.Int64 // the seq of the first failed batch
	failed.Store(math.MaxInt64)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := converter{q: q, w: w}
			for b := range jobs {
				err := errSkipped
				if b.seq < failed.Load() {
					if err = c.convert(ctx, b); err != nil {
						lower(&failed, b.seq)
					}
				}
				results <- batchResult{seq: b.seq, guestEnd: b.guestEnd, err: err}
			}
		}()
	}

	var (
		inflight, next, doneSeq int64
		written                 = map[int64]int64{} // seq -> guestEnd of batches written out of order
		errSeq                  = int64(math.MaxInt64)
		firstErr                error
	)
	handle := func(r batchResult) {
		inflight--
		if r.err != nil {
			if r.err != errSkipped && r.seq < errSeq {
				errSeq, firstErr = r.seq, r.err
			}
			return
		}
		written[r.seq] = r.guestEnd
		for {
			end, ok := written[doneSeq]
			if !ok {
				break
			}
			delete(written, doneSeq)
			doneSeq++
			p.report(end)
		}
	}
	submit := func(b *batch) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		b.seq = next
		next++
		for {
			if firstErr != nil {
				return errStop
			}
			select {
			case jobs <- b:
				inflight++
				return nil
			case r := <-results:
				handle(r)
			}
		}
	}
	var cur *batch
	walkErr := q.walk(ctx, func(e extent) error {
		if cur != nil && cur.add(e) {
			return nil
		}
		if cur != nil {
			if err := submit(cur); err != nil {
				return err
			}
		}
		cur = newBatch(e)
		return nil
	})
	if walkErr == nil && cur != nil {
		walkErr = submit(cur)
	}
	close(jobs)
	for inflight > 0 {
		handle(<-results)
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if walkErr != nil && walkErr != errStop {
		return walkErr
	}
	return nil
}

// lower sets a to v if v is smaller.
func lower(a *atomic.Int64, v int64) {
	for {
		old := a.Load()
		if v >= old || a.CompareAndSwap(old, v) {
			return
		}
	}
}

// A converter reads, inflates and writes batches; each converter goroutine
// has its own.
type converter struct {
	q        *qcow2
	w        io.WriterAt
	in, out  []byte
	br       bytes.Reader
	zr       io.ReadCloser
	outGuest int64 // where out[:outLen] goes in the disk
	outLen   int64
}

func (c *converter) convert(ctx context.Context, b *batch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	q := c.q
	n := b.end - b.host
	if int64(len(c.in)) < n {
		c.in = make([]byte, n)
	}
	in := c.in[:n]
	if err := q.readAt(in, b.host); err != nil {
		return err
	}
	// Room for the batch's disk bytes, and a whole last cluster: a small
	// image needs small buffers.
	if need := b.guest + q.clusterSize; int64(len(c.out)) < need {
		c.out = make([]byte, need)
	}
	c.outLen = 0
	for _, e := range b.pieces {
		data := in[e.host-b.host : e.host-b.host+span(e)]
		if !e.compressed {
			if err := c.flush(); err != nil {
				return err
			}
			if err := writeData(c.w, data, e.guest); err != nil {
				return err
			}
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if c.outLen > 0 && (e.guest != c.outGuest+c.outLen || c.outLen+q.clusterSize > int64(len(c.out))) {
			if err := c.flush(); err != nil {
				return err
			}
		}
		if c.outLen == 0 {
			c.outGuest = e.guest
		}
		c.br.Reset(data)
		if c.zr == nil {
			c.zr = flate.NewReader(&c.br)
		} else if err := c.zr.(flate.Resetter).Reset(&c.br, nil); err != nil {
			return err
		}
		// A compressed cluster inflates to a whole cluster; the disk's
		// last cluster may be cut short.
		if _, err := io.ReadFull(c.zr, c.out[c.outLen:c.outLen+q.clusterSize]); err != nil {
			return q.corrupt("the compressed cluster at guest offset %d does not decompress to a whole cluster (%v)", e.guest, err)
		}
		c.outLen += e.length
	}
	return c.flush()
}

// flush writes the inflated clusters in out.
func (c *converter) flush() error {
	if c.outLen == 0 {
		return nil
	}
	err := writeData(c.w, c.out[:c.outLen], c.outGuest)
	c.outLen = 0
	return err
}
