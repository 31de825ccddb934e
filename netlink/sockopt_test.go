package netlink

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func shutdownFD(fd int) error { return unix.Shutdown(fd, unix.SHUT_RD) }

// sysctlMax reads a Linux socket buffer limit; 0 when unknown.
func sysctlMax(name string) int {
	b, err := os.ReadFile("/proc/sys/net/core/" + name)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

func checkSocketOptions(t *testing.T, f *os.File) {
	t.Helper()
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	rc.Control(func(fd uintptr) {
		typ, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TYPE)
		if err != nil || typ != unix.SOCK_DGRAM {
			t.Errorf("%s: SO_TYPE %d (%v), want SOCK_DGRAM", f.Name(), typ, err)
		}
		flags, err := unix.FcntlInt(fd, unix.F_GETFD, 0)
		if err != nil || flags&unix.FD_CLOEXEC == 0 {
			t.Errorf("%s: not close-on-exec (%v)", f.Name(), err)
		}
		for _, o := range []struct {
			opt  int
			name string
			want int
			max  string
		}{
			{unix.SO_SNDBUF, "SO_SNDBUF", vmSendBuffer, "wmem_max"},
			{unix.SO_RCVBUF, "SO_RCVBUF", vmRecvBuffer, "rmem_max"},
		} {
			got, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, o.opt)
			if err != nil {
				t.Errorf("%s: %s: %v", f.Name(), o.name, err)
				continue
			}
			if m := sysctlMax(o.max); m != 0 && m < o.want {
				t.Logf("%s capped by net.core.%s=%d", o.name, o.max, m)
				continue
			}
			if got < o.want {
				t.Errorf("%s: %s %d, want >= %d", f.Name(), o.name, got, o.want)
			}
		}
	})
}
