package netlink

import "golang.org/x/sys/unix"

func socketpairCloexec() ([2]int, error) {
	return unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
}

// zeroReadMeansClosed: on Linux a zero-length read is an empty datagram; the
// peer closing is only seen as ECONNREFUSED on the next send.
const zeroReadMeansClosed = false
