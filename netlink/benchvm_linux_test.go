package netlink

import (
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// benchVM is the benchmarks' VM: it moves datagrams on its end of the
// socketpair with sendmmsg/recvmmsg, so the VM is never what limits a
// forwarder's rate. It sends, and expects, its frames in a cycle (one
// frame, or BenchmarkLearning's mix).
type benchVM struct {
	rc     syscall.RawConn
	frames [][]byte
	next   int // index in frames of the next frame to send or receive
	msgs   [32]unix.Mmsghdr
	iovs   [32]unix.Iovec
	bufs   [32][]byte
	n      int
	err    syscall.Errno
	sfn    func(fd uintptr) bool
	rfn    func(fd uintptr) bool
}

func newBenchVM(c *net.UnixConn, frames ...[]byte) *benchVM {
	rc, err := c.SyscallConn()
	if err != nil {
		panic(err)
	}
	v := &benchVM{rc: rc, frames: frames}
	for i := range v.msgs {
		v.bufs[i] = make([]byte, MaxFrameSize+1)
		v.msgs[i].Hdr.Iov = &v.iovs[i]
		v.msgs[i].Hdr.SetIovlen(1)
	}
	v.sfn, v.rfn = v.doSend, v.doRecv
	return v
}

// send sends count frames of the cycle, blocking while the socketpair is
// full.
func (v *benchVM) send(count int) error {
	for count > 0 {
		v.n = min(count, len(v.msgs))
		for i := 0; i < v.n; i++ {
			f := v.frames[(v.next+i)%len(v.frames)]
			v.iovs[i].Base = &f[0]
			v.iovs[i].SetLen(len(f))
		}
		if err := v.rc.Write(v.sfn); err != nil {
			return err
		}
		if v.err != 0 {
			return v.err
		}
		count -= v.n
		v.next = (v.next + v.n) % len(v.frames)
	}
	return nil
}

func (v *benchVM) doSend(fd uintptr) bool {
	r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&v.msgs[0])), uintptr(v.n), unix.MSG_DONTWAIT, 0, 0)
	if e == unix.EAGAIN {
		return false
	}
	v.n, v.err = int(r), e
	return true
}

// recv receives at least one and at most max frames and returns how many,
// checking that each has the size of the frame of the cycle it should be.
func (v *benchVM) recv(max int) (int, error) {
	for i := range v.iovs {
		v.iovs[i].Base = &v.bufs[i][0]
		v.iovs[i].SetLen(len(v.bufs[i]))
	}
	v.n = min(max, len(v.msgs))
	if err := v.rc.Read(v.rfn); err != nil {
		return 0, err
	}
	if v.err != 0 {
		return 0, v.err
	}
	for i := 0; i < v.n; i++ {
		if int(v.msgs[i].Len) != len(v.frames[(v.next+i)%len(v.frames)]) {
			return i, errFrameMismatch
		}
	}
	v.next = (v.next + v.n) % len(v.frames)
	return v.n, nil
}

func (v *benchVM) doRecv(fd uintptr) bool {
	r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&v.msgs[0])), uintptr(v.n), unix.MSG_DONTWAIT, 0, 0)
	if e == unix.EAGAIN {
		return false
	}
	v.n, v.err = int(r), e
	return true
}
