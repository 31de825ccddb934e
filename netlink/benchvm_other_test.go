//go:build !linux

package netlink

import "net"

// benchVM is the benchmarks' VM: one datagram per system call, its frames
// sent and expected in a cycle (one frame, or BenchmarkLearning's mix).
type benchVM struct {
	c      *net.UnixConn
	frames [][]byte
	next   int
	buf    []byte
}

func newBenchVM(c *net.UnixConn, frames ...[]byte) *benchVM {
	return &benchVM{c: c, frames: frames, buf: make([]byte, MaxFrameSize+1)}
}

func (v *benchVM) send(count int) error {
	for ; count > 0; count-- {
		if _, err := v.c.Write(v.frames[v.next]); err != nil {
			return err
		}
		v.next = (v.next + 1) % len(v.frames)
	}
	return nil
}

func (v *benchVM) recv(max int) (int, error) {
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
