//go:build !darwin && !linux

package control

import "os"

// DefaultSocketPath is the app's control socket, chosen as on Linux.
func DefaultSocketPath() (string, error) {
	home, _ := os.UserHomeDir()
	return xdgSocketPath(os.Getenv, home, os.TempDir(), os.Getuid())
}
