package control

import "os"

// DefaultSocketPath is the app's control socket:
// $XDG_RUNTIME_DIR/vmnetbar/control.sock, else
// $XDG_STATE_HOME/vmnetbar/control.sock (~/.local/state/vmnetbar/control.sock).
func DefaultSocketPath() (string, error) {
	home, _ := os.UserHomeDir()
	return xdgSocketPath(os.Getenv, home, os.TempDir(), os.Getuid())
}
