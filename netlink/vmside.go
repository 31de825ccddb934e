package netlink

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// vmConn is the link's own handle on the host end of the VM socketpair: a
// duplicate of the caller's descriptor, non-blocking and registered with the
// runtime poller, closed when Run returns.
type vmConn struct {
	uc *net.UnixConn
	rc syscall.RawConn
	batcher
}

func openVM(host *os.File) (*vmConn, error) {
	pc, err := net.FilePacketConn(host)
	if err != nil {
		return nil, fmt.Errorf("%w: using the host end of the VM socketpair: %w", ErrVMSide, err)
	}
	uc, ok := pc.(*net.UnixConn)
	if !ok {
		pc.Close()
		return nil, fmt.Errorf("%w: the host end is a %T, not a UNIX datagram socket", ErrVMSide, pc)
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		uc.Close()
		return nil, fmt.Errorf("%w: %w", ErrVMSide, err)
	}
	v := &vmConn{uc: uc, rc: rc}
	v.batcher.init(rc)
	return v, nil
}

func (v *vmConn) Close() error { return v.uc.Close() }

// checkHost reports a clear error unless f is an AF_UNIX SOCK_DGRAM socket.
func checkHost(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("netlink: host end %q: %w", f.Name(), err)
	}
	var typ int
	var serr, nerr error
	var sa unix.Sockaddr
	if err := rc.Control(func(fd uintptr) {
		typ, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TYPE)
		sa, nerr = unix.Getsockname(int(fd))
	}); err != nil {
		return fmt.Errorf("netlink: host end %q: %w", f.Name(), err)
	}
	if serr != nil {
		return fmt.Errorf("netlink: host end %q is not a socket (%w): pass the host end from NewSocketPair", f.Name(), serr)
	}
	if typ != unix.SOCK_DGRAM {
		return fmt.Errorf("netlink: host end %q is a %s socket, want SOCK_DGRAM: pass the host end from NewSocketPair", f.Name(), sockTypeName(typ))
	}
	if _, ok := sa.(*unix.SockaddrUnix); !ok {
		what := fmt.Sprintf("%T", sa)
		if nerr != nil {
			what = nerr.Error()
		}
		return fmt.Errorf("netlink: host end %q is not an AF_UNIX socket (%s): pass the host end from NewSocketPair", f.Name(), what)
	}
	return nil
}

// raiseHostBuffers gives the host end at least the socketpair's buffer
// sizes (a descriptor from elsewhere may have the system's defaults, which
// on macOS are a few KiB for datagram sockets). It only raises them.
func raiseHostBuffers(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var berr error
	if err := rc.Control(func(fd uintptr) {
		berr = errors.Join(
			raiseBuffer(int(fd), unix.SO_SNDBUF, vmSendBuffer, "SO_SNDBUF"),
			raiseBuffer(int(fd), unix.SO_RCVBUF, vmRecvBuffer, "SO_RCVBUF"))
	}); err != nil {
		return err
	}
	return berr
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

// isTooBig reports whether err from a send towards the VM is about that
// one frame's size: the frame is dropped, the link goes on.
func isTooBig(err error) bool {
	return errors.Is(err, unix.EMSGSIZE)
}

// isBusy reports whether err from a send towards the VM means "try again
// later" (a full buffer) rather than a dead peer.
func isBusy(err error) bool {
	return errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EWOULDBLOCK) || errors.Is(err, unix.ENOBUFS)
}
