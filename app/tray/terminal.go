package tray

import (
	"context"
	"strings"
)

// Terminal opens a new terminal window that runs a command (the menu's
// "Open Terminal" runs the VM's SSH command in it). newTerminal returns
// the platform's: Terminal.app through osascript on macOS; the desktop's
// terminal emulator on Linux.
type Terminal interface {
	// Open asks for a window running argv (a program and its
	// arguments) and returns: the window and its command belong to the
	// user from then on.
	Open(ctx context.Context, argv []string) error
}

// appleScriptString writes s as an AppleScript string literal.
func appleScriptString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// terminalAppCommand is the osascript command that opens a new window of
// macOS's Terminal running the shell command line, and brings Terminal to
// the front. Terminal types the line into a shell of its own, which stays
// when the command ends.
func terminalAppCommand(line string) []string {
	return []string{"osascript",
		"-e", `tell application "Terminal" to do script ` + appleScriptString(line),
		"-e", `tell application "Terminal" to activate`}
}
