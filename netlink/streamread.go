package netlink

import (
	"fmt"
	"io"
	"net"
	"syscall"
)

// streamReader reads the daemon connection for the down direction. On a
// socket connection it reads the descriptor directly through its RawConn
// (readFD, non-blocking; the runtime poller waits), which costs less per
// read than net.Conn.Read and, on Linux, does not wake the runtime's
// monitor thread on every read after an idle spell. Any other net.Conn is
// read with its Read method. Its callback is bound once so that no read
// allocates.
type streamReader struct {
	conn net.Conn
	rc   syscall.RawConn // nil: use conn.Read
	p    []byte
	n    int
	err  error
	fn   func(fd uintptr) bool
}

func (s *streamReader) reset(conn net.Conn) {
	s.conn, s.rc = conn, nil
	if s.fn == nil {
		s.fn = s.doRead
	}
	var sc syscall.Conn
	switch c := conn.(type) {
	case *net.UnixConn:
		sc = c
	case *net.TCPConn:
		sc = c
	default:
		return
	}
	if rc, err := sc.SyscallConn(); err == nil {
		s.rc = rc
	}
}

// read reads into p like io.Reader: at least one byte, or an error (io.EOF
// at the end of the stream).
func (s *streamReader) read(p []byte) (int, error) {
	if s.rc == nil {
		return s.conn.Read(p)
	}
	if len(p) == 0 {
		return 0, nil
	}
	s.p, s.n, s.err = p, 0, nil
	err := s.rc.Read(s.fn)
	s.p = nil
	if err != nil {
		return 0, err
	}
	if s.err != nil {
		return 0, s.err
	}
	if s.n == 0 {
		return 0, io.EOF
	}
	return s.n, nil
}

func (s *streamReader) doRead(fd uintptr) bool {
	n, errno := readFD(fd, s.p)
	switch errno {
	case 0:
		s.n = n
		return true
	case syscall.EAGAIN:
		return false
	default:
		s.err = fmt.Errorf("read: %w", errno)
		return true
	}
}
