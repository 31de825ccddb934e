//go:build linux || darwin

package vmhost

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// socketPair returns both ends of an AF_UNIX socketpair of type typ; the
// test's cleanup closes them (closing twice is harmless). hostEnd supports
// read deadlines.
func socketPair(t testing.TB, typ int) (vmEnd, hostEnd *os.File) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, typ, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.CloseOnExec(fds[0])
	unix.CloseOnExec(fds[1])
	// The host end is non-blocking so that os.File supports deadlines on it.
	if err := unix.SetNonblock(fds[1], true); err != nil {
		t.Fatal(err)
	}
	vmEnd = os.NewFile(uintptr(fds[0]), "vm-end")
	hostEnd = os.NewFile(uintptr(fds[1]), "host-end")
	t.Cleanup(func() {
		vmEnd.Close()
		hostEnd.Close()
	})
	return vmEnd, hostEnd
}

// writeFile creates a file with some content in dir.
func writeFile(t testing.TB, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("content"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// isClosed reports whether f has been closed.
func isClosed(f *os.File) bool {
	_, err := f.Stat()
	return err != nil
}

// sizedFile creates a sparse file of size bytes in dir.
func sizedFile(t testing.TB, dir, name string, size int64) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, size); err != nil {
		t.Fatal(err)
	}
	return p
}
