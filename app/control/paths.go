package control

import (
	"fmt"
	"path/filepath"
)

// MaxSocketPathLen is the longest socket path Listen accepts: macOS's
// sun_path holds 104 bytes including the terminating NUL. Linux allows 107,
// but vmnetbar uses the smaller limit everywhere so a path that works on one
// system works on the other.
const MaxSocketPathLen = 103

const (
	appName    = "vmnetbar"
	socketName = "control.sock"
)

// xdgSocketPath is the control socket path under the XDG base directory
// layout: $XDG_RUNTIME_DIR/vmnetbar/control.sock, or, without a runtime
// directory, $XDG_STATE_HOME/vmnetbar/control.sock (default
// ~/.local/state/vmnetbar/control.sock). Relative XDG values are ignored, as
// the specification says. A path too long for a socket falls back to
// tmp/vmnetbar-UID/control.sock.
func xdgSocketPath(getenv func(string) string, home, tmp string, uid int) (string, error) {
	var dir string
	switch {
	case filepath.IsAbs(getenv("XDG_RUNTIME_DIR")):
		dir = getenv("XDG_RUNTIME_DIR")
	case filepath.IsAbs(getenv("XDG_STATE_HOME")):
		dir = getenv("XDG_STATE_HOME")
	case home != "":
		dir = filepath.Join(home, ".local", "state")
	default:
		return "", fmt.Errorf("cannot choose a control socket path: none of XDG_RUNTIME_DIR, XDG_STATE_HOME and HOME is set; set one or pass --control PATH")
	}
	return shortEnough(filepath.Join(dir, appName, socketName), tmp, uid)
}

// macSocketPath is the control socket path on macOS:
// ~/Library/Application Support/vmnetbar/control.sock, or
// tmp/vmnetbar-UID/control.sock when that is too long for a socket.
func macSocketPath(home, tmp string, uid int) (string, error) {
	if home == "" {
		return "", fmt.Errorf("cannot choose a control socket path: HOME is not set; set it or pass --control PATH")
	}
	return shortEnough(filepath.Join(home, "Library", "Application Support", appName, socketName), tmp, uid)
}

// shortEnough returns p if it fits in a socket address, else the per-user
// fallback in the temporary directory. Listen and the client accept that
// fallback only as a directory of the user's own with mode 0700 (see
// ErrNotPrivate).
func shortEnough(p, tmp string, uid int) (string, error) {
	if len(p) <= MaxSocketPathLen {
		return p, nil
	}
	fb := filepath.Join(fallbackDir(tmp, uid), socketName)
	if len(fb) > MaxSocketPathLen {
		return "", fmt.Errorf("cannot choose a control socket path: both %s and %s are longer than %d bytes; pass a shorter --control PATH", p, fb, MaxSocketPathLen)
	}
	return fb, nil
}
