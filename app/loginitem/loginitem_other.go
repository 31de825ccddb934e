//go:build !darwin && !linux

package loginitem

import (
	"fmt"
	"runtime"
)

// New fails: launch at login is supported on macOS and Linux only.
func New(exe string, args []string) (Manager, error) {
	return nil, fmt.Errorf("login item: launch at login is not supported on %s", runtime.GOOS)
}
