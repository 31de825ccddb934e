//go:build unix

// Package sockcheck tells what kind of socket a file is, so that netlink and
// vmhost can say clearly what is wrong with a descriptor they were handed.
//
// sockcheck imports the standard library and golang.org/x/sys.
package sockcheck

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Datagram reports why f is not an open AF_UNIX SOCK_DGRAM socket, naming
// what it is instead; it returns nil when it is one. It does not call f.Fd,
// which would switch the file to blocking mode. Callers add what to do.
func Datagram(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		if errors.Is(err, os.ErrClosed) {
			return fmt.Errorf("%s is closed", f.Name())
		}
		return fmt.Errorf("%s is not a socket (%v)", f.Name(), err)
	}
	var (
		typ        int
		sa         unix.Sockaddr
		serr, nerr error
		kind       string
	)
	if err := rc.Control(func(fd uintptr) {
		typ, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TYPE)
		if serr != nil {
			kind = fileKind(int(fd))
			return
		}
		sa, nerr = unix.Getsockname(int(fd))
	}); err != nil {
		return fmt.Errorf("%s is closed", f.Name())
	}
	if serr != nil {
		if kind != "" {
			return fmt.Errorf("%s is not a socket (it is %s)", f.Name(), kind)
		}
		return fmt.Errorf("%s is not a socket (%v)", f.Name(), serr)
	}
	if typ != unix.SOCK_DGRAM {
		return fmt.Errorf("%s is a %s socket, not SOCK_DGRAM", f.Name(), TypeName(typ))
	}
	if _, ok := sa.(*unix.SockaddrUnix); !ok {
		what := fmt.Sprintf("%T", sa)
		if nerr != nil {
			what = nerr.Error()
		}
		return fmt.Errorf("%s is not an AF_UNIX socket (%s)", f.Name(), what)
	}
	return nil
}

// fileKind names the kind of file fd is, or returns "" when fstat fails or
// the kind has no name here.
func fileKind(fd int) string {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return ""
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "a regular file"
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFIFO:
		return "a pipe"
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFBLK:
		return "a block device"
	}
	return ""
}

// TypeName names a socket type (SO_TYPE) for messages.
func TypeName(t int) string {
	switch t {
	case unix.SOCK_STREAM:
		return "SOCK_STREAM"
	case unix.SOCK_DGRAM:
		return "SOCK_DGRAM"
	case unix.SOCK_SEQPACKET:
		return "SOCK_SEQPACKET"
	case unix.SOCK_RAW:
		return "SOCK_RAW"
	}
	return fmt.Sprintf("type %d", t)
}
