//go:build unix

package sockcheck

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func socketFile(t *testing.T, domain, typ int) *os.File {
	t.Helper()
	fd, err := unix.Socket(domain, typ, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "test-socket")
	t.Cleanup(func() { f.Close() })
	return f
}

func pipeEnd(t *testing.T) *os.File {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return r
}

func TestDatagram(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	good := os.NewFile(uintptr(fds[0]), "pair")
	defer good.Close()
	defer unix.Close(fds[1])
	if err := Datagram(good); err != nil {
		t.Errorf("a SOCK_DGRAM socketpair end: %v", err)
	}

	closed := socketFile(t, unix.AF_UNIX, unix.SOCK_DGRAM)
	closed.Close()
	regular, err := os.Create(filepath.Join(t.TempDir(), "file"))
	if err != nil {
		t.Fatal(err)
	}
	defer regular.Close()

	for _, c := range []struct {
		name string
		f    *os.File
		want string
	}{
		{"closed", closed, "is closed"},
		{"regular file", regular, "file is not a socket (it is a regular file)"},
		{"pipe", pipeEnd(t), "is not a socket (it is a pipe)"},
		{"stream", socketFile(t, unix.AF_UNIX, unix.SOCK_STREAM), "is a SOCK_STREAM socket, not SOCK_DGRAM"},
		{"udp", socketFile(t, unix.AF_INET, unix.SOCK_DGRAM), "is not an AF_UNIX socket"},
	} {
		err := Datagram(c.f)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", c.name, err, c.want)
		}
	}
}

func TestTypeName(t *testing.T) {
	if got := TypeName(unix.SOCK_STREAM); got != "SOCK_STREAM" {
		t.Errorf("TypeName(SOCK_STREAM) = %q", got)
	}
	if got := TypeName(99); got != "type 99" {
		t.Errorf("TypeName(99) = %q", got)
	}
}
