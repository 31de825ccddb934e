package config

import "os"

// DefaultPaths returns the macOS locations of the current user.
func DefaultPaths() (Paths, error) {
	home, _ := os.UserHomeDir()
	return macPaths(home)
}

// DefaultSocketCandidates are socket_vmnet's usual socket paths; the first
// that exists is the default network.socket.
func DefaultSocketCandidates() []string { return macSocketCandidates() }
