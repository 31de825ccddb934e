//go:build linux || darwin

package vmhost

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/vmnetbar/vmnetbar/internal/sockcheck"
)

// checkDatagramSocket reports why f is not an open AF_UNIX SOCK_DGRAM
// socket. It does not call f.Fd, which would switch the file to blocking mode.
func checkDatagramSocket(f *os.File) error {
	if err := sockcheck.Datagram(f); err != nil {
		return fmt.Errorf("%w: pass the VM end of a SOCK_DGRAM socketpair (one datagram per frame)", err)
	}
	return nil
}

// dirWritable reports why files cannot be created in dir.
func dirWritable(dir string) error {
	if err := unix.Access(dir, unix.W_OK); err != nil {
		return fmt.Errorf("%s is not writable (%v)", dir, err)
	}
	return nil
}
