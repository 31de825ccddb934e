package netlink

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// tuneStream prepares the daemon connection so that a write of at most
// maxWrite bytes is queued whole or not at all. XNU's sosend queues part
// of a stream write when the free space is below the write's size but at
// least SO_SNDLOWAT; with SO_SNDLOWAT = maxWrite a write of at most
// maxWrite bytes either fits whole or waits (EWOULDBLOCK), and it is
// passed to the protocol as one chain (XNU chains up to 64 KiB per
// send). SO_SNDBUF is raised first: SO_SNDLOWAT is capped by it.
func tuneStream(fd int) error {
	if err := raiseBuffer(fd, unix.SO_SNDBUF, streamSendBuffer, "SO_SNDBUF"); err != nil {
		return err
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDLOWAT, maxWrite); err != nil {
		return fmt.Errorf("setting SO_SNDLOWAT to %d: %w", maxWrite, err)
	}
	got, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDLOWAT)
	if err != nil {
		return fmt.Errorf("reading SO_SNDLOWAT: %w", err)
	}
	if got < maxWrite {
		return fmt.Errorf("SO_SNDLOWAT is %d after asking for %d", got, maxWrite)
	}
	return nil
}
