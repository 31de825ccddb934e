package netlink

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Socket buffer sizes of both ends of the VM socketpair. The receive buffer
// is four times the send buffer, as Apple recommends for vmnet datagrams.
const (
	vmSendBuffer = 1 << 20
	vmRecvBuffer = 4 << 20
)

// NewSocketPair returns the two ends of an AF_UNIX SOCK_DGRAM socketpair,
// close-on-exec, with SO_SNDBUF 1 MiB and SO_RCVBUF 4 MiB on both ends. Give
// vmEnd to the VM (it stays in blocking mode) and hostEnd to New.
func NewSocketPair() (vmEnd, hostEnd *os.File, err error) {
	fds, err := socketpairCloexec()
	if err != nil {
		return nil, nil, fmt.Errorf("netlink: creating the VM socketpair: %w", err)
	}
	for _, fd := range fds {
		if err := setBuffers(fd); err != nil {
			unix.Close(fds[0])
			unix.Close(fds[1])
			return nil, nil, err
		}
	}
	// The host end is non-blocking so that os.NewFile registers it with the
	// runtime poller.
	if err := unix.SetNonblock(fds[1], true); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, nil, fmt.Errorf("netlink: making the host end non-blocking: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "vmnet-vm"), os.NewFile(uintptr(fds[1]), "vmnet-host"), nil
}

func setBuffers(fd int) error {
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, vmSendBuffer); err != nil {
		return fmt.Errorf("netlink: setting SO_SNDBUF to %d on the VM socketpair: %w", vmSendBuffer, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, vmRecvBuffer); err != nil {
		return fmt.Errorf("netlink: setting SO_RCVBUF to %d on the VM socketpair: %w", vmRecvBuffer, err)
	}
	return nil
}
