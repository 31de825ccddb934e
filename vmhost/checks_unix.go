//go:build linux || darwin

package vmhost

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// checkDatagramSocket reports why f is not an open SOCK_DGRAM socket. It
// does not call f.Fd, which would switch the file to blocking mode.
func checkDatagramSocket(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		if errors.Is(err, os.ErrClosed) {
			return fmt.Errorf("the socket %s is closed: pass an open socket", f.Name())
		}
		return fmt.Errorf("%s is not a socket (%v): pass the VM end of a SOCK_DGRAM socketpair", f.Name(), err)
	}
	var typ int
	var serr error
	if err := rc.Control(func(fd uintptr) {
		typ, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TYPE)
	}); err != nil {
		return fmt.Errorf("the socket %s is closed: pass an open socket", f.Name())
	}
	if serr != nil {
		return fmt.Errorf("%s is not a socket (%v): pass the VM end of a SOCK_DGRAM socketpair", f.Name(), serr)
	}
	if typ != unix.SOCK_DGRAM {
		return fmt.Errorf("%s is a %s socket, not SOCK_DGRAM: pass the VM end of a SOCK_DGRAM socketpair (one datagram per frame)", f.Name(), sockTypeName(typ))
	}
	return nil
}

func sockTypeName(t int) string {
	switch t {
	case unix.SOCK_STREAM:
		return "SOCK_STREAM"
	case unix.SOCK_SEQPACKET:
		return "SOCK_SEQPACKET"
	case unix.SOCK_RAW:
		return "SOCK_RAW"
	}
	return fmt.Sprintf("type %d", t)
}

// dirWritable reports why files cannot be created in dir.
func dirWritable(dir string) error {
	if err := unix.Access(dir, unix.W_OK); err != nil {
		return fmt.Errorf("%s is not writable (%v)", dir, err)
	}
	return nil
}
