package tray

import "os/exec"

// newClipboard returns macOS's clipboard: pbcopy.
func newClipboard() Clipboard {
	return commandClipboard{
		programs: func() [][]string { return [][]string{{"pbcopy"}} },
		lookPath: exec.LookPath,
		install:  "pbcopy comes with macOS in /usr/bin: check PATH",
	}
}
