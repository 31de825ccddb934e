//go:build !linux

package netlink

import "net"

// benchVM is the benchmarks' VM: one datagram per system call.
type benchVM struct {
	c     *net.UnixConn
	frame []byte
	buf   []byte
}

func newBenchVM(c *net.UnixConn, frame []byte) *benchVM {
	return &benchVM{c: c, frame: frame, buf: make([]byte, MaxFrameSize+1)}
}

func (v *benchVM) send(count int) error {
	for ; count > 0; count-- {
		if _, err := v.c.Write(v.frame); err != nil {
			return err
		}
	}
	return nil
}

func (v *benchVM) recv(max int) (int, error) {
	n, err := v.c.Read(v.buf)
	if err != nil {
		return 0, err
	}
	if n != len(v.frame) {
		return 0, errFrameMismatch
	}
	return 1, nil
}
