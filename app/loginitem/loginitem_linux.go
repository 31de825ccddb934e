package loginitem

import (
	"fmt"
	"os"
)

// New returns the XDG autostart entry of the current user that starts exe
// with args.
func New(exe string, args []string) (Manager, error) {
	home, err := os.UserHomeDir()
	if err != nil && os.Getenv("XDG_CONFIG_HOME") == "" {
		return nil, fmt.Errorf("login item: %w", err)
	}
	return NewAutostart(XDGConfigHome(os.Getenv, home), exe, args)
}
