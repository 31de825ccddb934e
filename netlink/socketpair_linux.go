package netlink

import "golang.org/x/sys/unix"

func socketpairCloexec() ([2]int, error) {
	return unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
}

// peerGone reports whether a zero-length read from fd means that the VM
// closed its end. On Linux it never does: a zero-length read is an empty
// datagram (skipped and counted as Drops.Empty); the peer closing is only
// seen as ECONNREFUSED on the next send.
//
//lint:ignore U1000 used by the portable path (batch_portable.go, -tags portable)
func peerGone(fd int) bool { return false }
