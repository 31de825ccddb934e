//go:build !linux

package netlink

import (
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// When the VM closes its end of a datagram socketpair, XNU drops the
// surviving end's connection (unp_detach -> unp_drop: so_error =
// ECONNRESET, SS_ISCONNECTED cleared) but wakes no reader: a quiet link
// would not notice until it next sends to the VM. getpeername then fails
// with ENOTCONN, while the peer lives it succeeds. It sends nothing, so it
// is a probe the VM never sees. (Checked against the XNU sources, not run on
// macOS: the tests of this package run on Linux.)

// peerProbe checks whether the VM's end of the socketpair still exists.
type peerProbe struct {
	rc    syscall.RawConn
	err   error
	check func(fd uintptr) // bound once
}

// newPeerProbe prepares a probe of the peer of the host end (rc). It fails
// when the host end has no peer to watch (an unconnected socket); the
// caller then relies on failed sends and reads.
func newPeerProbe(rc syscall.RawConn) (*peerProbe, error) {
	p := &peerProbe{rc: rc}
	p.check = func(fd uintptr) { _, p.err = unix.Getpeername(int(fd)) }
	if err := rc.Control(p.check); err != nil {
		return nil, err
	}
	if p.err != nil {
		if errors.Is(p.err, unix.ENOTCONN) {
			return nil, errors.New("the host end is not connected to a peer")
		}
		return nil, fmt.Errorf("getpeername of the host end: %w", p.err)
	}
	return p, nil
}

func (p *peerProbe) close() {}

// gone reports whether the VM's end has gone away. An error means the probe
// no longer works (the caller stops probing); it never means the VM is gone.
func (p *peerProbe) gone() (bool, error) {
	if err := p.rc.Control(p.check); err != nil {
		return false, err
	}
	switch {
	case p.err == nil:
		return false, nil
	case errors.Is(p.err, unix.ENOTCONN):
		return true, nil
	default:
		return false, fmt.Errorf("getpeername of the host end: %w", p.err)
	}
}
