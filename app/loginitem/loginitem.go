// Package loginitem starts vmnetbar when the user logs in.
//
// On macOS it is a per-user LaunchAgent: a plist in ~/Library/LaunchAgents
// (RunAtLoad, no KeepAlive, output to ~/Library/Logs/vmnetbar/launchd.log)
// loaded into the user's GUI domain with launchctl. On Linux it is an XDG
// autostart entry, $XDG_CONFIG_HOME/autostart/vmnetbar.desktop. New picks the
// one for the running OS; both generators are portable files (and tested
// everywhere), the OS files only pick paths and the command runner.
//
// This package may import only the standard library.
package loginitem

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Label is the LaunchAgent label and the macOS bundle identifier.
const Label = "io.github.vmnetbar"

// Manager turns launch at login on and off.
type Manager interface {
	// Enable makes the program start at every login. Enabling twice is
	// fine; the second call refreshes the program and its arguments.
	Enable() error
	// Disable stops the program from starting at login. Disabling when
	// not enabled is fine.
	Disable() error
	// Enabled reports whether the program starts at login.
	Enabled() (bool, error)
}

// Runner runs a command and returns its combined output. It is how the
// LaunchAgent runs launchctl; tests pass a fake.
type Runner func(ctx context.Context, name string, args ...string) ([]byte, error)

// ExecRunner runs the command with os/exec.
func ExecRunner(ctx context.Context, name string, args ...string) ([]byte, error) {
	return exec.CommandContext(ctx, name, args...).CombinedOutput()
}

// checkProgram validates the program a login item starts.
func checkProgram(exe string, args []string) error {
	if exe == "" {
		return errors.New("login item: no program given")
	}
	if !filepath.IsAbs(exe) {
		return fmt.Errorf("login item: program path %q is not absolute; pass the full path of the vmnetbar executable", exe)
	}
	if strings.ContainsRune(exe, 0) {
		return fmt.Errorf("login item: program path %q contains a NUL byte", exe)
	}
	for i, a := range args {
		if strings.ContainsRune(a, 0) {
			return fmt.Errorf("login item: argument %d (%q) contains a NUL byte", i+1, a)
		}
	}
	return nil
}

// writeFileAtomic writes data to path through a temporary file in the same
// directory, so a reader never sees half a file.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	cerr := f.Close()
	if err := errors.Join(werr, cerr, os.Chmod(tmp, perm)); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// removeIfExists removes path; a missing file is not an error.
func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
