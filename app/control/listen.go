package control

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/vmnetbar/vmnetbar/internal/filekind"
)

// ErrPathTooLong is wrapped by Listen's error for a socket path longer than
// MaxSocketPathLen.
var ErrPathTooLong = errors.New("control socket path too long")

// ErrInUse is wrapped by Listen's error when a server already answers on the
// socket path.
var ErrInUse = errors.New("another instance is serving")

// probeTimeout bounds the check for a live server at an existing socket.
const probeTimeout = time.Second

// Listen creates the control socket at path with mode 0600 and returns its
// listener. The parent directory is created (mode 0700) when missing. The
// per-user fallback directory in the temporary directory (see
// DefaultSocketPath) must moreover be the user's own, mode 0700 and no
// symbolic link, else the error wraps ErrNotPrivate. A stale socket (one
// nobody answers on) is replaced; a live one is an error wrapping ErrInUse,
// as is any other kind of file at path. Closing the listener removes the
// socket.
func Listen(path string) (net.Listener, error) {
	if path == "" {
		return nil, fmt.Errorf("control socket path is empty: pass a path such as %s", filepath.Join(os.TempDir(), "vmnetbar.sock"))
	}
	if len(path) > MaxSocketPathLen {
		return nil, fmt.Errorf("%w: %s is %d bytes, the limit is %d (macOS's sun_path is 104 bytes); choose a shorter path", ErrPathTooLong, path, len(path), MaxSocketPathLen)
	}
	if needsPrivateDir(path) {
		// The per-user fallback in the shared temporary directory: anyone
		// could have made it first.
		if err := makePrivateDir(filepath.Dir(path)); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating the control socket's directory: %w", err)
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listening on control socket %s: %w", path, err)
	}
	// bind(2) applies the umask; tighten the mode before anyone is served.
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("setting the mode of control socket %s: %w", path, err)
	}
	return l, nil
}

// removeStale removes a socket at path that nobody serves. It fails when a
// server answers there or when path is not a socket.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("checking control socket %s: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%s exists and is not a socket (%s); remove it or choose another control socket path", path, filekind.Of(fi.Mode()))
	}
	c, err := net.DialTimeout("unix", path, probeTimeout)
	if err == nil {
		c.Close()
		return fmt.Errorf("%w at %s; stop it first or choose another control socket path", ErrInUse, path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("checking whether a server answers at %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing stale control socket %s: %w", path, err)
	}
	return nil
}
