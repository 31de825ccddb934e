//go:build !linux

package netlink

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// socketpairCloexec holds the fork lock so that no child started meanwhile
// inherits the new descriptors before they are marked close-on-exec.
func socketpairCloexec() ([2]int, error) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM, 0)
	if err != nil {
		return fds, err
	}
	unix.CloseOnExec(fds[0])
	unix.CloseOnExec(fds[1])
	return fds, nil
}

// zeroReadMeansClosed: on BSD systems a datagram socket whose connected peer
// closed reads end-of-file.
const zeroReadMeansClosed = true
