//go:build !darwin && !linux

package config

import "os"

// DefaultPaths returns the XDG locations of the current user.
func DefaultPaths() (Paths, error) {
	home, _ := os.UserHomeDir()
	return xdgPaths(os.Getenv, home)
}

// DefaultSocketCandidates is empty: network.socket must be set.
func DefaultSocketCandidates() []string { return nil }

// DefaultSocketFallback is "": network.socket must be set.
func DefaultSocketFallback() string { return "" }
