package config

import (
	"fmt"
	"path/filepath"
)

// Paths are the per-user locations vmnetbar reads and writes.
type Paths struct {
	// ConfigFile is the configuration file read when --config is not given.
	ConfigFile string
	// StateDir holds the guest console log by default.
	StateDir string
	// LogDir holds the app's log file (vmnetbar.log).
	LogDir string
}

// LogFile is the app's log file inside LogDir.
func (p Paths) LogFile() string { return filepath.Join(p.LogDir, "vmnetbar.log") }

// appName names vmnetbar's directories.
const appName = "vmnetbar"

// xdgPaths computes the XDG base directory layout. getenv reads the
// environment; relative XDG values are ignored, as the specification says.
func xdgPaths(getenv func(string) string, home string) (Paths, error) {
	dir := func(env, fallback string) (string, error) {
		if v := getenv(env); v != "" && filepath.IsAbs(v) {
			return v, nil
		}
		if home == "" {
			return "", fmt.Errorf("neither %s nor HOME is set: set one of them", env)
		}
		return filepath.Join(home, fallback), nil
	}
	cfg, err := dir("XDG_CONFIG_HOME", ".config")
	if err != nil {
		return Paths{}, err
	}
	state, err := dir("XDG_STATE_HOME", filepath.Join(".local", "state"))
	if err != nil {
		return Paths{}, err
	}
	return Paths{
		ConfigFile: filepath.Join(cfg, appName, "config.yaml"),
		StateDir:   filepath.Join(state, appName),
		LogDir:     filepath.Join(state, appName),
	}, nil
}

// macPaths computes the macOS layout under the user's home directory.
func macPaths(home string) (Paths, error) {
	if home == "" {
		return Paths{}, fmt.Errorf("HOME is not set: set it to your home directory")
	}
	support := filepath.Join(home, "Library", "Application Support", appName)
	return Paths{
		ConfigFile: filepath.Join(support, "config.yaml"),
		StateDir:   support,
		LogDir:     filepath.Join(home, "Library", "Logs", appName),
	}, nil
}

// Homebrew's socket_vmnet sockets: Homebrew lives in /opt/homebrew on Apple
// silicon and in /usr/local on Intel Macs.
const (
	homebrewSocketARM64 = "/opt/homebrew/var/run/socket_vmnet"
	homebrewSocketAMD64 = "/usr/local/var/run/socket_vmnet"
	// launchdSocket is where socket_vmnet's own launchd install puts it.
	launchdSocket = "/var/run/socket_vmnet"
)

// HomebrewSocket is socket_vmnet's socket as Homebrew installs it on a Mac
// of architecture goarch (a GOARCH value): /opt/homebrew/var/run/socket_vmnet
// on arm64 (Apple silicon), /usr/local/var/run/socket_vmnet on amd64
// (Intel). Other values get the arm64 path.
func HomebrewSocket(goarch string) string {
	if goarch == "amd64" {
		return homebrewSocketAMD64
	}
	return homebrewSocketARM64
}

// macSocketCandidates are socket_vmnet's usual socket paths on a Mac of
// architecture goarch, in the order they are tried: Homebrew for this
// architecture, Homebrew for the other one (an Intel Homebrew under
// Rosetta), the launchd install.
func macSocketCandidates(goarch string) []string {
	other := homebrewSocketAMD64
	if HomebrewSocket(goarch) == homebrewSocketAMD64 {
		other = homebrewSocketARM64
	}
	return []string{HomebrewSocket(goarch), other, launchdSocket}
}
