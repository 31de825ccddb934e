package control

import "os"

// DefaultSocketPath is the app's control socket:
// ~/Library/Application Support/vmnetbar/control.sock, or
// $TMPDIR/vmnetbar-UID/control.sock when the home directory's path is too
// long for a socket address.
func DefaultSocketPath() (string, error) {
	home, _ := os.UserHomeDir()
	return macSocketPath(home, os.TempDir(), os.Getuid())
}
