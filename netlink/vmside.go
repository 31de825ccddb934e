package netlink

import (
	"errors"
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"

	"github.com/vmnetbar/vmnetbar/internal/sockcheck"
)

// vmConn is the link's own handle on the host end of the VM socketpair: a
// duplicate of the caller's descriptor, non-blocking and registered with the
// runtime poller, closed when Run returns.
type vmConn struct {
	uc *net.UnixConn
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
	v := &vmConn{uc: uc}
	v.batcher.init(rc)
	return v, nil
}

func (v *vmConn) Close() error { return v.uc.Close() }

// checkHost reports a clear error unless f is an AF_UNIX SOCK_DGRAM socket.
func checkHost(f *os.File) error {
	if err := sockcheck.Datagram(f); err != nil {
		return fmt.Errorf("netlink: host end: %w: pass the host end from NewSocketPair", err)
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
