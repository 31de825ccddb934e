package control

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/vmnetbar/vmnetbar/internal/filekind"
)

// ErrNotPrivate is wrapped by the errors of Listen and the client when the
// per-user fallback directory for the control socket (in the temporary
// directory, see DefaultSocketPath) is not a directory of the current user
// with mode 0700. Anyone who can write to that directory can put a socket of
// their own in vmnetbar's place.
var ErrNotPrivate = errors.New("the control socket's directory is not private")

// fallbackDir is the per-user directory in tmp that holds the control socket
// when the usual path is too long for a socket address.
func fallbackDir(tmp string, uid int) string {
	return filepath.Join(tmp, appName+"-"+strconv.Itoa(uid))
}

// PrivateTempDir returns this user's private directory in the system's
// temporary directory (the control socket's fallback directory), creating
// it with mode 0700 when missing. Its error wraps ErrNotPrivate when the
// directory exists but is not a directory of the user's own with mode 0700.
// The temporary directory is on the local machine, so it also serves what
// a network home cannot hold (a file lock).
func PrivateTempDir() (string, error) {
	dir := fallbackDir(os.TempDir(), os.Getuid())
	if err := makePrivateDir(dir); err != nil {
		return "", err
	}
	return dir, nil
}

// needsPrivateDir reports whether the socket at path lives in this user's
// fallback directory in the shared temporary directory, where another user
// may have created that directory first.
func needsPrivateDir(path string) bool {
	return filepath.Dir(filepath.Clean(path)) == fallbackDir(os.TempDir(), os.Getuid())
}

// makePrivateDir creates dir with mode 0700 when it is missing and checks
// that it is private (checkPrivateDir), whoever created it.
func makePrivateDir(dir string) error {
	err := os.Mkdir(dir, 0o700)
	switch {
	case err == nil:
		// Mkdir applies the umask; 0700 is what the check requires.
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("setting the mode of the control socket's directory %s: %w", dir, err)
		}
	case !errors.Is(err, fs.ErrExist):
		return fmt.Errorf("creating the control socket's directory %s: %w", dir, err)
	}
	return checkPrivateDir(dir, os.Getuid())
}

// checkPrivateDir returns nil when dir, not following a symbolic link, is a
// directory owned by uid with mode exactly 0700. Otherwise its error wraps
// ErrNotPrivate (or fs.ErrNotExist when dir is missing), names dir, what it
// is and says what to do.
func checkPrivateDir(dir string, uid int) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("checking the control socket's directory %s: %w", dir, err)
	}
	what := ""
	switch owner, known := fileOwner(fi); {
	case fi.Mode()&fs.ModeSymlink != 0:
		target, _ := os.Readlink(dir)
		what = fmt.Sprintf("it is a symbolic link (to %s) owned by %s, not a directory", target, describeUID(owner, known))
	case !fi.IsDir():
		what = fmt.Sprintf("it is %s owned by %s, not a directory", filekind.Of(fi.Mode()), describeUID(owner, known))
	case !known || owner != uid || fi.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0o700:
		what = fmt.Sprintf("it belongs to %s and has mode %s", describeUID(owner, known), describePerm(fi.Mode()))
	default:
		return nil
	}
	return fmt.Errorf("%w: %s must be a directory owned by you, %s, with mode 0700, but %s; someone else may have made it to pose as vmnetbar. Remove it (rm -r %s) and try again, or pass --control PATH",
		ErrNotPrivate, dir, describeUID(uid, true), what, dir)
}

// describePerm writes a directory's permission bits as chmod takes them.
func describePerm(m fs.FileMode) string {
	p := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		p |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		p |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		p |= 0o1000
	}
	return fmt.Sprintf("%04o", p)
}
