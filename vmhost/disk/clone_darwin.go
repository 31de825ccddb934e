package disk

import (
	"os"

	"golang.org/x/sys/unix"
)

// cloneTo makes tmpPath a copy-on-write clone of src with fclonefileat(2)
// (APFS). clonefile creates its destination, so the empty tmp is removed
// first and the clone opened in its place. Where the file system cannot
// clone (ENOTSUP on HFS+, EXDEV across volumes) it reports false, with no
// error, and returns a new empty file at tmpPath for the caller to copy
// into.
func cloneTo(src, tmp *os.File, tmpPath string) (*os.File, bool, error) {
	tmp.Close()
	if err := os.Remove(tmpPath); err != nil {
		return nil, false, err
	}
	var cerr error
	sc, err := src.SyscallConn()
	if err == nil {
		err = sc.Control(func(fd uintptr) {
			cerr = unix.Fclonefileat(int(fd), unix.AT_FDCWD, tmpPath, unix.CLONE_NOFOLLOW)
		})
	}
	if err == nil && cerr == nil {
		f, err := os.OpenFile(tmpPath, os.O_RDWR, 0)
		if err != nil {
			return nil, false, err
		}
		// The clone has the image's mode; the VM's disk is private.
		if err := f.Chmod(0o600); err != nil {
			f.Close()
			return nil, false, err
		}
		return f, true, nil
	}
	f, err := os.OpenFile(tmpPath, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, false, err
	}
	return f, false, nil
}
