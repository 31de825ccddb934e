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

// peerGone reports whether a zero-length read from fd means that the VM
// closed its end rather than that it sent an empty datagram. When the peer
// of a connected AF_UNIX SOCK_DGRAM socket goes away, XNU disconnects the
// surviving end (and sets ECONNRESET as its pending error), so
// getpeername fails with ENOTCONN; while the peer lives it succeeds. XNU
// wakes no reader when that happens, so on a quiet link the VM-side probe
// (peerprobe_other.go) is what notices.
func peerGone(fd int) bool {
	_, err := unix.Getpeername(fd)
	return err == unix.ENOTCONN
}
