package netlink

import (
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// streamSendBuffer is the least SO_SNDBUF of the daemon connection. On
// Linux a stream write is cut into buffers of at most half the send
// buffer (and about 36 KiB); with this size a write of maxWrite bytes
// is one buffer, which the kernel queues whole or not at all. On macOS it
// is at least twice SO_SNDLOWAT (see tuneStream).
const streamSendBuffer = 128 << 10

// raiseBuffer makes the socket option opt (SO_SNDBUF or SO_RCVBUF) at
// least want, leaving a larger value alone. It reports the value the
// kernel took, and an error when that is still below want.
func raiseBuffer(fd, opt, want int, name string) error {
	got, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, opt)
	if err == nil && got >= want {
		return nil
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt, want); err != nil {
		return fmt.Errorf("setting %s to %d: %w", name, want, err)
	}
	if got, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, opt); err != nil {
		return fmt.Errorf("reading %s: %w", name, err)
	}
	if got < want {
		return fmt.Errorf("%s is %d after asking for %d (raise the system's limit)", name, got, want)
	}
	return nil
}

// tuneConn applies tuneStream to conn when it is a socket; other
// connections (from a custom Config.Dial) are left alone.
func tuneConn(conn net.Conn) error {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	var terr error
	if err := rc.Control(func(fd uintptr) { terr = tuneStream(int(fd)) }); err != nil {
		return err
	}
	return terr
}
