package netlink

import "golang.org/x/sys/unix"

// busyWait waits up to busyRetryWait for the VM to make room: on Linux a
// full socket buffer is reported by poll, so ppoll returns as soon as the VM
// reads (runtime timers are too coarse for 50 µs).
func (b *batcher) busyWait() { _ = b.rc.Control(b.pfn) }

func (b *batcher) doPoll(fd uintptr) {
	fds := [1]unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	ts := unix.NsecToTimespec(int64(busyRetryWait))
	_, _ = unix.Ppoll(fds[:], &ts, nil)
}
