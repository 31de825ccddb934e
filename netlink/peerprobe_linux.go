package netlink

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// On Linux the host end of a datagram socketpair is told nothing when the
// VM closes its end: no readable or hang-up event, getpeername still
// succeeds; only the next send fails (ECONNREFUSED). And nothing may be sent
// to probe it: QEMU's -netdev dgram takes a zero-length datagram for the end
// of the connection and stops reading, which would cut a live VM's network.
//
// So the peer is looked up with the kernel's unix socket diagnostics
// (NETLINK_SOCK_DIAG, unix_diag), which the VM never sees: an exact lookup
// of the host end (by inode, from fstat) with UDIAG_SHOW_PEER gives the
// peer's inode; an exact lookup of that inode fails with ENOENT once the
// peer socket is gone. A peer that is closed is also reported with inode 0
// (its socket has been orphaned) on kernels that do not cache the inode.

// unix_diag constants (linux/unix_diag.h, linux/sock_diag.h).
const (
	udiagShowPeer  = 0x4 // UDIAG_SHOW_PEER
	unixDiagPeer   = 2   // UNIX_DIAG_PEER attribute: the peer's inode (u32)
	diagNoCookie   = ^uint32(0)
	nlmsgHdrLen    = 16 // struct nlmsghdr
	unixDiagReqLen = 24 // struct unix_diag_req
	unixDiagMsgLen = 16 // struct unix_diag_msg
	nlattrHdrLen   = 4  // struct nlattr
	probeRecvLen   = 4096
	// probeTimeout bounds one answer of the kernel (it answers at once).
	probeTimeout = 2 // seconds
)

// peerProbe checks, without sending the VM anything, whether the VM's end of
// the socketpair still exists. It owns a NETLINK_SOCK_DIAG socket; its
// buffers are reused, so a check does not allocate.
type peerProbe struct {
	nl   int    // NETLINK_SOCK_DIAG socket
	self uint32 // inode of the host end
	peer uint32 // inode of the VM end, seen when the probe was made
	seq  uint32
	req  [nlmsgHdrLen + unixDiagReqLen]byte
	buf  [probeRecvLen]byte
}

// newPeerProbe prepares a probe of the peer of the host end (rc). It fails
// when unix_diag is unavailable (no NETLINK_SOCK_DIAG, no unix_diag module,
// the socket belongs to another network namespace) or the host end has no
// peer to watch (an unconnected socket); the caller then relies on failed
// sends.
func newPeerProbe(rc syscall.RawConn) (*peerProbe, error) {
	var st unix.Stat_t
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Fstat(int(fd), &st) }); err != nil {
		return nil, err
	}
	if serr != nil {
		return nil, fmt.Errorf("fstat of the host end: %w", serr)
	}
	nl, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, fmt.Errorf("opening a NETLINK_SOCK_DIAG socket: %w", err)
	}
	tv := unix.Timeval{Sec: probeTimeout}
	if err := unix.SetsockoptTimeval(nl, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(nl)
		return nil, fmt.Errorf("setting a receive timeout on the NETLINK_SOCK_DIAG socket: %w", err)
	}
	p := &peerProbe{nl: nl, self: uint32(st.Ino)}
	peer, has, err := p.lookup(p.self, udiagShowPeer)
	switch {
	case err != nil:
		p.close()
		return nil, fmt.Errorf("unix_diag lookup of the host end (inode %d): %w", p.self, err)
	case !has:
		p.close()
		return nil, errors.New("the host end is not connected to a peer")
	case peer == 0:
		// The peer is already gone: the first check reports it.
	}
	p.peer = peer
	return p, nil
}

func (p *peerProbe) close() { unix.Close(p.nl) }

// gone reports whether the VM's end has gone away. An error means the probe
// no longer works (the caller stops probing); it never means the VM is gone.
func (p *peerProbe) gone() (bool, error) {
	if p.peer == 0 {
		return true, nil
	}
	peer, has, err := p.lookup(p.self, udiagShowPeer)
	if err != nil {
		return false, fmt.Errorf("unix_diag lookup of the host end (inode %d): %w", p.self, err)
	}
	if !has || peer == 0 {
		return true, nil
	}
	if _, _, err := p.lookup(peer, 0); err != nil {
		if err == unix.ENOENT {
			return true, nil
		}
		return false, fmt.Errorf("unix_diag lookup of the VM end (inode %d): %w", peer, err)
	}
	return false, nil
}

