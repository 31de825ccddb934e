//go:build !linux || portable

package netlink

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// batchSize is the number of datagrams one readBatch or trySend moves at
// most; each datagram is its own read or write system call.
const batchSize = 64

// batcher moves one datagram per system call. Its callbacks are bound once
// so that no call allocates.
type batcher struct {
	rc syscall.RawConn

	rbufs  [][]byte
	rsizes []int
	rn     int
	rerr   error
	rfn    func(fd uintptr) bool

	wframes [][]byte
	wn      int
	werr    error
	wfn     func(fd uintptr) bool

	pfn func(fd uintptr)
}

func (b *batcher) init(rc syscall.RawConn) {
	b.rc = rc
	b.rfn = b.doRead
	b.wfn = b.doWrite
	b.pfn = b.doPoll
}

// readBatch blocks until at least one datagram is available and reads as
// many as are queued (up to len(bufs) and batchSize), never waiting for
// more. sizes[i] receives the length of datagram i. An error may come with
// datagrams read before it.
func (b *batcher) readBatch(bufs [][]byte, sizes []int) (int, error) {
	b.rbufs, b.rsizes = bufs[:min(len(bufs), batchSize)], sizes
	b.rn, b.rerr = 0, nil
	err := b.rc.Read(b.rfn)
	b.rbufs, b.rsizes = nil, nil
	if err != nil {
		return 0, err
	}
	return b.rn, b.rerr
}

func (b *batcher) doRead(fd uintptr) bool {
	for b.rn < len(b.rbufs) {
		n, err := readFD(fd, b.rbufs[b.rn])
		switch err {
		case 0:
			if n == 0 && peerGone(int(fd)) {
				b.rerr = errPeerClosed
				return true
			}
			b.rsizes[b.rn] = n
			b.rn++
		case unix.EAGAIN:
			return b.rn > 0
		default:
			b.rerr = err
			return true
		}
	}
	return true
}

// trySend makes one non-blocking attempt to send frames (up to batchSize)
// and returns how many the VM took. When it took none, err says why (busy,
// see isBusy, when its buffer is full); when it took some but not all, err
// may be nil and the next attempt reports why.
func (b *batcher) trySend(frames [][]byte) (int, error) {
	b.wframes = frames[:min(len(frames), batchSize)]
	b.wn, b.werr = 0, nil
	err := b.rc.Write(b.wfn)
	b.wframes = nil
	if err != nil {
		return 0, err
	}
	return b.wn, b.werr
}

func (b *batcher) doWrite(fd uintptr) bool {
	for b.wn < len(b.wframes) {
		if _, err := writeFD(fd, b.wframes[b.wn]); err != 0 {
			b.werr = err
			return true
		}
		b.wn++
	}
	return true
}
