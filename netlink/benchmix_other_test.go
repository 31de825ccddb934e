//go:build !linux

package netlink

import "net"

// mixVM is BenchmarkLearning's VM: one datagram per system call, a cycle
// of different frames.
type mixVM struct {
	c      *net.UnixConn
	frames [][]byte
	next   int
	buf    []byte
}

func newMixVM(c *net.UnixConn, frames [][]byte) *mixVM {
	return &mixVM{c: c, frames: frames, buf: make([]byte, MaxFrameSize+1)}
}

func (v *mixVM) send(count int) error {
	for ; count > 0; count-- {
		if _, err := v.c.Write(v.frames[v.next]); err != nil {
			return err
		}
		v.next = (v.next + 1) % len(v.frames)
	}
	return nil
}

func (v *mixVM) recv(max int) (int, error) {
	n, err := v.c.Read(v.buf)
	if err != nil {
		return 0, err
	}
	if n != len(v.frames[v.next]) {
		return 0, errFrameMismatch
	}
	v.next = (v.next + 1) % len(v.frames)
	return 1, nil
}
