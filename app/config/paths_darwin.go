package config

import (
	"os"
	"runtime"
)

// DefaultPaths returns the macOS locations of the current user.
func DefaultPaths() (Paths, error) {
	home, _ := os.UserHomeDir()
	return macPaths(home)
}

// DefaultSocketCandidates are socket_vmnet's usual socket paths; the first
// that exists is the default network.socket.
func DefaultSocketCandidates() []string { return macSocketCandidates(runtime.GOARCH) }

// DefaultSocketFallback is network.socket when it is unset and no candidate
// exists (socket_vmnet not installed or not started yet): Homebrew's socket
// for this Mac's architecture. The link waits for it to appear.
func DefaultSocketFallback() string { return HomebrewSocket(runtime.GOARCH) }
