package netlink

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// readFD and writeFD make one read(2) or write(2) of a non-blocking fd
// (len(p) > 0), retrying when interrupted (EINTR). They are raw system
// calls: a non-blocking call never blocks, so it needs none of the
// scheduler's bookkeeping for blocking calls (which also wakes the runtime's
// monitor thread after every idle spell).
func readFD(fd uintptr, p []byte) (int, syscall.Errno) {
	for {
		r, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		if e != unix.EINTR {
			return int(r), e
		}
	}
}

func writeFD(fd uintptr, p []byte) (int, syscall.Errno) {
	for {
		r, _, e := unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		if e != unix.EINTR {
			return int(r), e
		}
	}
}