// lookup makes an exact unix_diag request for the socket with inode ino and
// returns its UNIX_DIAG_PEER attribute (when show asks for it) and whether
// the answer had one. The error is the kernel's (ENOENT: no such socket).
func (p *peerProbe) lookup(ino, show uint32) (peer uint32, hasPeer bool, err error) {
	p.seq++
	ne := binary.NativeEndian
	r := p.req[:]
	ne.PutUint32(r[0:], uint32(len(r)))           // nlmsg_len
	ne.PutUint16(r[4:], unix.SOCK_DIAG_BY_FAMILY) // nlmsg_type
	ne.PutUint16(r[6:], unix.NLM_F_REQUEST)       // nlmsg_flags: an exact lookup, not a dump
	ne.PutUint32(r[8:], p.seq)                    // nlmsg_seq
	ne.PutUint32(r[12:], 0)                       // nlmsg_pid
	q := r[nlmsgHdrLen:]
	q[0], q[1], q[2], q[3] = unix.AF_UNIX, 0, 0, 0 // sdiag_family, sdiag_protocol, pad
	ne.PutUint32(q[4:], ^uint32(0))                // udiag_states: any
	ne.PutUint32(q[8:], ino)                       // udiag_ino
	ne.PutUint32(q[12:], show)                     // udiag_show
	ne.PutUint32(q[16:], diagNoCookie)             // udiag_cookie
	ne.PutUint32(q[20:], diagNoCookie)
	if _, err := unix.Write(p.nl, r); err != nil {
		return 0, false, err
	}
	// Answers to earlier requests (one whose wait timed out) are skipped.
	for tries := 0; tries < 8; tries++ {
		n, err := p.read()
		if err != nil {
			return 0, false, err
		}
		b := p.buf[:n]
		for len(b) >= nlmsgHdrLen {
			l := int(ne.Uint32(b[0:]))
			if l < nlmsgHdrLen || l > len(b) {
				return 0, false, errors.New("malformed netlink answer")
			}
			typ, seq, msg := ne.Uint16(b[4:]), ne.Uint32(b[8:]), b[nlmsgHdrLen:l]
			b = b[min(len(b), (l+3)&^3):]
			if seq != p.seq {
				continue
			}
			switch typ {
			case unix.NLMSG_ERROR:
				if len(msg) < 4 {
					return 0, false, errors.New("malformed netlink error")
				}
				if e := int32(ne.Uint32(msg)); e < 0 {
					return 0, false, syscall.Errno(-e)
				}
				return 0, false, errors.New("unexpected netlink acknowledgement")
			case unix.SOCK_DIAG_BY_FAMILY:
				if len(msg) < unixDiagMsgLen {
					return 0, false, errors.New("malformed unix_diag answer")
				}
				peer, hasPeer = peerAttr(msg[unixDiagMsgLen:])
				return peer, hasPeer, nil
			default:
				return 0, false, fmt.Errorf("unexpected netlink message type %d", typ)
			}
		}
	}
	return 0, false, errors.New("no unix_diag answer to the request")
}

// read receives one netlink datagram into p.buf, retrying when interrupted.
func (p *peerProbe) read() (int, error) {
	for {
		n, err := unix.Read(p.nl, p.buf[:])
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			return 0, errors.New("the kernel did not answer a unix_diag request in time")
		}
		return n, err
	}
}

// peerAttr finds the UNIX_DIAG_PEER attribute among netlink attributes.
func peerAttr(b []byte) (uint32, bool) {
	ne := binary.NativeEndian
	for len(b) >= nlattrHdrLen {
		l := int(ne.Uint16(b[0:]))
		if l < nlattrHdrLen || l > len(b) {
			return 0, false
		}
		if ne.Uint16(b[2:])&0x3fff == unixDiagPeer && l >= nlattrHdrLen+4 {
			return ne.Uint32(b[nlattrHdrLen:]), true
		}
		b = b[min(len(b), (l+3)&^3):]
	}
	return 0, false
}
