package disk

import (
	"os"

	"golang.org/x/sys/unix"
)

// cloneTo makes tmp (an empty file at tmpPath) a copy-on-write clone of src
// with the FICLONE ioctl, which Btrfs, XFS (with reflink) and some other
// file systems support. It reports false, with no error, where the file
// system cannot (EOPNOTSUPP on ext4, EXDEV across file systems, ...): the
// caller copies instead. It returns the file to go on with.
func cloneTo(src, tmp *os.File, tmpPath string) (*os.File, bool, error) {
	sc, err := src.SyscallConn()
	if err != nil {
		return tmp, false, nil
	}
	dc, err := tmp.SyscallConn()
	if err != nil {
		return tmp, false, nil
	}
	var ierr error
	cerr := sc.Control(func(sfd uintptr) {
		if err := dc.Control(func(dfd uintptr) {
			ierr = unix.IoctlFileClone(int(dfd), int(sfd))
		}); err != nil {
			ierr = err
		}
	})
	if cerr != nil || ierr != nil {
		// A failed FICLONE leaves the destination as it was: empty.
		return tmp, false, nil
	}
	return tmp, true, nil
}
