//go:build !linux

package netlink

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// readFD and writeFD make one read(2) or write(2) of a non-blocking fd
// (len(p) > 0), retrying when interrupted (EINTR).
func readFD(fd uintptr, p []byte) (int, syscall.Errno) {
	for {
		n, e := toErrno(unix.Read(int(fd), p))
		if e != unix.EINTR {
			return n, e
		}
	}
}

func writeFD(fd uintptr, p []byte) (int, syscall.Errno) {
	for {
		n, e := toErrno(unix.Write(int(fd), p))
		if e != unix.EINTR {
			return n, e
		}
	}
}

func toErrno(n int, err error) (int, syscall.Errno) {
	if err != nil {
		if e, ok := err.(syscall.Errno); ok {
			return 0, e
		}
		return 0, syscall.EIO
	}
	return n, 0
}
