//go:build linux && !portable

package netlink

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// batchSize is the number of datagrams one recvmmsg/sendmmsg moves at most.
const batchSize = 64

// batcher moves datagrams with recvmmsg and sendmmsg. Its callbacks are bound
// once so that no call allocates.
type batcher struct {
	rc syscall.RawConn

	rmsgs [batchSize]unix.Mmsghdr
	riovs [batchSize]unix.Iovec
	rn    int
	rerr  syscall.Errno
	rfn   func(fd uintptr) bool

	wmsgs [batchSize]unix.Mmsghdr
	wiovs [batchSize]unix.Iovec
	wlen  int
	wn    int
	werr  syscall.Errno
	wfn   func(fd uintptr) bool

	pfn func(fd uintptr)
}

func (b *batcher) init(rc syscall.RawConn) {
	b.rc = rc
	b.rfn = b.doRead
	b.wfn = b.doWrite
	b.pfn = b.doPoll
	for i := range b.rmsgs {
		b.rmsgs[i].Hdr.Iov = &b.riovs[i]
		b.rmsgs[i].Hdr.SetIovlen(1)
		b.wmsgs[i].Hdr.Iov = &b.wiovs[i]
		b.wmsgs[i].Hdr.SetIovlen(1)
	}
}

// readBatch blocks until at least one datagram is available and reads as
// many as are queued (up to len(bufs) and batchSize), never waiting for
// more. sizes[i] receives the length of datagram i.
func (b *batcher) readBatch(bufs [][]byte, sizes []int) (int, error) {
	n := min(len(bufs), batchSize)
	for i := 0; i < n; i++ {
		b.riovs[i].Base = &bufs[i][0]
		b.riovs[i].SetLen(len(bufs[i]))
	}
	b.rn = n
	if err := b.rc.Read(b.rfn); err != nil {
		return 0, err
	}
	if b.rerr != 0 {
		return 0, b.rerr
	}
	for i := 0; i < b.rn; i++ {
		sizes[i] = int(b.rmsgs[i].Len)
	}
	return b.rn, nil
}

func (b *batcher) doRead(fd uintptr) bool {
	for {
		r, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.rmsgs[0])), uintptr(b.rn), unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
			b.rn, b.rerr = int(r), 0
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		default:
			b.rn, b.rerr = 0, e
			return true
		}
	}
}

// trySend makes one non-blocking attempt to send frames (up to batchSize)
// and returns how many the VM took. When it took none, err says why (busy,
// see isBusy, when its buffer is full); when it took some but not all, err
// may be nil and the next attempt reports why.
func (b *batcher) trySend(frames [][]byte) (int, error) {
	n := min(len(frames), batchSize)
	for i := 0; i < n; i++ {
		b.wiovs[i].Base = &frames[i][0]
		b.wiovs[i].SetLen(len(frames[i]))
	}
	b.wlen = n
	if err := b.rc.Write(b.wfn); err != nil {
		return 0, err
	}
	if b.werr != 0 {
		return b.wn, b.werr
	}
	if b.wn == 0 && n > 0 {
		return 0, unix.EAGAIN
	}
	// When sendmmsg stopped early it does not say why: the caller's next
	// attempt starts with the first frame not sent and gets the reason.
	return b.wn, nil
}

func (b *batcher) doWrite(fd uintptr) bool {
	for {
		r, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&b.wmsgs[0])), uintptr(b.wlen), unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
			b.wn, b.werr = int(r), 0
		case unix.EINTR:
			continue
		default:
			b.wn, b.werr = 0, e
		}
		return true
	}
}
