package loginitem

import (
	"fmt"
	"os"
)

// New returns the LaunchAgent of the current user that starts exe with args.
func New(exe string, args []string) (Manager, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return nil, fmt.Errorf("login item: %w", err)
	}
	return NewLaunchAgent(LaunchAgentConfig{
		Home:  home,
		UID:   os.Getuid(),
		Exe:   exe,
		Args:  args,
		Run:   ExecRunner,
		IsJob: os.Getenv("XPC_SERVICE_NAME") == Label,
	})
}
